#!/usr/bin/python3
"""Runs a command in the boot test's VM through a root shell on its second serial port.

    vmconsole.py SOCKET COMMAND...          prints the command's output, exits with its status
    vmconsole.py SOCKET --no-wait COMMAND   types the command and returns (reboot, poweroff)
    vmconsole.py SOCKET --ready SECONDS     waits until the shell answers (exit 1 if it never does)

SOCKET is the unix socket qemu serves the serial port on (-chardev socket,server=on). The
test's user-data starts `bash` on ttyS1; the tty echoes what is typed, so the output is
found between two markers that the shell prints from pieces: the echoed command line never
contains them whole.
"""
import re
import secrets
import socket
import sys
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(0.2)
    return s


def run(path, command, timeout):
    """Returns (status, output) of `command`, or None if the shell did not answer in time."""
    tag = secrets.token_hex(4)
    line = (
        f"printf '%s\\n' '{tag}''-begin'; {command}; "
        f"printf '\\n%s %s\\n' '{tag}''-end' $?\n"
    )
    done = re.compile(rf"{tag}-begin\r?\n(.*?)\r?\n{tag}-end (\d+)", re.S)
    s = connect(path)
    try:
        s.sendall(b"\x15" + line.encode())  # Ctrl-U drops whatever was half typed
        seen = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            seen += chunk
            m = done.search(seen.decode(errors="replace"))
            if m:
                return int(m.group(2)), m.group(1).replace("\r", "")
        return None
    finally:
        s.close()


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path = argv[1]
    if argv[2] == "--ready":
        end = time.monotonic() + float(argv[3])
        while time.monotonic() < end:
            try:
                if run(path, "true", 5) is not None:
                    return 0
            except OSError:
                time.sleep(1)
        print(f"vmconsole: no shell answered on {path}", file=sys.stderr)
        return 1
    if argv[2] == "--no-wait":
        s = connect(path)
        s.sendall(b"\x15" + " ".join(argv[3:]).encode() + b"\n")
        time.sleep(0.5)
        s.close()
        return 0
    result = run(path, " ".join(argv[2:]), 120)
    if result is None:
        print(f"vmconsole: no answer from the VM's shell on {path}", file=sys.stderr)
        return 124
    status, output = result
    if output:
        print(output)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))

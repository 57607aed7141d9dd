#!/usr/bin/env python3
"""A fake GWLB target for testing testbed/gwlb-emu.py without the appliance: it returns
every GENEVE packet it gets as a bump in the wire does (outer addresses swapped, UDP
ports, GENEVE header, options and inner packet unchanged, as AWS's gwlbtun does), and
serves an HTTP health check. Python for the same reason as the emulator (a raw socket);
standard library only.

  --fail-file PATH     while PATH exists the health check answers 503
  --mangle-file PATH   while PATH exists the flow cookie comes back changed (one bit)
  --status PATH        JSON, rewritten every half second: packets, and each inner flow
                       seen with the directions it was seen in ("a>b", "b>a")

SIGTERM or SIGINT: exit 0.
"""

import argparse
import importlib.util
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

# The emulator's packet helpers, loaded from its file (no bytecode left in testbed/).
sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location("gwlb_emu", Path(__file__).with_name("gwlb-emu.py"))
emu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(emu)


class Health(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """The health check server (TCPServer: unlike http.server's, it resolves no names)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, path: str, fail_file: str):
        self.path, self.fail_file = path, fail_file
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != self.server.path:
            code, body = 404, b"not found\n"
        elif self.server.fail_file and os.path.exists(self.server.fail_file):
            code, body = 503, b"failing\n"
        else:
            code, body = 200, b"ok\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", required=True, help="this target's underlay address")
    p.add_argument("--health-port", type=int, default=80)
    p.add_argument("--health-path", default="/healthz")
    p.add_argument("--fail-file")
    p.add_argument("--mangle-file")
    p.add_argument("--status")
    a = p.parse_args()

    health = Health((a.address, a.health_port), a.health_path, a.fail_file)
    threading.Thread(target=health.serve_forever, daemon=True).start()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((a.address, emu.GENEVE_PORT))
    rx.settimeout(0.2)
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    packets = 0
    flows = {}
    last = 0.0

    def write_status():
        if a.status:
            tmp = a.status + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"packets": packets, "flows": {k: sorted(v) for k, v in flows.items()}}, f)
            os.replace(tmp, a.status)

    while not stop.is_set():
        try:
            data, (src, sport) = rx.recvfrom(65536)
        except socket.timeout:
            data = None
        if data is not None:
            packets += 1
            g = emu.parse_geneve(data)
            if g is not None:
                inner = g[4]
                key = emu.flow_of(inner)
                if key is not None:
                    # Which way: from the flow's lower endpoint, or towards it.
                    way = "a>b" if inner[12:16] == key.a[0] else "b>a"
                    flows.setdefault(str(key), set()).add(way)
                if a.mangle_file and os.path.exists(a.mangle_file) and len(data) > 8:
                    # The last option is the flow cookie: flip its last bit.
                    optend = 8 + (data[0] & 0x3F) * 4
                    data = data[: optend - 1] + bytes([data[optend - 1] ^ 1]) + data[optend:]
            tx.sendto(emu.udp_packet(a.address, sport, src, emu.GENEVE_PORT, data), (src, 0))
        if time.monotonic() - last >= 0.5:
            last = time.monotonic()
            write_status()
    write_status()
    health.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A gateway load balancer emulator for the namespace testbed: AWS GWLB's data path in
one process, so that appliances speaking GENEVE can be tested without a cloud.

Why Python: it needs a TUN device (/dev/net/tun ioctls) and a raw socket, and the project
keeps `unsafe` (which ioctls need from Rust) inside dpdk-bindings. Linux `geneve` devices
would do the encapsulation, but the module is not available on the test machines (and
they could not carry GWLB's per-flow options anyway), so this is a UDP socket program.
Standard library only.

What it does, like a GWLB behind GWLB endpoints in route tables:
  - It owns a TUN device (IFF_TUN | IFF_NO_PI). The namespace it runs in routes the traffic
    to inspect into it (both directions between inside hosts and servers), as route tables
    send traffic to a GWLB endpoint.
  - Each IPv4 packet read from the TUN belongs to a flow: its 5-tuple with the endpoints
    sorted, so both directions are one flow (ports 0 for protocols without ports, and for
    fragments, so that the fragments of a datagram stay together). A new flow goes to a healthy appliance chosen by a hash of that
    tuple; an existing flow stays where it is (flow stickiness).
  - The packet goes to the appliance's address, UDP port 6081, in GENEVE (RFC 8926: version
    0, protocol type 0x0800, the VNI) with GWLB's three options of class 0x0108: the
    endpoint id (type 1, 8 bytes), the attachment id (type 2, 8 bytes) and the flow cookie
    (type 3, 4 bytes, random per flow). The outer source port is a hash of the flow in
    49152-65535 (the entropy NICs use), the same both ways; DF is set.
  - GENEVE back from an appliance on UDP 6081 is checked (version, protocol, VNI, a known
    flow, its options byte for byte as sent), decapsulated and written to the TUN: the
    kernel routes the inner packet on. What fails a check is dropped and counted; an
    options mismatch is also logged.
  - Health checks: every --probe-interval an HTTP GET http://APPLIANCE:PORT/PATH (2xx/3xx
    passes, like a GWLB target group's matcher). After --unhealthy-threshold failures in a
    row an appliance is unhealthy: new flows go to the others. After --healthy-threshold
    successes it is healthy again. A new appliance takes flows after its first success.
  - Existing flows of an unhealthy appliance stay on it by default, as GWLB's default
    target failover `no_rebalance` does ("continues to send existing flows to failed or
    drained targets... new flows are sent to healthy targets", AWS's "Edit target group
    attributes" page); --target-failover rebalance moves them to a healthy appliance
    instead. With no healthy appliance a new flow is dropped (counted no_healthy_target),
    as a GWLB without cross-zone balancing does; --fail-open spreads them over all.
  - Flows expire after being idle 350 s (TCP) or 120 s (others), GWLB's idle timeouts.

Status: --status FILE is rewritten every second (and at exit) with a JSON object: per
appliance its state, flows, packets and bytes each way, option mismatches, probes; the
counters; and up to 1000 flows with the appliance each is on. Every health change is a
log line on stdout with a UTC timestamp and `t=<unix seconds>`, for failover timings:

  2024-05-01T10:00:03.512Z gwlb-emu: appliance 10.20.9.11 healthy -> unhealthy (2 probes failed: HTTP 503) t=1714557603.512

SIGTERM or SIGINT: the last status is written, the TUN goes away, exit 0.

Example (testbed/gwlb-emu-selftest.py builds a whole topology around it):
  ip netns exec lb testbed/gwlb-emu.py --local 10.20.9.1 --appliance 10.20.9.11 \\
      --appliance 10.20.9.12 --probe-path /healthz --status /run/gwlb/status.json
"""

import argparse
import dataclasses
import datetime
import errno
import fcntl
import http.client
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import zlib

GENEVE_PORT = 6081
# RFC 8926 section 3.4: version 0; option class 0x0108 is Amazon's (IANA registry).
GWLB_CLASS = 0x0108
OPT_ENDPOINT_ID, OPT_ATTACHMENT_ID, OPT_FLOW_COOKIE = 1, 2, 3
ETHERTYPE_IPV4 = 0x0800
# GWLB's flow idle timeouts (seconds): TCP and everything else.
IDLE_TCP, IDLE_OTHER = 350, 120
FLOWS_IN_STATUS = 1000

# <linux/if_tun.h>, <linux/sockios.h>, <net/if.h>
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFMTU = 0x8913, 0x8914, 0x8922
IFF_UP = 0x1


def log(msg: str) -> None:
    now = time.time()
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    print(f"{text} gwlb-emu: {msg} t={now:.3f}", flush=True)


# ---- the TUN device ---------------------------------------------------------------------


def open_tun(name: str, mtu: int) -> int:
    """Creates (or attaches to) TUN device `name`, without packet information, sets its MTU
    and brings it up; returns the file descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFMTU, struct.pack("16si20x", name.encode(), mtu))
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH22x", name.encode(), 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))
    # Packets written here come back in through this device with addresses of other
    # networks: the reverse-path filter must not drop them.
    try:
        with open(f"/proc/sys/net/ipv4/conf/{name}/rp_filter", "w") as f:
            f.write("0")
    except OSError:
        pass
    os.set_blocking(fd, False)
    return fd


# ---- packets ------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """RFC 1071 one's complement sum, folded and inverted."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An IPv4 packet (DF set, TTL 64) carrying a UDP datagram with its checksum, for a raw
    socket with IP_HDRINCL (the kernel fills the IP checksum)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    length = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, csum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, socket.IPPROTO_UDP, 0, s, d)
    return ip + udp


@dataclasses.dataclass(frozen=True)
class FlowKey:
    """A flow: protocol and its two endpoints, sorted, so that both directions are one."""

    proto: int
    a: tuple
    b: tuple

    def __str__(self) -> str:
        name = {1: "icmp", 6: "tcp", 17: "udp"}.get(self.proto, str(self.proto))
        ends = [f"{socket.inet_ntoa(ip)}:{port}" if self.proto in (6, 17) else socket.inet_ntoa(ip) for ip, port in (self.a, self.b)]
        return f"{name} {ends[0]} <-> {ends[1]}"


def flow_of(packet: bytes):
    """The flow of an IPv4 packet, or None when it is not one (too short, not IPv4)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    proto = packet[9]
    src, dst = packet[12:16], packet[16:20]
    frag = struct.unpack("!H", packet[6:8])[0]
    sport = dport = 0
    first = frag & 0x1FFF == 0 and not frag & 0x2000
    if proto in (6, 17) and first and len(packet) >= ihl + 4:
        sport, dport = struct.unpack("!HH", packet[ihl:ihl + 4])
    ends = sorted([(src, sport), (dst, dport)])
    return FlowKey(proto, ends[0], ends[1])


def flow_hash(key: FlowKey, salt: bytes) -> int:
    """A hash of the flow, the same both ways (its endpoints are sorted)."""
    data = salt + bytes([key.proto]) + key.a[0] + struct.pack("!H", key.a[1]) + key.b[0] + struct.pack("!H", key.b[1])
    return zlib.crc32(data)


def geneve_option(opt_type: int, data: bytes) -> bytes:
    assert len(data) % 4 == 0
    return struct.pack("!HBB", GWLB_CLASS, opt_type, len(data) // 4) + data


def geneve_header(vni: int, options: bytes) -> bytes:
    """RFC 8926 section 3.4: Ver 0 | Opt Len (4-byte words) | O 0 C 0 | protocol | VNI."""
    return struct.pack("!BBHI", len(options) // 4, 0, ETHERTYPE_IPV4, vni << 8) + options


def parse_geneve(data: bytes):
    """(version, protocol, vni, options bytes, payload), or None when too short."""
    if len(data) < 8:
        return None
    first, _flags, proto, vni = struct.unpack("!BBHI", data[:8])
    optlen = (first & 0x3F) * 4
    if len(data) < 8 + optlen:
        return None
    return first >> 6, proto, vni >> 8, data[8:8 + optlen], data[8 + optlen:]


# ---- appliances and flows ---------------------------------------------------------------


class Appliance:
    """One target: its address, health and counters. Health fields are written by its
    prober thread and read by the main loop (plain attribute reads and writes)."""

    def __init__(self, index: int, address: str):
        self.index = index
        self.address = address
        self.state = "initial"  # initial | healthy | unhealthy
        self.ok_run = 0
        self.fail_run = 0
        self.probes_ok = 0
        self.probes_failed = 0
        self.last_probe = ""
        self.last_change = 0.0
        self.transitions = 0
        self.flows = 0
        self.tx_packets = self.tx_bytes = 0
        self.rx_packets = self.rx_bytes = 0
        self.option_mismatches = 0

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def status(self) -> dict:
        return {
            "address": self.address,
            "state": self.state,
            "healthy": self.healthy,
            "flows": self.flows,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "option_mismatches": self.option_mismatches,
            "probes_ok": self.probes_ok,
            "probes_failed": self.probes_failed,
            "last_probe": self.last_probe,
            "last_change": self.last_change,
            "transitions": self.transitions,
        }


@dataclasses.dataclass
class Flow:
    appliance: Appliance
    options: bytes
    sport: int
    idle: int
    last_seen: float
    packets: int = 0


class Prober(threading.Thread):
    """Checks one appliance's health forever (a daemon thread)."""

    def __init__(self, app: Appliance, args, lock: threading.Lock):
        super().__init__(daemon=True, name=f"probe-{app.address}")
        self.app, self.args, self.lock = app, args, lock

    def check(self) -> tuple:
        a = self.args
        conn = http.client.HTTPConnection(self.app.address, a.probe_port, timeout=a.probe_timeout)
        try:
            conn.request("GET", a.probe_path, headers={"User-Agent": "gwlb-emu", "Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            return 200 <= resp.status < 400, f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as e:
            return False, "timed out" if isinstance(e, socket.timeout) else type(e).__name__ + (f": {e}" if str(e) else "")
        finally:
            conn.close()

    def run(self) -> None:
        app, a = self.app, self.args
        while True:
            started = time.monotonic()
            ok, what = self.check()
            with self.lock:
                app.last_probe = what
                if ok:
                    app.probes_ok += 1
                    app.ok_run, app.fail_run = app.ok_run + 1, 0
                else:
                    app.probes_failed += 1
                    app.ok_run, app.fail_run = 0, app.fail_run + 1
                new = app.state
                if app.state != "healthy" and ok and (app.state == "initial" or app.ok_run >= a.healthy_threshold):
                    new = "healthy"
                elif app.state != "unhealthy" and not ok and app.fail_run >= a.unhealthy_threshold:
                    new = "unhealthy"
                if new != app.state:
                    runs = f"{app.ok_run} probes passed" if ok else f"{app.fail_run} probes failed"
                    log(f"appliance {app.address} {app.state} -> {new} ({runs}: {what})")
                    app.state = new
                    app.last_change = time.time()
                    app.transitions += 1
            time.sleep(max(0.0, a.probe_interval - (time.monotonic() - started)))


class Balancer:
    """The data path: TUN to GENEVE and back, the flow table, the counters."""

    def __init__(self, args):
        self.args = args
        self.apps = [Appliance(i, a) for i, a in enumerate(args.appliance)]
        self.by_address = {socket.inet_aton(a.address): a for a in self.apps}
        self.lock = threading.Lock()
        self.flows = {}
        self.salt = os.urandom(4)
        self.endpoint_id = args.endpoint_id.to_bytes(8, "big")
        self.attachment_id = args.attachment_id.to_bytes(8, "big")
        self.counters = dict.fromkeys(
            [
                "tun_rx", "tun_tx", "not_ipv4", "no_healthy_target", "new_flows", "expired_flows",
                "rebalanced_flows", "tx_errors", "geneve_rx", "bad_geneve", "bad_version",
                "bad_protocol", "vni_mismatch", "unknown_flow", "option_mismatch",
                "foreign_source", "wrong_appliance", "sport_changed",
            ],
            0,
        )
        self.mismatch_logs = 0
        self.stop = False
        self.tun = open_tun(args.tun, args.mtu)
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rx.bind((args.local, GENEVE_PORT))
        self.rx.setblocking(False)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)

    # -- choosing an appliance

    def choose(self, h: int):
        candidates = [a for a in self.apps if a.healthy]
        if not candidates and self.args.fail_open:
            candidates = self.apps
        if not candidates:
            return None
        return candidates[h % len(candidates)]

    def flow_for(self, key: FlowKey, now: float):
        flow = self.flows.get(key)
        if flow is not None:
            if not flow.appliance.healthy and self.args.target_failover == "rebalance":
                to = self.choose(flow_hash(key, self.salt))
                if to is not None and to is not flow.appliance:
                    flow.appliance.flows -= 1
                    to.flows += 1
                    flow.appliance = to
                    self.counters["rebalanced_flows"] += 1
            return flow
        h = flow_hash(key, self.salt)
        app = self.choose(h)
        if app is None:
            self.counters["no_healthy_target"] += 1
            return None
        options = (
            geneve_option(OPT_ENDPOINT_ID, self.endpoint_id)
            + geneve_option(OPT_ATTACHMENT_ID, self.attachment_id)
            + geneve_option(OPT_FLOW_COOKIE, os.urandom(4))
        )
        sport = 49152 + flow_hash(key, self.salt + b"sport") % 16384
        flow = Flow(app, options, sport, IDLE_TCP if key.proto == 6 else IDLE_OTHER, now)
        self.flows[key] = flow
        app.flows += 1
        self.counters["new_flows"] += 1
        return flow

    # -- the two directions

    def from_tun(self) -> None:
        for _ in range(256):
            try:
                packet = os.read(self.tun, 65536)
            except BlockingIOError:
                return
            self.counters["tun_rx"] += 1
            key = flow_of(packet)
            if key is None:
                self.counters["not_ipv4"] += 1
                continue
            now = time.monotonic()
            flow = self.flow_for(key, now)
            if flow is None:
                continue
            flow.last_seen = now
            flow.packets += 1
            app = flow.appliance
            payload = geneve_header(self.args.vni, flow.options) + packet
            try:
                self.tx.sendto(udp_packet(self.args.local, flow.sport, app.address, GENEVE_PORT, payload), (app.address, 0))
            except OSError as e:
                self.counters["tx_errors"] += 1
                if self.counters["tx_errors"] in (1, 100, 10000):
                    hint = " (outer packet above the underlay MTU: raise it, or lower --mtu)" if e.errno == errno.EMSGSIZE else ""
                    log(f"sending to {app.address} failed: {e}{hint}")
                continue
            app.tx_packets += 1
            app.tx_bytes += len(packet)

    def from_appliances(self) -> None:
        for _ in range(256):
            try:
                data, (src, sport) = self.rx.recvfrom(65536)
            except BlockingIOError:
                return
            self.counters["geneve_rx"] += 1
            app = self.by_address.get(socket.inet_aton(src))
            if app is None:
                self.counters["foreign_source"] += 1
                continue
            g = parse_geneve(data)
            if g is None:
                self.counters["bad_geneve"] += 1
                continue
            version, proto, vni, options, inner = g
            if version != 0:
                self.counters["bad_version"] += 1
                continue
            if proto != ETHERTYPE_IPV4:
                self.counters["bad_protocol"] += 1
                continue
            if vni != self.args.vni:
                self.counters["vni_mismatch"] += 1
                continue
            key = flow_of(inner)
            flow = self.flows.get(key) if key is not None else None
            if flow is None:
                self.counters["unknown_flow"] += 1
                continue
            if options != flow.options:
                self.counters["option_mismatch"] += 1
                app.option_mismatches += 1
                self.mismatch_logs += 1
                if self.mismatch_logs <= 10 or self.mismatch_logs % 1000 == 0:
                    log(f"options mismatch from {src} on {key}: sent {flow.options.hex()}, got {options.hex()} ({self.mismatch_logs} so far)")
                continue
            if app is not flow.appliance:
                self.counters["wrong_appliance"] += 1
            if sport != flow.sport:
                self.counters["sport_changed"] += 1
            flow.last_seen = time.monotonic()
            flow.packets += 1
            app.rx_packets += 1
            app.rx_bytes += len(inner)
            try:
                os.write(self.tun, inner)
                self.counters["tun_tx"] += 1
            except OSError:
                self.counters["tx_errors"] += 1

    # -- housekeeping

    def expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, f in self.flows.items() if now - f.last_seen > f.idle]:
            self.flows.pop(key).appliance.flows -= 1
            self.counters["expired_flows"] += 1

    def write_status(self) -> None:
        if not self.args.status:
            return
        with self.lock:
            apps = [a.status() for a in self.apps]
        flows = [
            {"flow": str(k), "appliance": f.appliance.address, "packets": f.packets}
            for k, f in list(self.flows.items())[:FLOWS_IN_STATUS]
        ]
        status = {
            "time": time.time(),
            "pid": os.getpid(),
            "tun": self.args.tun,
            "vni": self.args.vni,
            "target_failover": self.args.target_failover,
            "appliances": apps,
            "flows": len(self.flows),
            "counters": self.counters,
            "flow_list": flows,
        }
        tmp = self.args.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(status, f, indent=1)
        os.replace(tmp, self.args.status)

    def run(self) -> None:
        for app in self.apps:
            Prober(app, self.args, self.lock).start()
        sel = selectors.DefaultSelector()
        sel.register(self.tun, selectors.EVENT_READ, self.from_tun)
        sel.register(self.rx, selectors.EVENT_READ, self.from_appliances)
        log(
            f"running: tun {self.args.tun} (mtu {self.args.mtu}), GENEVE from {self.args.local}, "
            f"appliances {', '.join(a.address for a in self.apps)}, vni {self.args.vni}, "
            f"target failover {self.args.target_failover}"
        )
        last = 0.0
        while not self.stop:
            for sk, _ in sel.select(timeout=0.2):
                sk.data()
            now = time.monotonic()
            if now - last >= 1.0:
                last = now
                self.expire()
                self.write_status()
        self.write_status()
        sel.close()
        os.close(self.tun)
        log("stopped")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tun", default="gwlb0", help="TUN device to create (default gwlb0)")
    p.add_argument("--mtu", type=int, default=1500, help="the TUN's MTU (default 1500; the underlay needs 68 bytes more)")
    p.add_argument("--local", required=True, help="this side's underlay address: GENEVE comes from and back to it")
    p.add_argument("--appliance", action="append", required=True, help="an appliance's underlay address (repeat)")
    p.add_argument("--vni", type=int, default=0, help="GENEVE VNI (default 0)")
    p.add_argument("--endpoint-id", type=lambda s: int(s, 16), default=0x0EA1B2C3D4E5F607, help="GWLB endpoint id, hex (option type 1)")
    p.add_argument("--attachment-id", type=lambda s: int(s, 16), default=0x0000000000000001, help="attachment id, hex (option type 2)")
    p.add_argument("--probe-port", type=int, default=80)
    p.add_argument("--probe-path", default="/")
    p.add_argument("--probe-interval", type=float, default=1.0, help="seconds between health checks (default 1)")
    p.add_argument("--probe-timeout", type=float, default=0.5, help="seconds a check may take (default 0.5)")
    p.add_argument("--unhealthy-threshold", type=int, default=2)
    p.add_argument("--healthy-threshold", type=int, default=2)
    p.add_argument("--target-failover", choices=["no_rebalance", "rebalance"], default="no_rebalance",
                   help="existing flows of an unhealthy appliance: stay (default, as GWLB) or move")
    p.add_argument("--fail-open", action="store_true", help="with no healthy appliance, use them all (default: drop)")
    p.add_argument("--status", help="JSON status file, rewritten every second")
    args = p.parse_args()
    if not 0 <= args.vni < 1 << 24:
        p.error("--vni must fit in 24 bits")
    for a in args.appliance + [args.local]:
        ipaddress.IPv4Address(a)
    b = Balancer(args)

    def stop(_sig, _frame):
        b.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    b.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Self-test of testbed/gwlb-emu.py with two fake appliances (testbed/gwlb-reflector.py),
no DPDK and no appliance build needed. Root only (namespaces, TUN, raw sockets).

  {P}cli 10.20.1.10 --- cli [{P}lb] srv --- 10.20.2.10 {P}srv (an HTTP server on :8000)
                          |  gwlb0 (TUN, the emulator)
                          ul 10.20.9.1 (bridge, MTU 9000)
                         /          \\
        10.20.9.11 {P}ap1            {P}ap2 10.20.9.12   (reflectors, health on :80/healthz)

The lb namespace sends what arrives from cli or srv into the TUN (policy routing, as a
route table sends traffic to a GWLB endpoint); what the emulator writes back is routed
on. Checked: ping and curl both ways; every flow on one appliance for both directions,
and flows over both; options checked byte for byte (a reflector that changes the cookie
is counted and its packets dropped); an appliance whose health check fails gets no new
flow while its existing flows stay on it (no_rebalance) and comes back; with rebalance,
a killed appliance's flow moves to the other one; SIGTERM ends the emulator cleanly.
Failover times are printed as `FIGURE` lines.

  python3 testbed/gwlb-emu-selftest.py [-v]
Namespaces are named gwst<pid>-*, so runs do not collide; all are removed at the end.
NVA_TEST_ALLOW_SKIP=1 turns a missing prerequisite into a skip instead of a failure.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
P = f"gwst{os.getpid() % 100000}-"
CLI, SRV, LB = "10.20.1.10", "10.20.2.10", "10.20.9.1"
APS = {"ap1": "10.20.9.11", "ap2": "10.20.9.12"}
INTERVAL, TIMEOUT, THRESHOLD = 0.5, 0.3, 2
# The longest a health change may take to be seen: the failing probes plus one interval
# of phase and some scheduling slack on a busy 2-core machine.
DETECT = (THRESHOLD + 1) * INTERVAL + TIMEOUT + 2.0

SERVER = r"""
import socketserver, sys
from http.server import BaseHTTPRequestHandler
body = b"x" * 20000
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
S((sys.argv[1], 8000), H).serve_forever()
"""


def sh(cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"`{cmd}` failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def nsx(ns: str, cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return sh(f"ip netns exec {P}{ns} {cmd}", check, timeout)


def missing() -> str:
    if os.geteuid() != 0:
        return "root (network namespaces, a TUN device, raw sockets)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun"
    for prog in ["ip", "ping", "curl", "ethtool"]:
        if shutil.which(prog) is None:
            return f"the program {prog}"
    return ""


class Topology:
    """The namespaces and links above, and the processes started in them (ended by PID)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="gwlb-selftest-"))
        self.procs = {}
        self.up()

    def up(self):
        for n in ["cli", "srv", "lb", "ap1", "ap2"]:
            sh(f"ip netns add {P}{n}")
            nsx(n, "ip link set lo up")
            nsx(n, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for a, b in [("cli:eth0", "lb:cli"), ("srv:eth0", "lb:srv"), ("ap1:eth0", "lb:ap1"), ("ap2:eth0", "lb:ap2")]:
            (na, ia), (nb, ib) = a.split(":"), b.split(":")
            sh(f"ip link add {ia} netns {P}{na} type veth peer name {ib} netns {P}{nb}")
            for n, i in [(na, ia), (nb, ib)]:
                nsx(n, f"ethtool -K {i} tx off rx off tso off gso off gro off", check=False)
                if i.startswith("ap") or n.startswith("ap"):
                    nsx(n, f"ip link set {i} mtu 9000")
                nsx(n, f"ip link set {i} up")
        nsx("lb", "ip link add ul type bridge stp_state 0 forward_delay 0")
        nsx("lb", "ip link set ul mtu 9000")
        for i in ["ap1", "ap2"]:
            nsx("lb", f"ip link set {i} master ul")
        nsx("lb", "ip link set ul up")
        nsx("lb", "ip addr add 10.20.9.1/24 dev ul")
        nsx("lb", "ip addr add 10.20.1.1/24 dev cli")
        nsx("lb", "ip addr add 10.20.2.1/24 dev srv")
        nsx("lb", "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        # What arrives from either side goes to the balancer's TUN (table 100, filled once
        # the TUN exists); what the emulator writes back comes in on the TUN: main table.
        nsx("lb", "ip rule add iif cli lookup 100 priority 100")
        nsx("lb", "ip rule add iif srv lookup 100 priority 101")
        nsx("cli", f"ip addr add {CLI}/24 dev eth0")
        nsx("cli", "ip route add default via 10.20.1.1")
        nsx("srv", f"ip addr add {SRV}/24 dev eth0")
        nsx("srv", "ip route add default via 10.20.2.1")
        for ap, addr in APS.items():
            nsx(ap, f"ip addr add {addr}/24 dev eth0")
        self.spawn("server", "srv", [sys.executable, "-c", SERVER, SRV])
        for ap in APS:
            self.start_reflector(ap)

    def spawn(self, name: str, ns: str, argv: list) -> subprocess.Popen:
        with open(self.dir / f"{name}.log", "a") as out:
            p = subprocess.Popen(["ip", "netns", "exec", P + ns] + argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs[name] = p
        return p

    def stop(self, name: str, sig=signal.SIGTERM, wait: float = 5) -> int:
        p = self.procs.pop(name)
        p.send_signal(sig)
        try:
            return p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def start_reflector(self, ap: str):
        self.spawn(ap, ap, [
            sys.executable, str(HERE / "gwlb-reflector.py"), "--address", APS[ap],
            "--fail-file", str(self.dir / f"{ap}.fail"), "--mangle-file", str(self.dir / f"{ap}.mangle"),
            "--status", str(self.dir / f"{ap}.json"),
        ])

    def start_emulator(self, *extra: str):
        self.spawn("emu", "lb", [
            sys.executable, str(HERE / "gwlb-emu.py"), "--local", LB,
            "--appliance", APS["ap1"], "--appliance", APS["ap2"],
            "--probe-path", "/healthz", "--probe-interval", str(INTERVAL),
            "--probe-timeout", str(TIMEOUT), "--unhealthy-threshold", str(THRESHOLD),
            "--healthy-threshold", str(THRESHOLD), "--status", str(self.dir / "emu.json"), *extra,
        ])
        deadline = time.monotonic() + 10
        while nsx("lb", "ip link show gwlb0", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"the emulator made no TUN:\n{self.log('emu')}"
            time.sleep(0.1)
        nsx("lb", "ip route replace default dev gwlb0 table 100")

    def log(self, name: str) -> str:
        try:
            return (self.dir / f"{name}.log").read_text()
        except OSError:
            return ""

    def status(self, name: str = "emu") -> dict:
        try:
            return json.loads((self.dir / f"{name}.json").read_text())
        except (OSError, ValueError):
            return {}

    def appliance(self, addr: str) -> dict:
        return next((a for a in self.status().get("appliances", []) if a["address"] == addr), {})

    def wait(self, what: str, cond, secs: float = 10):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError(f"not within {secs} s: {what}\nstatus: {json.dumps(self.status())[:3000]}\nemulator log:\n{self.log('emu')}")

    def down(self):
        for name in list(self.procs):
            self.stop(name, signal.SIGKILL, 2)
        for n in ["cli", "srv", "lb", "ap1", "ap2"]:
            sh(f"ip netns del {P}{n}", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def curl(secs: float = 5) -> subprocess.CompletedProcess:
    """One request from cli to the server on a new connection: a new flow."""
    return nsx("cli", f"curl -sS --connect-timeout {min(secs, 2)} --max-time {secs} -o /dev/null "
               f"-w '%{{http_code}} %{{size_download}}' http://{SRV}:8000/", check=False)


def flows_to_server(status: dict) -> dict:
    """The emulator's TCP flows to the server: flow text -> appliance."""
    return {f["flow"]: f["appliance"] for f in status.get("flow_list", []) if f["flow"].startswith("tcp ") and f"{SRV}:8000" in f["flow"]}


def figure(text: str):
    print(f"FIGURE gwlb-emu selftest: {text}", flush=True)


class GwlbEmulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = missing()
        if why:
            if os.environ.get("NVA_TEST_ALLOW_SKIP") == "1":
                raise unittest.SkipTest(f"needs {why}")
            raise AssertionError(f"gwlb-emu selftest needs {why} (NVA_TEST_ALLOW_SKIP=1 skips)")
        cls.t = Topology()
        try:
            cls.t.start_emulator()
            cls.t.wait("both appliances healthy", lambda: all(cls.t.appliance(a).get("healthy") for a in APS.values()))
        except BaseException:
            cls.t.down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.t.down()

    def test_1_traffic_passes_both_ways(self):
        t = self.t
        nsx("cli", f"ping -c 3 -i 0.2 -W 2 {SRV}")
        nsx("srv", f"ping -c 3 -i 0.2 -W 2 {CLI}")
        r = curl()
        self.assertEqual(r.stdout.split()[:2], ["200", "20000"], r.stderr)
        def counts():
            apps = t.status().get("appliances", [])
            return sum(a["tx_packets"] for a in apps), sum(a["rx_packets"] for a in apps)

        t.wait("every packet sent to an appliance came back", lambda: counts()[0] > 15 and counts()[0] == counts()[1])
        s = t.status()
        for c in ["option_mismatch", "unknown_flow", "vni_mismatch", "bad_version", "tx_errors", "no_healthy_target"]:
            self.assertEqual(s["counters"][c], 0, c)

    def test_2_flows_stick_to_one_appliance_both_ways(self):
        t = self.t
        for _ in range(24):
            self.assertEqual(curl().stdout.split()[0], "200")
        time.sleep(1.2)  # a status and the reflectors' files rewritten
        ours = flows_to_server(t.status())
        self.assertGreaterEqual(len(ours), 24)
        seen = {ap: t.status(ap).get("flows", {}) for ap in APS}
        for flow, addr in ours.items():
            at = [ap for ap in APS if flow in seen[ap]]
            self.assertEqual(at, [k for k, v in APS.items() if v == addr], f"{flow}: on {addr}, seen at {at}")
            self.assertEqual(seen[at[0]][flow], ["a>b", "b>a"], f"{flow}: both directions through one appliance")
        spread = {ap: sum(1 for a in ours.values() if a == addr) for ap, addr in APS.items()}
        self.assertTrue(all(spread.values()), f"new flows over both appliances: {spread}")
        figure(f"{len(ours)} TCP flows: {spread}, each flow's two directions on one appliance")

    def test_3_options_are_checked(self):
        t = self.t
        before = t.status()["counters"]["option_mismatch"]
        (t.dir / "ap1.mangle").touch()
        try:
            # 16 new flows: all on one appliance once in 30000 runs.
            codes = [curl(1).stdout.split()[0] for _ in range(16)]
        finally:
            (t.dir / "ap1.mangle").unlink()
        self.assertIn("200", codes, "flows on ap2 still work")
        self.assertIn("000", codes, "flows on ap1 fail: their packets come back with another cookie")
        t.wait("mismatches counted", lambda: t.appliance(APS["ap1"]).get("option_mismatches", 0) > 0)
        self.assertGreater(t.status()["counters"]["option_mismatch"], before)
        self.assertEqual(t.appliance(APS["ap2"])["option_mismatches"], 0)
        self.assertIn("options mismatch from 10.20.9.11", t.log("emu"))

    def test_4_failed_health_takes_new_flows_away(self):
        t = self.t
        nsx("cli", f"ping -c 1 -W 2 {SRV}")
        icmp = next(f for f in t.status()["flow_list"] if f["flow"].startswith("icmp "))
        on = next(ap for ap, addr in APS.items() if addr == icmp["appliance"])
        other = next(ap for ap in APS if ap != on)
        ping = subprocess.Popen(["ip", "netns", "exec", P + "cli", "ping", "-i", "0.2", "-W", "1", SRV],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            failed_at = time.time()
            (t.dir / f"{on}.fail").touch()
            t.wait(f"{on} unhealthy", lambda: t.appliance(APS[on]).get("state") == "unhealthy", DETECT + 2)
            line = next(l for l in t.log("emu").splitlines() if f"appliance {APS[on]} healthy -> unhealthy" in l)
            detected = float(re.search(r"t=([0-9.]+)", line).group(1)) - failed_at
            self.assertLess(detected, DETECT, line)
            known = set(flows_to_server(t.status()))
            for _ in range(10):
                self.assertEqual(curl().stdout.split()[0], "200")
            time.sleep(1.2)
            new = {f: a for f, a in flows_to_server(t.status()).items() if f not in known}
            self.assertEqual(len(new), 10)
            self.assertEqual(set(new.values()), {APS[other]}, "new flows only to the healthy appliance")
            # The flow that was there stays (no_rebalance) and still passes.
            before = t.appliance(APS[on])["tx_packets"]
            time.sleep(1.5)
            self.assertGreater(t.appliance(APS[on])["tx_packets"], before, "the existing flow stays on it")
            (t.dir / f"{on}.fail").unlink()
            back_at = time.time()
            t.wait(f"{on} healthy again", lambda: t.appliance(APS[on]).get("state") == "healthy", DETECT + 2)
            recovered = t.appliance(APS[on])["last_change"] - back_at
        finally:
            ping.send_signal(signal.SIGINT)
            out = ping.communicate(timeout=5)[0]
        loss = re.search(r"([0-9.]+)% packet loss", out)
        self.assertIsNotNone(loss, out)
        self.assertEqual(float(loss.group(1)), 0.0, f"the existing ICMP flow lost packets:\n{out}")
        figure(f"health failure seen after {detected:.2f} s, recovery after {recovered:.2f} s "
               f"(interval {INTERVAL} s, threshold {THRESHOLD}); existing flow kept, 0% loss")

    def test_5_rebalance_moves_a_dead_appliances_flows(self):
        t = self.t
        self.assertEqual(t.stop("emu"), 0, "SIGTERM: clean exit")
        self.assertNotEqual(nsx("lb", "ip link show gwlb0", check=False).returncode, 0, "the TUN is gone")
        self.assertIn("stopped", t.log("emu"))
        t.start_emulator("--target-failover", "rebalance")
        t.wait("both healthy", lambda: all(t.appliance(a).get("healthy") for a in APS.values()))
        nsx("cli", f"ping -c 1 -W 2 {SRV}")
        t.wait("the ICMP flow in the status", lambda: any(f["flow"].startswith("icmp ") for f in t.status().get("flow_list", [])))
        on = next(ap for ap, addr in APS.items() if addr == next(f["appliance"] for f in t.status()["flow_list"] if f["flow"].startswith("icmp ")))
        ping = subprocess.Popen(["ip", "netns", "exec", P + "cli", "ping", "-D", "-i", "0.1", "-W", "1", SRV],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(0.5)
            killed = time.time()
            t.stop(on, signal.SIGKILL)
            t.wait(f"{on} unhealthy", lambda: t.appliance(APS[on]).get("state") == "unhealthy", DETECT + 2)
            time.sleep(1.0)
        finally:
            ping.send_signal(signal.SIGINT)
            out = ping.communicate(timeout=5)[0]
        t.start_reflector(on)
        replies = [float(m.group(1)) for m in re.finditer(r"^\[([0-9.]+)\] .*icmp_seq=", out, re.M)]
        after = [r for r in replies if r > killed]
        self.assertTrue(after, f"the flow never came back after {on} died:\n{out}")
        gap = after[0] - killed
        self.assertLess(gap, DETECT + 1, out)
        icmp = next(f for f in t.status()["flow_list"] if f["flow"].startswith("icmp "))
        self.assertNotEqual(icmp["appliance"], APS[on], "moved")
        self.assertGreater(t.status()["counters"]["rebalanced_flows"], 0)
        figure(f"rebalance: {on} killed, its ICMP flow answered again on the other after {gap:.2f} s")


if __name__ == "__main__":
    unittest.main(verbosity=2 if "-v" in sys.argv else 1, argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a != "-v"])

#!/usr/bin/env bash
# Instructions a packet of the whole worker loop of the real binary (callgrind), the figure
# the wall clock of this shared machine cannot give repeatably.
#
# `appliance run` with the one-arm configuration of benches/compare.sh (benches/vhost-bench.sh),
# its port a net_pcap device replaying FLOWS 64-byte egress frames forever (infinite_rx), so
# the worker never polls an empty queue: the first pass creates the sessions, then every
# packet is established traffic, SNATed and sent back out (to /dev/null). Callgrind counts
# the worker thread's instructions; the PMD's own receive and transmit (the shim calls
# `shim_rte_eth_rx_burst`, `shim_rte_eth_tx_burst`, which differ by driver) are taken out;
# what is left, divided by the packets the worker processed, is the loop's cost a packet:
# the policy and neighbour loads, the clock, the counters, the prefetches, the pipeline,
# dispatch and tx buffering.
#
#   benches/callgrind-worker.sh            1 000 flows, 20 s under callgrind
#   FLOWS=10000 SECS=90 benches/callgrind-worker.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${FLOWS:-1000}
SECS=${SECS:-20}
fail() {
  echo "callgrind-worker: $*" >&2
  exit 1
}
[[ $EUID -eq 0 ]] || fail "needs root (EAL)"
command -v valgrind >/dev/null || fail "valgrind is missing (apt-get install valgrind)"
[[ $FLOWS =~ ^[1-9][0-9]*$ && $FLOWS -le 65536 && $SECS =~ ^[1-9][0-9]*$ ]] ||
  fail "FLOWS must be 1..65536 (one destination port each), SECS a positive integer"
cargo build -q --release -p appliance
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/appliance
# shellcheck source=benches/vhost-bench.sh
source benches/vhost-bench.sh
work=$(mktemp -d /tmp/nva-callgrind-worker.XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT

# config FILE DEVICE: the benchmark's configuration with DEVICE as its port, in ordinary
# memory (no huge pages to share with other benchmarks; callgrind counts the same).
config() {
  vhost_bench_config "$FLOWS" none "cgw$$" "" callgrind-worker "$2" |
    sed 's/^huge_pages = true$/huge_pages = false/' > "$1"
}

# The port's MAC (net_pcap makes one up): from a short run's report.
python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<IHHiIII",0xa1b2c3d4,2,4,0,0,65535,1))' > "$work/empty.pcap"
config "$work/probe.toml" "net_pcap0,rx_pcap=$work/empty.pcap,tx_pcap=/dev/null"
"$bin" run --config "$work/probe.toml" --duration 1 --json > "$work/probe.json" 2> "$work/probe.log" ||
  { cat "$work/probe.log" >&2; fail "the appliance did not run on a pcap port"; }
mac=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ports"][0]["mac"])' "$work/probe.json")

# The generator's frames (as benches/compare.sh's testpmd flowgen sends them), to that MAC:
# UDP 10.254.0.0:1000 -> 10.253.0.0+i:1001, 64 bytes on the wire (60 without the FCS).
python3 - "$work/in.pcap" "$mac" "$VHOST_GEN_MAC" "$FLOWS" <<'PY'
import struct, sys
path, dst, src, flows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mac = lambda s: bytes(int(x, 16) for x in s.split(":"))
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
payload = bytes(60 - 14 - 20 - 8)
for i in range(flows):
    daddr = bytes([10, 253, (i >> 8) & 0xFF, i & 0xFF])
    udp = struct.pack("!HHHH", 1000, 1001, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([10, 254, 0, 0]), daddr)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frame = mac(dst) + mac(src) + b"\x08\x00" + ip + udp
    out.append(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
open(path, "wb").write(b"".join(out))
PY

config "$work/run.toml" "net_pcap0,rx_pcap=$work/in.pcap,tx_pcap=/dev/null,infinite_rx=1"
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg.out" \
  "$bin" run --config "$work/run.toml" --duration "$SECS" --json > "$work/report.json" 2> "$work/valgrind.log" ||
  { tail -20 "$work/valgrind.log" >&2; fail "the appliance failed under callgrind"; }
packets=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(w["processed"] for w in r["workers"]))' "$work/report.json")
# The worker's thread is the one that called the rx shim.
worker=$(grep -l 'shim_rte_eth_rx_burst' "$work"/cg.out-* | head -1)
[[ -n $worker && $packets -gt 0 ]] || fail "callgrind saw no worker thread or no packets (see $work)"
python3 - "$worker" "$packets" <<'PY'
import re, subprocess, sys
path, packets = sys.argv[1], int(sys.argv[2])
text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                      capture_output=True, text=True, check=True).stdout
def count(function):
    # callgrind_annotate splits a function by the source file of its inlined parts; the
    # line of the function itself holds the largest inclusive count.
    best = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*?\)\s+[^:\s]*:(.*?)( \[.*\])?$", line)
        if m and m.group(2) == function:
            best = max(best, int(m.group(1).replace(",", "")))
    return best
total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", text).group(1).replace(",", ""))
rx, tx = count("shim_rte_eth_rx_burst"), count("shim_rte_eth_tx_burst")
pipeline = count("appliance::pipeline::burst::<impl appliance::pipeline::shard::Shard<T>>::process")
own = total - rx - tx
print(f"worker loop: {own / packets:.1f} instructions a packet ({packets} packets; "
      f"PMD rx {rx / packets:.1f} and tx {tx / packets:.1f} a packet left out)")
print(f"  of which Shard::process: {pipeline / packets:.1f}; around the pipeline: {(own - pipeline) / packets:.1f}")
PY

#!/usr/bin/env bash
# Whole-data-path forwarding on net_null, one worker core: the appliance's worker loop next to
# dpdk-testpmd io forwarding (the ceiling) on the same vdevs, in the same run.
#   DURATION=10 benches/forwarding.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
bin=target/release/appliance
[[ -x $bin ]] || cargo build --release -p appliance
huge=false
if awk '/^HugePages_Free:/ {exit !($2 > 0)}' /proc/meminfo && grep -qs ' hugetlbfs ' /proc/mounts; then
  huge=true
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/null.toml" <<TOML
[eal]
lcores = "0-1"
huge_pages = $huge
memory_mb = 512
file_prefix = "bench-fwd-$$"

[dataplane]
burst = 32
TOML
cat appliance/tests/fixtures/null-ports.toml >> "$work/null.toml"

echo "net_null forwarding, 64-byte packets, 1 worker core, ${DURATION}s each, huge pages: $huge"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" run --config "$work/null.toml" --duration "$DURATION" --json 2>"$work/appliance.log" >"$work/report.json"
python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
secs = r["elapsed_secs"]
tx = sum(p["tx_packets"] for p in r["ports"])
drop = sum(p["tx_dropped"] for p in r["ports"])
w = r["workers"][0]
cpp = w["busy_cycles"] / max(w["processed"], 1)
print(f"appliance   : {w['processed'] / secs / 1e6:7.2f} Mpps received and processed, {tx / secs / 1e6:.2f} Mpps "
      f"forwarded ({tx} packets in {secs:.2f} s, {drop} dropped at tx), "
      f"{cpp:.1f} cycles/packet at {r['tsc_hz'] / 1e9:.2f} GHz")
PY

if command -v dpdk-testpmd >/dev/null; then
  mem=(--no-huge -m 512)
  [[ $huge == true ]] && mem=(--in-memory)
  timeout -s INT $((DURATION + 3)) dpdk-testpmd -l 0-1 --no-pci "${mem[@]}" --file-prefix "bench-tpmd-$$" \
    --vdev net_null0 --vdev net_null1 --log-level=warning -- \
    --forward-mode=io --auto-start --stats-period 1 >"$work/testpmd.log" 2>&1 || true
  python3 - "$work/testpmd.log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
# Per-second blocks: one "Tx-pps" line per port. Sum ports per block, skip the first block
# (start-up) and the last (partial).
rates = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", text)]
blocks = [rates[i] + rates[i + 1] for i in range(0, len(rates) - 1, 2)]
mid = blocks[1:-1] or blocks
if not mid:
    print("testpmd     : no statistics (see its log)")
else:
    print(f"dpdk-testpmd: {sum(mid) / len(mid) / 1e6:7.2f} Mpps forwarded (io mode, mean of {len(mid)} one-second periods)")
PY
else
  echo "dpdk-testpmd not installed (apt-get install dpdk)"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

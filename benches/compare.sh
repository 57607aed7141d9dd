#!/usr/bin/env bash
# `make bench-compare`: the appliance side by side with dpdk-testpmd, natively (no Docker),
# on one vhost-user / virtio-user link.
#
#   dpdk-testpmd flowgen (CPU 0), net_vhost0 (server) --socket-- virtio_user0 (client), the DUT
#   (CPU 1), one-arm: the DUT sends every frame back out of the port it came in on, and the
#   generator counts what comes back (the "sink" figure).
#
# The DUTs, one at a time on the same link:
#   appliance  `appliance run`, one port with role "both", its worker alone on CPU 1 (EAL
#              lcores "0@0,1@1": the main lcore, which only serves the control socket, sits
#              on CPU 0 with the generator);
#   io         `dpdk-testpmd --forward-mode=io`: sends frames back untouched, the transport's
#              ceiling;
#   5tswap     `dpdk-testpmd --forward-mode=5tswap`: swaps MACs, IPs and ports, so it reads and
#              writes L2-L4 headers as a NAT does, without any state.
# Both testpmd DUTs use the same lcore layout as the appliance (main lcore on CPU 0, the
# forwarding lcore on CPU 1).
#
# The flows. DPDK 22.11's flowgen ignores --tx-ip and --eth-peer: every frame is
# 00:01:02:03:04:00 -> 00:01:02:03:04:01, UDP 10.254.0.0:1000 -> 10.253.0.0+i:1001, i < flows,
# 64 bytes. The appliance's port takes MAC 00:01:02:03:04:01 and the private prefix
# 10.254.0.0/32, so every flow is an egress session SNATed to 198.18.0.2 and sent to the
# gateway 198.18.0.1 (static neighbour 00:01:02:03:04:00, the generator). At 1 M flows one
# destination (i = 65536) is 10.254.0.0 itself and is dropped as private_destination.
#
# One run: start the generator, then the DUT; wait until frames come back; WARMUP seconds
# (the appliance creates its sessions in the first pass over the flows); then a window of SECS
# seconds sampled once a second. Runs are interleaved: for each repetition, every flow count,
# and for each flow count every DUT, so a slow moment of the shared machine is spread over
# all of them rather than falling on one DUT.
#
#   benches/compare.sh                                   1 K, 10 K, 1 M flows, 3 reps, 5 s
#   FLOWS="1000 1000000" REPS=2 SECS=3 benches/compare.sh
#   DUTS="io appliance" WARMUP=8 BENCH_OUT=/tmp/x benches/compare.sh
#
# Huge pages: every process uses --in-memory --single-file-segments (vhost-user needs shared
# file-backed memory in few regions). nr_hugepages is raised by BENCH_HUGEPAGES (256 = 512 MiB)
# for the run and lowered by as much afterwards, as docker/bench.sh does. hugetlbfs must be
# mounted (scripts/hugepages.sh): the appliance checks for it.
#
# Output: a table on stdout; under BENCH_OUT/<date-time>/ the per-second samples
# (samples.csv), one line per run (runs.csv), the table (table.txt) and every process's log.
set -euo pipefail
cd "$(dirname "$0")/.."

FLOWS=${FLOWS:-1000 10000 1000000}
REPS=${REPS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-5}
DUTS=${DUTS:-appliance io 5tswap}
BENCH_OUT=${BENCH_OUT:-/tmp/nva-bench-compare}
pages=${BENCH_HUGEPAGES:-256}
bin=${NVA_APPLIANCE:-$PWD/target/release/appliance}
# shellcheck source=benches/vhost-bench.sh
source benches/vhost-bench.sh
dut_mac=$VHOST_DUT_MAC

fail() {
  echo "bench-compare: $*" >&2
  exit 1
}

# --- What the run needs, checked before anything is started.
[[ $EUID -eq 0 ]] || fail "needs root (huge pages, EAL)"
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not found: apt-get install dpdk-dev (Debian ships it there)"
for c in python3 taskset flock stdbuf; do command -v "$c" >/dev/null || fail "$c not found"; done
(($(nproc) >= 2)) || fail "needs 2 CPUs (generator on CPU 0, DUT on CPU 1); this machine has $(nproc)"
grep -qs ' hugetlbfs ' /proc/mounts || fail "no hugetlbfs mounted: run scripts/hugepages.sh (make hugepages)"
[[ $SECS =~ ^[1-9][0-9]*$ && $REPS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] ||
  fail "SECS and REPS must be positive integers, WARMUP a non-negative one"
for d in $DUTS; do
  case $d in
    appliance) [[ -x $bin ]] || fail "no appliance binary at $bin: cargo build --release -p appliance (or make bench-compare)" ;;
    io | 5tswap) ;;
    *) fail "unknown DUT '$d' (appliance, io, 5tswap)" ;;
  esac
done
if command -v ovs-vswitchd >/dev/null && ovs-vswitchd --version 2>/dev/null | grep -q DPDK; then
  echo "OVS-DPDK: $(command -v ovs-vswitchd) has DPDK, but this script does not drive it yet; skipped"
else
  echo "OVS-DPDK: ovs-vswitchd with DPDK is not installed (openvswitch-switch-dpdk); skipped"
fi

exec 9>/run/lock/nva-bench-compare.lock
flock -n 9 || fail "another bench-compare is running"

out=$BENCH_OUT/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/logs"
work=$(mktemp -d /tmp/nva-bench-compare-run.XXXXXX)
sock=$work/vhost.sock
fifo=$work/testpmd.in
pids=()
raised=0

# Stops one process this script started: SIGINT (DPDK apps clean up on it), then SIGKILL
# after 5 s.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -INT "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench-compare: pid $pid did not stop on SIGINT, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

finish() {
  local pid now
  exec 7>&- 2>/dev/null || true
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  if ((raised)); then
    # Give back what was added (others may have changed the total meanwhile).
    now=$(cat /proc/sys/vm/nr_hugepages)
    echo $((now - raised)) > /proc/sys/vm/nr_hugepages || true
    echo "huge pages: gave back $raised pages (nr_hugepages $(cat /proc/sys/vm/nr_hugepages))"
  fi
  rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM

before=$(cat /proc/sys/vm/nr_hugepages)
echo $((before + pages)) > /proc/sys/vm/nr_hugepages || true
raised=$(($(cat /proc/sys/vm/nr_hugepages) - before))
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
echo "huge pages: raised nr_hugepages by $raised to $((before + raised)) for this run ($free free)"
# Generator and testpmd DUT: about 40 pages each; the appliance: memory_mb = 256.
((free >= 200)) || fail "only $free free huge pages, 200 needed (2 MiB each)"

# The CPU time (utime + stime, clock ticks) of each thread of process $1, one "tid ticks" a line.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
  done
}

# Rx-pps lines the generator has printed so far (one block a second, one port).
gen_blocks() { grep -ac "Rx-pps" "$1" || true; }

appliance_config() { # flows
  vhost_bench_config "$1" "$sock" nva-cmp-app "$work/control.sock" bench-compare
}

# One run: generator, DUT, warm-up, window; appends to samples.csv and runs.csv.
run_one() { # flows rep dut
  local flows=$1 rep=$2 dut=$3 tag="$1-$2-$3" gen dut_pid i g0 t0 t1 ok
  local glog=$out/logs/$tag.gen.log dlog=$out/logs/$tag.dut.log
  rm -f "$sock" "$work"/*.json "$work"/ticks.* "$work/control.sock"
  # The generator first: it creates the socket (vhost-user server). taskset keeps its
  # non-EAL threads on CPU 0 too; stdbuf makes it write each line of its per-second stats
  # at once (block-buffered, the log lags by several seconds and the window's samples would
  # be counted from the wrong second).
  taskset -c 0 stdbuf -oL dpdk-testpmd --lcores 0@0,1@0 --in-memory --single-file-segments --no-pci \
    --file-prefix nva-cmp-gen --log-level=warning --vdev "net_vhost0,iface=$sock,queues=1" -- \
    --forward-mode=flowgen --flowgen-flows="$flows" --nb-cores=1 --rxq=1 --txq=1 \
    --rxd=1024 --txd=1024 --total-num-mbufs=32768 --stats-period 1 --auto-start \
    > "$glog" 2>&1 &
  gen=$!
  pids+=("$gen")
  for i in $(seq 1 100); do [[ -S $sock ]] && break; sleep 0.1; done
  [[ -S $sock ]] || { tail -20 "$glog"; fail "the generator made no vhost-user socket ($glog)"; }

  if [[ $dut == appliance ]]; then
    appliance_config "$flows" > "$work/appliance.toml"
    cp "$work/appliance.toml" "$out/logs/$tag.appliance.toml"
    "$bin" run --config "$work/appliance.toml" > "$dlog" 2>&1 &
    dut_pid=$!
  else
    # Interactive, with commands through a FIFO: "clear fwd stats all" at the window's start
    # and "show fwd stats all" at its end give the window's cycles per packet
    # (--record-core-cycles: cycles of the bursts that moved packets).
    rm -f "$fifo" && mkfifo "$fifo"
    exec 7<>"$fifo"
    dpdk-testpmd --lcores 0@0,1@1 --in-memory --single-file-segments --no-pci \
      --file-prefix nva-cmp-dut --log-level=warning \
      --vdev "virtio_user0,path=$sock,queue_size=1024,mac=$dut_mac" -- -i \
      --forward-mode="$dut" --port-topology=loop --nb-cores=1 --rxq=1 --txq=1 \
      --rxd=1024 --txd=1024 --total-num-mbufs=32768 --record-core-cycles --auto-start \
      < "$fifo" > "$dlog" 2>&1 &
    dut_pid=$!
  fi
  pids+=("$dut_pid")

  # Wait until frames come back to the generator (the DUT is up and forwarding).
  ok=0
  for i in $(seq 1 30); do
    sleep 1
    kill -0 "$dut_pid" 2>/dev/null || break
    if awk '/Rx-pps:/ {v = $2} END {exit !(v > 0)}' "$glog"; then ok=1 && break; fi
  done
  if ((!ok)); then
    echo "--- $dlog"; tail -20 "$dlog"; echo "--- $glog"; tail -8 "$glog"
    fail "no frames came back to the generator with DUT $dut at $flows flows"
  fi
  sleep "$WARMUP"

  # The window.
  g0=$(gen_blocks "$glog")
  if [[ $dut == appliance ]]; then
    taskset -c 0 "$bin" stats --socket "$work/control.sock" --json > "$work/s0.json" ||
      { tail -20 "$dlog"; fail "the appliance did not answer on its control socket"; }
  else
    echo "clear fwd stats all" >&7
    echo "show port stats all" >&7 # sets the base of testpmd's "since last show" rates
  fi
  thread_ticks "$dut_pid" > "$work/ticks.0"
  t0=$(date +%s.%N)
  for i in $(seq 1 "$SECS"); do
    # Sample at t0 + i s, whatever the previous sample took.
    sleep "$(awk -v t="$t0" -v i="$i" -v n="$(date +%s.%N)" 'BEGIN {d = t + i - n; print (d > 0 ? d : 0)}')"
    if [[ $dut == appliance ]]; then
      taskset -c 0 "$bin" stats --socket "$work/control.sock" --json > "$work/s$i.json" ||
        fail "the appliance stopped answering (see $dlog)"
    else
      echo "show port stats all" >&7
    fi
  done
  thread_ticks "$dut_pid" > "$work/ticks.1"
  t1=$(date +%s.%N)
  [[ $dut == appliance ]] || echo "show fwd stats all" >&7
  # The generator's SECS one-second blocks from the first one printed after the window's
  # start (it covers the window's first second, give or take the print's phase).
  for i in $(seq 1 30); do
    (($(gen_blocks "$glog") >= g0 + SECS)) && break
    sleep 0.2
  done

  if [[ $dut == appliance ]]; then
    stop_pid "$dut_pid"
  else
    sleep 0.3
    echo "quit" >&7
    for i in $(seq 1 50); do kill -0 "$dut_pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$dut_pid"
    exec 7>&-
  fi
  stop_pid "$gen"
  pids=()

  python3 - "$work" "$out" "$flows" "$rep" "$dut" "$SECS" "$g0" "$t0" "$t1" "$glog" "$dlog" <<'PY'
import json, re, statistics, sys
work, out, flows, rep, dut = sys.argv[1:6]
secs, g0 = int(sys.argv[6]), int(sys.argv[7])
t0, t1 = float(sys.argv[8]), float(sys.argv[9])
glog = open(sys.argv[10], errors="replace").read()
dlog = open(sys.argv[11], errors="replace").read()

gen_rx = [int(x) / 1e6 for x in re.findall(r"Rx-pps:\s+(\d+)", glog)][g0:g0 + secs]
gen_tx = [int(x) / 1e6 for x in re.findall(r"Tx-pps:\s+(\d+)", glog)][g0:g0 + secs]

# The DUT's busiest thread (its polling lcore) over the window: share of one CPU.
def ticks(name):
    return {l.split()[0]: int(l.split()[1]) for l in open(f"{work}/{name}") if len(l.split()) == 2}
a, b = ticks("ticks.0"), ticks("ticks.1")
on_cpu = min(1.0, max((b[t] - a.get(t, 0) for t in b), default=0) / 100 / max(t1 - t0, 1e-9))

dut_mpps, cycles, sessions = [], [], ""
if dut == "appliance":
    snaps = [json.load(open(f"{work}/s{i}.json")) for i in range(secs + 1)]
    tot = lambda s, k: sum(w[k] for w in s["workers"])
    for x, y in zip(snaps, snaps[1:]):
        dt = y["uptime_secs"] - x["uptime_secs"]
        pk = tot(y, "packets") - tot(x, "packets")
        dut_mpps.append(pk / dt / 1e6)
        cycles.append((tot(y, "busy_cycles") - tot(x, "busy_cycles")) / pk if pk else None)
    sessions = snaps[-1]["sessions"]["created_total"]
    window_cycles = statistics.median([c for c in cycles if c is not None] or [float("nan")])
else:
    # After "clear fwd stats all": one "show port stats all" to set the base, then one a
    # second; then "show fwd stats all" with the window's cycles per packet.
    dut_mpps = [int(x) / 1e6 for x in re.findall(r"Rx-pps:\s+(\d+)", dlog)][1:1 + secs]
    m = re.search(r"CPU cycles/packet=([\d.]+)", dlog)
    window_cycles = float(m.group(1)) if m else float("nan")
    cycles = [None] * secs

def med(v):
    return statistics.median(v) if v else float("nan")
def fmt(v):
    return "" if v is None or v != v else f"{v:.4f}"

with open(f"{out}/samples.csv", "a") as f:
    for i in range(secs):
        row = [flows, rep, dut, i + 1,
               fmt(gen_rx[i] if i < len(gen_rx) else None), fmt(gen_tx[i] if i < len(gen_tx) else None),
               fmt(dut_mpps[i] if i < len(dut_mpps) else None), fmt(cycles[i] if i < len(cycles) else None)]
        f.write(",".join(map(str, row)) + "\n")
load = open("/proc/loadavg").read().split()[0]
with open(f"{out}/runs.csv", "a") as f:
    f.write(",".join(map(str, [flows, rep, dut, fmt(med(gen_rx)), fmt(med(gen_tx)), fmt(med(dut_mpps)),
                               fmt(window_cycles), f"{on_cpu:.3f}", sessions, load])) + "\n")
print(f"  {int(flows):>8} flows  rep {rep}  {dut:<9}  sink {med(gen_rx):6.2f} Mpps  sent {med(gen_tx):6.2f}"
      f"  DUT {med(dut_mpps):6.2f}  cycles/pkt {window_cycles:7.0f}  DUT on CPU {100 * on_cpu:3.0f}%"
      + (f"  sessions {sessions}" if sessions != "" else ""))
PY
}

echo "flows,rep,dut,second,sink_mpps,gen_tx_mpps,dut_mpps,dut_cycles_per_pkt" > "$out/samples.csv"
echo "flows,rep,dut,sink_mpps,gen_tx_mpps,dut_mpps,dut_cycles_per_pkt,dut_on_cpu,sessions,load1" > "$out/runs.csv"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
echo "bench-compare: FLOWS=\"$FLOWS\" REPS=$REPS SECS=$SECS WARMUP=$WARMUP DUTS=\"$DUTS\"; results in $out"
for rep in $(seq 1 "$REPS"); do
  for flows in $FLOWS; do
    for dut in $DUTS; do
      run_one "$flows" "$rep" "$dut"
    done
  done
done
elapsed=$(($(date +%s) - start))

python3 - "$out/runs.csv" "$SECS" "$WARMUP" "$elapsed" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY' | tee "$out/table.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
secs, warmup, elapsed, load0, load1 = sys.argv[2:7]
f = lambda r, k: float(r[k]) if r[k] not in ("", "nan") else None
io = {(r["flows"], r["rep"]): f(r, "sink_mpps") for r in rows if r["dut"] == "io"}

def spread(v, p):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return f"{statistics.median(v):.{p}f} [{min(v):.{p}f}-{max(v):.{p}f}]"

print()
print(f"bench-compare: testpmd flowgen (CPU 0) -> vhost-user -> DUT (virtio-user, CPU 1) -> back;")
print(f"64-byte UDP; {warmup} s warm-up, {secs} s window sampled per second; {elapsed} s in all;")
print(f"load before {load0}, after {load1}. Figures: median [min-max] over repetitions.")
hdr = ("flows", "DUT", "runs", "sink Mpps", "x io", "cycles/pkt", "DUT on CPU")
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
keys = []
for r in rows:
    if (r["flows"], r["dut"]) not in keys:
        keys.append((r["flows"], r["dut"]))
keys.sort(key=lambda k: int(k[0]))
for flows, dut in keys:
    rs = [r for r in rows if r["flows"] == flows and r["dut"] == dut]
    ratio = [f(r, "sink_mpps") / io[(flows, r["rep"])] for r in rs
             if io.get((flows, r["rep"])) and f(r, "sink_mpps") is not None]
    cells = (f"{int(flows):,}", dut, str(len(rs)), spread([f(r, "sink_mpps") for r in rs], 2),
             spread(ratio, 2) if dut != "io" else "1", spread([f(r, "dut_cycles_per_pkt") for r in rs], 0),
             spread([100 * f(r, "dut_on_cpu") for r in rs], 0) + " %")
    print("| " + " | ".join(cells) + " |")
print("""
sink Mpps   what came back to the generator: per run the median of its per-second Rx-pps
x io        sink Mpps / io's sink Mpps in the same repetition (io: the transport's ceiling)
cycles/pkt  the DUT's busy TSC cycles per packet over the window (appliance: workers'
            busy_cycles / packets from `appliance stats`, median of the seconds; testpmd:
            --record-core-cycles, "show fwd stats all" after "clear fwd stats all"). TSC cycles
            keep counting while another process has the core: see DUT on CPU
DUT on CPU  share of the window the DUT's busiest thread (its polling lcore) was on a CPU
            (/proc); below 100 % the machine's other work took part of CPU 1""")
PY
echo "samples: $out/samples.csv, runs: $out/runs.csv, logs: $out/logs/"

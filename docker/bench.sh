#!/usr/bin/env bash
# `make docker-bench`: throughput between two containers over vhost-user / virtio-user.
#
#   [nva-docker-gen] dpdk-testpmd flowgen, net_vhost0 (server) --socket on a shared folder--
#       virtio_user0 (client) [nva-docker-appliance] one-arm port, role "both"
#
# The generator (CPU 0) sends 64-byte UDP frames; the appliance (control on CPU 0, its one
# worker alone on CPU 1) translates them and sends them back out of the same port to its
# gateway, which is the generator again: testpmd counts what comes back.
#
# What the flows are. DPDK 22.11's flowgen ignores --tx-ip and --eth-peer: every frame is
# 00:01:02:03:04:00 -> 00:01:02:03:04:01, UDP 10.254.0.0:1000 -> 10.253.0.0+i:1001, for i
# in [0, FLOWS). So the appliance's port takes MAC 00:01:02:03:04:01, its only private
# prefix is 10.254.0.0/32 (the generator's source), and every flow is egress: a new session
# for each destination, SNAT to 198.18.0.2:1000 (the port's own address, port kept),
# forwarded to the gateway 198.18.0.1 (static neighbour 00:01:02:03:04:00). The
# destinations run from 10.253.0.0 upwards (1 K flows: to 10.253.3.231; 1 M: to
# 11.12.66.63), none private except one: with 1 M flows, i = 65536 is 10.254.0.0, the source
# itself, which the appliance drops as private_destination (1 flow in 1 M: 999 999 sessions).
# The first pass over the flows creates the sessions; the figures are from a window after
# WARMUP seconds, when every packet belongs to an established session.
#
# Figures: Mpps the appliance processed (its worker's packet count) and the worker's busy
# cycles per packet (appliance stats: busy_cycles / packets), over 2-second windows: the
# best window (fewest cycles per packet: the machine is shared) and the median one; and Mpps
# testpmd sent and got back (the mean of its per-second stats over the whole window).
#
# Memory: both processes use huge pages, --in-memory --single-file-segments (vhost-user
# needs shared, file-backed memory in few regions). This script raises nr_hugepages by
# BENCH_HUGEPAGES (256 pages = 512 MiB) for the run and gives them back afterwards, so the
# 512 pages other tests expect stay free for them.
#   docker/bench.sh                  1 K and 1 M flows, 10 s of windows each
#   FLOWS="1000" SECS=20 docker/bench.sh
#   BENCH_SHARES=8192 docker/bench.sh  both containers' CPU weight (docker --cpu-shares, default
#                                    1024): on a machine busy with other work their poll loops
#                                    keep more of their cores (and slow that work). Nice values
#                                    do not help: the scheduler shares CPU between cgroups first
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/lib.sh
source docker/lib.sh
# shellcheck source=benches/vhost-bench.sh
source benches/vhost-bench.sh
FLOWS=${FLOWS:-1000 1000000}
SECS=${SECS:-10}
WARMUP=${WARMUP:-5}
pages=${BENCH_HUGEPAGES:-256}
work=$DK_RUN/bench
raised=0

finish() {
  dk_down
  dk_engine_down
  if ((raised)); then
    # Give back what was added (others may have changed the total meanwhile).
    local now
    now=$(cat /proc/sys/vm/nr_hugepages)
    echo $((now - raised)) > /proc/sys/vm/nr_hugepages || true
    echo "huge pages: gave back $raised pages (nr_hugepages $(cat /proc/sys/vm/nr_hugepages))"
  fi
  [[ ${KEEP_LOGS:-0} == 1 ]] || rm -rf "$work"
}
dk_lock
trap finish EXIT
dk_deps
dk_engine_up
dk_images
dk_build trafficgen docker/trafficgen.Dockerfile

before=$(cat /proc/sys/vm/nr_hugepages)
echo $((before + pages)) > /proc/sys/vm/nr_hugepages
raised=$(($(cat /proc/sys/vm/nr_hugepages) - before))
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
echo "huge pages: raised nr_hugepages by $raised to $((before + raised)) for this run ($free free)"
((raised > 0)) || dk_fail "could not reserve $pages more huge pages"

results=()
for flows in $FLOWS; do
  echo
  echo "== $flows flows"
  dk_down
  rm -rf "$work" && mkdir -p "$work/vhost"
  vhost_bench_config "$flows" /run/vhost/nva.sock nva-bench /run/appliance/control.sock \
    docker-bench > "$work/appliance.toml"
  # The generator first: it creates the socket (vhost-user server) the appliance connects to.
  shares=()
  [[ -n ${BENCH_SHARES:-} ]] && shares=(--cpu-shares "$BENCH_SHARES")
  dk create --label nva-docker=1 --name "${DK}gen" --network none "${shares[@]}" \
    --cap-drop ALL --cap-add SYS_NICE --cap-add IPC_LOCK -v "$work/vhost:/run/vhost" \
    nva-docker/trafficgen --lcores 0@0,1@0 --in-memory --single-file-segments --no-pci \
    --file-prefix nva-gen --vdev "net_vhost0,iface=/run/vhost/nva.sock,queues=1" -- \
    --forward-mode=flowgen --flowgen-flows="$flows" --nb-cores=1 --rxq=1 --txq=1 \
    --rxd=1024 --txd=1024 --total-num-mbufs=32768 --stats-period 1 --auto-start >/dev/null
  dk start "${DK}gen" >/dev/null
  for _ in $(seq 1 50); do [[ -S $work/vhost/nva.sock ]] && break; sleep 0.2; done
  [[ -S $work/vhost/nva.sock ]] || { dk logs "${DK}gen" | tail -20; dk_fail "no vhost-user socket from the generator"; }
  dk create --label nva-docker=1 --name "${DK}appliance" --network none "${shares[@]}" \
    --cap-drop ALL --cap-add SYS_NICE --cap-add IPC_LOCK "${DK_HUGETLBFS[@]}" -v "$work/vhost:/run/vhost" \
    -v "$work/appliance.toml:/etc/nva/appliance.toml:ro" nva-docker/appliance >/dev/null
  dk start "${DK}appliance" >/dev/null
  sleep "$WARMUP"
  app_pid=$(dk inspect -f '{{.State.Pid}}' "${DK}appliance")
  # A snapshot: appliance stats, and the CPU time of each of the appliance's threads
  # (utime + stime, in clock ticks) from the host's /proc, for its worker's on-CPU share.
  snapshot() {
    dk_ctr appliance appliance stats --config /run/nva/appliance.toml --json > "$work/s$1.json" || return 1
    local t
    for t in /proc/"$app_pid"/task/*; do
      echo "${t##*/} $(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)"
    done > "$work/t$1.txt"
  }
  if ! snapshot 1; then
    dk logs "${DK}appliance" 2>&1 | tail -20
    dk_fail "the appliance did not answer"
  fi
  t0=$(dk logs "${DK}gen" 2>/dev/null | grep -c "Tx-pps" || true)
  # Windows of 2 s: the machine is shared, the best window is the one least disturbed.
  for i in $(seq 1 $((SECS / 2))); do
    sleep 2
    snapshot $((i + 1))
  done
  dk logs "${DK}gen" > "$work/gen.log" 2>/dev/null
  t1=$(grep -c "Tx-pps" "$work/gen.log" || true)
  dk stop "${DK}appliance" >/dev/null
  line=$(python3 - "$work" "$((SECS / 2 + 1))" "$t0" "$t1" "$flows" <<'PY'
import json, re, statistics, sys
work, n_snap = sys.argv[1], int(sys.argv[2])
snaps = [json.load(open(f"{work}/s{i}.json")) for i in range(1, n_snap + 1)]
text = open(f"{work}/gen.log", errors="replace").read()
t0, t1, flows = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def tot(s, key):
    return sum(w[key] for w in s["workers"])

ticks = [dict(l.split() for l in open(f"{work}/t{i}.txt")) for i in range(1, n_snap + 1)]
TICK = 100  # USER_HZ


def window(i):
    """Mpps processed, Mpps sent, busy cycles per packet, the worker's busy share, the
    worker thread's on-CPU share, and busy cycles per packet counted on the CPU only."""
    a, b = snaps[i], snaps[i + 1]
    secs = b["uptime_secs"] - a["uptime_secs"]
    pk = tot(b, "packets") - tot(a, "packets")
    cy = tot(b, "busy_cycles") - tot(a, "busy_cycles")
    idle = tot(b, "idle_cycles") - tot(a, "idle_cycles")
    tx = sum(p["tx_packets"] for p in b["ports"]) - sum(p["tx_packets"] for p in a["ports"])
    # The worker polls without sleeping: of the appliance's threads, it used the most CPU.
    cpu = max(int(ticks[i + 1][t]) - int(ticks[i].get(t, 0)) for t in ticks[i + 1]) / TICK / secs
    cpu = min(cpu, 1.0)
    # TSC cycles tick on while another process has the core; the busy ones on the CPU are
    # busy x on-CPU share (preemption falls on busy and idle iterations alike).
    return (pk / secs / 1e6, tx / secs / 1e6, cy / max(pk, 1), cy / max(cy + idle, 1), cpu,
            cy * cpu / max(pk, 1))


wins = [window(i) for i in range(len(snaps) - 1)]
best = min(wins, key=lambda w: w[5])
med = sorted(wins, key=lambda w: w[5])[len(wins) // 2]
a, b = snaps[0], snaps[-1]
def by_reason(s):
    d = s["drops"]
    if isinstance(d, dict):
        d = d.get("by_reason", d)
    if isinstance(d, list):
        d = {x.get("reason"): x.get("count", x.get("packets", 0)) for x in d}
    return {k: v for k, v in d.items() if isinstance(v, int)}
da, db = by_reason(a), by_reason(b)
drops = {k: v - da.get(k, 0) for k, v in db.items() if v - da.get(k, 0)}
# testpmd prints Rx-pps and Tx-pps once a second: the mean of the seconds printed inside
# the window (the first one started before it).
rx = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", text)][t0 + 1:t1]
txg = [int(x) for x in re.findall(r"Tx-pps:\s+(\d+)", text)][t0 + 1:t1]
n = max(1, min(len(rx), len(txg)))
gen_tx, gen_rx = sum(txg[:n]) / n / 1e6, sum(rx[:n]) / n / 1e6
hz = b["workers"][0]["tsc_hz"]
print(f"{flows}|{best[0]:.2f} / {med[0]:.2f}|{gen_tx:.2f} / {gen_rx:.2f}|"
      f"{best[2]:.0f} / {med[2]:.0f}|{100 * best[3]:.0f}% / {100 * med[3]:.0f}%|"
      f"{100 * best[4]:.0f}% / {100 * med[4]:.0f}%|{best[5]:.0f} / {med[5]:.0f}|{hz / med[5] / 1e6:.2f}|"
      f"{b['sessions']['created_total']}|{drops or 'none'}")
PY
)
  echo "$line"
  results+=("$line")
done

echo
echo "== docker-bench: testpmd flowgen -> vhost-user -> appliance (virtio-user, one worker on CPU 1)"
echo "   -> back to testpmd; 64-byte UDP; egress flows 10.254.0.0:1000 -> 10.253.0.0+i:1001"
echo "   (i < flows), SNAT to 198.18.0.2; established sessions (after ${WARMUP} s), ${SECS} s window;"
echo "   huge pages (--in-memory); load $(cut -d' ' -f1-3 /proc/loadavg); cpu-shares ${BENCH_SHARES:-1024 (default)}"
cat <<'EOF'
   Each figure a / b: the best / the median 2-s window, ranked by on-CPU cycles per packet.
   appliance Mpps   packets the worker processed (and sent back: see drops)
   testpmd          Mpps it sent / got back, mean of its per-second stats over the window
   TSC cycles/pkt   the worker's busy cycles per packet as appliance stats counts them (TSC:
                    they include time another process had the core)
   busy             busy share of the worker's loop (below 100 %: the generator was the limit)
   on CPU           share of the window the worker thread ran (/proc; the machine is shared)
   cycles/pkt       busy cycles per packet on the CPU: TSC cycles/pkt x on-CPU share
   ceiling          TSC Hz / median on-CPU cycles per packet: one worker core's capacity
EOF
row='| %9s | %14s | %13s | %14s | %10s | %10s | %12s | %8s | %9s | %s\n'
# shellcheck disable=SC2059 # one format for the header and the rows
printf "$row" flows "appliance Mpps" "testpmd Mpps" "TSC cycles/pkt" busy "on CPU" "cycles/pkt" "ceiling" sessions "drops in the window"
for r in "${results[@]}"; do
  IFS='|' read -r f m g c b cpu oc cap n d <<<"$r"
  # shellcheck disable=SC2059
  printf "$row" "$f" "$m" "$g" "$c" "$b" "$cpu" "$oc" "$cap" "$n" "$d"
done

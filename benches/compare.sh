#!/usr/bin/env bash
# `make bench-compare`: the appliance side by side with dpdk-testpmd and OVS-DPDK, natively
# (no Docker), on one vhost-user / virtio-user link.
#
#   dpdk-testpmd flowgen (CPU 0), net_vhost0 (server) --socket-- virtio_user0 (client), the DUT
#   (CPU 1), one-arm: the DUT sends every frame back out of the port it came in on, and the
#   generator counts what comes back (the "sink" figure).
#   The transport is the same for every DUT: virtio-user with packed rings and the driver's
#   vector paths (VHOST_VIRTIO_OPTS and VHOST_EAL_EXTRA in benches/vhost-bench.sh, which say
#   why and how to get virtio-user's defaults back).
#
# The DUTs, one at a time on the same link:
#   appliance  `appliance run`, one port with role "both", its worker alone on CPU 1 (EAL
#              lcores "0@0,1@1": the main lcore, which only serves the control socket, sits
#              on CPU 0 with the generator);
#   io         `dpdk-testpmd --forward-mode=io`: sends frames back untouched, the transport's
#              ceiling;
#   5tswap     `dpdk-testpmd --forward-mode=5tswap`: swaps MACs, IPs and ports, so it reads and
#              writes L2-L4 headers as a NAT does, without any state;
#   ovs        Open vSwitch 3.1 with DPDK (Debian's openvswitch-switch-dpdk), a private
#              instance: its own ovsdb-server, database and run folder under this script's
#              temporary folder, nothing of the system's service touched. One netdev bridge,
#              one dpdk port (the same virtio-user device string as the appliance's), its PMD
#              thread on CPU 1 and every other thread on CPU 0; OpenFlow rules that do what the
#              appliance does: conntrack SNAT of every flow to 198.18.0.2 (zone 1) and the
#              frame back out of in_port with the appliance's MACs (ovs_flows below).
# Both testpmd DUTs use the same lcore layout as the appliance (main lcore on CPU 0, the
# forwarding lcore on CPU 1).
#
# The flows. DPDK 22.11's flowgen ignores --tx-ip and --eth-peer: every frame is
# 00:01:02:03:04:00 -> 00:01:02:03:04:01, UDP 10.254.0.0:1000 -> 10.253.0.0+i:1001, i < flows,
# 64 bytes, UDP checksum 0 (none). The appliance's port takes MAC 00:01:02:03:04:01 and the
# private prefix 10.254.0.0/32, so every flow is an egress session SNATed to 198.18.0.2 and
# sent to the gateway 198.18.0.1 (static neighbour 00:01:02:03:04:00, the generator). At 1 M
# flows one destination (i = 65536) is 10.254.0.0 itself and is dropped as
# private_destination.
#
# One run: start the generator, then the DUT; wait until frames come back; WARMUP seconds
# (the appliance and OVS create their sessions in the first pass over the flows); then a
# window of SECS seconds sampled once a second. Runs are interleaved: for each repetition,
# every flow count, and for each flow count every DUT, so a slow moment of the shared
# machine is spread over all of them rather than falling on one DUT.
#
# After the window of a DUT that translates (appliance, ovs), SNAT is checked at the sink:
# dpdk-dumpcap attaches to the generator as a DPDK secondary process and records CAPTURE_KB
# of the frames its port receives from anyone but itself (source MAC not the generator's);
# every one must carry IPv4 source 198.18.0.2, the DUT's and the generator's MACs, a valid
# IP header checksum and a valid (or absent, as sent) UDP checksum, and there must be at
# least 100. A run that fails this fails the whole script, after the table. The capture
# happens after the window, so it does not touch the figures.
#
# Which side is the limit: the DUT's busy share (cycles of polls that moved packets over all
# cycles of the window). At 95 % or more the DUT is the bottleneck; below, it waited for
# frames, so the generator (one core that sends and also counts what comes back) and the
# link are - unless the DUT's or the generator's polling thread had less than 90 % of its
# CPU (/proc), when the machine's other work is.
#
#   benches/compare.sh                                   1 K, 10 K, 1 M flows, 3 reps, 5 s
#   FLOWS="1000 1000000" REPS=2 SECS=3 benches/compare.sh
#   DUTS="io appliance ovs" WARMUP=8 BENCH_OUT=/tmp/x benches/compare.sh
#
# Huge pages: the DUTs use --in-memory --single-file-segments (vhost-user needs shared
# file-backed memory in few regions); the generator uses --file-prefix nva-cmp-gen instead
# of --in-memory so that dpdk-dumpcap can attach to it, and its files are removed after each
# run. nr_hugepages is raised by BENCH_HUGEPAGES (256 = 512 MiB) for the run and lowered by
# as much afterwards, as docker/bench.sh does. hugetlbfs must be mounted
# (scripts/hugepages.sh): the appliance checks for it.
#
# Output: a progress line per run on stderr, a table on stdout; under BENCH_OUT/<date-time>/
# the per-second samples (samples.csv), one line per run (runs.csv), the table (table.txt),
# the chart (compare.svg, drawn by benches/compare-plot), every process's log and each SNAT
# capture (logs/*.pcapng).
set -euo pipefail
cd "$(dirname "$0")/.."

ovs_vswitchd=${OVS_VSWITCHD:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
ovs_schema=${OVS_SCHEMA:-/usr/share/openvswitch/vswitch.ovsschema}
FLOWS=${FLOWS:-1000 10000 1000000}
REPS=${REPS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-5}
if [[ -z ${DUTS:-} ]]; then
  DUTS="appliance io 5tswap"
  if [[ -x $ovs_vswitchd ]]; then
    DUTS+=" ovs"
  else
    echo "OVS-DPDK: $ovs_vswitchd not installed (apt-get install openvswitch-switch-dpdk, or" \
      "make bench-compare); DUTS is \"$DUTS\""
  fi
fi
CAPTURE_KB=${CAPTURE_KB:-256}
BENCH_OUT=${BENCH_OUT:-/tmp/nva-bench-compare}
pages=${BENCH_HUGEPAGES:-256}
bin=${NVA_APPLIANCE:-$PWD/target/release/appliance}
plot=${NVA_COMPARE_PLOT:-$PWD/target/release/compare-plot}
# shellcheck source=benches/vhost-bench.sh
source benches/vhost-bench.sh
dut_mac=$VHOST_DUT_MAC
gen_mac=$VHOST_GEN_MAC
snat_ip=$VHOST_DUT_IP
gen_prefix=nva-cmp-gen
# The DUT is the bottleneck when it spends this share of its cycles moving packets.
busy_limit=0.95

fail() {
  echo "bench-compare: $*" >&2
  exit 1
}

translates() { [[ $1 == appliance || $1 == ovs ]]; }

# --- What the run needs, checked before anything is started.
[[ $EUID -eq 0 ]] || fail "needs root (huge pages, EAL)"
command -v dpdk-testpmd >/dev/null || fail "dpdk-testpmd not found: apt-get install dpdk-dev (Debian ships it there)"
for c in python3 taskset flock stdbuf ldd; do command -v "$c" >/dev/null || fail "$c not found"; done
(($(nproc) >= 2)) || fail "needs 2 CPUs (generator on CPU 0, DUT on CPU 1); this machine has $(nproc)"
grep -qs ' hugetlbfs ' /proc/mounts || fail "no hugetlbfs mounted: run scripts/hugepages.sh (make hugepages)"
[[ $SECS =~ ^[1-9][0-9]*$ && $REPS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ && $CAPTURE_KB =~ ^[1-9][0-9]*$ ]] ||
  fail "SECS, REPS and CAPTURE_KB must be positive integers, WARMUP a non-negative one"
check_snat=0
for d in $DUTS; do
  case $d in
    appliance) [[ -x $bin ]] || fail "no appliance binary at $bin: cargo build --release -p appliance (or make bench-compare)" ;;
    io | 5tswap) ;;
    ovs)
      [[ -x $ovs_vswitchd ]] ||
        fail "DUT ovs: no $ovs_vswitchd: apt-get install openvswitch-switch-dpdk (make bench-compare installs it), or set OVS_VSWITCHD"
      "$ovs_vswitchd" --version 2>/dev/null | grep -q DPDK || fail "DUT ovs: $ovs_vswitchd is not built with DPDK"
      for c in ovsdb-tool ovsdb-server ovs-vsctl ovs-ofctl ovs-appctl; do
        command -v "$c" >/dev/null || fail "DUT ovs: $c not found (Debian: openvswitch-switch, openvswitch-common)"
      done
      [[ -r $ovs_schema ]] || fail "DUT ovs: no database schema at $ovs_schema (Debian: openvswitch-common), or set OVS_SCHEMA"
      ;;
    *) fail "unknown DUT '$d' (appliance, io, 5tswap, ovs)" ;;
  esac
  if translates "$d"; then check_snat=1; fi
done
if ((check_snat)); then
  command -v dpdk-dumpcap >/dev/null || fail "dpdk-dumpcap not found (Debian: dpdk): it checks SNAT at the sink"
fi
# DPDK names a mempool's driver by its index in a table each process fills in the order its
# drivers register (DPDK bug 1073). dpdk-testpmd links librte_mempool_dpaa, dpdk-dumpcap does
# not, so their tables differ and the generator, copying frames into dumpcap's pool, called
# dpaa2's allocator and crashed. Loading the same mempool drivers first into dumpcap makes the
# tables agree.
dumpcap_preload=$(ldd "$(command -v dpdk-testpmd)" | awk '/librte_mempool_/ {print $3}' | paste -sd: -)

exec 9>/run/lock/nva-bench-compare.lock
flock -n 9 || fail "another bench-compare is running"

out=$BENCH_OUT/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/logs"
work=$(mktemp -d /tmp/nva-bench-compare-run.XXXXXX)
sock=$work/vhost.sock
fifo=$work/testpmd.in
ovs_dir=$work/ovs
pids=()
raised=0

# Stops one process this script started: SIGINT (DPDK apps clean up on it; OVS wants
# SIGTERM, as its daemons leave a signal ignored that was ignored when they started, which
# SIGINT is for background jobs of a script), then SIGKILL after 5 s.
stop_pid() { # pid [signal]
  local pid=$1 sig=${2:-INT} i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench-compare: pid $pid did not stop on SIG$sig, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# The generator's DPDK files (it runs with a file prefix, not --in-memory, for dumpcap):
# its huge page files on every hugetlbfs mount and its runtime folder.
gen_cleanup() {
  local mnt
  while read -r mnt; do
    rm -f "$mnt/${gen_prefix}map_"*
  done < <(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts)
  rm -rf "/var/run/dpdk/$gen_prefix"
}

finish() {
  local pid now
  exec 7>&- 2>/dev/null || true
  # OVS first (SIGTERM), then the rest; only what this script started.
  for pid in "${!ovs_pids[@]}"; do stop_pid "$pid" TERM; done
  for pid in "${pids[@]}"; do stop_pid "$pid"; done
  gen_cleanup
  if [[ " $DUTS " == *" ovs "* ]]; then rm -rf /var/run/dpdk/nva-cmp-ovs; fi
  if ((raised)); then
    # Give back what was added (others may have changed the total meanwhile).
    now=$(cat /proc/sys/vm/nr_hugepages)
    echo $((now - raised)) > /proc/sys/vm/nr_hugepages || true
    echo "huge pages: gave back $raised pages (nr_hugepages $(cat /proc/sys/vm/nr_hugepages))"
  fi
  rm -rf "$work"
}
declare -A ovs_pids=()
trap finish EXIT
trap 'exit 130' INT TERM

before=$(cat /proc/sys/vm/nr_hugepages)
echo $((before + pages)) > /proc/sys/vm/nr_hugepages || true
raised=$(($(cat /proc/sys/vm/nr_hugepages) - before))
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
echo "huge pages: raised nr_hugepages by $raised to $((before + raised)) for this run ($free free)"
# Generator and testpmd DUT: about 45 pages each; the appliance: memory_mb = 256; OVS:
# dpdk-socket-mem 128 (64 pages).
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

# --- OVS: a private instance, everything under $ovs_dir (the OVS_* variables point its
# tools there too: the bridge's OpenFlow socket, br0.mgmt, is made in OVS_RUNDIR).
ovs_env=(env OVS_RUNDIR="$ovs_dir" OVS_DBDIR="$ovs_dir" OVS_LOGDIR="$ovs_dir" OVS_SYSCONFDIR="$ovs_dir")
vsctl() { "${ovs_env[@]}" ovs-vsctl --db="unix:$ovs_dir/db.sock" "$@"; }
ofctl() { "${ovs_env[@]}" ovs-ofctl "$@"; }
appctl() { "${ovs_env[@]}" taskset -c 0 ovs-appctl -t "$ovs_dir/ovs-vswitchd.ctl" "$@"; }

# What the appliance does, in OpenFlow. Table 0 sends UDP through conntrack (zone 1) with
# `nat`, which applies the translation of a connection that has one. OVS 3.1's userspace
# conntrack calls a UDP packet +new until it sees a reply (lib/conntrack-other.c), and this
# benchmark sends none, so "new" cannot tell the first packet of a flow from the rest: the
# +snat flag can (the packet was translated by an existing connection). Only a packet
# without a connection is committed with the SNAT; all of them leave by in_port with the
# appliance's MACs.
ovs_flows() {
  local macs="mod_dl_src:$dut_mac,mod_dl_dst:$gen_mac,in_port"
  cat <<FLOWS
table=0,priority=10,udp,ct_state=-trk,actions=ct(table=1,zone=1,nat)
table=0,priority=0,actions=drop
table=1,priority=20,udp,ct_state=+trk+snat,actions=$macs
table=1,priority=20,udp,ct_state=+trk+est,actions=$macs
table=1,priority=10,udp,ct_state=+trk+new-snat,actions=ct(commit,zone=1,nat(src=$snat_ip)),$macs
table=1,priority=0,actions=drop
FLOWS
}

# Starts ovsdb-server and ovs-vswitchd (with DPDK) for one run and sets dut_pid.
ovs_start() { # flows log
  local flows=$1 log=$2 i max
  rm -rf "$ovs_dir" && mkdir -p "$ovs_dir"
  ovsdb-tool create "$ovs_dir/conf.db" "$ovs_schema"
  # Started as plain commands (env, taskset and the daemon exec each other), so that $! is the
  # daemon; 9>&-: they do not hold this script's lock.
  "${ovs_env[@]}" taskset -c 0 ovsdb-server "$ovs_dir/conf.db" --remote="punix:$ovs_dir/db.sock" \
    --pidfile="$ovs_dir/ovsdb-server.pid" --unixctl="$ovs_dir/ovsdb-server.ctl" \
    --log-file="$ovs_dir/ovsdb-server.log" >> "$log" 2>&1 9>&- &
  pids+=("$!")
  ovs_pids[$!]=1
  for i in $(seq 1 50); do [[ -S $ovs_dir/db.sock ]] && break; sleep 0.1; done
  [[ -S $ovs_dir/db.sock ]] || { tail -5 "$log"; fail "DUT ovs: ovsdb-server did not start ($log)"; }
  vsctl --no-wait init
  # The main lcore on CPU 0, the PMD thread on CPU 1; the same EAL memory options as the
  # other DUTs; 128 MiB is room for the port's mbufs (OVS's minimum pool, 16 K mbufs).
  vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
    other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2 \
    other_config:dpdk-socket-mem=128 other_config:dpdk-socket-limit=128 \
    "other_config:dpdk-extra=--in-memory --single-file-segments --no-pci --file-prefix=nva-cmp-ovs${VHOST_EAL_EXTRA:+ $VHOST_EAL_EXTRA}"
  # taskset: the handler, revalidator and main threads stay on CPU 0; the PMD thread moves
  # itself to CPU 1 (pmd-cpu-mask).
  "${ovs_env[@]}" taskset -c 0 "$ovs_vswitchd" "unix:$ovs_dir/db.sock" \
    --pidfile="$ovs_dir/ovs-vswitchd.pid" --unixctl="$ovs_dir/ovs-vswitchd.ctl" \
    --log-file="$ovs_dir/ovs-vswitchd.log" >> "$log" 2>&1 9>&- &
  dut_pid=$!
  pids+=("$dut_pid")
  ovs_pids[$dut_pid]=1
  vsctl --timeout=60 add-br br0 -- set bridge br0 datapath_type=netdev \
    -- add-port br0 dut0 -- set Interface dut0 type=dpdk \
    "options:dpdk-devargs=net_virtio_user0,path=$sock,$VHOST_VIRTIO_OPTS,mac=$dut_mac" \
    options:n_rxq_desc=1024 options:n_txq_desc=1024 >> "$log" 2>&1 ||
    { tail -20 "$ovs_dir/ovs-vswitchd.log"; fail "DUT ovs: could not add the dpdk port (see above)"; }
  [[ $(vsctl get Interface dut0 ofport) -gt 0 ]] ||
    { tail -20 "$ovs_dir/ovs-vswitchd.log"; fail "DUT ovs: port dut0 has no OpenFlow port: $(vsctl get Interface dut0 error)"; }
  ofctl del-flows "unix:$ovs_dir/br0.mgmt"
  ovs_flows | ofctl add-flows "unix:$ovs_dir/br0.mgmt" -
  # Room for every flow's connection, twice over (OVS 3.1's default is 3 M).
  max=$(appctl dpctl/ct-get-maxconns)
  ((max >= 2 * flows)) || appctl dpctl/ct-set-maxconns $((2 * flows)) > /dev/null
}

# The first PMD thread's counters in `dpif-netdev/pmd-stats-show`, with the time of the read.
ovs_sample() { # file
  { echo "time: $(date +%s.%N)"; appctl dpif-netdev/pmd-stats-show; } > "$1"
}

# Records the frames the generator's port receives from the DUT with dpdk-dumpcap (the
# filter drops the generator's own frames, which would fill the first megabytes) until the
# file holds CAPTURE_KB, then kills the generator and dumpcap. Killed, not stopped: when
# dumpcap exits on its own it frees its packet pool while the generator, which copies every
# frame into it, may still do so, and DPDK 22.11's generator crashed on that here (segfault
# in librte_mbuf); told to stop first, the generator waits 5 s for dumpcap to answer a
# request dumpcap does not know. Everything the run measured is already in the logs.
capture() { # file log generator_pid
  local file=$1 log=$2 gen=$3 dc i
  LD_PRELOAD=$dumpcap_preload taskset -c 0 dpdk-dumpcap --file-prefix="$gen_prefix" -i net_vhost0 \
    -f "not ether src $gen_mac" -s 64 -q -w "$file" > "$log" 2>&1 9>&- &
  dc=$!
  pids+=("$dc")
  # dumpcap writes tens of MB a second: look often (the checker keeps CAPTURE_KB of it).
  for i in $(seq 1 750); do
    sleep 0.02
    (($(stat -c %s "$file" 2>/dev/null || echo 0) >= CAPTURE_KB * 1024)) && break
    kill -0 "$dc" 2>/dev/null || break
  done
  kill -KILL "$gen" "$dc" 2>/dev/null || true
  wait "$gen" "$dc" 2>/dev/null || true
}

# One run: generator, DUT, warm-up, window, SNAT capture; appends to samples.csv and runs.csv.
run_one() { # flows rep dut
  local flows=$1 rep=$2 dut=$3 tag="$1-$2-$3" gen dut_pid i g0 t0 t1 tc0 tc1 ok cap=""
  local glog=$out/logs/$tag.gen.log dlog=$out/logs/$tag.dut.log
  rm -f "$sock" "$work"/*.json "$work"/*ticks.* "$work"/o*.txt "$work/control.sock"
  # The generator first: it creates the socket (vhost-user server). taskset keeps its
  # non-EAL threads on CPU 0 too; stdbuf makes it write each line of its per-second stats
  # at once (block-buffered, the log lags by several seconds and the window's samples would
  # be counted from the wrong second).
  taskset -c 0 stdbuf -oL dpdk-testpmd --lcores 0@0,1@0 --single-file-segments --no-pci \
    --file-prefix "$gen_prefix" --log-level=warning --vdev "net_vhost0,iface=$sock,queues=1" -- \
    --forward-mode=flowgen --flowgen-flows="$flows" --nb-cores=1 --rxq=1 --txq=1 \
    --rxd=1024 --txd=1024 --total-num-mbufs=32768 --stats-period 1 --auto-start \
    > "$glog" 2>&1 &
  gen=$!
  pids+=("$gen")
  for i in $(seq 1 100); do [[ -S $sock ]] && break; sleep 0.1; done
  [[ -S $sock ]] || { tail -20 "$glog"; fail "the generator made no vhost-user socket ($glog)"; }

  case $dut in
    appliance)
      appliance_config "$flows" > "$work/appliance.toml"
      cp "$work/appliance.toml" "$out/logs/$tag.appliance.toml"
      "$bin" run --config "$work/appliance.toml" > "$dlog" 2>&1 &
      dut_pid=$!
      pids+=("$dut_pid")
      ;;
    ovs)
      ovs_start "$flows" "$dlog" # sets dut_pid
      ;;
    *)
      # Interactive, with commands through a FIFO: "clear fwd stats all" at the window's
      # start and "show fwd stats all" at its end give the window's cycles per packet
      # (--record-core-cycles: cycles of the bursts that moved packets).
      rm -f "$fifo" && mkfifo "$fifo"
      exec 7<>"$fifo"
      dpdk-testpmd --lcores 0@0,1@1 --in-memory --single-file-segments --no-pci \
        --file-prefix nva-cmp-dut --log-level=warning ${VHOST_EAL_EXTRA:+"$VHOST_EAL_EXTRA"} \
        --vdev "virtio_user0,path=$sock,$VHOST_VIRTIO_OPTS,mac=$dut_mac" -- -i \
        --forward-mode="$dut" --port-topology=loop --nb-cores=1 --rxq=1 --txq=1 \
        --rxd=1024 --txd=1024 --total-num-mbufs=32768 --record-core-cycles --auto-start \
        < "$fifo" > "$dlog" 2>&1 &
      dut_pid=$!
      pids+=("$dut_pid")
      ;;
  esac

  # Wait until frames come back to the generator (the DUT is up and forwarding).
  ok=0
  for i in $(seq 1 30); do
    sleep 1
    kill -0 "$dut_pid" 2>/dev/null || break
    if awk '/Rx-pps:/ {v = $2} END {exit !(v > 0)}' "$glog"; then ok=1 && break; fi
  done
  if ((!ok)); then
    echo "--- $dlog"; tail -20 "$dlog"; echo "--- $glog"; tail -8 "$glog"
    [[ $dut == ovs ]] && { echo "--- ovs-vswitchd.log"; tail -20 "$ovs_dir/ovs-vswitchd.log"; }
    fail "no frames came back to the generator with DUT $dut at $flows flows"
  fi
  sleep "$WARMUP"

  # The window.
  g0=$(gen_blocks "$glog")
  tc0=$(date +%s.%N)
  case $dut in
    appliance)
      taskset -c 0 "$bin" stats --socket "$work/control.sock" --json > "$work/s0.json" ||
        { tail -20 "$dlog"; fail "the appliance did not answer on its control socket"; }
      ;;
    ovs)
      appctl dpif-netdev/pmd-stats-clear > /dev/null
      ovs_sample "$work/o0.txt"
      ;;
    *)
      echo "clear fwd stats all" >&7
      echo "show port stats all" >&7 # sets the base of testpmd's "since last show" rates
      ;;
  esac
  thread_ticks "$dut_pid" > "$work/ticks.0"
  thread_ticks "$gen" > "$work/gticks.0"
  t0=$(date +%s.%N)
  for i in $(seq 1 "$SECS"); do
    # Sample at t0 + i s, whatever the previous sample took.
    sleep "$(awk -v t="$t0" -v i="$i" -v n="$(date +%s.%N)" 'BEGIN {d = t + i - n; print (d > 0 ? d : 0)}')"
    case $dut in
      appliance)
        taskset -c 0 "$bin" stats --socket "$work/control.sock" --json > "$work/s$i.json" ||
          fail "the appliance stopped answering (see $dlog)"
        ;;
      ovs) ovs_sample "$work/o$i.txt" ;;
      *) echo "show port stats all" >&7 ;;
    esac
  done
  thread_ticks "$dut_pid" > "$work/ticks.1"
  thread_ticks "$gen" > "$work/gticks.1"
  t1=$(date +%s.%N)
  case $dut in
    appliance | ovs) ;;
    *) echo "show fwd stats all" >&7 ;;
  esac
  tc1=$(date +%s.%N)
  # The generator's SECS one-second blocks from the first one printed after the window's
  # start (it covers the window's first second, give or take the print's phase).
  for i in $(seq 1 30); do
    (($(gen_blocks "$glog") >= g0 + SECS)) && break
    sleep 0.2
  done
  if [[ $dut == ovs ]]; then
    appctl dpctl/ct-get-nconns > "$work/ovs-nconns.txt"
    cp "$work/o$SECS.txt" "$out/logs/$tag.pmd-stats.txt"
    ofctl dump-flows "unix:$ovs_dir/br0.mgmt" > "$out/logs/$tag.ovs-flows.txt"
  fi

  # SNAT at the sink, after the window (the DUT still forwards; this ends the generator).
  if translates "$dut"; then
    cap=$out/logs/$tag.pcapng
    capture "$cap" "$out/logs/$tag.dumpcap.log" "$gen"
  fi

  case $dut in
    appliance) stop_pid "$dut_pid" ;;
    ovs)
      stop_pid "$dut_pid" TERM
      for i in "${!ovs_pids[@]}"; do stop_pid "$i" TERM; done
      ovs_pids=()
      cp "$ovs_dir/ovs-vswitchd.log" "$out/logs/$tag.ovs-vswitchd.log"
      rm -rf /var/run/dpdk/nva-cmp-ovs
      ;;
    *)
      sleep 0.3
      echo "quit" >&7
      for i in $(seq 1 50); do kill -0 "$dut_pid" 2>/dev/null || break; sleep 0.1; done
      stop_pid "$dut_pid"
      exec 7>&-
      ;;
  esac
  stop_pid "$gen"
  gen_cleanup
  pids=()

  python3 - "$work" "$out" "$flows" "$rep" "$dut" "$SECS" "$g0" "$t0" "$t1" "$glog" "$dlog" \
    "$tc0" "$tc1" "$cap" "$busy_limit" "$snat_ip" "$dut_mac" "$gen_mac" "$CAPTURE_KB" <<'PY'
import json, re, statistics, struct, sys
work, out, flows, rep, dut = sys.argv[1:6]
secs, g0 = int(sys.argv[6]), int(sys.argv[7])
t0, t1 = float(sys.argv[8]), float(sys.argv[9])
glog = open(sys.argv[10], errors="replace").read()
dlog = open(sys.argv[11], errors="replace").read()
tc0, tc1, cap = float(sys.argv[12]), float(sys.argv[13]), sys.argv[14]
busy_limit, snat_ip = float(sys.argv[15]), sys.argv[16]
dut_mac, gen_mac = (bytes.fromhex(m.replace(":", "")) for m in sys.argv[17:19])
capture_bytes = int(sys.argv[19]) * 1024

gen_rx = [int(x) / 1e6 for x in re.findall(r"Rx-pps:\s+(\d+)", glog)][g0:g0 + secs]
gen_tx = [int(x) / 1e6 for x in re.findall(r"Tx-pps:\s+(\d+)", glog)][g0:g0 + secs]

# The busiest thread of the DUT and of the generator (their polling lcores) over the window:
# share of one CPU.
def ticks(name):
    return {l.split()[0]: int(l.split()[1]) for l in open(f"{work}/{name}") if len(l.split()) == 2}
def busiest(who):
    a, b = ticks(f"{who}ticks.0"), ticks(f"{who}ticks.1")
    return min(1.0, max((b[t] - a.get(t, 0) for t in b), default=0) / 100 / max(t1 - t0, 1e-9))
on_cpu, gen_on_cpu = busiest(""), busiest("g")

# dut_mpps and cycles: per second; window_cycles: busy cycles / packets over the window;
# busy: the share of the window's cycles spent in polls that moved packets.
dut_mpps, cycles, sessions, busy = [], [None] * secs, "", float("nan")
if dut == "appliance":
    snaps = [json.load(open(f"{work}/s{i}.json")) for i in range(secs + 1)]
    tot = lambda s, k: sum(w[k] for w in s["workers"])
    cycles = []
    for x, y in zip(snaps, snaps[1:]):
        dt = y["uptime_secs"] - x["uptime_secs"]
        pk = tot(y, "packets") - tot(x, "packets")
        dut_mpps.append(pk / dt / 1e6)
        cycles.append((tot(y, "busy_cycles") - tot(x, "busy_cycles")) / pk if pk else None)
    sessions = snaps[-1]["sessions"]["created_total"]
    window_cycles = statistics.median([c for c in cycles if c is not None] or [float("nan")])
    db = tot(snaps[-1], "busy_cycles") - tot(snaps[0], "busy_cycles")
    di = tot(snaps[-1], "idle_cycles") - tot(snaps[0], "idle_cycles")
    busy = db / (db + di) if db + di else float("nan")
elif dut == "ovs":
    # pmd-stats-show of the PMD thread (the first section), read after pmd-stats-clear and
    # then once a second; the last read holds the window's totals.
    def pmd(i):
        text = open(f"{work}/o{i}.txt").read()
        field = lambda k: float(re.search(rf"^\s*{k}:\s+([\d.]+)", text, re.M).group(1))
        return {"t": field("time"), "pk": field("packets received"),
                "idle": field("idle cycles"), "proc": field("processing cycles")}
    o = [pmd(i) for i in range(secs + 1)]
    cycles = []
    for x, y in zip(o, o[1:]):
        # A negative step: the clear reached the PMD thread only after the first read.
        dp, dc = y["pk"] - x["pk"], y["proc"] - x["proc"]
        dut_mpps.append(dp / (y["t"] - x["t"]) / 1e6 if dp >= 0 else float("nan"))
        cycles.append(dc / dp if dp > 0 and dc >= 0 else None)
    last = o[-1]
    window_cycles = last["proc"] / last["pk"] if last["pk"] else float("nan")
    busy = last["proc"] / (last["proc"] + last["idle"]) if last["proc"] + last["idle"] else float("nan")
    sessions = int(open(f"{work}/ovs-nconns.txt").read().split()[0])
else:
    # After "clear fwd stats all": one "show port stats all" to set the base, then one a
    # second; then "show fwd stats all" with the window's busy cycles and cycles per packet.
    dut_mpps = [int(x) / 1e6 for x in re.findall(r"Rx-pps:\s+(\d+)", dlog)][1:1 + secs]
    m = re.search(r"CPU cycles/packet=([\d.]+) \(total cycles=(\d+) / .* at (\d+) MHz", dlog)
    window_cycles = float(m.group(1)) if m else float("nan")
    if m:
        busy = int(m.group(2)) / (int(m.group(3)) * 1e6 * (tc1 - tc0))

def med(v):
    v = [x for x in v if x == x]
    return statistics.median(v) if v else float("nan")
def fmt(v):
    return "" if v is None or v != v else f"{v:.4f}"
# The DUT is the limit when it was busy nearly all the window. Otherwise it waited for frames,
# and the generator's side was the limit if both had their cores; if either lost a tenth of
# it to the machine's other work, the machine was.
if busy != busy:
    limit = ""
elif busy >= busy_limit:
    limit = "DUT"
else:
    limit = "generator" if min(on_cpu, gen_on_cpu) >= 0.9 else "machine"

# SNAT at the sink: every frame of the capture's first capture_bytes that came in from the
# DUT (pcapng enhanced packet blocks whose epb_flags say inbound) must be IPv4/UDP from
# snat_ip with the DUT's and the generator's MACs, a valid header checksum and a valid or
# absent UDP checksum. The file is cut after those blocks (dumpcap overshoots by megabytes).
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s

def frame_error(f):
    if len(f) < 42 or f[12:14] != b"\x08\x00":
        return "not IPv4"
    if f[0:6] != gen_mac or f[6:12] != dut_mac:
        return f"MACs {f[6:12].hex(':')} -> {f[0:6].hex(':')}"
    ip = f[14:]
    ihl = (ip[0] & 15) * 4
    if ip[0] >> 4 != 4 or ihl < 20 or len(ip) < ihl + 8:
        return "bad IPv4 header"
    src = ".".join(map(str, ip[12:16]))
    if src != snat_ip:
        return f"source {src} instead of {snat_ip}"
    if csum(ip[:ihl]) != 0xFFFF:
        return "bad IP checksum"
    if ip[9] != 17:
        return f"protocol {ip[9]}, not UDP"
    udp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    if struct.unpack("!H", udp[6:8])[0] != 0:
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        if csum(pseudo + udp) != 0xFFFF:
            return "bad UDP checksum"
    return None

snat, frames, bad, why = "", 0, 0, ""
if cap:
    try:
        d = open(cap, "rb").read()
    except OSError:
        d = b""
    off, end = 0, "<"
    while off + 12 <= len(d) and off < capture_bytes:
        kind = struct.unpack_from(end + "I", d, off)[0]
        if kind == 0x0A0D0D0A:  # section header: its byte order
            end = "<" if d[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        length = struct.unpack_from(end + "I", d, off + 4)[0]
        if length < 12 or off + length > len(d):
            break  # the last block, cut when dumpcap was killed
        if kind == 6:
            caplen = struct.unpack_from(end + "I", d, off + 20)[0]
            p, flags = off + 28 + (caplen + 3) // 4 * 4, 0
            while p + 4 <= off + length - 4:
                code, olen = struct.unpack_from(end + "HH", d, p)
                if code == 0:
                    break
                if code == 2:  # epb_flags: bits 0-1 direction, 1 = inbound
                    flags = struct.unpack_from(end + "I", d, p + 4)[0]
                p += 4 + (olen + 3) // 4 * 4
            if flags & 3 == 1:
                frames += 1
                e = frame_error(d[off + 28:off + 28 + caplen])
                if e:
                    bad += 1
                    why = why or e
        off += length
    if off < len(d):
        with open(cap, "r+b") as f:
            f.truncate(off)
    if frames < 100:
        snat, why = "FAIL", f"only {frames} frames from the DUT in the capture"
    else:
        snat = "FAIL" if bad else "ok"

with open(f"{out}/samples.csv", "a") as f:
    for i in range(secs):
        row = [flows, rep, dut, i + 1,
               fmt(gen_rx[i] if i < len(gen_rx) else None), fmt(gen_tx[i] if i < len(gen_tx) else None),
               fmt(dut_mpps[i] if i < len(dut_mpps) else None), fmt(cycles[i] if i < len(cycles) else None)]
        f.write(",".join(map(str, row)) + "\n")
load = open("/proc/loadavg").read().split()[0]
with open(f"{out}/runs.csv", "a") as f:
    f.write(",".join(map(str, [flows, rep, dut, fmt(med(gen_rx)), fmt(med(gen_tx)), fmt(med(dut_mpps)),
                               fmt(window_cycles), f"{on_cpu:.3f}", sessions, load, fmt(busy), limit,
                               snat, frames if cap else "", bad if cap else "", why.replace(",", ";"),
                               f"{gen_on_cpu:.3f}"])) + "\n")
print(f"  {int(flows):>8} flows  rep {rep}  {dut:<9}  sink {med(gen_rx):6.2f} Mpps  sent {med(gen_tx):6.2f}"
      f"  DUT {med(dut_mpps):6.2f}  cycles/pkt {window_cycles:7.0f}  busy {100 * busy:3.0f}%"
      f"  on CPU {100 * on_cpu:3.0f}% (gen {100 * gen_on_cpu:3.0f}%)  limit {limit or '-'}"
      + (f"  sessions {sessions}" if sessions != "" else "")
      + (f"  snat {snat} ({frames - bad}/{frames} frames{': ' + why if why else ''})" if cap else ""))
PY
}

echo "flows,rep,dut,second,sink_mpps,gen_tx_mpps,dut_mpps,dut_cycles_per_pkt" > "$out/samples.csv"
echo "flows,rep,dut,sink_mpps,gen_tx_mpps,dut_mpps,dut_cycles_per_pkt,dut_on_cpu,sessions,load1,dut_busy,limit,snat,snat_frames,snat_bad,snat_why,gen_on_cpu" > "$out/runs.csv"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
read -ra flow_list <<< "$FLOWS"
read -ra dut_list <<< "$DUTS"
total=$((REPS * ${#flow_list[@]} * ${#dut_list[@]}))
n=0
echo "bench-compare: FLOWS=\"$FLOWS\" REPS=$REPS SECS=$SECS WARMUP=$WARMUP DUTS=\"$DUTS\"; results in $out"
for rep in $(seq 1 "$REPS"); do
  for flows in "${flow_list[@]}"; do
    for dut in "${dut_list[@]}"; do
      n=$((n + 1))
      echo "run $n/$total: $dut, $flows flows, rep $rep ($(($(date +%s) - start)) s so far)" >&2
      run_one "$flows" "$rep" "$dut"
    done
  done
done
elapsed=$(($(date +%s) - start))

python3 - "$out/runs.csv" "$SECS" "$WARMUP" "$elapsed" "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$busy_limit" \
  "$VHOST_VIRTIO_OPTS${VHOST_EAL_EXTRA:+ (EAL $VHOST_EAL_EXTRA)}" <<'PY' | tee "$out/table.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
secs, warmup, elapsed, load0, load1 = sys.argv[2:7]
busy_limit = float(sys.argv[7])
transport = sys.argv[8]
f = lambda r, k: float(r[k]) if r[k] not in ("", "nan") else None
io = {(r["flows"], r["rep"]): f(r, "sink_mpps") for r in rows if r["dut"] == "io"}

def spread(v, p):
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    return f"{statistics.median(v):.{p}f} [{min(v):.{p}f}-{max(v):.{p}f}]"

def limit(rs):
    votes = [r["limit"] for r in rs if r["limit"]]
    if not votes:
        return "-"
    order = sorted(set(votes), key=lambda v: (-votes.count(v), ("DUT", "generator", "machine").index(v)))
    return ", ".join(f"{v} {votes.count(v)}" for v in order)

def snat(rs):
    checked = [r for r in rs if r["snat"]]
    if not checked:
        return "-"
    frames = sum(int(r["snat_frames"] or 0) for r in checked)
    failed = [r for r in checked if r["snat"] != "ok"]
    return f"NO {len(failed)}/{len(checked)}" if failed else f"yes ({frames} frames)"

print()
print(f"bench-compare: testpmd flowgen (CPU 0) -> vhost-user -> DUT (virtio-user, CPU 1) -> back;")
print(f"virtio-user: {transport};")
print(f"64-byte UDP; {warmup} s warm-up, {secs} s window sampled per second; {elapsed} s in all;")
print(f"load before {load0}, after {load1}. Figures: median [min-max] over repetitions.")
hdr = ("flows", "DUT", "runs", "sink Mpps", "x io", "cycles/pkt", "DUT busy", "DUT on CPU", "gen on CPU",
       "limit", "snat ok")
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
    busy = [100 * f(r, "dut_busy") if f(r, "dut_busy") is not None else None for r in rs]
    cells = (f"{int(flows):,}", dut, str(len(rs)), spread([f(r, "sink_mpps") for r in rs], 2),
             spread(ratio, 2) if dut != "io" else "1", spread([f(r, "dut_cycles_per_pkt") for r in rs], 0),
             spread(busy, 0) + " %", spread([100 * f(r, "dut_on_cpu") for r in rs], 0) + " %",
             spread([100 * f(r, "gen_on_cpu") for r in rs], 0) + " %", limit(rs), snat(rs))
    print("| " + " | ".join(cells) + " |")
print(f"""
sink Mpps   what came back to the generator: per run the median of its per-second Rx-pps
x io        sink Mpps / io's sink Mpps in the same repetition (io: the transport's ceiling)
cycles/pkt  the DUT's busy TSC cycles per packet over the window (appliance: workers'
            busy_cycles / packets from `appliance stats`, median of the seconds; testpmd:
            --record-core-cycles, "show fwd stats all" after "clear fwd stats all"; ovs: "avg
            processing cycles per packet" of dpif-netdev/pmd-stats-show after
            pmd-stats-clear). TSC cycles keep counting while another process has the core:
            see DUT on CPU
DUT busy    share of the window's TSC cycles the DUT spent in polls that moved packets
            (appliance: busy / (busy + idle) cycles; testpmd: busy cycles / (TSC Hz x
            window); ovs: processing / (idle + processing) cycles)
DUT on CPU  share of the window the DUT's busiest thread (its polling lcore) was on a CPU
            (/proc); below 100 % the machine's other work took part of CPU 1
gen on CPU  the same for the generator's forwarding lcore on CPU 0, which it shares with the
            DUT's main thread (OVS: its handler, revalidator and conntrack threads)
limit       per run: DUT when DUT busy >= {100 * busy_limit:.0f} %; else the DUT waited for frames, and
            the limit is the generator (its one core sends and counts what comes back, and
            the link) when both had at least 90 % of their CPUs, the machine when not; how
            many runs gave each verdict
snat ok     appliance and ovs: every frame the DUT sent back, in a capture after the window
            (dpdk-dumpcap on the generator's port), has IPv4 source 198.18.0.2, the DUT's
            and the generator's MACs, a valid IP checksum and a valid or absent UDP
            checksum; the frames checked over all runs; "NO k/n": k runs failed""")
PY
echo "samples: $out/samples.csv, runs: $out/runs.csv, logs: $out/logs/"

# The chart; the figures above stand without it, so a missing plotter is said, not fatal.
if [[ ! -x $plot ]] && command -v cargo >/dev/null; then
  cargo build --release -q -p compare-plot 2>&1 | tail -5 || true
fi
if [[ -x $plot ]]; then
  "$plot" "$out/runs.csv" "$out/compare.svg" \
    "bench-compare $(date +%Y-%m-%d): median over $REPS repetitions, whiskers min-max" &&
    echo "chart: $out/compare.svg"
else
  echo "chart: not drawn, no $plot (cargo build --release -p compare-plot)"
fi

# A DUT that translates and sent back frames without the translation fails the run.
failed=$(awk -F, 'NR > 1 && $13 == "FAIL" {printf "  %s at %s flows, rep %s: %s bad of %s frames (%s)\n", $3, $1, $2, $15, $14, $16}' "$out/runs.csv")
if [[ -n $failed ]]; then
  echo "bench-compare: SNAT check failed at the sink (captures: $out/logs/*.pcapng):" >&2
  echo "$failed" >&2
  exit 1
fi

#!/usr/bin/env bash
# Instruction counts of the pipeline (callgrind), the one measure this shared machine's noise
# does not move: instructions a packet on the established path (64 000 packets of 1 000 UDP
# sessions, less the sessions' creation) and a new flow (200 000 new flows, the second half
# reusing expired sessions). The counts are those of `Workload::run_on`, inclusive: the
# shard's processing, not the writing of the frames. See examples/pipeline_profile.rs.
#   benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build -q --release -p appliance-benches --example pipeline_profile
bin=${CARGO_TARGET_DIR:-target}/release/examples/pipeline_profile
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The inclusive count of Workload::run_on in one run of the example with argument $1.
run_on() {
  valgrind --tool=callgrind --callgrind-out-file="$work/$1.out" "$bin" "$1" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$work/$1.out" 2>/dev/null |
    awk '/Workload::run_on \[/ && !n++ { gsub(",", "", $1); print $1 }'
}
fill=$(run_on fill)
established=$(run_on established)
setup=$(run_on setup)
awk -v f="$fill" -v e="$established" -v s="$setup" 'BEGIN {
  printf "established: %.2f instructions a packet (64 000 packets, 1 000 sessions)\n", (e - f) / 64000
  printf "setup:       %.1f instructions a flow (200 000 new flows, half reusing expired sessions)\n", s / 200000
}'

#!/usr/bin/env bash
# Instruction counts of the pipeline (callgrind), the one measure this shared machine's noise
# does not move: instructions a packet on the established path (64 000 packets of 1 000 UDP
# sessions) and a new flow (200 000 new flows, the second half reusing expired sessions):
# the inclusive count of examples/pipeline_profile.rs's `measured`, one burst through the
# shard, divided by the packets it was given.
#   benches/callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
cargo build -q --release -p appliance-benches --example pipeline_profile
bin=${CARGO_TARGET_DIR:-target}/release/examples/pipeline_profile
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The inclusive count of `measured` in one run of the example with argument $1.
measured() {
  valgrind --tool=callgrind --callgrind-out-file="$work/out" "$bin" "$@" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$work/out" 2>/dev/null |
    awk '/pipeline_profile::measured \[/ && !n++ { gsub(",", "", $1); print $1 }'
}
established=$(measured)
setup=$(measured setup)
if [[ -z $established || -z $setup ]]; then
  echo "callgrind.sh: callgrind counted no pipeline_profile::measured" >&2
  exit 1
fi
awk -v e="$established" -v s="$setup" 'BEGIN {
  printf "established: %.2f instructions a packet (64 000 packets, 1 000 sessions)\n", e / 64000
  printf "setup:       %.1f instructions a flow (200 000 new flows, half reusing expired sessions)\n", s / 200000
}'

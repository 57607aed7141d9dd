#!/usr/bin/env bash
# Removes the testbed whatever state it is in (also after a crash): first every process left
# in its namespaces (by the PIDs `ip netns pids` gives: appliance, servers, captures), then the
# namespaces (their veths go with them), then the servers' files.
#   NVA_PREFIX (default "nva-"): which testbed. The first version's namespaces (nva-client,
#   nva-server) are removed too when the prefix is the default.
set -uo pipefail
P=${NVA_PREFIX:-nva-}
run=${NVA_RUN:-/run/nva-testbed/${P%-}}
names=()
for n in c1 c2 lan fw rtr fw1 fw2 inet srv; do names+=("$P$n"); done
[[ $P == nva- ]] && names+=(nva-client nva-server)

present=()
for n in "${names[@]}"; do
  [[ -e /run/netns/$n ]] && present+=("$n")
done
pids() {
  for n in "${present[@]}"; do ip netns pids "$n" 2>/dev/null; done
}
if ((${#present[@]})); then
  for pid in $(pids); do kill -TERM "$pid" 2>/dev/null; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [[ -z $(pids) ]] && break
    sleep 0.2
  done
  for pid in $(pids); do kill -KILL "$pid" 2>/dev/null; done
  for n in "${present[@]}"; do ip netns del "$n" 2>/dev/null; done
fi
# Only the servers' own folder, and only when it looks like one (never a path outside /run).
if [[ $run == /run/nva-testbed/* && -d $run ]]; then
  rm -rf -- "$run"
fi
echo "testbed down (${P}*)"
exit 0

#!/usr/bin/env bash
# Removes the testbed, whatever state it is in (also after a crash): appliance processes in
# its namespace, then the namespaces (their veths go with them).
set -uo pipefail
for n in nva-client nva-fw nva-server; do
  if ip netns list | grep -qw "$n"; then
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  fi
done
sleep 0.5
for n in nva-client nva-fw nva-server; do
  for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  ip netns del "$n" 2>/dev/null
done
echo "testbed down"
exit 0

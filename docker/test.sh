#!/usr/bin/env bash
# `make docker-test`: the show of docker/demo.sh, every step asserted (HTTP body and
# checksum, SNAT seen by the server, only the forwarded port open, counters non-zero,
# a clean docker stop), then that nothing is left: no container or network of the
# testbed, no DOCKER-USER rule of its bridges, and no dockerd when the test started it.
# It cannot pass without running: no root, or Docker that cannot be installed or started,
# fails with what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "docker-test: needs root (dockerd, iptables); 0 passed, 1 failed" >&2; exit 1; }
# shellcheck source=docker/lib.sh
source docker/lib.sh
engine_before=0
dk info >/dev/null 2>&1 && engine_before=1

status=0
docker/demo.sh || status=$?

echo
echo "== nothing left running"
left=()
for br in $(ip -o link show type bridge | awk -F': ' '{print $2}'); do
  [[ $br == "$DK_BR"* ]] && left+=("bridge $br")
done
if iptables -S DOCKER-USER 2>/dev/null | grep -q -- "--comment \"\\?$DK"; then
  left+=("DOCKER-USER rules: $(iptables -S DOCKER-USER | grep -c -- "$DK")")
fi
if ((engine_before)); then
  [[ -z $(dk ps -aq --filter label=nva-docker=1) ]] || left+=("containers: $(dk ps -a --filter label=nva-docker=1 --format '{{.Names}}' | tr '\n' ' ')")
  [[ -z $(dk network ls -q --filter label=nva-docker=1) ]] || left+=("networks")
elif [[ -n $(pgrep -x dockerd || true) ]]; then
  left+=("dockerd (pid $(pgrep -x dockerd | tr '\n' ' ')), started by the test")
fi
if ((${#left[@]})); then
  echo "FAIL - left behind: ${left[*]}"
  status=1
else
  echo "ok - no container, network, bridge or DOCKER-USER rule left$( ((engine_before)) || echo ", dockerd stopped again")"
fi
exit "$status"

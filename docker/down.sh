#!/usr/bin/env bash
# Removes the Docker testbed whatever state it is in: its containers and networks (by
# their nva-docker=1 label), the DOCKER-USER rules of its bridges, and the dockerd these
# scripts started, if they did. Images stay (`docker image rm nva-docker/appliance ...`).
set -euo pipefail
# shellcheck source=docker/lib.sh
source "$(dirname "$0")/lib.sh"
if dk info >/dev/null 2>&1; then
  dk_down
fi
dk_engine_down
echo "docker testbed down (${DK}*)"

#!/usr/bin/env bash
# Builds the base image local/debian:bookworm without a registry: debootstrap a minimal
# Debian 12 into a folder (about a minute) and `docker import` it. The images of the Docker
# testbed start FROM it, and apt-get works inside their builds.
#
#   docker/base-image.sh            build it (replaces an existing one)
#   MIRROR=http://... docker/base-image.sh
#
# The mirror is this machine's own Debian mirror (the first bookworm URIs line in
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list). With a registry, skip this
# script: `docker pull debian:bookworm-slim && docker tag debian:bookworm-slim
# local/debian:bookworm` gives the same starting point.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=docker/lib.sh
source "$here/lib.sh"

mirror=${MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [[ -z $mirror ]]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

dk_deps
dk_engine_up
root=$(mktemp -d "$DK_RUN/rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
start=$SECONDS
dk_log "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$DK_RUN/debootstrap.log" 2>&1 ||
  { tail -20 "$DK_RUN/debootstrap.log" >&2; dk_fail "debootstrap failed (log $DK_RUN/debootstrap.log)"; }
# Smaller and reproducible-ish: no package lists or caches in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | dk import -c 'CMD ["/bin/bash"]' - "$DK_BASE" >/dev/null
dk_log "$DK_BASE built in $((SECONDS - start)) s ($(dk image inspect -f '{{.Size}}' "$DK_BASE" | awk '{printf "%.0f MB", $1 / 1e6}'))"

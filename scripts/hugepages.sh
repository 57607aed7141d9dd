#!/usr/bin/env bash
# Reserves 2 MiB huge pages and mounts hugetlbfs on /dev/hugepages, when possible.
# Never fatal: without huge pages, configs with `huge_pages = false` still run (slower), and
# tests that need them say they are skipped.
set -uo pipefail
want=${HUGEPAGES:-512}

if [[ $EUID -ne 0 ]]; then
  echo "hugepages: not root, leaving huge pages as they are" >&2
  exit 0
fi
have=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo)
if (( have < want )); then
  echo "$want" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
  have=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo)
fi
if ! grep -qs ' hugetlbfs ' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
if (( free > 0 )) && grep -qs ' hugetlbfs ' /proc/mounts; then
  echo "hugepages: $free of $have free, hugetlbfs mounted"
else
  echo "hugepages: none available; runs fall back to huge_pages = false" >&2
fi
exit 0

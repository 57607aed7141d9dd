#!/usr/bin/env bash
# Installs what building and testing the appliance needs on Debian 12, if missing
# (`image` as argument: the cloud image's tools too; `bench`: what `make bench-compare` drives
# besides the appliance). Idempotent: does nothing when everything is there.
set -euo pipefail

packages=(
  dpdk dpdk-dev libdpdk-dev          # DPDK 22.11: static archives, headers, shared PMDs
  clang libclang-dev pkg-config      # bindgen
  libpcap-dev libnuma-dev libbsd-dev libfdt-dev libxdp-dev libbpf-dev  # DPDK's link deps
  build-essential
  iproute2 iputils-ping ethtool netcat-openbsd curl util-linux procps  # tests and testbed
  # the namespace testbed and its e2e tests (testbed/, appliance/tests/e2e.rs)
  nginx dnsmasq-base iperf3 nmap traceroute tcpdump nftables bind9-dnsutils
  python3                            # testbed/gwlb-emu.py and its self-test (stdlib only)
)
# `scripts/deps.sh image`: also what building and boot-testing the cloud image needs
# (deploy/). qemu-utils is named although qemu-system-x86 pulls it: on a machine with a newer
# qemu-utils from backports, installing qemu-system-x86 removes that one.
if [[ ${1:-} == image ]]; then
  packages+=(
    mmdebstrap e2fsprogs dosfstools mtools fdisk   # deploy/build-image.sh
    qemu-system-x86 qemu-utils ovmf python3        # deploy/image-test.sh
  )
fi
# `scripts/deps.sh bench`: OVS with DPDK as a device under test (benches/compare.sh runs a
# private instance; the policy below keeps the package's own service from starting).
if [[ ${1:-} == bench ]]; then
  packages+=(openvswitch-switch-dpdk python3)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The servers the testbed starts in its namespaces (nginx, iperf3), and Open vSwitch, must
  # not also start as services of the machine: where no policy-rc.d forbids it, one does for
  # the install.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  if ((own_policy)); then rm -f "$policy"; fi
  ((status == 0)) || exit "$status"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    echo "cargo is in $HOME/.cargo/bin: add it to PATH (source \$HOME/.cargo/env)" >&2
  else
    echo "no Rust toolchain: install one with rustup (https://rustup.rs), Rust >= 1.82" >&2
  fi
  exit 1
fi

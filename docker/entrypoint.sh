#!/bin/bash
# The appliance image's entrypoint: finds the configuration (a mounted file, or one rendered
# from environment variables), checks it with `appliance check` (its errors go to
# `docker logs`), prepares the interfaces the AF_PACKET / AF_XDP PMD will own, then execs
# `appliance run` as PID 1, so `docker stop` (SIGTERM) reaches it and it exits cleanly.
#
#   docker run ... -v ./my.toml:/etc/nva/appliance.toml:ro nva-docker/appliance
#   docker run ... -e NVA_LAN_ADDRESS=10.0.1.1/24 -e NVA_WAN_ADDRESS=198.51.100.2/24 \
#                  -e NVA_GATEWAY=198.51.100.1 nva-docker/appliance
#
# Rendering (used when $NVA_CONFIG does not exist):
#   NVA_LAN_ADDRESS, NVA_WAN_ADDRESS  the inside and outside port addresses (CIDR). The
#                       container interface Docker gave each address becomes `lan` / `wan`.
#   NVA_GATEWAY         next hop on the outside (required)
#   NVA_FORWARDS        port forwards to the public (wan) address, space-separated
#                       PROTO:PUBLIC_PORT:PRIVATE_IP:PRIVATE_PORT, e.g. "tcp:8080:10.0.1.10:80"
#   NVA_EGRESS_DENY_TCP TCP destination ports inside hosts may not reach (default "25")
#   NVA_PMD             af_packet (default) or af_xdp; NVA_PMD_ARGS extra devargs
#                       ("qpairs=2,blocksz=4096" ...)
#   NVA_WORKERS         worker cores (default 1); NVA_LCORES (default "0-WORKERS")
#   NVA_HUGE_PAGES      false (default) or true (--in-memory huge pages: needs SYS_NICE)
#   NVA_MEMORY_MB (256), NVA_MBUFS (8191), NVA_MAX_SESSIONS (65536)
#   NVA_EXTRA_TOML      appended to the rendered file verbatim (more rules, [control] ...)
# Always:
#   NVA_CONFIG          the mounted file (default /etc/nva/appliance.toml)
#   NVA_RUN_ARGS        more arguments for `appliance run` ("--json", "--stats-interval 10")
# With the arguments `check`, `explain ...`, `stats`, ... the entrypoint runs that command
# instead (`docker run --rm IMAGE check`).
set -euo pipefail

config=${NVA_CONFIG:-/etc/nva/appliance.toml}
# Where `appliance stats` and the HEALTHCHECK find the configuration in force.
active=/run/nva/appliance.toml
mkdir -p /run/nva

say() { echo "nva-entrypoint: $*" >&2; }
die() { say "error: $*"; exit 2; }

# The interface holding address $1 (CIDR or bare) in this container, if any.
iface_with() {
  local ip=${1%/*}
  ip -o -4 addr show | awk -v ip="$ip" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}'
}

# Gives the interface Docker attached with address $1 the name $2, so a configuration can
# say iface=lan whatever order Docker attached the networks in.
name_iface() {
  local want=$1 name=$2 dev
  [[ -n $want ]] || return 0
  [[ -e /sys/class/net/$name ]] && return 0
  dev=$(iface_with "$want")
  [[ -n $dev ]] || die "no interface carries ${want%/*} (NVA_${name^^}_ADDRESS): attach the container to that network with --ip ${want%/*}"
  ip link set "$dev" down
  ip link set "$dev" name "$name"
}

render() {
  local lan=${NVA_LAN_ADDRESS:?NVA_LAN_ADDRESS (e.g. 10.0.1.1/24) or a config file at $config}
  local wan=${NVA_WAN_ADDRESS:?NVA_WAN_ADDRESS (e.g. 198.51.100.2/24) or a config file at $config}
  local gw=${NVA_GATEWAY:?NVA_GATEWAY (the outside next hop)}
  local workers=${NVA_WORKERS:-1} pmd=${NVA_PMD:-af_packet} args=${NVA_PMD_ARGS:-}
  local lan_dev wan_dev
  case $pmd in
  af_packet)
    lan_dev="net_af_packet0,iface=lan" wan_dev="net_af_packet1,iface=wan"
    # One rx/tx queue pair per worker (each worker has its own tx queue on every port).
    ((workers > 1)) && [[ $args != *qpairs=* ]] && args="qpairs=$workers${args:+,$args}"
    ;;
  af_xdp)
    lan_dev="net_af_xdp0,iface=lan" wan_dev="net_af_xdp1,iface=wan"
    ;;
  *) die "NVA_PMD=$pmd: use af_packet or af_xdp" ;;
  esac
  [[ -n $args ]] && lan_dev+=",$args" wan_dev+=",$args"
  cat <<EOF
# Rendered by the image's entrypoint from NVA_* environment variables.
[eal]
lcores = "${NVA_LCORES:-0-$workers}"
huge_pages = ${NVA_HUGE_PAGES:-false}
memory_mb = ${NVA_MEMORY_MB:-256}
file_prefix = "nva-docker"

[dataplane]
workers = $workers
mbufs = ${NVA_MBUFS:-8191}

[[port]]
name = "lan"
role = "inside"
device = "$lan_dev"
promiscuous = true
address = "$lan"

[[port]]
name = "wan"
role = "outside"
device = "$wan_dev"
promiscuous = true
address = "$wan"
gateway = "$gw"

[nat]
addresses = ["${wan%/*}"]
max_sessions = ${NVA_MAX_SESSIONS:-65536}
hairpinning = true

[egress]
default = "allow"
EOF
  local p
  for p in ${NVA_EGRESS_DENY_TCP-25}; do
    printf '\n[[egress.rule]]\naction = "deny"\nproto = "tcp"\ndst_ports = [%s]\n' "$p"
  done
  printf '\n[ingress]\ndefault = "deny"\n'
  local f proto pport priv sport
  for f in ${NVA_FORWARDS:-}; do
    IFS=: read -r proto pport priv sport <<<"$f"
    [[ -n $sport ]] || die "NVA_FORWARDS entry '$f': use PROTO:PUBLIC_PORT:PRIVATE_IP:PRIVATE_PORT"
    printf '\n[[ingress.forward]]\nproto = "%s"\npublic = "%s"\npublic_port = %s\nprivate = "%s"\nprivate_port = %s\n' \
      "$proto" "${wan%/*}" "$pport" "$priv" "$sport"
    printf '\n[[ingress.rule]]\naction = "allow"\nproto = "%s"\ndst = ["%s"]\ndst_ports = [%s]\n' \
      "$proto" "${wan%/*}" "$pport"
  done
  printf '\n[local]\nicmp_echo = true\n\n[control]\nsocket = "/run/appliance/control.sock"\n'
  [[ -z ${NVA_EXTRA_TOML:-} ]] || printf '\n%s\n' "$NVA_EXTRA_TOML"
}

# Every interface an AF_PACKET or AF_XDP port of the configuration names: the kernel keeps
# seeing a copy of each frame there, so it must neither answer ARP for an address, nor
# forward, nor reset TCP flows it does not know (DPDK-NOTES.md, testbed/up.sh). Offloads
# off: AF_PACKET does not carry CHECKSUM_PARTIAL, TCP would fail while ping works.
prepare() {
  local forwarding dev
  forwarding=$(cat /proc/sys/net/ipv4/ip_forward)
  [[ $forwarding == 0 ]] ||
    die "IPv4 forwarding is on in this container: run it with --sysctl net.ipv4.ip_forward=0"
  for dev in $(grep -o 'iface=[A-Za-z0-9_.@-]*' "$active" | cut -d= -f2 | sort -u); do
    [[ -e /sys/class/net/$dev ]] || die "the configuration names iface=$dev, and this container has no such interface ($(ls /sys/class/net | tr '\n' ' '))"
    ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 ||
      say "warning: could not turn offloads off on $dev (needs NET_ADMIN)"
    ip addr flush dev "$dev"
    ip link set "$dev" up
    say "$dev ($(cat "/sys/class/net/$dev/address")): no kernel address, offloads off"
  done
}

case ${1:-run} in
run) ;;
*) exec appliance "$@" ;;
esac

name_iface "${NVA_LAN_ADDRESS:-}" lan
name_iface "${NVA_WAN_ADDRESS:-}" wan
# The file checked and run is the user's own path (errors name it); $active links to it.
if [[ -e $config ]]; then
  ln -sf "$config" "$active"
  say "configuration: $config (mounted)"
else
  render > "$active"
  config=$active
  say "configuration: rendered from NVA_* into $active"
fi
if ! appliance check --config "$config" >/run/nva/check.out 2>&1; then
  cat /run/nva/check.out >&2
  die "appliance check refused the configuration ($config); nothing started"
fi
prepare
shift || true
# shellcheck disable=SC2086 # NVA_RUN_ARGS is a list of words
exec appliance run --config "$config" ${NVA_RUN_ARGS:-} "$@"

# Shared by the docker/ scripts (sourced): packages, the engine, images, networks and the
# forwarding rules of the Docker testbed, and the clean-up that removes all of it.
#
#   dk_lock                 one run at a time (demo, test, compare, bench)
#   dk_deps                 docker.io, debootstrap, iptables from Debian, if missing
#   dk_engine_up            start dockerd when no engine answers (remembered: dk_engine_down
#                           stops only an engine these scripts started)
#   dk_engine_down          stop that engine again
#   dk_base_image           build local/debian:bookworm (docker/base-image.sh) when missing
#   dk_build NAME DOCKERFILE [FILE...]
#                           build image nva-docker/NAME from a small context of its own
#   dk_images               the base image, nva-docker/appliance (from the release binary,
#                           built when missing) and nva-docker/tools
#   dk_up                   the topology below, ready (the client pings the server)
#   dk_network NAME SUBNET  an internal network nva-docker-NAME on bridge nvad-NAME, no host
#                           address on it, plus the DOCKER-USER accept rule for the bridge
#   dk_down                 containers, networks and rules of this testbed (images stay)
#   dk_ctr NAME CMD...      docker exec in container nva-docker-NAME
#
# The topology (the namespace testbed's roles; other addresses, since this machine's own
# network may be 192.0.2.0/24):
#
#   client 10.0.1.10 --[inside]-- lan [appliance] wan --[outside]-- 198.51.100.1 [router]
#                                10.0.1.1  198.51.100.2              203.0.113.1 --[servers]-- 203.0.113.10 [server]
#
# Everything created is named nva-docker-* (bridges nvad-*), so nothing collides with the
# namespace testbed (nva-* namespaces) that other tests build at the same time.
# shellcheck shell=bash

dk_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dk_repo=$(cd "$dk_here/.." && pwd)
DK=nva-docker-
DK_BR=nvad-
DK_RUN=${NVA_DOCKER_RUN:-/run/nva-docker}
DK_BASE=local/debian:bookworm
export DOCKER_BUILDKIT=0
mkdir -p "$DK_RUN"

# The engine's own client once Debian's engine is installed (looked up at each call: dk_deps
# may install it after this file is read): a newer client on the PATH speaks API options
# the 20.10 daemon refuses (DPDK-NOTES.md), and wants buildx to build. $DOCKER overrides.
dk() {
  local client=${DOCKER:-docker}
  [[ -z ${DOCKER:-} && -x /usr/bin/docker ]] && client=/usr/bin/docker
  "$client" "$@"
}
# One run of the testbed at a time on a machine: the names are fixed, and a second run's
# clean-up would remove the first one's containers. Waits for the other run to end.
dk_lock() {
  exec 9>"$DK_RUN/lock"
  flock -n 9 && return 0
  dk_log "another Docker testbed run holds $DK_RUN/lock; waiting (at most 15 min)"
  flock -w 900 9 || dk_fail "still locked after 15 min"
}
dk_ctr() { local c=$1; shift; dk exec "$DK$c" "$@"; }
dk_log() { echo "[docker] $*"; }
dk_fail() { echo "[docker] error: $*" >&2; return 1; }

dk_deps() {
  local p missing=()
  for p in docker.io debootstrap iptables; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $EUID -eq 0 ]] || dk_fail "missing packages: ${missing[*]}; run as root" || return 1
  dk_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package would start the engine as a service where it can: we start our own, with
  # our options, so a policy forbids that during the install (as scripts/deps.sh does).
  local policy=/usr/sbin/policy-rc.d own=0 status=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  ((own)) && rm -f "$policy"
  ((status == 0)) || dk_fail "apt-get install ${missing[*]} failed ($status)"
}

# The engine we started, if any: its PID is in $DK_RUN/dockerd.pid only then.
dk_engine_up() {
  if dk info >/dev/null 2>&1; then
    return 0
  fi
  [[ -x /usr/sbin/dockerd ]] || dk_fail "no dockerd: run dk_deps (apt-get install docker.io)" || return 1
  # --bridge=none: no default docker0 network, whose masquerade would let a container out
  # of the machine; --ip-forward=false: the host's own forwarding setting stays as it is
  # (the testbed's containers forward, the host only bridges). Builds use --network host.
  # The engine outlives this script (KEEP=1): it must not inherit dk_lock's descriptor.
  dk_log "starting dockerd (log $DK_RUN/dockerd.log)"
  /usr/sbin/dockerd --bridge=none --ip-forward=false --iptables=true \
    --pidfile "$DK_RUN/dockerd.engine.pid" >"$DK_RUN/dockerd.log" 2>&1 9>&- &
  echo $! > "$DK_RUN/dockerd.pid"
  for _ in $(seq 1 150); do
    dk info >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$DK_RUN/dockerd.pid")" 2>/dev/null || break
    sleep 0.2
  done
  tail -20 "$DK_RUN/dockerd.log" >&2
  dk_fail "dockerd did not answer within 30 s"
}

dk_engine_down() {
  local pid
  [[ -s $DK_RUN/dockerd.pid ]] || return 0
  pid=$(cat "$DK_RUN/dockerd.pid")
  rm -f "$DK_RUN/dockerd.pid"
  # Only the process we started, and only while it is still dockerd.
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
    dk_log "stopping the dockerd we started (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || return 0
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

dk_base_image() {
  dk image inspect "$DK_BASE" >/dev/null 2>&1 && return 0
  "$dk_here/base-image.sh"
}

# A build context of just the files named, so the checkout's target/ (gigabytes) is never
# sent to the engine. FILE is a path in the repository, or SOURCE=PATH_IN_CONTEXT.
dk_build() {
  local name=$1 dockerfile=$2 f src dst ctx
  shift 2
  ctx=$(mktemp -d "$DK_RUN/ctx-$name.XXXXXX")
  cp "$dk_repo/$dockerfile" "$ctx/Dockerfile"
  for f in "$@"; do
    src=${f%%=*} dst=${f#*=}
    [[ $src == /* ]] || src=$dk_repo/$src
    mkdir -p "$ctx/$(dirname "$dst")"
    cp -p "$src" "$ctx/$dst"
  done
  dk_log "building image nva-docker/$name"
  local status=0
  dk build -q --network host -t "nva-docker/$name" "$ctx" >/dev/null || status=$?
  rm -rf "$ctx"
  ((status == 0)) || dk_fail "docker build of nva-docker/$name failed"
}

# Internal networks only: nothing reaches or leaves the machine through them. The bridge
# gets no address (inhibit_ipv4), so the host is on none of the testbed's subnets (this
# machine's own eth0 may well be on a documentation range). Bridge netfilter is on here,
# and Docker's isolation rules drop every frame a container forwards from one internal
# network to another (the appliance, the router): one DOCKER-USER accept rule per bridge,
# removed by dk_down.
dk_network() {
  local name=$1 subnet=$2 br=$DK_BR$1
  # The gateway address IPAM reserves: the last one, so .1 stays free for a container.
  dk network create --internal --subnet "$subnet" --gateway "${subnet%.*}.254" \
    -o "com.docker.network.bridge.name=$br" \
    -o com.docker.network.bridge.inhibit_ipv4=true \
    --label nva-docker=1 "$DK$name" >/dev/null
  iptables -I DOCKER-USER -i "$br" -o "$br" -j ACCEPT -m comment --comment "$DK$name"
  # Nor IPv6 on the host's side: no router solicitations or MLD from the bridge.
  sysctl -qw "net.ipv6.conf.$br.disable_ipv6=1" 2>/dev/null || true
}

dk_down() {
  local c n rule
  for c in $(dk ps -aq --filter label=nva-docker=1 2>/dev/null); do
    dk rm -f "$c" >/dev/null 2>&1 || true
  done
  for n in $(dk network ls -q --filter label=nva-docker=1 2>/dev/null); do
    dk network rm "$n" >/dev/null 2>&1 || true
  done
  # Our rules carry the network's name as a comment: delete exactly those.
  if command -v iptables >/dev/null; then
    while rule=$(iptables -S DOCKER-USER 2>/dev/null | grep -m1 -- "--comment \"\\?$DK"); do
      # shellcheck disable=SC2086 # the rule's own words, re-split as iptables printed them
      eval iptables ${rule/-A/-D} || break
    done
  fi
}

# ---- the testbed's addresses (docker/demo.sh and docker/test.sh assert against them) ----
DK_CLIENT=10.0.1.10
DK_LAN=10.0.1.1
DK_PUBLIC=198.51.100.2
DK_ROUTER=198.51.100.1
DK_ROUTER_SRV=203.0.113.1
DK_SERVER=203.0.113.10
DK_FORWARD_PORT=8080

dk_images() {
  dk_base_image
  local bin=$dk_repo/target/release/appliance
  if [[ ! -x $bin ]]; then
    (cd "$dk_repo" && cargo build --release -p appliance)
  fi
  # Debug info stays on the host: 25 MB binary, about 6 MB in the image.
  objcopy --strip-debug "$bin" "$DK_RUN/appliance"
  dk_build appliance docker/Dockerfile "$DK_RUN/appliance=appliance" docker/entrypoint.sh
  dk_build tools docker/tools.Dockerfile docker/hosts.sh
}

# Offloads off on the host's end of each of a container's veths (the container turns its
# own ends off): the peer's index is the container interface's iflink.
dk_host_offloads() {
  local c=$1 idx dev
  for idx in $(dk exec "$c" sh -c 'cat /sys/class/net/eth*/iflink /sys/class/net/lan/iflink /sys/class/net/wan/iflink 2>/dev/null' 2>/dev/null); do
    dev=$(ip -o link | awk -F': ' -v i="$idx" '$1 == i {sub(/@.*/, "", $2); print $2}')
    if [[ -n $dev ]]; then
      ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    fi
  done
}

# docker run for the testbed: labelled (dk_down finds it), IPv6 off (no router
# solicitations or DAD in the way), no restart.
# (The client warns that the host does not forward: the testbed needs no host forwarding.)
dk_run() {
  dk create --label nva-docker=1 --sysctl net.ipv6.conf.all.disable_ipv6=1 "$@" 2>&1 >/dev/null |
    { grep -v "IPv4 forwarding is disabled" >&2 || true; }
}

# Docker 20.10 attaches one network at create: the next ones are connected before start
# (the container then starts with all its interfaces, eth0 first).
dk_start() { dk start "$DK$1" >/dev/null; }

dk_wait_host() {
  local c=$DK$1
  for _ in $(seq 1 100); do
    dk exec "$c" test -e /run/nva-ready 2>/dev/null && return 0
    [[ $(dk inspect -f '{{.State.Running}}' "$c" 2>/dev/null) == true ]] || break
    sleep 0.2
  done
  dk logs "$c" >&2 || true
  dk_fail "container $c did not come up"
}

# The appliance container: every capability dropped but the two the AF_PACKET PMD needs
# (NET_RAW for its socket, NET_ADMIN for the MAC, promiscuous mode, offloads and addresses),
# plus SYS_NICE and IPC_LOCK with huge pages (--in-memory: set_mempolicy, mlock), IPC_LOCK
# for larger AF_PACKET rings, and SYS_ADMIN + IPC_LOCK for AF_XDP: loading its XDP program
# needs CAP_BPF, which Docker 20.10 does not know, so CAP_SYS_ADMIN (its seccomp profile
# allows bpf() only with that), and the UMEM is locked memory. Environment: NVA_* as
# docker/entrypoint.sh.
DK_APPLIANCE_CAPS=(--cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW)
# With huge_pages = true the appliance wants a hugetlbfs mount before it starts EAL, although
# --in-memory never creates a file there: the host's, read-only, satisfies that check.
# shellcheck disable=SC2054 # one --mount argument, its commas are docker's
DK_HUGETLBFS=(--mount type=bind,src=/dev/hugepages,dst=/dev/hugepages,readonly)
dk_appliance() {
  local caps=("${DK_APPLIANCE_CAPS[@]}") extra=()
  # The testbed's default data path is AF_XDP, the fastest that works here (docker/README.md,
  # "Speed"); NVA_PMD=af_packet needs fewer capabilities. The image's own default is af_packet.
  local NVA_PMD=${NVA_PMD:-af_xdp}
  [[ ${NVA_HUGE_PAGES:-false} == true ]] && caps+=(--cap-add SYS_NICE --cap-add IPC_LOCK "${DK_HUGETLBFS[@]}")
  # The AF_PACKET PMD maps its rings locked: rings larger than the default (512 frames)
  # exceed the container's memlock limit, which the host does not let Docker raise.
  [[ ${NVA_PMD_ARGS:-} == *framecnt=* || ${NVA_PMD_ARGS:-} == *blocksz=* ]] && caps+=(--cap-add IPC_LOCK)
  [[ $NVA_PMD == af_xdp ]] && caps+=(--cap-add SYS_ADMIN --cap-add IPC_LOCK)
  local v
  for v in NVA_PMD NVA_PMD_ARGS NVA_WORKERS NVA_LCORES NVA_HUGE_PAGES NVA_MEMORY_MB NVA_MBUFS NVA_RUN_ARGS; do
    [[ -n ${!v:-} ]] && extra+=(-e "$v=${!v}")
  done
  dk_run --name "${DK}appliance" --hostname appliance "${caps[@]}" \
    --sysctl net.ipv4.ip_forward=0 \
    --network "${DK}inside" --ip "$DK_LAN" \
    -e NVA_LAN_ADDRESS="$DK_LAN/24" -e NVA_WAN_ADDRESS="$DK_PUBLIC/24" -e NVA_GATEWAY="$DK_ROUTER" \
    -e NVA_FORWARDS="tcp:$DK_FORWARD_PORT:$DK_CLIENT:80" "${extra[@]}" \
    nva-docker/appliance
  dk network connect --ip "$DK_PUBLIC" "${DK}outside" "${DK}appliance"
  dk_start appliance
}

# Kernel mode: the appliance's place taken by Linux forwarding and nftables NAT with the
# same policy (testbed/kernel-nat.sh, applied from the host through a name for the
# container's network namespace): the baseline the appliance is measured against.
dk_kernel_nat() {
  dk_run --name "${DK}appliance" --hostname appliance --cap-add NET_ADMIN \
    --network "${DK}inside" --ip "$DK_LAN" nva-docker/tools nat "$DK_LAN" "$DK_PUBLIC"
  dk network connect --ip "$DK_PUBLIC" "${DK}outside" "${DK}appliance"
  dk_start appliance
  dk_wait_host appliance
  local ns=${DK}fw
  ip netns attach "$ns" "$(dk inspect -f '{{.State.Pid}}' "${DK}appliance")"
  local status=0
  NVA_PREFIX=$DK NVA_KNAT_LAN=$DK_LAN/24 NVA_KNAT_WAN=$DK_PUBLIC/24 NVA_KNAT_GW=$DK_ROUTER \
    NVA_KNAT_FORWARD=$DK_CLIENT:80 "$dk_repo/testbed/kernel-nat.sh" on >/dev/null || status=$?
  ip netns delete "$ns"
  return "$status"
}

# DK_MODE=appliance (default) or kernel: what takes the appliance's place.
dk_up() {
  dk_down
  dk_network inside 10.0.1.0/24
  dk_network outside 198.51.100.0/24
  dk_network servers 203.0.113.0/24
  local tools=(--cap-add NET_ADMIN nva-docker/tools)
  dk_run --name "${DK}server" --hostname server --network "${DK}servers" --ip "$DK_SERVER" \
    "${tools[@]}" server "$DK_ROUTER_SRV"
  dk_run --name "${DK}router" --hostname router --network "${DK}outside" --ip "$DK_ROUTER" \
    --sysctl net.ipv4.ip_forward=1 "${tools[@]}" router
  dk network connect --ip "$DK_ROUTER_SRV" "${DK}servers" "${DK}router"
  dk_run --name "${DK}client" --hostname client --network "${DK}inside" --ip "$DK_CLIENT" \
    "${tools[@]}" client "$DK_LAN"
  local c
  for c in server router client; do dk_start "$c"; done
  case ${DK_MODE:-appliance} in
  appliance) dk_appliance ;;
  kernel) dk_kernel_nat ;;
  *) dk_fail "DK_MODE=$DK_MODE: appliance or kernel" ;;
  esac
  for c in server router client; do dk_wait_host "$c"; done
  for c in server router client appliance; do dk_host_offloads "$DK$c"; done
  dk_wait_path
}

# Until the client reaches the server through the appliance (20 s at most).
dk_wait_path() {
  local end=$((SECONDS + 20))
  while ((SECONDS < end)); do
    dk_ctr client ping -c 1 -W 1 "$DK_SERVER" >/dev/null 2>&1 && return 0
    if [[ $(dk inspect -f '{{.State.Running}}' "${DK}appliance" 2>/dev/null) != true ]]; then
      dk logs "${DK}appliance" 2>&1 | tail -20 >&2
      dk_fail "the appliance container exited"
      return 1
    fi
    sleep 0.3
  done
  dk logs "${DK}appliance" 2>&1 | tail -20 >&2
  dk_fail "no traffic through the appliance within 20 s (client -> $DK_SERVER)"
}

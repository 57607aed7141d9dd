#!/usr/bin/env bash
# Creates the network-namespace testbed (idempotent: an existing one is removed first).
#
# NVA_TOPOLOGY=single (the default): one appliance.
#
#   nva-c1 10.0.1.10 --+
#                      +-- br0 [nva-lan] --- lan [nva-fw] wan --- 192.0.2.1 [nva-inet] -+- 203.0.113.10  [nva-srv]
#   nva-c2 10.0.1.11 --+        (L2 segment)  10.0.1.1   192.0.2.2       (router)        +- 198.51.100.10 [nva-srv]
#
# NVA_TOPOLOGY=ecmp: two appliances in NAT mode side by side, each with a public address of
# its own, behind an inside router that spreads flows over them with ECMP (a hash of the
# 5-tuple, fib_multipath_hash_policy 1). Each reply comes back to the address it left from,
# so to the appliance that holds its session.
#
#   nva-c1 10.0.1.10 --+                         10.0.2.2 -- lan [nva-fw1] wan 192.0.2.2 --+
#                      +-- br0 [nva-lan] -- [nva-rtr]          10.0.2.1                    +-- br0 [nva-inet] 192.0.2.1 -+- servers
#   nva-c2 10.0.1.11 --+            10.0.1.1  ECMP   10.0.3.2 -- lan [nva-fw2] wan 192.0.2.3 --+           (router)
#                                                              10.0.3.1
#
# nva-fw (nva-fw1, nva-fw2) is the appliance's namespace. Here its veths `lan` and `wan` stay
# unaddressed, with forwarding off: the appliance (AF_PACKET PMD) owns them, and the kernel
# must neither answer ARP nor forward nor reset TCP there (DPDK-NOTES.md).
# testbed/kernel-nat.sh turns nva-fw into a Linux nftables NAT instead (kernel mode, the
# baseline; single topology only).
# Offloads are off on both ends of every veth (AF_PACKET does not carry CHECKSUM_PARTIAL),
# IPv6 is off everywhere (no router solicitations or DAD in the captures), and nothing is
# routed towards the machine's own network: traffic never leaves these namespaces.
#
# Environment: NVA_PREFIX (default "nva-") prefixes every namespace name, so the e2e tests can
# build their own copies side by side; NVA_RUN (default /run/nva-testbed/<prefix>) is where
# testbed/servers.sh keeps its files.
set -euo pipefail
P=${NVA_PREFIX:-nva-}
here=$(cd "$(dirname "$0")" && pwd)

"$here/down.sh" >/dev/null 2>&1 || true

topology=${NVA_TOPOLOGY:-single}
case $topology in
  single)
    names=(c1 c2 lan fw inet srv)
    gateway=fw # what the inside segment's hosts reach the world through
    pairs=("${P}fw:lan ${P}lan:fw" "${P}fw:wan ${P}inet:fw")
    ;;
  ecmp)
    names=(c1 c2 lan rtr fw1 fw2 inet srv)
    gateway=rtr
    pairs=("${P}rtr:lan ${P}lan:rtr"
      "${P}fw1:lan ${P}rtr:fw1" "${P}fw2:lan ${P}rtr:fw2"
      "${P}fw1:wan ${P}inet:fw1" "${P}fw2:wan ${P}inet:fw2")
    ;;
  gwlb | vxlan)
    names=(c1 c2 lan rtr fw1 inet srv)
    [[ $topology == gwlb ]] && names+=(fw2)
    gateway=rtr
    pairs=("${P}rtr:lan ${P}lan:rtr" "${P}rtr:wan ${P}inet:rtr" "${P}fw1:gwlb ${P}rtr:fw1")
    [[ $topology == gwlb ]] && pairs+=("${P}fw2:gwlb ${P}rtr:fw2")
    ;;
  *)
    echo "NVA_TOPOLOGY must be single, ecmp, gwlb or vxlan, not '$topology'" >&2
    exit 2
    ;;
esac

for n in "${names[@]}"; do
  ip netns add "$P$n"
  ip -n "$P$n" link set lo up
  ip netns exec "$P$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

# veth pairs: "ns:if ns:if"
pairs+=(
  "${P}c1:eth0 ${P}lan:c1"
  "${P}c2:eth0 ${P}lan:c2"
  "${P}srv:net1 ${P}inet:srv1"
  "${P}srv:net2 ${P}inet:srv2"
)
for p in "${pairs[@]}"; do
  a=${p%% *} b=${p##* }
  ip link add "${a##*:}" netns "${a%%:*}" type veth peer name "${b##*:}" netns "${b%%:*}"
  for end in "$a" "$b"; do
    n=${end%%:*} i=${end##*:}
    ip netns exec "$n" ethtool -K "$i" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "$n" link set "$i" up
  done
done

# The load-balancer layouts. The router nva-rtr joins the inside segment (10.0.1.1), the
# internet router (192.0.2.2 on its `wan`) and the appliances' segment (bridge `gw`,
# 10.0.9.1; the appliances' tunnel ports are 10.0.9.11 and 10.0.9.12). No NAT: the internet
# router routes 10.0.1.0/24 to nva-rtr, as a cloud routes a VNet's prefix. Whatever nva-rtr
# receives from the inside segment or the internet goes through the load balancer (routing
# table 100 and, for vxlan, 101); what the load balancer hands back comes in on the tunnel
# devices and is routed normally.
#   gwlb:  a TUN device `gwlb0` in table 100, for testbed/gwlb-emu.py (GENEVE, AWS's
#          gateway load balancer) to read and write, over two appliances nva-fw1, nva-fw2.
#   vxlan: Linux VXLAN devices, Azure's gateway load balancer with one appliance nva-fw1:
#          from the inside segment into the internal tunnel (VNI 800, UDP 10800), from the
#          internet into the external one (VNI 801, UDP 10801). The appliance hands a packet
#          back on the other tunnel, so the next hop's MAC in each table is the other
#          device's (and Linux takes the frame, which is addressed to that device and comes
#          from the first one's MAC: not a loop).
gwlb_topology() {
  local r=${P}rtr
  ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0
  ip -n "$r" addr add 10.0.1.1/24 dev lan
  ip -n "$r" addr add 192.0.2.2/24 dev wan
  ip -n "$r" route add default via 192.0.2.1
  # The underlay carries a whole 1500-byte inner packet: GENEVE with GWLB's options adds
  # 68 bytes, VXLAN 50 (as the clouds' own underlays allow more than 1500: 8500, 1550+).
  ip -n "$r" link add gw mtu 1600 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  for f in fw1 fw2; do
    [[ -e /run/netns/$P$f ]] || continue
    ip -n "$r" link set "$f" mtu 1600 master gw
    ip -n "$P$f" link set gwlb mtu 1600
    ip netns exec "$P$f" sysctl -qw net.ipv4.ip_forward=0
  done
  ip -n "$r" link set gw up
  ip -n "$r" addr add 10.0.9.1/24 dev gw
  ip -n "${P}inet" addr add 192.0.2.1/24 dev rtr
  ip -n "${P}inet" route add 10.0.1.0/24 via 192.0.2.2
  if [[ $topology == gwlb ]]; then
    ip -n "$r" tuntap add dev gwlb0 mode tun
    ip -n "$r" link set gwlb0 up
    ip -n "$r" route add default dev gwlb0 table 100
    ip -n "$r" rule add iif lan lookup 100
    ip -n "$r" rule add iif wan lookup 100
  else
    ip -n "$r" link add vx800 address 02:00:00:00:08:00 type vxlan id 800 local 10.0.9.1 \
      remote 10.0.9.11 dstport 10800 nolearning
    ip -n "$r" link add vx801 address 02:00:00:00:08:01 type vxlan id 801 local 10.0.9.1 \
      remote 10.0.9.11 dstport 10801 nolearning
    for v in vx800 vx801; do
      ip netns exec "$r" ethtool -K "$v" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
      ip -n "$r" link set "$v" up
    done
    ip -n "$r" neigh add 169.254.8.1 lladdr 02:00:00:00:08:01 dev vx800 nud permanent
    ip -n "$r" neigh add 169.254.8.1 lladdr 02:00:00:00:08:00 dev vx801 nud permanent
    ip -n "$r" route add default via 169.254.8.1 dev vx800 onlink table 100
    ip -n "$r" route add default via 169.254.8.1 dev vx801 onlink table 101
    ip -n "$r" rule add iif lan lookup 100
    ip -n "$r" rule add iif wan lookup 101
  fi
}

# The inside segment: a plain bridge, no STP, forwarding at once.
ip -n "${P}lan" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
for i in c1 c2 "$gateway"; do ip -n "${P}lan" link set "$i" master br0; done
ip -n "${P}lan" link set br0 up

# Inside hosts: the appliance's (or the inside router's) address is their gateway.
ip -n "${P}c1" addr add 10.0.1.10/24 dev eth0
ip -n "${P}c2" addr add 10.0.1.11/24 dev eth0
for c in c1 c2; do ip -n "$P$c" route add default via 10.0.1.1; done

if [[ $topology == single ]]; then
  # The appliance: unaddressed, no forwarding (appliance mode).
  ip netns exec "${P}fw" sysctl -qw net.ipv4.ip_forward=0
  # The "internet" router: the appliance's public segment and two server networks. It has no
  # route to 10.0.1.0/24: a packet that leaves the appliance untranslated gets no answer.
  ip -n "${P}inet" addr add 192.0.2.1/24 dev fw
elif [[ $topology == ecmp ]]; then
  for f in fw1 fw2; do ip netns exec "$P$f" sysctl -qw net.ipv4.ip_forward=0; done
  # The inside router: the hosts' gateway, an ECMP default route over both appliances,
  # hashed on the 5-tuple so that the flows of one host spread too.
  ip -n "${P}rtr" addr add 10.0.1.1/24 dev lan
  ip -n "${P}rtr" addr add 10.0.2.2/24 dev fw1
  ip -n "${P}rtr" addr add 10.0.3.2/24 dev fw2
  ip netns exec "${P}rtr" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
  ip -n "${P}rtr" route add default nexthop via 10.0.2.1 dev fw1 nexthop via 10.0.3.1 dev fw2
  # The "internet" router: both appliances' public side on one segment. Again no route to
  # 10.0.1.0/24.
  ip -n "${P}inet" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
  for i in fw1 fw2; do ip -n "${P}inet" link set "$i" master br0; done
  ip -n "${P}inet" link set br0 up
  ip -n "${P}inet" addr add 192.0.2.1/24 dev br0
else
  gwlb_topology
fi
ip -n "${P}inet" addr add 203.0.113.1/24 dev srv1
ip -n "${P}inet" addr add 198.51.100.1/24 dev srv2
ip netns exec "${P}inet" sysctl -qw net.ipv4.ip_forward=1

# Servers: one host on both networks; replies leave by the network they belong to.
ip -n "${P}srv" addr add 203.0.113.10/24 dev net1
ip -n "${P}srv" addr add 198.51.100.10/24 dev net2
ip -n "${P}srv" route add default via 203.0.113.1 dev net1
ip -n "${P}srv" route add default via 198.51.100.1 dev net2 table 100
ip -n "${P}srv" rule add from 198.51.100.10 table 100

if [[ $topology == single ]]; then
  echo "testbed up (${P}*): c1 10.0.1.10, c2 10.0.1.11 -- [${P}fw lan|wan] -- 192.0.2.1 router -- servers 203.0.113.10, 198.51.100.10"
elif [[ $topology == ecmp ]]; then
  echo "testbed up (${P}*, ecmp): c1 10.0.1.10, c2 10.0.1.11 -- 10.0.1.1 router, ECMP over [${P}fw1 lan|wan 192.0.2.2] and [${P}fw2 lan|wan 192.0.2.3] -- 192.0.2.1 router -- servers"
else
  fws="${P}fw1 10.0.9.11"
  [[ $topology == gwlb ]] && fws+=", ${P}fw2 10.0.9.12"
  echo "testbed up (${P}*, $topology): c1 10.0.1.10, c2 10.0.1.11 -- 10.0.1.1 [${P}rtr] 192.0.2.2 -- 192.0.2.1 router -- servers; load balancer to $fws"
fi

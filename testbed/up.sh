#!/usr/bin/env bash
# Creates the testbed: namespaces nva-client, nva-fw (the appliance) and nva-server, joined by
# veth pairs, offloads off on every end (AF_PACKET does not carry checksum offload).
#   nva-client (10.0.1.10/24, veth c0) <-> lan [nva-fw] wan <-> (s0, 10.0.1.20/24) nva-server
# The appliance's namespace stays unaddressed with forwarding off, so its kernel never answers
# for the appliance.
set -euo pipefail
for n in nva-client nva-fw nva-server; do
  ip netns add "$n"
  ip -n "$n" link set lo up
done
ip link add c0 netns nva-client type veth peer name lan netns nva-fw
ip link add s0 netns nva-server type veth peer name wan netns nva-fw
for pair in nva-client:c0 nva-fw:lan nva-fw:wan nva-server:s0; do
  n=${pair%%:*} i=${pair##*:}
  ip netns exec "$n" ethtool -K "$i" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$n" link set "$i" up
done
ip netns exec nva-fw sysctl -qw net.ipv4.ip_forward=0
ip -n nva-client addr add 10.0.1.10/24 dev c0
ip -n nva-server addr add 10.0.1.20/24 dev s0
echo "testbed up: nva-client 10.0.1.10 <-> nva-fw (lan|wan) <-> nva-server 10.0.1.20"

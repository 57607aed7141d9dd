#!/bin/bash
# Entrypoint of the tools image: sets up one host role of the Docker testbed, the roles of
# the namespace testbed (testbed/up.sh, testbed/servers.sh), then idles until stopped.
#   nva-host client GATEWAY   default route via the appliance; nginx on :80, the target of
#                             the appliance's port forward (c2's role in testbed/)
#   nva-host router           forwards between its networks (--sysctl net.ipv4.ip_forward=1)
#   nva-host nat LAN_IP WAN_IP  kernel mode: the appliance's place, its interfaces named lan
#                             and wan; docker/lib.sh applies testbed/kernel-nat.sh to it
#   nva-host server           nginx (big.bin: 16 MiB of random bytes, and its SHA-256),
#                             dnsmasq authoritative for nva.test, iperf3 on 5201 and 5202
# Logs (access logs with the client address first) are in /var/log/nva; /run/nva-ready
# appears when the role is up. Needs NET_ADMIN (routes, offloads).
set -euo pipefail
role=${1:?usage: nva-host client GATEWAY | router | server}
logs=/var/log/nva www=/srv/www
mkdir -p "$logs" "$www"

# Offloads off on every interface (both ends of each veth; the host's ends are done by
# docker/lib.sh): AF_PACKET does not carry CHECKSUM_PARTIAL (DPDK-NOTES.md).
for dev in /sys/class/net/eth*; do
  ethtool -K "${dev##*/}" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
done

# nginx never resolves names at start (unlike python3 -m http.server, DPDK-NOTES.md).
web() { # text, then the addresses to listen on
  echo "$1" > "$www/index.html"
  shift
  {
    echo "worker_processes 1; daemon on; user root; pid /run/nginx.pid;"
    echo "error_log $logs/nginx-error.log; events { worker_connections 512; }"
    echo "http { default_type application/octet-stream; sendfile on; keepalive_timeout 5;"
    echo "  access_log $logs/access.log;"
    echo "  server {"
    for l in "$@"; do echo "    listen $l;"; done
    echo "    root $www; } }"
  } > /etc/nginx/nva.conf
  nginx -c /etc/nginx/nva.conf
}
my_ip() { ip -o -4 addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}'; }

case $role in
client)
  ip route replace default via "${2:?the gateway, the inside address of the appliance}"
  web "served by the client (inside, port forward target)" "$(my_ip):80"
  ;;
nat)
  for pair in "lan ${2:?LAN_IP}" "wan ${3:?WAN_IP}"; do
    read -r name addr <<<"$pair"
    dev=$(ip -o -4 addr show | awk -v ip="$addr" '{split($4, a, "/"); if (a[1] == ip) print $2}')
    ip link set "$dev" down && ip link set "$dev" name "$name" && ip link set "$name" up
  done
  ;;
router)
  [[ $(cat /proc/sys/net/ipv4/ip_forward) == 1 ]] || { echo "router: run with --sysctl net.ipv4.ip_forward=1" >&2; exit 2; }
  ;;
server)
  ip=$(my_ip)
  ip route replace default via "${2:?the gateway: the router}"
  head -c 16777216 /dev/urandom > "$www/big.bin"
  (cd "$www" && sha256sum big.bin > big.bin.sha256)
  web "served by the server" "$ip:80"
  # DNS: authoritative for nva.test, no upstream, no /etc/hosts, every query logged.
  dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll --bind-interfaces \
    --listen-address="$ip" --auth-server=ns.nva.test,"$ip" --auth-zone=nva.test \
    --host-record=ns.nva.test,"$ip" --host-record=www.nva.test,"$ip" \
    --log-queries=extra --log-facility="$logs/dnsmasq.log" --user=root --group=root
  for port in 5201 5202; do
    iperf3 -s -D -p "$port" --logfile "$logs/iperf3-$port.log"
  done
  ;;
*)
  echo "unknown role $role" >&2
  exit 2
  ;;
esac
touch /run/nva-ready
echo "nva-host: $role ready"
# PID 1 ends on docker stop's SIGTERM at once (a bare sleep would ignore it for 10 s).
trap 'exit 0' TERM INT
sleep infinity &
wait

#!/usr/bin/env bash
# Starts the testbed's servers (after testbed/up.sh), each a real program in its namespace:
#   nva-srv  nginx on 203.0.113.10:80 and 198.51.100.10:80 (serves big.bin, 16 MiB of random
#            bytes, and its SHA-256 in big.bin.sha256), dnsmasq authoritative for zone
#            nva.test on both addresses (no upstream), iperf3 servers on ports 5201 and 5202.
#            UDP port 9 stays closed (port unreachable tests).
#   nva-c2   nginx on 10.0.1.11:80, the target of the port forward 192.0.2.2:8080.
# Access logs (client address first) and PID files are in $NVA_RUN
# (default /run/nva-testbed/<prefix>): srv-access.log, c2-access.log, dnsmasq.log, iperf3-*.log.
#   testbed/servers.sh          start (restarts the ones already running)
#   testbed/servers.sh stop     stop them (testbed/down.sh does too)
set -euo pipefail
P=${NVA_PREFIX:-nva-}
run=${NVA_RUN:-/run/nva-testbed/${P%-}}
srv=${P}srv c2=${P}c2

stop() {
  local ours
  ours=$(ip netns pids "$srv" 2>/dev/null; ip netns pids "$c2" 2>/dev/null)
  for f in "$run"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    # Only a process that lives in one of this testbed's namespaces.
    if [[ -n $pid ]] && grep -qx "$pid" <<<"$ours"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

if [[ ${1:-start} == stop ]]; then
  stop
  exit 0
fi
[[ -e /run/netns/$srv && -e /run/netns/$c2 ]] || { echo "no testbed ${P}*: run testbed/up.sh first" >&2; exit 1; }
stop
mkdir -p "$run/www-srv" "$run/www-c2" "$run/tmp"
chmod 755 "$run" "$run/www-srv" "$run/www-c2"

if [[ ! -s $run/www-srv/big.bin ]]; then
  head -c 16777216 /dev/urandom > "$run/www-srv/big.bin"
  (cd "$run/www-srv" && sha256sum big.bin > big.bin.sha256)
fi
echo "served by ${srv}" > "$run/www-srv/index.html"
echo "served by ${c2} (inside, port forward target)" > "$run/www-c2/index.html"
chmod 644 "$run"/www-*/*

# nginx never resolves names at start (unlike python3 -m http.server, DPDK-NOTES.md).
nginx_conf() { # name listen...
  local name=$1; shift
  {
    echo "worker_processes 1; daemon on; user root;"
    echo "pid $run/nginx-$name.pid; error_log $run/$name-error.log;"
    echo "events { worker_connections 512; }"
    echo "http {"
    echo "  default_type application/octet-stream; sendfile on; keepalive_timeout 5;"
    echo "  access_log $run/$name-access.log;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $run/tmp/$name-$t;"; done
    echo "  server {"
    for l in "$@"; do echo "    listen $l;"; done
    echo "    root $run/www-$name;"
    echo "  }"
    echo "}"
  } > "$run/nginx-$name.conf"
}
nginx_conf srv 203.0.113.10:80 198.51.100.10:80
nginx_conf c2 10.0.1.11:80
: > "$run/srv-access.log"
: > "$run/c2-access.log"
ip netns exec "$srv" nginx -c "$run/nginx-srv.conf" -e "$run/srv-error.log"
ip netns exec "$c2" nginx -c "$run/nginx-c2.conf" -e "$run/c2-error.log"

# DNS: authoritative for nva.test, no upstream, no /etc/hosts, every query logged.
: > "$run/dnsmasq.log"
ip netns exec "$srv" dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
  --bind-interfaces --listen-address=203.0.113.10 --listen-address=198.51.100.10 \
  --auth-server=ns.nva.test,203.0.113.10,198.51.100.10 --auth-zone=nva.test \
  --host-record=ns.nva.test,203.0.113.10 --host-record=www.nva.test,203.0.113.10 \
  --host-record=srv2.nva.test,198.51.100.10 \
  --log-queries=extra --log-facility="$run/dnsmasq.log" --user=root --group=root \
  --pid-file="$run/dnsmasq.pid"

# iperf3: one test at a time per server, so two (the reload test runs one while probing).
for port in 5201 5202; do
  ip netns exec "$srv" iperf3 -s -D -p "$port" -I "$run/iperf3-$port.pid" --logfile "$run/iperf3-$port.log"
done

# Wait until every server listens.
for _ in $(seq 1 50); do
  ok=1
  ip netns exec "$srv" ss -Hltn | grep -q '203.0.113.10:80 ' || ok=0
  ip netns exec "$srv" ss -Hltn | grep -q ':5201 ' || ok=0
  ip netns exec "$srv" ss -Hltn | grep -q ':5202 ' || ok=0
  ip netns exec "$srv" ss -Hlun | grep -q '203.0.113.10:53 ' || ok=0
  ip netns exec "$c2" ss -Hltn | grep -q '10.0.1.11:80 ' || ok=0
  ((ok)) && break
  sleep 0.1
done
((ok)) || { echo "servers did not all start; logs in $run" >&2; exit 1; }
echo "servers up (${P}*): http 203.0.113.10 198.51.100.10 10.0.1.11, dns nva.test, iperf3 5201 5202; files in $run"

#!/usr/bin/env bash
# The Docker testbed's show (`make docker-demo`): the same as testbed/demo.sh, with the
# appliance, client, router and server as containers (topology in docker/lib.sh). Installs
# Docker and starts dockerd when needed, builds the images, brings the topology up, runs
# the show, prints `appliance stats` from inside the appliance container, and removes
# containers and networks (images stay), also when a step fails. Each step is checked:
# "ok"/"FAIL" lines and a closing "N passed, N failed" (docker/test.sh relies on it).
#   docker/demo.sh          the show
#   KEEP=1 docker/demo.sh   leave the topology (and the engine) up; docker/down.sh removes it
# The last steps: a bad configuration is refused (exit 2, the error in docker logs), and
# docker stop ends the appliance cleanly.
# Environment for the appliance container: NVA_PMD, NVA_PMD_ARGS, NVA_WORKERS, ... (see
# docker/entrypoint.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/lib.sh
source docker/lib.sh
work=$(mktemp -d "$DK_RUN/demo.XXXXXX")

passed=0 failed=0
finish() {
  local status=$?
  ((status == 0)) || bad "the show stopped early (exit status $status): see the lines above"
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "topology left up (${DK}*); docker/down.sh removes it"
  else
    dk_down
    dk_engine_down
  fi
  rm -rf "$work"
  echo
  echo "docker testbed: $passed passed, $failed failed"
  ((failed == 0 && status == 0)) || exit 1
}
dk_lock
trap finish EXIT
step() { echo; echo "== $*"; }
ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "FAIL - $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: the command's success is the check.
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

start=$SECONDS
dk_deps
dk_engine_up
dk_images
dk_up
echo "topology up in $((SECONDS - start)) s (images included): client $DK_CLIENT -- appliance $DK_LAN | $DK_PUBLIC -- router -- server $DK_SERVER"

step "ping client -> $DK_SERVER (out and back through NAT)"
out=$(dk_ctr client ping -c 3 -i 0.2 -W 2 "$DK_SERVER" || true)
echo "$out" | tail -2
check "ping through the appliance, no loss" grep -q " 0% packet loss" <<<"$out"

step "DNS: the client asks the server for www.nva.test (UDP through NAT)"
out=$(dk_ctr client dig +short +time=2 +tries=2 "@$DK_SERVER" www.nva.test || true)
echo "$out"
check "DNS answer www.nva.test = $DK_SERVER" test "$out" = "$DK_SERVER"
line=$(dk_ctr server grep ' from ' /var/log/nva/dnsmasq.log | tail -1)
echo "$line"
check "the DNS server saw the query from the public address" grep -q "from $DK_PUBLIC\$" <<<"$line"

step "HTTP: the client downloads 16 MiB from $DK_SERVER"
dk_ctr client curl -sS --max-time 60 -o /tmp/big.bin \
  -w '%{size_download} bytes in %{time_total} s\n' "http://$DK_SERVER/big.bin" || true
got=$(dk_ctr client sha256sum /tmp/big.bin 2>/dev/null | cut -d' ' -f1)
want=$(dk_ctr server cut -d' ' -f1 /srv/www/big.bin.sha256)
echo "sha256 received $got"
echo "sha256 served   $want"
check "the download is intact (SHA-256)" test -n "$got" -a "$got" = "$want"
line=$(dk_ctr server grep 'GET /big.bin' /var/log/nva/access.log | tail -1)
echo "the server's access log: $line"
check "SNAT: the server saw the client as $DK_PUBLIC" test "${line%% *}" = "$DK_PUBLIC"

step "port forward: the server fetches http://$DK_PUBLIC:$DK_FORWARD_PORT/ (the client's web server)"
out=$(dk_ctr server curl -sS --max-time 5 "http://$DK_PUBLIC:$DK_FORWARD_PORT/" || true)
echo "$out"
check "the port forward reaches the client's web server" grep -q "port forward target" <<<"$out"
line=$(dk_ctr client tail -1 /var/log/nva/access.log)
check "the forwarded request arrives from the server's own address" test "${line%% *}" = "$DK_SERVER"
step "hairpin: the client fetches http://$DK_PUBLIC:$DK_FORWARD_PORT/"
out=$(dk_ctr client curl -sS --max-time 5 "http://$DK_PUBLIC:$DK_FORWARD_PORT/" || true)
echo "$out"
line=$(dk_ctr client tail -1 /var/log/nva/access.log)
echo "the client's access log: $line"
check "hairpin: reached through the public address, seen from it" \
  test "${line%% *}" = "$DK_PUBLIC" -a -n "$(grep "port forward target" <<<"$out")"

step "ingress: nmap from the router against the public address (only $DK_FORWARD_PORT may be open)"
out=$(dk_ctr router nmap -n -Pn -sS -T4 --max-retries 1 --min-rate 2000 \
  -p "1-1024,5201,$DK_FORWARD_PORT" "$DK_PUBLIC" -oG - || true)
grep -E "Ports:" <<<"$out" | sed 's/\t/\n  /g'
open=$(grep -o '[0-9]*/open/[a-z]*' <<<"$out" | tr '\n' ' ')
check "nmap finds only $DK_FORWARD_PORT/tcp open (found: ${open:-none})" test "$open" = "$DK_FORWARD_PORT/open/tcp "

step "iperf3 TCP, 5 s"
out=$(dk_ctr client timeout 20 iperf3 -c "$DK_SERVER" -p 5201 -t 5 -f m || true)
grep -E "sender|receiver" <<<"$out" || true
check "iperf3 TCP moved data" grep -qE "[0-9.]+ Mbits/sec .*receiver" <<<"$out"

step "appliance stats (docker exec nva-docker-appliance appliance stats)"
dk_ctr appliance appliance stats --config /run/nva/appliance.toml || true
dk_ctr appliance appliance stats --config /run/nva/appliance.toml --json > "$work/stats.json" || true
check "counters: both ports received and sent, sessions created, the worker counted cycles" \
  python3 - "$work/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ok = all(p["rx_packets"] > 0 and p["tx_packets"] > 0 for p in s["ports"])
ok &= s["sessions"]["created_total"] > 0
ok &= all(w["packets"] > 0 and w["busy_cycles"] > 0 for w in s["workers"])
sys.exit(0 if ok else 1)
PY
# The first health check runs one interval (5 s) after the start.
for _ in $(seq 1 40); do
  health=$(dk inspect -f '{{.State.Health.Status}}' "${DK}appliance")
  [[ $health == starting ]] || break
  sleep 0.5
done
check "the container's HEALTHCHECK (appliance stats) says $health" test "$health" = healthy

step "a bad configuration, mounted: refused by appliance check, its error in docker logs"
printf '[eal]\nlcores = "0-1"\nhuge_page = true\n' > "$work/bad.toml"
dk run -d --label nva-docker=1 --name "${DK}badconfig" --network none --cap-drop ALL \
  -v "$work/bad.toml:/etc/nva/appliance.toml:ro" nva-docker/appliance >/dev/null
code=$(dk wait "${DK}badconfig")
logs=$(dk logs "${DK}badconfig" 2>&1)
echo "$logs" | sed 's/^/  /'
check "exit status $code (2: nothing started), the field named in docker logs" \
  test "$code" = 2 -a -n "$(grep huge_page <<<"$logs")"
dk rm -f "${DK}badconfig" >/dev/null

if [[ ${KEEP:-0} != 1 ]]; then
  step "docker stop nva-docker-appliance (SIGTERM; the final counters are in docker logs)"
  t0=$(date +%s.%N)
  dk stop "${DK}appliance" >/dev/null
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  code=$(dk inspect -f '{{.State.ExitCode}}' "${DK}appliance")
  dk logs "${DK}appliance" 2>/dev/null | sed -n '/^ran /,$p'
  check "clean exit (status $code) in $secs s, within docker stop's 10 s" \
    awk -v s="$secs" -v c="$code" 'BEGIN { exit !(c == 0 && s < 10) }'
fi
echo
echo "show done in $((SECONDS - start)) s"

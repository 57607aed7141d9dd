#!/usr/bin/env bash
# The testbed demo: two inside hosts, the appliance, a router and servers in network
# namespaces (testbed/up.sh draws it); a short show through the appliance, its counters,
# tear-down.
#   testbed/demo.sh                 the appliance (AF_PACKET on nva-fw's veths, release build)
#   MODE=kernel testbed/demo.sh     the same show through Linux nftables NAT (kernel-nat.sh)
#   KEEP=1 testbed/demo.sh          leave everything up; testbed/down.sh removes it
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=testbed/lib.sh
source testbed/lib.sh
mode=${MODE:-appliance}
[[ ${KEEP:-0} == 1 ]] || trap tb_down EXIT

tb_start "$mode"
tb_wait

step() { echo; echo "== $*"; }

step "ping c1 -> 203.0.113.10 (out and back through NAT)"
nsx c1 ping -c 3 -i 0.2 203.0.113.10

step "DNS: c2 asks the server for www.nva.test (UDP through NAT)"
nsx c2 dig +short +time=2 +tries=2 @203.0.113.10 www.nva.test
grep ' from ' "$NVA_RUN/dnsmasq.log" | tail -1

step "HTTP: c1 downloads 16 MiB from 203.0.113.10"
nsx c1 curl -sS --max-time 60 -o "$NVA_RUN/c1-big.bin" \
  -w '%{size_download} bytes in %{time_total} s\n' http://203.0.113.10/big.bin
(cd "$NVA_RUN" && sha256sum c1-big.bin | cut -d' ' -f1) | grep -qf <(cut -d' ' -f1 "$NVA_RUN/www-srv/big.bin.sha256") \
  && echo "checksum matches" || echo "CHECKSUM DIFFERS"
echo "the server's access log (client address first):"
tail -1 "$NVA_RUN/srv-access.log"

step "port forward: the server fetches http://192.0.2.2:8080/ (c2's web server)"
nsx srv curl -sS --max-time 5 http://192.0.2.2:8080/
step "hairpin: c1 fetches http://192.0.2.2:8080/"
nsx c1 curl -sS --max-time 5 http://192.0.2.2:8080/
echo "c2's access log:"
tail -2 "$NVA_RUN/c2-access.log"

step "ingress: nmap from the router against the public address (only 8080 may be open)"
nsx inet nmap -n -Pn -sS -T4 --max-retries 1 --min-rate 2000 -p 1-1024,8080 192.0.2.2 | grep -E "^[0-9]+/|Not shown|filtered"

step "traceroute c1 -> 203.0.113.10 (ICMP errors translated back)"
nsx c1 traceroute -n -q 1 -w 2 -m 6 203.0.113.10

step "iperf3 TCP, 5 s"
nsx c1 timeout 20 iperf3 -c 203.0.113.10 -p 5201 -t 5 -f m | grep -E "sender|receiver"

if [[ $mode == appliance ]]; then
  step "appliance stats"
  "${APPLIANCE:-target/release/appliance}" stats --config "$app_config" || echo "(no control socket answered)"
fi

if [[ ${KEEP:-0} == 1 ]]; then
  echo
  echo "testbed left up (${P}*, $mode mode${app_pid:+, appliance pid $app_pid}); testbed/down.sh removes everything"
  exit 0
fi
if [[ $mode == appliance ]]; then
  step "appliance counters"
  tb_stop_appliance
  cat "$app_out"
fi

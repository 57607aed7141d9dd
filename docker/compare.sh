#!/usr/bin/env bash
# The Docker testbed's data paths side by side, in one run on the same topology:
#   kernel                 Linux forwarding + nftables NAT in the appliance's place
#   af_packet[:DEVARGS]    the appliance on DPDK's AF_PACKET PMD (extra devargs: qpairs,
#                          blocksz, framesz, framecnt, qdisc_bypass)
#   af_xdp[:DEVARGS]       the appliance on DPDK's AF_XDP PMD (veth has native XDP)
#   VARIANT@WORKERS        that many worker lcores (control and one worker share core 0)
# For each: curl of the 16 MiB file (best of 3), iperf3 TCP for $SECS s, and iperf3 UDP
# with 64-byte frames as fast as one sender goes (generator-bound on 2 cores: DPDK-NOTES.md);
# ROUNDS (2) passes over the list, the best of each figure kept.
# Offloads are off on every veth end, as in the namespace testbed.
#   docker/compare.sh                         the default list below
#   docker/compare.sh kernel af_xdp           just those
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/lib.sh
source docker/lib.sh
SECS=${SECS:-5}
variants=("$@")
((${#variants[@]})) || variants=(
  kernel
  af_packet
  "af_packet:framecnt=4096"
  "af_packet:blocksz=65536,framesz=2048,framecnt=4096"
  "af_packet:qpairs=2@2"
  af_xdp
  "af_xdp:busy_budget=0"
)
dk_lock
trap 'dk_down; dk_engine_down' EXIT
dk_deps
dk_engine_up
dk_images

# The machine is shared: ROUNDS passes over the list, each figure the best of its variant's
# rounds, so a busy moment hits every variant alike rather than one.
ROUNDS=${ROUNDS:-2}
declare -A curl_best tcp_best tcp_retr pps_best pps_sent
for round in $(seq 1 "$ROUNDS"); do
for v in "${variants[@]}"; do
  spec=${v%@*} workers=1
  [[ $v == *@* ]] && workers=${v##*@}
  pmd=${spec%%:*} args=
  [[ $spec == *:* ]] && args=${spec#*:}
  echo "== $v (round $round of $ROUNDS)"
  ok=1
  if [[ $pmd == kernel ]]; then
    DK_MODE=kernel dk_up || ok=0
  else
    lcores="0-1"
    ((workers == 2)) && lcores="0@0,1@0,2@1"
    NVA_PMD=$pmd NVA_PMD_ARGS=$args NVA_WORKERS=$workers NVA_LCORES=$lcores dk_up || ok=0
  fi
  ((ok)) || continue
  for _ in 1 2 3; do
    t=$(dk_ctr client curl -sS --max-time 60 -o /dev/null -w '%{time_total}' "http://$DK_SERVER/big.bin" || echo 999)
    if [[ -z ${curl_best[$v]:-} ]] || awk -v a="$t" -v b="${curl_best[$v]}" 'BEGIN { exit !(a < b) }'; then curl_best[$v]=$t; fi
  done
  tcp=$(dk_ctr client timeout $((SECS + 15)) iperf3 -c "$DK_SERVER" -p 5201 -t "$SECS" -f m || true)
  read -r g r < <(awk '/sender$/ { r = $9 } /receiver$/ { g = $7 / 1000 } END { print g + 0, r + 0 }' <<<"$tcp")
  if awk -v a="$g" -v b="${tcp_best[$v]:-0}" 'BEGIN { exit !(a > b) }'; then tcp_best[$v]=$g tcp_retr[$v]=$r; fi
  udp=$(dk_ctr client timeout $((SECS + 15)) iperf3 -c "$DK_SERVER" -p 5201 -u -l 22 -b 0 -t "$SECS" -f m || true)
  read -r got sent < <(awk -v s="$SECS" '/sender$/ { split($11, a, "/"); sent = a[2] } /receiver$/ { split($11, n, "/"); got = n[2] - n[1] } END { printf "%.0f %.0f\n", got / s / 1e3, sent / s / 1e3 }' <<<"$udp")
  if ((got > ${pps_best[$v]:-0})); then pps_best[$v]=$got pps_sent[$v]=$sent; fi
  echo "curl ${t} s (last of 3); TCP $g Gbit/s, $r retr; 64-byte UDP $got of $sent kpps"
  if [[ $pmd != kernel ]]; then
    dk_ctr appliance appliance stats --config /run/nva/appliance.toml | grep -A3 '^worker' || true
  fi
done
done

echo
echo "== Docker testbed, client -> appliance -> router -> server; offloads off on every veth;"
echo "   $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%F)"
printf '| %-52s | %-20s | %-34s | %-22s |\n' "data path" "curl 16 MiB" "iperf3 TCP ${SECS} s" "64-byte UDP, 1 sender"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..22})" "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..24})"
kernel_curl=${curl_best[kernel]:-}
for v in "${variants[@]}"; do
  if [[ -z ${curl_best[$v]:-} ]]; then
    printf '| %-52s | %-20s | %-34s | %-22s |\n' "$v" "did not start" "-" "-"
    continue
  fi
  c=$(awk -v t="${curl_best[$v]}" -v k="$kernel_curl" 'BEGIN { printf "%.0f MB/s", 16777216 / t / 1e6; if (k != "") printf " (%.2f x)", k / t }')
  tc=$(awk -v g="${tcp_best[$v]}" -v k="${tcp_best[kernel]:-}" -v r="${tcp_retr[$v]}" 'BEGIN { printf "%.2f Gbit/s", g; if (k > 0) printf " (%.2f x)", g / k; printf ", %d retr", r }')
  printf '| %-52s | %-20s | %-34s | %-22s |\n' "$v" "$c" "$tc" "${pps_best[$v]} of ${pps_sent[$v]} kpps"
done
echo "(x: the ratio to the kernel path in the same run; curl: 16 MiB, best of 3 x $ROUNDS rounds)"

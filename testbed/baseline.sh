#!/usr/bin/env bash
# The baseline: the same show through Linux nftables masquerade (kernel mode) and, when asked,
# through the appliance on the same testbed, so the two can be compared figure by figure.
#   testbed/baseline.sh                  kernel mode only
#   testbed/baseline.sh kernel appliance both, one after the other (appliance: release build)
# Prints curl time for the 16 MiB download (best of 3), iperf3 TCP (10 s) and UDP (5 s,
# 1400-byte datagrams offered at $UDP_RATE, default 500M) rates, and the packet rate of 64-byte
# UDP frames sent as fast as one iperf3 goes. Offloads are off on every
# veth: state that with the figures (DPDK-NOTES.md). The machine's other load shows in them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=testbed/lib.sh
source testbed/lib.sh
udp_rate=${UDP_RATE:-500M}
modes=("$@")
((${#modes[@]})) || modes=(kernel)
trap tb_down EXIT

results=()
for mode in "${modes[@]}"; do
  echo "== $mode mode"
  tb_start "$mode" >/dev/null
  tb_wait
  best=
  for _ in 1 2 3; do
    t=$(nsx c1 curl -sS --max-time 60 -o /dev/null -w '%{time_total}' http://203.0.113.10/big.bin)
    if [[ -z $best ]] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$t; fi
  done
  curl_fig=$(awk -v t="$best" 'BEGIN { printf "%.3f s (%.0f Mbit/s)", t, 16777216 * 8 / t / 1e6 }')
  echo "curl 16 MiB: best of 3 $curl_fig"

  tcp=$(nsx c1 timeout 30 iperf3 -c 203.0.113.10 -p 5201 -t 10 -f m)
  tcp_fig=$(awk '/sender$/ { s = $7 " Mbit/s sent, " $9 " retransmits" } /receiver$/ { r = $7 " Mbit/s received" } END { print r "; " s }' <<<"$tcp")
  echo "iperf3 TCP 10 s: $tcp_fig"

  udp=$(nsx c1 timeout 30 iperf3 -c 203.0.113.10 -p 5201 -u -l 1400 -b "$udp_rate" -t 5 -f m)
  udp_fig=$(awk -v offered="$udp_rate" '/receiver$/ { split($11, n, "/"); printf "%s Mbit/s received of %s offered (%.0f pps), lost %s %s\n", $7, offered, (n[2] - n[1]) / 5, $11, $12 }' <<<"$udp")
  echo "iperf3 UDP 5 s: $udp_fig"

  # Packet rate: 64-byte frames (22-byte datagrams) as fast as one iperf3 sender goes.
  small=$(nsx c1 timeout 30 iperf3 -c 203.0.113.10 -p 5201 -u -l 22 -b 0 -t 5 -f m)
  pps_fig=$(awk '/sender$/ { split($11, s, "/"); sent = s[2] } /receiver$/ { split($11, n, "/"); printf "%.0f pps forwarded of %.0f pps sent, lost %s\n", (n[2] - n[1]) / 5, sent / 5, $12 }' <<<"$small")
  echo "iperf3 UDP 64-byte frames 5 s: $pps_fig"

  results+=("$mode|$curl_fig|$tcp_fig|$udp_fig|$pps_fig")
  if [[ $mode == appliance ]]; then
    tb_stop_appliance
    echo "appliance counters:"
    cat "$app_out"
  fi
  tb_down >/dev/null
done

echo
echo "== summary (offloads off on every veth; $(nproc) cores; other load on the machine shows)"
for r in "${results[@]}"; do
  IFS='|' read -r m c t u p <<<"$r"
  printf '%s\n  curl 16 MiB (best of 3): %s\n  iperf3 TCP 10 s: %s\n  iperf3 UDP 5 s: %s\n  64-byte UDP 5 s: %s\n' "$m" "$c" "$t" "$u" "$p"
done

#!/usr/bin/env bash
# The testbed demo: a client and a server in their own network namespaces, the appliance
# between them (AF_PACKET on two veths), a short show, the appliance's counters, tear-down.
#   testbed/demo.sh            run and tear down
#   KEEP=1 testbed/demo.sh     leave the testbed and the appliance running
set -euo pipefail
cd "$(dirname "$0")/.."
here=testbed
bin=${APPLIANCE:-target/release/appliance}
[[ -x $bin ]] || cargo build --release -p appliance

"$here/down.sh" >/dev/null 2>&1 || true
"$here/up.sh"
[[ ${KEEP:-0} == 1 ]] || trap '"$here/down.sh"' EXIT

log=$(mktemp /tmp/nva-demo.XXXXXX)
ip netns exec nva-fw "$bin" run --config configs/testbed.toml >"$log.out" 2>"$log" &
app=$!
echo "appliance running (pid $app), log in $log"

for _ in $(seq 1 50); do
  ip netns exec nva-client ping -c 1 -W 1 10.0.1.20 >/dev/null 2>&1 && break
  sleep 0.2
done

echo; echo "== ping client -> server through the appliance"
ip netns exec nva-client ping -c 5 -i 0.2 10.0.1.20

echo; echo "== TCP: 20 MB from the server to the client"
head -c 20000000 /dev/urandom > "$log.data"
ip netns exec nva-server sh -c "nc -N -l 10.0.1.20 8080 < $log.data" &
srv=$!
sleep 0.3
start=$(date +%s.%N)
ip netns exec nva-client timeout 60 nc -d 10.0.1.20 8080 > "$log.recv"
end=$(date +%s.%N)
wait $srv || true
if cmp -s "$log.data" "$log.recv"; then
  awk -v s="$start" -v e="$end" 'BEGIN { printf "20 MB received intact in %.2f s (%.0f Mbit/s)\n", e - s, 160 / (e - s) }'
else
  echo "TCP transfer FAILED: received $(stat -c %s "$log.recv") bytes"
fi
rm -f "$log.data" "$log.recv"

if [[ ${KEEP:-0} == 1 ]]; then
  echo; echo "testbed left up; appliance pid $app; testbed/down.sh removes everything"
  exit 0
fi
echo; echo "== appliance counters"
kill -TERM "$app"
wait "$app" || true
cat "$log.out"
rm -f "$log.out"

# Shared by demo.sh and baseline.sh (sourced): bring the testbed up in a mode, wait for
# traffic to pass, take it down. Uses NVA_PREFIX/NVA_RUN like the other scripts.
#   tb_start kernel|appliance     up.sh + servers.sh + kernel-nat.sh, or `appliance run`
#   tb_wait                       until c1 pings the server through fw (20 s at most)
#   tb_stop_appliance             SIGTERM, wait: its final counters are then in $app_out
#   tb_down                       tb_stop_appliance, then down.sh (removes $NVA_RUN too)
#   nsx NS CMD...                 run CMD in namespace ${NVA_PREFIX}NS
# shellcheck shell=bash
tb_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tb_repo=$(cd "$tb_here/.." && pwd)
P=${NVA_PREFIX:-nva-}
export NVA_PREFIX=$P
export NVA_RUN=${NVA_RUN:-/run/nva-testbed/${P%-}}
app_pid=
app_out=
app_config=

nsx() { local n=$1; shift; ip netns exec "$P$n" "$@"; }

tb_start() {
  local mode=$1
  "$tb_here/up.sh"
  "$tb_here/servers.sh"
  case $mode in
  kernel)
    "$tb_here/kernel-nat.sh" on
    ;;
  appliance)
    local bin=${APPLIANCE:-$tb_repo/target/release/appliance}
    if [[ ! -x $bin ]]; then
      (cd "$tb_repo" && cargo build --release -p appliance)
    fi
    # configs/testbed.toml, with the control socket in this testbed's folder.
    app_config=$NVA_RUN/appliance.toml
    sed "s#^socket = .*#socket = \"$NVA_RUN/control.sock\"#" "$tb_repo/configs/testbed.toml" > "$app_config"
    app_out=$NVA_RUN/appliance.out
    ip netns exec "${P}fw" "$bin" run --config "$app_config" >"$app_out" 2>"$NVA_RUN/appliance.log" &
    app_pid=$!
    echo "appliance running (pid $app_pid, config $app_config, log $NVA_RUN/appliance.log)"
    ;;
  *)
    echo "mode must be kernel or appliance, not '$mode'" >&2
    return 2
    ;;
  esac
}

tb_wait() {
  local end=$((SECONDS + 20))
  while ((SECONDS < end)); do
    if nsx c1 ping -c 1 -W 1 203.0.113.10 >/dev/null 2>&1; then
      return 0
    fi
    if [[ -n $app_pid ]] && ! kill -0 "$app_pid" 2>/dev/null; then
      echo "the appliance exited; its log:" >&2
      tail -20 "$NVA_RUN/appliance.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "no traffic through ${P}fw within 20 s (c1 -> 203.0.113.10)" >&2
  if [[ -n $app_pid ]]; then
    echo "appliance log ($NVA_RUN/appliance.log):" >&2
    tail -20 "$NVA_RUN/appliance.log" >&2
    echo "(until the stateful pipeline (NAT, ARP) is in the binary, appliance mode passes nothing" \
      "here; MODE=kernel shows the same with Linux nftables)" >&2
  fi
  return 1
}

tb_stop_appliance() {
  if [[ -n $app_pid ]] && kill -0 "$app_pid" 2>/dev/null; then
    kill -TERM "$app_pid"
    wait "$app_pid" 2>/dev/null || true
  fi
  app_pid=
}

tb_down() {
  tb_stop_appliance
  "$tb_here/down.sh"
}

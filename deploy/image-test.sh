#!/usr/bin/env bash
# The image's boot test (make image-test): boots the cloud image in qemu (OVMF, KVM when a
# probe shows a guest kernel printing, else TCG) with three virtio-net NICs, and proves it
# forwards through DPDK:
#
#   eth0 management   user-mode network, restrict=on (nothing leaves qemu)
#   00:04.0 inside    tap, bridged in <prefix>fw to the testbed's `lan` veth: c1 10.0.1.10
#   00:05.0 outside   tap, bridged in <prefix>fw to the testbed's `wan` veth: the router
#                     192.0.2.1 and the server 203.0.113.10 behind it
#
# The namespaces are the namespace testbed's (testbed/up.sh, servers.sh, with prefix
# nvaimg-<pid>-); the VM stands where the appliance's namespace would run it. A NoCloud seed
# gives configs/testbed.toml on the two NICs (inside by MAC, outside by PCI address),
# lcores = "auto" and huge pages.
# Checks: c1 downloads the 16 MiB file through SNAT (checksum, the server's log shows
# 192.0.2.2), ping, the port forward, an unsolicited connection from the server side gets
# nothing, `appliance stats` over the serial console counts packets on both virtio ports,
# `systemctl reload` takes; then a reboot and forwarding again. Last, a fresh VM with a bad
# configuration: it boots, the service stays down, the check's error is on the console.
# Everything it made is removed on exit, also on failure (qemu by PID, namespaces).
#   NVA_ACCEL=kvm|tcg   skip the probe
#   KEEP_LOGS=1         keep the VM folder (console logs) after a pass too
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# Namespaces nvaimg-<pid>-*: two runs on one machine (and the nva-* testbeds of the other
# tests) never meet.
export NVA_PREFIX=nvaimg-$$-
# shellcheck source=testbed/lib.sh
source "$repo/testbed/lib.sh"
vmcon="$here/vmconsole.py"
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
t0=$SECONDS

say() { echo "image-test: $*"; }
vm_name=
fail() {
  if [[ -n $vm_name && -s $vmdir/$vm_name-console.log ]]; then
    echo "the VM's serial console, last lines:" >&2
    console_tail 30 >&2
  fi
  echo "image-test: FAILED: $*" >&2
  exit 1
}

# What the test needs; it fails saying what is missing rather than pass without running.
[[ $EUID -eq 0 ]] || fail "needs root (namespaces, tap devices)"
[[ -c /dev/net/tun ]] || fail "no /dev/net/tun: tap devices cannot be made"
for f in "$ovmf_code" "$ovmf_vars"; do [[ -r $f ]] || fail "no $f: run scripts/deps.sh image"; done
command -v qemu-system-x86_64 >/dev/null || fail "no qemu-system-x86_64: run scripts/deps.sh image"

vmdir=$(mktemp -d /tmp/nvaimg.XXXXXX)
qemu_pid=
passed=0
cleanup() {
  stop_vm
  tb_down >/dev/null 2>&1 || true
  if ((passed)) && [[ ${KEEP_LOGS:-0} != 1 ]]; then
    rm -rf -- "$vmdir"
  else
    say "VM disks and console logs kept in $vmdir"
  fi
}
trap cleanup EXIT

stop_vm() {
  [[ -n $qemu_pid ]] || return 0
  if kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=
}

# KVM when a guest kernel prints under it within 15 s, else TCG (DPDK-NOTES.md: /dev/kvm is
# there on this machine kind, but guests abort or hang under it).
probe_accel() {
  if [[ -n ${NVA_ACCEL:-} ]]; then
    echo "$NVA_ACCEL"
    return
  fi
  [[ -w /dev/kvm ]] || { echo tcg; return; }
  local kernel=$vmdir/probe-vmlinuz log=$vmdir/probe.log pid
  MTOOLS_SKIP_CHECK=1 mcopy -n -i "$image/disk.raw@@1M" ::/vmlinuz "$kernel"
  qemu-system-x86_64 -accel kvm -cpu host -m 256 -display none -no-reboot -serial "file:$log" \
    -kernel "$kernel" -append "console=ttyS0 earlyprintk=serial panic=-1" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 150); do
    grep -qs "Linux version" "$log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if grep -qs "Linux version" "$log"; then echo kvm; else echo tcg; fi
}

# A NoCloud seed (a FAT disk labelled CIDATA) with the appliance's configuration and, for the
# test only, a root shell on the second serial port.
make_seed() { # name toml-file
  local name=$1 toml=$2 dir=$vmdir/seed-$1
  mkdir -p "$dir"
  printf 'instance-id: nvaimg-%s\nlocal-hostname: nva\n' "$name" > "$dir/meta-data"
  {
    echo "#cloud-config"
    echo "write_files:"
    echo "  - path: /etc/appliance/appliance.toml"
    echo "    permissions: '0644'"
    echo "    content: |"
    sed 's/^/      /' "$toml"
    echo "  - path: /etc/systemd/system/nvaimg-shell.service"
    echo "    content: |"
    echo "      [Unit]"
    echo "      Description=Boot test only: a root shell on ttyS1"
    echo "      [Service]"
    echo "      ExecStart=/bin/bash --noprofile --norc -i"
    echo "      StandardInput=tty-force"
    echo "      TTYPath=/dev/ttyS1"
    echo "      Environment=TERM=dumb PS1=$"
    echo "      KillSignal=SIGHUP"
    echo "      Restart=always"
    echo "      [Install]"
    echo "      WantedBy=multi-user.target"
    echo "runcmd:"
    echo "  - [systemctl, daemon-reload]"
    echo "  - [systemctl, enable, --now, nvaimg-shell.service]"
  } > "$dir/user-data"
  rm -f "$vmdir/seed-$name.img"
  mkfs.vfat -n CIDATA -C "$vmdir/seed-$name.img" 2048 >/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -i "$vmdir/seed-$name.img" "$dir/user-data" "$dir/meta-data" ::/
}

start_vm() { # name: a fresh disk (an overlay on the image) and its seed
  local name=$1 cpu=max
  [[ $accel == kvm ]] && cpu=host
  qemu-img create -q -f qcow2 -F raw -b "$image/disk.raw" "$vmdir/$name.qcow2"
  cp "$ovmf_vars" "$vmdir/$name-vars.fd"
  : > "$vmdir/$name-console.log"
  rm -f "$vmdir/shell.sock"
  ip netns exec "${P}fw" qemu-system-x86_64 -name "nvaimg-$name" \
    -machine q35 -accel "$accel" -cpu "$cpu" -smp 2 -m 2048 -display none -monitor none \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" \
    -drive "if=pflash,format=raw,unit=1,file=$vmdir/$name-vars.fd" \
    -drive "if=none,id=disk,format=qcow2,file=$vmdir/$name.qcow2" \
    -device virtio-blk-pci,drive=disk,addr=0x6,bootindex=0 \
    -drive "if=none,id=seed,format=raw,readonly=on,file=$vmdir/seed-$name.img" \
    -device virtio-blk-pci,drive=seed,addr=0x7 \
    -netdev user,id=mgmt,restrict=on -device virtio-net-pci,netdev=mgmt,addr=0x3,mac=52:54:00:4e:56:01 \
    -netdev tap,id=in,ifname=tin,script=no,downscript=no,vhost=off \
    -device virtio-net-pci,netdev=in,addr=0x4,mac=52:54:00:4e:56:02 \
    -netdev tap,id=out,ifname=tout,script=no,downscript=no,vhost=off \
    -device virtio-net-pci,netdev=out,addr=0x5,mac=52:54:00:4e:56:03 \
    -chardev "file,id=con,path=$vmdir/$name-console.log" -serial chardev:con \
    -chardev "socket,id=sh,path=$vmdir/shell.sock,server=on,wait=off" -serial chardev:sh \
    > "$vmdir/$name-qemu.log" 2>&1 &
  qemu_pid=$!
  vm_name=$name
  vm_t0=$SECONDS
}

vm_alive() {
  kill -0 "$qemu_pid" 2>/dev/null || {
    tail -5 "$vmdir/$vm_name-qemu.log" >&2
    fail "qemu exited"
  }
}

# Lines from the VM, indented and labelled with where they come from.
quote() { tr -d '\r' | sed "s/^/  $1| /"; }
console_tail() { tail -n "${1:-25}" "$vmdir/$vm_name-console.log" | quote console; }

# Until c1 pings the server through the VM three times in a row, at most $1 seconds.
wait_forwarding() {
  local end=$((SECONDS + $1)) ok=0
  while ((SECONDS < end)); do
    vm_alive
    if nsx c1 ping -c 1 -W 1 203.0.113.10 >/dev/null 2>&1; then
      ((++ok < 3)) || return 0
    else
      ok=0
    fi
    sleep 0.5
  done
  fail "no forwarding through the VM within $1 s"
}

in_vm() { "$vmcon" "$vmdir/shell.sock" "$@"; }

# The checks through a forwarding VM.
check_forwarding() {
  nsx c1 ping -c 3 -i 0.3 -W 2 203.0.113.10 | tail -2
  local got
  got=$(nsx c1 curl -sS --max-time 180 -o "$vmdir/big.bin" \
    -w '%{size_download} bytes in %{time_total} s' http://203.0.113.10/big.bin)
  say "curl through the VM: $got"
  [[ $(sha256sum < "$vmdir/big.bin" | cut -d' ' -f1) == $(cut -d' ' -f1 "$NVA_RUN/www-srv/big.bin.sha256") ]] \
    || fail "the 16 MiB file arrived changed"
  rm -f "$vmdir/big.bin"
  tail -1 "$NVA_RUN/srv-access.log" | grep -q '^192\.0\.2\.2 ' \
    || fail "the server's log does not show the public address: $(tail -1 "$NVA_RUN/srv-access.log")"
  say "checksum matches; the server saw $(tail -1 "$NVA_RUN/srv-access.log" | cut -d' ' -f1-7)"
  got=$(nsx srv curl -sS --max-time 10 http://192.0.2.2:8080/) || fail "the port forward 192.0.2.2:8080 -> c2 did not answer"
  say "port forward from the server side: $got"
  if nsx srv nc -z -w 3 192.0.2.2 22 2>/dev/null; then
    fail "an unsolicited connection from the server side (192.0.2.2:22) was let in"
  fi
  say "unsolicited connection from the server side to 192.0.2.2:22: no answer (dropped)"
}

check_stats() { # the kernel driver the data NICs should be on
  "$vmcon" "$vmdir/shell.sock" --ready 240 || fail "the test shell on ttyS1 never answered"
  local stats drivers
  stats=$(in_vm appliance stats) || fail "appliance stats failed in the VM: $stats"
  quote vm <<<"$stats"
  # The stats table's driver column: both data ports on DPDK's virtio PMD.
  [[ $(grep -cE '(lan|wan) +(inside|outside) +net_virtio ' <<<"$stats") -eq 2 ]] \
    || fail "appliance stats should show both data NICs on DPDK's virtio PMD (net_virtio)"
  drivers=$(in_vm 'for d in 0000:00:04.0 0000:00:05.0; do echo "$d $(basename $(readlink /sys/bus/pci/devices/$d/driver))"; done')
  quote vm <<<"$drivers"
  [[ $(grep -c " $1\$" <<<"$drivers") -eq 2 ]] || fail "both data NICs should be on $1"
  local json
  json=$(in_vm appliance stats --json)
  python3 - "$json" <<'EOF' || fail "appliance stats does not count packets both ways on both ports"
import json, sys
s = json.loads(sys.argv[1])
for p in s["ports"]:
    assert p["rx_packets"] > 0 and p["tx_packets"] > 0, p
EOF
}

image=$("$here/build-image.sh" | tail -1)
say "image $image ($(du -m --apparent-size "$image/disk.raw" | cut -f1) MiB raw, $(du -m "$image/disk.qcow2" | cut -f1) MiB qcow2)"
accel=$(probe_accel)
say "accelerator: $accel"

# The namespace testbed (prefix nvaimg-<pid>-), then the VM's taps bridged to the appliance's veths.
tb_down >/dev/null 2>&1 || true
"$repo/testbed/up.sh" >/dev/null
"$repo/testbed/servers.sh" >/dev/null
for side in in:lan out:wan; do
  tap=t${side%%:*} veth=${side##*:} br=br${side%%:*}
  ip -n "${P}fw" tuntap add "$tap" mode tap
  ip -n "${P}fw" link add "$br" type bridge stp_state 0 forward_delay 0
  ip -n "${P}fw" link set "$tap" master "$br"
  ip -n "${P}fw" link set "$veth" master "$br"
  for i in "$tap" "$br"; do ip -n "${P}fw" link set "$i" up; done
done

# The appliance's configuration: the testbed's, on the VM's NICs: inside named by its MAC
# (resolve-macs makes it 0000:00:04.0), outside by its PCI address.
sed -e 's/^lcores = .*/lcores = "auto"/' -e 's/^huge_pages = .*/huge_pages = true/' \
  -e 's/^file_prefix = .*/file_prefix = "appliance"/' \
  -e 's/^device = "net_af_packet0,iface=lan"/device = "mac:52:54:00:4e:56:02"/' \
  -e 's/^device = "net_af_packet1,iface=wan"/device = "0000:00:05.0"/' \
  -e 's#^socket = .*#socket = "/run/appliance/control.sock"#' \
  "$repo/configs/testbed.toml" > "$vmdir/good.toml"
grep -q '"0000:00:05.0"' "$vmdir/good.toml" || fail "configs/testbed.toml changed shape: cannot place the VM's NICs"
# The bad one: a misspelt role, the kind of mistake a hand-written user-data has.
sed 's/^role = "outside"/role = "outsde"/' "$vmdir/good.toml" > "$vmdir/bad.toml"

say "boot 1: good configuration"
make_seed good "$vmdir/good.toml"
start_vm good
wait_forwarding "${BOOT_TIMEOUT:-300}"
boot1=$((SECONDS - vm_t0))
say "forwarding $boot1 s after qemu started ($accel)"
check_forwarding
check_stats uio_pci_generic
in_vm grep -qF "'\"0000:00:04.0\"  # mac:52:54:00:4e:56:02'" /etc/appliance/appliance.toml \
  || fail "the inside port's MAC was not resolved to its PCI address"
say "the inside port, named by its MAC, resolved to 0000:00:04.0"
in_vm systemctl reload appliance
sleep 2
in_vm appliance policy | head -3 | quote vm
in_vm "appliance policy --json | grep -q '\"generation\": 2'" || fail "systemctl reload did not reload the policy"
say "systemctl reload: policy generation 2"

# The reboot also tries the other driver for NICs on VMs without an IOMMU: igb_uio, which
# the image builds for ENA and gVNIC (they have no INTx for uio_pci_generic).
in_vm sed -i 's/^NIC_DRIVER=.*/NIC_DRIVER=igb_uio/' /etc/default/appliance
say "reboot, the data NICs on igb_uio this time"
"$vmcon" "$vmdir/shell.sock" --no-wait systemctl reboot
reboot_t0=$SECONDS
for _ in $(seq 60); do nsx c1 ping -c 1 -W 1 203.0.113.10 >/dev/null 2>&1 || break; sleep 1; done
wait_forwarding "${BOOT_TIMEOUT:-300}"
boot2=$((SECONDS - reboot_t0))
say "forwarding again $boot2 s after the reboot was asked"
check_forwarding
check_stats igb_uio
"$vmcon" "$vmdir/shell.sock" --no-wait systemctl poweroff
for _ in $(seq 60); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
stop_vm

say "boot 2: a fresh VM with a bad configuration"
make_seed bad "$vmdir/bad.toml"
start_vm bad
end=$((SECONDS + ${BOOT_TIMEOUT:-300}))
until grep -q 'error: /etc/appliance/appliance.toml' "$vmdir/bad-console.log"; do
  vm_alive
  ((SECONDS < end)) || fail "no appliance check error on the console"
  sleep 1
done
bad_boot=$((SECONDS - vm_t0))
say "the check's error on the serial console $bad_boot s after qemu started:"
grep -a 'error: /etc/appliance' "$vmdir/bad-console.log" | quote console
"$vmcon" "$vmdir/shell.sock" --ready 240 || fail "the test shell on ttyS1 never answered"
state=$(in_vm systemctl is-active appliance.service || true)
[[ $state != active ]] || fail "appliance.service runs with a bad configuration"
say "appliance.service: $state; appliance-check.service: $(in_vm systemctl is-active appliance-check.service || true)"
if nsx c1 ping -c 1 -W 1 203.0.113.10 >/dev/null 2>&1; then fail "forwarding without a configuration"; fi
stop_vm

passed=1
say "PASSED in $((SECONDS - t0)) s ($accel): forwarding $boot1 s after start, $boot2 s after a reboot; bad configuration reported $bad_boot s after start"

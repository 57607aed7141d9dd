#!/usr/bin/env bash
# Builds the cloud NVA image: a GPT/UEFI Debian 12 disk with the appliance, its boot-time
# units (deploy/rootfs), cloud-init, SSH and a serial console (deploy/README.md).
#   deploy/build-image.sh          disk.raw and disk.qcow2
#   deploy/build-image.sh cloud    also nva-azure.vhd (fixed VHD), nva-aws.vmdk
#                                  (streamOptimized) and nva-gcp.tar.gz (disk.raw inside)
# Prints the folder that holds them. No loop devices and no mounts: the root file system is
# made from a directory (mkfs.ext4 -d), the EFI system partition with mtools, and both are
# copied into a partitioned raw disk, so it runs wherever root can run mmdebstrap.
# The result is cached by a hash of its inputs (this script, igb-uio.sh, packages.txt,
# README.md, rootfs/, configs/default.toml, the appliance binary): a rebuild with nothing
# changed takes a second.
# Environment:
#   NVA_IMAGE_CACHE  where images are kept (default ~/.cache/nva-image; only the newest stays)
#   NVA_APPLIANCE    the appliance binary (default: target/release/appliance, built first)
#   NVA_MIRROR       the Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${NVA_IMAGE_CACHE:-$HOME/.cache/nva-image}
mirror=${NVA_MIRROR:-http://deb.debian.org/debian}
security=${NVA_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
want_cloud=0
[[ ${1:-} == cloud ]] && want_cloud=1

# Disk layout (MiB): GPT, the EFI system partition, the root file system, backup GPT. 2 GiB
# in all: GCP wants whole GiB, Azure whole MiB; growpart fills a larger cloud disk.
disk_mb=2048
esp_start=1 esp_mb=127
root_start=$((esp_start + esp_mb))
root_mb=$((disk_mb - root_start - 1))
cmdline="ro console=tty0 console=ttyS0,115200 net.ifnames=0"

step_start=$SECONDS
step() { echo "image: $* (+$((SECONDS - step_start)) s)"; }

bin=${NVA_APPLIANCE:-$repo/target/release/appliance}
if [[ -z ${NVA_APPLIANCE:-} ]]; then
  (cd "$repo" && cargo build --release -p appliance)
fi
[[ -x $bin ]] || { echo "image: no appliance binary at $bin" >&2; exit 1; }

key=$(
  cd "$here"
  {
    sha256sum build-image.sh igb-uio.sh packages.txt README.md
    find rootfs -type f -print0 | sort -z | xargs -0 sha256sum
    find rootfs -print0 | sort -z | xargs -0 stat -c '%n %a'
    sha256sum "$repo/configs/default.toml" | cut -d' ' -f1
    sha256sum "$bin" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
out=$cache/$key
if [[ -s $out/disk.raw && -s $out/disk.qcow2 ]] && { ((!want_cloud)) || [[ -s $out/nva-gcp.tar.gz ]]; }; then
  echo "image: cached (inputs $key)"
  echo "$out"
  exit 0
fi

for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy sfdisk qemu-img; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing: run scripts/deps.sh image" >&2; exit 1; }
done
mkdir -p "$cache"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root=$work/root

if [[ ! -s $out/disk.raw ]]; then
  mapfile -t packages < <(sed 's/#.*//; /^[[:space:]]*$/d; s/[[:space:]]//g' "$here/packages.txt")
  step "mmdebstrap: Debian 12 with ${#packages[@]} packages from $mirror"
  # Documentation, manual pages and translations are left out (about 60 MB). The hook
  # builds igb_uio for the image's kernel and removes its build tools again.
  mmdebstrap --mode=root --variant=minbase --format=directory \
    --customize-hook="$here/igb-uio.sh \"\$1\"" \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Retries "3"' \
    bookworm "$root" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main"

  step "the appliance, its units, cloud-init settings"
  install -m 755 "$bin" "$root/usr/bin/appliance"
  cp -a "$here/rootfs/." "$root/"
  install -D -m 644 "$repo/configs/default.toml" "$root/usr/share/appliance/default.toml"
  install -D -m 644 "$here/README.md" "$root/usr/share/doc/appliance/README.md"
  chroot "$root" systemctl enable appliance.service systemd-networkd.service \
    systemd-resolved.service ssh.service >/dev/null
  echo nva > "$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 nva\n' > "$root/etc/hosts"
  ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
  # Each VM gets its own identity at first boot: machine id, SSH host keys (cloud-init).
  : > "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' > "$work/packages.list"

  root_uuid=$(cat /proc/sys/kernel/random/uuid)
  esp_id=$(printf '%08X' $((RANDOM * 65536 + RANDOM)))
  esp_uuid=${esp_id:0:4}-${esp_id:4:4}
  printf 'UUID=%s / ext4 defaults,errors=remount-ro 0 1\nUUID=%s /boot/efi vfat umask=0077 0 2\n' \
    "$root_uuid" "$esp_uuid" > "$root/etc/fstab"
  mkdir -p "$root/boot/efi"

  step "EFI system partition: systemd-boot, kernel, initramfs"
  kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -1)
  initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
  [[ -s $kernel && -s $initrd ]] || { echo "image: no kernel or initramfs in $root/boot" >&2; exit 1; }
  esp=$work/esp.img
  rm -f "$esp"
  mkfs.vfat -F 32 -n NVA-ESP -i "$esp_id" -C "$esp" $((esp_mb * 1024)) >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
  mcopy -i "$esp" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$esp" "$kernel" ::/vmlinuz
  mcopy -i "$esp" "$initrd" ::/initrd.img
  printf 'default nva.conf\ntimeout 0\n' > "$work/loader.conf"
  printf 'title NVA appliance (Debian 12)\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=UUID=%s %s\n' \
    "$root_uuid" "$cmdline" > "$work/nva.conf"
  mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
  mcopy -i "$esp" "$work/nva.conf" ::/loader/entries/nva.conf

  step "root file system ($root_mb MiB ext4 from the directory)"
  mkfs.ext4 -q -F -L nva-root -U "$root_uuid" -d "$root" "$work/root.img" "${root_mb}M"

  step "disk: GPT, ESP at $esp_start MiB, root at $root_start MiB, $disk_mb MiB in all"
  raw=$work/disk.raw
  truncate -s "${disk_mb}M" "$raw"
  sfdisk -q "$raw" <<EOF
label: gpt
start=${esp_start}MiB, size=${esp_mb}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"
start=${root_start}MiB, size=${root_mb}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
EOF
  dd if="$esp" of="$raw" bs=1M seek="$esp_start" conv=notrunc,sparse status=none
  dd if="$work/root.img" of="$raw" bs=1M seek="$root_start" conv=notrunc,sparse status=none
  rm -f "$esp" "$work/root.img"

  # Only the newest image stays in the cache.
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "work.*" -exec rm -rf {} +
  mkdir -p "$out"
  mv "$raw" "$work/packages.list" "$out/"
fi

if [[ ! -s $out/disk.qcow2 ]]; then
  step "qcow2 (compressed)"
  qemu-img convert -c -f raw -O qcow2 "$out/disk.raw" "$out/disk.qcow2.tmp"
  mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
fi

if ((want_cloud)); then
  step "Azure fixed VHD, AWS streamOptimized VMDK, GCP disk.raw in a tar.gz"
  qemu-img convert -f raw -O vpc -o subformat=fixed,force_size "$out/disk.raw" "$out/nva-azure.vhd"
  qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$out/disk.raw" "$out/nva-aws.vmdk"
  tar --format=oldgnu -Sczf "$out/nva-gcp.tar.gz.tmp" -C "$out" disk.raw
  mv "$out/nva-gcp.tar.gz.tmp" "$out/nva-gcp.tar.gz"
fi

step "done"
for f in "$out"/disk.raw "$out"/disk.qcow2 "$out"/nva-*; do
  [[ -e $f ]] || continue
  printf 'image: %-16s %6s MiB allocated, %6s MiB apparent\n' "${f##*/}" \
    $(($(stat -c '%b*%B' "$f") / 1048576)) $(($(stat -c %s "$f") / 1048576))
done
echo "$out"

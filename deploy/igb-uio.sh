#!/usr/bin/env bash
# mmdebstrap customize hook (deploy/build-image.sh): builds DPDK's igb_uio module for the
# image's kernel from Debian's dpdk-kmods-dkms, keeps the module and removes the compiler,
# headers and DKMS again (about 200 MB the image does not need).
# Why: NICs without legacy INTx interrupts (ENA, gVNIC, SR-IOV VFs) cannot use
# uio_pci_generic, and vfio-pci needs an IOMMU on VMs that have none, because Debian 12's
# kernels are built without vfio's no-IOMMU mode. igb_uio works there.
#   deploy/igb-uio.sh ROOT
set -euo pipefail
root=$1
kver=$(basename "$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort | tail -1)")
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive "$@"; }

# systemd-resolved made resolv.conf a link into /run, empty in a chroot: apt needs the
# host's until build-image.sh links it again.
cp -L --remove-destination /etc/resolv.conf "$root/etc/resolv.conf"
before=$(in_root dpkg-query -W -f='${Package}\n' | sort)
in_root apt-get install -y -qq --no-install-recommends "linux-headers-$kver" dkms dpdk-kmods-dkms >/dev/null
module=$(find "$root/lib/modules/$kver" -name 'igb_uio.ko*' | head -1)
[[ -n $module ]] || { echo "igb-uio: dkms built no igb_uio.ko for $kver" >&2; exit 1; }
cp "$module" "$root/tmp/"
# Every package the build brought is purged: autoremove alone keeps gcc (a suggestion of
# what stays).
mapfile -t added < <(comm -13 <(echo "$before") <(in_root dpkg-query -W -f='${Package}\n' | sort))
in_root apt-get purge -y -qq "${added[@]}" >/dev/null
install -D -m 644 "$root/tmp/${module##*/}" "$root/lib/modules/$kver/extra/${module##*/}"
rm -f "$root/tmp/${module##*/}"
in_root depmod "$kver"
echo "igb-uio: igb_uio for $kver in /lib/modules/$kver/extra"

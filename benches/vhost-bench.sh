# shellcheck shell=bash
# Shared by benches/compare.sh and docker/bench.sh (sourced): the appliance's configuration
# for the one-arm vhost-user benchmark. The generator (dpdk-testpmd flowgen, DPDK 22.11) sends
# every frame 00:01:02:03:04:00 -> 00:01:02:03:04:01, UDP 10.254.0.0:1000 -> 10.253.0.0+i:1001,
# so the appliance's one port takes MAC 00:01:02:03:04:01, its only private prefix is the
# generator's source, and every flow is egress, SNATed to 198.18.0.2 and sent back to the
# generator as the gateway 198.18.0.1.

VHOST_GEN_MAC=00:01:02:03:04:00
VHOST_DUT_MAC=00:01:02:03:04:01
# The DUT's address, which every flow is SNATed to.
VHOST_DUT_IP=198.18.0.2
# The transport, the same for every DUT: the virtio-user device's options after its socket
# path, and what its EAL needs for them. Packed rings with the vector paths
# (virtio_recv_pkts_packed_vec and virtio_xmit_pkts_packed_vec: AVX512, so the EAL must allow
# 512-bit SIMD; on a CPU without AVX512 the driver takes its scalar packed paths) cost a DUT
# the fewest cycles a packet of the transports measured here at 1 M flows (perf, share of the
# appliance's samples in the driver): about 49 % of 289 cycles a packet, against 63 % of 525
# for virtio-user's defaults (split ring, in order, mergeable buffers) and 70 % of 432 for the
# split ring's vector receive (mrg_rxbuf=0,in_order=0,vectorized=1). They also make the
# generator's side cheaper: it reaches about 16-17 Mpps where it reached 12-13. So the DUT's
# own work is more of what is measured. VHOST_VIRTIO_OPTS=queue_size=1024 VHOST_EAL_EXTRA=
# gives virtio-user's defaults back. VHOST_EAL_EXTRA is one EAL argument (each DUT gets it as
# one word), or empty.
VHOST_VIRTIO_OPTS=${VHOST_VIRTIO_OPTS-queue_size=1024,packed_vq=1,in_order=1,mrg_rxbuf=0,vectorized=1}
VHOST_EAL_EXTRA=${VHOST_EAL_EXTRA-"--force-max-simd-bitwidth=512"}

# vhost_bench_config FLOWS SOCKET FILE_PREFIX CONTROL_SOCKET NAME [DEVICE]: the configuration on
# stdout, with room for twice the flows (at least 65 536 sessions). DEVICE replaces the
# virtio-user port on SOCKET (benches/callgrind-worker.sh feeds the same frames from a pcap).
vhost_bench_config() {
  local flows=$1 sock=$2 prefix=$3 control=$4 name=$5
  local device=${6:-virtio_user0,path=$sock,$VHOST_VIRTIO_OPTS,mac=$VHOST_DUT_MAC}
  local sessions=$((flows < 65536 ? 65536 : flows * 2))
  cat <<CONFIG
# $name: one-arm appliance on a virtio-user port to the generator's vhost-user port.
private_prefixes = ["10.254.0.0/32"]

[eal]
lcores = "0@0,1@1"
huge_pages = true
memory_mb = 256
file_prefix = "$prefix"
extra_args = ["--single-file-segments"${VHOST_EAL_EXTRA:+, \"$VHOST_EAL_EXTRA\"}]

[dataplane]
mbufs = 16383
burst = 32

[[port]]
name = "vnic"
role = "both"
device = "$device"
address = "$VHOST_DUT_IP/24"
gateway = "198.18.0.1"
neighbours = [{ ip = "198.18.0.1", mac = "$VHOST_GEN_MAC" }]

[nat]
addresses = []
max_sessions = $sessions

[egress]
default = "allow"

[control]
socket = "$control"
CONFIG
}

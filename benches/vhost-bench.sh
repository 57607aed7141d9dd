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

# vhost_bench_config FLOWS SOCKET FILE_PREFIX CONTROL_SOCKET NAME [DEVICE]: the configuration on
# stdout, with room for twice the flows (at least 65 536 sessions). DEVICE replaces the
# virtio-user port on SOCKET (benches/callgrind-worker.sh feeds the same frames from a pcap).
vhost_bench_config() {
  local flows=$1 sock=$2 prefix=$3 control=$4 name=$5
  local device=${6:-virtio_user0,path=$sock,queue_size=1024,mac=$VHOST_DUT_MAC}
  local sessions=$((flows < 65536 ? 65536 : flows * 2))
  cat <<CONFIG
# $name: one-arm appliance on a virtio-user port to the generator's vhost-user port.
private_prefixes = ["10.254.0.0/32"]

[eal]
lcores = "0@0,1@1"
huge_pages = true
memory_mb = 256
file_prefix = "$prefix"
extra_args = ["--single-file-segments"]

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

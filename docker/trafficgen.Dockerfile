# The traffic generator of `make docker-bench`: DPDK's own dpdk-testpmd (package dpdk-dev;
# Debian's dpdk package does not ship it) in flowgen mode on a vhost-user port (net_vhost,
# the server end of the socket). The appliance container attaches to it as virtio-user.
FROM local/debian:bookworm
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends dpdk-dev \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/include/dpdk /usr/share/doc
ENTRYPOINT ["dpdk-testpmd"]

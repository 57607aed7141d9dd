# The testbed's other containers (client, router, server): the programs the namespace
# testbed runs in its namespaces, and docker/hosts.sh, which sets each role up.
FROM local/debian:bookworm
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      iproute2 iputils-ping ethtool procps curl ca-certificates nginx-light dnsmasq-base \
      iperf3 nmap traceroute tcpdump bind9-dnsutils \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY docker/hosts.sh /usr/local/bin/nva-host
ENTRYPOINT ["/usr/local/bin/nva-host"]

#!/usr/bin/env bash
# Kernel mode: turns nva-fw into what the appliance does, with Linux forwarding and nftables
# (the baseline users run today, and the reference the e2e tests are validated against).
#   - addresses 10.0.1.1/24 on lan, 192.0.2.2/24 on wan, default route via 192.0.2.1
#   - egress: SNAT (masquerade) to 192.0.2.2; egress deny rules in chain `egress`, plus set
#     `egress_deny` whose members stop new AND open flows (the appliance's on_reload = recheck)
#   - replies and ICMP errors about them (established/related) are reverse-translated
#   - ingress: default deny, except the port forward tcp 192.0.2.2:8080 -> 10.0.1.11:80;
#     hairpin (inside -> 192.0.2.2:8080) is translated to the public address both ways
#   - the box itself answers ping and nothing else
# Same settings as configs/testbed.toml. Idempotent. The addresses are parameters, so the
# Docker testbed (docker/lib.sh, kernel mode) applies the same rules to its own subnets:
#   NVA_KNAT_LAN (10.0.1.1/24), NVA_KNAT_WAN (192.0.2.2/24), NVA_KNAT_GW (192.0.2.1),
#   NVA_KNAT_FORWARD (10.0.1.11:80): the target of tcp PUBLIC:8080
#   testbed/kernel-nat.sh [on]    install (replaces an earlier ruleset)
#   testbed/kernel-nat.sh off     back to appliance mode: no rules, no addresses, no forwarding
#   testbed/kernel-nat.sh deny PREFIX | allow PREFIX   add/remove a member of egress_deny
set -euo pipefail
P=${NVA_PREFIX:-nva-}
fw=${P}fw
[[ -e /run/netns/$fw ]] || { echo "no namespace $fw: run testbed/up.sh first" >&2; exit 1; }
in_fw() { ip netns exec "$fw" "$@"; }
lan=${NVA_KNAT_LAN:-10.0.1.1/24} wan=${NVA_KNAT_WAN:-192.0.2.2/24}
gw=${NVA_KNAT_GW:-192.0.2.1} target=${NVA_KNAT_FORWARD:-10.0.1.11:80}
public=${wan%/*}

case ${1:-on} in
on)
  in_fw sysctl -qw net.ipv4.ip_forward=0
  in_fw sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
    net.ipv4.conf.lan.send_redirects=0
  ip -n "$fw" addr replace "$lan" dev lan
  ip -n "$fw" addr replace "$wan" dev wan
  ip -n "$fw" route replace default via "$gw" dev wan
  in_fw nft -f - <<EOF
table ip nva
delete table ip nva
table ip nva {
  # Destinations denied to flows already open too (recheck after a reload).
  set egress_deny {
    type ipv4_addr
    flags interval
  }

  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $public tcp dport 8080 dnat to $target comment "port forward"
  }

  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade comment "SNAT to the public address"
    iifname "lan" oifname "lan" ct status dnat snat to $public comment "hairpin"
  }

  chain forward {
    type filter hook forward priority filter; policy drop;
    ct original ip daddr @egress_deny counter drop comment "recheck: denied flows stop"
    ct state established,related accept comment "replies and ICMP errors"
    ct state invalid counter drop
    iifname "lan" oifname "wan" ct state new jump egress
    ct status dnat ct state new accept comment "port forwards (ingress allow)"
    counter comment "ingress default deny"
  }

  chain egress {
    tcp dport 25 counter drop comment "no direct SMTP from inside"
    accept comment "egress default allow"
  }

  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    ct state established,related accept
    iifname "lan" ip daddr ${lan%/*} icmp type echo-request accept comment "answer ping on the port's own address"
    iifname "wan" ip daddr $public icmp type echo-request accept
    counter comment "nothing else to the box"
  }
}
EOF
  in_fw sysctl -qw net.ipv4.ip_forward=1
  echo "kernel mode on (${fw}): nftables masquerade to $public, forward $public:8080 -> $target"
  ;;
off)
  in_fw sysctl -qw net.ipv4.ip_forward=0
  in_fw nft delete table ip nva 2>/dev/null || true
  ip -n "$fw" route flush table main 2>/dev/null || true
  ip -n "$fw" addr flush dev lan
  ip -n "$fw" addr flush dev wan
  echo "kernel mode off (${fw}): no addresses, no forwarding"
  ;;
deny)
  in_fw nft add element ip nva egress_deny "{ ${2:?prefix} }"
  ;;
allow)
  in_fw nft delete element ip nva egress_deny "{ ${2:?prefix} }"
  ;;
*)
  echo "usage: $0 [on|off|deny PREFIX|allow PREFIX]" >&2
  exit 2
  ;;
esac

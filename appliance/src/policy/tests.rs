use super::*;
use crate::config::{
    self as config, validate, Action, Filtering, Mapping, OnReload, Parsed, PortRange, Prefix,
};
use crate::config::{Config, ConfigError, Role};
use crate::packet::IpProtocol;
use std::net::SocketAddrV4;

const EXAMPLE: &str = include_str!("../../../configs/example-policy.toml");

const LAN: &str = "address = \"10.0.1.1/24\"";
const WAN: &str = "address = \"203.0.113.2/24\"\ngateway = \"203.0.113.1\"";

/// A two-arm file: `top` before the first table, extra keys for each port, then `rest`.
fn two_arm(top: &str, lan: &str, wan: &str, rest: &str) -> String {
    format!(
        "{top}\n[[port]]\nname = \"lan\"\nrole = \"inside\"\ndevice = \"net_null0\"\n{lan}\n\n\
         [[port]]\nname = \"wan\"\nrole = \"outside\"\ndevice = \"net_null1\"\n{wan}\n\n{rest}\n"
    )
}

fn policy(text: &str) -> Policy {
    let config = Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    Policy::compile(&config, 7).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The next hop `via` out of `port`.
fn hop(port: usize, via: &str) -> Option<NextHop> {
    Some(NextHop { port, ip: ip(via) })
}

fn tcp(src: &str, dst: &str, dst_port: u16) -> MatchKey {
    MatchKey {
        proto: IpProtocol::TCP,
        src: ip(src),
        dst: ip(dst),
        src_port: 40000,
        dst_port,
        icmp_type: None,
    }
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn example_config_parses_and_compiles() {
    let config = Config::parse(EXAMPLE, "example-policy.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        validate::warnings(&config).is_empty(),
        "{:?}",
        validate::warnings(&config)
    );
    let p = Policy::compile(&config, 3).unwrap();
    assert_eq!(p.generation, 3);

    // Ports and neighbours.
    assert_eq!(p.ports.len(), 2);
    assert_eq!(p.ports[0].address, Some("10.0.1.1/24".parse().unwrap()));
    assert_eq!(p.ports[0].gateway, Some(ip("10.0.1.254")));
    assert_eq!(
        p.ports[0].neighbours,
        vec![StaticNeighbour {
            ip: ip("10.0.1.254"),
            mac: crate::packet::EthernetAddress([2, 0, 0, 0, 1, 0xfe])
        }]
    );
    assert_eq!(p.ports[1].role, Role::Outside);
    let arp: Vec<String> = p.ports[1]
        .arp_addresses
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        arp,
        [
            "203.0.113.2",
            "203.0.113.16",
            "203.0.113.17",
            "203.0.113.18",
            "203.0.113.19",
            "203.0.113.40"
        ]
    );
    assert_eq!(p.ports[0].arp_addresses, vec![ip("10.0.1.1")]);
    assert_eq!(p.port_with_address(ip("203.0.113.2")), Some(1));
    assert_eq!(p.port_with_address(ip("203.0.113.16")), None);

    // Routing.
    assert_eq!(p.next_hop(ip("10.0.1.7")), hop(0, "10.0.1.7"));
    assert_eq!(p.next_hop(ip("10.0.9.7")), hop(0, "10.0.1.254"));
    assert_eq!(p.next_hop(ip("8.8.8.8")), hop(1, "203.0.113.1"));
    assert!(p.is_private(ip("10.0.200.1")));
    assert!(!p.is_private(ip("10.1.0.1")));

    // NAT.
    assert_eq!(p.snat.addresses.len(), 5);
    assert_eq!(
        p.snat.ports,
        PortRange {
            start: 1024,
            end: 65535
        }
    );
    assert_eq!(p.snat.mapping, Mapping::EndpointIndependent);
    assert_eq!(p.snat.filtering, Filtering::AddressAndPortDependent);
    assert!(p.snat.hairpinning);
    assert_eq!(p.sessions.timeouts, Timeouts::default());
    assert_eq!(p.sessions.mss_clamp, Some(1400));
    assert_eq!(p.sessions.max_sessions, 1 << 20);
    assert_eq!(p.sessions.on_reload, OnReload::Recheck);

    // Forwards, both ways.
    let web = p
        .forwards
        .lookup(IpProtocol::TCP, ip("203.0.113.2"), 443)
        .unwrap();
    assert_eq!(web.private, SocketAddrV4::new(ip("10.0.1.10"), 8443));
    assert_eq!(web.index, 0);
    assert_eq!(
        p.forwards.lookup(IpProtocol::UDP, ip("203.0.113.2"), 443),
        None
    );
    let game = p
        .forwards
        .lookup(IpProtocol::UDP, ip("203.0.113.17"), 27018)
        .unwrap();
    assert_eq!(game.private, SocketAddrV4::new(ip("10.0.1.11"), 27018));
    assert_eq!(
        p.forwards
            .lookup(IpProtocol::UDP, ip("203.0.113.17"), 27021),
        None
    );
    assert_eq!(
        p.forwards.reverse(IpProtocol::TCP, ip("10.0.1.10"), 8443),
        Some(SocketAddrV4::new(ip("203.0.113.2"), 443))
    );
    assert_eq!(p.forwards.len(), 7);
    assert!(p.forwards.has_address(ip("203.0.113.17")));
    assert_eq!(
        p.statics.private_of(ip("203.0.113.40")),
        Some(ip("10.0.1.40"))
    );
    assert_eq!(
        p.statics.public_of(ip("10.0.1.40")),
        Some(ip("203.0.113.40"))
    );

    // Egress rules.
    let v = p.egress.check(&tcp("10.0.1.25", "192.0.2.80", 25));
    assert_eq!(
        v,
        Decision {
            action: Action::Deny,
            rule: Some(0)
        }
    );
    let v = p.egress.check(&tcp("10.0.1.25", "1.1.1.1", 587));
    assert_eq!(
        v,
        Decision {
            action: Action::Allow,
            rule: Some(1)
        }
    );
    assert_eq!(
        p.egress.check(&tcp("10.0.1.5", "198.19.0.1", 80)).rule,
        Some(2)
    );
    let ping = MatchKey {
        proto: IpProtocol::ICMP,
        icmp_type: Some(8),
        ..tcp("10.0.1.5", "1.1.1.1", 0)
    };
    assert_eq!(p.egress.check(&ping).rule, Some(3));
    let gre = MatchKey {
        proto: IpProtocol::GRE,
        ..tcp("10.0.1.5", "1.1.1.1", 0)
    };
    assert_eq!(p.egress.check(&gre).action, Action::Deny);
    let ntp = MatchKey {
        proto: IpProtocol::UDP,
        src_port: 123,
        ..tcp("10.0.1.5", "1.1.1.1", 123)
    };
    assert_eq!(p.egress.check(&ntp).rule, Some(5));
    assert_eq!(p.egress.len(), 6);
    assert_eq!(
        p.egress.check(&tcp("10.0.1.5", "1.1.1.1", 80)),
        Decision {
            action: Action::Allow,
            rule: None
        }
    );

    // Ingress rules (on the packet as sent).
    assert_eq!(
        p.ingress
            .check(&tcp("198.51.100.9", "203.0.113.2", 443))
            .action,
        Action::Deny
    );
    assert_eq!(
        p.ingress.check(&tcp("192.0.2.9", "203.0.113.2", 443)),
        Decision {
            action: Action::Allow,
            rule: Some(1)
        }
    );
    assert_eq!(
        p.ingress.check(&tcp("192.0.2.9", "203.0.113.2", 22)),
        Decision {
            action: Action::Deny,
            rule: None
        }
    );

    // Local services.
    assert!(p.local.icmp_echo);
    let probe = p.local.health_probe.as_ref().unwrap();
    assert_eq!(probe.port, 8080);
    assert!(probe.admits(ip("168.63.129.16")));
    assert!(!probe.admits(ip("168.63.129.17")));
    assert_eq!(probe.http_path, None, "a TCP probe");
    assert_eq!(probe.drain_on_stop, 0);
}

#[test]
fn http_health_probe() {
    let one_arm = "[[port]]\nname = \"nic\"\nrole = \"both\"\ndevice = \"net_null0\"\naddress = \"10.0.0.4/24\"\n";
    let probe = |extra: &str| {
        let text = format!("{one_arm}[local.health_probe]\nport = 80\n{extra}");
        let config = Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        Policy::compile(&config, 1)
            .unwrap()
            .local
            .health_probe
            .unwrap()
    };
    let p = probe("protocol = \"http\"\npath = \"/healthz\"\ndrain_on_stop = 20\n");
    assert_eq!(p.http_path.as_deref(), Some(&b"/healthz"[..]));
    assert_eq!(p.drain_on_stop, 20);
    assert!(p.admits(ip("198.51.100.7")), "no sources: anyone");
    let p = probe("protocol = \"http\"\n");
    assert_eq!(p.http_path.as_deref(), Some(&b"/"[..]), "the default path");
    assert_eq!(probe("protocol = \"tcp\"\n").http_path, None);
}

#[test]
fn one_arm_defaults() {
    let text = "[[port]]\nname = \"nic\"\nrole = \"both\"\ndevice = \"net_null0\"\naddress = \"10.0.0.4/24\"\ngateway = \"10.0.0.1\"\n";
    let config = Config::parse(text, "one-arm.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(validate::warnings(&config).is_empty());
    let p = Policy::compile(&config, 1).unwrap();
    assert_eq!(p.private.prefixes(), &validate::RFC1918);
    assert!(p.is_private(ip("172.31.255.255")) && !p.is_private(ip("172.32.0.0")));
    // Masquerade: the port's own address is the pool.
    assert_eq!(p.snat.addresses, vec![ip("10.0.0.4")]);
    assert_eq!(p.snat.mapping, Mapping::EndpointIndependent);
    assert_eq!(p.snat.filtering, Filtering::AddressAndPortDependent);
    assert_eq!(p.egress.default_action(), Action::Allow);
    assert!(p.egress.is_empty());
    assert_eq!(p.ingress.default_action(), Action::Deny);
    assert!(p.forwards.is_empty() && p.statics.is_empty());
    assert_eq!(p.sessions.timeouts.tcp_established, 7440);
    assert_eq!(p.sessions.timeouts.tcp_transitory, 240);
    assert_eq!(p.sessions.timeouts.udp, 300);
    assert_eq!(p.sessions.timeouts.icmp, 60);
    assert!(!p.sessions.tcp_loose);
    assert!(p.local.icmp_echo && p.local.health_probe.is_none());
    // Both roles: private destinations and the internet both leave through the one port.
    assert_eq!(p.next_hop(ip("10.1.0.9")), hop(0, "10.0.0.1"));
    assert_eq!(p.next_hop(ip("8.8.8.8")), hop(0, "10.0.0.1"));
}

#[test]
fn two_arm_default_private_prefixes_are_the_inside_subnets() {
    let p = policy(&two_arm("", LAN, WAN, ""));
    assert_eq!(
        p.private.prefixes(),
        &[Prefix(ipnet::Ipv4Net::new_assert(ip("10.0.1.0"), 24))]
    );
    assert_eq!(p.snat.addresses, vec![ip("203.0.113.2")]);
    assert!(p.ports[1].arp_addresses == vec![ip("203.0.113.2")]);
}

#[test]
fn routed_addresses_need_no_subnet_and_get_no_arp() {
    let p = policy(&two_arm(
        "",
        LAN,
        WAN,
        "[nat]\naddresses = [\"198.51.100.0/30\"]\nrouted = true\n\n\
         [[ingress.static]]\npublic = \"192.0.2.1\"\nprivate = \"10.0.1.9\"\n",
    ));
    assert_eq!(p.snat.addresses.len(), 4);
    assert_eq!(p.ports[1].arp_addresses, vec![ip("203.0.113.2")]);
    assert_eq!(p.statics.private_of(ip("192.0.2.1")), Some(ip("10.0.1.9")));
}

/// The configuration `text`, valid, with one warning, about `field`.
fn warned_once(text: &str, field: &str) -> Config {
    let config = Config::parse(text, "t").unwrap();
    let warnings = validate::warnings(&config);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].field, field);
    config
}

#[test]
fn configs_without_addresses_still_load() {
    // The L2 forwarder's files have no addressing; they stay valid, with a warning.
    let config = warned_once(
        "[[port]]\nname = \"a\"\nrole = \"both\"\ndevice = \"net_null0\"\n",
        "nat.addresses",
    );
    let p = Policy::compile(&config, 0).unwrap();
    assert!(p.snat.addresses.is_empty());
    assert_eq!(p.ports[0].address, None);
    assert_eq!(p.next_hop(ip("1.1.1.1")), None);
}

#[test]
fn unusable_forwards_are_warned_about() {
    warned_once(
        &two_arm(
            "",
            LAN,
            WAN,
            "[[ingress.forward]]\nproto = \"tcp\"\npublic = \"203.0.113.2\"\npublic_port = 80\nprivate = \"10.0.1.10\"\n",
        ),
        "ingress.default",
    );
}

#[test]
fn compile_refuses_an_unchecked_config() {
    let mut config = Config::parse(&two_arm("", LAN, WAN, ""), "t").unwrap();
    config.egress.rule.push(config::RuleConfig {
        action: Action::Deny,
        proto: Parsed::new("any"),
        src: vec![Parsed::new("10.0.0.0/40")],
        dst: Vec::new(),
        src_ports: Vec::new(),
        dst_ports: Vec::new(),
        icmp_types: Vec::new(),
        comment: String::new(),
    });
    match Policy::compile(&config, 0) {
        Err(PolicyError::Invalid(errors)) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].field, "egress.rule[0].src[0]");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = two_arm(
        "private_prefixes = [\"10.0.1.0/33\"]",
        "address = \"10.0.1.0/24\"",
        WAN,
        "[nat]\nport_range = \"9-3\"\n[nat.timeouts]\nudp = 30\n\n\
         [[egress.rule]]\naction = \"deny\"\ndst = [\"x\", \"10.0.0.1/8\"]\n",
    );
    let Err(ConfigError::Invalid { errors, .. }) = Config::parse(&text, "t") else {
        panic!("expected validation errors");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "private_prefixes[0]",
        "port[0].address",
        "nat.port_range",
        "nat.timeouts.udp",
        "egress.rule[0].dst[0]",
        "egress.rule[0].dst[1]",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

/// Each bad file is refused with a message naming the field, the value (for checks past the
/// parser), and a fix.
#[test]
fn bad_policy_configs_name_the_field() {
    let fwd = |public: &str, port: &str, private: &str| {
        format!(
            "[[ingress.forward]]\nproto = \"tcp\"\npublic = \"{public}\"\npublic_port = {port}\nprivate = \"{private}\"\n"
        )
    };
    let one_to_one = |public: &str, private: &str| {
        format!("[[ingress.static]]\npublic = \"{public}\"\nprivate = \"{private}\"\n")
    };
    let rule = |body: &str| format!("[[egress.rule]]\naction = \"deny\"\n{body}\n");
    let three_rules = rule("") + &rule("") + &rule("");
    // (top, lan keys, wan keys, rest, expected field, expected value, expected fix fragment)
    let cases: Vec<(String, String, String, String, &str, &str, &str)> = vec![
        // Rules.
        (
            "".into(), LAN.into(), WAN.into(),
            three_rules.clone() + &rule("dst = [\"10.0.0.0/8\", \"1.2.3.4/33\"]"),
            "egress.rule[3].dst[1]", "1.2.3.4/33", "prefix like",
        ),
        ("".into(), LAN.into(), WAN.into(), rule("src = [\"10.0.0.1/8\"]"), "egress.rule[0].src[0]", "10.0.0.1/8", "write 10.0.0.0/8"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = \"tcp\"\ndst_ports = [\"2000-1000\"]"), "egress.rule[0].dst_ports[0]", "2000-1000", "write 1000-2000"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = \"tcp\"\nsrc_ports = [70000]"), "egress.rule[0].src_ports[0]", "70000", "0-65535"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = \"gre\""), "egress.rule[0].proto", "gre", "protocol number"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = 300"), "egress.rule[0].proto", "300", "0-255"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = \"icmp\"\ndst_ports = [80]"), "egress.rule[0].dst_ports", "80", "proto = \"tcp\" or \"udp\""),
        ("".into(), LAN.into(), WAN.into(), rule("dst_ports = [80]"), "egress.rule[0].dst_ports", "80", "(this rule has proto = \"any\")"),
        ("".into(), LAN.into(), WAN.into(), rule("proto = \"udp\"\nicmp_types = [8]"), "egress.rule[0].icmp_types", "[8]", "proto = \"icmp\""),
        ("".into(), LAN.into(), WAN.into(), "[[ingress.rule]]\naction = \"allow\"\nsrc = [\"bogus\"]\n".into(), "ingress.rule[0].src[0]", "bogus", "prefix like"),
        ("".into(), LAN.into(), WAN.into(), "[[egress.rule]]\naction = \"reject\"\n".into(), "reject", "", "allow"),
        ("".into(), LAN.into(), WAN.into(), rule("dst_port = 80"), "dst_port", "", "dst_ports"),
        ("".into(), LAN.into(), WAN.into(), "[[egress.rule]]\nproto = \"tcp\"\n".into(), "action", "", "missing"),
        ("".into(), LAN.into(), WAN.into(), "[ingress]\ndefault = \"maybe\"\n".into(), "maybe", "", "deny"),
        // NAT.
        ("".into(), LAN.into(), WAN.into(), "[nat]\ntimeout = 5\n".into(), "timeout", "", "timeouts"),
        ("".into(), LAN.into(), WAN.into(), "[nat.timeouts]\ntcp_established = 3600\n".into(), "nat.timeouts.tcp_established", "3600", "RFC 5382"),
        ("".into(), LAN.into(), WAN.into(), "[nat.timeouts]\ntcp_transitory = 60\n".into(), "nat.timeouts.tcp_transitory", "60", "at least 4 min"),
        ("".into(), LAN.into(), WAN.into(), "[nat.timeouts]\nudp = 30\n".into(), "nat.timeouts.udp", "30", "RFC 4787"),
        ("".into(), LAN.into(), WAN.into(), "[nat.timeouts]\nicmp = 10\n".into(), "nat.timeouts.icmp", "10", "RFC 5508"),
        ("".into(), LAN.into(), WAN.into(), "[nat.timeouts]\ntcp = 10\n".into(), "tcp", "", "tcp_established"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nport_range = \"70000\"\n".into(), "nat.port_range", "70000", "0-65535"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nport_range = \"5000-4000\"\n".into(), "nat.port_range", "5000-4000", "4000-5000"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nport_range = \"0-100\"\n".into(), "nat.port_range", "0-100", "start at 1"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\naddresses = [\"198.51.100.7\"]\n".into(), "nat.addresses[0]", "198.51.100.7", "nat.routed = true"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\naddresses = [\"203.0.113.0/24\"]\n".into(), "nat.addresses[0]", "203.0.113.0/24", "narrower prefix"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\naddresses = [\"203.0.113.1\"]\n".into(), "nat.addresses[0]", "203.0.113.1", "gateway"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\naddresses = [\"203.0.113.8/29\", \"203.0.113.9\"]\n".into(), "nat.addresses[1]", "203.0.113.9", "overlaps nat.addresses[0]"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\naddresses = [\"10.0.0.0/8\"]\nrouted = true\n".into(), "nat.addresses", "16777216 addresses", "at most 65536"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nmapping = \"full-cone\"\n".into(), "full-cone", "", "endpoint-independent"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nmax_sessions = 0\n".into(), "nat.max_sessions", "0", "between 1 and"),
        ("".into(), LAN.into(), WAN.into(), "[nat]\nmss_clamp = 100\n".into(), "nat.mss_clamp", "100", "536"),
        // Ingress.
        ("".into(), LAN.into(), WAN.into(), fwd("198.51.100.7", "80", "10.0.1.10"), "ingress.forward[0].public", "198.51.100.7", "add it to nat.addresses"),
        ("".into(), LAN.into(), WAN.into(), fwd("10.0.1.1", "80", "10.0.1.10"), "ingress.forward[0].public", "10.0.1.1", "public addresses"),
        ("".into(), LAN.into(), WAN.into(), fwd("203.0.113.2", "80", "8.8.8.8"), "ingress.forward[0].private", "8.8.8.8", "private_prefixes"),
        ("".into(), LAN.into(), WAN.into(), fwd("203.0.113.2", "80", "10.0.1.1"), "ingress.forward[0].private", "10.0.1.1", "inside host"),
        ("".into(), LAN.into(), WAN.into(), fwd("203.0.113.2", "0", "10.0.1.10"), "ingress.forward[0].public_port", "0", "1-65535"),
        (
            "".into(), LAN.into(), WAN.into(),
            fwd("203.0.113.2", "\"8000-8100\"", "10.0.1.10") + &fwd("203.0.113.2", "8080", "10.0.1.11"),
            "ingress.forward[1].public_port", "8080", "overlaps ingress.forward[0]",
        ),
        (
            "".into(), LAN.into(), WAN.into(),
            fwd("203.0.113.2", "\"9000-9010\"", "10.0.1.11") + &fwd("203.0.113.2", "\"8990-9000\"", "10.0.1.10"),
            "ingress.forward[1].public_port", "8990-9000", "overlaps ingress.forward[0]",
        ),
        (
            "".into(), LAN.into(), WAN.into(),
            fwd("203.0.113.2", "\"65000-65535\"", "10.0.1.10") + "private_port = 65500\n",
            "ingress.forward[0].private_port", "65500", "past 65535",
        ),
        ("".into(), LAN.into(), WAN.into(), fwd("203.0.113.2", "80", "10.0.1.10").replace("tcp", "icmp"), "icmp", "", "tcp"),
        (
            "".into(), LAN.into(), WAN.into(),
            "[nat]\naddresses = [\"203.0.113.2\", \"203.0.113.40\"]\n".to_string() + &one_to_one("203.0.113.40", "10.0.1.40"),
            "ingress.static[0].public", "203.0.113.40", "remove it from nat.addresses",
        ),
        (
            "".into(), LAN.into(), WAN.into(),
            one_to_one("203.0.113.40", "10.0.1.40") + &one_to_one("203.0.113.41", "10.0.1.40"),
            "ingress.static[1].private", "10.0.1.40", "one each",
        ),
        (
            "".into(), LAN.into(), WAN.into(),
            one_to_one("203.0.113.40", "10.0.1.40") + &one_to_one("203.0.113.40", "10.0.1.41"),
            "ingress.static[1].public", "203.0.113.40", "one each",
        ),
        ("".into(), LAN.into(), WAN.into(), one_to_one("198.51.100.40", "10.0.1.40"), "ingress.static[0].public", "198.51.100.40", "nat.routed = true"),
        (
            "".into(), LAN.into(), WAN.into(),
            "[nat]\naddresses = [\"203.0.113.2\", \"203.0.113.40\"]\n".to_string()
                + &fwd("203.0.113.40", "80", "10.0.1.10")
                + &one_to_one("203.0.113.41", "10.0.1.40")
                + &fwd("203.0.113.41", "80", "10.0.1.10"),
            "ingress.forward[1].public", "203.0.113.41", "ingress.static",
        ),
        // Ports.
        ("".into(), "address = \"10.0.1.300/24\"".into(), WAN.into(), "".into(), "port[0].address", "10.0.1.300/24", "like 10.0.1.1/24"),
        ("".into(), "address = \"10.0.1.1\"".into(), WAN.into(), "".into(), "port[0].address", "10.0.1.1", "10.0.1.1/24"),
        ("".into(), "address = \"10.0.1.0/24\"".into(), WAN.into(), "".into(), "port[0].address", "10.0.1.0/24", "network address"),
        ("".into(), LAN.into(), "address = \"10.0.1.5/16\"".into(), "".into(), "port[1].address", "10.0.1.5/16", "overlaps the subnet of port[0] lan"),
        ("".into(), LAN.into(), "address = \"203.0.113.2/24\"\ngateway = \"198.51.100.1\"".into(), "".into(), "port[1].gateway", "198.51.100.1", "on-link"),
        ("".into(), "gateway = \"10.0.1.254\"".into(), WAN.into(), "".into(), "port[0].gateway", "10.0.1.254", "port[0].address"),
        (
            "".into(), format!("{LAN}\nneighbours = [{{ ip = \"10.0.1.7\", mac = \"02:00:00:00:07\" }}]"), WAN.into(), "".into(),
            "port[0].neighbours[0].mac", "02:00:00:00:07", "MAC address like",
        ),
        (
            "".into(), format!("{LAN}\nneighbours = [{{ ip = \"10.0.1.7\", mac = \"ff:ff:ff:ff:ff:ff\" }}]"), WAN.into(), "".into(),
            "port[0].neighbours[0].mac", "ff:ff:ff:ff:ff:ff", "unicast",
        ),
        (
            "".into(), format!("{LAN}\nneighbours = [{{ ip = \"10.0.2.7\", mac = \"02:00:00:00:00:07\" }}]"), WAN.into(), "".into(),
            "port[0].neighbours[0].ip", "10.0.2.7", "on-link",
        ),
        (
            "".into(), format!("{LAN}\nneighbours = [{{ ip = \"10.0.1.7\", mac = \"02:00:00:00:00:07\", vlan = 3 }}]"), WAN.into(), "".into(),
            "vlan", "", "unknown field",
        ),
        // Private prefixes.
        ("private_prefixes = [\"10.0.0.0/33\"]".into(), LAN.into(), WAN.into(), "".into(), "private_prefixes[0]", "10.0.0.0/33", "length 0-32"),
        ("private_prefixes = [\"0.0.0.0/0\"]".into(), LAN.into(), WAN.into(), "".into(), "private_prefixes[0]", "0.0.0.0/0", "narrow it"),
        // Local.
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 0\n".into(), "local.health_probe.port", "0", "1-65535"),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nsources = [\"168.63.129.16/33\"]\n".into(), "local.health_probe.sources[0]", "168.63.129.16/33", "prefix like"),
        ("".into(), LAN.into(), WAN.into(), "[local]\nssh = true\n".into(), "ssh", "", "icmp_echo"),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nprotocol = \"htpp\"\n".into(), "local.health_probe.protocol", "htpp", "\"tcp\" or \"http\""),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\npath = \"/healthz\"\n".into(), "local.health_probe.path", "/healthz", "only for protocol = \"http\""),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"healthz\"\n".into(), "local.health_probe.path", "healthz", "like \"/healthz\""),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"/health z\"\n".into(), "local.health_probe.path", "/health z", "without spaces"),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"/healthz?full=1\"\n".into(), "local.health_probe.path", "/healthz?full=1", "\"?\""),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\ndrain_on_stop = 7200\n".into(), "local.health_probe.drain_on_stop", "7200", "at most 3600 seconds"),
        ("".into(), LAN.into(), WAN.into(), "[local.health_probe]\nport = 80\nprotocol = \"http\"\nhttp_path = \"/\"\n".into(), "http_path", "", "unknown field"),
        (
            "".into(), LAN.into(), WAN.into(),
            "[local.health_probe]\nport = 443\n".to_string() + &fwd("203.0.113.2", "443", "10.0.1.10"),
            "local.health_probe.port", "443", "ingress.forward[0]",
        ),
        // Ports.
        (
            "".into(), LAN.into(), WAN.into(),
            (0..31).map(|i| format!("[[port]]\nname = \"p{i}\"\nrole = \"inside\"\ndevice = \"net_null{}\"\n", i + 2)).collect(),
            "port", "33 ports", "at most 32 ports",
        ),
    ];
    assert!(cases.len() >= 20);
    for (top, lan, wan, rest, field, value, fix) in &cases {
        let text = two_arm(top, lan, wan, rest);
        let err = match Config::parse(&text, "bad.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(msg.starts_with("bad.toml"), "{msg}");
        assert!(msg.contains(field), "{text}\n{msg:?} does not name {field}");
        assert!(msg.contains(fix), "{text}\n{msg:?} does not say {fix:?}");
        if let ConfigError::Invalid { errors, .. } = &err {
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == *field && e.value == *value),
                "{text}\n{errors:?} has no {field} = {value:?}"
            );
        }
    }
}

/// What [`Routes`] precomputes, written as the definition: the first port whose subnet holds
/// `dst` (never a `gwlb` port: it routes nothing), else the first port of the destination's
/// kind (inside for private, outside for public, `both` for either) that has a gateway.
fn next_hop_by_definition(
    ports: &[PortAddressing],
    private: &PrefixSet,
    dst: Ipv4Addr,
) -> Option<NextHop> {
    if let Some(port) = ports
        .iter()
        .position(|p| p.on_link(dst) && p.role != Role::Gwlb)
    {
        return Some(NextHop { port, ip: dst });
    }
    let wanted = if private.contains(dst) {
        Role::Inside
    } else {
        Role::Outside
    };
    ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == wanted || p.role == Role::Both)
        .find_map(|(port, p)| p.gateway.map(|ip| NextHop { port, ip }))
}

/// A xorshift generator from `seed` (not zero): reproducible random inputs.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn routes_agree_with_the_definition() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    let nets = [
        None,
        Some("10.0.1.1/24"),
        Some("10.0.0.1/16"),
        Some("192.0.2.2/24"),
        Some("203.0.113.9/32"),
        Some("0.0.0.0/0"),
        Some("172.16.5.4/12"),
    ];
    let gateways = [
        None,
        Some("10.0.1.254"),
        Some("192.0.2.1"),
        Some("172.16.0.1"),
    ];
    let roles = [Role::Inside, Role::Outside, Role::Both, Role::Gwlb];
    // The last set has too many ranges for a compiled table: those routes use the definition.
    let many = (0..40u32)
        .map(|i| {
            Prefix(ipnet::Ipv4Net::new_assert(
                Ipv4Addr::from(0x6400_0000 + (i << 17)),
                16,
            ))
        })
        .collect();
    let privates = [
        PrefixSet::default(),
        PrefixSet::new(vec![Prefix(ipnet::Ipv4Net::new_assert(ip("10.0.0.0"), 8))]),
        PrefixSet::new(validate::RFC1918.to_vec()),
        PrefixSet::new(many),
    ];
    let mut compiled = [0, 0];
    let probes: Vec<Ipv4Addr> = [
        "10.0.1.7",
        "10.0.0.0",
        "10.0.255.255",
        "10.1.0.1",
        "192.0.2.255",
        "203.0.113.9",
        "203.0.113.10",
        "172.31.255.255",
        "172.32.0.0",
        "8.8.8.8",
        "0.0.0.0",
        "255.255.255.255",
        // The edges of /8s, split by a subnet or not.
        "9.255.255.255",
        "11.0.0.0",
        "171.255.255.255",
        "173.0.0.0",
        "202.255.255.255",
        "204.0.0.0",
    ]
    .iter()
    .map(|s| ip(s))
    .collect();
    for _ in 0..300 {
        let n = 1 + (next() % 4) as usize;
        let ports: Vec<PortAddressing> = (0..n)
            .map(|i| PortAddressing {
                name: format!("p{i}"),
                role: roles[(next() % 4) as usize],
                address: nets[(next() % nets.len() as u64) as usize].map(|s| s.parse().unwrap()),
                gateway: gateways[(next() % gateways.len() as u64) as usize].map(ip),
                neighbours: Vec::new(),
                arp_addresses: Vec::new(),
                tunnel: None,
            })
            .collect();
        for private in &privates {
            let routes = Routes::new(&ports, private);
            compiled[usize::from(private.prefixes().len() == 40)] += usize::from(routes.compiled());
            // Anywhere, and near the subnets above (10.0/15, 172.16/12, 192.0.2/23).
            let random = (0..200).map(|i| {
                let r = next() as u32;
                Ipv4Addr::from(match i % 5 {
                    0 => r,
                    1 => 0x0a00_0000 | (r & 0x1_ffff),
                    2 => 0xac10_0000 | (r & 0xf_ffff),
                    3 => 0x6400_0000 | (r & 0x7f_ffff),
                    _ => 0xc000_0200 | (r & 0x1ff),
                })
            });
            for dst in probes.iter().copied().chain(random) {
                assert_eq!(
                    routes.lookup(dst),
                    next_hop_by_definition(&ports, private, dst),
                    "{dst} via {ports:?}"
                );
            }
        }
    }
    // Both kinds were checked: every policy with the first three sets compiles; with the last
    // (40 ranges) only those that route private and public destinations alike do.
    assert_eq!(compiled[0], 300 * 3, "compiled tables");
    assert!(
        compiled[1] < 200,
        "the definition's routes: {}",
        300 - compiled[1]
    );
}

#[test]
fn prefix_sets_hold_what_their_prefixes_hold() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
    // Sizes on both sides of the linear test, prefixes that overlap, touch and nest.
    for _ in 0..500 {
        let n = (next() % 9) as usize;
        let prefixes: Vec<Prefix> = (0..n)
            .map(|_| {
                let len = 4 + (next() % 29) as u8;
                let addr = Ipv4Addr::from(0x0a00_0000 | (next() as u32 & 0x00ff_ffff));
                Prefix(ipnet::Ipv4Net::new_assert(addr, len).trunc())
            })
            .collect();
        let set = PrefixSet::new(prefixes.clone());
        for i in 0..200 {
            let addr = match i % 3 {
                0 => Ipv4Addr::from(next() as u32),
                1 => Ipv4Addr::from(0x0a00_0000 | (next() as u32 & 0x00ff_ffff)),
                // The edges of each prefix.
                _ => prefixes
                    .get(i % n.max(1))
                    .map_or(Ipv4Addr::UNSPECIFIED, |p| {
                        if next() % 2 == 0 {
                            Ipv4Addr::from(p.first().wrapping_sub(1))
                        } else {
                            Ipv4Addr::from(p.last().wrapping_add(next() as u32 % 2))
                        }
                    }),
            };
            let expected = prefixes.iter().any(|p| p.contains(addr));
            assert_eq!(set.contains(addr), expected, "{addr} in {prefixes:?}");
        }
    }
}

#[test]
fn a_gwlb_port_compiles_its_tunnel_and_routes_nothing() {
    use crate::packet::Vni;
    let p = crate::testing::compile(crate::testing::gwlb::GENEVE, 1);
    assert_eq!(p.ports[0].tunnel, Some(Tunnel::Geneve { port: 6081 }));
    assert_eq!(
        p.next_hop(crate::testing::gwlb::LB),
        None,
        "its subnet is not routed"
    );
    assert!(p.is_private(ip("10.0.1.10")), "RFC 1918 by default");
    assert!(p.snat.addresses.is_empty());
    let p = crate::testing::compile(crate::testing::gwlb::VXLAN, 1);
    let vni = |v| Vni::new(v).unwrap();
    assert_eq!(
        p.ports[0].tunnel,
        Some(Tunnel::Vxlan {
            internal: (10800, vni(800)),
            external: (10801, vni(801)),
        })
    );
}

//! The flow expression parser, form by form, and `explain` on the example configurations.

use super::*;
use crate::testing::{has, json_has};
use serde_json::json;

// --- the flow expression ------------------------------------------------------------------

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn parse(s: &str) -> Flow {
    Flow::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Each `(expression, token, expected)`: the expression is refused at `token` (`None`: it
/// ended early), and the message names it and what was expected.
fn refused(cases: &[(&str, Option<&str>, &str)]) {
    for &(s, token, expected) in cases {
        let e = Flow::parse(s).expect_err(s);
        assert_eq!(e.token.as_deref(), token, "{s:?}: {e}");
        assert!(e.expected.contains(expected), "{s:?}: {e}");
        let message = e.to_string();
        if let Some(t) = token {
            assert!(message.contains(&format!("{t:?}")), "{message}");
        }
        assert!(message.contains("the form is"), "{message}");
    }
}

mod parse {
    use super::*;

    #[test]
    fn udp() {
        let f = parse("udp 10.0.1.10:5000 -> 198.51.100.10:53");
        assert_eq!(
            f,
            Flow {
                src: ip("10.0.1.10"),
                dst: ip("198.51.100.10"),
                transport: Transport::Udp {
                    src_port: 5000,
                    dst_port: 53
                },
                port: None,
                ttl: 64,
                tunnel: Encapsulation::Own,
            }
        );
    }

    #[test]
    fn tcp_is_a_syn_by_default() {
        let f = parse("TCP 10.0.1.10:40000 -> 203.0.113.10:443");
        assert_eq!(
            f.transport,
            Transport::Tcp {
                src_port: 40000,
                dst_port: 443,
                flags: TcpFlags::SYN
            }
        );
    }

    #[test]
    fn tcp_flags() {
        for (text, want) in [
            ("syn,ack", TcpFlags::SYN | TcpFlags::ACK),
            ("ACK+FIN", TcpFlags::ACK | TcpFlags::FIN),
            ("rst", TcpFlags::RST),
            ("psh|ack", TcpFlags::PSH | TcpFlags::ACK),
            ("none", TcpFlags::default()),
        ] {
            let f = parse(&format!("tcp 1.2.3.4:1 -> 5.6.7.8:2 flags {text}"));
            let Transport::Tcp { flags, .. } = f.transport else {
                panic!()
            };
            assert_eq!(flags, want, "{text}");
        }
    }

    #[test]
    fn arrow_without_spaces() {
        let f = parse("udp 10.0.1.10:5000->198.51.100.10:53");
        assert_eq!((f.src, f.dst), (ip("10.0.1.10"), ip("198.51.100.10")));
        let g = parse("  udp   10.0.1.10:5000 ->198.51.100.10:53  ");
        assert_eq!(f, g);
    }

    #[test]
    fn icmp_defaults_to_echo_request_id_1() {
        let f = parse("icmp 203.0.113.10 -> 192.0.2.2");
        assert_eq!(
            f.transport,
            Transport::Icmp {
                ty: 8,
                code: 0,
                ident: 1
            }
        );
        assert_eq!(f.transport.ports(), (1, 1));
    }

    #[test]
    fn icmp_types_by_name_and_number() {
        for (text, ty) in [
            ("echo-request", 8),
            ("echo", 8),
            ("echo-reply", 0),
            ("unreachable", 3),
            ("Time-Exceeded", 11),
            ("13", 13),
            ("255", 255),
        ] {
            let f = parse(&format!("icmp 1.2.3.4 -> 5.6.7.8 type {text} id 7"));
            assert_eq!(
                f.transport,
                Transport::Icmp {
                    ty,
                    code: 0,
                    ident: 7
                },
                "{text}"
            );
        }
        let f = parse("icmp 1.2.3.4 -> 5.6.7.8 type unreachable code 3");
        assert!(matches!(
            f.transport,
            Transport::Icmp { ty: 3, code: 3, .. }
        ));
    }

    #[test]
    fn options_in_any_order() {
        let a = parse("tcp 1.2.3.4:1 -> 5.6.7.8:2 on wan ttl 2 flags ack");
        let b = parse("tcp 1.2.3.4:1 -> 5.6.7.8:2 flags ack ON wan TTL 2");
        assert_eq!(a, b);
        assert_eq!(a.port.as_deref(), Some("wan"));
        assert_eq!(a.ttl, 2);
    }

    #[test]
    fn canonical_form_parses_back() {
        for s in [
            "udp 10.0.1.10:5000 -> 198.51.100.10:53",
            "tcp 10.0.1.10:1 -> 1.1.1.1:25 flags fin,ack on lan ttl 1",
            "tcp 10.0.1.10:1 -> 1.1.1.1:25 flags none",
            "icmp 10.0.1.10 -> 1.1.1.1 type echo-reply id 9",
            "icmp 10.0.1.10 -> 1.1.1.1 type unreachable code 3",
            "icmp 10.0.1.10 -> 1.1.1.1 type 13 on wan",
            "udp 10.0.1.10:5000 -> 198.51.100.10:53 tunnel geneve vni 7",
            "tcp 10.0.1.10:1 -> 1.1.1.1:25 tunnel geneve vni 0 options 01088100deadbeef",
            "icmp 10.0.1.10 -> 1.1.1.1 tunnel external",
            "udp 10.0.1.10:5000 -> 198.51.100.10:53 tunnel none",
        ] {
            let f = parse(s);
            assert_eq!(parse(&f.to_string()), f, "{s} -> {f}");
        }
    }

    #[test]
    fn empty() {
        refused(&[("", None, "a protocol"), ("   ", None, "a protocol")]);
    }

    #[test]
    fn unknown_protocol() {
        refused(&[
            (
                "sctp 1.2.3.4:1 -> 5.6.7.8:2",
                Some("sctp"),
                "tcp, udp or icmp",
            ),
            (
                "10.0.1.10:1 -> 5.6.7.8:2",
                Some("10.0.1.10:1"),
                "a protocol",
            ),
        ]);
    }

    #[test]
    fn missing_port() {
        refused(&[
            (
                "udp 10.0.1.10 -> 5.6.7.8:2",
                Some("10.0.1.10"),
                "address and port",
            ),
            (
                "udp 10.0.1.10:1 -> 5.6.7.8",
                Some("5.6.7.8"),
                "address and port",
            ),
        ]);
    }

    #[test]
    fn bad_port() {
        refused(&[
            (
                "udp 10.0.1.10:99999 -> 5.6.7.8:2",
                Some("10.0.1.10:99999"),
                "0-65535",
            ),
            (
                "udp 10.0.1.10:x -> 5.6.7.8:2",
                Some("10.0.1.10:x"),
                "0-65535",
            ),
            (
                "udp 10.0.1.10:-1 -> 5.6.7.8:2",
                Some("10.0.1.10:-1"),
                "0-65535",
            ),
        ]);
    }

    #[test]
    fn bad_address() {
        refused(&[
            (
                "udp 10.0.1.300:1 -> 5.6.7.8:2",
                Some("10.0.1.300:1"),
                "address",
            ),
            ("icmp 10.0.1 -> 5.6.7.8", Some("10.0.1"), "IPv4 address"),
            ("udp host:1 -> 5.6.7.8:2", Some("host:1"), "address"),
        ]);
    }

    #[test]
    fn bad_arrow() {
        refused(&[
            ("udp 1.2.3.4:1 => 5.6.7.8:2", Some("=>"), "\"->\""),
            ("udp 1.2.3.4:1 5.6.7.8:2", Some("5.6.7.8:2"), "\"->\""),
        ]);
    }

    #[test]
    fn ends_early() {
        refused(&[
            ("udp", None, "source address"),
            ("udp 1.2.3.4:1", None, "\"->\""),
            ("udp 1.2.3.4:1 ->", None, "destination address"),
            (
                "tcp 1.2.3.4:1 -> 5.6.7.8:2 on",
                None,
                "a value after \"on\"",
            ),
        ]);
    }

    #[test]
    fn icmp_has_no_ports() {
        refused(&[
            ("icmp 1.2.3.4:5 -> 5.6.7.8", Some("1.2.3.4:5"), "`id N`"),
            (
                "icmp 1.2.3.4 -> 5.6.7.8:80",
                Some("5.6.7.8:80"),
                "without a port",
            ),
        ]);
    }

    #[test]
    fn options_belong_to_their_protocol() {
        refused(&[
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 flags syn",
                Some("flags"),
                "on PORT, ttl N, tunnel T",
            ),
            ("tcp 1.2.3.4:1 -> 5.6.7.8:2 type 8", Some("type"), "flags"),
            ("icmp 1.2.3.4 -> 5.6.7.8 flags syn", Some("flags"), "type T"),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 via wan",
                Some("via"),
                "an option",
            ),
        ]);
    }

    #[test]
    fn bad_values() {
        refused(&[
            (
                "tcp 1.2.3.4:1 -> 5.6.7.8:2 flags syn,bogus",
                Some("syn,bogus"),
                "syn, ack",
            ),
            ("tcp 1.2.3.4:1 -> 5.6.7.8:2 ttl 0", Some("0"), "TTL 1-255"),
            (
                "tcp 1.2.3.4:1 -> 5.6.7.8:2 ttl 300",
                Some("300"),
                "TTL 1-255",
            ),
            (
                "icmp 1.2.3.4 -> 5.6.7.8 type bogus",
                Some("bogus"),
                "ICMP type",
            ),
            (
                "icmp 1.2.3.4 -> 5.6.7.8 id 70000",
                Some("70000"),
                "identifier",
            ),
            ("icmp 1.2.3.4 -> 5.6.7.8 code -1", Some("-1"), "ICMP code"),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 tunnel gre",
                Some("gre"),
                "geneve, internal, external",
            ),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 vni 16777216",
                Some("16777216"),
                "VNI 0-16777215",
            ),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 options 0108",
                Some("0108"),
                "4-byte words",
            ),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 options 0108zz00",
                Some("0108zz00"),
                "in hex",
            ),
            (
                "udp 1.2.3.4:1 -> 5.6.7.8:2 tunnel internal vni 3",
                Some("internal"),
                "GENEVE's",
            ),
        ]);
    }

    #[test]
    fn options_at_most_once() {
        refused(&[
            (
                "tcp 1.2.3.4:1 -> 5.6.7.8:2 on lan on wan",
                Some("on"),
                "only once",
            ),
            ("icmp 1.2.3.4 -> 5.6.7.8 id 1 id 2", Some("id"), "only once"),
        ]);
    }

    #[test]
    fn never_panics_on_junk() {
        for s in [
            "->",
            "-> -> ->",
            "tcp -> ->",
            "udp ::1:5 -> ::2:6",
            "tcp 1.2.3.4:1 -> 5.6.7.8:2 flags ,,,",
            "icmp 1.2.3.4 -> 5.6.7.8 type",
            "\u{0}\u{ff} \u{1F600}:1 -> x",
            "udp 1.2.3.4:: -> 5.6.7.8:2",
        ] {
            assert!(Flow::parse(s).is_err(), "{s:?}");
        }
    }
}

// --- explain on the example configurations -------------------------------------------------

const TESTBED: &str = include_str!("../../../configs/testbed.toml");
const EXAMPLE: &str = include_str!("../../../configs/example-policy.toml");

fn explained(config: &str, flow: &str, reply: bool) -> Explanation {
    let config = Config::parse(config, "test.toml").expect("config");
    let policy = Policy::compile(&config, 1).expect("policy");
    explain(&config, &policy, &parse(flow), &Options { reply }).expect("explained")
}

/// `flow` through `config`, without its reply.
fn run(config: &str, flow: &str) -> Explanation {
    explained(config, flow, false)
}

/// `flow` through `config`, and the reply to it.
fn run_with_reply(config: &str, flow: &str) -> Explanation {
    explained(config, flow, true)
}

fn out(x: &Step) -> &PacketView {
    x.output.as_ref().expect("a packet left")
}

/// The step is of `class`, handled as `action` (a forward or an answer) and sent out of
/// `port`: the packet that leaves.
fn leaves<'a>(x: &'a Step, class: Class, action: Handling, port: &str) -> &'a PacketView {
    let v = &x.verdict;
    assert_eq!(
        (x.class, v.action, v.port.as_deref()),
        (class, action, Some(port)),
        "{x:?}"
    );
    out(x)
}

/// The step is of `class` and dropped for `reason`, nothing leaving.
fn dropped(x: &Step, class: Class, reason: &str) {
    let v = &x.verdict;
    assert_eq!(
        (x.class, v.action, v.reason),
        (class, Handling::Drop, Some(reason)),
        "{x:?}"
    );
    assert!(x.output.is_none(), "{x:?}");
}

/// The packet's source and destination, `addr:port -> addr:port` (no ports for ICMP).
fn ends(o: &PacketView) -> String {
    format!("{} -> {}", o.src_text(), o.dst_text())
}

/// The rule that decided: its place in the file, its action and its comment.
fn rule(x: &Explanation) -> (String, &'static str, Option<&str>) {
    let r = x.rule.as_ref().expect("a rule decided");
    (r.path(), r.action, r.comment.as_deref())
}

#[test]
fn egress_is_allowed_and_translated_to_the_public_address() {
    let x = run(TESTBED, "udp 10.0.1.10:5000 -> 198.51.100.10:53");
    assert_eq!(x.step.port, "lan");
    assert!(
        x.port_choice.contains("private prefixes"),
        "{}",
        x.port_choice
    );
    let o = leaves(&x.step, Class::Egress, Handling::Forward, "wan");
    assert_eq!(ends(o), "192.0.2.2:5000 -> 198.51.100.10:53");
    assert_eq!(o.ttl, 63);
    assert_eq!(rule(&x), ("egress.default".into(), "allow", None));
    assert!(matches!(
        x.nat[..],
        [NatView::Snat {
            port: 5000,
            port_kept: true,
            ..
        }]
    ));
    let hop = x.step.next_hop.as_ref().unwrap();
    assert_eq!(
        (hop.ip, hop.via, hop.mac_from),
        (ip("192.0.2.1"), "gateway", "assumed")
    );
    assert!(x.step.session_created);
    let s = x.step.session.unwrap();
    assert_eq!(s.inside.to_string(), "10.0.1.10:5000");
    assert_eq!(s.outside.to_string(), "192.0.2.2:5000");
    assert_eq!(x.step.timeout_s, Some(300));
    assert!(x.notes.iter().any(|n| n.contains("ARP")), "{:?}", x.notes);
}

#[test]
fn smtp_out_is_denied_by_the_egress_rule() {
    let x = run(TESTBED, "tcp 10.0.1.10:40000 -> 198.51.100.10:25");
    dropped(&x.step, Class::Egress, "egress_denied");
    assert_eq!(
        rule(&x),
        (
            "egress.rule[0]".into(),
            "deny",
            Some("no direct SMTP from inside")
        )
    );
    assert!(x.nat.is_empty());
    assert!(!x.step.session_created);
}

#[test]
fn unsolicited_ingress_is_dropped_without_a_forward() {
    let x = run(TESTBED, "udp 203.0.113.10:999 -> 192.0.2.2:5000");
    assert_eq!(x.step.port, "wan");
    dropped(&x.step, Class::Ingress, "no_forward");
    assert!(
        x.rule.is_none(),
        "no forward: the ingress rules are not consulted"
    );
    assert!(x.notes.iter().any(|n| n.contains("not consulted")));
}

#[test]
fn the_port_forward_admits_and_translates() {
    let x = run_with_reply(TESTBED, "tcp 203.0.113.10:40000 -> 192.0.2.2:8080");
    let o = leaves(&x.step, Class::Ingress, Handling::Forward, "lan");
    assert_eq!(ends(o), "203.0.113.10:40000 -> 10.0.1.11:80");
    assert_eq!(
        rule(&x),
        (
            "ingress.rule[0]".into(),
            "allow",
            Some("anyone may use the port forward")
        )
    );
    match &x.nat[..] {
        [NatView::Forward { index, comment, .. }] => {
            assert_eq!(*index, 0);
            assert_eq!(comment.as_deref(), Some("web server on c2"));
        }
        other => panic!("{other:?}"),
    }
    let hop = x.step.next_hop.as_ref().unwrap();
    assert_eq!((hop.ip, hop.via), (ip("10.0.1.11"), "on-link"));
    // The server's SYN-ACK leaves from the public endpoint.
    let r = x.reply.as_ref().unwrap();
    let o = leaves(r, Class::Reply, Handling::Forward, "wan");
    assert_eq!(ends(o), "192.0.2.2:8080 -> 203.0.113.10:40000");
    assert_eq!(r.session.unwrap().state.name(), "syn_received");
}

#[test]
fn ping_to_the_public_address_is_answered() {
    let x = run_with_reply(TESTBED, "icmp 203.0.113.10 -> 192.0.2.2");
    let o = leaves(&x.step, Class::Local, Handling::Answer, "wan");
    assert_eq!(ends(o), "192.0.2.2 -> 203.0.113.10");
    assert_eq!(o.icmp_type, Some(0), "an echo reply");
    assert!(x.step.next_hop.is_none() && x.rule.is_none() && x.nat.is_empty());
    assert!(x.reply.is_none(), "the answer is the reply");
}

#[test]
fn egress_reply_is_reverse_translated() {
    let x = run_with_reply(TESTBED, "tcp 10.0.1.10:40000 -> 203.0.113.10:443");
    leaves(&x.step, Class::Egress, Handling::Forward, "wan");
    assert_eq!(x.step.session.unwrap().state.name(), "syn_sent");
    assert_eq!(x.step.timeout_s, Some(240));
    let r = x.reply.as_ref().unwrap();
    assert_eq!(r.port, "wan");
    assert_eq!(r.packet.tcp_flags.as_deref(), Some("syn,ack"));
    let o = leaves(r, Class::Reply, Handling::Forward, "lan");
    assert!(!r.session_created);
    assert_eq!(ends(o), "203.0.113.10:443 -> 10.0.1.10:40000");
}

#[test]
fn ping_out_maps_the_identifier_and_the_reply_comes_back() {
    let x = run_with_reply(TESTBED, "icmp 10.0.1.10 -> 198.51.100.10 id 4242");
    let o = leaves(&x.step, Class::Egress, Handling::Forward, "wan");
    assert_eq!(o.src, ip("192.0.2.2"));
    let o = leaves(
        x.reply.as_ref().unwrap(),
        Class::Reply,
        Handling::Forward,
        "lan",
    );
    assert_eq!((o.icmp_id, o.dst), (Some(4242), ip("10.0.1.10")));
}

#[test]
fn hairpin_through_the_port_forward() {
    let x = run(TESTBED, "tcp 10.0.1.10:40000 -> 192.0.2.2:8080");
    let o = leaves(&x.step, Class::Hairpin, Handling::Forward, "lan");
    assert_eq!(o.dst_text(), "10.0.1.11:80");
    assert_eq!(o.src, ip("192.0.2.2"), "seen from its public endpoint");
    assert_eq!(x.rule.as_ref().unwrap().set, "egress");
    assert!(matches!(
        x.nat[..],
        [NatView::Forward { .. }, NatView::Snat { .. }]
    ));
}

#[test]
fn ttl_expiring_here_is_answered_with_time_exceeded() {
    let x = run(TESTBED, "udp 10.0.1.10:5000 -> 198.51.100.10:53 ttl 1");
    let o = leaves(&x.step, Class::Invalid, Handling::Answer, "lan");
    assert_eq!(x.step.verdict.reason, Some("ttl_expired"));
    assert_eq!(ends(o), "10.0.1.1 -> 10.0.1.10");
    assert_eq!(o.icmp_type, Some(11), "a time exceeded");
    assert!(!x.step.session_created);
}

#[test]
fn tcp_without_syn_has_no_session_to_join() {
    let x = run(TESTBED, "tcp 10.0.1.10:40000 -> 203.0.113.10:443 flags ack");
    dropped(&x.step, Class::Invalid, "tcp_no_session");
    // The pipeline refuses it before any rule set is consulted, and explain shows only the
    // rule that decided.
    assert_eq!(x.rule, None);
}

#[test]
fn inside_source_from_outside_is_spoofed() {
    let x = run(TESTBED, "udp 10.0.1.10:5000 -> 192.0.2.2:5000 on wan");
    assert_eq!(x.port_choice, "given");
    dropped(&x.step, Class::Invalid, "spoofed_source");
    assert!(x.rule.is_none());
}

#[test]
fn icmp_error_without_a_session_is_related_and_dropped() {
    let x = run(TESTBED, "icmp 198.51.100.1 -> 192.0.2.2 type time-exceeded");
    dropped(&x.step, Class::Related, "icmp_error_no_session");
}

#[test]
fn unknown_port_is_an_error_naming_the_ports() {
    let config = Config::parse(TESTBED, "t").unwrap();
    let policy = Policy::compile(&config, 1).unwrap();
    let flow = parse("udp 1.2.3.4:1 -> 192.0.2.2:2 on dmz");
    let e = explain(&config, &policy, &flow, &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no port is named \"dmz\": the ports are lan, wan"
    );
}

#[test]
fn static_mapping_and_mss_clamp() {
    // 10.0.1.40 leaves as its own public address, ports kept; the SYN's MSS is clamped.
    let x = run(EXAMPLE, "tcp 10.0.1.40:40000 -> 198.51.100.10:443");
    let o = leaves(&x.step, Class::Egress, Handling::Forward, "wan");
    assert_eq!(o.src_text(), "203.0.113.40:40000");
    assert_eq!(o.mss, Some(1400));
    assert_eq!(x.step.packet.mss, Some(frame::SYN_MSS));
    match &x.nat[..] {
        [NatView::Static { comment, .. }] => assert_eq!(comment.as_deref(), Some("mail relay")),
        other => panic!("{other:?}"),
    }
    // From outside, the mapping takes any port; the ingress rule for it admits.
    let x = run(EXAMPLE, "udp 192.0.2.77:5000 -> 203.0.113.40:53");
    let o = leaves(&x.step, Class::Ingress, Handling::Forward, "lan");
    assert_eq!(o.dst, ip("10.0.1.40"));
    assert_eq!(rule(&x).0, "ingress.rule[3]");
}

#[test]
fn ingress_rule_denies_a_known_bad_network() {
    let x = run(EXAMPLE, "tcp 198.51.100.7:40000 -> 203.0.113.2:443");
    dropped(&x.step, Class::Ingress, "ingress_denied");
    assert_eq!(
        rule(&x),
        ("ingress.rule[0]".into(), "deny", Some("known bad network"))
    );
    assert!(matches!(x.nat[..], [NatView::Forward { index: 0, .. }]));
}

#[test]
fn health_probe_is_local() {
    let x = run(EXAMPLE, "tcp 168.63.129.16:50000 -> 203.0.113.2:8080");
    let o = leaves(&x.step, Class::Local, Handling::Answer, "wan");
    assert_eq!(o.tcp_flags.as_deref(), Some("syn,ack"));
    let x = run(EXAMPLE, "tcp 192.0.2.9:50000 -> 203.0.113.2:8080");
    dropped(&x.step, Class::Local, "local_denied");
    // A reset to the probe needs no answer: used up, not dropped, and still local.
    let x = run(
        EXAMPLE,
        "tcp 168.63.129.16:50000 -> 203.0.113.2:8080 flags rst",
    );
    assert_eq!(
        (x.step.class, x.step.verdict.action),
        (Class::Local, Handling::Consume)
    );
    // An HTTP probe answers the handshake the same way.
    let http = EXAMPLE.replace("protocol = \"tcp\"", "protocol = \"http\"");
    assert_ne!(http, EXAMPLE);
    let x = run(&http, "tcp 168.63.129.16:50000 -> 203.0.113.2:8080");
    let o = leaves(&x.step, Class::Local, Handling::Answer, "wan");
    assert_eq!(o.tcp_flags.as_deref(), Some("syn,ack"));
}

#[test]
fn static_neighbours_are_used() {
    // Inside to another private network is not the NAT's to carry.
    let x = run(EXAMPLE, "udp 10.0.1.10:5000 -> 10.0.2.5:53");
    dropped(&x.step, Class::Egress, "private_destination");
    // Egress through the wan gateway, whose MAC the file gives.
    let with_static = EXAMPLE.replace(
        "gateway = \"203.0.113.1\"        # the default route",
        "gateway = \"203.0.113.1\"\nneighbours = [{ ip = \"203.0.113.1\", mac = \"02:00:00:00:02:01\" }]",
    );
    let x = run(&with_static, "udp 10.0.1.10:5000 -> 198.51.100.5:53");
    leaves(&x.step, Class::Egress, Handling::Forward, "wan");
    let hop = x.step.next_hop.as_ref().unwrap();
    assert_eq!(
        (hop.ip, hop.via, hop.mac.as_str(), hop.mac_from),
        (ip("203.0.113.1"), "gateway", "02:00:00:00:02:01", "static")
    );
    assert!(!x.notes.iter().any(|n| n.contains("ARP")), "{:?}", x.notes);
    // A forward's inside host has a made-up one.
    let x = run(EXAMPLE, "udp 203.0.113.9:1 -> 203.0.113.17:27015");
    let o = leaves(&x.step, Class::Ingress, Handling::Forward, "lan");
    assert_eq!(o.dst, ip("10.0.1.11"));
    assert_eq!(x.step.next_hop.as_ref().unwrap().mac_from, "assumed");
}

#[test]
fn human_and_json_forms() {
    let x = run_with_reply(TESTBED, "tcp 10.0.1.10:40000 -> 198.51.100.10:25");
    has(
        &x.render(),
        &[
            "flow        tcp 10.0.1.10:40000 -> 198.51.100.10:25 flags syn ttl 64\n",
            "arrives     on lan (the first inside port: 10.0.1.10 is in the private prefixes)\n",
            "class       egress: a new flow from inside, going out\n",
            "rule        egress.rule[0]: deny (\"no direct SMTP from inside\")\n",
            "verdict     drop (egress_denied)\n",
            "note        no reply to show",
        ],
    );
    json_has(
        &serde_json::to_value(&x).unwrap(),
        &json!({
            "class": "egress",
            "verdict": {"action": "drop", "reason": "egress_denied"},
            "rule": {"index": 0, "set": "egress"},
            "packet": {"dst_port": 25},
        }),
    );

    let x = run_with_reply(TESTBED, "udp 10.0.1.10:5000 -> 198.51.100.10:53");
    has(
        &x.render(),
        &[
            "nat         source 10.0.1.10:5000 -> 192.0.2.2:5000 (SNAT pool address, port kept; \
             endpoint-independent mapping, address-and-port-dependent filtering)\n",
            "verdict     forward out of wan\n",
            "leaves      udp 192.0.2.2:5000 -> 198.51.100.10:53 ttl 63\n",
            "next hop    192.0.2.1 (gateway) on wan, MAC 02:00:c0:00:02:01 (assumed)\n",
            "reply       udp 198.51.100.10:53 -> 192.0.2.2:5000 ttl 64 on wan\n",
            "  class     reply: a packet of an existing session\n",
            "  verdict   forward out of lan\n",
            "  leaves    udp 198.51.100.10:53 -> 10.0.1.10:5000 ttl 63\n",
        ],
    );
    json_has(
        &serde_json::to_value(&x).unwrap(),
        &json!({
            "nat": [{"kind": "snat", "address": "192.0.2.2"}],
            "output": {"src": "192.0.2.2"},
            "reply": {"class": "reply"},
            "session": {"outside": "192.0.2.2:5000"},
        }),
    );
}

// --- behind a gateway load balancer ---------------------------------------------------------

const GWLB_AWS: &str = include_str!("../../../configs/gwlb-aws.toml");
const GWLB_AZURE: &str = include_str!("../../../configs/gwlb-azure.toml");

#[test]
fn a_flow_in_the_geneve_tunnel_goes_back_in_it() {
    let x = run_with_reply(GWLB_AWS, "udp 10.0.1.10:5000 -> 198.51.100.10:53");
    assert_eq!(x.step.port, "gwlb");
    let t = x.step.tunnel.as_ref().expect("it came in the tunnel");
    assert_eq!(
        (t.kind, t.dst_port, t.vni, t.options.len()),
        ("geneve", 6081, 0, 3)
    );
    assert_eq!(ends(&x.step.packet), "10.0.1.10:5000 -> 198.51.100.10:53");
    assert_eq!(rule(&x), ("egress.default".into(), "allow", None));
    let o = leaves(&x.step, Class::Egress, Handling::Forward, "gwlb");
    assert_eq!(
        ends(o),
        "10.0.1.10:5000 -> 198.51.100.10:53",
        "not translated"
    );
    assert_eq!(o.ttl, 64, "not decremented");
    let back = x
        .step
        .output_tunnel
        .as_ref()
        .expect("it left in the tunnel");
    assert_eq!(
        (back.src, back.dst),
        (t.dst, t.src),
        "outer addresses swapped"
    );
    assert_eq!((back.src_port, back.dst_port), (t.src_port, t.dst_port));
    assert_eq!(back.options, t.options);
    assert!(x.nat.is_empty());
    let r = x.reply.as_ref().expect("a reply");
    leaves(r, Class::Reply, Handling::Forward, "gwlb");
    has(
        &x.render(),
        &[
            "tunnel      geneve 10.100.1.1:49153 -> 10.100.1.10:6081",
            "inner       udp 10.0.1.10:5000",
            "verdict     back into the tunnel, out of gwlb",
            "(options unchanged)",
        ],
    );
}

#[test]
fn the_geneve_tunnel_judges_both_sides_and_its_header() {
    let x = run(GWLB_AWS, "tcp 203.0.113.5:40000 -> 10.0.1.20:22");
    dropped(&x.step, Class::Ingress, "ingress_denied");
    let x = run(GWLB_AWS, "tcp 203.0.113.5:40000 -> 10.0.1.20:443");
    assert_eq!(rule(&x).0, "ingress.rule[0]");
    leaves(&x.step, Class::Ingress, Handling::Forward, "gwlb");
    let x = run(GWLB_AWS, "tcp 10.0.1.10:40000 -> 198.51.100.10:25");
    dropped(&x.step, Class::Egress, "egress_denied");
    let x = run(
        GWLB_AWS,
        "udp 10.0.1.10:5000 -> 198.51.100.10:53 options 01088100",
    );
    dropped(&x.step, Class::Invalid, "tunnel_critical_option");
    let x = run(
        GWLB_AWS,
        "udp 10.0.1.10:5000 -> 198.51.100.10:53 tunnel none",
    );
    dropped(&x.step, Class::Invalid, "tunnel_not_encapsulated");
    let x = run(
        GWLB_AWS,
        "tcp 10.100.1.5:5000 -> 10.100.1.10:8080 tunnel none",
    );
    leaves(&x.step, Class::Local, Handling::Answer, "gwlb");
}

#[test]
fn azure_returns_a_packet_on_the_other_tunnel() {
    let x = run_with_reply(GWLB_AZURE, "tcp 203.0.113.5:40000 -> 20.101.109.26:443");
    let t = x.step.tunnel.as_ref().expect("in a tunnel");
    assert_eq!(
        (t.kind, t.dst_port, t.vni),
        ("vxlan", 10801, 801),
        "the external one"
    );
    leaves(&x.step, Class::Ingress, Handling::Forward, "gwlb");
    let back = x.step.output_tunnel.as_ref().expect("back in a tunnel");
    assert_eq!(
        (back.dst_port, back.vni),
        (10800, 800),
        "on the internal one"
    );
    let r = x.reply.as_ref().expect("a reply");
    let (t, back) = (
        r.tunnel.as_ref().unwrap(),
        r.output_tunnel.as_ref().unwrap(),
    );
    assert_eq!((t.dst_port, back.dst_port), (10800, 10801));
    assert_eq!(r.class, Class::Reply);
    let x = run(GWLB_AZURE, "tcp 203.0.113.5:40000 -> 20.101.109.26:22");
    dropped(&x.step, Class::Ingress, "ingress_denied");
    let x = run(
        GWLB_AZURE,
        "tcp 20.101.109.26:40000 -> 203.0.113.5:22 tunnel internal",
    );
    leaves(&x.step, Class::Egress, Handling::Forward, "gwlb");
}

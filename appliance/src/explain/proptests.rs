//! The agreement property: for random configurations and flows, what `explain` reports is
//! what a separate, fresh shard does with the same packet, built here independently; and the
//! rule it names is the first match of a linear scan of the rule set.

use super::*;
use crate::flow::HashSeed;
use crate::packet::{parse_frame, ChecksumCaps, IcmpPacket, IpProtocol, L3, L4};
use crate::pipeline::{Discard, PacketBuf};
use crate::policy::MatchKey;
use crate::testing;
use proptest::prelude::*;
use std::fmt::Write as _;

const LAN: u8 = 0;
const WAN: u8 = 1;
/// The MAC of the hosts that send the reference frames.
const SENDER: EthernetAddress = EthernetAddress([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
const MACS: [EthernetAddress; 2] = [
    EthernetAddress([0x02, 0, 0, 0, 0x0a, 0]),
    EthernetAddress([0x02, 0, 0, 0, 0x0a, 1]),
];

/// Every address a generated flow or configuration uses.
const ADDRS: [&str; 14] = [
    "10.0.1.10",
    "10.0.1.11",
    "10.0.1.12",
    "10.0.1.40",
    "10.0.1.1",
    "10.0.2.5",
    "198.51.100.10",
    "203.0.113.5",
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.40",
    "127.0.0.1",
    "224.0.0.5",
];
const PORTS: [u16; 9] = [25, 53, 80, 123, 443, 5000, 8080, 8443, 40000];

// --- configurations -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RuleGen {
    allow: bool,
    proto: Option<&'static str>,
    src: Option<&'static str>,
    dst: Option<&'static str>,
    ports: Option<&'static str>,
    icmp: Option<&'static str>,
    comment: bool,
}

/// A rule whose addresses and ports come from `srcs`, `dsts` and `ports` (TOML values).
fn rule(
    srcs: &[&'static str],
    dsts: &[&'static str],
    ports: &[&'static str],
) -> impl Strategy<Value = RuleGen> {
    let some = |xs: &[&'static str]| {
        let mut v = vec![None];
        v.extend(xs.iter().copied().map(Some));
        prop::sample::select(v)
    };
    (
        any::<bool>(),
        prop::sample::select(vec![None, Some("tcp"), Some("udp"), Some("icmp")]),
        some(srcs),
        some(dsts),
        some(ports),
        prop::sample::select(vec![None, Some("8"), Some("0, 8")]),
        any::<bool>(),
    )
        .prop_map(|(allow, proto, src, dst, ports, icmp, comment)| RuleGen {
            allow,
            proto,
            src,
            dst,
            // Ports only with TCP or UDP, ICMP types only with ICMP (validation requires it).
            ports: ports.filter(|_| matches!(proto, Some("tcp" | "udp"))),
            icmp: icmp.filter(|_| proto == Some("icmp")),
            comment,
        })
}

fn egress_rule() -> impl Strategy<Value = RuleGen> {
    rule(
        &["10.0.1.10", "10.0.1.0/25", "10.0.1.40", "0.0.0.0/0"],
        &["198.51.100.0/24", "192.0.2.2", "192.0.2.40", "203.0.113.5"],
        &["\"25\"", "\"53\", \"80-443\"", "8080", "\"1-1024\""],
    )
}

fn ingress_rule() -> impl Strategy<Value = RuleGen> {
    rule(
        &["198.51.100.0/24", "203.0.113.5", "192.0.2.1", "0.0.0.0/0"],
        &["192.0.2.2", "192.0.2.3", "192.0.2.40", "192.0.2.0/24"],
        &["80", "\"443\", \"5000\"", "8080", "\"1-1024\""],
    )
}

#[derive(Debug, Clone)]
struct ForwardGen {
    udp: bool,
    second_address: bool,
    public_port: u16,
    private: &'static str,
    private_port: Option<u16>,
}

fn forward() -> impl Strategy<Value = ForwardGen> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![80u16, 443, 5000, 8080]),
        prop::sample::select(vec!["10.0.1.11", "10.0.1.12"]),
        prop::sample::select(vec![None, Some(80u16), Some(8443)]),
    )
        .prop_map(
            |(udp, second_address, public_port, private, private_port)| ForwardGen {
                udp,
                second_address,
                public_port,
                private,
                private_port,
            },
        )
}

#[derive(Debug, Clone)]
struct ConfigGen {
    second_pool_address: bool,
    endpoint_dependent: bool,
    filtering: &'static str,
    hairpinning: bool,
    tcp_loose: bool,
    mss_clamp: bool,
    icmp_echo: bool,
    egress_allow: bool,
    ingress_allow: bool,
    egress: Vec<RuleGen>,
    ingress: Vec<RuleGen>,
    forwards: Vec<ForwardGen>,
    static_map: bool,
}

fn config_gen() -> impl Strategy<Value = ConfigGen> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec![
                "endpoint-independent",
                "address-dependent",
                "address-and-port-dependent",
            ]),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            prop::sample::select(vec![true, true, true, false]),
            any::<bool>(),
            prop::collection::vec(egress_rule(), 0..6),
            prop::collection::vec(ingress_rule(), 0..6),
            prop::collection::vec(forward(), 0..9),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (pool2, ed, filtering, hairpinning, tcp_loose, mss_clamp, icmp_echo),
                (egress_allow, ingress_allow, egress, ingress, forwards, static_map),
            )| ConfigGen {
                second_pool_address: pool2,
                endpoint_dependent: ed,
                filtering,
                hairpinning,
                tcp_loose,
                mss_clamp,
                icmp_echo,
                egress_allow,
                ingress_allow,
                egress,
                ingress,
                forwards,
                static_map,
            },
        )
}

fn rules_toml(out: &mut String, section: &str, rules: &[RuleGen]) {
    for (i, r) in rules.iter().enumerate() {
        let _ = writeln!(out, "[[{section}.rule]]");
        let _ = writeln!(
            out,
            "action = \"{}\"",
            if r.allow { "allow" } else { "deny" }
        );
        if let Some(p) = r.proto {
            let _ = writeln!(out, "proto = \"{p}\"");
        }
        if let Some(s) = r.src {
            let _ = writeln!(out, "src = [\"{s}\"]");
        }
        if let Some(d) = r.dst {
            let _ = writeln!(out, "dst = [\"{d}\"]");
        }
        if let Some(p) = r.ports {
            let _ = writeln!(out, "dst_ports = [{p}]");
        }
        if let Some(t) = r.icmp {
            let _ = writeln!(out, "icmp_types = [{t}]");
        }
        if r.comment {
            let _ = writeln!(out, "comment = \"{section} rule {i}\"");
        }
    }
}

impl ConfigGen {
    fn toml(&self) -> String {
        let mut t = String::from(
            "[eal]\nlcores = \"0-1\"\nhuge_pages = false\n\n\
             [[port]]\nname = \"lan\"\nrole = \"inside\"\ndevice = \"net_null0\"\n\
             address = \"10.0.1.1/24\"\n\n\
             [[port]]\nname = \"wan\"\nrole = \"outside\"\ndevice = \"net_null1\"\n\
             address = \"192.0.2.2/24\"\ngateway = \"192.0.2.1\"\n\n[nat]\n",
        );
        let pool = if self.second_pool_address {
            "[\"192.0.2.2\", \"192.0.2.3\"]"
        } else {
            "[\"192.0.2.2\"]"
        };
        let _ = writeln!(t, "addresses = {pool}");
        let mapping = if self.endpoint_dependent {
            "endpoint-dependent"
        } else {
            "endpoint-independent"
        };
        let _ = writeln!(t, "mapping = \"{mapping}\"");
        let _ = writeln!(t, "filtering = \"{}\"", self.filtering);
        let _ = writeln!(t, "hairpinning = {}", self.hairpinning);
        let _ = writeln!(t, "tcp_loose = {}", self.tcp_loose);
        if self.mss_clamp {
            t.push_str("mss_clamp = 1400\n");
        }
        let _ = writeln!(
            t,
            "\n[egress]\ndefault = \"{}\"",
            if self.egress_allow { "allow" } else { "deny" }
        );
        rules_toml(&mut t, "egress", &self.egress);
        let _ = writeln!(
            t,
            "\n[ingress]\ndefault = \"{}\"",
            if self.ingress_allow { "allow" } else { "deny" }
        );
        let mut taken = Vec::new();
        for (i, f) in self.forwards.iter().enumerate() {
            let public = if f.second_address && self.second_pool_address {
                "192.0.2.3"
            } else {
                "192.0.2.2"
            };
            // Public ports of forwards may not overlap.
            if taken.contains(&(f.udp, public, f.public_port)) {
                continue;
            }
            taken.push((f.udp, public, f.public_port));
            let _ = writeln!(
                t,
                "[[ingress.forward]]\nproto = \"{}\"\npublic = \"{public}\"\npublic_port = {}\n\
                 private = \"{}\"\ncomment = \"forward {i}\"",
                if f.udp { "udp" } else { "tcp" },
                f.public_port,
                f.private
            );
            if let Some(p) = f.private_port {
                let _ = writeln!(t, "private_port = {p}");
            }
        }
        if self.static_map {
            t.push_str(
                "[[ingress.static]]\npublic = \"192.0.2.40\"\nprivate = \"10.0.1.40\"\n\
                 comment = \"one to one\"\n",
            );
        }
        rules_toml(&mut t, "ingress", &self.ingress);
        let _ = writeln!(t, "\n[local]\nicmp_echo = {}", self.icmp_echo);
        t
    }
}

// --- flows ------------------------------------------------------------------------------

/// A transport whose destination port is one of `dst_ports`.
fn transport(dst_ports: Vec<u16>) -> impl Strategy<Value = Transport> {
    let src_port = prop::sample::select(PORTS.to_vec());
    let dst_port = prop::sample::select(dst_ports);
    prop_oneof![
        3 => (
            src_port.clone(),
            dst_port.clone(),
            prop::sample::select(vec![
                TcpFlags::SYN,
                TcpFlags::SYN,
                TcpFlags::SYN,
                TcpFlags::SYN | TcpFlags::ACK,
                TcpFlags::ACK,
                TcpFlags::RST,
                TcpFlags::FIN | TcpFlags::ACK,
            ])
        )
            .prop_map(|(src_port, dst_port, flags)| Transport::Tcp {
                src_port,
                dst_port,
                flags
            }),
        2 => (src_port, dst_port).prop_map(|(src_port, dst_port)| Transport::Udp {
            src_port,
            dst_port
        }),
        1 => (
            prop::sample::select(vec![8u8, 8, 8, 0, 13, 3, 11]),
            prop::sample::select(vec![1u16, 7, 5000])
        )
            .prop_map(|(ty, ident)| Transport::Icmp {
                ty,
                code: if ty == 3 { 3 } else { 0 },
                ident
            }),
    ]
}

fn flow_gen() -> impl Strategy<Value = Flow> {
    let addr = |xs: &[&str]| {
        let v: Vec<Ipv4Addr> = xs.iter().map(|a| a.parse().unwrap()).collect();
        prop::sample::select(v)
    };
    let inside = ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.40"];
    let outside = ["198.51.100.10", "203.0.113.5", "192.0.2.1"];
    let public = ["192.0.2.2", "192.0.2.3", "192.0.2.40"];
    let towards = [&outside[..], &["10.0.1.1", "10.0.1.11"][..]].concat();
    let forwarded = vec![80u16, 443, 5000, 8080, 8080, 22];
    let to_forwards = [
        "192.0.2.2",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.40",
        "10.0.1.10",
    ];
    // Out of the inside, hairpins, in from the outside (mostly to the forwards), inside
    // addresses spoofed from outside, and anything at all; each with the port it comes in
    // on if that is not left to `explain`.
    let ends = prop_oneof![
        3 => (addr(&inside), addr(&towards), transport(PORTS.to_vec()), Just(None)),
        1 => (addr(&inside), addr(&public), transport(forwarded.clone()), Just(None)),
        3 => (addr(&outside), addr(&to_forwards), transport(forwarded.clone()), Just(None)),
        1 => (addr(&inside), addr(&to_forwards), transport(forwarded), Just(Some("wan"))),
        1 => (
            addr(&ADDRS),
            addr(&ADDRS),
            transport(PORTS.to_vec()),
            prop::sample::select(vec![None, Some("lan"), Some("wan")])
        ),
    ];
    (
        ends,
        prop::sample::select(vec![None, None, None, None, Some("lan"), Some("wan")]),
        prop::sample::select(vec![64u8, 64, 64, 64, 1, 2]),
    )
        .prop_map(|((src, dst, transport, on), port, ttl)| Flow {
            src,
            dst,
            transport,
            port: on.or(port).map(str::to_string),
            ttl,
            tunnel: Encapsulation::Own,
        })
}

// --- the reference: frames built here, a shard of our own --------------------------------

/// An ICMP message written byte by byte: type, code, rest of header, data.
fn icmp_bytes(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    IcmpPacket::new_checked(&mut m[..]).unwrap().fill_checksum();
    m
}

/// The packet of `flow` arriving on `in_port`, built with the shared fixtures.
fn reference_frame(flow: &Flow, in_port: u8) -> Vec<u8> {
    let macs = (SENDER, MACS[usize::from(in_port)]);
    let (src, dst) = (flow.src, flow.dst);
    let frame = match flow.transport {
        Transport::Tcp {
            src_port,
            dst_port,
            flags,
        } => testing::tcp((src, src_port), (dst, dst_port), flags, macs),
        Transport::Udp { src_port, dst_port } => {
            testing::udp((src, src_port), (dst, dst_port), macs)
        }
        Transport::Icmp { ty, code, ident } => {
            let l4 = if matches!(ty, 3 | 4 | 5 | 11 | 12) {
                // The quote: a UDP datagram dst:ident -> src:ident, as `explain` documents.
                let quoted = testing::udp_sized((dst, ident), (src, ident), macs, &[], true);
                icmp_bytes(ty, code, [0; 4], &quoted[14..14 + 28])
            } else {
                let [a, b] = ident.to_be_bytes();
                icmp_bytes(ty, code, [a, b, 0, 1], b"reference")
            };
            testing::ip_frame(macs, src, dst, IpProtocol::ICMP, &l4)
        }
    };
    testing::with_ttl(frame, flow.ttl)
}

/// The TCP flags (by name) and ICMP type of a frame.
fn control(frame: &[u8]) -> (Option<String>, Option<u8>) {
    let p = parse_frame(frame, &ChecksumCaps::NONE).expect("the frame parses");
    match p.l3 {
        L3::Ipv4(m) => match m.l4 {
            L4::Tcp(flags) => (Some(super::expr::flag_names(flags)), None),
            L4::Icmp(msg) => (None, Some(u8::from(msg))),
            _ => (None, None),
        },
        _ => (None, None),
    }
}

/// What left: addresses, ports (ICMP echo: identifier), TTL.
fn left(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u8, IpProtocol) {
    let p = parse_frame(frame, &ChecksumCaps::NONE).expect("the output parses");
    let L3::Ipv4(m) = p.l3 else {
        panic!("not IPv4")
    };
    let t = m.tuple;
    let (sp, dp) = match m.l4 {
        L4::Tcp(_) | L4::Udp => (t.src_port, t.dst_port),
        L4::Icmp(msg) if matches!(u8::from(msg), 0 | 8) => (t.src_port, t.src_port),
        _ => (0, 0),
    };
    (
        t.src_addr,
        sp,
        t.dst_addr,
        dp,
        frame[p.l3_offset() + 8],
        t.protocol,
    )
}

struct Reference {
    shard: Shard,
    counters: Arc<ShardCounters>,
    neighbours: Neighbours,
}

/// The reference's view of an outcome: action, and whether the appliance answered.
struct Seen {
    input: Vec<u8>,
    sessions: Vec<SessionInfo>,
    action: Disposition,
    answered: bool,
    ttl_expired: bool,
    created: bool,
    frame: Vec<u8>,
}

impl Reference {
    fn new(policy: &Policy) -> Reference {
        let mut c = ShardConfig::from_policy(policy, 0, 1, 99).unwrap();
        c.capacity = 4096;
        c.seed = Some(HashSeed::fixed(1, 2, 3));
        let counters = Arc::new(ShardCounters::default());
        let mut entries = Vec::new();
        for a in ADDRS {
            let ip: Ipv4Addr = a.parse().unwrap();
            for port in [LAN, WAN] {
                entries.push((
                    (port, ip),
                    EthernetAddress([2, 9, 9, 9, port, ip.octets()[3]]),
                ));
            }
        }
        Reference {
            shard: Shard::new(c, Arc::clone(&counters)),
            counters,
            neighbours: Neighbours::with(1, entries),
        }
    }

    fn send(&mut self, policy: &Policy, now: u32, port: u8, frame: &[u8]) -> Seen {
        let (local, created) = (self.counters.local_replies(), self.counters.created());
        let ttl = Reason::Pipeline(Discard::TtlExpired);
        let expired = self.counters.drops_of(ttl);
        let env = Env {
            policy,
            neighbours: &self.neighbours,
            macs: &MACS,
            health: Health::Serving,
        };
        let mut bufs = [VecBuf::new(frame)];
        let mut out = [Disposition::Consumed];
        self.shard.process(&env, now, port, &mut bufs, &mut out);
        let mut sessions = Vec::new();
        self.shard
            .dump(now, &SessionFilter::default(), 64, &mut sessions);
        Seen {
            input: frame.to_vec(),
            sessions,
            action: out[0],
            answered: self.counters.local_replies() > local,
            ttl_expired: self.counters.drops_of(ttl) > expired,
            created: self.counters.created() > created,
            frame: bufs[0].bytes().to_vec(),
        }
    }
}

fn port_name(p: u8) -> &'static str {
    ["lan", "wan"][usize::from(p)]
}

/// Explain's verdict equals the reference's outcome; so does the packet that left.
fn agree(what: &str, step: &Step, seen: &Seen) -> Result<(), TestCaseError> {
    let expected = match seen.action {
        Disposition::Forward(p) => Verdict {
            action: if seen.answered {
                Handling::Answer
            } else {
                Handling::Forward
            },
            port: Some(port_name(p).to_string()),
            reason: (seen.answered && seen.ttl_expired).then_some("ttl_expired"),
        },
        Disposition::Drop(r) => Verdict {
            action: Handling::Drop,
            port: None,
            reason: Some(r.name()),
        },
        Disposition::Consumed => Verdict {
            action: Handling::Consume,
            port: None,
            reason: None,
        },
        Disposition::Handoff(_) => {
            return Err(TestCaseError::fail(format!(
                "{what}: one worker handed off"
            )))
        }
    };
    // The same packet went in.
    let (src, sp, dst, dp, ttl, proto) = left(&seen.input);
    let p = &step.packet;
    prop_assert_eq!((p.src, p.dst, p.ttl), (src, dst, ttl), "{}: packet", what);
    prop_assert_eq!(&p.proto, &proto.to_string(), "{}: packet protocol", what);
    if proto != IpProtocol::ICMP {
        prop_assert_eq!(
            (p.src_port, p.dst_port),
            (Some(sp), Some(dp)),
            "{}: ports",
            what
        );
    }
    prop_assert_eq!(
        (p.tcp_flags.clone(), p.icmp_type),
        control(&seen.input),
        "{}: packet flags or type",
        what
    );
    prop_assert_eq!(&step.verdict, &expected, "{}: verdict", what);
    prop_assert_eq!(step.action, seen.action, "{}: action", what);
    prop_assert_eq!(step.session_created, seen.created, "{}: session", what);
    // The session it shows is the reference's (but for its counts: the frames differ in
    // length).
    if let Some(s) = &step.session {
        let same = |r: &SessionInfo| {
            (r.proto, r.inside, r.outside, r.remote, r.class, r.state)
                == (s.proto, s.inside, s.outside, s.remote, s.class, s.state)
        };
        prop_assert!(
            seen.sessions.iter().any(same),
            "{}: {:?} not in {:?}",
            what,
            s,
            seen.sessions
        );
    }
    if let Disposition::Forward(_) = seen.action {
        let (src, sp, dst, dp, ttl, proto) = left(&seen.frame);
        let out = step.output.as_ref().expect("explain shows what left");
        prop_assert_eq!(out.src, src, "{}: source", what);
        prop_assert_eq!(out.dst, dst, "{}: destination", what);
        prop_assert_eq!(out.ttl, ttl, "{}: ttl", what);
        prop_assert_eq!(&out.proto, &proto.to_string(), "{}: protocol", what);
        if proto != IpProtocol::ICMP {
            prop_assert_eq!(out.src_port, Some(sp), "{}: source port", what);
            prop_assert_eq!(out.dst_port, Some(dp), "{}: destination port", what);
        } else if out.icmp_id.is_some() {
            prop_assert_eq!(out.icmp_id, Some(sp), "{}: identifier", what);
        }
    } else {
        prop_assert!(step.output.is_none(), "{}: nothing left", what);
    }
    Ok(())
}

/// The reverse of what left, built here.
fn reference_reply(sent: &Flow, out_frame: &[u8], port: u8) -> Option<Flow> {
    let (src, sp, dst, dp, _, _) = left(out_frame);
    let transport = match sent.transport {
        Transport::Tcp { flags, .. } if flags.rst() => return None,
        Transport::Tcp { flags, .. } => Transport::Tcp {
            src_port: dp,
            dst_port: sp,
            flags: if flags.syn() && !flags.ack() {
                TcpFlags::SYN | TcpFlags::ACK
            } else {
                TcpFlags::ACK
            },
        },
        Transport::Udp { .. } => Transport::Udp {
            src_port: dp,
            dst_port: sp,
        },
        Transport::Icmp { ty: 8, .. } => Transport::Icmp {
            ty: 0,
            code: 0,
            ident: sp,
        },
        Transport::Icmp { .. } => return None,
    };
    Some(Flow {
        src: dst,
        dst: src,
        transport,
        port: Some(port_name(port).to_string()),
        ttl: 64,
        tunnel: Encapsulation::Own,
    })
}

fn check(gen: &ConfigGen, flow: &Flow) -> Result<(), TestCaseError> {
    let text = gen.toml();
    let config = Config::parse(&text, "gen.toml")
        .unwrap_or_else(|e| panic!("generated config refused: {e}\n{text}"));
    let policy = Policy::compile(&config, 1)
        .unwrap_or_else(|e| panic!("generated policy refused: {e}\n{text}"));
    let x = explain(&config, &policy, flow, &Options { reply: true }).expect("explained");

    // The arrival port, from the template: lan is inside, 10.0.1.0/24 is private.
    let private = flow.src.octets()[..3] == [10, 0, 1];
    let in_port = match flow.port.as_deref() {
        Some("lan") => LAN,
        Some("wan") => WAN,
        _ if private => LAN,
        _ => WAN,
    };
    prop_assert_eq!(x.step.port.as_str(), port_name(in_port));

    let mut reference = Reference::new(&policy);
    let seen = reference.send(&policy, NOW, in_port, &reference_frame(flow, in_port));
    agree("packet", &x.step, &seen)?;

    // The reply: through the reference's own shard, built from its own output.
    let back = match seen.action {
        Disposition::Forward(p) if !seen.answered => {
            reference_reply(flow, &seen.frame, p).map(|f| (p, f))
        }
        _ => None,
    };
    match (&x.reply, back) {
        (Some(step), Some((p, f))) => {
            let seen = reference.send(&policy, NOW + 1, p, &reference_frame(&f, p));
            agree("reply", step, &seen)?;
            if seen.action == Disposition::Forward(in_port) && !seen.created && !seen.answered {
                prop_assert_eq!(step.class, Class::Reply);
            }
        }
        (None, None) => {}
        (r, b) => prop_assert!(
            false,
            "explain shows a reply: {}, the reference has one: {}",
            r.is_some(),
            b.is_some()
        ),
    }

    // The rule: the first match of a linear scan of the set it names.
    let key = MatchKey {
        proto: flow.transport.protocol(),
        src: flow.src,
        dst: flow.dst,
        src_port: match flow.transport {
            Transport::Icmp { .. } => 0,
            t => t.ports().0,
        },
        dst_port: match flow.transport {
            Transport::Icmp { .. } => 0,
            t => t.ports().1,
        },
        icmp_type: match flow.transport {
            Transport::Icmp { ty, .. } => Some(ty),
            _ => None,
        },
    };
    if let Some(r) = &x.rule {
        let set = if r.set == "egress" {
            &policy.egress
        } else {
            &policy.ingress
        };
        let linear = set.check_linear(&key);
        prop_assert_eq!(r.index, linear.rule, "rule index");
        let action = if linear.action == crate::config::Action::Allow {
            "allow"
        } else {
            "deny"
        };
        prop_assert_eq!(r.action, action);
        let comment = r.index.map(|i| format!("{} rule {i}", r.set));
        if r.comment.is_some() {
            prop_assert_eq!(&r.comment, &comment);
        }
    }
    // And the rule named is the one that decided.
    let rule_says = |set: &str, action: &str| {
        x.rule
            .as_ref()
            .is_some_and(|r| r.set == set && r.action == action)
    };
    match x.step.verdict.reason {
        Some("egress_denied") => prop_assert!(rule_says("egress", "deny"), "{:?}", x.rule),
        Some("ingress_denied") => prop_assert!(rule_says("ingress", "deny"), "{:?}", x.rule),
        _ => {}
    }
    if x.step.session_created {
        match x.step.class {
            Class::Egress | Class::Hairpin => {
                prop_assert!(rule_says("egress", "allow"), "{:?}", x.rule);
                let out = x.step.output.as_ref().unwrap();
                let translated = x.nat.iter().any(|n| match n {
                    NatView::Snat { address, .. } => *address == out.src,
                    NatView::Static { public, .. } => *public == out.src,
                    NatView::Forward { .. } => false,
                });
                prop_assert!(translated, "{:?} for {}", x.nat, out);
            }
            Class::Ingress => {
                let dnat = x.nat.iter().find_map(|n| match n {
                    NatView::Forward {
                        private,
                        private_port,
                        ..
                    } => Some((*private, Some(*private_port))),
                    NatView::Static { private, .. } => Some((*private, None)),
                    NatView::Snat { .. } => None,
                });
                if let Some((private, port)) = dnat {
                    prop_assert!(rule_says("ingress", "allow"), "{:?}", x.rule);
                    let out = x.step.output.as_ref().unwrap();
                    prop_assert_eq!(out.dst, private);
                    if let Some(p) = port {
                        prop_assert_eq!(out.dst_port, Some(p));
                    }
                }
            }
            c => prop_assert!(false, "class {:?} created a session", c),
        }
    }
    // Turned away before any policy: no rule, class invalid.
    if matches!(
        x.step.verdict.reason,
        Some("spoofed_source" | "invalid_source")
    ) {
        prop_assert_eq!(x.step.class, Class::Invalid);
        prop_assert!(x.rule.is_none());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn explain_agrees_with_the_pipeline(gen in config_gen(), flow in flow_gen()) {
        check(&gen, &flow)?;
    }
}

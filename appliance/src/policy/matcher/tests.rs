use super::*;
use crate::packet::IpProtocol;

const TCP: IpProtocol = IpProtocol::TCP;
const UDP: IpProtocol = IpProtocol::UDP;
const ICMP: IpProtocol = IpProtocol::ICMP;
use ipnet::Ipv4Net;
use proptest::prelude::*;

fn prefix(s: &str) -> Prefix {
    Prefix(s.parse::<Ipv4Net>().unwrap().trunc())
}

fn key(proto: IpProtocol, src: &str, dst: &str, sp: u16, dp: u16) -> MatchKey {
    MatchKey {
        proto,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        src_port: sp,
        dst_port: dp,
        icmp_type: (proto == ICMP).then_some(8),
    }
}

fn both(set: &RuleSet, k: &MatchKey) -> Decision {
    let v = set.check_bitvector(k);
    assert_eq!(v, set.check_linear(k), "{k:?}");
    assert_eq!(v, set.check(k), "{k:?}");
    v
}

/// Each key matches its rule (`None`: no rule) on every path ([`both`]).
fn matches(set: &RuleSet, cases: &[(MatchKey, Option<usize>)]) {
    for (k, rule) in cases {
        assert_eq!(both(set, k).rule, *rule, "{k:?}");
    }
}

/// A rule that matches the destinations in `p`, whatever else the flow is.
fn to(p: &str, action: Action) -> Rule {
    Rule {
        dst: vec![prefix(p)],
        ..Rule::any(action)
    }
}

#[test]
fn empty_set_gives_the_default() {
    for default in [Action::Allow, Action::Deny] {
        let set = RuleSet::new(Vec::new(), default).unwrap();
        let v = both(&set, &key(TCP, "10.0.0.1", "1.1.1.1", 1, 2));
        assert_eq!(
            v,
            Decision {
                action: default,
                rule: None
            }
        );
    }
}

#[test]
fn first_match_wins() {
    let rules = vec![
        Rule {
            proto: Some(TCP),
            dst: vec![prefix("192.0.2.0/24")],
            dst_ports: vec![PortRange::single(22)],
            ..Rule::any(Action::Deny)
        },
        Rule {
            proto: Some(TCP),
            dst_ports: vec![PortRange {
                start: 1,
                end: 1023,
            }],
            ..Rule::any(Action::Allow)
        },
        Rule {
            proto: Some(ICMP),
            icmp_types: vec![8],
            ..Rule::any(Action::Allow)
        },
        Rule {
            src: vec![prefix("10.1.0.0/16"), prefix("10.2.0.0/16")],
            ..Rule::any(Action::Allow)
        },
    ];
    let set = RuleSet::new(rules, Action::Deny).unwrap();
    let cases = [
        (key(TCP, "10.0.0.1", "192.0.2.9", 5000, 22), Some(0)),
        (key(TCP, "10.0.0.1", "192.0.3.9", 5000, 22), Some(1)),
        (key(UDP, "10.0.0.1", "192.0.3.9", 5000, 22), None),
        (key(ICMP, "10.0.0.1", "8.8.8.8", 0, 0), Some(2)),
        (
            MatchKey {
                icmp_type: Some(0),
                ..key(ICMP, "10.0.0.1", "8.8.8.8", 0, 0)
            },
            None,
        ),
        (key(UDP, "10.2.255.255", "8.8.8.8", 1, 53), Some(3)),
        (key(UDP, "10.3.0.0", "8.8.8.8", 1, 53), None),
    ];
    matches(&set, &cases);
}

#[test]
fn boundaries_of_the_address_space_and_port_range() {
    let rules = vec![
        Rule {
            src: vec![prefix("255.255.255.255/32")],
            ..Rule::any(Action::Deny)
        },
        to("0.0.0.0/32", Action::Deny),
        Rule {
            proto: Some(UDP),
            src_ports: vec![PortRange::single(65535), PortRange::single(0)],
            ..Rule::any(Action::Deny)
        },
        Rule {
            proto: Some(IpProtocol::of(255)),
            ..Rule::any(Action::Deny)
        },
    ];
    let set = RuleSet::new(rules, Action::Allow).unwrap();
    let cases = [
        (key(TCP, "255.255.255.255", "1.1.1.1", 1, 1), Some(0)),
        (key(TCP, "255.255.255.254", "0.0.0.0", 1, 1), Some(1)),
        (key(UDP, "1.1.1.1", "0.0.0.1", 65535, 1), Some(2)),
        (key(UDP, "1.1.1.1", "0.0.0.1", 0, 1), Some(2)),
        (key(UDP, "1.1.1.1", "0.0.0.1", 1, 1), None),
        (
            key(IpProtocol::of(255), "1.1.1.1", "0.0.0.1", 1, 1),
            Some(3),
        ),
    ];
    matches(&set, &cases);
}

/// The 4097th rule is the first past one summary word: the aggregation must still find it.
#[test]
fn rules_beyond_one_summary_word() {
    let mut rules: Vec<Rule> = (0..5000u32)
        .map(|i| Rule {
            dst: vec![Prefix(
                Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap(),
            )],
            ..Rule::any(Action::Deny)
        })
        .collect();
    rules.push(Rule::any(Action::Allow));
    let set = RuleSet::new(rules, Action::Deny).unwrap();
    for i in [0u32, 63, 64, 4095, 4096, 4097, 4999] {
        let dst = Ipv4Addr::from(0x0a00_0000 + (i << 8) + 7);
        let k = MatchKey {
            dst,
            ..key(TCP, "1.1.1.1", "0.0.0.0", 1, 1)
        };
        assert_eq!(both(&set, &k).rule, Some(i as usize));
    }
    assert_eq!(
        both(&set, &key(TCP, "1.1.1.1", "11.0.0.0", 1, 1)).rule,
        Some(5000)
    );
}

#[test]
fn too_many_rules_is_an_error() {
    let rules = vec![Rule::any(Action::Allow); crate::config::validate::MAX_RULES + 1];
    assert!(matches!(
        RuleSet::new(rules, Action::Deny),
        Err(PolicyError::TooManyRules { .. })
    ));
}

#[test]
fn identical_bitsets_are_stored_once() {
    // Nested prefixes: the intervals either side of the /24 match the same rules.
    let rules = vec![
        to("10.0.0.0/24", Action::Deny),
        to("10.0.0.0/8", Action::Allow),
        to("10.0.1.0/24", Action::Deny),
    ];
    let set = RuleSet::new(rules, Action::Deny).unwrap();
    // Intervals: [0, 10/8), [10.0.0.0/24], [10.0.1.0/24], [rest of 10/8], [after 10/8].
    assert_eq!(set.stats().address_intervals[1], 5);
    // Distinct sets: {}, {0, 1}, {1, 2}, {1}.
    assert_eq!(set.dst.classes(), 4);
}

// ---- property: compiled == linear scan ----

/// Addresses are drawn near a few anchors so that random rules overlap and nest.
fn addr() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (0u32..4, any::<u16>()).prop_map(|(a, low)| 0x0a00_0000 | (a << 16) | u32::from(low)),
        Just(0),
        Just(u32::MAX),
    ]
}

fn prefix_strategy() -> impl Strategy<Value = Prefix> {
    (addr(), 0u8..=32)
        .prop_map(|(a, len)| Prefix(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc()))
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![any::<u16>(), 0u16..8, Just(u16::MAX), 1020u16..1030]
}

fn range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        port().prop_map(PortRange::single),
        (port(), port()).prop_map(|(a, b)| PortRange {
            start: a.min(b),
            end: a.max(b)
        }),
    ]
}

fn proto() -> impl Strategy<Value = Option<IpProtocol>> {
    prop_oneof![
        Just(None),
        Just(Some(TCP)),
        Just(Some(UDP)),
        Just(Some(ICMP)),
        any::<u8>().prop_map(|p| Some(IpProtocol::of(p)))
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        any::<bool>(),
        proto(),
        prop::collection::vec(prefix_strategy(), 0..3),
        prop::collection::vec(prefix_strategy(), 0..3),
        prop::collection::vec(range(), 0..3),
        prop::collection::vec(range(), 0..3),
        prop::collection::vec(0u8..12, 0..2),
    )
        .prop_map(
            |(allow, proto, src, dst, src_ports, dst_ports, icmp_types)| Rule {
                action: if allow { Action::Allow } else { Action::Deny },
                proto,
                src,
                dst,
                src_ports,
                dst_ports,
                icmp_types,
            },
        )
}

/// A packet field: either random, or an edge (first - 1, first, last, last + 1) of one of
/// the rules' values for that field, picked by index once the rules are known.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Random(u32),
    Edge { index: usize, edge: u8 },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        1 => any::<u32>().prop_map(Pick::Random),
        3 => (any::<usize>(), 0u8..4).prop_map(|(index, edge)| Pick::Edge { index, edge }),
    ]
}

fn resolve(p: Pick, edges: &[(u32, u32)], max: u32) -> u32 {
    match p {
        Pick::Random(v) => match max.checked_add(1) {
            Some(domain) => v % domain,
            None => v,
        },
        Pick::Edge { index, edge } => match edges.get(index % edges.len().max(1)) {
            None => 0,
            Some(&(first, last)) => match edge {
                0 => first.saturating_sub(1),
                1 => first,
                2 => last,
                _ => last.saturating_add(1).min(max),
            },
        },
    }
}

type RawPacket = (Pick, Pick, Pick, Pick, Pick, Pick);

fn packets() -> impl Strategy<Value = Vec<RawPacket>> {
    prop::collection::vec((pick(), pick(), pick(), pick(), pick(), pick()), 1..64)
}

fn packet(rules: &[Rule], raw: RawPacket) -> MatchKey {
    let edges = |f: &dyn Fn(&Rule) -> Vec<(u32, u32)>| rules.iter().flat_map(f).collect::<Vec<_>>();
    let prefixes = |ps: &[Prefix]| ps.iter().map(|p| (p.first(), p.last())).collect();
    let ports = |rs: &[PortRange]| {
        rs.iter()
            .map(|r| (u32::from(r.start), u32::from(r.end)))
            .collect()
    };
    let proto = resolve(
        raw.0,
        &edges(&|r| {
            r.proto
                .map(|p| (u32::from(p.value()), u32::from(p.value())))
                .into_iter()
                .collect()
        }),
        255,
    );
    let icmp = resolve(
        raw.5,
        &edges(&|r| {
            r.icmp_types
                .iter()
                .map(|&t| (u32::from(t), u32::from(t)))
                .collect()
        }),
        256,
    );
    MatchKey {
        proto: IpProtocol::of(proto as u8),
        src: Ipv4Addr::from(resolve(raw.1, &edges(&|r| prefixes(&r.src)), u32::MAX)),
        dst: Ipv4Addr::from(resolve(raw.2, &edges(&|r| prefixes(&r.dst)), u32::MAX)),
        src_port: resolve(raw.3, &edges(&|r| ports(&r.src_ports)), 65535) as u16,
        dst_port: resolve(raw.4, &edges(&|r| ports(&r.dst_ports)), 65535) as u16,
        icmp_type: u8::try_from(icmp).ok(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compiled_matches_linear_scan(
        rules in prop::collection::vec(rule(), 0..300),
        default in any::<bool>(),
        raw in packets(),
    ) {
        let default = if default { Action::Allow } else { Action::Deny };
        let set = RuleSet::new(rules.clone(), default).unwrap();
        for r in raw {
            let k = packet(&rules, r);
            let linear = set.check_linear(&k);
            prop_assert_eq!(set.check_bitvector(&k), linear, "{:?}", k);
            prop_assert_eq!(set.check(&k), linear, "{:?}", k);
        }
    }
}

#[test]
fn oversized_matcher_is_an_error() {
    let rules: Vec<Rule> = (0..200u32)
        .map(|i| Rule {
            dst: vec![Prefix(Ipv4Net::new(Ipv4Addr::from(i << 20), 12).unwrap())],
            ..Rule::any(Action::Deny)
        })
        .collect();
    assert!(RuleSet::with_limit(rules.clone(), Action::Allow, 1 << 20).is_ok());
    match RuleSet::with_limit(rules, Action::Allow, 1024) {
        Err(PolicyError::MatcherTooLarge {
            field: "dst",
            max_bytes: 1024,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn index_blocks_follow_the_interval_count() {
    let set = RuleSet::new(vec![Rule::any(Action::Allow)], Action::Deny).unwrap();
    // One interval per field: the smallest index (2 blocks) per address and port field; the
    // protocol and ICMP-type tables take 1 KiB each.
    assert!(set.stats().memory_bytes < 4096, "{:?}", set.stats());
}

//! Rule matching cost: the compiled bit-vector matcher against the linear first-match scan,
//! for 10, 1 000 and 10 000 rules (`policy_match`) and for small sets, where the scan wins
//! (`policy_crossover`); and what compiling costs (`policy_compile`).
//!
//! Rules and packets come from a fixed-seed generator: ACL-like rules (70 % TCP, 20 % UDP, 5 %
//! ICMP, 5 % any; destination prefixes /16-/32, a tenth /8-/32; 60 % with an inside source
//! prefix; most TCP/UDP rules with one or two destination ports or ranges), and packets of
//! which half are aimed inside a random rule and half are random. The setup prints how many
//! packets match a rule and how many rules the scan tests on average (with 1 000 rules and
//! more, a broad rule catches every packet, so the scan stops before the end). Each iteration
//! matches a batch of 1 024 packets.

use appliance::config::{Action, PortRange, Prefix};
use appliance::packet::IpProtocol;
use appliance::policy::{MatchKey, Rule, RuleSet};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// xorshift64*: deterministic, good enough to spread rules and packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn prefix(rng: &mut Rng, base: u32, base_len: u8, min_len: u8) -> Prefix {
    let len = min_len + rng.below(u64::from(33 - min_len)) as u8;
    let host_bits = 32 - u32::from(base_len);
    let addr = base | (rng.next() as u32 & (u32::MAX >> (32 - host_bits)));
    Prefix(
        Ipv4Net::new(Ipv4Addr::from(addr), len.max(base_len))
            .unwrap()
            .trunc(),
    )
}

fn ports(rng: &mut Rng) -> Vec<PortRange> {
    (0..1 + rng.below(2))
        .map(|_| {
            if rng.chance(70) {
                PortRange::single(rng.below(10_000) as u16)
            } else {
                let start = rng.below(60_000) as u16;
                PortRange {
                    start,
                    end: start + rng.below(1_000) as u16,
                }
            }
        })
        .collect()
}

fn rules(n: usize, rng: &mut Rng) -> Vec<Rule> {
    (0..n)
        .map(|_| {
            let proto = match rng.below(100) {
                0..70 => Some(IpProtocol::TCP),
                70..90 => Some(IpProtocol::UDP),
                90..95 => Some(IpProtocol::ICMP),
                _ => None,
            };
            let ported = matches!(proto, Some(IpProtocol::TCP | IpProtocol::UDP));
            Rule {
                action: if rng.chance(50) {
                    Action::Allow
                } else {
                    Action::Deny
                },
                proto,
                src: if rng.chance(40) {
                    Vec::new()
                } else {
                    vec![prefix(rng, 0x0a00_0000, 8, 16)]
                },
                dst: if rng.chance(5) {
                    Vec::new()
                } else {
                    (0..1 + rng.below(2))
                        .map(|_| {
                            let min_len = if rng.chance(10) { 8 } else { 16 };
                            prefix(rng, 0, 0, min_len)
                        })
                        .collect()
                },
                src_ports: if ported && rng.chance(5) {
                    ports(rng)
                } else {
                    Vec::new()
                },
                dst_ports: if ported && rng.chance(90) {
                    ports(rng)
                } else {
                    Vec::new()
                },
                icmp_types: if proto == Some(IpProtocol::ICMP) && rng.chance(50) {
                    vec![rng.below(16) as u8]
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn pick_in_prefixes(rng: &mut Rng, ps: &[Prefix]) -> Ipv4Addr {
    match ps.get(rng.below(ps.len().max(1) as u64) as usize) {
        Some(p) => Ipv4Addr::from(
            p.first() + (rng.next() as u32 % (p.last() - p.first()).saturating_add(1).max(1)),
        ),
        None => Ipv4Addr::from(rng.next() as u32),
    }
}

fn pick_in_ports(rng: &mut Rng, rs: &[PortRange]) -> u16 {
    match rs.get(rng.below(rs.len().max(1) as u64) as usize) {
        Some(r) => r.start + (rng.below(u64::from(r.len())) as u16),
        None => rng.next() as u16,
    }
}

fn packets(rules: &[Rule], count: usize, rng: &mut Rng) -> Vec<MatchKey> {
    (0..count)
        .map(|_| {
            if rules.is_empty() || rng.chance(50) {
                let proto =
                    [IpProtocol::TCP, IpProtocol::UDP, IpProtocol::ICMP][rng.below(3) as usize];
                MatchKey {
                    proto,
                    src: Ipv4Addr::from(0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff)),
                    dst: Ipv4Addr::from(rng.next() as u32),
                    src_port: rng.next() as u16,
                    dst_port: rng.next() as u16,
                    icmp_type: (proto == IpProtocol::ICMP).then(|| rng.below(16) as u8),
                }
            } else {
                let r = &rules[rng.below(rules.len() as u64) as usize];
                let proto = r.proto.unwrap_or(IpProtocol::TCP);
                MatchKey {
                    proto,
                    src: pick_in_prefixes(rng, &r.src),
                    dst: pick_in_prefixes(rng, &r.dst),
                    src_port: pick_in_ports(rng, &r.src_ports),
                    dst_port: pick_in_ports(rng, &r.dst_ports),
                    icmp_type: (proto == IpProtocol::ICMP)
                        .then(|| r.icmp_types.first().copied().unwrap_or(8)),
                }
            }
        })
        .collect()
}

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// Benches one path of the matcher over `keys` as `path/n`: `rule` is `check_bitvector` or
/// `check_linear`'s matched rule. The rules are summed, so that no check is optimised away.
fn bench_path(
    group: &mut BenchmarkGroup<'_, WallTime>,
    path: &str,
    n: usize,
    keys: &[MatchKey],
    rule: impl Fn(&MatchKey) -> Option<usize>,
) {
    group.bench_function(BenchmarkId::new(path, n), |b| {
        b.iter(|| {
            let mut sum = 0usize;
            for k in keys {
                sum = sum.wrapping_add(rule(black_box(k)).unwrap_or(0));
            }
            sum
        })
    });
}
const BATCH: usize = 1024;

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_match");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in SIZES {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let rules = rules(n, &mut rng);
        let set = RuleSet::new(rules.clone(), Action::Allow).unwrap();
        let keys = packets(&rules, BATCH, &mut rng);
        let matched = keys.iter().filter(|k| set.check(k).rule.is_some()).count();
        // Rules the linear scan tests per packet: up to the first match, or all of them.
        let scanned: usize = keys
            .iter()
            .map(|k| set.check(k).rule.map_or(n, |r| r + 1))
            .sum();
        let s = set.stats();
        eprintln!(
            "{n} rules: {matched}/{BATCH} packets match a rule, the linear scan tests {} rules \
             per packet on average; intervals src {} dst {} sport {} dport {}; distinct bitsets \
             {:?}; matcher {} KiB",
            scanned / BATCH,
            s.address_intervals[0],
            s.address_intervals[1],
            s.port_intervals[0],
            s.port_intervals[1],
            s.bitsets,
            s.memory_bytes / 1024
        );
        bench_path(&mut group, "bitvector", n, &keys, |k| {
            set.check_bitvector(k).rule
        });
        if n >= 10_000 {
            group.sample_size(10);
        }
        bench_path(&mut group, "linear", n, &keys, |k| set.check_linear(k).rule);
    }
    group.finish();
}

/// Where the bit-vector path starts to beat the scan (`RuleSet::check` switches at
/// `LINEAR_MAX`).
fn crossover(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_crossover");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(2));
    for n in [4, 8, 16, 32, 64] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let rules = rules(n, &mut rng);
        let set = RuleSet::new(rules.clone(), Action::Allow).unwrap();
        let keys = packets(&rules, BATCH, &mut rng);
        bench_path(&mut group, "bitvector", n, &keys, |k| {
            set.check_bitvector(k).rule
        });
        bench_path(&mut group, "linear", n, &keys, |k| set.check_linear(k).rule);
    }
    group.finish();
}

fn compiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_compile");
    group.sample_size(10);
    for n in SIZES {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let rules = rules(n, &mut rng);
        group.bench_with_input(BenchmarkId::from_parameter(n), &rules, |b, rules| {
            b.iter(|| RuleSet::new(rules.clone(), Action::Allow).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, matching, crossover, compiling);
criterion_main!(benches);

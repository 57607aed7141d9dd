//! Checks of the policy sections that serde cannot make: every problem is collected, each
//! naming its field path, the value, and what it must be.
//!
//! `Facts` holds what several checks (and the compiler) derive from the file: each port's
//! parsed address, the effective private prefixes, the SNAT pool. It tolerates invalid values
//! (it skips them), so the checks can run on a file with errors and report all of them.

use super::sections::{Action, ForwardProto, ProbeProtocol, RuleConfig, StaticConfig};
use super::value::{Parsed, PortRange, Prefix, Proto};
use crate::config::{Config, FieldError as E, Role};
use crate::packet::IpProtocol;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Most rules in one rule set (egress or ingress). The compiled matcher keeps one bitset of
/// this many bits per elementary interval of each field, so memory grows with its square.
pub const MAX_RULES: usize = 16384;
/// Most addresses in the SNAT pool (a /16).
pub const MAX_POOL: usize = 65536;
/// Most public ports all port forwards may cover together (entries of the forward table).
pub const MAX_FORWARD_PORTS: usize = 1 << 20;
/// Most ports: DPDK's `RTE_MAX_ETHPORTS` as Debian builds it (the pipeline numbers ports in
/// a byte).
pub const MAX_PORTS: usize = 32;

/// The RFC 1918 private ranges: the default private prefixes of a one-arm appliance.
pub const RFC1918: [Prefix; 3] = [
    Prefix(Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8)),
    Prefix(Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12)),
    Prefix(Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16)),
];

/// What the checks and the compiler derive from a file.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    /// Each port's parsed address (`None`: absent or invalid).
    pub ports: Vec<Option<Ipv4Net>>,
    /// The private prefixes in force (given, or the default).
    pub private: Vec<Prefix>,
    /// The SNAT pool, in file order without duplicates: `nat.addresses` expanded, or the
    /// outside and both ports' addresses when it is empty.
    pub pool: Vec<Ipv4Addr>,
}

impl Facts {
    pub fn of(config: &Config) -> Facts {
        let ports: Vec<Option<Ipv4Net>> = config
            .port
            .iter()
            .map(|p| p.address.as_ref().and_then(|a| a.ok().copied()))
            .collect();
        let private: Vec<Prefix> = if !config.private_prefixes.is_empty() {
            config
                .private_prefixes
                .iter()
                .filter_map(|p| p.ok().copied())
                .collect()
        } else if config
            .port
            .iter()
            .any(|p| matches!(p.role, Role::Both | Role::Gwlb))
        {
            RFC1918.to_vec()
        } else {
            config
                .port
                .iter()
                .zip(&ports)
                .filter(|(p, _)| p.role == Role::Inside)
                .filter_map(|(_, a)| a.map(|a| Prefix(a.trunc())))
                .collect()
        };
        let mut pool = Vec::new();
        if config.nat.addresses.is_empty() {
            for (p, a) in config.port.iter().zip(&ports) {
                if let (Role::Outside | Role::Both, Some(a)) = (p.role, a) {
                    pool.push(a.addr());
                }
            }
        } else {
            let size: u64 = config
                .nat
                .addresses
                .iter()
                .filter_map(|a| a.ok())
                .map(|p| u64::from(p.last() - p.first()) + 1)
                .sum();
            if size <= MAX_POOL as u64 {
                for p in config.nat.addresses.iter().filter_map(|a| a.ok()) {
                    pool.extend((p.first()..=p.last()).map(Ipv4Addr::from));
                }
            }
        }
        let mut seen = hashbrown::HashSet::new();
        pool.retain(|a| seen.insert(*a));
        Facts {
            ports,
            private,
            pool,
        }
    }

    pub fn is_private(&self, addr: Ipv4Addr) -> bool {
        self.private.iter().any(|p| p.contains(addr))
    }

    /// The port whose own address is `addr`.
    pub fn port_with_address(&self, addr: Ipv4Addr) -> Option<usize> {
        self.ports
            .iter()
            .position(|a| a.is_some_and(|a| a.addr() == addr))
    }

    /// The first port of one of `roles` whose subnet holds the whole of `first..=last`.
    fn port_on_subnet(
        &self,
        config: &Config,
        roles: &[Role],
        first: u32,
        last: u32,
    ) -> Option<usize> {
        config.port.iter().zip(&self.ports).position(|(p, a)| {
            roles.contains(&p.role)
                && a.is_some_and(|a| {
                    u32::from(a.network()) <= first && last <= u32::from(a.broadcast())
                })
        })
    }
}

/// Runs every policy check on `config`, appending to `errors`.
pub(crate) fn check(config: &Config, errors: &mut Vec<E>) {
    let facts = Facts::of(config);
    check_ports(config, &facts, errors);
    check_private(config, &facts, errors);
    check_nat(config, &facts, errors);
    check_rules("egress.rule", &config.egress.rule, errors);
    check_rules("ingress.rule", &config.ingress.rule, errors);
    check_forwards(config, &facts, errors);
    check_statics(config, &facts, errors);
    check_local(config, &facts, errors);
}

/// Things that are legal but probably not meant: shown by `appliance check`, never refused.
pub fn warnings(config: &Config) -> Vec<E> {
    let facts = Facts::of(config);
    let mut out = Vec::new();
    // Tunnel ports translate nothing: a file of them alone needs no SNAT address.
    if facts.pool.is_empty() && config.port.iter().any(|p| p.role != Role::Gwlb) {
        out.push(E::new(
            "nat.addresses",
            "[]",
            "no SNAT address: nat.addresses is empty and no outside or both port has an \
             address, so egress flows cannot be translated and are dropped",
        ));
    }
    let has_forwards = !config.ingress.forward.is_empty() || !config.ingress.statics.is_empty();
    if has_forwards
        && config.ingress.default == Action::Deny
        && !config
            .ingress
            .rule
            .iter()
            .any(|r| r.action == Action::Allow)
    {
        out.push(E::new(
            "ingress.default",
            "deny",
            "no ingress rule allows anything, so no port forward or static mapping can be \
             used: add an [[ingress.rule]] with action = \"allow\", or set default = \"allow\"",
        ));
    }
    out
}

fn describe_port(config: &Config, i: usize) -> String {
    let p = &config.port[i];
    match &p.address {
        Some(a) => format!("port[{i}] {} {}", p.name, a),
        None => format!("port[{i}] {}", p.name),
    }
}

fn check_ports(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    if config.port.len() > MAX_PORTS {
        errors.push(E::new(
            "port",
            format!("{} ports", config.port.len()),
            format!("the appliance drives at most {MAX_PORTS} ports"),
        ));
    }
    for (i, p) in config.port.iter().enumerate() {
        let at = |f: &str| format!("port[{i}].{f}");
        let mut net = None;
        if let Some(a) = &p.address {
            match a.value() {
                Err(why) => errors.push(E::new(at("address"), a, why)),
                Ok(n) if n.prefix_len() == 0 => errors.push(E::new(
                    at("address"),
                    a,
                    "a /0 subnet holds every address: give the subnet's real prefix length",
                )),
                Ok(n)
                    if n.prefix_len() <= 30
                        && (n.addr() == n.network() || n.addr() == n.broadcast()) =>
                {
                    errors.push(E::new(
                        at("address"),
                        a,
                        format!(
                            "is the subnet's {} address: give the port's own address, like {}/{}",
                            if n.addr() == n.network() {
                                "network"
                            } else {
                                "broadcast"
                            },
                            Ipv4Addr::from(u32::from(n.network()) + 1),
                            n.prefix_len()
                        ),
                    ))
                }
                Ok(n) => {
                    net = Some(*n);
                    if let Some(j) = facts.ports[..i].iter().position(|q| {
                        q.is_some_and(|q| Prefix(q.trunc()).overlaps(Prefix(n.trunc())))
                    }) {
                        errors.push(E::new(
                            at("address"),
                            a,
                            format!(
                                "its subnet overlaps the subnet of {}: each port needs a subnet of its own",
                                describe_port(config, j)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(g) = &p.gateway {
            match (g.value(), net) {
                (Err(why), _) => errors.push(E::new(at("gateway"), g, why)),
                (Ok(_), None) if p.address.is_none() => errors.push(E::new(
                    at("gateway"),
                    g,
                    format!("needs port[{i}].address: the gateway must be on the port's subnet"),
                )),
                (Ok(_), None) => {}
                (Ok(gw), Some(n)) => {
                    if !n.contains(gw) {
                        errors.push(E::new(
                            at("gateway"),
                            g,
                            format!(
                                "is not on the port's subnet {}: the next hop must be on-link",
                                n.trunc()
                            ),
                        ));
                    } else if *gw == n.addr() {
                        errors.push(E::new(
                            at("gateway"),
                            g,
                            "is the port's own address: give the router's address",
                        ));
                    } else if n.prefix_len() <= 30 && (*gw == n.network() || *gw == n.broadcast()) {
                        errors.push(E::new(at("gateway"), g, "is the subnet's network or broadcast address: give the router's address"));
                    }
                }
            }
        }
        for (k, nb) in p.neighbours.iter().enumerate() {
            let at = |f: &str| format!("port[{i}].neighbours[{k}].{f}");
            if let Err(why) = nb.mac.value() {
                errors.push(E::new(at("mac"), &nb.mac, why));
            }
            match nb.ip.value() {
                Err(why) => errors.push(E::new(at("ip"), &nb.ip, why)),
                Ok(ip) => {
                    if let Some(n) = net {
                        if !n.contains(ip) {
                            errors.push(E::new(
                                at("ip"),
                                &nb.ip,
                                format!(
                                    "is not on the port's subnet {}: a neighbour is on-link",
                                    n.trunc()
                                ),
                            ));
                        } else if *ip == n.addr() {
                            errors.push(E::new(at("ip"), &nb.ip, "is the port's own address"));
                        }
                    }
                    if p.neighbours[..k].iter().any(|o| o.ip.ok() == Some(ip)) {
                        errors.push(E::new(
                            at("ip"),
                            &nb.ip,
                            "is listed twice on this port: keep one entry",
                        ));
                    }
                }
            }
        }
    }
}

/// The value of `p`; if its text is not one, `None`, and the error is recorded under
/// `field` (the checks that need the value are skipped).
fn parsed<T: Copy>(field: impl Into<String>, p: &Parsed<T>, errors: &mut Vec<E>) -> Option<T> {
    match p.value() {
        Ok(v) => Some(*v),
        Err(why) => {
            errors.push(E::new(field, p, why));
            None
        }
    }
}

fn check_private(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    for (i, p) in config.private_prefixes.iter().enumerate() {
        let at = format!("private_prefixes[{i}]");
        let Some(prefix) = parsed(&at, p, errors) else {
            continue;
        };
        for (j, port) in config.port.iter().enumerate() {
            if let (Role::Outside, Some(a)) = (port.role, facts.ports[j]) {
                if prefix.contains(a.addr()) {
                    errors.push(E::new(
                        &at,
                        p,
                        format!(
                            "holds the address of outside {}: hosts there would look inside; narrow it to the private network",
                            describe_port(config, j)
                        ),
                    ));
                }
            }
        }
    }
}

fn check_nat(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    let nat = &config.nat;
    let mut size: u64 = 0;
    for (i, a) in nat.addresses.iter().enumerate() {
        let at = format!("nat.addresses[{i}]");
        let Some(prefix) = parsed(&at, a, errors) else {
            continue;
        };
        size += u64::from(prefix.last() - prefix.first()) + 1;
        if let Some(j) = nat.addresses[..i]
            .iter()
            .position(|b| b.ok().is_some_and(|b| b.overlaps(prefix)))
        {
            errors.push(E::new(
                &at,
                a,
                format!(
                    "overlaps nat.addresses[{j}] = {:?}: list each address once",
                    nat.addresses[j].text()
                ),
            ));
        }
        if !nat.routed {
            match facts.port_on_subnet(
                config,
                &[Role::Outside, Role::Both],
                prefix.first(),
                prefix.last(),
            ) {
                None => errors.push(E::new(
                    &at,
                    a,
                    "is not on an outside or both port's subnet: use addresses there, or set \
                     nat.routed = true if the network routes or maps them to the appliance",
                )),
                Some(j) => {
                    if let Some(n) = facts.ports[j] {
                        if n.prefix_len() <= 30
                            && (prefix.contains(n.network()) || prefix.contains(n.broadcast()))
                        {
                            errors.push(E::new(
                                &at,
                                a,
                                format!(
                                    "holds the network or broadcast address of {}: use a narrower prefix",
                                    describe_port(config, j)
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (j, port) in config.port.iter().enumerate() {
            if let Some(g) = port.gateway.as_ref().and_then(|g| g.ok()) {
                if prefix.contains(*g) {
                    errors.push(E::new(
                        &at,
                        a,
                        format!("holds port[{j}].gateway {g}: the appliance would take the router's address"),
                    ));
                }
            }
            if let (Role::Inside, Some(n)) = (port.role, facts.ports[j]) {
                if prefix.contains(n.addr()) {
                    errors.push(E::new(
                        &at,
                        a,
                        format!("holds the address of inside {}", describe_port(config, j)),
                    ));
                }
            }
        }
    }
    if size > MAX_POOL as u64 {
        errors.push(E::new(
            "nat.addresses",
            format!("{size} addresses"),
            format!("the SNAT pool may hold at most {MAX_POOL} addresses"),
        ));
    }
    match nat.port_range.value() {
        Err(why) => errors.push(E::new("nat.port_range", &nat.port_range, why)),
        Ok(r) if r.start == 0 => errors.push(E::new(
            "nat.port_range",
            &nat.port_range,
            "port 0 cannot be a source port: start at 1 or above (1024 keeps RFC 4787 REQ-3)",
        )),
        Ok(_) => {}
    }
    let t = &nat.timeouts;
    for (name, value, min, rfc) in [
        (
            "tcp_established",
            t.tcp_established,
            7440,
            "RFC 5382 REQ-5 requires at least 2 h 4 min",
        ),
        (
            "tcp_transitory",
            t.tcp_transitory,
            240,
            "RFC 5382 REQ-5 requires at least 4 min",
        ),
        ("udp", t.udp, 120, "RFC 4787 REQ-5 requires at least 2 min"),
        ("icmp", t.icmp, 60, "RFC 5508 REQ-1 requires at least 60 s"),
    ] {
        const MAX: u32 = 7 * 24 * 3600;
        if value < min || value > MAX {
            errors.push(E::new(
                format!("nat.timeouts.{name}"),
                value,
                format!("must be between {min} and {MAX} seconds ({rfc})"),
            ));
        }
    }
    if t.tcp_transitory > t.tcp_established {
        errors.push(E::new(
            "nat.timeouts.tcp_transitory",
            t.tcp_transitory,
            "must not exceed nat.timeouts.tcp_established",
        ));
    }
    if nat.max_sessions == 0 || nat.max_sessions > 1 << 26 {
        errors.push(E::new(
            "nat.max_sessions",
            nat.max_sessions,
            format!("must be between 1 and {} (64 Mi)", 1u32 << 26),
        ));
    }
    if let Some(mss) = nat.mss_clamp {
        if !(536..=9560).contains(&mss) {
            errors.push(E::new(
                "nat.mss_clamp",
                mss,
                "must be between 536 (RFC 879's default MSS) and 9560 (a 9600-byte jumbo MTU)",
            ));
        }
    }
}

fn check_rules(path: &str, rules: &[RuleConfig], errors: &mut Vec<E>) {
    if rules.len() > MAX_RULES {
        errors.push(E::new(
            path,
            format!("{} rules", rules.len()),
            format!("at most {MAX_RULES} rules per rule set"),
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("{path}[{i}].{f}");
        let proto = parsed(at("proto"), &r.proto, errors);
        for (field, list) in [("src", &r.src), ("dst", &r.dst)] {
            for (j, p) in list.iter().enumerate() {
                if let Err(why) = p.value() {
                    errors.push(E::new(format!("{path}[{i}].{field}[{j}]"), p, why));
                }
            }
        }
        for (field, list) in [("src_ports", &r.src_ports), ("dst_ports", &r.dst_ports)] {
            for (j, p) in list.iter().enumerate() {
                if let Err(why) = p.value() {
                    errors.push(E::new(format!("{path}[{i}].{field}[{j}]"), p, why));
                }
            }
            if let Some(proto) = proto {
                if !list.is_empty() && !proto.has_ports() {
                    errors.push(E::new(
                        at(field),
                        list.iter().map(|p| p.text()).collect::<Vec<_>>().join(", "),
                        format!("ports need proto = \"tcp\" or \"udp\" (this rule has proto = \"{proto}\")"),
                    ));
                }
            }
        }
        if let Some(proto) = proto {
            if !r.icmp_types.is_empty() && proto != Proto::Is(IpProtocol::ICMP) {
                errors.push(E::new(
                    at("icmp_types"),
                    format!("{:?}", r.icmp_types),
                    format!("icmp_types need proto = \"icmp\" (this rule has proto = \"{proto}\")"),
                ));
            }
        }
    }
}

/// A forward's public side, for the overlap check.
struct PublicSide {
    index: usize,
    proto: IpProtocol,
    addr: Ipv4Addr,
    ports: PortRange,
}

fn check_forwards(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    let mut sides = Vec::new();
    let mut total: u64 = 0;
    let static_publics = config.ingress.static_publics();
    for (i, f) in config.ingress.forward.iter().enumerate() {
        let at = |s: &str| format!("ingress.forward[{i}].{s}");
        let public = parsed(at("public"), &f.public, errors);
        if let Some(a) = public {
            let port = facts.port_with_address(a);
            let is_outside_port = port.is_some_and(|j| config.port[j].role != Role::Inside);
            if static_publics.contains(&a) {
                errors.push(E::new(
                    at("public"),
                    &f.public,
                    "is the public address of an ingress.static mapping, which already forwards \
                     every port: remove one of the two",
                ));
            } else if !facts.pool.contains(&a) && !is_outside_port {
                let outside: Vec<String> = config
                    .port
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.role != Role::Inside && p.address.is_some())
                    .map(|(j, _)| describe_port(config, j))
                    .collect();
                errors.push(E::new(
                    at("public"),
                    &f.public,
                    format!(
                        "is not one of the appliance's public addresses: add it to nat.addresses, \
                         or use an outside port's address{}",
                        if outside.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", outside.join(", "))
                        }
                    ),
                ));
            }
        }
        let ports = match f.public_port.value() {
            Err(why) => {
                errors.push(E::new(at("public_port"), &f.public_port, why));
                None
            }
            Ok(r) if r.start == 0 => {
                errors.push(E::new(
                    at("public_port"),
                    &f.public_port,
                    "port 0 cannot be forwarded: use 1-65535",
                ));
                None
            }
            Ok(r) => Some(*r),
        };
        if let Some(a) = parsed(at("private"), &f.private, errors) {
            check_private_host(config, facts, &at("private"), &f.private, a, errors);
        }
        if let Some(pp) = f.private_port {
            if pp == 0 {
                errors.push(E::new(
                    at("private_port"),
                    pp,
                    "port 0 cannot be forwarded to: use 1-65535",
                ));
            } else if let Some(r) = ports {
                let last = u32::from(pp) + r.len() - 1;
                if last > 65535 {
                    errors.push(E::new(
                        at("private_port"),
                        pp,
                        format!(
                            "the public range {r} holds {} ports, so the private range would end at {last}, past 65535",
                            r.len()
                        ),
                    ));
                }
            }
        }
        if let (Some(addr), Some(ports)) = (public, ports) {
            total += u64::from(ports.len());
            sides.push(PublicSide {
                index: i,
                proto: f.proto.protocol(),
                addr,
                ports,
            });
        }
    }
    if total > MAX_FORWARD_PORTS as u64 {
        errors.push(E::new(
            "ingress.forward",
            format!("{total} public ports"),
            format!("port forwards may cover at most {MAX_FORWARD_PORTS} public ports together"),
        ));
    }
    // Overlaps: sort by public side, then each range must start after every earlier one of
    // the same (proto, address) ends. Reported on the later forward in file order.
    sides.sort_by_key(|s| (s.proto, s.addr, s.ports.start, s.index));
    let mut reported = Vec::new();
    for w in 0..sides.len() {
        let s = &sides[w];
        // The earlier range of the same (proto, address) reaching furthest.
        let prev = sides[..w]
            .iter()
            .rev()
            .take_while(|p| p.proto == s.proto && p.addr == s.addr)
            .max_by_key(|p| p.ports.end);
        if let Some(p) = prev {
            if p.ports.end >= s.ports.start {
                let (first, later) = if p.index < s.index { (p, s) } else { (s, p) };
                reported.push((later.index, first.index));
            }
        }
    }
    reported.sort_unstable();
    reported.dedup();
    for (later, first) in reported {
        let f = &config.ingress.forward[first];
        errors.push(E::new(
            format!("ingress.forward[{later}].public_port"),
            &config.ingress.forward[later].public_port,
            format!(
                "overlaps ingress.forward[{first}] ({} {}:{}): each public port forwards to one place",
                f.proto.name(),
                f.public,
                f.public_port
            ),
        ));
    }
}

/// A forward's or static mapping's private side must be an inside host, not the appliance.
fn check_private_host(
    config: &Config,
    facts: &Facts,
    at: &str,
    text: &impl std::fmt::Display,
    addr: Ipv4Addr,
    errors: &mut Vec<E>,
) {
    if let Some(j) = facts.port_with_address(addr) {
        errors.push(E::new(
            at,
            text,
            format!(
                "is the address of {}: give an inside host",
                describe_port(config, j)
            ),
        ));
    } else if !facts.is_private(addr) {
        let private: Vec<String> = facts.private.iter().map(|p| p.to_string()).collect();
        errors.push(E::new(
            at,
            text,
            format!(
                "is not inside (private prefixes: [{}]): give an inside host, or add a \
                 private_prefixes entry that covers it",
                private.join(", ")
            ),
        ));
    }
}

fn check_statics(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    let statics = &config.ingress.statics;
    for (i, s) in statics.iter().enumerate() {
        let at = |f: &str| format!("ingress.static[{i}].{f}");
        if let Some(a) = parsed(at("public"), &s.public, errors) {
            if let Some(j) = facts.port_with_address(a) {
                errors.push(E::new(
                    at("public"),
                    &s.public,
                    format!(
                        "is the address of {}: a static mapping needs an address of its own \
                         (use ingress.forward for single ports of the appliance's address)",
                        describe_port(config, j)
                    ),
                ));
            } else if facts.pool.contains(&a) {
                errors.push(E::new(
                    at("public"),
                    &s.public,
                    "is in the SNAT pool, which shares it among all inside hosts: remove it \
                     from nat.addresses",
                ));
            } else if !config.nat.routed
                && facts
                    .port_on_subnet(
                        config,
                        &[Role::Outside, Role::Both],
                        u32::from(a),
                        u32::from(a),
                    )
                    .is_none()
            {
                errors.push(E::new(
                    at("public"),
                    &s.public,
                    "is not on an outside or both port's subnet: use an address there, or set \
                     nat.routed = true if the network routes or maps it to the appliance",
                ));
            }
            once(statics, i, "public", |o| &o.public, errors);
        }
        if let Some(a) = parsed(at("private"), &s.private, errors) {
            check_private_host(config, facts, &at("private"), &s.private, a, errors);
            once(statics, i, "private", |o| &o.private, errors);
        }
    }
}

/// Refuses `ingress.static[i].{side}` (`public` or `private`, `address` of a mapping) when an
/// earlier mapping has the same address there: 1:1 means one each. An invalid address is left
/// to the check that names it.
fn once(
    statics: &[StaticConfig],
    i: usize,
    side: &str,
    address: impl Fn(&StaticConfig) -> &Parsed<Ipv4Addr>,
    errors: &mut Vec<E>,
) {
    let value = address(&statics[i]);
    let Some(a) = value.ok() else {
        return;
    };
    if let Some(j) = statics[..i].iter().position(|o| address(o).ok() == Some(a)) {
        errors.push(E::new(
            format!("ingress.static[{i}].{side}"),
            value,
            format!("is already the {side} address of ingress.static[{j}]: 1:1 means one each"),
        ));
    }
}

/// Longest `local.health_probe.path`: a load balancer's request line fits one segment.
pub const MAX_PROBE_PATH: usize = 256;
/// Longest `local.health_probe.drain_on_stop`, seconds.
pub const MAX_DRAIN_ON_STOP: u32 = 3600;

/// An HTTP probe's path: an absolute path of printable ASCII without spaces or a query (RFC
/// 9112 section 3.2.1 origin form; the query of a request is not compared).
fn check_probe_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "must be an absolute path starting with \"/\", like \"/{path}\""
        ));
    }
    if path.len() > MAX_PROBE_PATH {
        return Err(format!("must be at most {MAX_PROBE_PATH} bytes long"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '?' || *c == '#')
    {
        return Err(format!(
            "must be printable ASCII without spaces, \"?\" or \"#\" (found {c:?})"
        ));
    }
    Ok(())
}

fn check_local(config: &Config, facts: &Facts, errors: &mut Vec<E>) {
    let Some(probe) = &config.local.health_probe else {
        return;
    };
    if probe.port == 0 {
        errors.push(E::new(
            "local.health_probe.port",
            0,
            "must be a TCP port 1-65535",
        ));
    }
    for (i, s) in probe.sources.iter().enumerate() {
        if let Err(why) = s.value() {
            errors.push(E::new(format!("local.health_probe.sources[{i}]"), s, why));
        }
    }
    let protocol = parsed("local.health_probe.protocol", &probe.protocol, errors);
    if let Some(path) = &probe.path {
        if protocol == Some(ProbeProtocol::Tcp) {
            errors.push(E::new(
                "local.health_probe.path",
                path,
                "is only for protocol = \"http\": a TCP probe has no path",
            ));
        } else if let Err(why) = check_probe_path(path) {
            errors.push(E::new("local.health_probe.path", path, why));
        }
    }
    if probe.drain_on_stop > MAX_DRAIN_ON_STOP {
        errors.push(E::new(
            "local.health_probe.drain_on_stop",
            probe.drain_on_stop,
            format!(
                "must be at most {MAX_DRAIN_ON_STOP} seconds (and below the time the \
                 supervisor waits for a stop: TimeoutStopSec=30 in the image's \
                 appliance.service)"
            ),
        ));
    }
    for (i, f) in config.ingress.forward.iter().enumerate() {
        let on_port = f
            .public
            .ok()
            .and_then(|a| facts.port_with_address(*a))
            .is_some();
        let covers = f.public_port.ok().is_some_and(|r| r.contains(probe.port));
        if on_port && covers && f.proto == ForwardProto::Tcp {
            errors.push(E::new(
                "local.health_probe.port",
                probe.port,
                format!(
                    "ingress.forward[{i}] forwards tcp port {} of the appliance's own address: \
                     move the probe or the forward to another port",
                    probe.port
                ),
            ));
        }
    }
}

//! From a checked [`Config`] to a [`Policy`].

use super::matcher::{Rule, RuleSet};
use super::tables::{
    Forward, Forwards, HealthProbe, LocalServices, PortAddressing, PrefixSet, Routes, StaticMaps,
    StaticNeighbour, Tunnel,
};
use super::{Policy, PolicyError, SessionSettings, SnatPool};
use crate::config::validate::Facts;
use crate::config::{Config, FieldError, PortRange, ProbeProtocol, Role, RuleConfig};
use std::net::{Ipv4Addr, SocketAddrV4};

impl Policy {
    /// Checks `config` and compiles it; `generation` is stamped on the result.
    ///
    /// Errors: every problem [`Config::validate`] finds, as [`PolicyError::Invalid`] (a
    /// `Config` from [`Config::load`] or [`Config::parse`] has none).
    pub fn compile(config: &Config, generation: u64) -> Result<Policy, PolicyError> {
        config.validate().map_err(PolicyError::Invalid)?;
        let facts = Facts::of(config);
        let rule_set = |path: &str, configs: &[RuleConfig], default| {
            RuleSet::new(rules(configs), default).map_err(|e| {
                PolicyError::Invalid(vec![FieldError::new(
                    path,
                    format!("{} rules", configs.len()),
                    e.to_string(),
                )])
            })
        };
        let egress = rule_set("egress.rule", &config.egress.rule, config.egress.default)?;
        let ingress = rule_set("ingress.rule", &config.ingress.rule, config.ingress.default)?;

        let mut forwards = Forwards::default();
        for (index, f) in config.ingress.forward.iter().enumerate() {
            let (Some(&public), Some(&range), Some(&private)) =
                (f.public.ok(), f.public_port.ok(), f.private.ok())
            else {
                continue;
            };
            let first_private = f.private_port.unwrap_or(range.start);
            for offset in 0..range.len() {
                let (Ok(port), Ok(private_port)) = (
                    u16::try_from(u32::from(range.start) + offset),
                    u16::try_from(u32::from(first_private) + offset),
                ) else {
                    continue;
                };
                forwards.insert(
                    f.proto.protocol(),
                    SocketAddrV4::new(public, port),
                    Forward {
                        private: SocketAddrV4::new(private, private_port),
                        index,
                    },
                );
            }
        }

        let mut statics = StaticMaps::default();
        for s in &config.ingress.statics {
            if let (Some(&public), Some(&private)) = (s.public.ok(), s.private.ok()) {
                statics.insert(public, private);
            }
        }

        let nat = &config.nat;
        let snat = SnatPool {
            addresses: facts.pool.clone(),
            ports: nat.port_range.ok().copied().unwrap_or(PortRange {
                start: 1024,
                end: 65535,
            }),
            mapping: nat.mapping,
            filtering: nat.filtering,
            pooling: nat.pooling,
            hairpinning: nat.hairpinning,
        };
        let sessions = SessionSettings {
            timeouts: nat.timeouts,
            max_sessions: nat.max_sessions,
            tcp_loose: nat.tcp_loose,
            mss_clamp: nat.mss_clamp,
            on_reload: nat.on_reload,
        };

        let static_publics = config.ingress.static_publics();
        let ports = config
            .port
            .iter()
            .zip(&facts.ports)
            .map(|(p, &address)| {
                let mut arp_addresses: Vec<Ipv4Addr> =
                    address.map(|n| n.addr()).into_iter().collect();
                if let (Some(n), false, Role::Outside | Role::Both) = (address, nat.routed, p.role)
                {
                    for &a in snat.addresses.iter().chain(&static_publics) {
                        if n.contains(&a) && !arp_addresses.contains(&a) {
                            arp_addresses.push(a);
                        }
                    }
                }
                PortAddressing {
                    name: p.name.clone(),
                    role: p.role,
                    address,
                    gateway: p.gateway.as_ref().and_then(|g| g.ok().copied()),
                    neighbours: p
                        .neighbours
                        .iter()
                        .filter_map(|n| match (n.ip.ok(), n.mac.ok()) {
                            (Some(&ip), Some(&mac)) => Some(StaticNeighbour { ip, mac }),
                            _ => None,
                        })
                        .collect(),
                    arp_addresses,
                    tunnel: p.tunnel.as_ref().map(Tunnel::of),
                }
            })
            .collect::<Vec<_>>();
        let private = PrefixSet::new(facts.private.clone());
        let routes = Routes::new(&ports, &private);

        let local = LocalServices {
            icmp_echo: config.local.icmp_echo,
            health_probe: config.local.health_probe.as_ref().map(|h| HealthProbe {
                port: h.port,
                sources: PrefixSet::new(h.sources.iter().filter_map(|s| s.ok().copied()).collect()),
                http_path: (h.protocol() == ProbeProtocol::Http)
                    .then(|| h.path().as_bytes().into()),
                drain_on_stop: h.drain_on_stop,
            }),
        };

        Ok(Policy {
            generation,
            egress,
            ingress,
            forwards,
            statics,
            snat,
            sessions,
            private,
            local,
            ports,
            routes,
        })
    }
}

/// The rules of a section, values parsed (a checked config has no invalid ones).
fn rules(configs: &[RuleConfig]) -> Vec<Rule> {
    configs
        .iter()
        .map(|r| Rule {
            action: r.action,
            proto: r.proto.ok().and_then(|p| p.protocol()),
            src: r.src.iter().filter_map(|p| p.ok().copied()).collect(),
            dst: r.dst.iter().filter_map(|p| p.ok().copied()).collect(),
            src_ports: r.src_ports.iter().filter_map(|p| p.ok().copied()).collect(),
            dst_ports: r.dst_ports.iter().filter_map(|p| p.ok().copied()).collect(),
            icmp_types: r.icmp_types.clone(),
        })
        .collect()
}

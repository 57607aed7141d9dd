//! A policy's summary: what `appliance check` prints and the control socket's `policy`
//! command returns (the latter as JSON, read back by `appliance policy`).

use crate::config::Config;
use crate::config::{validate, Action, Filtering, Mapping, OnReload, Pooling};
use crate::policy::Policy;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The shape of a compiled policy, in words and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The policy's generation.
    pub generation: u64,
    /// Ports, in file order.
    pub ports: Vec<PortSummary>,
    /// The private prefixes in force.
    pub private_prefixes: Vec<String>,
    /// The SNAT pool.
    pub snat: SnatSummary,
    /// Egress filter.
    pub egress: RulesSummary,
    /// Ingress filter.
    pub ingress: RulesSummary,
    /// Port forward entries (`[[ingress.forward]]`).
    pub forwards: usize,
    /// Public ports the forwards cover (a range counts each port).
    pub forward_ports: usize,
    /// 1:1 static mappings.
    pub statics: usize,
    /// Session keeping.
    pub sessions: SessionsSummary,
    /// Answer ping on the port addresses.
    pub icmp_echo: bool,
    /// The health probe, as `"tcp/PORT from PREFIXES"`.
    pub health_probe: Option<String>,
    /// `[control]`.
    pub control: ControlSummary,
    /// Legal but probably unintended settings ([`validate::warnings`]).
    pub warnings: Vec<String>,
}

/// One port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSummary {
    /// Its name.
    pub name: String,
    /// `inside`, `outside`, `both` or `gwlb`.
    pub role: String,
    /// The DPDK device.
    pub device: String,
    /// Its address with prefix length.
    pub address: Option<String>,
    /// Its gateway.
    pub gateway: Option<String>,
    /// Static neighbours.
    pub neighbours: usize,
    /// A `gwlb` port's tunnel (`geneve udp/6081`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
}

/// The SNAT pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnatSummary {
    /// Number of public addresses.
    pub address_count: usize,
    /// The first few addresses (at most [`SHOWN_ADDRESSES`]).
    pub addresses: Vec<String>,
    /// The port range.
    pub port_range: String,
    /// Mapping behaviour.
    pub mapping: String,
    /// Filtering behaviour.
    pub filtering: String,
    /// Address pooling: `paired` or `arbitrary`.
    #[serde(default)]
    pub pooling: String,
    /// Ports of the range on each address and protocol: with endpoint-independent mapping,
    /// the inside endpoints one address holds per protocol; with endpoint-dependent mapping,
    /// the sessions it holds per protocol and remote endpoint.
    #[serde(default)]
    pub ports_per_address: u32,
    /// Hairpinning on.
    pub hairpinning: bool,
    /// The pool is routed to the appliance (no ARP answered for it).
    pub routed: bool,
}

/// Addresses of the pool listed in a summary.
pub const SHOWN_ADDRESSES: usize = 8;

/// A rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesSummary {
    /// Rules.
    pub rules: usize,
    /// `allow` rules.
    pub allow: usize,
    /// `deny` rules.
    pub deny: usize,
    /// The default verdict.
    pub default: String,
}

/// Session keeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsSummary {
    /// Table capacity.
    pub max_sessions: u32,
    /// Timeouts in seconds: tcp_established, tcp_transitory, udp, icmp.
    pub timeouts: [u32; 4],
    /// Accept a non-SYN first TCP packet.
    pub tcp_loose: bool,
    /// MSS clamp.
    pub mss_clamp: Option<u16>,
    /// `recheck` or `keep`.
    pub on_reload: String,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlSummary {
    /// Control socket path, `None` when off.
    pub socket: Option<String>,
    /// Prometheus endpoint.
    pub metrics: Option<String>,
    /// Reload on file change.
    pub watch_config: bool,
}

fn action(a: Action) -> String {
    match a {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
    .into()
}

impl PolicySummary {
    /// Summarises `policy`, compiled from `config`.
    pub fn new(config: &Config, policy: &Policy) -> PolicySummary {
        let rules = |set: &crate::policy::RuleSet| {
            let allow = set
                .rules()
                .iter()
                .filter(|r| r.action == Action::Allow)
                .count();
            RulesSummary {
                rules: set.len(),
                allow,
                deny: set.len() - allow,
                default: action(set.default_action()),
            }
        };
        let t = policy.sessions.timeouts;
        PolicySummary {
            generation: policy.generation,
            ports: config
                .port
                .iter()
                .zip(&policy.ports)
                .map(|(c, p)| PortSummary {
                    name: p.name.clone(),
                    role: p.role.name().into(),
                    device: c.device.clone(),
                    address: p.address.map(|a| a.to_string()),
                    gateway: p.gateway.map(|g| g.to_string()),
                    neighbours: p.neighbours.len(),
                    tunnel: p.tunnel.map(|t| t.to_string()),
                })
                .collect(),
            private_prefixes: policy
                .private
                .prefixes()
                .iter()
                .map(ToString::to_string)
                .collect(),
            snat: SnatSummary {
                address_count: policy.snat.addresses.len(),
                addresses: policy
                    .snat
                    .addresses
                    .iter()
                    .take(SHOWN_ADDRESSES)
                    .map(ToString::to_string)
                    .collect(),
                port_range: policy.snat.ports.to_string(),
                mapping: match policy.snat.mapping {
                    Mapping::EndpointIndependent => "endpoint-independent",
                    Mapping::EndpointDependent => "endpoint-dependent",
                }
                .into(),
                filtering: match policy.snat.filtering {
                    Filtering::EndpointIndependent => "endpoint-independent",
                    Filtering::AddressDependent => "address-dependent",
                    Filtering::AddressAndPortDependent => "address-and-port-dependent",
                }
                .into(),
                pooling: match policy.snat.pooling {
                    Pooling::Paired => "paired",
                    Pooling::Arbitrary => "arbitrary",
                }
                .into(),
                ports_per_address: policy.snat.ports.len(),
                hairpinning: policy.snat.hairpinning,
                routed: config.nat.routed,
            },
            egress: rules(&policy.egress),
            ingress: rules(&policy.ingress),
            forwards: config.ingress.forward.len(),
            forward_ports: policy.forwards.len(),
            statics: policy.statics.len(),
            sessions: SessionsSummary {
                max_sessions: policy.sessions.max_sessions,
                timeouts: [t.tcp_established, t.tcp_transitory, t.udp, t.icmp],
                tcp_loose: policy.sessions.tcp_loose,
                mss_clamp: policy.sessions.mss_clamp,
                on_reload: match policy.sessions.on_reload {
                    OnReload::Recheck => "recheck",
                    OnReload::Keep => "keep",
                }
                .into(),
            },
            icmp_echo: policy.local.icmp_echo,
            health_probe: policy.local.health_probe.as_ref().map(|h| {
                let from = if h.sources.is_empty() {
                    "anyone".to_string()
                } else {
                    h.sources
                        .prefixes()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let what = match &h.http_path {
                    Some(path) => format!("http GET {}", String::from_utf8_lossy(path)),
                    None => "syn-ack".to_string(),
                };
                let drain = match h.drain_on_stop {
                    0 => String::new(),
                    s => format!(", drains {s} s before a stop"),
                };
                format!("tcp/{} ({what}) from {from}{drain}", h.port)
            }),
            control: ControlSummary {
                socket: config
                    .control
                    .socket_path()
                    .map(|p| p.display().to_string()),
                metrics: config.control.metrics.as_ref().map(|m| m.to_string()),
                watch_config: config.control.watch_config,
            },
            warnings: validate::warnings(config)
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

fn or_none(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// The summary's lines, without the generation (the caller's header says which policy).
impl fmt::Display for PolicySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {:<10} {:<8} {:<20} {:<34} gateway",
            "port", "role", "address", "device"
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "  {:<10} {:<8} {:<20} {:<34} {}{}",
                p.name,
                p.role,
                or_none(&p.address),
                p.device,
                or_none(&p.gateway),
                if p.neighbours > 0 {
                    format!(" ({} static neighbour(s))", p.neighbours)
                } else {
                    String::new()
                }
            )?;
            if let Some(t) = &p.tunnel {
                writeln!(f, "  {:<10} tunnel {t}; no NAT", "")?;
            }
        }
        writeln!(f, "  private:  {}", list_or_none(&self.private_prefixes))?;
        let s = &self.snat;
        let more = s.address_count.saturating_sub(s.addresses.len());
        writeln!(
            f,
            "  snat:     {} address(es): {}{}; ports {}; {} mapping, {} filtering{}{}",
            s.address_count,
            list_or_none(&s.addresses),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            s.port_range,
            s.mapping,
            s.filtering,
            if s.hairpinning { ", hairpinning" } else { "" },
            if s.routed { ", routed" } else { "" },
        )?;
        let ports = u64::from(s.ports_per_address);
        let sessions = self.sessions.max_sessions;
        if s.mapping == "endpoint-dependent" {
            writeln!(
                f,
                "  capacity: {ports} session(s) per address, protocol and remote endpoint; \
                 {sessions} in all (max_sessions); {} pooling",
                s.pooling
            )?;
        } else {
            writeln!(
                f,
                "  capacity: {ports} inside endpoint(s) per address and protocol ({} on {} \
                 address(es)); {sessions} session(s) in all (max_sessions); {} pooling",
                ports * s.address_count as u64,
                s.address_count,
                s.pooling
            )?;
        }
        for (name, r) in [("egress", &self.egress), ("ingress", &self.ingress)] {
            writeln!(
                f,
                "  {:<10}{} rule(s) ({} allow, {} deny), default {}",
                format!("{name}:"),
                r.rules,
                r.allow,
                r.deny,
                r.default
            )?;
        }
        writeln!(
            f,
            "  forwards: {} ({} public port(s)); static mappings: {}",
            self.forwards, self.forward_ports, self.statics
        )?;
        let t = self.sessions.timeouts;
        writeln!(
            f,
            "  sessions: max {}; timeouts tcp established {} s, transitory {} s, udp {} s, icmp {} s; {}{}; on reload: {}",
            self.sessions.max_sessions,
            t[0],
            t[1],
            t[2],
            t[3],
            if self.sessions.tcp_loose { "tcp loose" } else { "tcp strict (SYN first)" },
            self.sessions
                .mss_clamp
                .map(|m| format!(", mss clamp {m}"))
                .unwrap_or_default(),
            self.sessions.on_reload
        )?;
        writeln!(
            f,
            "  local:    icmp echo {}; health probe {}",
            if self.icmp_echo { "on" } else { "off" },
            or_none(&self.health_probe)
        )?;
        writeln!(
            f,
            "  control:  socket {}; metrics {}; watch config {}",
            or_none(&self.control.socket),
            or_none(&self.control.metrics),
            if self.control.watch_config {
                "on"
            } else {
                "off"
            }
        )?;
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_policy_summary() {
        let text = include_str!("../../../configs/example-policy.toml");
        let config = Config::parse(text, "example-policy.toml").unwrap();
        let policy = Policy::compile(&config, 7).unwrap();
        let s = PolicySummary::new(&config, &policy);
        assert_eq!(s.generation, 7);
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.egress.rules, 6);
        assert_eq!(s.egress.deny, 3);
        assert_eq!(s.ingress.default, "deny");
        assert_eq!(s.forwards, 2);
        assert_eq!(s.forward_ports, 7);
        assert_eq!(s.statics, 1);
        assert_eq!(s.snat.address_count, 5);
        assert_eq!(
            s.health_probe.as_deref(),
            Some("tcp/8080 (syn-ack) from 168.63.129.16/32")
        );
        let back: PolicySummary =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let text = s.to_string();
        for needle in [
            "lan",
            "203.0.113.2/24",
            "egress:   6 rule(s) (3 allow, 3 deny), default allow",
            "forwards: 2 (7 public port(s)); static mappings: 1",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }

    /// The capacity line says what holds a session in each mapping mode.
    #[test]
    fn capacity_per_address_and_mode() {
        let text = |nat: &str| {
            let file = format!(
                "{}\n[nat]\nport_range = \"2000-2999\"\n{nat}",
                crate::testing::BASE
            );
            let config = Config::parse(&file, "t.toml").unwrap();
            let policy = Policy::compile(&config, 1).unwrap();
            PolicySummary::new(&config, &policy).to_string()
        };
        let eim = text("");
        assert!(
            eim.contains("capacity: 1000 inside endpoint(s) per address and protocol (1000 on 1 address(es)); 1048576 session(s) in all (max_sessions); paired pooling"),
            "{eim}"
        );
        let edm = text("mapping = \"endpoint-dependent\"\npooling = \"arbitrary\"\n");
        assert!(
            edm.contains("capacity: 1000 session(s) per address, protocol and remote endpoint; 1048576 in all (max_sessions); arbitrary pooling"),
            "{edm}"
        );
    }
}

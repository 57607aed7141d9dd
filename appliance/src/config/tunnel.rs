//! A port's tunnel: what a port of role `gwlb` takes apart and puts back, behind a cloud's
//! gateway load balancer (docs/gwlb.md).
//!
//! ```toml
//! [[port]]
//! name = "gwlb"
//! role = "gwlb"
//! device = "0000:00:06.0"
//! address = "10.0.1.10/24"
//! tunnel = { kind = "geneve" }                    # AWS: GENEVE to UDP 6081
//!
//! [[port]]
//! name = "gwlb"
//! role = "gwlb"
//! device = "0000:00:06.0"
//! address = "10.1.0.10/24"
//! # Azure: two VXLAN tunnels; these are Azure's defaults and may be left out.
//! tunnel = { kind = "vxlan", internal = { port = 10800, vni = 800 },
//!            external = { port = 10801, vni = 801 } }
//! ```

use super::error::FieldError as E;
use super::{Config, Role};
use crate::packet::{geneve, Vni};
use serde::Deserialize;

/// The encapsulation a `gwlb` port's load balancer uses.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TunnelConfig {
    /// GENEVE (RFC 8926), AWS Gateway Load Balancer's: one tunnel, the options returned
    /// unchanged; a flow's side comes from the private prefixes.
    Geneve {
        /// The UDP port it arrives on (6081).
        #[serde(default = "geneve_port")]
        port: u16,
    },
    /// VXLAN (RFC 7348), Azure Gateway Load Balancer's: two tunnels; a packet arrives on one
    /// and leaves on the other, and the tunnel says its side.
    Vxlan {
        /// The internal tunnel: the consumer's side (inside).
        #[serde(default = "VxlanTunnel::internal")]
        internal: VxlanTunnel,
        /// The external tunnel: the internet's side (outside).
        #[serde(default = "VxlanTunnel::external")]
        external: VxlanTunnel,
    },
}

fn geneve_port() -> u16 {
    geneve::UDP_PORT
}

/// One of Azure's two tunnels: its UDP port and VNI (Azure's "identifier").
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VxlanTunnel {
    /// The UDP port.
    pub port: u16,
    /// The VNI (at most 2^24 - 1).
    pub vni: u32,
}

impl VxlanTunnel {
    /// Azure's default internal tunnel: port 10800, VNI 800.
    pub const fn internal() -> VxlanTunnel {
        VxlanTunnel {
            port: 10800,
            vni: 800,
        }
    }

    /// Azure's default external tunnel: port 10801, VNI 801.
    pub const fn external() -> VxlanTunnel {
        VxlanTunnel {
            port: 10801,
            vni: 801,
        }
    }

    /// The VNI, if it fits 24 bits.
    pub fn vni(&self) -> Option<Vni> {
        Vni::new(self.vni)
    }
}

impl TunnelConfig {
    /// `geneve` or `vxlan`.
    pub fn kind(&self) -> &'static str {
        match self {
            TunnelConfig::Geneve { .. } => "geneve",
            TunnelConfig::Vxlan { .. } => "vxlan",
        }
    }
}

/// The checks of the tunnel ports: each `gwlb` port has a tunnel and an address, no other
/// port has a tunnel, the tunnels' ports and VNIs make sense, and a file with `gwlb` ports
/// has no other kind of port and asks for no NAT (a tunnel port filters, it never
/// translates, and nothing leaves but into the tunnel).
pub(super) fn check(config: &Config, errors: &mut Vec<E>) {
    for (i, p) in config.port.iter().enumerate() {
        let at = |f: &str| format!("port[{i}].{f}");
        match (p.role, &p.tunnel) {
            (Role::Gwlb, None) => errors.push(E::new(
                at("tunnel"),
                "",
                "a gwlb port needs its load balancer's tunnel: tunnel = { kind = \"geneve\" } \
                 (AWS) or tunnel = { kind = \"vxlan\" } (Azure)",
            )),
            (Role::Gwlb, Some(t)) => check_tunnel(&at("tunnel"), t, errors),
            (_, Some(t)) => errors.push(E::new(
                at("tunnel"),
                t.kind(),
                format!(
                    "only a port of role \"gwlb\" has a tunnel (this one is \"{}\")",
                    p.role.name()
                ),
            )),
            (_, None) => {}
        }
        if p.role == Role::Gwlb && p.address.is_none() {
            errors.push(E::new(
                at("address"),
                "",
                "a gwlb port needs its address: the load balancer sends the tunnel to it",
            ));
        }
    }
    let Some(first) = config.port.iter().position(|p| p.role == Role::Gwlb) else {
        return;
    };
    if let Some(i) = config.port.iter().position(|p| p.role != Role::Gwlb) {
        errors.push(E::new(
            format!("port[{i}].role"),
            config.port[i].role.name(),
            format!(
                "port[{first}] is a gwlb port: behind a gateway load balancer every port is \
                 one (the appliance filters the tunnel and routes nothing else)"
            ),
        ));
        return;
    }
    let nat_off = "NAT is off behind a gateway load balancer (every port has role \"gwlb\"): \
                   a tunnel port filters, it never translates";
    let ingress = &config.ingress;
    for (field, count) in [
        ("nat.addresses", config.nat.addresses.len()),
        ("ingress.forward", ingress.forward.len()),
        ("ingress.static", ingress.statics.len()),
    ] {
        if count > 0 {
            errors.push(E::new(field, format!("{count} given"), nat_off));
        }
    }
}

fn check_tunnel(at: &str, t: &TunnelConfig, errors: &mut Vec<E>) {
    match t {
        TunnelConfig::Geneve { port } if *port == 0 => {
            errors.push(E::new(
                format!("{at}.port"),
                0,
                "must be a UDP port 1-65535",
            ));
        }
        TunnelConfig::Geneve { .. } => {}
        TunnelConfig::Vxlan { internal, external } => {
            for (which, v) in [("internal", internal), ("external", external)] {
                if v.port == 0 {
                    errors.push(E::new(
                        format!("{at}.{which}.port"),
                        0,
                        "must be a UDP port 1-65535",
                    ));
                }
                if v.vni().is_none() {
                    errors.push(E::new(
                        format!("{at}.{which}.vni"),
                        v.vni,
                        "must fit 24 bits (0-16777215)",
                    ));
                }
            }
            if internal.port == external.port {
                errors.push(E::new(
                    format!("{at}.external.port"),
                    external.port,
                    "is the internal tunnel's port too: the port tells the tunnels apart",
                ));
            }
            if internal.vni == external.vni {
                errors.push(E::new(
                    format!("{at}.external.vni"),
                    external.vni,
                    "is the internal tunnel's VNI too: each tunnel has its own",
                ));
            }
        }
    }
}

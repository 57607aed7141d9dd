//! What the pipeline takes a packet for, and what it tells a tracer as it decides.
//!
//! The classes are the design's (DESIGN.md, "What it decides for every packet"). The worker
//! does not record them: a [`Shard`](super::Shard) is generic over a [`Trace`], and the data
//! path's, [`NoTrace`], compiles every call away. `appliance explain` runs a shard with a
//! tracer that keeps what it is told, and renders it: the class, the rule that decided, the
//! translations, all as the pipeline decided them, never derived again.

use super::reason::Discard;
use crate::config::Role;
use crate::nat::Endpoint;
use crate::policy::{Decision, Forward, Policy};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Which side of the network a packet comes from: its port's role, or on a one-arm (`both`)
/// port, whether its source is private.
pub fn role(p: &Policy, in_port: u8, src: Ipv4Addr) -> Role {
    match p.ports.get(usize::from(in_port)).map(|x| x.role) {
        Some(Role::Inside) => Role::Inside,
        Some(Role::Both) if p.is_private(src) => Role::Inside,
        _ => Role::Outside,
    }
}

/// A source no packet from outside may carry: private (ours), or not a unicast host address
/// (RFC 1812 section 5.3.7 martians).
fn spoofed(p: &Policy, src: Ipv4Addr) -> bool {
    let o = src.octets();
    p.is_private(src)
        || o[0] == 0
        || o[0] == 127
        || o[0] >= 224
        || p.port_with_address(src).is_some()
}

/// The side a packet without a session comes from (its port's role, or on a one-arm port,
/// whether its source is private), or why its source cannot be on that side: from inside, a
/// source outside the private prefixes; from outside, a spoofed one.
#[inline(always)]
pub fn side_of(p: &Policy, in_port: u8, src: Ipv4Addr) -> Result<Role, Discard> {
    let side = role(p, in_port, src);
    match refused_source(p, side, src) {
        Some(why) => Err(why),
        None => Ok(side),
    }
}

/// Why a packet's source cannot be on `side`, if it cannot: see [`side_of`].
#[inline(always)]
pub fn refused_source(p: &Policy, side: Role, src: Ipv4Addr) -> Option<Discard> {
    match side {
        Role::Inside => (!p.is_private(src)).then_some(Discard::InvalidSource),
        _ => spoofed(p, src).then_some(Discard::SpoofedSource),
    }
}

/// What kind of packet the appliance takes a packet for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A new flow from inside, going out.
    Egress,
    /// A packet of an existing session, either way.
    Reply,
    /// An unsolicited new flow from outside.
    Ingress,
    /// From inside to a public address of the appliance.
    Hairpin,
    /// Addressed to the appliance itself.
    Local,
    /// An ICMP error about a session.
    Related,
    /// Malformed, spoofed, without a valid TCP state, or out of TTL.
    Invalid,
}

impl Class {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Egress => "egress",
            Class::Reply => "reply",
            Class::Ingress => "ingress",
            Class::Hairpin => "hairpin",
            Class::Local => "local",
            Class::Related => "related",
            Class::Invalid => "invalid",
        }
    }

    /// What it means, in words.
    pub fn meaning(self) -> &'static str {
        match self {
            Class::Egress => "a new flow from inside, going out",
            Class::Reply => "a packet of an existing session",
            Class::Ingress => "an unsolicited new flow from outside",
            Class::Hairpin => "from inside to a public address of the appliance",
            Class::Local => "addressed to the appliance itself",
            Class::Related => "an ICMP error about a session",
            Class::Invalid => "malformed, spoofed, without a valid TCP state or out of TTL",
        }
    }
}

/// Which rule set decided a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rules {
    /// `[egress]`: new flows from inside, hairpinned ones too.
    Egress,
    /// `[ingress]`: new flows from outside to a port forward or a static mapping.
    Ingress,
}

/// A translation a new flow gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Its source becomes a public endpoint of the SNAT pool.
    Snat {
        /// The public endpoint (ICMP: the identifier as the port).
        public: Endpoint,
    },
    /// A port forward takes it to an inside endpoint (DNAT).
    Forward(Forward),
    /// A static 1:1 mapping: `private` is seen outside as `public`.
    Static {
        /// The public address.
        public: Ipv4Addr,
        /// The inside address.
        private: Ipv4Addr,
    },
}

/// What the pipeline says about a packet as it decides, for whoever wants to know. Every
/// method does nothing unless a tracer says otherwise.
pub trait Trace {
    /// The packet is taken for `class`. Called as the pipeline learns it: a later, more
    /// precise class may follow (an ingress packet the appliance answers itself is local).
    #[inline(always)]
    fn class(&mut self, class: Class) {
        let _ = class;
    }

    /// Rule set `rules` decided a new flow as `decision` says.
    #[inline(always)]
    fn rule(&mut self, rules: Rules, decision: Decision) {
        let _ = (rules, decision);
    }

    /// A new session translates its packets as `translation` says.
    #[inline(always)]
    fn translation(&mut self, translation: Translation) {
        let _ = translation;
    }
}

/// The data path's tracer: it is told nothing, and costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl Trace for NoTrace {}

//! What the pipeline takes a packet for, and what it tells a tracer as it decides.
//!
//! The classes are the design's (DESIGN.md, "What it decides for every packet"). The worker
//! does not record them: a [`Shard`](super::Shard) is generic over a [`Trace`], and the data
//! path's, [`NoTrace`], compiles every call away. `appliance explain` runs a shard with a
//! tracer that keeps what it is told, and renders it: the class, the rule that decided, the
//! translations, all as the pipeline decided them, never derived again.

use crate::nat::Endpoint;
use crate::policy::{Decision, Forward};
use serde::Serialize;
use std::net::Ipv4Addr;

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

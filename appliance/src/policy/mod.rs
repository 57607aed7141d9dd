//! Policy: the immutable compiled [`Policy`] the workers read: addressing, rule sets, port
//! forwards, static mappings, SNAT and session settings, built from a checked
//! [`Config`](crate::config::Config) (the file's model and its checks live in
//! [`crate::config`]).
//!
//! The control thread parses and checks the file ([`crate::config::Config::load`]), compiles it with [`Policy::compile`] and publishes the result with `arc-swap`;
//! workers load the current snapshot once per burst (DESIGN.md, "Policy and the control
//! thread"). Nothing in a `Policy` changes after compilation; a reload builds a new one with
//! the next generation.
//!
//! What the pipeline asks of it, by packet class (DESIGN.md, "What it decides"):
//! - role of a packet on a `both` port: [`Policy::is_private`] on its addresses;
//! - egress (new flow from inside): [`Policy::egress`] `.check()` on the flow before SNAT,
//!   then [`Policy::statics`] `.public_of()` or the [`Policy::snat`] pool;
//! - ingress (new flow from outside): [`Policy::forwards`] `.lookup()` or
//!   [`Policy::statics`] `.private_of()`; none: drop (`no_forward`); else
//!   [`Policy::ingress`] `.check()` on the packet as sent (before DNAT);
//! - local: [`Policy::port_with_address`], [`Policy::local`];
//! - forwarding: [`Policy::next_hop`], [`Policy::ports`] (neighbours, ARP addresses);
//! - sessions: [`Policy::sessions`] (timeouts, limits, TCP strictness, reload behaviour) and
//!   [`Policy::generation`].

#![warn(missing_docs)]

mod compile;
pub mod matcher;
pub mod tables;

pub use matcher::{Decision, MatchKey, Rule, RuleSet, RuleSetStats};
pub use tables::{
    Forward, Forwards, HealthProbe, LocalServices, NextHop, PortAddressing, PrefixSet, Routes,
    StaticMaps, StaticNeighbour, Tunnel,
};

use crate::config::{FieldError, Filtering, Mapping, OnReload, Pooling, PortRange};
use crate::flow::Timeouts;
use std::net::Ipv4Addr;

/// Why a policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The configuration has errors (the same ones [`crate::config::Config::validate`] gives).
    #[error("invalid policy: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A rule set built in code has more rules than the matcher is sized for.
    #[error("{count} rules in one rule set: at most {max} are supported")]
    TooManyRules {
        /// Rules given.
        count: usize,
        /// The limit, [`crate::config::validate::MAX_RULES`].
        max: usize,
    },
    /// The rules' values cut one field into so many distinct sets of rules that its bitsets
    /// would pass the limit.
    #[error(
        "the rules' {field} values compile to more than {max_bytes} bytes of bitsets: \
         merge prefixes or port ranges, or split the rules"
    )]
    MatcherTooLarge {
        /// The rule field (`src`, `dst`, `src_ports`, ...).
        field: &'static str,
        /// The limit, [`matcher::MAX_FIELD_BYTES`].
        max_bytes: usize,
    },
}

/// The SNAT pool and the NAT behaviour of its mappings (RFC 4787).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnatPool {
    /// Public addresses, in file order. The NAT picks one per inside address (paired
    /// pooling, RFC 4787 REQ-2), or another when it is full under [`Pooling::Arbitrary`].
    /// Empty when nothing gives an address: egress then fails.
    pub addresses: Vec<Ipv4Addr>,
    /// Source ports to allocate from; workers take equal slices.
    pub ports: PortRange,
    /// Mapping behaviour (RFC 4787 section 4.1).
    pub mapping: Mapping,
    /// Filtering behaviour (RFC 4787 section 5).
    pub filtering: Filtering,
    /// Address pooling (RFC 4787 section 4.1).
    pub pooling: Pooling,
    /// Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8).
    pub hairpinning: bool,
}

/// How sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Idle timeouts per class, in seconds.
    pub timeouts: Timeouts,
    /// Session table capacity for the whole appliance.
    pub max_sessions: u32,
    /// Accept a non-SYN first packet for a new TCP session.
    pub tcp_loose: bool,
    /// Largest MSS to let through in a SYN.
    pub mss_clamp: Option<u16>,
    /// What a reload does to sessions admitted under an older generation.
    pub on_reload: OnReload,
}

/// A compiled policy: immutable, `Send + Sync`, published with `arc-swap`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Set by whoever compiles it (the control thread counts reloads). Sessions record the
    /// generation that admitted them; an older one is re-checked or kept per
    /// [`SessionSettings::on_reload`].
    pub generation: u64,
    /// Egress filter, matched on the flow as the inside host sent it (before SNAT).
    pub egress: RuleSet,
    /// Ingress filter for flows that reach a forward or static mapping, matched on the packet
    /// as the outside host sent it (before DNAT).
    pub ingress: RuleSet,
    /// Port forwards (DNAT).
    pub forwards: Forwards,
    /// Static 1:1 mappings.
    pub statics: StaticMaps,
    /// The SNAT pool.
    pub snat: SnatPool,
    /// Session keeping.
    pub sessions: SessionSettings,
    /// The private network: in one-arm mode a packet whose source is in it comes from inside.
    pub private: PrefixSet,
    /// Services on the appliance's addresses.
    pub local: LocalServices,
    /// Per port, in file order (the DPDK port order): addressing, neighbours, ARP addresses.
    pub ports: Vec<PortAddressing>,
    /// [`Policy::next_hop`] precomputed from `ports` when the policy is compiled.
    routes: Routes,
}

impl Policy {
    /// Whether `addr` is in the private prefixes.
    #[inline]
    pub fn is_private(&self, addr: Ipv4Addr) -> bool {
        self.private.contains(addr)
    }

    /// The port whose own address is `addr` (a packet to it is for the appliance).
    pub fn port_with_address(&self, addr: Ipv4Addr) -> Option<usize> {
        self.ports
            .iter()
            .position(|p| p.address.is_some_and(|n| n.addr() == addr))
    }

    /// Where to send a packet for `dst`: out of the port whose subnet holds it, straight to
    /// it; otherwise to the gateway of the first inside (for private destinations) or outside
    /// port that has one (a `both` port serves either). `None`: no route.
    ///
    /// Five compares without a branch per packet: the routes are compiled with the policy into
    /// a table of address intervals ([`Routes`]).
    #[inline]
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes.lookup(dst)
    }
}

#[cfg(test)]
mod tests;

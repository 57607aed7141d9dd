//! Why a packet was dropped: one named reason per counter.
//!
//! Malformed packets carry the packet layer's own reason ([`crate::packet::Error`], e.g.
//! `ipv4_bad_checksum`); everything the pipeline decides has a reason here.

use super::class::Class;
use crate::packet::Error as Malformed;

/// Drop reasons the pipeline decides (the packet layer's are in [`crate::packet::Error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Discard {
    /// An EtherType the appliance does not handle.
    NotIp,
    /// IPv6: classified and counted, not routed or translated.
    Ipv6,
    /// A frame whose destination MAC is another host's.
    NotForUs,
    /// A non-first IPv4 fragment: it carries no ports to find its session by (the appliance
    /// does not reassemble).
    Fragment,
    /// A protocol without ports other than ICMP echo (GRE, ESP, ...): not translated.
    ProtocolUnsupported,
    /// TTL would reach zero; an ICMP time exceeded went back when possible.
    TtlExpired,
    /// No port or gateway reaches the destination.
    NoRoute,
    /// The next hop's MAC is not known yet; its resolution was asked for.
    NeighbourUnresolved,
    /// A packet from outside with an inside or martian source address.
    SpoofedSource,
    /// A packet from inside whose source is not an inside address.
    InvalidSource,
    /// A TCP segment other than a SYN without a session (strict TCP: `tcp_loose = false`).
    TcpNoSession,
    /// Egress policy denied the new flow.
    EgressDenied,
    /// Ingress policy denied the new flow to a forward or static mapping.
    IngressDenied,
    /// An unsolicited packet from outside that no forward, static mapping or mapping admits.
    NoForward,
    /// No free session and none expired to reuse.
    SessionTableFull,
    /// The worker's ports on the public address are all in use.
    NatPortExhausted,
    /// No SNAT address is configured.
    NoNatAddress,
    /// A session admitted under an older policy is denied by the new one (recheck mode).
    PolicyRecheckDeny,
    /// Addressed to the appliance, but not to a service it runs.
    LocalUnhandled,
    /// Addressed to the appliance's health probe from a source it does not answer.
    LocalDenied,
    /// An ICMP error about no known session.
    IcmpErrorNoSession,
    /// A packet from inside to a public address while hairpinning is off.
    HairpinDisabled,
    /// ARP that is neither for us nor news about a neighbour.
    ArpIgnored,
    /// A packet from inside to another private address: the appliance carries traffic
    /// between inside and outside, not between inside hosts.
    PrivateDestination,
    /// A host reaching itself through its own public endpoint (hairpin to self), which
    /// would need a session whose two tuples are the same.
    HairpinToSelf,
    /// The lookup found a session that was gone when its packet came to use it. Not
    /// expected (a burst's lookups are finished against the table as it is): counted so
    /// that it would show, never taken for another session's packet.
    SessionGone,
    /// A VLAN-tagged frame that would be forwarded. Ports have no VLAN settings yet, so the
    /// tag a frame arrived with must not leave on another port: the appliance answers tagged
    /// frames addressed to itself, and forwards none (nor says their TTL ran out).
    VlanTransit,
    /// A packet for, or from, a port index the worker does not have. Not expected (ports
    /// come from the configuration): counted so that it would show.
    UnknownPort,
    /// A packet another worker handed over that this one would hand over again: the two
    /// disagree on its owner. Dropped rather than passed back and forth.
    HandoffLoop,
    /// A VXLAN packet to one of a `gwlb` port's tunnels with a VNI that is not the tunnel's.
    TunnelUnknownVni,
    /// A GENEVE packet with a critical option (RFC 8926 section 3.5: an endpoint that does
    /// not know one drops the packet; the appliance knows none, it carries them back).
    TunnelCriticalOption,
    /// A GENEVE control packet (the O bit): not data to filter and return.
    TunnelOam,
}

impl Discard {
    /// Every reason, in counter order.
    pub const ALL: [Discard; 32] = [
        Discard::NotIp,
        Discard::Ipv6,
        Discard::NotForUs,
        Discard::Fragment,
        Discard::ProtocolUnsupported,
        Discard::TtlExpired,
        Discard::NoRoute,
        Discard::NeighbourUnresolved,
        Discard::SpoofedSource,
        Discard::InvalidSource,
        Discard::TcpNoSession,
        Discard::EgressDenied,
        Discard::IngressDenied,
        Discard::NoForward,
        Discard::SessionTableFull,
        Discard::NatPortExhausted,
        Discard::NoNatAddress,
        Discard::PolicyRecheckDeny,
        Discard::LocalUnhandled,
        Discard::LocalDenied,
        Discard::IcmpErrorNoSession,
        Discard::HairpinDisabled,
        Discard::ArpIgnored,
        Discard::PrivateDestination,
        Discard::HairpinToSelf,
        Discard::SessionGone,
        Discard::VlanTransit,
        Discard::UnknownPort,
        Discard::HandoffLoop,
        Discard::TunnelUnknownVni,
        Discard::TunnelCriticalOption,
        Discard::TunnelOam,
    ];

    /// The counter name.
    pub const fn name(self) -> &'static str {
        match self {
            Discard::NotIp => "not_ip",
            Discard::Ipv6 => "ipv6",
            Discard::NotForUs => "not_for_us",
            Discard::Fragment => "ipv4_non_first_fragment",
            Discard::ProtocolUnsupported => "protocol_unsupported",
            Discard::TtlExpired => "ttl_expired",
            Discard::NoRoute => "no_route",
            Discard::NeighbourUnresolved => "neighbour_unresolved",
            Discard::SpoofedSource => "spoofed_source",
            Discard::InvalidSource => "invalid_source",
            Discard::TcpNoSession => "tcp_no_session",
            Discard::EgressDenied => "egress_denied",
            Discard::IngressDenied => "ingress_denied",
            Discard::NoForward => "no_forward",
            Discard::SessionTableFull => "session_table_full",
            Discard::NatPortExhausted => "nat_port_exhausted",
            Discard::NoNatAddress => "no_nat_address",
            Discard::PolicyRecheckDeny => "policy_recheck_deny",
            Discard::LocalUnhandled => "local_unhandled",
            Discard::LocalDenied => "local_denied",
            Discard::IcmpErrorNoSession => "icmp_error_no_session",
            Discard::HairpinDisabled => "hairpin_disabled",
            Discard::ArpIgnored => "arp_ignored",
            Discard::PrivateDestination => "private_destination",
            Discard::HairpinToSelf => "hairpin_to_self",
            Discard::SessionGone => "session_gone",
            Discard::VlanTransit => "vlan_transit",
            Discard::UnknownPort => "unknown_port",
            Discard::HandoffLoop => "handoff_loop",
            Discard::TunnelUnknownVni => "tunnel_unknown_vni",
            Discard::TunnelCriticalOption => "tunnel_critical_option",
            Discard::TunnelOam => "tunnel_oam",
        }
    }
}

/// Any drop reason: the packet layer's or the pipeline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The packet failed a validity check.
    Malformed(Malformed),
    /// The pipeline decided.
    Pipeline(Discard),
}

impl Reason {
    /// Number of distinct reasons (counter array length).
    pub const COUNT: usize = Malformed::COUNT + Discard::ALL.len();

    /// Counter index: the packet layer's reasons first, then the pipeline's.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Reason::Malformed(e) => e.index(),
            Reason::Pipeline(d) => Malformed::COUNT + d as usize,
        }
    }

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Malformed(e) => e.name(),
            Reason::Pipeline(d) => d.name(),
        }
    }

    /// The class a drop for this reason gives a packet, whatever the pipeline was deciding:
    /// invalid (malformed, not for us, spoofed, a TCP segment without a session, out of TTL),
    /// or local (addressed to the appliance, which does not answer it). `None`: the class is
    /// the one the pipeline was deciding when it dropped the packet.
    pub fn class(self) -> Option<Class> {
        match self {
            Reason::Malformed(_)
            | Reason::Pipeline(
                Discard::NotIp
                | Discard::Ipv6
                | Discard::NotForUs
                | Discard::Fragment
                | Discard::ProtocolUnsupported
                | Discard::TtlExpired
                | Discard::SpoofedSource
                | Discard::InvalidSource
                | Discard::TcpNoSession
                | Discard::TunnelUnknownVni
                | Discard::TunnelCriticalOption
                | Discard::TunnelOam,
            ) => Some(Class::Invalid),
            Reason::Pipeline(Discard::LocalUnhandled | Discard::LocalDenied) => Some(Class::Local),
            Reason::Pipeline(_) => None,
        }
    }

    /// The reason with counter index `i`.
    pub fn from_index(i: usize) -> Option<Reason> {
        if i < Malformed::COUNT {
            Malformed::ALL.get(i).copied().map(Reason::Malformed)
        } else {
            Discard::ALL
                .get(i - Malformed::COUNT)
                .copied()
                .map(Reason::Pipeline)
        }
    }
}

impl From<Malformed> for Reason {
    fn from(e: Malformed) -> Self {
        Reason::Malformed(e)
    }
}

impl From<Discard> for Reason {
    fn from(d: Discard) -> Self {
        Reason::Pipeline(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_names_are_unique_and_round_trip() {
        let mut names = std::collections::HashSet::new();
        for i in 0..Reason::COUNT {
            let r = Reason::from_index(i).expect("every index names a reason");
            assert_eq!(r.index(), i);
            assert!(names.insert(r.name()), "duplicate name {}", r.name());
        }
        assert!(Reason::from_index(Reason::COUNT).is_none());
        for (i, d) in Discard::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i, "ALL is in declaration order");
        }
    }
}

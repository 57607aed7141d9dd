//! What stage 1 ([`super::classify`]) learns about a packet before its session is looked up:
//! the `Meta` the rest of the pipeline reads instead of the headers (but to rewrite them).

use crate::flow::{FlowKey, Side};
use crate::packet::translate::Transport;
use crate::packet::{Common, IpProtocol, Ipv4Packet, Offsets, TcpFlags};

/// What stage 1 learned about a packet: 32 bytes, so passing it between stages is two
/// vector moves. (The VLAN tags are not kept: only replies the appliance builds need them,
/// and those read them again from the frame, whose Ethernet header nothing changed.)
///
/// A packet that came in a load balancer's tunnel is its inner packet here (`key` and `at`
/// are the inner packet's, the key in the tunnel's network), and `via` says which tunnel,
/// `outer` where its outer IPv4 and UDP headers lie: what sending it back needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub key: FlowKey,
    pub at: Offsets,
    pub kind: Kind,
    pub tcp_flags: TcpFlags,
    pub icmp_type: u8,
    pub via: Via,
    pub outer: [u8; 2],
}

// Two vector moves, tunnel or not.
const _: () = assert!(size_of::<Meta>() == 32);

/// The tunnel a packet came in, on a `gwlb` port. Set by stage 1 on tunnel ports only
/// (elsewhere the fast path never reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    /// Not in a tunnel: on a `gwlb` port, a packet for the appliance itself or nobody's.
    Plain,
    /// GENEVE: it goes back in the same tunnel; its side comes from the private prefixes.
    Geneve,
    /// VXLAN, Azure's internal tunnel: from the consumer's side (inside); it goes back on
    /// the external one.
    Internal,
    /// VXLAN, Azure's external tunnel: from the internet's side (outside); it goes back on
    /// the internal one.
    External,
}

impl Via {
    /// Whether the packet came in a tunnel.
    #[inline(always)]
    pub fn tunnelled(self) -> bool {
        self != Via::Plain
    }

    /// Whether a packet that came this way may use a session's key of `side`: on Azure's
    /// tunnels, only the key of the tunnel's own side (a packet of the consumer's flow
    /// arriving on the external tunnel is forged). GENEVE's one tunnel carries both.
    #[inline(always)]
    pub fn may_use(self, side: Side) -> bool {
        match self {
            Via::Internal => side == Side::Inside,
            Via::External => side == Side::Outside,
            Via::Plain | Via::Geneve => true,
        }
    }
}

impl Meta {
    /// Where the IPv4 header of an untagged frame starts: a packet whose header starts
    /// elsewhere came with VLAN tags.
    pub const UNTAGGED_L3: u16 = crate::packet::ethernet::HEADER_LEN as u16;

    /// Whether the frame came with VLAN tags.
    #[inline(always)]
    pub fn tagged(&self) -> bool {
        self.at.l3 != Self::UNTAGGED_L3
    }

    /// Whether forwarding the packet would take its TTL to 0 (RFC 1812 section 5.3.1): it
    /// is answered with time exceeded instead. `bytes` is the frame stage 1 validated.
    #[inline(always)]
    pub fn ttl_runs_out(&self, bytes: &[u8]) -> bool {
        let ip = Ipv4Packet::new_unchecked(&bytes[self.at.ip()]);
        ip.ttl() <= 1
    }

    /// Stage 1's facts of a common frame ([`common_ipv4`]), written in place: the same as
    /// [`Shard::classify`] finds.
    #[inline(always)]
    pub fn set_common(&mut self, c: &Common) {
        let (kind, tcp_flags, protocol) = if c.tcp {
            (Kind::TCP, c.tcp_flags, IpProtocol::TCP)
        } else {
            (Kind::UDP, TcpFlags(0), IpProtocol::UDP)
        };
        self.key = FlowKey::from_raw(c.src_addr, c.dst_addr, c.src_port, c.dst_port, protocol);
        self.at = Offsets {
            l3: Common::L3_OFFSET as u16,
            l4: Common::L4_OFFSET as u16,
            end: c.l3_end as u16,
        };
        self.kind = kind;
        self.tcp_flags = tcp_flags;
        self.icmp_type = 0;
    }
}

/// What a packet is, as far as the pipeline cares: a packet of a session kind (TCP, UDP,
/// ICMP echo: its [`Transport`], which is also what a session's translation changes in it),
/// or one that has no session.
///
/// One byte: the transport's own values are a session kind's, so the fast path hands the
/// kind to the translation as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// TCP, UDP or ICMP echo (never [`Transport::Other`]).
    Session(Transport),
    /// An ICMP error.
    IcmpError,
    /// Any other ICMP message.
    IcmpOther,
    /// An IP protocol without sessions (neither TCP, UDP nor ICMP).
    OtherProto,
    /// ARP.
    Arp,
}

impl Kind {
    /// TCP.
    pub const TCP: Kind = Kind::Session(Transport::Tcp);
    /// UDP.
    pub const UDP: Kind = Kind::Session(Transport::Udp);
    /// An ICMP echo request or reply.
    pub const ICMP_ECHO: Kind = Kind::Session(Transport::IcmpEcho);

    /// Whether packets of this kind belong to sessions (and are looked up in stage 2).
    #[inline(always)]
    pub fn has_session(self) -> bool {
        matches!(self, Kind::Session(_))
    }

    /// What a session's translation changes in a packet of this kind.
    #[inline(always)]
    pub fn transport(self) -> Transport {
        match self {
            Kind::Session(t) => t,
            _ => Transport::Other,
        }
    }
}

pub(super) const EMPTY_META: Meta = Meta {
    key: FlowKey::from_raw(0, 0, 0, 0, IpProtocol::of(0)),
    at: Offsets {
        l3: 0,
        l4: 0,
        end: 0,
    },
    kind: Kind::OtherProto,
    tcp_flags: TcpFlags(0),
    icmp_type: 0,
    via: Via::Plain,
    outer: [0; 2],
};

//! Stage 1: what the pipeline learns about a packet before its session is looked up. Each
//! frame is parsed and validated once, the frame checked to be for us, its owner decided
//! (a packet of another worker's session is handed over), and its session key built; the
//! rest of the pipeline reads the [`Meta`], never the headers again, but to rewrite them.

use super::action::Disposition;
use super::class::Trace;
use super::env::Env;
use super::reason::Discard;
use super::shard::Shard;
use crate::flow::FlowKey;
use crate::packet::translate::Transport;
use crate::packet::{
    common_ipv4, icmp, parse_frame, Common, IcmpMessage, IpProtocol, Ipv4Packet, Offsets, TcpFlags,
    L3, L4,
};

/// What stage 1 learned about a packet: 32 bytes, so passing it between stages is two
/// vector moves. (The VLAN tags are not kept: only replies the appliance builds need them,
/// and those read them again from the frame, whose Ethernet header nothing changed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub key: FlowKey,
    pub at: Offsets,
    pub kind: Kind,
    pub tcp_flags: TcpFlags,
    pub icmp_type: u8,
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
};

impl<T: Trace> Shard<T> {
    /// The common frame (untagged IPv4 TCP or UDP without options, unicast to our MAC
    /// `ours`): stage 1 reads it straight into its [`Meta`], which is what
    /// [`Shard::classify`] would give ([`common_ipv4`] is [`parse_frame`]'s own fast path).
    #[inline(always)]
    pub(super) fn common(&self, ours: Option<[u8; 6]>, bytes: &[u8]) -> Option<Common> {
        let c = common_ipv4(bytes, &self.rx_caps)?;
        // A group address is never ours: the general path drops IPv4 sent to one.
        let unicast = ours.is_some_and(|m| m[0] & 1 == 0);
        (unicast && bytes.first_chunk::<6>() == ours.as_ref()).then_some(c)
    }

    /// Stage 1 for one packet: parse and validate, check the frame is for us, decide the
    /// owner. `Err` carries the final action (a drop, or a handoff).
    #[inline(never)]
    pub(super) fn classify(
        &mut self,
        env: &Env<'_>,
        in_port: u8,
        bytes: &[u8],
    ) -> Result<Meta, Disposition> {
        let parsed = parse_frame(bytes, &self.rx_caps).map_err(|e| self.discard(e))?;
        // Unicast frames must be for this port; broadcast and multicast frames carry ARP only:
        // an IPv4 packet received as a link-layer broadcast or multicast is never forwarded
        // (RFC 1812 section 5.3.4) nor answered.
        let dst_mac = &bytes[..6];
        let group = dst_mac[0] & 1 != 0;
        if !group {
            let ours = env
                .macs
                .get(usize::from(in_port))
                .is_some_and(|m| m.0 == *dst_mac);
            if !ours {
                return Err(self.discard(Discard::NotForUs));
            }
        }
        let l3 = parsed.l3_offset() as u16;
        let m = match parsed.l3 {
            L3::Ipv4(_) if group => return Err(self.discard(Discard::NotForUs)),
            L3::Ipv4(m) => m,
            L3::Arp => {
                return Ok(Meta {
                    at: Offsets {
                        l3,
                        ..Offsets::default()
                    },
                    kind: Kind::Arp,
                    ..EMPTY_META
                })
            }
            L3::Ipv6(_) => return Err(self.discard(Discard::Ipv6)),
            L3::Other(_) => return Err(self.discard(Discard::NotIp)),
        };
        let t = m.tuple;
        let (kind, tcp_flags, icmp_type) = match m.l4 {
            L4::Tcp(f) => (Kind::TCP, f, 0),
            L4::Udp => (Kind::UDP, TcpFlags(0), 0),
            L4::Icmp(msg) => {
                let ty = u8::from(msg);
                let kind = match msg {
                    IcmpMessage::EchoRequest | IcmpMessage::EchoReply => Kind::ICMP_ECHO,
                    m if m.is_error() => Kind::IcmpError,
                    _ => Kind::IcmpOther,
                };
                (kind, TcpFlags(0), ty)
            }
            L4::Fragment => return Err(self.discard(Discard::Fragment)),
            L4::Other => (Kind::OtherProto, TcpFlags(0), 0),
        };
        let key = FlowKey::of(&t);
        let meta = Meta {
            key,
            at: Offsets {
                l3,
                l4: m.l4_offset() as u16,
                end: m.l3_end() as u16,
            },
            kind,
            tcp_flags,
            icmp_type,
        };
        if self.sharding.workers() > 1 {
            let owner = self.owner(env, bytes, &meta);
            if owner != usize::from(self.worker) {
                self.counters.bump_handoff();
                return Err(Disposition::Handoff(owner as u16));
            }
        }
        Ok(meta)
    }

    /// The worker that owns the session of a packet with key `k`.
    pub(super) fn owner_of_key(&self, env: &Env<'_>, k: &FlowKey) -> usize {
        self.sharding.of_packet(
            env.policy,
            self.snat.addresses(),
            k.protocol(),
            (k.src_addr(), k.src_port()),
            (k.dst_addr(), k.dst_port()),
        )
    }

    /// The worker that owns a packet's session.
    fn owner(&self, env: &Env<'_>, bytes: &[u8], meta: &Meta) -> usize {
        match meta.kind {
            Kind::Session(_) => self.owner_of_key(env, &meta.key),
            Kind::IcmpError => {
                // The owner of the quoted packet's reply.
                let quoted = bytes
                    .get(meta.at.transport())
                    .and_then(|icmp_bytes| icmp::Packet::new_checked(icmp_bytes).ok())
                    .and_then(|p| p.quote().ok().and_then(|q| q.five_tuple().ok()));
                match quoted {
                    Some(q) => self.sharding.of_packet(
                        env.policy,
                        self.snat.addresses(),
                        q.protocol,
                        (q.dst_addr, q.dst_port),
                        (q.src_addr, q.src_port),
                    ),
                    None => usize::from(self.worker),
                }
            }
            // Stateless: answered by whoever received it.
            Kind::Arp | Kind::IcmpOther | Kind::OtherProto => usize::from(self.worker),
        }
    }
}

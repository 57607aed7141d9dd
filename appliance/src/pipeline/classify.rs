//! Stage 1: what a packet is, before its session is looked up. Each frame is parsed and
//! validated once, checked to be for us, its owner decided (a packet of another worker's
//! session is handed over) and its session key built into a `Meta`. Here too: which side
//! of the network a packet without a session comes from, and whether its source may be
//! there, which the slow path and the tagged path both ask.

use super::action::Disposition;
use super::class::Trace;
use super::env::Env;
use super::meta::{Kind, Meta, EMPTY_META};
use super::reason::Discard;
use super::shard::Shard;
use crate::config::Role;
use crate::flow::FlowKey;
use crate::packet::{
    common_ipv4, icmp, parse_frame, Common, IcmpMessage, Ipv4Meta, Offsets, TcpFlags, L3, L4,
};
use crate::policy::{Policy, Tunnel};
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

    /// Stage 1 for one packet: parse and validate, check the frame is for us, take a tunnel
    /// packet apart (on a port with a `tunnel`), decide the owner. `Err` carries the final
    /// action (a drop, or a handoff).
    #[inline(never)]
    pub(super) fn classify(
        &mut self,
        env: &Env<'_>,
        in_port: u8,
        tunnel: Option<&Tunnel>,
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
        if let (Some(t), false) = (tunnel, group) {
            if let Some(inner) = self.decapsulate(env, in_port, t, bytes, &parsed) {
                return inner;
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
        let meta = self.ipv4_meta(&m, l3)?;
        if self.sharding.workers() > 1 {
            let owner = self.owner(env, bytes, &meta);
            if owner != usize::from(self.worker) {
                self.counters.bump_handoff();
                return Err(Disposition::Handoff(owner as u16));
            }
        }
        Ok(meta)
    }

    /// What stage 1 keeps of an IPv4 packet whose header is at `l3`: its key, offsets and
    /// kind. `Err`: a non-first fragment, dropped.
    pub(super) fn ipv4_meta(&mut self, m: &Ipv4Meta, l3: u16) -> Result<Meta, Disposition> {
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
        Ok(Meta {
            key: FlowKey::of(&m.tuple),
            at: Offsets {
                l3,
                l4: m.l4_offset() as u16,
                end: m.l3_end() as u16,
            },
            kind,
            tcp_flags,
            icmp_type,
            ..EMPTY_META
        })
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

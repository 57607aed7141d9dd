//! The slow path: a packet without a session. Classification (egress, ingress, hairpin,
//! local), policy, NAT allocation and session creation, then the same send as the fast path.

use super::buf::PacketBuf;
use super::env::Env;
use super::reason::Discard;
use super::shard::{release, tag, Disposition, Kind, Meta, Shard};
use crate::config::Role;
use crate::config::{Action, Filtering, Mapping};
use crate::flow::{CreateError, FlowKey, Hit, NewSession, Session, Side, TcpState};
use crate::nat::{Snat, SnatError};
use crate::packet::IpProtocol;
use crate::policy::{MatchKey, Policy};
use std::net::Ipv4Addr;

/// Which side of the network a packet comes from: its port's role, or on a one-arm (`both`)
/// port, whether its source is private.
pub(super) fn role(p: &Policy, in_port: u8, src: Ipv4Addr) -> Role {
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

/// Whether `addr` is one of the appliance's public addresses (pool, forward or static).
fn is_public(p: &Policy, snat: &Snat, addr: Ipv4Addr) -> bool {
    snat.is_pool_address(addr)
        || p.forwards.has_address(addr)
        || p.statics.private_of(addr).is_some()
}

/// Whether a packet may open a session: TCP, UDP, or an ICMP echo request (an echo reply
/// without a session is not a new flow).
fn opens_flow(meta: &Meta) -> bool {
    matches!(meta.kind, Kind::Tcp | Kind::Udp)
        || (meta.kind == Kind::IcmpEcho && meta.icmp_type == 8)
}

/// The policy match key of a packet as it was sent.
fn match_key(meta: &Meta) -> MatchKey {
    let k = &meta.key;
    let icmp = k.protocol() == IpProtocol::Icmp;
    MatchKey {
        proto: k.protocol(),
        src: k.src_addr(),
        dst: k.dst_addr(),
        src_port: if icmp { 0 } else { k.src_port() },
        dst_port: if icmp { 0 } else { k.dst_port() },
        icmp_type: icmp.then_some(meta.icmp_type),
    }
}

/// The key of packets from `src` to `dst`. For ICMP echo the identifier stands for both
/// ports: `src`'s "port" is taken for packets we receive with the sender's identifier, and
/// [`key_to`] takes `dst`'s for packets that carry the identifier we gave (replies to our
/// translated endpoint).
fn key(proto: IpProtocol, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> FlowKey {
    if proto == IpProtocol::Icmp {
        FlowKey::icmp_echo(src.0, dst.0, src.1)
    } else {
        FlowKey::new(src.0, dst.0, src.1, dst.1, proto)
    }
}

/// The key of packets from `src` to our public endpoint `dst` (for ICMP echo, the identifier
/// is the one we mapped to: `dst`'s).
fn key_to(proto: IpProtocol, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> FlowKey {
    if proto == IpProtocol::Icmp {
        FlowKey::icmp_echo(src.0, dst.0, dst.1)
    } else {
        FlowKey::new(src.0, dst.0, src.1, dst.1, proto)
    }
}

/// Hints the CPU to load what creating an egress session for `key` (a packet that missed)
/// will touch that nothing loaded yet: the index bucket of its outside key, as SNAT will most
/// likely make it ([`Snat::predict`]). Nothing for a packet that will not open an egress
/// session; a wrong guess costs one wasted prefetch.
#[inline]
pub(super) fn prefetch_new_session(shard: &Shard, p: &Policy, key: &FlowKey) {
    let src = key.src_addr();
    if !p.is_private(src) {
        return;
    }
    let proto = key.protocol();
    let inside = (src, key.src_port());
    let public = match static_public(p, inside) {
        Some(public) => Some(public),
        None => shard.snat.predict(proto, inside, p.snat.mapping),
    };
    if let Some(public) = public {
        let remote = (key.dst_addr(), key.dst_port());
        shard.table.prefetch_insert(&key_to(proto, remote, public));
    }
}

/// The public endpoint of an inside endpoint with a static (1:1) mapping: the mapped address,
/// the port kept.
fn static_public(p: &Policy, inside: (Ipv4Addr, u16)) -> Option<(Ipv4Addr, u16)> {
    p.statics
        .public_of(inside.0)
        .map(|public| (public, inside.1))
}

/// What a public endpoint was taken with, to give back if the session is not created.
#[derive(Clone, Copy)]
struct Taken {
    tag: u8,
    proto: IpProtocol,
    inside: (Ipv4Addr, u16),
    public: (Ipv4Addr, u16),
    remote: Ipv4Addr,
}

impl Taken {
    fn none() -> Self {
        Taken {
            tag: tag::NONE,
            proto: IpProtocol::of(0),
            inside: (Ipv4Addr::UNSPECIFIED, 0),
            public: (Ipv4Addr::UNSPECIFIED, 0),
            remote: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn undo(&self, snat: &mut Snat) {
        let Some((mapping, contacted)) = tag::held(self.tag) else {
            return;
        };
        snat.release(
            self.proto,
            self.inside,
            self.public,
            self.remote,
            mapping,
            contacted,
        );
    }
}

impl Shard {
    /// Whether `dst` is an address of the appliance that a packet arriving on `in_port` may
    /// reach: from inside, any of its addresses; from outside, the public (pool) addresses
    /// and the receiving port's own address, never the inside addresses.
    pub(super) fn is_local(&self, p: &Policy, in_port: u8, dst: Ipv4Addr) -> bool {
        if self.snat.is_pool_address(dst) {
            return true;
        }
        match p.port_with_address(dst) {
            None => false,
            Some(port) => {
                port == usize::from(in_port)
                    || p.ports.get(usize::from(in_port)).map(|x| x.role) == Some(Role::Inside)
            }
        }
    }

    /// A packet of this worker's with no session.
    pub(super) fn miss<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = env.policy;
        let (src, dst) = (meta.key.src_addr(), meta.key.dst_addr());
        match role(p, in_port, src) {
            Role::Inside => {
                if !p.is_private(src) {
                    return self.discard(Discard::InvalidSource);
                }
                if is_public(p, &self.snat, dst) {
                    return self.hairpin(env, now, in_port, pkt, meta);
                }
                if p.port_with_address(dst).is_some() {
                    return self.local(env, in_port, pkt, meta);
                }
                if p.is_private(dst) {
                    // Inside to inside is not the NAT's to carry (nor to translate).
                    return self.discard(Discard::PrivateDestination);
                }
                self.egress(env, now, in_port, pkt, meta)
            }
            _ => {
                if spoofed(p, src) {
                    return self.discard(Discard::SpoofedSource);
                }
                self.ingress(env, now, in_port, pkt, meta)
            }
        }
    }

    /// The TCP state a new session starts in, or `None` when the packet may not open one
    /// (strict mode: only a SYN without ACK).
    fn opening(&self, p: &Policy, meta: &Meta) -> Option<TcpState> {
        if meta.kind != Kind::Tcp {
            return Some(TcpState::Closed);
        }
        TcpState::open(meta.tcp_flags, p.sessions.tcp_loose)
    }

    /// A new flow from inside to the outside: egress policy, SNAT, session.
    fn egress<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = env.policy;
        if !opens_flow(meta) {
            // An echo reply without a session is not a new flow.
            return self.discard(Discard::ProtocolUnsupported);
        }
        let Some(tcp) = self.opening(p, meta) else {
            return self.discard(Discard::TcpNoSession);
        };
        if p.egress.check(&match_key(meta)).action == Action::Deny {
            return self.discard(Discard::EgressDenied);
        }
        if meta.ttl_runs_out(pkt.bytes()) {
            return self.time_exceeded(env, in_port, pkt, meta);
        }
        let k = meta.key;
        let proto = k.protocol();
        let inside = (k.src_addr(), k.src_port());
        let remote = (k.dst_addr(), k.dst_port());
        let taken = match self.public_for(p, proto, inside, remote.0) {
            Ok(t) => t,
            Err(d) => return self.discard(d),
        };
        let outside = key_to(proto, remote, taken.public);
        self.create(
            env,
            now,
            in_port,
            pkt,
            meta,
            k,
            outside,
            Side::Inside,
            tcp,
            taken,
        )
    }

    /// The public endpoint of an inside endpoint for a new session: its static mapping (port
    /// kept), else SNAT from the pool.
    #[inline]
    fn public_for(
        &mut self,
        p: &Policy,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        remote: Ipv4Addr,
    ) -> Result<Taken, Discard> {
        if let Some(public) = static_public(p, inside) {
            return Ok(Taken {
                public,
                ..Taken::none()
            });
        }
        let mapping = p.snat.mapping;
        match self.snat.acquire(proto, inside, remote, mapping) {
            Ok(public) => Ok(Taken {
                tag: if mapping == Mapping::EndpointIndependent {
                    tag::mapping(self.snat.counts_contacts())
                } else {
                    tag::POOL
                },
                proto,
                inside,
                public,
                remote,
            }),
            Err(SnatError::Exhausted) => Err(Discard::NatPortExhausted),
            Err(SnatError::NoAddress) => Err(Discard::NoNatAddress),
            Err(SnatError::Protocol) => Err(Discard::ProtocolUnsupported),
        }
    }

    /// The private endpoint behind public endpoint `public` for a new flow from `remote`: a
    /// port forward's target, a static mapping's host (port kept), or the inside endpoint of
    /// an endpoint-independent mapping `filtering` lets `remote` reach. The flag says whether
    /// a rule (forward or static mapping) admitted it rather than a mapping.
    fn behind(
        &self,
        p: &Policy,
        proto: IpProtocol,
        public: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        filtering: Filtering,
    ) -> Option<((Ipv4Addr, u16), bool)> {
        if let Some(f) = p.forwards.lookup(proto, public.0, public.1) {
            Some(((*f.private.ip(), f.private.port()), true))
        } else if let Some(private) = p.statics.private_of(public.0) {
            Some(((private, public.1), true))
        } else {
            self.snat
                .inbound(proto, public, remote, filtering)
                .map(|inside| (inside, false))
        }
    }

    /// An unsolicited packet from outside: a port forward, a static mapping or an existing
    /// endpoint-independent mapping may admit it; else it is for the appliance or dropped.
    fn ingress<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = env.policy;
        let k = meta.key;
        let proto = k.protocol();
        let remote = (k.src_addr(), k.src_port());
        let public = (k.dst_addr(), k.dst_port());
        let target = if opens_flow(meta) {
            self.behind(p, proto, public, remote.0, p.snat.filtering)
        } else {
            None
        };
        let target = target.map(|(inside, by_rule)| {
            let taken = if by_rule {
                Taken::none()
            } else {
                Taken {
                    tag: tag::mapping(self.snat.counts_contacts()),
                    proto,
                    inside,
                    public,
                    remote: remote.0,
                }
            };
            (inside, taken, by_rule)
        });
        let Some((inside, taken, by_rule)) = target else {
            let ours = self.is_local(p, in_port, public.0);
            if ours {
                return self.local(env, in_port, pkt, meta);
            }
            return self.discard(Discard::NoForward);
        };
        if by_rule && p.ingress.check(&match_key(meta)).action == Action::Deny {
            return self.discard(Discard::IngressDenied);
        }
        let Some(tcp) = self.opening(p, meta) else {
            return self.discard(Discard::TcpNoSession);
        };
        if meta.ttl_runs_out(pkt.bytes()) {
            return self.time_exceeded(env, in_port, pkt, meta);
        }
        if tag::is_mapping(taken.tag) && !self.snat.adopt(proto, public, remote.0) {
            return self.discard(Discard::NoForward);
        }
        let inside_key = key(proto, inside, remote);
        self.create(
            env,
            now,
            in_port,
            pkt,
            meta,
            inside_key,
            k,
            Side::Outside,
            tcp,
            taken,
        )
    }

    /// A packet from inside to one of the appliance's public addresses: hairpinning (RFC 4787
    /// REQ-9, RFC 5382 REQ-8). The inside host reaches the other inside host behind the public
    /// endpoint, and is seen there from its own public endpoint.
    fn hairpin<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = env.policy;
        let k = meta.key;
        let proto = k.protocol();
        let from = (k.src_addr(), k.src_port());
        let public = (k.dst_addr(), k.dst_port());
        // An inside host may reach any endpoint-independent mapping (RFC 4787 REQ-9).
        let target = if opens_flow(meta) {
            self.behind(p, proto, public, from.0, Filtering::EndpointIndependent)
        } else {
            None
        };
        let Some((to, _)) = target else {
            return self.local(env, in_port, pkt, meta);
        };
        if !p.snat.hairpinning {
            return self.discard(Discard::HairpinDisabled);
        }
        let Some(tcp) = self.opening(p, meta) else {
            return self.discard(Discard::TcpNoSession);
        };
        if p.egress.check(&match_key(meta)).action == Action::Deny {
            return self.discard(Discard::EgressDenied);
        }
        if meta.ttl_runs_out(pkt.bytes()) {
            return self.time_exceeded(env, in_port, pkt, meta);
        }
        let taken = match self.public_for(p, proto, from, to.0) {
            Ok(t) => t,
            Err(d) => return self.discard(d),
        };
        // The other key is what the target's replies look like: to our public endpoint.
        let other = key_to(proto, to, taken.public);
        if other == k {
            // A host reaching itself through its own static public endpoint: both tuples of
            // the session would be the same.
            taken.undo(&mut self.snat);
            return self.discard(Discard::HairpinToSelf);
        }
        self.create(
            env,
            now,
            in_port,
            pkt,
            meta,
            k,
            other,
            Side::Inside,
            tcp,
            taken,
        )
    }

    /// Creates the session and sends its first packet.
    #[allow(clippy::too_many_arguments)]
    fn create<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
        inside: FlowKey,
        outside: FlowKey,
        orig: Side,
        tcp: TcpState,
        taken: Taken,
    ) -> Disposition {
        if meta.tagged() {
            // It would be forwarded with the tag it arrived with (see `Shard::tagged`).
            taken.undo(&mut self.snat);
            return self.discard(Discard::VlanTransit);
        }
        let new = NewSession {
            tcp,
            policy_gen: env.policy.generation as u32,
            ..NewSession::translating(inside, outside, orig)
        };
        let snat = &mut self.snat;
        let created = self.table.create(&new, now, |_, s| release(snat, s));
        match created {
            Ok(idx) => {
                self.counters.bump_created();
                let len = pkt.bytes().len() as u32;
                let Some(s) = self.table.get_mut(idx) else {
                    return self.discard(Discard::SessionTableFull);
                };
                s.set_tag(taken.tag);
                s.count(len);
                let hit = Hit {
                    index: idx,
                    side: orig,
                };
                self.send_session(env, now, in_port, pkt, meta, hit)
            }
            Err(CreateError::Full) => {
                taken.undo(&mut self.snat);
                self.discard(Discard::SessionTableFull)
            }
            Err(CreateError::Exists(Hit { index, side })) => {
                // One of the keys is already a session's (a simultaneous open from both
                // sides): the packet belongs to it.
                taken.undo(&mut self.snat);
                // Only if the key that exists is this packet's own (two packets of one new
                // flow in one burst): a collision of the new session's other key with an
                // existing session must not borrow that session's rewrite.
                let Some(s) = self.table.get(index) else {
                    return self.discard(Discard::SessionTableFull);
                };
                if side != orig || *s.key(side) != meta.key {
                    return self.discard(Discard::NoForward);
                }
                self.send_session(env, now, in_port, pkt, meta, Hit { index, side })
            }
        }
    }
}

/// Whether a session admitted under an older policy is still allowed by `p` (the recheck of
/// DESIGN.md "Policy and the control thread").
pub(super) fn still_allowed(p: &Policy, s: &Session, snat: &Snat) -> bool {
    let inside = s.inside();
    let outside = s.outside();
    let proto = inside.protocol();
    let key_of = |k: &FlowKey| {
        let icmp = proto == IpProtocol::Icmp;
        MatchKey {
            proto,
            src: k.src_addr(),
            dst: k.dst_addr(),
            src_port: if icmp { 0 } else { k.src_port() },
            dst_port: if icmp { 0 } else { k.dst_port() },
            icmp_type: icmp.then_some(8),
        }
    };
    match s.orig_side() {
        Side::Inside => p.egress.check(&key_of(inside)).action == Action::Allow,
        Side::Outside => {
            let public = (outside.dst_addr(), outside.dst_port());
            let private = (inside.src_addr(), inside.src_port());
            if let Some(f) = p.forwards.lookup(proto, public.0, public.1) {
                (*f.private.ip(), f.private.port()) == private
                    && p.ingress.check(&key_of(outside)).action == Action::Allow
            } else if let Some(addr) = p.statics.private_of(public.0) {
                addr == private.0 && p.ingress.check(&key_of(outside)).action == Action::Allow
            } else {
                // Admitted through an endpoint-independent mapping: as long as filtering
                // still lets this remote in.
                tag::is_mapping(s.tag())
                    && snat
                        .inbound(proto, public, outside.src_addr(), p.snat.filtering)
                        .is_some()
            }
        }
    }
}

//! A `gwlb` port: behind a cloud's gateway load balancer, the appliance is a transparent
//! stateful firewall in the balancer's tunnel (docs/gwlb.md).
//!
//! Stage 1 takes a tunnel packet apart ([`Shard::decapsulate`]): the outer headers are
//! checked (a malformed tunnel header is dropped and counted by its own reason, never
//! forwarded), and the inner packet becomes the packet the stages see, keyed by its 5-tuple
//! in the tunnel's network ([`FlowKey::with_vni`]). The fast path is the usual one
//! ([`super::fast`]); a new flow is judged here ([`Shard::tunnel_miss`]): the side it comes
//! from (Azure's tunnel says it; under AWS's GENEVE the private prefixes do), the egress or
//! ingress rules, and a session that translates nothing. Every packet goes back into the
//! tunnel ([`Shard::send_back`], in [`super::forward`]), its inner packet untouched.
//!
//! On a `gwlb` port nothing else is forwarded: ARP, echo and the health probe for the
//! port's own address are answered, anything else is dropped (`tunnel_not_encapsulated`).

use super::action::Disposition;
use super::buf::PacketBuf;
use super::class::{Class, Rules, Trace};
use super::env::{Ctx, Env};
use super::meta::{Kind, Meta, Via};
use super::reason::Discard;
use super::shard::Shard;
use super::slow::opens_flow;
use crate::flow::{FlowKey, NewSession, Side};
use crate::packet::{
    geneve, tunnel, vxlan, Error as Malformed, IcmpPacket, Outer, ParsedFrame, Vni, L3,
};
use crate::policy::{Policy, Tunnel};
use std::net::Ipv4Addr;

/// The side a tunnel packet comes from: Azure's tunnel says it; under GENEVE, whether its
/// source is in the private prefixes.
pub(super) fn tunnel_side(p: &Policy, via: Via, src: Ipv4Addr) -> Side {
    match via {
        Via::Internal => Side::Inside,
        Via::External => Side::Outside,
        _ if p.is_private(src) => Side::Inside,
        _ => Side::Outside,
    }
}

/// A source no packet may carry, from either side of the tunnel (RFC 1812 section 5.3.7
/// martians), or the appliance's own address. (Under Azure's tunnels both sides carry
/// public addresses, so privateness says nothing there.)
fn martian(p: &Policy, src: Ipv4Addr) -> bool {
    let o = src.octets();
    o[0] == 0 || o[0] == 127 || o[0] >= 224 || p.port_with_address(src).is_some()
}

/// The network a tunnel's inner packets are keyed in: GENEVE's VNI; for Azure's pair of
/// tunnels, the internal tunnel's VNI whichever of the two a packet came in, so both
/// directions of a flow find one session.
fn network(t: &Tunnel, vni: Vni) -> Vni {
    match t {
        Tunnel::Geneve { .. } => vni,
        Tunnel::Vxlan { internal, .. } => internal.1,
    }
}

impl<T: Trace> Shard<T> {
    /// Stage 1 of a frame on a port with tunnel `t`: `None` if it is not a tunnel packet
    /// (not IPv4 UDP to the port's address at one of the tunnel's ports), else its inner
    /// packet's [`Meta`], or its end: a malformed or foreign tunnel header, a malformed inner
    /// packet, a handoff to the worker that owns its flow.
    pub(super) fn decapsulate(
        &mut self,
        env: &Env<'_>,
        in_port: u8,
        t: &Tunnel,
        bytes: &[u8],
        parsed: &ParsedFrame,
    ) -> Option<Result<Meta, Disposition>> {
        let L3::Ipv4(m) = parsed.l3 else {
            return None;
        };
        let port = env.policy.ports.get(usize::from(in_port))?;
        if port.address.map(|n| n.addr()) != Some(m.tuple.dst_addr) {
            return None;
        }
        let outer = Outer::of(bytes, parsed)?;
        let dst_port = m.tuple.dst_port;
        let (via, found) = match *t {
            Tunnel::Geneve { port } if dst_port == port => {
                (Via::Geneve, geneve::decap(bytes, &outer))
            }
            Tunnel::Vxlan { internal, .. } if dst_port == internal.0 => {
                (Via::Internal, vxlan::decap(bytes, &outer))
            }
            Tunnel::Vxlan { external, .. } if dst_port == external.0 => {
                (Via::External, vxlan::decap(bytes, &outer))
            }
            _ => return None,
        };
        Some(self.inner_meta(in_port, t, via, bytes, &outer, found))
    }

    /// The rest of [`Shard::decapsulate`], once the tunnel header was read (`found`).
    fn inner_meta(
        &mut self,
        in_port: u8,
        t: &Tunnel,
        via: Via,
        bytes: &[u8],
        outer: &Outer,
        found: Result<crate::packet::Decap, Malformed>,
    ) -> Result<Meta, Disposition> {
        let d = found.map_err(|e| self.discard(e))?;
        let expected = match (t, via) {
            (Tunnel::Vxlan { internal, .. }, Via::Internal) => Some(internal.1),
            (Tunnel::Vxlan { external, .. }, Via::External) => Some(external.1),
            _ => None,
        };
        if expected.is_some_and(|vni| vni != d.vni) {
            return Err(self.discard(Discard::TunnelUnknownVni));
        }
        if via == Via::Geneve {
            // Stage 1 checked the header.
            let g = geneve::Packet::new_unchecked(&bytes[outer.header..outer.end]);
            if g.oam() {
                return Err(self.discard(Discard::TunnelOam));
            }
            // RFC 8926 section 3.5: an option it does not know and is marked critical, the
            // endpoint must drop the packet; the appliance knows none, it carries them back.
            if g.critical() && g.options().any(|o| o.is_ok_and(|o| o.is_critical())) {
                return Err(self.discard(Discard::TunnelCriticalOption));
            }
        }
        let inner = tunnel::parse_inner(bytes, &d, &self.rx_caps).map_err(|e| self.discard(e))?;
        let m = match inner.l3 {
            L3::Ipv4(m) => m,
            L3::Ipv6(_) => return Err(self.discard(Discard::Ipv6)),
            L3::Arp | L3::Other(_) => return Err(self.discard(Discard::NotIp)),
        };
        let mut meta = self.ipv4_meta(&m, inner.l3_offset() as u16)?;
        meta.key = meta.key.with_vni(network(t, d.vni));
        meta.via = via;
        // Below 14 + 8 for the IPv4 header, and 60 more for the UDP header.
        meta.outer = [outer.l3 as u8, outer.udp as u8];
        if self.sharding.workers() > 1 {
            let owner = self.tunnel_owner(&meta, bytes);
            if owner != usize::from(self.worker) {
                self.counters.bump_handoff();
                return Err(Disposition::Handoff(owner as u16));
            }
        }
        self.counters.tunnel(in_port).add_decapsulated(bytes.len());
        Ok(meta)
    }

    /// The worker that owns a tunnel packet's flow: the same for both directions (no NAT
    /// slice tells), from the inner tuple; an ICMP error's, from the packet it quotes.
    fn tunnel_owner(&self, meta: &Meta, bytes: &[u8]) -> usize {
        let k = match meta.kind {
            Kind::Session(_) => meta.key,
            Kind::IcmpError => {
                let quoted = bytes
                    .get(meta.at.transport())
                    .and_then(|b| IcmpPacket::new_checked(b).ok())
                    .and_then(|p| p.quote().ok().and_then(|q| q.five_tuple().ok()));
                match quoted {
                    Some(q) => FlowKey::of(&q),
                    None => return usize::from(self.worker),
                }
            }
            _ => return usize::from(self.worker),
        };
        self.sharding.of_either_way(
            k.protocol(),
            (k.src_addr(), k.src_port()),
            (k.dst_addr(), k.dst_port()),
        )
    }

    /// A packet on a `gwlb` port that came in no tunnel: the appliance's own business (echo,
    /// the health probe) if it is addressed to the port, else nobody's.
    pub(super) fn untunnelled<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        if self.is_local(cx.env.policy, cx.in_port, meta.key.dst_addr()) {
            self.trace.class(Class::Local);
            return self.local(cx, pkt, meta);
        }
        self.discard(Malformed::TunnelNotEncapsulated)
    }

    /// A tunnel packet without a session: the side it comes from, the rules of that side
    /// (egress from inside, ingress from outside: no port forward is needed, nothing is
    /// translated), and a session whose two keys are the flow's two directions.
    #[inline(never)]
    pub(super) fn tunnel_miss<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        if !meta.via.tunnelled() {
            return self.untunnelled(cx, pkt, meta);
        }
        let p = cx.env.policy;
        let src = meta.key.src_addr();
        let side = tunnel_side(p, meta.via, src);
        let (class, rules, denied) = match side {
            Side::Inside => (Class::Egress, Rules::Egress, Discard::EgressDenied),
            Side::Outside => (Class::Ingress, Rules::Ingress, Discard::IngressDenied),
        };
        self.trace.class(class);
        if martian(p, src) {
            return self.discard(Discard::SpoofedSource);
        }
        if !opens_flow(meta) {
            // An echo reply without a session is not a new flow.
            return self.discard(Discard::ProtocolUnsupported);
        }
        let Some(tcp) = self.opening(p, meta) else {
            return self.discard(Discard::TcpNoSession);
        };
        if !self.allowed(p, rules, meta) {
            return self.discard(denied);
        }
        let (inside, outside) = match side {
            Side::Inside => (meta.key, meta.key.reverse()),
            Side::Outside => (meta.key.reverse(), meta.key),
        };
        let new = NewSession {
            tcp,
            policy_gen: p.generation as u32,
            ..NewSession::new(inside, outside, side)
        };
        match self.open(cx, pkt, meta, &new, 0) {
            Ok(_) => self.send_back(cx, pkt, meta),
            Err(end) => end,
        }
    }

    /// What a tunnel port does with a packet of no session kind: answers or drops what came
    /// in no tunnel as any port does ([`Shard::special`]), unless it is an ICMP error (it
    /// could only be about a tunnel's session, and those come in the tunnel); passes an ICMP
    /// error in the tunnel about one of its sessions back to it ([`Shard::tunnel_related`]);
    /// drops the rest (other protocols, other ICMP, tagged inner frames).
    pub(super) fn tunnel_special<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        match (meta.via.tunnelled(), meta.kind) {
            (false, Kind::IcmpError) => self.discard(Malformed::TunnelNotEncapsulated),
            (false, _) => self.special(cx, pkt, meta),
            (true, Kind::IcmpError) => {
                self.trace.class(Class::Related);
                self.tunnel_related(cx, pkt, meta)
            }
            (true, _) => {
                self.trace.class(Class::Invalid);
                self.discard(Discard::ProtocolUnsupported)
            }
        }
    }

    /// An ICMP error in the tunnel: sent back if it is about a session of the tunnel's and
    /// comes from the side the quoted packet went to, else dropped. Nothing is translated.
    fn tunnel_related<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let q = match self.quoted(pkt, meta) {
            Ok(q) => q,
            Err(end) => return end,
        };
        // The quote is a packet of the session; the error travels as its reply does.
        let reply = FlowKey::of(&q.reversed()).with_vni(meta.key.vni());
        let side = tunnel_side(cx.env.policy, meta.via, meta.key.src_addr());
        let Some(hit) = self.table.lookup(&reply) else {
            return self.discard(Discard::IcmpErrorNoSession);
        };
        let to_sender = meta.key.dst_addr() == q.src_addr;
        if !to_sender || (meta.via != Via::Geneve && hit.side != side) {
            return self.discard(Discard::IcmpErrorNoSession);
        }
        self.table.touch(hit.index, cx.now);
        self.send_back(cx, pkt, meta)
    }
}

//! The end of every forwarded packet, its IPv4 header final: the MSS clamp of a SYN, the
//! route, the next hop's MAC (or a request to resolve it), our MAC. On a `gwlb` port the end
//! is the tunnel instead: the packet goes back to the load balancer it came from.

use super::action::{Disposition, Note};
use super::buf::PacketBuf;
use super::class::Trace;
use super::env::Ctx;
use super::meta::{Kind, Meta, Via};
use super::reason::Discard;
use super::shard::Shard;
use crate::packet::translate::set_macs;
use crate::packet::tunnel::turn_around;
use crate::packet::{EthernetAddress, TcpPacket};
use crate::policy::Tunnel;
use std::net::Ipv4Addr;

/// Pending resolution requests are remembered this long (seconds) to avoid asking again for
/// every packet.
const RESOLVE_HOLDOFF: u32 = 1;

impl<T: Trace> Shard<T> {
    /// The end of every forwarded packet, its IPv4 header final (TTL decremented): clamps
    /// the MSS of a SYN, routes it towards `dst`, writes the next hop's and our MAC.
    #[inline(always)]
    pub(super) fn forward<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
        dst: Ipv4Addr,
    ) -> Disposition {
        clamp_mss(cx, pkt, meta);
        let Some(hop) = cx.env.policy.next_hop(dst) else {
            return self.discard(Discard::NoRoute);
        };
        let port = hop.port as u8;
        let Some(mac) = self.neigh.lookup(cx.env.neighbours, port, hop.ip) else {
            self.want_neighbour(port, hop.ip, cx.now);
            return self.discard(Discard::NeighbourUnresolved);
        };
        const NONE: EthernetAddress = EthernetAddress([0; 6]);
        let src = cx.env.macs.get(hop.port).unwrap_or(&NONE);
        set_macs(pkt.bytes_mut(), &mac, src);
        self.forwarded += 1;
        Disposition::Forward(port)
    }

    /// The end of every packet a `gwlb` port passes: back into the tunnel it came in, or
    /// the other one of Azure's pair ([`turn_around`]: MACs and outer addresses swapped, the
    /// tunnel header and the inner packet as they came; the inner TTL is not decremented, a
    /// bump in the wire is no hop), out of the port it arrived on. The MSS of a SYN is
    /// clamped when `nat.mss_clamp` asks for it.
    #[inline(always)]
    pub(super) fn send_back<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        clamp_mss(cx, pkt, meta);
        let to = match (cx.tunnel, meta.via) {
            (Some(Tunnel::Vxlan { external, .. }), Via::Internal) => Some(external),
            (Some(Tunnel::Vxlan { internal, .. }), Via::External) => Some(internal),
            _ => None,
        };
        let [l3, udp] = meta.outer.map(usize::from);
        if let Err(e) = turn_around(pkt.bytes_mut(), l3, udp, to) {
            return self.discard(e);
        }
        let tunnel = self.counters.tunnel(cx.in_port);
        tunnel.add_encapsulated(pkt.bytes().len());
        self.forwarded += 1;
        Disposition::Forward(cx.in_port)
    }

    /// Asks for `ip` on `port` to be resolved, at most once a second.
    pub(super) fn want_neighbour(&mut self, port: u8, ip: Ipv4Addr, now: u32) {
        let raw = u32::from(ip);
        if self
            .resolving
            .iter()
            .any(|&(p, i, t)| p == port && i == raw && now.wrapping_sub(t) < RESOLVE_HOLDOFF)
        {
            return;
        }
        self.resolving[self.resolving_next] = (port, raw, now);
        self.resolving_next = (self.resolving_next + 1) % self.resolving.len();
        self.note(Note::Resolve { port, ip });
    }
}

/// Clamps the MSS option of a TCP SYN to `nat.mss_clamp`, when set.
#[inline(always)]
fn clamp_mss<B: PacketBuf>(cx: &Ctx<'_>, pkt: &mut B, meta: &Meta) {
    if meta.kind == Kind::TCP && meta.tcp_flags.syn() {
        if let Some(mss) = cx.env.policy.sessions.mss_clamp {
            let segment = pkt.bytes_mut().get_mut(meta.at.transport());
            if let Some(Ok(mut tcp)) = segment.map(TcpPacket::new_checked) {
                tcp.clamp_mss(mss);
            }
        }
    }
}

//! ICMP errors about sessions ("related" traffic, RFC 5508 section 4): the packet quoted in
//! the error is found in the table, and both the outer header and the quote are translated,
//! with every checksum fixed.

use super::action::Disposition;
use super::buf::PacketBuf;
use super::class::{Class, Trace};
use super::env::Ctx;
use super::meta::Meta;
use super::reason::Discard;
use super::shard::Shard;
use crate::flow::{FlowKey, Side};
use crate::packet::{Endpoint, FiveTuple, IcmpPacket, IpProtocol, Ipv4Packet};

impl<T: Trace> Shard<T> {
    /// The addresses and ports of the packet an ICMP error quotes, or the error's end (a
    /// message or quote too short to say, dropped and counted).
    pub(super) fn quoted<B: PacketBuf>(
        &mut self,
        pkt: &B,
        meta: &Meta,
    ) -> Result<FiveTuple, Disposition> {
        IcmpPacket::new_checked(&pkt.bytes()[meta.at.transport()])
            .and_then(|m| m.quote().and_then(|q| q.five_tuple()))
            .map_err(|e| self.discard(e))
    }

    /// An ICMP error: translated for the session of the packet it quotes, or dropped.
    pub(super) fn related<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        self.trace.class(Class::Related);
        if meta.tagged() {
            // Forwarded, it would leave with the tag it arrived with.
            return self.discard(Discard::VlanTransit);
        }
        let at = meta.at;
        let q = match self.quoted(pkt, meta) {
            Ok(q) => q,
            Err(end) => return end,
        };
        // The quote is a packet the session sent; the session knows its reply.
        let reply = FlowKey::of(&q.reversed());
        let Some(hit) = self.table.lookup(&reply) else {
            return self.discard(Discard::IcmpErrorNoSession);
        };
        let Some(s) = self.table.get(hit.index) else {
            return self.discard(Discard::IcmpErrorNoSession);
        };
        // The error must come from the side the quoted packet went to, and be addressed to
        // whoever sent that packet: our public endpoint for an error from outside, the remote
        // host for an error from inside. Anything else would carry a quote of one session
        // to somebody else.
        let outer_to = meta.key.dst_addr();
        let addressed = match hit.side {
            Side::Outside => outer_to == s.outside().dst_addr(),
            Side::Inside => outer_to == s.outside().src_addr(),
        };
        if !addressed || !super::fast::arrives_right(cx, hit.side, s) {
            return self.discard(Discard::IcmpErrorNoSession);
        }
        // Put our own endpoint in the quote back to what the other side knows, and address
        // the error to the host that sent the quoted packet.
        let (inside, outside) = (*s.inside(), *s.outside());
        let (quoted_side, quoted_endpoint, outer_dst, outer_src) = match hit.side {
            // From outside about a packet we sent out: its source was our public endpoint;
            // the inside host gets the error about its own packet.
            Side::Outside => (
                Endpoint::Src,
                (inside.src_addr(), inside.src_port()),
                inside.src_addr(),
                None,
            ),
            // From inside about a packet we delivered in: its destination was the inside
            // host; the outside host sees our public endpoint, in the quote and as the
            // error's source.
            Side::Inside => (
                Endpoint::Dst,
                (outside.dst_addr(), outside.dst_port()),
                meta.key.dst_addr(),
                Some(outside.dst_addr()),
            ),
        };
        self.table.touch(hit.index, cx.now);
        let expired = {
            let bytes = pkt.bytes_mut();
            let Ok(mut ip) = Ipv4Packet::new_checked(&mut bytes[at.ip()]) else {
                return self.discard(Discard::IcmpErrorNoSession);
            };
            if let Err(e) =
                ip.translate_icmp_error(quoted_side, quoted_endpoint.0, quoted_endpoint.1)
            {
                return self.discard(e);
            }
            ip.rewrite_addr_only(Endpoint::Dst, outer_dst);
            if let Some(src) = outer_src {
                ip.rewrite_addr_only(Endpoint::Src, src);
            }
            // Leaves the packet unchanged when the TTL runs out.
            ip.decrement_ttl().is_err()
        };
        let meta = Meta {
            key: FlowKey::new(meta.key.src_addr(), outer_dst, 0, 0, IpProtocol::ICMP),
            ..*meta
        };
        if expired {
            return self.time_exceeded(cx, pkt, &meta);
        }
        self.forward(cx, pkt, &meta, outer_dst)
    }
}

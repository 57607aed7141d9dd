//! What the appliance answers itself: ARP for its addresses, ICMP echo, the health probe,
//! ICMP time exceeded; and what it learns from ARP.

use super::action::{Disposition, Note};
use super::buf::PacketBuf;
use super::class::{Class, Trace};
use super::classify::side_of;
use super::env::{Ctx, Health};
use super::meta::{Kind, Meta};
use super::reason::Discard;
use super::shard::Shard;
use crate::packet::build::{self, Link, Segment};
use crate::packet::http::{Method, Request, Response, Status};
use crate::packet::icmp::TimeExceeded;
use crate::packet::{
    ArpOperation, ArpPacket, Error, EthernetAddress, EthernetFrame, TcpFlags, TcpPacket, Vlans,
};
use crate::policy::HealthProbe;

impl<T: Trace> Shard<T> {
    /// Packets that take no part in the burst's session lookups: ARP, ICMP errors, other
    /// ICMP, other protocols, and VLAN-tagged packets.
    pub(super) fn special<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        match meta.kind {
            Kind::Arp => self.arp(cx, pkt, meta),
            _ if meta.kind.has_session() => self.tagged(cx, pkt, meta),
            Kind::IcmpError => self.related(cx, pkt, meta),
            _ => {
                self.trace.class(Class::Local);
                if self.is_local(cx.env.policy, cx.in_port, meta.key.dst_addr()) {
                    self.local(cx, pkt, meta)
                } else {
                    self.discard(Discard::ProtocolUnsupported)
                }
            }
        }
    }

    /// A VLAN-tagged packet of a kind that has sessions. Ports have no VLAN settings, so it
    /// is never forwarded (its tag would leave on another port): a packet of an open session
    /// is dropped; one from a source that cannot be on its side is dropped as the slow path
    /// drops it; one addressed to the appliance is answered (with its tags); the rest is
    /// dropped too, all as `vlan_transit`, whatever its TTL: a time exceeded would say this
    /// hop forwards it, and would quote (out of the outside port) an inside destination the
    /// untagged path never answers for. Looked up alone, off the fast path, which never sees
    /// a tag.
    fn tagged<B: PacketBuf>(&mut self, cx: &Ctx<'_>, pkt: &mut B, meta: &Meta) -> Disposition {
        if self.table.lookup(&meta.key).is_some() {
            return self.discard(Discard::VlanTransit);
        }
        if let Err(why) = side_of(cx.env.policy, cx.in_port, meta.key.src_addr()) {
            return self.discard(why);
        }
        if self.is_local(cx.env.policy, cx.in_port, meta.key.dst_addr()) {
            self.trace.class(Class::Local);
            return self.local(cx, pkt, meta);
        }
        self.discard(Discard::VlanTransit)
    }

    /// The link to answer a packet on: back to the frame's sender, from our MAC on the port it
    /// came in on, with the same VLAN tags.
    fn reply_link(cx: &Ctx<'_>, frame: &[u8]) -> Link {
        Link {
            src: our_mac(cx),
            // Stage 1 parsed the frame.
            dst: EthernetFrame::new_unchecked(frame).src_addr(),
            vlans: vlans(frame),
        }
    }

    /// Replaces the packet with the first `len` bytes of the scratch buffer and sends it back
    /// out of `in_port`.
    fn reply<B: PacketBuf>(&mut self, in_port: u8, pkt: &mut B, len: usize) -> Disposition {
        if !pkt.set_len(len) {
            return self.discard(Discard::LocalUnhandled);
        }
        pkt.bytes_mut().copy_from_slice(&self.scratch[..len]);
        self.counters.bump_local();
        self.trace.class(Class::Local);
        Disposition::Forward(in_port)
    }

    /// A packet addressed to the appliance: ICMP echo, the health probe, or nothing.
    pub(super) fn local<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        let p = cx.env.policy;
        let (src, dst) = (meta.key.src_addr(), meta.key.dst_addr());
        let link = Self::reply_link(cx, pkt.bytes());
        let ip = meta.at.ip();
        let built = match (meta.kind, p.local.health_probe.as_ref()) {
            (Kind::ICMP_ECHO, _) if meta.icmp_type == 8 && p.local.icmp_echo => {
                build::icmp_echo_reply(&mut self.scratch, &link, &pkt.bytes()[ip])
            }
            (Kind::TCP, Some(probe)) if probe.port == meta.key.dst_port() => {
                if !probe.admits(src) {
                    return self.discard(Discard::LocalDenied);
                }
                match self.probe(cx.env.health, probe, &link, pkt.bytes(), meta) {
                    Some(built) => built,
                    None => {
                        self.trace.class(Class::Local);
                        return Disposition::Consumed;
                    }
                }
            }
            // Unsolicited traffic to a public address is ingress without a forward; to the
            // inside address, a service the appliance does not run.
            _ if self.snat.is_pool_address(dst) || p.port_with_address(dst).is_none() => {
                return self.discard(Discard::NoForward);
            }
            _ => return self.discard(Discard::LocalUnhandled),
        };
        match built {
            Ok(len) => self.reply(cx.in_port, pkt, len),
            Err(e) => self.discard(e),
        }
    }

    /// The health probe's answer to a TCP segment from a source it admits, written to the
    /// scratch buffer; `None` when the segment needs none (a RST, the ACK of the SYN-ACK or
    /// of the response). No state is kept between segments: the SYN-ACK's sequence number is
    /// a keyed hash of the connection ([`initial_seq`]), and a later segment is answered
    /// from its own numbers.
    ///
    /// TCP probe: a SYN gets a SYN-ACK while serving and a reset while draining (the
    /// connect fails, as with nothing listening); anything else but a RST gets a reset.
    ///
    /// HTTP probe, one short connection per check (RFC 9112 section 9.6, `Connection:
    /// close`): the SYN gets a SYN-ACK; the segment with the request (one segment: a load
    /// balancer's request line and fields are short) gets the whole response with ACK, PSH
    /// and FIN, provided it acknowledges our SYN-ACK and starts right after the client's SYN
    /// (else a reset: the request of no handshake of ours); a FIN gets its ACK, with our FIN
    /// when no response went out before (the client closed without asking).
    fn probe(
        &mut self,
        health: Health,
        probe: &HealthProbe,
        link: &Link,
        frame: &[u8],
        meta: &Meta,
    ) -> Option<Result<usize, Error>> {
        let received = &frame[meta.at.ip()];
        // Stage 1 checked the TCP header.
        let tcp = TcpPacket::new_unchecked(&frame[meta.at.transport()]);
        let (flags, seq, ack) = (meta.tcp_flags, tcp.seq_number(), tcp.ack_number());
        let key = self.probe_key;
        let isn = |client_isn: u32| initial_seq(key, meta, client_isn);
        let out = &mut self.scratch;
        if flags.rst() {
            return None;
        }
        if flags.syn() && !flags.ack() {
            let out = if probe.http_path.is_none() && health == Health::Draining {
                build::tcp_rst(out, link, received)
            } else {
                build::tcp_syn_ack(out, link, received, isn(seq))
            };
            return Some(out);
        }
        let Some(path) = probe.http_path.as_deref() else {
            return Some(build::tcp_rst(out, link, received));
        };
        if flags.syn() || !flags.ack() {
            return Some(build::tcp_rst(out, link, received));
        }
        let data = tcp.payload();
        // The first segment after the handshake: it acknowledges our ISN and carries the
        // client's first byte.
        let first = ack == isn(seq.wrapping_sub(1)).wrapping_add(1);
        let fin = u32::from(flags.fin());
        if !data.is_empty() {
            if !first {
                return Some(build::tcp_rst(out, link, received));
            }
            let mut text = [0u8; Response::MAX_LEN];
            let response = response(health, path, data);
            let n = match response.emit(&mut text) {
                Ok(n) => n,
                Err(e) => return Some(Err(e)),
            };
            let seg = Segment {
                seq: ack,
                ack: seq.wrapping_add(data.len() as u32 + fin),
                flags: TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN,
                payload: &text[..n],
            };
            return Some(build::tcp_answer(out, link, received, &seg));
        }
        if flags.fin() {
            let seg = Segment {
                seq: ack,
                ack: seq.wrapping_add(1),
                flags: if first {
                    TcpFlags::ACK | TcpFlags::FIN
                } else {
                    TcpFlags::ACK
                },
                payload: &[],
            };
            return Some(build::tcp_answer(out, link, received, &seg));
        }
        None
    }

    /// TTL would expire here: answer with ICMP time exceeded from the receiving port's address
    /// (RFC 1812 section 4.3.2.3 quoting), when the port has one.
    #[cold]
    #[inline(never)]
    pub(super) fn time_exceeded<B: PacketBuf>(
        &mut self,
        cx: &Ctx<'_>,
        pkt: &mut B,
        meta: &Meta,
    ) -> Disposition {
        self.counters.count_drop(Discard::TtlExpired.into());
        self.trace.class(Class::Invalid);
        let Some(src) = cx
            .env
            .policy
            .ports
            .get(usize::from(cx.in_port))
            .and_then(|p| p.address)
            .map(|n| n.addr())
        else {
            return Disposition::Drop(Discard::TtlExpired.into());
        };
        let link = Self::reply_link(cx, pkt.bytes());
        let ip = meta.at.ip();
        match build::icmp_time_exceeded(
            &mut self.scratch,
            &link,
            src,
            &pkt.bytes()[ip.clone()],
            TimeExceeded::TtlExpired,
        ) {
            Ok(len) => self.reply(cx.in_port, pkt, len),
            Err(_) => Disposition::Drop(Discard::TtlExpired.into()),
        }
    }

    /// ARP: answer requests for our addresses on this port, learn neighbours from what we see
    /// (RFC 826 merge: the sender of a request or reply on our subnet).
    fn arp<B: PacketBuf>(&mut self, cx: &Ctx<'_>, pkt: &mut B, meta: &Meta) -> Disposition {
        let l3 = usize::from(meta.at.l3);
        let Some(port) = cx.env.policy.ports.get(usize::from(cx.in_port)) else {
            return self.discard(Discard::ArpIgnored);
        };
        let Ok(arp) = ArpPacket::new_checked(&pkt.bytes()[l3..]) else {
            return self.discard(Discard::ArpIgnored);
        };
        let (op, sha, spa, tpa) = (
            arp.operation(),
            arp.source_hardware_addr(),
            arp.source_protocol_addr(),
            arp.target_protocol_addr(),
        );
        let on_link = port.address.is_some_and(|n| n.contains(&spa)) && sha.is_unicast();
        if on_link {
            self.neigh.learn(cx.env.neighbours, cx.in_port, spa, sha);
            self.note(Note::Learned {
                port: cx.in_port,
                ip: spa,
                mac: sha,
            });
        }
        let for_us =
            port.address.is_some_and(|n| n.addr() == tpa) || port.arp_addresses.contains(&tpa);
        if op == ArpOperation::Request && for_us && spa != tpa {
            let link = Link {
                src: our_mac(cx),
                dst: sha,
                vlans: vlans(pkt.bytes()),
            };
            return match build::arp_reply(&mut self.scratch, &link, tpa, spa) {
                Ok(len) => self.reply(cx.in_port, pkt, len),
                Err(e) => self.discard(e),
            };
        }
        if on_link {
            Disposition::Consumed
        } else {
            self.discard(Discard::ArpIgnored)
        }
    }
}

/// Our MAC on the port the packet came in on: the source of every answer.
fn our_mac(cx: &Ctx<'_>) -> EthernetAddress {
    let mac = cx.env.macs.get(usize::from(cx.in_port)).copied();
    mac.unwrap_or(EthernetAddress([0; 6]))
}

/// The VLAN tags of a frame stage 1 parsed (so the walk does not fail).
fn vlans(frame: &[u8]) -> Vlans {
    EthernetFrame::new_checked(frame)
        .and_then(|f| f.vlans())
        .unwrap_or(Vlans::None)
}

/// The initial sequence number of the health probe's SYN-ACK on the connection of `meta`
/// whose SYN had sequence number `client_isn`: a keyed hash (SipHash) of both, so that it
/// is not predictable from outside the host (RFC 9293 section 3.4.1), a retransmitted SYN
/// gets the same one, and a later segment can be checked without state: it acknowledges
/// this number plus one and carries the client's ISN plus one (as SYN cookies do, RFC 4987
/// section 3.6).
fn initial_seq(key: u64, meta: &Meta, client_isn: u32) -> u32 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let k = &meta.key;
    let mut h = DefaultHasher::new();
    (
        key,
        k.src_addr(),
        k.dst_addr(),
        k.src_port(),
        k.dst_port(),
        client_isn,
    )
        .hash(&mut h);
    h.finish() as u32
}

/// What an HTTP probe's request gets: 404 for another path, 405 for a method other than GET
/// and HEAD, else 200 while serving and 503 while draining; 400 or 505 for a request line
/// that does not parse.
fn response(health: Health, path: &[u8], data: &[u8]) -> Response {
    let request = match Request::parse(data) {
        Ok(r) => r,
        Err(status) => {
            return Response {
                status,
                head_only: false,
            }
        }
    };
    let status = if request.path() != path {
        Status::NotFound
    } else if request.method == Method::Other {
        Status::MethodNotAllowed
    } else if health == Health::Draining {
        Status::ServiceUnavailable
    } else {
        Status::Ok
    };
    Response {
        status,
        head_only: request.method == Method::Head,
    }
}

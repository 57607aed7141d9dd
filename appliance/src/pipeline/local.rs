//! What the appliance answers itself: ARP for its addresses, ICMP echo, the health probe,
//! ICMP time exceeded; and what it learns from ARP.

use std::net::Ipv4Addr;

use super::action::{Disposition, Note};
use super::buf::PacketBuf;
use super::class::{Class, Trace};
use super::classify::side_of;
use super::env::Ctx;
use super::meta::{Kind, Meta};
use super::reason::Discard;
use super::shard::Shard;
use crate::packet::build::{self, Link};
use crate::packet::icmp::TimeExceeded;
use crate::packet::{ArpOperation, ArpPacket, EthernetAddress, EthernetFrame, TcpPacket, Vlans};

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
                let flags = meta.tcp_flags;
                if flags.syn() && !flags.ack() {
                    // Stage 1 checked the TCP header.
                    let tcp = TcpPacket::new_unchecked(&pkt.bytes()[meta.at.transport()]);
                    let isn = initial_seq(dst, src, tcp.seq_number());
                    build::tcp_syn_ack(&mut self.scratch, &link, &pkt.bytes()[ip], isn)
                } else if flags.rst() {
                    return self.discard(Discard::LocalUnhandled);
                } else {
                    build::tcp_rst(&mut self.scratch, &link, &pkt.bytes()[ip])
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

/// The initial sequence number of the health probe's SYN-ACK from `src` to `dst` answering
/// sequence number `seq`: not predictable from outside the host (RFC 9293 section 3.4.1),
/// and with no state kept, the same for a retransmitted SYN.
fn initial_seq(src: Ipv4Addr, dst: Ipv4Addr, seq: u32) -> u32 {
    let x = u64::from(u32::from(src)) << 32 | u64::from(u32::from(dst)) ^ u64::from(seq);
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32 ^ std::process::id()
}

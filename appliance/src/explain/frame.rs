//! Frames for `explain`: the packet a flow expression describes, built with the packet
//! layer's `Repr`s, and what a frame leaving the pipeline says.

use super::expr::{Flow, Transport};
use crate::packet::build::{self, Link, MIN_FRAME_LEN};
use crate::packet::ethernet::HEADER_LEN as ETHERNET_HEADER_LEN;
use crate::packet::{
    parse_frame, ChecksumCaps, EthernetAddress, IcmpEcho, IcmpMessage, IcmpPacket, IcmpRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, UdpRepr, Vlans, L3, L4,
};
use serde::Serialize;
use std::net::Ipv4Addr;

/// The payload of UDP datagrams and ICMP echo messages `explain` builds.
const PAYLOAD: &[u8] = b"explain";
/// The MSS option of TCP SYNs `explain` builds (an Ethernet host's usual one), so that
/// `nat.mss_clamp` shows.
pub const SYN_MSS: u16 = 1460;

/// Builds the Ethernet frame of `flow`, from `src_mac` to `dst_mac`.
///
/// An ICMP error type quotes a UDP datagram from the flow's destination to its source, both
/// ports the flow's `id`: the packet the error would be about.
///
/// # Errors
/// The packet layer's, if a header does not fit (cannot happen for the sizes used here).
pub fn build(
    flow: &Flow,
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
) -> Result<Vec<u8>, crate::packet::Error> {
    let caps = ChecksumCaps::NONE;
    let (protocol, l4) = match flow.transport {
        Transport::Tcp {
            src_port,
            dst_port,
            flags,
        } => {
            let r = TcpRepr {
                src_port,
                dst_port,
                flags,
                seq_number: 1000,
                ack_number: if flags.ack() { 5000 } else { 0 },
                window_len: 64240,
                max_seg_size: flags.syn().then_some(SYN_MSS),
                ..TcpRepr::default()
            };
            let mut l4 = vec![0u8; r.buffer_len()];
            r.emit(&mut l4, flow.src, flow.dst, &caps)?;
            (IpProtocol::TCP, l4)
        }
        Transport::Udp { src_port, dst_port } => {
            let r = UdpRepr {
                src_port,
                dst_port,
                payload: PAYLOAD,
            };
            let mut l4 = vec![0u8; r.buffer_len()];
            r.emit(&mut l4, flow.src, flow.dst, &caps)?;
            (IpProtocol::UDP, l4)
        }
        Transport::Icmp { ty, code, ident } => {
            (IpProtocol::ICMP, icmp(flow.src, flow.dst, ty, code, ident)?)
        }
    };
    ip_frame(
        src_mac, dst_mac, flow.src, flow.dst, protocol, flow.ttl, &l4,
    )
}

/// An ICMP message of type `ty`: echo with `ident`, or an error quoting a UDP datagram
/// `dst:ident -> src:ident`; other types carry the echo layout with their own type number.
fn icmp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ty: u8,
    code: u8,
    ident: u16,
) -> Result<Vec<u8>, crate::packet::Error> {
    let msg = IcmpMessage::from(ty);
    let quote = if msg.is_error() {
        quoted_udp(dst, src, ident)?
    } else {
        Vec::new()
    };
    let repr = match msg {
        IcmpMessage::EchoReply => IcmpRepr::EchoReply(IcmpEcho {
            ident,
            seq_no: 1,
            data: PAYLOAD,
        }),
        IcmpMessage::DstUnreachable => IcmpRepr::DstUnreachable {
            reason: code.into(),
            next_hop_mtu: 0,
            quote: &quote,
        },
        IcmpMessage::TimeExceeded => IcmpRepr::TimeExceeded {
            reason: code.into(),
            quote: &quote,
        },
        IcmpMessage::ParamProblem => IcmpRepr::ParamProblem {
            code,
            pointer: 0,
            quote: &quote,
        },
        IcmpMessage::Redirect => IcmpRepr::Redirect {
            code,
            gateway: src,
            quote: &quote,
        },
        _ => IcmpRepr::EchoRequest(IcmpEcho {
            ident,
            seq_no: 1,
            data: if msg.is_error() { &quote } else { PAYLOAD },
        }),
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut l4)?;
    let mut p = IcmpPacket::new_checked(&mut l4[..])?;
    if p.msg_type() != msg || p.code() != code {
        // A type without a `Repr` of its own (timestamp, source quench, ...).
        p.set_msg_type(msg);
        p.set_code(code);
        if msg.is_error() {
            p.set_rest_of_header(0);
        }
        p.fill_checksum();
    }
    Ok(l4)
}

/// An IPv4 + UDP datagram of no payload, as an ICMP error quotes it.
fn quoted_udp(src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Result<Vec<u8>, crate::packet::Error> {
    let udp = UdpRepr {
        src_port: port,
        dst_port: port,
        payload: &[],
    };
    let ip = build::own_header(src, dst, IpProtocol::UDP, udp.buffer_len());
    let mut q = vec![0u8; ip.buffer_len()];
    let at = ip.emit(&mut q, &ChecksumCaps::NONE)?;
    udp.emit(&mut q[at..], src, dst, &ChecksumCaps::NONE)?;
    Ok(q)
}

/// Ethernet + IPv4 around transport bytes, padded to the Ethernet minimum.
fn ip_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    ttl: u8,
    l4: &[u8],
) -> Result<Vec<u8>, crate::packet::Error> {
    let link = Link {
        src: src_mac,
        dst: dst_mac,
        vlans: Vlans::None,
    };
    let header = Ipv4Repr {
        ttl,
        ident: 0x4558,
        ..build::own_header(src, dst, protocol, l4.len())
    };
    let mut f = vec![0u8; ETHERNET_HEADER_LEN + header.buffer_len() + l4.len() + MIN_FRAME_LEN];
    let n = build::ipv4_frame(&mut f, &link, &header, l4)?;
    f.truncate(n);
    Ok(f)
}

/// What an IPv4 packet says, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketView {
    /// `tcp`, `udp`, `icmp` or the protocol number.
    pub proto: String,
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port (TCP, UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port (TCP, UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Time to live.
    pub ttl: u8,
    /// TCP control bits, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<String>,
    /// TCP MSS option.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mss: Option<u16>,
    /// ICMP type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP echo identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
}

impl PacketView {
    /// Reads an Ethernet frame carrying IPv4; `None` for anything else or a frame that does
    /// not parse.
    pub fn of(frame: &[u8]) -> Option<PacketView> {
        let parsed = parse_frame(frame, &ChecksumCaps::NONE).ok()?;
        let L3::Ipv4(m) = parsed.l3 else {
            return None;
        };
        let ip = Ipv4Packet::new_checked(frame.get(parsed.l3_offset()..)?).ok()?;
        let t = m.tuple;
        let mut v = PacketView {
            proto: t.protocol.to_string(),
            src: t.src_addr,
            src_port: None,
            dst: t.dst_addr,
            dst_port: None,
            ttl: ip.ttl(),
            tcp_flags: None,
            mss: None,
            icmp_type: None,
            icmp_id: None,
        };
        let l4 = frame.get(m.l4_offset()..m.l3_end())?;
        match m.l4 {
            L4::Tcp(flags) => {
                v.src_port = Some(t.src_port);
                v.dst_port = Some(t.dst_port);
                v.tcp_flags = Some(super::expr::flag_names(TcpFlags(flags.0)));
                if let Ok(p) = TcpPacket::new_checked(l4) {
                    let caps = ChecksumCaps::ALL;
                    v.mss = TcpRepr::parse(&p, t.src_addr, t.dst_addr, &caps)
                        .ok()
                        .and_then(|r| r.max_seg_size);
                }
            }
            L4::Udp => {
                v.src_port = Some(t.src_port);
                v.dst_port = Some(t.dst_port);
            }
            L4::Icmp(msg) => {
                v.icmp_type = Some(u8::from(msg));
                if matches!(msg, IcmpMessage::EchoRequest | IcmpMessage::EchoReply) {
                    v.icmp_id = Some(t.src_port);
                }
            }
            L4::Fragment | L4::Other => {}
        }
        Some(v)
    }

    /// Source as `addr:port` (or `addr`).
    pub fn src_text(&self) -> String {
        endpoint(self.src, self.src_port)
    }

    /// Destination as `addr:port` (or `addr`).
    pub fn dst_text(&self) -> String {
        endpoint(self.dst, self.dst_port)
    }
}

fn endpoint(addr: Ipv4Addr, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{addr}:{p}"),
        None => addr.to_string(),
    }
}

impl std::fmt::Display for PacketView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            self.proto,
            self.src_text(),
            self.dst_text()
        )?;
        if let Some(flags) = &self.tcp_flags {
            write!(f, " flags {flags}")?;
        }
        if let Some(mss) = self.mss {
            write!(f, " mss {mss}")?;
        }
        if let Some(ty) = self.icmp_type {
            write!(f, " type {}", super::expr::icmp_type_name(ty))?;
        }
        if let Some(id) = self.icmp_id {
            write!(f, " id {id}")?;
        }
        write!(f, " ttl {}", self.ttl)
    }
}

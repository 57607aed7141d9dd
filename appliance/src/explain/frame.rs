//! Frames for `explain`: the packet a flow expression describes, built with the packet
//! layer's `Repr`s, and what a frame leaving the pipeline says.

use super::expr::{hex, Encapsulation};
use super::expr::{Flow, Transport};
use crate::packet::build::Encap;
use crate::packet::build::{self, Link, MIN_FRAME_LEN};
use crate::packet::ethernet::HEADER_LEN as ETHERNET_HEADER_LEN;
use crate::packet::{
    geneve, parse_frame, tunnel, vxlan, ChecksumCaps, EtherType, EthernetAddress, GeneveRepr,
    IcmpEcho, IcmpMessage, IcmpPacket, IcmpRepr, IpProtocol, Ipv4Packet, Ipv4Repr, ParsedFrame,
    TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr, Vlans, Vni, VxlanRepr, L3, L4,
};
use crate::policy::Tunnel;
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
        PacketView::of_parsed(frame, &parse_frame(frame, &ChecksumCaps::NONE).ok()?)
    }

    /// Reads the IPv4 packet `parsed` found in `frame` (its offsets counted from the start
    /// of `frame`: a frame's own packet, or a tunnel's inner packet).
    pub fn of_parsed(frame: &[u8], parsed: &ParsedFrame) -> Option<PacketView> {
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

/// AWS's three GENEVE options (class 0x0108: the endpoint's id, the attachment's id, the
/// flow cookie), made-up values: what a packet from AWS's load balancer carries when the
/// expression gives no `options`.
#[rustfmt::skip]
pub const AWS_OPTIONS: [u8; 32] = [
    0x01, 0x08, 0x01, 0x02, 0x65, 0x78, 0x70, 0x6c, 0x61, 0x69, 0x6e, 0x01,
    0x01, 0x08, 0x02, 0x02, 0x65, 0x78, 0x70, 0x6c, 0x61, 0x69, 0x6e, 0x02,
    0x01, 0x08, 0x03, 0x01, 0x00, 0x00, 0x00, 0x01,
];

/// Where a load balancer's tunnel packet goes between: the load balancer (address and MAC)
/// and the appliance's port (address and MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    /// The load balancer's address.
    pub lb: Ipv4Addr,
    /// Its MAC.
    pub lb_mac: EthernetAddress,
    /// The port's address.
    pub port: Ipv4Addr,
    /// The port's MAC.
    pub port_mac: EthernetAddress,
}

/// The UDP port the load balancer sends from.
pub const LB_PORT: u16 = 49153;

/// `inner` (a frame [`build`] made) put in the tunnel `how` of a port with tunnel `t`, as
/// the load balancer would send it: GENEVE carries the IP packet, VXLAN the whole frame.
///
/// # Errors
/// The packet layer's, if a header does not fit (a GENEVE options area that does not walk).
pub fn encapsulate(
    inner: &[u8],
    how: &Encapsulation,
    t: &Tunnel,
    ends: &Ends,
) -> Result<Vec<u8>, crate::packet::Error> {
    let vxlan_at = |internal: bool| match (t, internal) {
        (Tunnel::Vxlan { internal, .. }, true) => *internal,
        (Tunnel::Vxlan { external, .. }, false) => *external,
        // Azure's defaults, on a port whose tunnel is another.
        (_, true) => (10800, Vni::new(800).unwrap_or_default()),
        (_, false) => (10801, Vni::new(801).unwrap_or_default()),
    };
    let ip = Ipv4Packet::new_checked(inner.get(ETHERNET_HEADER_LEN..).unwrap_or_default())?;
    let packet = &inner[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip.total_len()];
    let (header, port, payload) = match how {
        Encapsulation::Geneve { vni, options } => {
            let options = options.as_deref().unwrap_or(&AWS_OPTIONS);
            // C says a critical option is there (RFC 8926 section 3.4), as a sender sets it.
            let critical = geneve::Options::new(options).any(|o| o.is_ok_and(|o| o.is_critical()));
            let repr = GeneveRepr {
                oam: false,
                critical,
                protocol: EtherType::Ipv4,
                vni: Vni::new(*vni).unwrap_or_default(),
                options,
                reserved_flags: 0,
                reserved: 0,
            };
            let port = match t {
                Tunnel::Geneve { port } => *port,
                Tunnel::Vxlan { .. } => geneve::UDP_PORT,
            };
            (Encap::Geneve(repr), port, packet)
        }
        Encapsulation::Internal | Encapsulation::External => {
            let (port, vni) = vxlan_at(*how == Encapsulation::Internal);
            (Encap::Vxlan(VxlanRepr::new(vni)), port, inner)
        }
        Encapsulation::Own | Encapsulation::Plain => return Ok(inner.to_vec()),
    };
    let link = Link {
        src: ends.lb_mac,
        dst: ends.port_mac,
        vlans: Vlans::None,
    };
    let mut f =
        vec![0u8; ETHERNET_HEADER_LEN + 28 + header.buffer_len() + payload.len() + MIN_FRAME_LEN];
    let n = build::encapsulated(
        &mut f,
        &link,
        (ends.lb, LB_PORT),
        (ends.port, port),
        &header,
        payload,
    )?;
    f.truncate(n);
    Ok(f)
}

/// One GENEVE option, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionView {
    /// Option class (0x0108: Amazon's).
    pub class: u16,
    /// Type.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Whether it is critical.
    pub critical: bool,
    /// Its data, in hex.
    pub data: String,
}

/// What a tunnel packet's outer headers say, as `explain` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelView {
    /// `geneve` or `vxlan`.
    pub kind: &'static str,
    /// Outer source address.
    pub src: Ipv4Addr,
    /// Outer UDP source port.
    pub src_port: u16,
    /// Outer destination address.
    pub dst: Ipv4Addr,
    /// Outer UDP destination port.
    pub dst_port: u16,
    /// Outer TTL.
    pub ttl: u8,
    /// The VNI.
    pub vni: u32,
    /// GENEVE's options, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionView>,
}

impl TunnelView {
    /// The outer headers of `frame` and its inner packet, if it is a packet of tunnel `t`
    /// (GENEVE at its port, VXLAN at either of Azure's).
    pub fn of(frame: &[u8], t: &Tunnel) -> Option<(TunnelView, Option<PacketView>)> {
        let caps = ChecksumCaps::NONE;
        let parsed = parse_frame(frame, &caps).ok()?;
        let outer = tunnel::Outer::of(frame, &parsed)?;
        let udp = UdpPacket::new_checked(&frame[outer.udp..outer.end]).ok()?;
        let ip = Ipv4Packet::new_checked(&frame[outer.l3..]).ok()?;
        let port = udp.dst_port();
        let geneve_port = match t {
            Tunnel::Geneve { port } => *port,
            Tunnel::Vxlan { .. } => geneve::UDP_PORT,
        };
        let (kind, d) = if port == geneve_port {
            ("geneve", geneve::decap(frame, &outer).ok()?)
        } else if matches!(t, Tunnel::Vxlan { internal, external }
            if port == internal.0 || port == external.0)
        {
            ("vxlan", vxlan::decap(frame, &outer).ok()?)
        } else {
            return None;
        };
        let options = match kind {
            "geneve" => geneve::Packet::new_checked(outer.udp_payload(frame))
                .ok()?
                .options()
                .filter_map(Result::ok)
                .map(|o| OptionView {
                    class: o.class,
                    kind: o.kind,
                    critical: o.is_critical(),
                    data: hex(o.data),
                })
                .collect(),
            _ => Vec::new(),
        };
        let view = TunnelView {
            kind,
            src: ip.src_addr(),
            src_port: udp.src_port(),
            dst: ip.dst_addr(),
            dst_port: port,
            ttl: ip.ttl(),
            vni: d.vni.value(),
            options,
        };
        let inner = tunnel::parse_inner(frame, &d, &caps)
            .ok()
            .and_then(|p| PacketView::of_parsed(frame, &p));
        Some((view, inner))
    }

    /// How a packet comes in this tunnel, as the expression says it, for a port of tunnel
    /// `t` (`options`: those of this packet).
    pub fn encapsulation(&self, t: &Tunnel) -> Encapsulation {
        match t {
            Tunnel::Vxlan { internal, .. } if self.kind == "vxlan" => {
                if self.dst_port == internal.0 {
                    Encapsulation::Internal
                } else {
                    Encapsulation::External
                }
            }
            _ => Encapsulation::Geneve {
                vni: self.vni,
                options: None,
            },
        }
    }
}

impl std::fmt::Display for TunnelView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{} ttl {} vni {}",
            self.kind, self.src, self.src_port, self.dst, self.dst_port, self.ttl, self.vni
        )?;
        for (i, o) in self.options.iter().enumerate() {
            let sep = if i == 0 { ", options" } else { "," };
            let critical = if o.critical { " critical" } else { "" };
            write!(
                f,
                "{sep} {:04x}:{:02x}{critical} {}",
                o.class, o.kind, o.data
            )?;
        }
        Ok(())
    }
}

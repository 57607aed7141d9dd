//! Frames as a host on the topology would send them, built with the packet layer, and
//! [`seen`], what a frame that left the appliance says (every checksum verified).

use crate::packet::build::{self, Link, Unreachable};
use crate::packet::icmp::TimeExceeded;
use crate::packet::{
    parse_frame, ChecksumCaps, EthernetAddress, IcmpEcho, IcmpPacket, IcmpRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, TcpFlags, TcpPacket, TcpRepr, UdpPacket, UdpRepr, Vlans, L3, L4,
};
use std::net::Ipv4Addr;

/// Source and destination MAC of a frame.
pub type Macs = (EthernetAddress, EthernetAddress);

/// An Ethernet + IPv4 frame, untagged, carrying `l4` (transport bytes already emitted): TTL
/// 64, identification 7, Don't Fragment set, padded to the Ethernet minimum.
pub fn ip_frame(
    macs: Macs,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    l4: &[u8],
) -> Vec<u8> {
    let link = Link {
        src: macs.0,
        dst: macs.1,
        vlans: Vlans::None,
    };
    let header = Ipv4Repr {
        ident: 7,
        ..build::own_header(src, dst, protocol, l4.len())
    };
    let mut f = vec![0u8; 14 + header.buffer_len() + l4.len() + build::MIN_FRAME_LEN];
    let n = build::ipv4_frame(&mut f, &link, &header, l4).expect("buffer sized for the frame");
    f.truncate(n);
    f
}

/// `frame` (untagged) with its TTL set to `ttl`, the IPv4 header checksum updated.
pub fn with_ttl(mut frame: Vec<u8>, ttl: u8) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_checked(&mut frame[14..]).expect("an IPv4 frame");
    ip.set_ttl(ttl);
    ip.fill_checksum();
    frame
}

/// A UDP datagram carrying `payload`, Don't Fragment set or not.
pub fn udp_sized(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    macs: Macs,
    payload: &[u8],
    dont_frag: bool,
) -> Vec<u8> {
    let r = UdpRepr {
        src_port: src.1,
        dst_port: dst.1,
        payload,
    };
    let mut l4 = vec![0u8; r.buffer_len()];
    r.emit(&mut l4, src.0, dst.0, &ChecksumCaps::NONE)
        .expect("sized");
    let mut f = ip_frame(macs, src.0, dst.0, IpProtocol::UDP, &l4);
    if !dont_frag {
        let mut ip = Ipv4Packet::new_checked(&mut f[14..]).expect("an IPv4 frame");
        ip.set_frag(false, false, 0);
        ip.fill_checksum();
    }
    f
}

/// A UDP datagram with a short payload.
pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), macs: Macs) -> Vec<u8> {
    udp_sized(src, dst, macs, b"hello, nat", true)
}

/// A TCP segment with `flags`: a SYN carries an MSS option and no data, anything else four
/// bytes of data; sequence number 1000, acknowledgment 5000 when ACK is set.
pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: TcpFlags, macs: Macs) -> Vec<u8> {
    let r = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        flags,
        seq_number: 1000,
        ack_number: if flags.ack() { 5000 } else { 0 },
        window_len: 65535,
        max_seg_size: flags.syn().then_some(1460),
        payload: if flags.syn() { &[] } else { b"data" },
        ..TcpRepr::default()
    };
    let mut l4 = vec![0u8; r.buffer_len()];
    r.emit(&mut l4, src.0, dst.0, &ChecksumCaps::NONE)
        .expect("sized");
    ip_frame(macs, src.0, dst.0, IpProtocol::TCP, &l4)
}

/// A TCP segment with sequence and acknowledgment numbers `(seq, ack)`, `flags` and
/// `payload`, no options: a host's side of a conversation the test follows number by number.
pub fn tcp_segment(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: TcpFlags,
    (seq, ack): (u32, u32),
    payload: &[u8],
    macs: Macs,
) -> Vec<u8> {
    let r = TcpRepr {
        src_port: src.1,
        dst_port: dst.1,
        flags,
        seq_number: seq,
        ack_number: ack,
        window_len: 65535,
        payload,
        ..TcpRepr::default()
    };
    let mut l4 = vec![0u8; r.buffer_len()];
    r.emit(&mut l4, src.0, dst.0, &ChecksumCaps::NONE)
        .expect("sized");
    ip_frame(macs, src.0, dst.0, IpProtocol::TCP, &l4)
}

/// What a TCP segment that left says of the conversation: control bits, numbers, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Control bits.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Data.
    pub payload: Vec<u8>,
}

/// The TCP segment of an untagged frame that left.
///
/// # Panics
/// If the frame is not IPv4 carrying TCP with a valid checksum ([`seen`]).
pub fn segment(frame: &[u8]) -> Segment {
    seen(frame);
    let ip = Ipv4Packet::new_checked(&frame[14..]).expect("IPv4");
    let tcp = TcpPacket::new_checked(ip.payload_slice()).expect("TCP");
    Segment {
        flags: tcp.flags(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        payload: tcp.payload().to_vec(),
    }
}

/// An ICMP message.
pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, r: IcmpRepr<'_>, macs: Macs) -> Vec<u8> {
    let mut l4 = vec![0u8; r.buffer_len()];
    r.emit(&mut l4).expect("sized");
    ip_frame(macs, src, dst, IpProtocol::ICMP, &l4)
}

/// An echo request (or reply) with identifier `ident`, sequence number 1.
pub fn echo(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, request: bool, macs: Macs) -> Vec<u8> {
    let echo = IcmpEcho {
        ident,
        seq_no: 1,
        data: b"ping-data-0123456789",
    };
    let r = if request {
        IcmpRepr::EchoRequest(echo)
    } else {
        IcmpRepr::EchoReply(echo)
    };
    icmp(src, dst, r, macs)
}

/// An ICMP error from `from` about `offending` (an untagged frame), addressed to the
/// offending packet's source: `kind` 0 port unreachable, 1 time exceeded, anything else
/// fragmentation needed (MTU 1400).
pub fn error_about(offending: &[u8], from: Ipv4Addr, macs: Macs, kind: u8) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let link = Link {
        src: macs.0,
        dst: macs.1,
        vlans: Vlans::None,
    };
    let quoted = &offending[14..];
    let n = match kind {
        0 => build::icmp_dst_unreachable(&mut buf, &link, from, quoted, Unreachable::Port),
        1 => build::icmp_time_exceeded(&mut buf, &link, from, quoted, TimeExceeded::TtlExpired),
        _ => build::icmp_dst_unreachable(
            &mut buf,
            &link,
            from,
            quoted,
            Unreachable::FragNeeded { mtu: 1400 },
        ),
    }
    .expect("an IPv4 frame to quote");
    buf.truncate(n);
    buf
}

/// What a frame that left says: its MACs, addresses, ports (the ICMP identifier for an
/// echo), TTL and transport (TCP flags, ICMP message).
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    /// Ethernet source.
    pub src_mac: EthernetAddress,
    /// Ethernet destination.
    pub dst_mac: EthernetAddress,
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// IPv4 TTL.
    pub ttl: u8,
    /// The transport and what the fast path reads of it.
    pub l4: L4,
}

/// What `frame` says.
///
/// # Panics
/// If the frame does not parse, or its IPv4, TCP, UDP or ICMP checksum does not verify.
pub fn seen(frame: &[u8]) -> Seen {
    let parsed = parse_frame(frame, &ChecksumCaps::NONE).expect("output parses, IPv4 checksum ok");
    let L3::Ipv4(m) = parsed.l3 else {
        panic!("not IPv4: {frame:02x?}")
    };
    let ip = Ipv4Packet::new_checked(&frame[parsed.l3_offset()..]).expect("parsed");
    let payload = ip.payload_slice();
    let ok = match m.l4 {
        L4::Tcp(_) => TcpPacket::new_checked(payload)
            .is_ok_and(|t| t.verify_checksum(ip.src_addr(), ip.dst_addr())),
        L4::Udp => UdpPacket::new_checked(payload)
            .is_ok_and(|u| u.verify_checksum(ip.src_addr(), ip.dst_addr())),
        L4::Icmp(_) => IcmpPacket::new_checked(payload).is_ok_and(|i| i.verify_checksum()),
        _ => true,
    };
    assert!(ok, "transport checksum of {frame:02x?}");
    let mac = |at: usize| {
        let mut a = [0u8; 6];
        a.copy_from_slice(&frame[at..at + 6]);
        EthernetAddress(a)
    };
    Seen {
        dst_mac: mac(0),
        src_mac: mac(6),
        src: (m.tuple.src_addr, m.tuple.src_port),
        dst: (m.tuple.dst_addr, m.tuple.dst_port),
        ttl: ip.ttl(),
        l4: m.l4,
    }
}

/// The quoted packet's addresses and ports in an untagged ICMP error frame.
///
/// # Panics
/// If the frame is not an ICMP error quoting a TCP, UDP or ICMP query header.
pub fn quoted(frame: &[u8]) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).expect("IPv4");
    let q = IcmpPacket::new_checked(ip.payload_slice())
        .expect("ICMP")
        .quote()
        .expect("an error with a quote")
        .five_tuple()
        .expect("a quoted tuple");
    ((q.src_addr, q.src_port), (q.dst_addr, q.dst_port))
}

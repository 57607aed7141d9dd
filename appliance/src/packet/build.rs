//! Builders for the frames the appliance sends itself: ARP, ICMP echo replies and errors, TCP
//! resets.
//!
//! Each writes a whole Ethernet frame into a caller-provided buffer (the data path does not
//! allocate) and returns its length, padded with zeros to the 60-byte Ethernet minimum.
//! Checksums are computed in software: these are rare packets, and a full checksum is right
//! whatever offload flags the mbuf carries.

use std::net::Ipv4Addr;

use super::checksum::ChecksumCaps;
use super::ethernet::{Address, EtherType, Repr as EthernetRepr, Vlans};
use super::icmp::{self, DstUnreachable, Message, TimeExceeded};
use super::ipv4::{self, DEFAULT_TTL};
use super::tcp::{self, Flags};
use super::{arp, Error, IpProtocol};

/// Shortest Ethernet frame without the FCS; shorter frames are padded.
pub const MIN_FRAME_LEN: usize = 60;
/// Largest ICMP error datagram: RFC 1812 section 4.3.2.3 quotes as much of the offending
/// packet as fits in 576 bytes.
pub const ICMP_ERROR_MAX_LEN: usize = 576;
/// DSCP/ECN byte of ICMP errors: precedence 6, internetwork control (as Linux does).
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;

/// Link-layer addressing of a frame to send: source MAC (the port's), destination MAC (the
/// next hop's, or the sender's for a reply) and the VLAN tags to carry (a reply keeps the
/// request's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    /// Our MAC on the port.
    pub src: Address,
    /// The neighbour's MAC.
    pub dst: Address,
    /// Tags, outer first.
    pub vlans: Vlans,
}

/// Why a destination is unreachable, in the forms the appliance sends (RFC 1812 section
/// 5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unreachable {
    /// No route or no neighbour for the destination host (code 1).
    Host,
    /// Nothing listens on the port (code 3), for the appliance's own addresses.
    Port,
    /// Refused by policy (code 13, communication administratively prohibited).
    AdminProhibited,
    /// Too big for the next hop with DF set (code 4), with that hop's MTU (RFC 1191).
    FragNeeded {
        /// MTU of the next hop.
        mtu: u16,
    },
}

fn start(buf: &mut [u8], link: &Link, ethertype: EtherType, l3_len: usize) -> Result<usize, Error> {
    let eth = EthernetRepr {
        src_addr: link.src,
        dst_addr: link.dst,
        vlans: link.vlans,
        ethertype,
    };
    let total = eth.buffer_len() + l3_len;
    if buf.len() < total.max(MIN_FRAME_LEN) {
        return Err(Error::BufferTooSmall);
    }
    eth.emit(buf)
}

fn finish(buf: &mut [u8], len: usize) -> usize {
    if len < MIN_FRAME_LEN {
        buf[len..MIN_FRAME_LEN].fill(0);
        MIN_FRAME_LEN
    } else {
        len
    }
}

fn arp_frame(buf: &mut [u8], link: &Link, repr: &arp::Repr) -> Result<usize, Error> {
    let off = start(buf, link, EtherType::Arp, arp::PACKET_LEN)?;
    let n = repr.emit(&mut buf[off..])?;
    Ok(finish(buf, off + n))
}

/// ARP request for `target_ip` from `sender` (our MAC and address), broadcast (RFC 826).
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn arp_request(
    buf: &mut [u8],
    sender_mac: Address,
    vlans: Vlans,
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Result<usize, Error> {
    let link = Link {
        src: sender_mac,
        dst: Address::BROADCAST,
        vlans,
    };
    let repr = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: sender_mac,
        source_protocol_addr: sender_ip,
        target_hardware_addr: Address([0; 6]),
        target_protocol_addr: target_ip,
    };
    arp_frame(buf, &link, &repr)
}

/// ARP reply telling `link.dst` (who asked for `our_ip` from `their_ip`) that `our_ip` is at
/// `link.src`, unicast to the asker (RFC 826).
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn arp_reply(
    buf: &mut [u8],
    link: &Link,
    our_ip: Ipv4Addr,
    their_ip: Ipv4Addr,
) -> Result<usize, Error> {
    let repr = arp::Repr {
        operation: arp::Operation::Reply,
        source_hardware_addr: link.src,
        source_protocol_addr: our_ip,
        target_hardware_addr: link.dst,
        target_protocol_addr: their_ip,
    };
    arp_frame(buf, link, &repr)
}

/// Gratuitous ARP announcing `ip` at `mac`: a broadcast request whose sender and target
/// address are both `ip` (RFC 5227 section 3 "ARP Announcement"), so neighbours update
/// their caches at start-up or fail-over.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn gratuitous_arp(
    buf: &mut [u8],
    mac: Address,
    vlans: Vlans,
    ip: Ipv4Addr,
) -> Result<usize, Error> {
    arp_request(buf, mac, vlans, ip, ip)
}

/// Whether an address may receive an ICMP error or a RST (RFC 1812 section 4.3.2.7): not
/// unspecified, broadcast, multicast, loopback or class E.
fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_loopback()
        || a.octets()[0] >= 240)
}

/// ICMP echo reply to the echo request `request` (an IPv4 packet, from its header on),
/// returning the data unchanged (RFC 1122 section 3.2.2.6). The reply comes from the
/// address the request was sent to.
///
/// # Errors
/// IPv4 validation errors of `request`, [`Error::IcmpTruncated`], [`Error::IcmpUnsupported`]
/// if it is not an echo request, [`Error::Ipv4Fragment`] if fragmented (the appliance does not
/// reassemble), [`Error::BufferTooSmall`].
pub fn icmp_echo_reply(buf: &mut [u8], link: &Link, request: &[u8]) -> Result<usize, Error> {
    let ip = ipv4::Packet::new_checked(request)?;
    if ip.protocol() != IpProtocol::Icmp {
        return Err(Error::IcmpUnsupported);
    }
    if ip.is_fragment() {
        return Err(Error::Ipv4Fragment);
    }
    let req = icmp::Packet::new_checked(ip.payload())?;
    if req.msg_type() != Message::EchoRequest {
        return Err(Error::IcmpUnsupported);
    }
    let repr = icmp::Repr::EchoReply {
        ident: req.echo_ident(),
        seq_no: req.echo_seq_no(),
        data: req.data_bytes(),
    };
    let ip_repr = ipv4::Repr {
        src_addr: ip.dst_addr(),
        dst_addr: ip.src_addr(),
        protocol: IpProtocol::Icmp,
        payload_len: repr.buffer_len(),
        ttl: DEFAULT_TTL,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let off = start(buf, link, EtherType::Ipv4, ip_repr.buffer_len())?;
    let hl = ip_repr.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let n = repr.emit(&mut buf[off + hl..])?;
    Ok(finish(buf, off + hl + n))
}

/// Common part of the ICMP error builders: checks RFC 1812 section 4.3.2.7 and quotes the
/// offending packet per section 4.3.2.3.
fn icmp_error(
    buf: &mut [u8],
    link: &Link,
    src: Ipv4Addr,
    offending: &[u8],
    repr_of: impl FnOnce(&[u8]) -> icmp::Repr<'_>,
) -> Result<usize, Error> {
    let ip = ipv4::Packet::new_checked(offending)?;
    if !ip.is_first_fragment() || !is_unicast(ip.src_addr()) || !is_unicast(ip.dst_addr()) {
        return Err(Error::ReplyNotAllowed);
    }
    if ip.protocol() == IpProtocol::Icmp {
        match ip.payload().first() {
            Some(&t) if !Message::from(t).is_error() => {}
            _ => return Err(Error::ReplyNotAllowed),
        }
    }
    let quote_max = ICMP_ERROR_MAX_LEN - ipv4::HEADER_LEN - icmp::HEADER_LEN;
    let quote = &offending[..ip.total_len().min(quote_max)];
    let repr = repr_of(quote);
    let ip_repr = ipv4::Repr {
        src_addr: src,
        dst_addr: ip.src_addr(),
        protocol: IpProtocol::Icmp,
        payload_len: repr.buffer_len(),
        ttl: DEFAULT_TTL,
        dscp_ecn: TOS_INTERNETWORK_CONTROL,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let off = start(buf, link, EtherType::Ipv4, ip_repr.buffer_len())?;
    let hl = ip_repr.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let n = repr.emit(&mut buf[off + hl..])?;
    Ok(finish(buf, off + hl + n))
}

/// ICMP time exceeded from `src` (our address on the port) about `offending` (an IPv4
/// packet from its header on, as received: TTL not yet decremented), quoting up to 576 bytes
/// of datagram (RFC 1812 section 4.3.2.3).
///
/// # Errors
/// IPv4 validation errors of `offending`, [`Error::ReplyNotAllowed`] (RFC 1812 section
/// 4.3.2.7: about an ICMP error, a non-first fragment, or a non-unicast address; the caller
/// checks link-layer broadcast), [`Error::BufferTooSmall`].
pub fn icmp_time_exceeded(
    buf: &mut [u8],
    link: &Link,
    src: Ipv4Addr,
    offending: &[u8],
    reason: TimeExceeded,
) -> Result<usize, Error> {
    icmp_error(buf, link, src, offending, |quote| {
        icmp::Repr::TimeExceeded { reason, quote }
    })
}

/// ICMP destination unreachable from `src` about `offending`, quoting as
/// [`icmp_time_exceeded`] does.
///
/// # Errors
/// As [`icmp_time_exceeded`].
pub fn icmp_dst_unreachable(
    buf: &mut [u8],
    link: &Link,
    src: Ipv4Addr,
    offending: &[u8],
    why: Unreachable,
) -> Result<usize, Error> {
    let (reason, next_hop_mtu) = match why {
        Unreachable::Host => (DstUnreachable::HostUnreachable, 0),
        Unreachable::Port => (DstUnreachable::PortUnreachable, 0),
        Unreachable::AdminProhibited => (DstUnreachable::CommProhibited, 0),
        Unreachable::FragNeeded { mtu } => (DstUnreachable::FragRequired, mtu),
    };
    icmp_error(buf, link, src, offending, |quote| {
        icmp::Repr::DstUnreachable {
            reason,
            next_hop_mtu,
            quote,
        }
    })
}

/// TCP reset answering `offending` (an IPv4 packet carrying TCP), from the address and port
/// it was sent to (RFC 9293 section 3.10.7.1): with ACK in the segment, `SEQ = SEG.ACK`;
/// without, `SEQ = 0, ACK = SEG.SEQ + SEG.LEN` with the ACK bit.
///
/// # Errors
/// IPv4 and TCP validation errors of `offending`, [`Error::ReplyNotAllowed`] for a RST (never
/// answered), a non-first fragment or a non-unicast address, [`Error::BufferTooSmall`].
pub fn tcp_rst(buf: &mut [u8], link: &Link, offending: &[u8]) -> Result<usize, Error> {
    let ip = ipv4::Packet::new_checked(offending)?;
    if ip.protocol() != IpProtocol::Tcp
        || !ip.is_first_fragment()
        || !is_unicast(ip.src_addr())
        || !is_unicast(ip.dst_addr())
    {
        return Err(Error::ReplyNotAllowed);
    }
    let seg = tcp::Packet::new_checked(ip.payload())?;
    if seg.flags().rst() {
        return Err(Error::ReplyNotAllowed);
    }
    let (seq_number, ack_number, flags) = if seg.flags().ack() {
        (seg.ack_number(), 0, Flags::RST)
    } else {
        let ack = seg.seq_number().wrapping_add(seg.segment_len() as u32);
        (0, ack, Flags::RST | Flags::ACK)
    };
    let repr = tcp::Repr {
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        flags,
        seq_number,
        ack_number,
        window_len: 0,
        urgent_at: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        timestamps: None,
        payload: &[],
    };
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let ip_repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Tcp,
        payload_len: repr.buffer_len(),
        ttl: DEFAULT_TTL,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let off = start(buf, link, EtherType::Ipv4, ip_repr.buffer_len())?;
    let hl = ip_repr.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let n = repr.emit(&mut buf[off + hl..], src, dst, &ChecksumCaps::NONE)?;
    Ok(finish(buf, off + hl + n))
}

//! Builders for the frames the appliance sends itself: ARP, ICMP echo replies and errors, TCP
//! resets, the health probe's SYN-ACK and later segments; a plain UDP datagram, the traffic the benchmark generators make; and any IPv4
//! packet around transport bytes, the frame `explain` and the tests start from.
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
use super::{arp, geneve, udp, vxlan, Error, IpProtocol};

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

/// The IPv4 header of a packet the appliance originates: default TTL, Don't Fragment, no
/// identification (RFC 6864: an atomic datagram's ID is not used), ordinary service class.
/// `explain` and the tests start their hosts' packets from it too, changing what they need
/// (`Ipv4Repr { ttl, ..own_header(..) }`).
pub fn own_header(
    src_addr: Ipv4Addr,
    dst_addr: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
) -> ipv4::Repr {
    ipv4::Repr {
        src_addr,
        dst_addr,
        protocol,
        payload_len,
        ttl: DEFAULT_TTL,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
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
    if ip.protocol() != IpProtocol::ICMP {
        return Err(Error::IcmpUnsupported);
    }
    if ip.is_fragment() {
        return Err(Error::Ipv4Fragment);
    }
    let req = icmp::Packet::new_checked(ip.payload())?;
    if req.msg_type() != Message::EchoRequest {
        return Err(Error::IcmpUnsupported);
    }
    let repr = icmp::Repr::EchoReply(icmp::Echo::of(&req));
    let ip_repr = own_header(
        ip.dst_addr(),
        ip.src_addr(),
        IpProtocol::ICMP,
        repr.buffer_len(),
    );
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
    if ip.protocol() == IpProtocol::ICMP {
        match ip.payload().first() {
            Some(&t) if !Message::from(t).is_error() => {}
            _ => return Err(Error::ReplyNotAllowed),
        }
    }
    let quote_max = ICMP_ERROR_MAX_LEN - ipv4::HEADER_LEN - icmp::HEADER_LEN;
    let quote = &offending[..ip.total_len().min(quote_max)];
    let repr = repr_of(quote);
    let ip_repr = ipv4::Repr {
        dscp_ecn: TOS_INTERNETWORK_CONTROL,
        ..own_header(src, ip.src_addr(), IpProtocol::ICMP, repr.buffer_len())
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
    if ip.protocol() != IpProtocol::TCP
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
        ..tcp::Repr::default()
    };
    tcp_reply(buf, link, &ip, &repr)
}

/// The segment `repr` back to the sender of `ip`, from the address it was sent to.
fn tcp_reply(
    buf: &mut [u8],
    link: &Link,
    ip: &ipv4::Packet<&[u8]>,
    repr: &tcp::Repr<'_>,
) -> Result<usize, Error> {
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let ip_repr = own_header(src, dst, IpProtocol::TCP, repr.buffer_len());
    let off = start(buf, link, EtherType::Ipv4, ip_repr.buffer_len())?;
    let hl = ip_repr.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let n = repr.emit(&mut buf[off + hl..], src, dst, &ChecksumCaps::NONE)?;
    Ok(finish(buf, off + hl + n))
}

/// Window of the SYN-ACK [`tcp_syn_ack`] sends: 44 full segments of [`SYN_ACK_MSS`].
const SYN_ACK_WINDOW: u16 = 64240;
/// MSS option of the SYN-ACK [`tcp_syn_ack`] sends: an Ethernet host's.
const SYN_ACK_MSS: u16 = 1460;

/// SYN-ACK answering `syn` (an IPv4 packet carrying a TCP SYN) from the address and port it
/// was sent to, with initial sequence number `isn` and `ACK = SEG.SEQ + 1` (RFC 9293 section
/// 3.5), window 64240 and an MSS option of 1460: the health probe's half of a handshake,
/// which keeps no state (the next segment gets a [`tcp_rst`]). The caller checks that `syn`
/// is a SYN without ACK and picks `isn` (RFC 9293 section 3.4.1: not predictable from
/// outside).
///
/// # Errors
/// IPv4 and TCP validation errors of `syn`, [`Error::BufferTooSmall`].
pub fn tcp_syn_ack(buf: &mut [u8], link: &Link, syn: &[u8], isn: u32) -> Result<usize, Error> {
    let ip = ipv4::Packet::new_checked(syn)?;
    let seg = tcp::Packet::new_checked(ip.payload())?;
    let repr = tcp::Repr {
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        flags: Flags::SYN | Flags::ACK,
        seq_number: isn,
        ack_number: seg.seq_number().wrapping_add(1),
        window_len: SYN_ACK_WINDOW,
        max_seg_size: Some(SYN_ACK_MSS),
        ..tcp::Repr::default()
    };
    tcp_reply(buf, link, &ip, &repr)
}

/// A segment of the health probe's side of a connection it keeps no state for: the
/// sequence and acknowledgment numbers the caller worked out from the segment it answers,
/// the control bits, and the data (an HTTP response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sequence number of the first byte (or of the SYN or FIN).
    pub seq: u32,
    /// Acknowledgment number (sent with the ACK bit in `flags`).
    pub ack: u32,
    /// Control bits.
    pub flags: Flags,
    /// Data.
    pub payload: &'a [u8],
}

/// The segment `seg` back to the sender of `received` (an IPv4 packet carrying TCP), from the
/// address and port it was sent to, with the window of [`tcp_syn_ack`]: the health probe's
/// answers after its SYN-ACK (data with FIN, or the ACK of a FIN), RFC 9293 section 3.10.7.4.
///
/// # Errors
/// IPv4 and TCP validation errors of `received`, [`Error::ReplyNotAllowed`] when it is not
/// TCP or a non-first fragment, [`Error::BufferTooSmall`].
pub fn tcp_answer(
    buf: &mut [u8],
    link: &Link,
    received: &[u8],
    seg: &Segment<'_>,
) -> Result<usize, Error> {
    let ip = ipv4::Packet::new_checked(received)?;
    if ip.protocol() != IpProtocol::TCP || !ip.is_first_fragment() {
        return Err(Error::ReplyNotAllowed);
    }
    let theirs = tcp::Packet::new_checked(ip.payload())?;
    let repr = tcp::Repr {
        src_port: theirs.dst_port(),
        dst_port: theirs.src_port(),
        flags: seg.flags,
        seq_number: seg.seq,
        ack_number: seg.ack,
        window_len: SYN_ACK_WINDOW,
        payload: seg.payload,
        ..tcp::Repr::default()
    };
    tcp_reply(buf, link, &ip, &repr)
}

/// A UDP datagram from `src` to `dst` carrying `payload` (TTL 64, DF set, checksums
/// computed), as the benchmark generators send: 18 payload bytes make a 64-byte frame with
/// the FCS.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn udp_datagram(
    buf: &mut [u8],
    link: &Link,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Result<usize, Error> {
    let repr = udp::Repr {
        src_port: src.1,
        dst_port: dst.1,
        payload,
    };
    let ip_repr = own_header(src.0, dst.0, IpProtocol::UDP, repr.buffer_len());
    let off = start(buf, link, EtherType::Ipv4, ip_repr.buffer_len())?;
    let hl = ip_repr.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let n = repr.emit(&mut buf[off + hl..], src.0, dst.0, &ChecksumCaps::NONE)?;
    Ok(finish(buf, off + hl + n))
}

/// An Ethernet frame carrying `header` and the transport bytes `l4` (already emitted, with
/// their checksum): the frame a host on the link would send. The header's payload length is
/// `l4`'s whatever `header` says, and its checksum is computed.
///
/// # Errors
/// [`Error::BufferTooSmall`].
pub fn ipv4_frame(
    buf: &mut [u8],
    link: &Link,
    header: &ipv4::Repr,
    l4: &[u8],
) -> Result<usize, Error> {
    let header = ipv4::Repr {
        payload_len: l4.len(),
        ..*header
    };
    let off = start(buf, link, EtherType::Ipv4, header.buffer_len() + l4.len())?;
    let hl = header.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    buf[off + hl..off + hl + l4.len()].copy_from_slice(l4);
    Ok(finish(buf, off + hl + l4.len()))
}

/// The tunnel header of a frame [`encapsulated`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap<'a> {
    /// GENEVE (RFC 8926), options and all.
    Geneve(geneve::Repr<'a>),
    /// VXLAN (RFC 7348).
    Vxlan(vxlan::Repr),
}

impl Encap<'_> {
    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Encap::Geneve(r) => r.buffer_len(),
            Encap::Vxlan(r) => r.buffer_len(),
        }
    }

    fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        match self {
            Encap::Geneve(r) => r.emit(buf),
            Encap::Vxlan(r) => r.emit(buf),
        }
    }
}

/// A tunnel packet as a gateway load balancer sends it to its target: a UDP datagram from
/// `src` to `dst` (TTL 64, DF set, the UDP checksum computed) carrying `header` and then
/// `inner`, the packet in the tunnel (an IP packet or an Ethernet frame, as the header
/// says). `explain` and the tests start from it.
///
/// # Errors
/// [`Error::BufferTooSmall`]; the header's own emit errors.
pub fn encapsulated(
    buf: &mut [u8],
    link: &Link,
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    header: &Encap<'_>,
    inner: &[u8],
) -> Result<usize, Error> {
    let payload_len = header.buffer_len() + inner.len();
    let ip = own_header(src.0, dst.0, IpProtocol::UDP, udp::HEADER_LEN + payload_len);
    let off = start(buf, link, EtherType::Ipv4, ip.buffer_len())?;
    let hl = ip.emit(&mut buf[off..], &ChecksumCaps::NONE)?;
    let at = off + hl;
    let end = at + udp::HEADER_LEN + payload_len;
    // The tunnel header and the inner packet first, in place; then the UDP header over them.
    let n = header.emit(&mut buf[at + udp::HEADER_LEN..end])?;
    buf[at + udp::HEADER_LEN + n..end].copy_from_slice(inner);
    let mut datagram = udp::Packet::new_unchecked(&mut buf[at..end]);
    datagram.set_src_port(src.1);
    datagram.set_dst_port(dst.1);
    datagram.set_len((end - at) as u16);
    datagram.fill_checksum(src.0, dst.0, &ChecksumCaps::NONE);
    Ok(finish(buf, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ethernet::{Frame, VlanTag};
    use crate::packet::{icmp, ipv4, tcp, udp, IcmpRepr};

    const OUR_MAC: Address = Address([0x02, 0, 0, 0, 0, 0x01]);
    const PEER_MAC: Address = Address([0x02, 0, 0, 0, 0, 0x02]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
    const LINK: Link = Link {
        src: OUR_MAC,
        dst: PEER_MAC,
        vlans: Vlans::None,
    };

    #[rustfmt::skip]
    const ARP_REQUEST_FRAME: [u8; 60] = [
        // Ethernet: dst broadcast, src 02:00:00:00:00:01, ARP
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
        // ARP: Ethernet, IPv4, 6, 4, request
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        // sender 02:00:00:00:00:01 192.168.1.1
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01,
        // target 00:00:00:00:00:00 192.168.1.2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x02,
        // padding to 60 bytes
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn arp_request_known_frame() {
        let mut buf = [0xaau8; 128];
        let n = arp_request(&mut buf, OUR_MAC, Vlans::None, OUR_IP, PEER_IP).unwrap();
        assert_eq!(buf[..n], ARP_REQUEST_FRAME);
        assert_eq!(
            arp_request(&mut buf[..59], OUR_MAC, Vlans::None, OUR_IP, PEER_IP),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn arp_reply_and_gratuitous_with_vlan() {
        let vlans = Vlans::One(VlanTag::new(42));
        let mut buf = [0u8; 128];
        let n = arp_reply(&mut buf, &Link { vlans, ..LINK }, OUR_IP, PEER_IP).unwrap();
        assert_eq!(n, 60);
        let f = Frame::new_checked(&buf[..n]).unwrap();
        let (et, off, v) = f.layers().unwrap();
        assert_eq!((et, off, v), (EtherType::Arp, 18, vlans));
        let r = arp::Repr::parse(&arp::Packet::new_checked(&buf[off..n]).unwrap()).unwrap();
        assert_eq!(r.operation, arp::Operation::Reply);
        assert_eq!(
            (r.source_hardware_addr, r.target_hardware_addr),
            (OUR_MAC, PEER_MAC)
        );
        assert_eq!(
            (r.source_protocol_addr, r.target_protocol_addr),
            (OUR_IP, PEER_IP)
        );

        let n = gratuitous_arp(&mut buf, OUR_MAC, Vlans::None, OUR_IP).unwrap();
        let r = arp::Repr::parse(&arp::Packet::new_checked(&buf[14..n]).unwrap()).unwrap();
        assert_eq!(r.operation, arp::Operation::Request);
        assert_eq!(r.source_protocol_addr, OUR_IP);
        assert_eq!(r.target_protocol_addr, OUR_IP);
        assert!(Frame::new_checked(&buf[..n])
            .unwrap()
            .dst_addr()
            .is_broadcast());
    }

    /// An IPv4 packet from PEER_IP to `dst` with the given transport bytes, checksums right.
    fn ip_packet(dst: Ipv4Addr, protocol: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let repr = ipv4::Repr {
            src_addr: PEER_IP,
            dst_addr: dst,
            protocol,
            payload_len: l4.len(),
            ttl: 1,
            dscp_ecn: 0,
            ident: 7,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        let mut v = vec![0u8; repr.buffer_len()];
        let hl = repr.emit(&mut v, &ChecksumCaps::NONE).unwrap();
        v[hl..].copy_from_slice(l4);
        v
    }

    fn udp_packet(dst: Ipv4Addr, payload_len: usize) -> Vec<u8> {
        let payload = vec![0x5a; payload_len];
        let repr = udp::Repr {
            src_port: 5000,
            dst_port: 33434,
            payload: &payload,
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, PEER_IP, dst, &ChecksumCaps::NONE)
            .unwrap();
        ip_packet(dst, IpProtocol::UDP, &l4)
    }

    /// Parse a built frame down to its ICMP message, checking every checksum on the way.
    fn icmp_of(frame: &[u8]) -> (ipv4::Repr, IcmpRepr<'_>) {
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        let ip_repr = ipv4::Repr::parse(&ip, &ChecksumCaps::NONE).unwrap();
        let msg = icmp::Packet::new_checked(ip.payload()).unwrap();
        (ip_repr, IcmpRepr::parse(&msg).unwrap())
    }

    #[test]
    fn echo_reply_returns_data() {
        let echo = icmp::Echo {
            ident: 0x4242,
            seq_no: 3,
            data: b"0123456789",
        };
        let req = IcmpRepr::EchoRequest(echo);
        let mut l4 = [0u8; 18];
        req.emit(&mut l4).unwrap();
        let pkt = ip_packet(OUR_IP, IpProtocol::ICMP, &l4);
        let mut buf = [0u8; 256];
        let n = icmp_echo_reply(&mut buf, &LINK, &pkt).unwrap();
        assert_eq!(n, MIN_FRAME_LEN); // 14 + 20 + 18 = 52, padded
        let (ip, msg) = icmp_of(&buf[..n]);
        assert_eq!(
            (ip.src_addr, ip.dst_addr, ip.ttl),
            (OUR_IP, PEER_IP, DEFAULT_TTL)
        );
        assert_eq!(msg, IcmpRepr::EchoReply(echo));
        // Not an echo request.
        let pkt = udp_packet(OUR_IP, 4);
        assert_eq!(
            icmp_echo_reply(&mut buf, &LINK, &pkt),
            Err(Error::IcmpUnsupported)
        );
        assert_eq!(
            icmp_echo_reply(
                &mut buf[..40],
                &LINK,
                &ip_packet(OUR_IP, IpProtocol::ICMP, &l4)
            ),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn time_exceeded_quotes_whole_small_packet() {
        let pkt = udp_packet(Ipv4Addr::new(198, 51, 100, 9), 12);
        let mut buf = [0u8; 1024];
        let n =
            icmp_time_exceeded(&mut buf, &LINK, OUR_IP, &pkt, TimeExceeded::TtlExpired).unwrap();
        let (ip, msg) = icmp_of(&buf[..n]);
        assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
        assert_eq!(ip.dscp_ecn, 0xc0);
        assert_eq!(
            msg,
            IcmpRepr::TimeExceeded {
                reason: TimeExceeded::TtlExpired,
                quote: &pkt
            }
        );
    }

    #[test]
    fn errors_quote_at_most_576_bytes() {
        let pkt = udp_packet(Ipv4Addr::new(198, 51, 100, 9), 1200);
        let mut buf = [0u8; 2048];
        let n = icmp_dst_unreachable(
            &mut buf,
            &LINK,
            OUR_IP,
            &pkt,
            Unreachable::FragNeeded { mtu: 1280 },
        )
        .unwrap();
        assert_eq!(n, 14 + ICMP_ERROR_MAX_LEN);
        let (_, msg) = icmp_of(&buf[..n]);
        assert_eq!(
            msg,
            IcmpRepr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: 1280,
                quote: &pkt[..548]
            }
        );
        for (why, code) in [
            (Unreachable::Host, DstUnreachable::HostUnreachable),
            (Unreachable::Port, DstUnreachable::PortUnreachable),
            (Unreachable::AdminProhibited, DstUnreachable::CommProhibited),
        ] {
            let n = icmp_dst_unreachable(&mut buf, &LINK, OUR_IP, &pkt[..60], why);
            // A truncated offending packet is refused (its total length says 1228).
            assert_eq!(n, Err(Error::Ipv4Truncated));
            let n = icmp_dst_unreachable(&mut buf, &LINK, OUR_IP, &pkt, why).unwrap();
            match icmp_of(&buf[..n]).1 {
                IcmpRepr::DstUnreachable {
                    reason,
                    next_hop_mtu: 0,
                    ..
                } => assert_eq!(reason, code),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn no_error_about_errors_fragments_or_non_unicast() {
        let mut buf = [0u8; 1024];
        let te = |buf: &mut [u8], p: &[u8]| {
            icmp_time_exceeded(buf, &LINK, OUR_IP, p, TimeExceeded::TtlExpired)
        };
        // About an ICMP error.
        let n = te(&mut buf, &udp_packet(OUR_IP, 8)).unwrap();
        let err = buf[14..n].to_vec();
        assert_eq!(te(&mut buf, &err), Err(Error::ReplyNotAllowed));
        // About a later fragment.
        let mut frag = udp_packet(OUR_IP, 8);
        let mut p = ipv4::Packet::new_checked(&mut frag[..]).unwrap();
        p.set_frag(false, false, 8);
        p.fill_checksum();
        assert_eq!(te(&mut buf, &frag), Err(Error::ReplyNotAllowed));
        // To a multicast or from a broadcast address.
        assert_eq!(
            te(&mut buf, &udp_packet(Ipv4Addr::new(224, 0, 0, 251), 8)),
            Err(Error::ReplyNotAllowed)
        );
        let mut bcast = udp_packet(OUR_IP, 8);
        let mut p = ipv4::Packet::new_checked(&mut bcast[..]).unwrap();
        p.set_src_addr(Ipv4Addr::BROADCAST);
        p.fill_checksum();
        assert_eq!(te(&mut buf, &bcast), Err(Error::ReplyNotAllowed));
        // An echo request may be answered with an error.
        let mut echo = [0u8; 8];
        IcmpRepr::EchoRequest(icmp::Echo {
            ident: 1,
            seq_no: 1,
            data: &[],
        })
        .emit(&mut echo)
        .unwrap();
        assert!(te(&mut buf, &ip_packet(OUR_IP, IpProtocol::ICMP, &echo)).is_ok());
    }

    fn tcp_segment(flags: tcp::Flags, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let repr = tcp::Repr {
            src_port: 40000,
            dst_port: 22,
            flags,
            seq_number: seq,
            ack_number: ack,
            window_len: 1000,
            payload,
            ..tcp::Repr::default()
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(&mut l4, PEER_IP, OUR_IP, &ChecksumCaps::NONE)
            .unwrap();
        ip_packet(OUR_IP, IpProtocol::TCP, &l4)
    }

    /// The TCP segment of a built frame, from OUR_IP to PEER_IP, every checksum verified.
    fn segment_of(frame: &[u8]) -> tcp::Repr<'_> {
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (OUR_IP, PEER_IP));
        assert!(ip.verify_checksum());
        let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
        tcp::Repr::parse(&seg, OUR_IP, PEER_IP, &ChecksumCaps::NONE).unwrap()
    }

    #[test]
    fn rst_for_syn_and_for_ack() {
        let mut buf = [0u8; 128];
        // SYN without ACK: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>.
        let n = tcp_rst(
            &mut buf,
            &LINK,
            &tcp_segment(tcp::Flags::SYN, 0xffff_ffff, 0, &[]),
        )
        .unwrap();
        assert_eq!(n, 60);
        let r = segment_of(&buf[..n]);
        assert_eq!((r.src_port, r.dst_port), (22, 40000));
        assert_eq!(r.flags, tcp::Flags::RST | tcp::Flags::ACK);
        assert_eq!((r.seq_number, r.ack_number), (0, 0));
        // Data with ACK: <SEQ=SEG.ACK><CTL=RST>.
        let seg = tcp_segment(tcp::Flags::ACK | tcp::Flags::PSH, 100, 5000, b"hello");
        let n = tcp_rst(&mut buf, &LINK, &seg).unwrap();
        let r = segment_of(&buf[..n]);
        assert_eq!(r.flags, tcp::Flags::RST);
        assert_eq!(r.seq_number, 5000);
        // FIN with data, no ACK: ACK = SEQ + len + 1.
        let n = tcp_rst(
            &mut buf,
            &LINK,
            &tcp_segment(tcp::Flags::FIN, 100, 0, b"abc"),
        )
        .unwrap();
        assert_eq!(segment_of(&buf[..n]).ack_number, 104);
        // Never answer a RST.
        let seg = tcp_segment(tcp::Flags::RST, 1, 0, &[]);
        assert_eq!(tcp_rst(&mut buf, &LINK, &seg), Err(Error::ReplyNotAllowed));
        assert_eq!(
            tcp_rst(&mut buf, &LINK, &udp_packet(OUR_IP, 4)),
            Err(Error::ReplyNotAllowed)
        );
        let seg = tcp_segment(tcp::Flags::SYN, 1, 0, &[]);
        assert_eq!(
            tcp_rst(&mut buf[..59], &LINK, &seg),
            Err(Error::BufferTooSmall)
        );
    }

    /// The health probe's SYN-ACK to a SYN from 192.168.1.2:40000 to 192.168.1.1:22 with
    /// sequence number 0xffffffff, ISN 0x12345678 (the bytes pipeline/local.rs wrote itself
    /// before the builder).
    #[rustfmt::skip]
    const SYN_ACK_FRAME: [u8; 60] = [
        // Ethernet: dst 02:00:00:00:00:02, src 02:00:00:00:00:01, IPv4
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
        // IPv4: ihl 5, tos 0, total 44, id 0, DF, ttl 64, TCP, checksum 0xb778
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xb7, 0x78,
        // src 192.168.1.1, dst 192.168.1.2
        0xc0, 0xa8, 0x01, 0x01, 0xc0, 0xa8, 0x01, 0x02,
        // TCP: sport 22, dport 40000, seq 0x12345678, ack 0 (SEG.SEQ + 1 wraps)
        0x00, 0x16, 0x9c, 0x40, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00,
        // data offset 6, SYN+ACK, window 64240, checksum 0x14cf, urgent 0
        0x60, 0x12, 0xfa, 0xf0, 0x14, 0xcf, 0x00, 0x00,
        // MSS 1460
        0x02, 0x04, 0x05, 0xb4,
        // padding to 60 bytes
        0x00, 0x00,
    ];

    #[test]
    fn syn_ack_known_frame() {
        let syn = tcp_segment(tcp::Flags::SYN, 0xffff_ffff, 0, &[]);
        let mut buf = [0xaau8; 128];
        let n = tcp_syn_ack(&mut buf, &LINK, &syn, 0x1234_5678).unwrap();
        assert_eq!(buf[..n], SYN_ACK_FRAME);
        let r = segment_of(&buf[..n]);
        assert_eq!(r.flags, tcp::Flags::SYN | tcp::Flags::ACK);
        assert_eq!(
            tcp_syn_ack(&mut buf[..59], &LINK, &syn, 1),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            tcp_syn_ack(&mut buf, &LINK, &syn[..39], 1),
            Err(Error::Ipv4Truncated)
        );
    }

    #[test]
    fn answer_carries_data_and_fin() {
        let get = tcp_segment(
            tcp::Flags::ACK | tcp::Flags::PSH,
            1001,
            5001,
            b"GET / HTTP/1.1\r\n",
        );
        let mut buf = [0u8; 256];
        let seg = Segment {
            seq: 5001,
            ack: 1017,
            flags: tcp::Flags::ACK | tcp::Flags::PSH | tcp::Flags::FIN,
            payload: b"HTTP/1.1 200 OK\r\n\r\n",
        };
        let n = tcp_answer(&mut buf, &LINK, &get, &seg).unwrap();
        let r = segment_of(&buf[..n]);
        assert_eq!((r.src_port, r.dst_port), (22, 40000));
        assert_eq!(
            (r.seq_number, r.ack_number, r.flags),
            (5001, 1017, seg.flags)
        );
        assert_eq!(r.payload, seg.payload);
        assert_eq!(r.window_len, SYN_ACK_WINDOW);
        assert_eq!(
            tcp_answer(&mut buf, &LINK, &udp_packet(OUR_IP, 4), &seg),
            Err(Error::ReplyNotAllowed)
        );
        assert_eq!(
            tcp_answer(&mut buf[..70], &LINK, &get, &seg),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn udp_datagram_is_a_valid_64_byte_frame() {
        let link = Link {
            src: OUR_MAC,
            dst: Address([0x02, 0, 0, 0, 0, 0x99]),
            vlans: Vlans::None,
        };
        let (src, dst) = ((OUR_IP, 40000), (Ipv4Addr::new(198, 51, 100, 7), 53));
        let mut buf = [0u8; 64];
        let n = udp_datagram(&mut buf, &link, src, dst, &[0x5a; 18]).unwrap();
        assert_eq!(n, 60, "64 bytes with the FCS");
        let p = crate::packet::parse_frame(&buf[..n], &ChecksumCaps::NONE).unwrap();
        let crate::packet::L3::Ipv4(m) = p.l3 else {
            panic!("not IPv4: {p:?}")
        };
        assert_eq!(
            (
                m.tuple.src_addr,
                m.tuple.src_port,
                m.tuple.dst_addr,
                m.tuple.dst_port
            ),
            (src.0, src.1, dst.0, dst.1)
        );
        let ip = ipv4::Packet::new_checked(&buf[14..n]).unwrap();
        assert!(ip.verify_checksum());
        let d = udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(d.verify_checksum(src.0, dst.0));
        assert_eq!(
            udp_datagram(&mut [0u8; 40], &link, src, dst, &[0; 18]),
            Err(Error::BufferTooSmall)
        );
    }
}

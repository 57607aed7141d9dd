//! One-pass classification of a received frame for the fast path.

use super::checksum::ChecksumCaps;
use super::ethernet::{self, EtherType, Vlans};
use std::net::Ipv4Addr;

use super::field::{get_u16, get_u32};
use super::icmp::Message as IcmpMessage;
use super::ipv4;
use super::ipv6::{self, Summary as Ipv6Summary};
use super::tcp::Flags as TcpFlags;
use super::translate::Offsets;
use super::tuple::{l4_ports, FiveTuple};
use super::{arp, tcp, udp, Error, IpProtocol};

/// What a frame is, found in one pass without allocation: the first thing the pipeline does
/// with each received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame {
    /// VLAN tags, outer first.
    pub vlans: Vlans,
    // Offsets are stored narrow and read through methods: a smaller result is cheaper to
    // return on the fast path.
    l3_offset: u16,
    /// The L3 protocol and what was learned from it.
    pub l3: L3,
}

impl ParsedFrame {
    /// Offset of the L3 header in the frame (past the VLAN tags).
    #[inline]
    pub fn l3_offset(&self) -> usize {
        usize::from(self.l3_offset)
    }

    /// The same frame seen from `by` bytes before its start: every offset moved by `by`
    /// (an inner frame's offsets in the whole tunnel packet).
    pub(crate) fn moved(self, by: usize) -> ParsedFrame {
        let l3 = match self.l3 {
            L3::Ipv4(m) => L3::Ipv4(Ipv4Meta {
                l4_offset: m.l4_offset + by as u32,
                l3_end: m.l3_end + by as u32,
                ..m
            }),
            other => other,
        };
        ParsedFrame {
            l3_offset: self.l3_offset + by as u16,
            l3,
            ..self
        }
    }

    /// Where an IPv4 packet's headers lie in the frame, for [`super::translate::translate`];
    /// `None` for anything else.
    pub fn offsets(&self) -> Option<Offsets> {
        let L3::Ipv4(m) = &self.l3 else {
            return None;
        };
        Some(Offsets {
            l3: self.l3_offset,
            l4: m.l4_offset as u16,
            end: m.l3_end as u16,
        })
    }
}

/// The L3 part of a [`ParsedFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// IPv4 that passed RFC 1812 section 5.2.2 validation.
    Ipv4(Ipv4Meta),
    /// IPv6 whose extension headers were walked.
    Ipv6(Ipv6Summary),
    /// IPv4-over-Ethernet ARP.
    Arp,
    /// Any other EtherType, for counting.
    Other(EtherType),
}

/// The IPv4 facts the NAT fast path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Meta {
    /// Addresses, protocol and ports (0 where there are none, see [`FiveTuple`]).
    pub tuple: FiveTuple,
    l4_offset: u32,
    l3_end: u32,
    /// What the transport is.
    pub l4: L4,
}

impl Ipv4Meta {
    /// Offset of the transport header in the frame.
    #[inline]
    pub fn l4_offset(&self) -> usize {
        self.l4_offset as usize
    }

    /// Offset in the frame where the IPv4 datagram ends (its total length); Ethernet padding
    /// may follow. The transport is `frame[l4_offset()..l3_end()]`.
    #[inline]
    pub fn l3_end(&self) -> usize {
        self.l3_end as usize
    }
}

/// Transport classification of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP, with its control bits for the session state machine.
    Tcp(TcpFlags),
    /// UDP.
    Udp,
    /// ICMP; [`IcmpMessage::is_error`] tells the "related" class apart.
    Icmp(IcmpMessage),
    /// A non-first fragment: no transport header, ports are 0.
    Fragment,
    /// Another protocol.
    Other,
}

/// Classify a frame: walk up to two VLAN tags, validate IPv4 (RFC 1812 section 5.2.2, with
/// the header checksum unless `caps.ipv4` says the NIC checked it) and the transport header
/// lengths, and read the 5-tuple. IPv6 gets its extension headers walked; ARP is checked to be
/// IPv4 over Ethernet.
///
/// Transport checksums are not verified: NAT updates them incrementally, so a corrupt one
/// stays corrupt for the receiver to drop.
///
/// After `L3::Ipv4`, `Ipv4Packet::new_unchecked(&mut frame[parsed.l3_offset()..])` is a
/// checked view in all but name (every `new_checked` test passed here), so the rewrite step
/// need not validate again; the rewrites still check the transport bytes they write.
///
/// The common frame (untagged IPv4 without options, not a later fragment, carrying TCP or
/// UDP) is classified inline in straight-line code; every other frame, and every frame that
/// fails a check, goes through the general walk, which names the error.
///
/// # Errors
/// Any of the Ethernet, VLAN, IPv4, IPv6, ARP, TCP, UDP or ICMP validation errors.
#[inline]
pub fn parse_frame(frame: &[u8], caps: &ChecksumCaps) -> Result<ParsedFrame, Error> {
    match untagged_ipv4(frame, caps) {
        Some(meta) => Ok(ParsedFrame {
            vlans: Vlans::None,
            l3_offset: ethernet::HEADER_LEN as u16,
            l3: L3::Ipv4(meta),
        }),
        None => parse_general(frame, caps),
    }
}

/// What [`common_ipv4`] reads of a common frame, as integers in host order: everything the
/// NAT fast path needs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Common {
    /// Source address.
    pub src_addr: u32,
    /// Destination address.
    pub dst_addr: u32,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The TCP control bits (the low 9 bits of the offset word); none for UDP.
    pub tcp_flags: TcpFlags,
    /// Offset in the frame where the IPv4 datagram ends (see [`Ipv4Meta::l3_end`]).
    pub l3_end: u32,
    /// Whether it is TCP (else UDP).
    pub tcp: bool,
}

impl Common {
    /// Offset of the IPv4 header in a common frame.
    pub const L3_OFFSET: usize = ethernet::HEADER_LEN;
    /// Offset of the transport header in a common frame.
    pub const L4_OFFSET: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
}

/// The fast path of [`parse_frame`]: an untagged frame with an option-less IPv4 header that is
/// not a later fragment and carries TCP or UDP. It makes every check the general walk makes on
/// such a frame, over fixed-size arrays so that no bounds check is left, and returns `None`
/// for any other frame, valid or not. A `Some` is exactly what [`parse_frame`] would say of the
/// frame: `L3::Ipv4` at [`Common::L3_OFFSET`] with the same tuple, lengths and transport.
#[inline(always)]
pub fn common_ipv4(frame: &[u8], caps: &ChecksumCaps) -> Option<Common> {
    const L3_OFFSET: usize = Common::L3_OFFSET;
    const L4_OFFSET: usize = Common::L4_OFFSET;
    // One length test for both headers; the IPv4 header is then a fixed-size view of it.
    let (headers, rest) = frame.split_first_chunk::<L4_OFFSET>()?;
    let Ok(ip) = <&[u8; ipv4::HEADER_LEN]>::try_from(&headers[L3_OFFSET..]) else {
        return None;
    };
    // EtherType 0x0800, then version 4 with IHL 5.
    if u16::from_be_bytes([headers[12], headers[13]]) != 0x0800 || ip[0] != 0x45 {
        return None;
    }
    // The total length covers the header and fits in the frame: a total length below the
    // header wraps to a huge one, so one test does both.
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = rest.get(..total_len.wrapping_sub(ipv4::HEADER_LEN))?;
    // Not a later fragment: the 13-bit offset is zero (tested in wire order, one test).
    if u16::from_ne_bytes([ip[6], ip[7]]) & u16::from_ne_bytes([0x1f, 0xff]) != 0 {
        return None;
    }
    if !caps.ipv4 && !ipv4::header_checksum_ok(ip) {
        return None;
    }
    // Each length test below is one compare: a field below the header length wraps.
    let (tcp, tcp_flags) = match ip[9] {
        17 => {
            let (udp, after) = l4.split_first_chunk::<{ udp::HEADER_LEN }>()?;
            let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            if len.wrapping_sub(udp::HEADER_LEN) > after.len() {
                return None;
            }
            (false, TcpFlags(0))
        }
        6 => {
            let (tcp, after) = l4.split_first_chunk::<{ tcp::HEADER_LEN }>()?;
            let off_flags = u16::from_be_bytes([tcp[12], tcp[13]]);
            let header_len = usize::from(off_flags >> 12) * 4;
            if header_len.wrapping_sub(tcp::HEADER_LEN) > after.len() {
                return None;
            }
            (true, TcpFlags(off_flags & 0x01ff))
        }
        _ => return None,
    };
    // Both transports start with the two ports, and `l4` holds at least a UDP header.
    let ports: &[u8; 4] = l4.first_chunk()?;
    Some(Common {
        src_addr: u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
        dst_addr: u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        tcp_flags,
        // Below 14 + 65536.
        l3_end: (L3_OFFSET + total_len) as u32,
        tcp,
    })
}

/// [`common_ipv4`] as [`parse_frame`] reports it.
#[inline(always)]
fn untagged_ipv4(frame: &[u8], caps: &ChecksumCaps) -> Option<Ipv4Meta> {
    let c = common_ipv4(frame, caps)?;
    let (protocol, l4) = if c.tcp {
        (IpProtocol::TCP, L4::Tcp(c.tcp_flags))
    } else {
        (IpProtocol::UDP, L4::Udp)
    };
    Some(Ipv4Meta {
        tuple: FiveTuple {
            src_addr: Ipv4Addr::from(c.src_addr),
            dst_addr: Ipv4Addr::from(c.dst_addr),
            protocol,
            src_port: c.src_port,
            dst_port: c.dst_port,
        },
        l4_offset: Common::L4_OFFSET as u32,
        l3_end: c.l3_end,
        l4,
    })
}

/// [`parse_frame`] for every frame: VLAN tags, IPv4 with options, fragments, ICMP, other
/// transports, IPv6, ARP, and the errors.
#[cold]
#[inline(never)]
fn parse_general(frame: &[u8], caps: &ChecksumCaps) -> Result<ParsedFrame, Error> {
    if frame.len() < ethernet::HEADER_LEN {
        return Err(Error::EthernetTruncated);
    }
    // The untagged case inline; tags are walked by the Ethernet view, out of line.
    let outer = get_u16(frame, 12);
    let (ethertype, l3_offset, vlans) = if outer == 0x8100 || outer == 0x88a8 {
        tagged(frame)?
    } else {
        (outer, ethernet::HEADER_LEN, Vlans::None)
    };
    Ok(ParsedFrame {
        vlans,
        ..parse_at(frame, l3_offset, ethertype, caps)?
    })
}

/// The packet of EtherType `ethertype` at `l3_offset` in `frame` (no VLAN tags before it),
/// as [`parse_frame`] classifies the packet of a frame, its offsets counted from the start
/// of `frame`: the general walk past the Ethernet header, and the inner IP packet of a
/// tunnel that carries one ([`super::tunnel::parse_inner`]).
pub(crate) fn parse_at(
    frame: &[u8],
    l3_offset: usize,
    ethertype: u16,
    caps: &ChecksumCaps,
) -> Result<ParsedFrame, Error> {
    let l3_bytes = frame.get(l3_offset..).unwrap_or_default();
    let l3 = if ethertype == 0x0800 {
        L3::Ipv4(parse_ipv4(frame, l3_offset, caps)?)
    } else {
        not_ipv4(ethertype, l3_bytes)?
    };
    Ok(ParsedFrame {
        vlans: Vlans::None,
        // A frame is shorter than 64 KiB.
        l3_offset: l3_offset as u16,
        l3,
    })
}

/// The general walk alone, so the fuzz target and the property tests can hold the fast path
/// to it.
pub(crate) fn parse_frame_general(frame: &[u8], caps: &ChecksumCaps) -> Result<ParsedFrame, Error> {
    parse_general(frame, caps)
}

#[inline(never)]
fn tagged(frame: &[u8]) -> Result<(u16, usize, Vlans), Error> {
    let (ethertype, offset, vlans) = ethernet::Frame::new_unchecked(frame).layers()?;
    Ok((ethertype.into(), offset, vlans))
}

#[inline(never)]
fn not_ipv4(ethertype: u16, l3_bytes: &[u8]) -> Result<L3, Error> {
    Ok(match EtherType::from(ethertype) {
        EtherType::Ipv6 => L3::Ipv6(ipv6::Packet::new_checked(l3_bytes)?.summary()?),
        EtherType::Arp => {
            if !arp::Packet::new_checked(l3_bytes)?.is_ethernet_ipv4() {
                return Err(Error::ArpUnsupported);
            }
            L3::Arp
        }
        other => L3::Other(other),
    })
}

/// IPv4 and its transport, reading each field once.
#[inline(always)]
fn parse_ipv4(frame: &[u8], l3_offset: usize, caps: &ChecksumCaps) -> Result<Ipv4Meta, Error> {
    let ip = ipv4::Packet::new_checked(frame.get(l3_offset..).unwrap_or_default())?;
    if !caps.ipv4 && !ip.verify_checksum() {
        return Err(Error::Ipv4BadChecksum);
    }
    let d = ip.into_inner();
    let header_len = usize::from(d[0] & 0x0f) * 4;
    let total_len = usize::from(get_u16(d, 2));
    let payload = &d[header_len..total_len];
    let first = get_u16(d, 6) & 0x1fff == 0;
    let proto = d[9];
    let (protocol, src_port, dst_port, l4) = if !first {
        (IpProtocol::from(proto), 0, 0, L4::Fragment)
    } else {
        match proto {
            6 => {
                tcp::check_header(payload)?;
                let flags = TcpFlags(get_u16(payload, 12) & 0x01ff);
                (
                    IpProtocol::TCP,
                    get_u16(payload, 0),
                    get_u16(payload, 2),
                    L4::Tcp(flags),
                )
            }
            17 => {
                udp::check_header(payload)?;
                (
                    IpProtocol::UDP,
                    get_u16(payload, 0),
                    get_u16(payload, 2),
                    L4::Udp,
                )
            }
            1 => {
                let (s, d) = l4_ports(IpProtocol::ICMP, payload)?;
                (IpProtocol::ICMP, s, d, L4::Icmp(payload[0].into()))
            }
            other => (IpProtocol::from(other), 0, 0, L4::Other),
        }
    };
    let tuple = FiveTuple {
        src_addr: Ipv4Addr::from(get_u32(d, 12)),
        dst_addr: Ipv4Addr::from(get_u32(d, 16)),
        protocol,
        src_port,
        dst_port,
    };
    Ok(Ipv4Meta {
        tuple,
        // Both below 22 + 65536.
        l4_offset: (l3_offset + header_len) as u32,
        l3_end: (l3_offset + total_len) as u32,
        l4,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::packet::ethernet::VlanTag;
    use crate::packet::{Endpoint, IpProtocol};

    // The fuzz seeds are real frames (listed header by header in appliance/fuzz/README.md);
    // checking them here keeps the seeds and the parser honest together.
    const IPV4_UDP: &[u8] = include_bytes!("../../fuzz/seeds/packet_parser/ipv4_udp.bin");
    const VLAN_TCP_SYN: &[u8] =
        include_bytes!("../../fuzz/seeds/packet_parser/vlan_ipv4_tcp_syn.bin");
    const QINQ_ARP: &[u8] = include_bytes!("../../fuzz/seeds/packet_parser/qinq_arp_request.bin");
    const FRAG_NEEDED: &[u8] =
        include_bytes!("../../fuzz/seeds/packet_parser/ipv4_icmp_frag_needed.bin");
    const ECHO: &[u8] = include_bytes!("../../fuzz/seeds/packet_parser/ipv4_icmp_echo.bin");
    const IPV6: &[u8] = include_bytes!("../../fuzz/seeds/packet_parser/ipv6_hbh_frag_udp.bin");

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn ipv4(f: &ParsedFrame) -> Ipv4Meta {
        match f.l3 {
            L3::Ipv4(m) => m,
            other => panic!("not IPv4: {other:?}"),
        }
    }

    #[test]
    fn udp_frame() {
        let f = parse_frame(IPV4_UDP, &ChecksumCaps::NONE).unwrap();
        assert_eq!((f.vlans, f.l3_offset()), (Vlans::None, 14));
        let m = ipv4(&f);
        assert_eq!(m.l4, L4::Udp);
        assert_eq!((m.l4_offset(), m.l3_end()), (34, 46));
        assert_eq!(
            m.tuple,
            FiveTuple {
                src_addr: A,
                dst_addr: B,
                protocol: IpProtocol::UDP,
                src_port: 1024,
                dst_port: 53
            }
        );
    }

    #[test]
    fn vlan_tcp_syn_then_snat() {
        let f = parse_frame(VLAN_TCP_SYN, &ChecksumCaps::NONE).unwrap();
        assert_eq!(f.vlans, Vlans::One(VlanTag::new(100)));
        assert_eq!(f.l3_offset(), 18);
        let m = ipv4(&f);
        assert_eq!(m.l4, L4::Tcp(TcpFlags::SYN));
        assert_eq!((m.tuple.src_port, m.tuple.dst_port), (40000, 80));
        // The fast path: translate in place at the offsets parse_frame found.
        let mut buf = VLAN_TCP_SYN.to_vec();
        let new = FiveTuple {
            src_addr: Ipv4Addr::new(203, 0, 113, 1),
            src_port: 1025,
            ..m.tuple
        };
        let at = f.offsets().expect("IPv4");
        let mut addrs = [0u8; 8];
        addrs[..4].copy_from_slice(&new.src_addr.octets());
        addrs[4..].copy_from_slice(&new.dst_addr.octets());
        let ports = [0x04, 0x01, 0x00, 80];
        let deltas = crate::packet::ChecksumDeltas::between(&m.tuple, &new);
        let done = crate::packet::translate::translate(
            &mut buf,
            &at,
            crate::packet::translate::Transport::Tcp,
            addrs,
            ports,
            deltas,
        );
        assert!(done, "TTL left");
        let again = ipv4(&parse_frame(&buf, &ChecksumCaps::NONE).unwrap());
        assert_eq!(
            again.tuple.endpoint(Endpoint::Src),
            (Ipv4Addr::new(203, 0, 113, 1), 1025)
        );
    }

    #[test]
    fn arp_icmp_ipv6_frames() {
        let f = parse_frame(QINQ_ARP, &ChecksumCaps::NONE).unwrap();
        assert_eq!((f.l3, f.vlans.len(), f.l3_offset()), (L3::Arp, 2, 22));

        let m = ipv4(&parse_frame(ECHO, &ChecksumCaps::NONE).unwrap());
        assert_eq!(m.l4, L4::Icmp(IcmpMessage::EchoRequest));
        assert_eq!((m.tuple.src_port, m.tuple.dst_port), (0x1234, 0x1234));

        let m = ipv4(&parse_frame(FRAG_NEEDED, &ChecksumCaps::NONE).unwrap());
        assert_eq!(m.l4, L4::Icmp(IcmpMessage::DstUnreachable));
        assert!(IcmpMessage::DstUnreachable.is_error());

        match parse_frame(IPV6, &ChecksumCaps::NONE).unwrap().l3 {
            L3::Ipv6(s) => {
                assert_eq!(s.protocol, IpProtocol::UDP);
                assert_eq!(s.ports, Some((5353, 53)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_ipv4_checksum_unless_offloaded() {
        let mut buf = IPV4_UDP.to_vec();
        buf[14 + 10] ^= 0x01;
        assert_eq!(
            parse_frame(&buf, &ChecksumCaps::NONE),
            Err(Error::Ipv4BadChecksum)
        );
        assert!(parse_frame(
            &buf,
            &ChecksumCaps {
                ipv4: true,
                l4: false
            }
        )
        .is_ok());
        // A UDP length beyond the IP payload.
        let mut buf = IPV4_UDP.to_vec();
        buf[14 + 20 + 5] = 200;
        assert_eq!(
            parse_frame(&buf, &ChecksumCaps::NONE),
            Err(Error::UdpBadLength)
        );
        // Non-IP EtherTypes are classified, not refused.
        let mut buf = IPV4_UDP.to_vec();
        buf[12] = 0x88;
        buf[13] = 0xcc;
        assert_eq!(
            parse_frame(&buf, &ChecksumCaps::NONE).unwrap().l3,
            L3::Other(EtherType::Unknown(0x88cc))
        );
    }
}

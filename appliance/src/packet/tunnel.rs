//! What the two tunnel encapsulations share: the 24-bit [`Vni`], [`Decap`] (where an
//! encapsulated frame's parts lie), and the walk of the outer headers, Ethernet, IPv4 and UDP
//! to the tunnel's port, that [`super::geneve::decapsulate`] and
//! [`super::vxlan::decapsulate`] finish with their own header.

use super::checksum::{self, ChecksumCaps};
use super::ethernet::{self, EtherType};
use super::field::{get_u32, Value};
use super::parse::parse_at;
use super::{ipv4, parse_frame, udp, Error, ParsedFrame, L3, L4};

/// The second word of both tunnel headers, GENEVE's (RFC 8926 section 3.4) and VXLAN's
/// (RFC 7348 section 5) alike: the 24-bit VNI, then a reserved byte. Their own `field`
/// modules take these offsets from here.
pub(super) mod field {
    pub const VNI: usize = 4;
    pub const RESERVED: usize = 7;
}

/// A virtual network identifier, the 24-bit field of both GENEVE (RFC 8926 section 3.4) and
/// VXLAN (RFC 7348 section 5). A number that does not fit 24 bits is not a VNI, so the type
/// holds only those that do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: Vni = Vni(0x00ff_ffff);

    /// The VNI `value`, or `None` if it does not fit 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value > Vni::MAX.0 {
            None
        } else {
            Some(Vni(value))
        }
    }

    /// The number.
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl From<Vni> for u32 {
    fn from(vni: Vni) -> u32 {
        vni.0
    }
}

impl Value for Vni {
    /// The three bytes at `at`, big-endian.
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        Vni(u32::from_be_bytes([
            0,
            data[at],
            data[at + 1],
            data[at + 2],
        ]))
    }

    #[inline(always)]
    fn set(self, data: &mut [u8], at: usize) {
        data[at..at + 3].copy_from_slice(&self.0.to_be_bytes()[1..]);
    }
}

/// Where the parts of a tunnel packet lie in its frame, and what the inner part is: what a
/// tunnel port needs to take the inner frame out and to put the answer back in. Offsets are
/// from the start of the frame; the inner frame is `frame[inner..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decap {
    /// The outer IPv4 header.
    pub l3: usize,
    /// The outer UDP header.
    pub udp: usize,
    /// The tunnel (GENEVE or VXLAN) header.
    pub header: usize,
    /// The inner frame, past the tunnel header and its options.
    pub inner: usize,
    /// The end of the inner frame: the end of the UDP datagram (Ethernet padding may follow).
    pub end: usize,
    /// What the inner frame is: [`EtherType::TransparentBridging`] for an Ethernet frame
    /// (always, for VXLAN), else the EtherType of the packet that starts at `inner`.
    pub inner_type: EtherType,
    /// The tunnel's VNI.
    pub vni: Vni,
}

/// Where the outer headers of a tunnel packet lie in its frame: the IPv4 header, the UDP
/// header, the tunnel header after it and the end of the datagram. What a tunnel port needs
/// to send the packet back ([`turn_around`]), and [`Decap`] up to the tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// The outer IPv4 header.
    pub l3: usize,
    /// The outer UDP header.
    pub udp: usize,
    /// The tunnel header, right after the UDP header.
    pub header: usize,
    /// The end of the UDP datagram.
    pub end: usize,
}

impl Outer {
    /// The outer headers of a frame [`parse_frame`] classified as `parsed`, if it is an IPv4
    /// UDP datagram and no fragment (a first fragment holds only part of the inner packet),
    /// whatever its port: the caller knows its tunnels' ports.
    pub fn of(frame: &[u8], parsed: &ParsedFrame) -> Option<Outer> {
        let L3::Ipv4(meta) = parsed.l3 else {
            return None;
        };
        let l3 = parsed.l3_offset();
        // parse_frame checked both headers, so neither view fails.
        let ip = ipv4::Packet::new_checked(frame.get(l3..)?).ok()?;
        if meta.l4 != L4::Udp || ip.is_fragment() {
            return None;
        }
        let udp = meta.l4_offset();
        let datagram = udp::Packet::new_checked(frame.get(udp..meta.l3_end())?).ok()?;
        Some(Outer {
            l3,
            udp,
            header: udp + udp::HEADER_LEN,
            end: udp + usize::from(datagram.len()),
        })
    }

    /// The tunnel header and everything after it, to the end of the UDP datagram.
    pub fn udp_payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.header..self.end]
    }

    /// The whole [`Decap`], once the tunnel header (`header_len` bytes, options included)
    /// said what follows it and in which network.
    pub fn decap(&self, header_len: usize, inner_type: EtherType, vni: Vni) -> Decap {
        Decap {
            l3: self.l3,
            udp: self.udp,
            header: self.header,
            inner: self.header + header_len,
            end: self.end,
            inner_type,
            vni,
        }
    }
}

/// Walk `frame` down to the payload of a UDP datagram to `port`: Ethernet (with its VLAN
/// tags), IPv4 and UDP, validated as [`parse_frame`] does (the outer UDP checksum is not
/// verified, as `parse_frame` verifies no transport checksum).
///
/// # Errors
/// The validation errors of [`parse_frame`]; [`Error::TunnelNotEncapsulated`] if the frame
/// is not IPv4 UDP to `port`, or is a fragment.
pub(super) fn outer(frame: &[u8], port: u16, caps: &ChecksumCaps) -> Result<Outer, Error> {
    let parsed = parse_frame(frame, caps)?;
    match (Outer::of(frame, &parsed), parsed.l3) {
        (Some(o), L3::Ipv4(m)) if m.tuple.dst_port == port => Ok(o),
        _ => Err(Error::TunnelNotEncapsulated),
    }
}

/// What the inner packet of a tunnel packet is, parsed as [`parse_frame`] parses a frame,
/// its offsets counted from the start of the whole frame (so that the pipeline rewrites it
/// where it lies): an Ethernet frame when the tunnel carries one (VXLAN, GENEVE's
/// [`EtherType::TransparentBridging`]), else the IP packet the protocol type names (AWS's
/// GENEVE). The inner packet ends with the outer UDP datagram.
///
/// # Errors
/// The validation errors of [`parse_frame`] on the inner packet.
pub fn parse_inner(frame: &[u8], d: &Decap, caps: &ChecksumCaps) -> Result<ParsedFrame, Error> {
    let inner = frame.get(..d.end).ok_or(Error::TunnelNotEncapsulated)?;
    match d.inner_type {
        EtherType::TransparentBridging => {
            let parsed = parse_frame(inner.get(d.inner..).unwrap_or_default(), caps)?;
            Ok(parsed.moved(d.inner))
        }
        other => parse_at(inner, d.inner, other.value(), caps),
    }
}

/// Turns a tunnel packet around in place, the way a gateway load balancer's target returns
/// it (AWS: the same packet with the outer source and destination addresses swapped): the
/// Ethernet addresses swapped (back to the sender's MAC, from the one it was sent to), the
/// outer IPv4 addresses swapped and the TTL set to [`ipv4::DEFAULT_TTL`] (the appliance
/// sends this outer packet), the UDP ports and the tunnel header kept. `to`, when given,
/// moves the packet to another tunnel of the same load balancer (Azure's internal and
/// external tunnels): the UDP destination port and the VNI become its. The IPv4 header
/// checksum is updated, and the UDP checksum when there is one (zero, RFC 768's "none",
/// stays zero, as RFC 7348 and RFC 8926 allow over IPv4). The inner packet is not touched.
///
/// `l3` and `udp` are where [`Outer`] found the outer IPv4 and UDP headers.
///
/// # Errors
/// [`Error::BufferTooSmall`] if the headers at those offsets do not fit in `frame` (nothing
/// is changed then).
pub fn turn_around(
    frame: &mut [u8],
    l3: usize,
    udp: usize,
    to: Option<(u16, Vni)>,
) -> Result<(), Error> {
    let vni_at = udp + udp::HEADER_LEN + field::VNI;
    if frame.len() < vni_at + 4 || l3 + ipv4::HEADER_LEN > udp || l3 < ethernet::HEADER_LEN {
        return Err(Error::BufferTooSmall);
    }
    let (dst, src) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    let mut ip = ipv4::Packet::new_unchecked(&mut frame[l3..udp]);
    let (from, towards) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(towards);
    ip.set_dst_addr(from);
    // The swap leaves every checksum as it was: a ones' complement sum does not depend on
    // the order of its words. The TTL shares its word with the protocol.
    let old = u16::from_be_bytes([ip.ttl(), ip.protocol().value()]);
    ip.set_ttl(ipv4::DEFAULT_TTL);
    let new = u16::from_be_bytes([ipv4::DEFAULT_TTL, ip.protocol().value()]);
    let sum = ip.checksum();
    ip.set_checksum(checksum::update16(sum, old, new));
    let Some((port, vni)) = to else {
        return Ok(());
    };
    let old_vni = get_u32(frame, vni_at);
    Value::set(vni, frame, vni_at);
    let new_vni = get_u32(frame, vni_at);
    let mut datagram = udp::Packet::new_unchecked(&mut frame[udp..]);
    let old_port = datagram.dst_port();
    datagram.set_dst_port(port);
    let sum = datagram.checksum();
    let updated = checksum::update32(checksum::update16(sum, old_port, port), old_vni, new_vni);
    datagram.set_checksum(checksum::udp_finish(sum, updated));
    Ok(())
}

/// The frames the gateway load balancers send, as test vectors for every tunnel file: one
/// comment a header, the parts both frames share written once.
#[cfg(test)]
#[rustfmt::skip]
pub(crate) mod vectors {
    /// The client's packet both load balancers carry.
    const ECHO: [u8; 28] = [
        // IPv4: total length 28, DF, TTL 63, ICMP, checksum 0x4ff3,
        // 192.168.1.10 -> 198.51.100.7
        0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x40, 0x00, 0x3f, 0x01, 0x4f, 0xf3,
        0xc0, 0xa8, 0x01, 0x0a, 0xc6, 0x33, 0x64, 0x07,
        // ICMP echo request, ident 0x1234, sequence 1
        0x08, 0x00, 0xe5, 0xca, 0x12, 0x34, 0x00, 0x01,
    ];

    /// AWS Gateway Load Balancer's tunnel: the client's IPv4 packet in GENEVE with
    /// Amazon's three options (68 bytes of overhead past the outer Ethernet header).
    const AWS_TUNNEL: [u8; 68] = [
        // IPv4: total length 96, DF, TTL 64, UDP, checksum 0x267f, 10.0.0.5 -> 10.0.0.10
        0x45, 0x00, 0x00, 0x60, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0x7f,
        0x0a, 0x00, 0x00, 0x05, 0x0a, 0x00, 0x00, 0x0a,
        // UDP: 49153 -> 6081, length 76, no checksum
        0xc0, 0x01, 0x17, 0xc1, 0x00, 0x4c, 0x00, 0x00,
        // GENEVE: version 0, 8 words of options, no flags, IPv4, VNI 0
        0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
        // option: class 0x0108, type 1 (the endpoint's id), 2 words
        0x01, 0x08, 0x01, 0x02, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71,
        // option: class 0x0108, type 2 (the attachment's id), 2 words
        0x01, 0x08, 0x02, 0x02, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8,
        // option: class 0x0108, type 3 (the flow cookie), 1 word
        0x01, 0x08, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef,
    ];

    /// Ethernet: to 02:00:00:00:00:01 from 02:00:00:00:00:02, IPv4 (both frames' outer
    /// header).
    const ETHERNET: [u8; 14] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
    ];

    /// Azure Gateway Load Balancer's internal tunnel: the client's Ethernet frame in VXLAN.
    const AZURE_TUNNEL: [u8; 50] = [
        // IPv4: total length 78, DF, TTL 64, UDP, checksum 0x2690, 10.1.0.4 -> 10.1.0.10
        0x45, 0x00, 0x00, 0x4e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0x90,
        0x0a, 0x01, 0x00, 0x04, 0x0a, 0x01, 0x00, 0x0a,
        // UDP: 50000 -> 10800, length 58, no checksum
        0xc3, 0x50, 0x2a, 0x30, 0x00, 0x3a, 0x00, 0x00,
        // VXLAN: I, VNI 800
        0x08, 0x00, 0x00, 0x00, 0x00, 0x03, 0x20, 0x00,
        // inner Ethernet: to 12:34:56:78:9a:bc from 02:00:00:00:00:0a, IPv4
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00,
    ];

    /// `a`, `b` and `c` one after the other (`N` their lengths' sum).
    const fn frame<const A: usize, const B: usize, const C: usize, const N: usize>(
        a: [u8; A],
        b: [u8; B],
        c: [u8; C],
    ) -> [u8; N] {
        assert!(A + B + C == N);
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = if i < A { a[i] } else if i < A + B { b[i - A] } else { c[i - A - B] };
            i += 1;
        }
        out
    }

    /// What AWS's load balancer sends a target (the fuzz seed
    /// `ipv4_udp_geneve_aws_gwlb.bin`).
    pub const AWS_FRAME: [u8; 110] = frame(ETHERNET, AWS_TUNNEL, ECHO);
    /// What Azure's load balancer sends its backend on the internal tunnel (port 10800,
    /// the fuzz seed `ipv4_udp_vxlan_azure_gwlb.bin`).
    pub const AZURE_FRAME: [u8; 92] = frame(ETHERNET, AZURE_TUNNEL, ECHO);
    /// Where the tunnel header starts in both frames.
    pub const HEADER: usize = 42;
    /// Where the inner packet starts in `AWS_FRAME`, past GENEVE and its options.
    pub const AWS_INNER: usize = 82;
    /// Where the inner frame starts in `AZURE_FRAME`, past VXLAN.
    pub const AZURE_INNER: usize = 50;
    /// The UDP port of `AZURE_FRAME`'s tunnel, Azure's internal one (VNI 800).
    pub const AZURE_PORT: u16 = 10800;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{geneve, vxlan, EthernetFrame, Ipv4Packet, UdpPacket};
    use std::net::Ipv4Addr;

    /// AWS Gateway Load Balancer's packet of `geneve.rs`: GENEVE with three options to
    /// 10.0.0.10:6081, an IPv4 ICMP echo inside, no UDP checksum.
    const AWS: &[u8] =
        include_bytes!("../../fuzz/seeds/packet_parser/ipv4_udp_geneve_aws_gwlb.bin");
    /// Azure Gateway Load Balancer's packet of `vxlan.rs`: VXLAN VNI 800 to 10.1.0.10:10800,
    /// an Ethernet frame with an IPv4 ICMP echo inside, no UDP checksum.
    const AZURE: &[u8] =
        include_bytes!("../../fuzz/seeds/packet_parser/ipv4_udp_vxlan_azure_gwlb.bin");

    #[test]
    fn a_vni_is_24_bits_on_three_bytes() {
        assert_eq!(Vni::new(0x00ff_ffff), Some(Vni::MAX));
        assert_eq!(Vni::new(0x0100_0000), None);
        let mut b = [0xee; 5];
        Vni::new(0x0a0b0c).unwrap().set(&mut b, 1);
        assert_eq!(b, [0xee, 0x0a, 0x0b, 0x0c, 0xee]);
        assert_eq!(u32::from(Vni::get(&b, 1)), 0x0a0b0c);
    }

    #[test]
    fn the_load_balancers_packets_come_apart_where_the_vectors_say() {
        let caps = ChecksumCaps::NONE;
        let aws_seed =
            include_bytes!("../../fuzz/seeds/packet_parser/ipv4_udp_geneve_aws_gwlb.bin");
        let azure_seed =
            include_bytes!("../../fuzz/seeds/packet_parser/ipv4_udp_vxlan_azure_gwlb.bin");
        let cases = [
            (
                geneve::decapsulate(AWS, &caps),
                (AWS, &aws_seed[..]),
                (vectors::AWS_INNER, EtherType::Ipv4, 0),
            ),
            (
                vxlan::decapsulate(AZURE, vectors::AZURE_PORT, &caps),
                (AZURE, &azure_seed[..]),
                (vectors::AZURE_INNER, EtherType::TransparentBridging, 800),
            ),
        ];
        for (found, (frame, seed), (inner, inner_type, vni)) in cases {
            assert_eq!(seed, frame, "the fuzz seed is the test vector");
            let d = Decap {
                l3: 14,
                udp: 34,
                header: vectors::HEADER,
                inner,
                end: frame.len(),
                inner_type,
                vni: Vni::new(vni).unwrap(),
            };
            assert_eq!(found, Ok(d));
        }
    }

    #[test]
    fn the_inner_packet_is_parsed_where_it_lies() {
        let caps = ChecksumCaps::NONE;
        let d = geneve::decapsulate(AWS, &caps).unwrap();
        let inner = parse_inner(AWS, &d, &caps).unwrap();
        assert_eq!(inner.l3_offset(), 82);
        let L3::Ipv4(m) = inner.l3 else {
            panic!("{inner:?}")
        };
        assert_eq!((m.l4_offset(), m.l3_end()), (102, AWS.len()));
        assert_eq!(m.tuple.dst_addr, Ipv4Addr::new(198, 51, 100, 7));

        // Under VXLAN the inner packet is an Ethernet frame: its IPv4 header follows it.
        let d = vxlan::decapsulate(AZURE, 10800, &caps).unwrap();
        let inner = parse_inner(AZURE, &d, &caps).unwrap();
        assert_eq!(inner.l3_offset(), 50 + 14);
        let L3::Ipv4(m) = inner.l3 else {
            panic!("{inner:?}")
        };
        assert_eq!((m.l4_offset(), m.l3_end()), (84, AZURE.len()));

        // An inner packet that does not parse says why; one past the datagram is not read.
        let d = geneve::decapsulate(AWS, &caps).unwrap();
        let mut bad = AWS.to_vec();
        bad[82] = 0x55;
        assert_eq!(
            parse_inner(&bad, &d, &caps).map(|_| ()),
            Err(Error::Ipv4BadVersion)
        );
        let short = Decap { end: 90, ..d };
        assert_eq!(
            parse_inner(AWS, &short, &caps).map(|_| ()),
            Err(Error::Ipv4Truncated)
        );
    }

    #[test]
    fn a_packet_turned_around_goes_back_with_its_header() {
        let caps = ChecksumCaps::NONE;
        let d = geneve::decapsulate(AWS, &caps).unwrap();
        let mut back = AWS.to_vec();
        turn_around(&mut back, d.l3, d.udp, None).unwrap();
        let f = EthernetFrame::new_checked(&back[..]).unwrap();
        assert_eq!(
            (f.dst_addr(), f.src_addr()),
            (
                EthernetFrame::new_checked(AWS).unwrap().src_addr(),
                EthernetFrame::new_checked(AWS).unwrap().dst_addr(),
            )
        );
        let ip = Ipv4Packet::new_checked(&back[d.l3..]).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.ttl()),
            (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 5), 64)
        );
        assert!(ip.verify_checksum());
        let datagram = UdpPacket::new_checked(&back[d.udp..]).unwrap();
        assert_eq!((datagram.src_port(), datagram.dst_port()), (49153, 6081));
        // The options and the inner packet, byte for byte.
        assert_eq!(back[d.header..], AWS[d.header..]);

        // Azure's: moved to the external tunnel, with a UDP checksum to keep right.
        let d = vxlan::decapsulate(AZURE, 10800, &caps).unwrap();
        let mut sent = AZURE.to_vec();
        let (src, dst) = (Ipv4Addr::new(10, 1, 0, 4), Ipv4Addr::new(10, 1, 0, 10));
        UdpPacket::new_unchecked(&mut sent[d.udp..]).fill_checksum(src, dst, &caps);
        for checksummed in [false, true] {
            let mut back = if checksummed {
                sent.clone()
            } else {
                AZURE.to_vec()
            };
            let external = Vni::new(801).unwrap();
            turn_around(&mut back, d.l3, d.udp, Some((10801, external))).unwrap();
            let datagram = UdpPacket::new_checked(&back[d.udp..]).unwrap();
            assert_eq!((datagram.src_port(), datagram.dst_port()), (50000, 10801));
            if checksummed {
                assert!(datagram.verify_checksum(dst, src));
            } else {
                assert_eq!(datagram.checksum(), 0, "none stays none");
            }
            let p = vxlan::Packet::new_checked(&back[d.header..]).unwrap();
            assert_eq!((p.vni(), p.flags()), (external, vxlan::FLAG_I));
            assert_eq!(back[d.inner..], AZURE[d.inner..]);
        }
        assert_eq!(
            turn_around(&mut back[..45], d.l3, d.udp, None),
            Err(Error::BufferTooSmall)
        );
    }
}

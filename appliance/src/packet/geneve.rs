//! GENEVE (RFC 8926), the encapsulation of AWS Gateway Load Balancer: an 8-byte header,
//! options in TLV form, then the inner packet, which the protocol type names: an Ethernet
//! frame under [`EtherType::TransparentBridging`], an IP packet under
//! [`EtherType::Ipv4`] or [`EtherType::Ipv6`]. AWS sends the client's IP packet itself
//! (0x0800 or 0x86DD; its documented overhead of 68 bytes, outer IPv4, UDP, GENEVE and 32
//! bytes of options, has no room for an inner Ethernet header).
//!
//! A gateway load balancer's target returns each packet with its options unchanged (AWS
//! reads its flow cookie back from them), so the [`Repr`] keeps the options as the bytes
//! that came, and emitting a parsed header writes the same bytes again, reserved bits
//! included.

use super::checksum::ChecksumCaps;
use super::ethernet::EtherType;
use super::field::get_u16;
use super::tunnel::{self, Decap, Outer, Vni};
use super::Error;

pub(super) mod field {
    /// The VNI (24 bits) and the reserved byte after it, where VXLAN has them too.
    pub use super::tunnel::field::{RESERVED, VNI};
    /// Version (2 bits) and option length in 4-byte words (6 bits).
    pub const VER_OPT_LEN: usize = 0;
    /// O and C, then 6 reserved bits.
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: usize = 2;
    pub const OPTIONS: usize = 8;
}

/// Length of the header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Most bytes of options a header can announce (63 words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// Length of an option's header, before its data.
pub const OPTION_HEADER_LEN: usize = option::DATA;
/// The UDP port GENEVE is sent to (RFC 8926 section 3.3).
pub const UDP_PORT: u16 = 6081;
/// The bit of an option's type that marks it critical: an endpoint that does not know the
/// option must drop the packet (RFC 8926 section 3.5).
pub const OPTION_CRITICAL: u8 = 0x80;

const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;
const FLAGS_RESERVED: u8 = 0x3f;
const OPT_LEN_MASK: u8 = 0x1f;

/// The options area a header announces, in bytes.
#[inline(always)]
fn options_len(data: &[u8]) -> usize {
    usize::from(data[field::VER_OPT_LEN] & 0x3f) * 4
}

/// The header fits, its version is 0, its options fit in `data`, and each option fits in
/// the options area.
fn check_header(data: &[u8]) -> Result<(), Error> {
    if data.len() < HEADER_LEN {
        return Err(Error::GeneveTruncated);
    }
    if data[field::VER_OPT_LEN] >> 6 != 0 {
        return Err(Error::GeneveBadVersion);
    }
    let Some(options) = data.get(HEADER_LEN..HEADER_LEN + options_len(data)) else {
        return Err(Error::GeneveBadOptionsLen);
    };
    check_options(options)
}

/// Each option of an options area fits in it.
fn check_options(options: &[u8]) -> Result<(), Error> {
    Options { rest: options }.try_for_each(|o| o.map(|_| ()))
}

view! {
    /// A view of a GENEVE header and what follows it. The buffer is the UDP payload; the
    /// inner packet runs to its end.
    pub struct Packet {
        field::PROTOCOL: EtherType {
            /// The type of the inner packet: [`EtherType::TransparentBridging`] for an
            /// Ethernet frame, or an IP version's EtherType.
            #[inline]
            pub fn protocol;
            /// Set the protocol type.
            pub fn set_protocol;
        }
        field::VNI: Vni {
            /// Virtual network identifier.
            #[inline]
            pub fn vni;
            /// Set the VNI.
            pub fn set_vni;
        }
        field::RESERVED: u8 {
            /// The reserved last byte of the header (zero when sent, ignored when received).
            pub fn reserved;
        }
    }

    /// Wrap a buffer that holds the 8-byte header and the options it announces, whose
    /// version is 0 (RFC 8926 section 3.4), and whose options each fit in the options area
    /// (section 3.5). The option classes and types are not judged: which to understand is
    /// the caller's business.
    ///
    /// # Errors
    /// [`Error::GeneveTruncated`], [`Error::GeneveBadVersion`],
    /// [`Error::GeneveBadOptionsLen`], [`Error::GeneveBadOption`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Length of the header with its options: where the inner packet starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Length of the options in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        options_len(self.data())
    }

    /// Version (0 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.data()[field::VER_OPT_LEN] >> 6
    }

    /// O: a control packet (OAM), not data to forward.
    #[inline]
    pub fn oam(&self) -> bool {
        self.data()[field::FLAGS] & FLAG_OAM != 0
    }

    /// C: at least one option is critical.
    #[inline]
    pub fn critical(&self) -> bool {
        self.data()[field::FLAGS] & FLAG_CRITICAL != 0
    }

    /// The six reserved bits of the flags byte (zero when sent, ignored when received).
    #[inline]
    pub fn reserved_flags(&self) -> u8 {
        self.data()[field::FLAGS] & FLAGS_RESERVED
    }

    /// The options as bytes.
    #[inline]
    pub fn options_bytes(&self) -> &[u8] {
        &self.data()[HEADER_LEN..self.header_len()]
    }

    /// The options, one by one.
    pub fn options(&self) -> Options<'_> {
        Options {
            rest: self.options_bytes(),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The inner packet: everything after the options.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let data = self.buffer.as_ref();
        &data[HEADER_LEN + options_len(data)..]
    }
}

/// Where an option's fields lie (RFC 8926 section 3.5): class, type, 3 reserved bits and the
/// length of its data in 4-byte words (5 bits), then the data.
mod option {
    pub const CLASS: usize = 0;
    pub const TYPE: usize = 2;
    pub const LEN: usize = 3;
    pub const DATA: usize = 4;
}

/// One GENEVE option (RFC 8926 section 3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GeneveOption<'a> {
    /// Option class: who defined the type (0x0108 is Amazon's).
    pub class: u16,
    /// Type, its high bit the critical bit.
    pub kind: u8,
    /// The data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    /// Whether an endpoint that does not know this option must drop the packet.
    pub fn is_critical(&self) -> bool {
        self.kind & OPTION_CRITICAL != 0
    }
}

/// The options of a GENEVE header, in order. Over any bytes it never panics: an option that
/// does not fit yields [`Error::GeneveBadOption`] once and ends the walk.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// The options in an options area.
    pub fn new(options: &'a [u8]) -> Options<'a> {
        Options { rest: options }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<GeneveOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let Some(header) = rest.first_chunk::<OPTION_HEADER_LEN>() else {
            return Some(Err(Error::GeneveBadOption));
        };
        let end = OPTION_HEADER_LEN + usize::from(header[option::LEN] & OPT_LEN_MASK) * 4;
        let Some(data) = rest.get(OPTION_HEADER_LEN..end) else {
            return Some(Err(Error::GeneveBadOption));
        };
        self.rest = &rest[end..];
        Some(Ok(GeneveOption {
            class: get_u16(header, option::CLASS),
            kind: header[option::TYPE],
            data,
        }))
    }
}

/// The meaning of a GENEVE header. The options stay the bytes they were, so that
/// `emit` after `parse` writes the header that came, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// O: a control packet.
    pub oam: bool,
    /// C: critical options present.
    pub critical: bool,
    /// The inner packet's type.
    pub protocol: EtherType,
    /// Virtual network identifier.
    pub vni: Vni,
    /// The options area: whole options, at most [`MAX_OPTIONS_LEN`] bytes.
    pub options: &'a [u8],
    /// The six reserved flag bits, kept as received (emit writes the low six bits).
    pub reserved_flags: u8,
    /// The reserved last byte, kept as received.
    pub reserved: u8,
}

impl<'a> Repr<'a> {
    /// Read a checked header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Repr<'a> {
        let data = packet.buffer.as_ref();
        Repr {
            oam: packet.oam(),
            critical: packet.critical(),
            protocol: packet.protocol(),
            vni: packet.vni(),
            options: &data[HEADER_LEN..HEADER_LEN + options_len(data)],
            reserved_flags: packet.reserved_flags(),
            reserved: packet.reserved(),
        }
    }

    /// The options, one by one.
    pub fn options(&self) -> Options<'a> {
        Options::new(self.options)
    }

    /// Bytes the header and options take.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Write the header and options at the start of `buf`. Returns their length, the offset
    /// of the inner packet.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`];
    /// [`Error::GeneveBadOptionsLen`] if the options are not a multiple of 4 bytes or longer
    /// than [`MAX_OPTIONS_LEN`]; [`Error::GeneveBadOption`] if an option runs past them.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        if self.options.len() % 4 != 0 || self.options.len() > MAX_OPTIONS_LEN {
            return Err(Error::GeneveBadOptionsLen);
        }
        check_options(self.options)?;
        let Some(out) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall);
        };
        out[field::VER_OPT_LEN] = (self.options.len() / 4) as u8;
        let mut flags = self.reserved_flags & FLAGS_RESERVED;
        if self.oam {
            flags |= FLAG_OAM;
        }
        if self.critical {
            flags |= FLAG_CRITICAL;
        }
        out[field::FLAGS] = flags;
        out[field::RESERVED] = self.reserved;
        out[field::OPTIONS..].copy_from_slice(self.options);
        let mut p = Packet::new_unchecked(out);
        p.set_protocol(self.protocol);
        p.set_vni(self.vni);
        Ok(len)
    }
}

/// Where the inner frame of a GENEVE packet lies in `frame`: an Ethernet frame carrying IPv4
/// UDP to port [`UDP_PORT`], then a GENEVE header, then the inner frame. The outer headers
/// are validated as [`super::parse_frame`] does, the GENEVE header as
/// [`Packet::new_checked`] does.
///
/// # Errors
/// The outer headers' errors of [`super::parse_frame`]; [`Error::TunnelNotEncapsulated`] if
/// the frame is not IPv4 UDP to port 6081 or is a fragment; the errors of
/// [`Packet::new_checked`].
pub fn decapsulate(frame: &[u8], caps: &ChecksumCaps) -> Result<Decap, Error> {
    decap(frame, &tunnel::outer(frame, UDP_PORT, caps)?)
}

/// [`decapsulate`] past the outer headers, which [`Outer`] found: the GENEVE header checked,
/// where the inner packet starts and what it is.
///
/// # Errors
/// The errors of [`Packet::new_checked`].
pub fn decap(frame: &[u8], outer: &Outer) -> Result<Decap, Error> {
    let geneve = Packet::new_checked(outer.udp_payload(frame))?;
    Ok(outer.decap(geneve.header_len(), geneve.protocol(), geneve.vni()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::packet::tunnel::vectors::{AWS_FRAME, AWS_INNER as INNER, HEADER as AT};
    use crate::packet::Ipv4Packet;

    /// Amazon's option class (AWS Gateway Load Balancer's TLVs).
    const AWS: u16 = 0x0108;

    /// A header with every flag and reserved bit set, an Ethernet payload, a critical option
    /// without data and an option with reserved bits in its length byte.
    #[rustfmt::skip]
    const FLAGGED: [u8; 24] = [
        // GENEVE: version 0, 3 words of options, O, C and all reserved flag bits,
        // transparent Ethernet bridging, VNI 0x123456, reserved 0xa5
        0x03, 0xff, 0x65, 0x58, 0x12, 0x34, 0x56, 0xa5,
        // option: class 0xffff, type 0x81 (critical), no data
        0xff, 0xff, 0x81, 0x00,
        // option: class 0x0101, type 0x02, reserved bits 0b101, 1 word
        0x01, 0x01, 0x02, 0xa1, 0x01, 0x02, 0x03, 0x04,
        // payload: the start of an inner Ethernet frame
        0x02, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn aws_gateway_load_balancer_packet() {
        // Where decapsulate finds the parts: tunnel.rs's test of both vectors.
        let p = Packet::new_checked(&AWS_FRAME[AT..]).unwrap();
        assert_eq!((p.version(), p.options_len(), p.header_len()), (0, 32, 40));
        assert_eq!(
            (p.oam(), p.critical(), p.reserved_flags()),
            (false, false, 0)
        );
        assert_eq!(p.payload(), &AWS_FRAME[INNER..]);
        let options: Vec<_> = p.options().map(Result::unwrap).collect();
        let expected = [
            (1, &AWS_FRAME[54..62]),
            (2, &AWS_FRAME[66..74]),
            (3, &[0xde, 0xad, 0xbe, 0xef][..]),
        ];
        assert_eq!(options.len(), expected.len());
        for (o, (kind, data)) in options.iter().zip(expected) {
            assert_eq!((o.class, o.kind, o.data), (AWS, kind, data));
            assert!(!o.is_critical());
        }
        let inner = Ipv4Packet::new_checked(p.payload()).unwrap();
        assert!(inner.verify_checksum());
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(198, 51, 100, 7));

        // Returned to the load balancer, the header is the one that came.
        let r = Repr::parse(&p);
        assert_eq!(r.options, &AWS_FRAME[50..INNER]);
        assert_eq!(r.buffer_len(), 40);
        let mut out = [0u8; 40];
        assert_eq!(r.emit(&mut out), Ok(40));
        assert_eq!(out, AWS_FRAME[AT..INNER]);
    }

    #[test]
    fn flags_reserved_bits_and_critical_options_are_kept() {
        let p = Packet::new_checked(&FLAGGED[..]).unwrap();
        assert_eq!(
            (p.oam(), p.critical(), p.reserved_flags()),
            (true, true, 0x3f)
        );
        assert_eq!(p.protocol(), EtherType::TransparentBridging);
        assert_eq!(p.vni().value(), 0x123456);
        assert_eq!(p.reserved(), 0xa5);
        assert_eq!(p.payload(), &[0x02, 0, 0, 0]);
        let options: Vec<_> = p.options().map(Result::unwrap).collect();
        assert_eq!(options.len(), 2);
        assert_eq!((options[0].class, options[0].kind), (0xffff, 0x81));
        assert!(options[0].is_critical() && options[0].data.is_empty());
        assert_eq!(
            (options[1].class, options[1].data),
            (0x0101, &[1, 2, 3, 4][..])
        );
        assert!(!options[1].is_critical());

        let r = Repr::parse(&p);
        assert_eq!(
            r,
            Repr {
                oam: true,
                critical: true,
                protocol: EtherType::TransparentBridging,
                vni: Vni::new(0x123456).unwrap(),
                options: &FLAGGED[8..20],
                reserved_flags: 0x3f,
                reserved: 0xa5,
            }
        );
        let mut out = [0u8; 20];
        assert_eq!(r.emit(&mut out), Ok(20));
        assert_eq!(out, FLAGGED[..20]);
        assert_eq!(r.emit(&mut out[..19]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn malformed_headers_each_give_their_error() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&FLAGGED[..7]), Err(Error::GeneveTruncated));
        assert_eq!(check(&[]), Err(Error::GeneveTruncated));
        // 3 words of options announced, 2 present.
        assert_eq!(check(&FLAGGED[..19]), Err(Error::GeneveBadOptionsLen));
        for version in 1..4u8 {
            let mut b = FLAGGED;
            b[0] |= version << 6;
            assert_eq!(check(&b), Err(Error::GeneveBadVersion));
        }
        for (at, value) in [
            // The second option claims 2 words of data; the area has room for 1.
            (15, 0x02),
            // The first option claims the whole area and one word more.
            (11, 0x03),
            // The same header announcing 2 words: the second option's header overruns them.
            (0, 0x02),
        ] {
            let mut b = FLAGGED;
            b[at] = value;
            assert_eq!(
                check(&b),
                Err(Error::GeneveBadOption),
                "byte {at} = {value}"
            );
        }
        // Announcing 1 word: just the empty critical option, the rest is payload.
        let mut b = FLAGGED;
        b[0] = 0x01;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().count(), 1);
        assert_eq!(p.payload(), &FLAGGED[12..]);
    }

    #[test]
    fn the_option_walk_never_panics() {
        assert_eq!(Options::new(&[]).count(), 0);
        for ragged in [&[0x01][..], &[1, 8, 1], &[1, 8, 1, 1, 0xaa, 0xbb]] {
            let mut o = Options::new(ragged);
            assert_eq!(o.next(), Some(Err(Error::GeneveBadOption)));
            assert_eq!(o.next(), None);
        }
        let mut o = Options::new(&[1, 8, 3, 0, 1, 8, 3]);
        assert!(matches!(o.next(), Some(Ok(GeneveOption { kind: 3, .. }))));
        assert_eq!(o.next(), Some(Err(Error::GeneveBadOption)));
        assert_eq!(o.next(), None);
    }

    #[test]
    fn emit_refuses_options_that_do_not_parse() {
        let r = Repr::parse(&Packet::new_checked(&FLAGGED[..]).unwrap());
        let mut out = [0u8; 300];
        let too_long = [0u8; MAX_OPTIONS_LEN + 4];
        for (options, error) in [
            (&FLAGGED[8..19], Error::GeneveBadOptionsLen),
            (&too_long[..], Error::GeneveBadOptionsLen),
            (&FLAGGED[8..16], Error::GeneveBadOption),
        ] {
            assert_eq!(Repr { options, ..r }.emit(&mut out), Err(error));
        }
        // The most options there is room for: 63 words of empty options.
        let most = [0u8; MAX_OPTIONS_LEN];
        let r = Repr {
            options: &most,
            ..r
        };
        assert_eq!(r.emit(&mut out), Ok(HEADER_LEN + MAX_OPTIONS_LEN));
        let p = Packet::new_checked(&out[..HEADER_LEN + MAX_OPTIONS_LEN]).unwrap();
        assert_eq!(p.options().count(), 63);
        assert_eq!(Repr::parse(&p), r);
    }

    #[test]
    fn decapsulate_takes_only_geneve_frames() {
        let caps = ChecksumCaps::NONE;
        // Behind a VLAN tag, everything moves by 4.
        let mut tagged = AWS_FRAME[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged.extend_from_slice(&AWS_FRAME[12..]);
        let at = decapsulate(&tagged, &caps).unwrap();
        assert_eq!(
            (at.l3, at.udp, at.header, at.inner, at.end),
            (18, 38, 46, 86, 114)
        );
        // Ethernet padding past the datagram is not inner packet.
        let mut padded = AWS_FRAME.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(decapsulate(&padded, &caps).unwrap().end, AWS_FRAME.len());

        // Another port, another EtherType, a fragment: not a tunnel packet.
        let mut other_port = AWS_FRAME;
        other_port[37] = 0xc2;
        let mut lldp = AWS_FRAME;
        lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
        let mut fragment = AWS_FRAME;
        Ipv4Packet::new_unchecked(&mut fragment[14..]).set_frag(false, true, 0);
        Ipv4Packet::new_unchecked(&mut fragment[14..]).fill_checksum();
        let mut gre = AWS_FRAME;
        gre[23] = 47;
        Ipv4Packet::new_unchecked(&mut gre[14..]).fill_checksum();
        for f in [&other_port[..], &lldp[..], &fragment[..], &gre[..]] {
            assert_eq!(decapsulate(f, &caps), Err(Error::TunnelNotEncapsulated));
        }
        // The outer headers' own errors, then GENEVE's.
        let mut bad_sum = AWS_FRAME;
        bad_sum[24] ^= 1;
        assert_eq!(decapsulate(&bad_sum, &caps), Err(Error::Ipv4BadChecksum));
        assert_eq!(
            decapsulate(&AWS_FRAME[..60], &caps),
            Err(Error::Ipv4Truncated)
        );
        let mut bad_version = AWS_FRAME;
        bad_version[AT] |= 0x40;
        assert_eq!(
            decapsulate(&bad_version, &caps),
            Err(Error::GeneveBadVersion)
        );
        let mut short = AWS_FRAME;
        // A UDP length that leaves 4 bytes of GENEVE header.
        short[39] = 12;
        assert_eq!(decapsulate(&short, &caps), Err(Error::GeneveTruncated));
    }
}

//! IPv4 (RFC 791) with RFC 1812 section 5.2.2 validation, the TTL decrement and the
//! address-only rewrite (an ICMP error's outer header). What reads past the header lives
//! above: the 5-tuple in [`super::tuple`], the NAT rewrites in [`super::translate`].

use std::net::Ipv4Addr;

use super::checksum::{self, ChecksumCaps};
use super::field::{get_u16, get_u32, set_u16, set_u32};
use super::{Error, IpProtocol};

pub(super) mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Length of a header with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// TTL the appliance gives the packets it originates (RFC 1700 default).
pub const DEFAULT_TTL: u8 = 64;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Which endpoint of a packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Source address and port (SNAT on the way out, reverse DNAT on the way back).
    Src,
    /// Destination address and port (DNAT on the way in, reverse SNAT on the way back).
    Dst,
}

impl Endpoint {
    /// The other endpoint.
    pub const fn flip(self) -> Endpoint {
        match self {
            Endpoint::Src => Endpoint::Dst,
            Endpoint::Dst => Endpoint::Src,
        }
    }
}

/// The RFC 1812 section 5.2.2 checks other than the checksum (see [`Packet::new_checked`]).
#[inline(always)]
fn check_header(d: &[u8]) -> Result<(), Error> {
    if d.len() < HEADER_LEN {
        return Err(Error::Ipv4Truncated);
    }
    let ver_ihl = d[field::VER_IHL];
    // 0x45 (version 4, no options) is nearly every packet: one compare settles both.
    let header_len = if ver_ihl == 0x45 {
        HEADER_LEN
    } else {
        if ver_ihl >> 4 != 4 {
            return Err(Error::Ipv4BadVersion);
        }
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        if header_len < HEADER_LEN {
            return Err(Error::Ipv4BadHeaderLen);
        }
        header_len
    };
    let total_len = usize::from(get_u16(d, field::LENGTH));
    if total_len < header_len {
        return Err(Error::Ipv4BadTotalLen);
    }
    if d.len() < total_len {
        return Err(Error::Ipv4Truncated);
    }
    Ok(())
}

view! {
    /// A view of an IPv4 packet.
    ///
    /// `new_checked` applies the length checks of RFC 1812 section 5.2.2; the header checksum
    /// is checked separately ([`Packet::verify_checksum`]) because the NIC may have done it.
    pub struct Packet {
        field::IDENT: u16 {
            /// Identification, for reassembly.
            #[inline]
            pub fn ident;
            /// Set the identification.
            pub fn set_ident;
        }
        field::TTL: u8 {
            /// Time to live.
            #[inline]
            pub fn ttl;
            /// Set the TTL (no checksum update; see [`Packet::decrement_ttl`]).
            pub fn set_ttl;
        }
        field::PROTOCOL: IpProtocol {
            /// Transport protocol.
            #[inline]
            pub fn protocol;
            /// Set the protocol.
            pub fn set_protocol;
        }
        field::CHECKSUM: u16 {
            /// Header checksum field.
            #[inline]
            pub fn checksum;
            /// Set the checksum field.
            pub fn set_checksum;
        }
        field::SRC_ADDR: Ipv4Addr {
            /// Source address.
            #[inline]
            pub fn src_addr;
            /// Set the source address (no checksum update; the rewrites that keep the checksums
            /// are [`Packet::rewrite_addr_only`] and [`super::translate::translate`]).
            pub fn set_src_addr;
        }
        field::DST_ADDR: Ipv4Addr {
            /// Destination address.
            #[inline]
            pub fn dst_addr;
            /// Set the destination address (no checksum update; the rewrites that keep the
            /// checksums are [`Packet::rewrite_addr_only`] and [`super::translate::translate`]).
            pub fn set_dst_addr;
        }
    }

    /// Wrap a buffer after the RFC 1812 section 5.2.2 checks other than the checksum: the
    /// buffer holds the minimum header, version is 4, IHL is at least 5, and the total length
    /// covers the header and fits in the buffer. Bytes past the total length (Ethernet
    /// padding) are allowed and ignored.
    ///
    /// # Errors
    /// [`Error::Ipv4Truncated`], [`Error::Ipv4BadVersion`], [`Error::Ipv4BadHeaderLen`],
    /// [`Error::Ipv4BadTotalLen`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Version field (4 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.data()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.data()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.data()[field::DSCP_ECN] & 0x03
    }

    /// Total length of the datagram (header and payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.data(), field::LENGTH))
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.data(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.data(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.data(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.data(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Carries the transport header: not a fragment, or the first one.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        get_u16(self.data(), field::FLG_OFF) & OFFSET_MASK == 0
    }

    /// Whether the header checksum verifies (RFC 1812 section 5.2.2).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let d = self.data();
        let hl = self.header_len();
        match d.first_chunk::<HEADER_LEN>() {
            Some(header) if hl == HEADER_LEN => header_checksum_ok(header),
            _ => checksum::data(&d[..hl]) == 0xffff,
        }
    }

    /// The raw option bytes (empty without options).
    #[inline]
    pub fn options_bytes(&self) -> &[u8] {
        &self.data()[HEADER_LEN..self.header_len()]
    }

    /// The options, one by one (RFC 791 section 3.1).
    pub fn options(&self) -> Options<'_> {
        Options {
            data: self.options_bytes(),
        }
    }

    /// The payload (transport header onward) as a slice bound to this view.
    #[inline]
    pub fn payload_slice(&self) -> &[u8] {
        &self.data()[self.header_len()..self.total_len()]
    }
}

/// Whether an option-less header's checksum verifies, in one pass of five additions.
///
/// The words are read in native byte order: a ones' complement sum taken in the other byte
/// order is the same sum byte-swapped (RFC 1071 section 2(B)), and a swap keeps 0xffff. The
/// sum verifies when it folds to 0xffff, that is when the wide sum is a non-zero multiple of
/// 0xffff (see [`checksum::folds_to_ffff`]).
#[inline(always)]
pub(crate) fn header_checksum_ok(header: &[u8; HEADER_LEN]) -> bool {
    let word = |at: usize| {
        u64::from(u32::from_ne_bytes([
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ]))
    };
    checksum::folds_to_ffff(word(0) + word(4) + word(8) + word(12) + word(16))
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (transport header onward), up to the total length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let data = self.buffer.as_ref();
        let hl = usize::from(data[field::VER_IHL] & 0x0f) * 4;
        &data[hl..usize::from(get_u16(data, field::LENGTH))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Set the version to 4 and the header length (a multiple of 4 from 20 to 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len % 4 == 0 && (HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len));
        self.data_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Set the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.data_mut()[field::DSCP_ECN] = value;
    }

    /// Set the total length. The view's checks assumed the old value: recheck before reading
    /// the payload of a view whose length you changed.
    pub fn set_total_len(&mut self, value: u16) {
        set_u16(self.data_mut(), field::LENGTH, value);
    }

    /// Set flags and fragment offset (in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set_u16(self.data_mut(), field::FLG_OFF, v);
    }

    /// Compute the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.data()[..self.header_len()]);
        self.set_checksum(!sum);
    }

    /// Mutable payload, up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len());
        &mut self.data_mut()[hl..tl]
    }

    /// Decrement the TTL for forwarding and update the header checksum incrementally.
    /// Returns the new TTL.
    ///
    /// # Errors
    /// [`Error::Ipv4TtlExpired`] if the TTL is 0 or 1 (RFC 1812 section 5.3.1): the packet
    /// must not be forwarded, and is left unchanged for the time-exceeded builder to quote.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Result<u8, Error> {
        let d = self.data_mut();
        let ttl = d[field::TTL];
        if ttl <= 1 {
            return Err(Error::Ipv4TtlExpired);
        }
        // TTL is the high byte of the 16-bit word it shares with the protocol.
        let old = get_u16(d, field::TTL);
        let new = old - 0x0100;
        d[field::TTL] = ttl - 1;
        let sum = checksum::update16(get_u16(d, field::CHECKSUM), old, new);
        set_u16(d, field::CHECKSUM, sum);
        Ok(ttl - 1)
    }

    /// Change one address and fix the header checksum, leaving the transport alone.
    ///
    /// Right for ICMP, whose checksum has no pseudo-header (the outer header of a translated
    /// ICMP error), and for protocols NAT does not look into. A session's packets are
    /// translated by [`super::translate::translate`], which also fixes the transport checksum.
    #[inline]
    pub fn rewrite_addr_only(&mut self, side: Endpoint, addr: Ipv4Addr) {
        let at = addr_offset(side);
        let d = self.data_mut();
        let old = get_u32(d, at);
        let new = u32::from(addr);
        set_u32(d, at, new);
        let sum = checksum::update32(get_u16(d, field::CHECKSUM), old, new);
        set_u16(d, field::CHECKSUM, sum);
    }
}

/// Offset of the address on `side` (also in a quoted header, [`super::quote::Quote`]).
#[inline(always)]
pub(super) fn addr_offset(side: Endpoint) -> usize {
    match side {
        Endpoint::Src => field::SRC_ADDR,
        Endpoint::Dst => field::DST_ADDR,
    }
}

/// One IPv4 option (RFC 791 section 3.1): its type octet and the bytes after the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Option<'a> {
    /// Option type octet (copied flag, class, number).
    pub kind: u8,
    /// Option data after the type and length octets (empty for NOP).
    pub data: &'a [u8],
}

/// Iterator over IPv4 options; stops at End of Option List, yields an error once on a
/// malformed option.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<Ipv4Option<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let option = super::next_option(&mut self.data, Error::Ipv4BadOption)?;
        Some(option.map(|(kind, data)| Ipv4Option { kind, data }))
    }
}

/// The meaning of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Transport protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes (total length less the header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
}

impl Repr {
    /// Read a checked packet, verifying the header checksum unless `caps.ipv4` says the NIC
    /// did, and the options' framing. Options themselves are not represented: emitting the
    /// result writes a 20-byte header.
    ///
    /// # Errors
    /// [`Error::Ipv4BadChecksum`], [`Error::Ipv4BadOption`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        caps: &ChecksumCaps,
    ) -> Result<Repr, Error> {
        if !caps.ipv4 && !packet.verify_checksum() {
            return Err(Error::Ipv4BadChecksum);
        }
        for opt in packet.options() {
            opt?;
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.data()[field::DSCP_ECN],
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Header length the emitted packet has.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes header and payload take.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the 20-byte header at the start of `buf` (the payload is the caller's), with the
    /// checksum unless `caps.ipv4` leaves it to the NIC (then 0). Returns the header length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold [`Repr::buffer_len`] bytes or the total
    /// length does not fit 16 bits.
    pub fn emit(&self, buf: &mut [u8], caps: &ChecksumCaps) -> Result<usize, Error> {
        let total = self.buffer_len();
        if buf.len() < total || total > usize::from(u16::MAX) {
            return Err(Error::BufferTooSmall);
        }
        let mut p = Packet::new_unchecked(&mut buf[..total]);
        p.set_version_and_header_len(HEADER_LEN);
        p.set_dscp_ecn(self.dscp_ecn);
        p.set_total_len(total as u16);
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        if caps.ipv4 {
            p.set_checksum(0);
        } else {
            p.fill_checksum();
        }
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 + UDP, 10.0.0.1:1024 -> 192.0.2.1:53, payload "abcd".
    #[rustfmt::skip]
    const UDP_PACKET: [u8; 32] = [
        // IPv4: ver 4 ihl 5, tos 0, total 32, id 0x1234, DF, ttl 64, UDP, checksum 0x5c97
        0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x5c, 0x97,
        // src 10.0.0.1, dst 192.0.2.1
        0x0a, 0x00, 0x00, 0x01, 0xc0, 0x00, 0x02, 0x01,
        // UDP: sport 1024, dport 53, len 12, checksum 0x6ad8
        0x04, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x6a, 0xd8,
        // payload
        b'a', b'b', b'c', b'd',
    ];

    // IPv4 header with options: IHL 7 (NOP, NOP, router alert len 4, EOL + pad), then 4
    // payload bytes, plus 2 bytes of Ethernet padding past the total length.
    #[rustfmt::skip]
    const WITH_OPTIONS: [u8; 34] = [
        // IPv4: ihl 7, total 32, id 1, ttl 1, IGMP, checksum (filled by the test)
        0x47, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,
        // src 10.0.0.1, dst 224.0.0.22
        0x0a, 0x00, 0x00, 0x01, 0xe0, 0x00, 0x00, 0x16,
        // options: NOP NOP router-alert(0x94, len 4, 0x0000) EOL pad pad pad
        0x01, 0x01, 0x94, 0x04, 0x00, 0x00, 0x00, 0x00,
        // payload
        0x11, 0x22, 0x33, 0x44,
        // Ethernet padding past the total length
        0x00, 0x00,
    ];

    #[test]
    fn parse_known_packet() {
        let p = Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 32);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        let r = Repr::parse(&p, &ChecksumCaps::NONE).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.protocol, IpProtocol::UDP);
        assert_eq!(r.payload_len, 12);
        assert_eq!(r.ident, 0x1234);
        let t = p.five_tuple().unwrap();
        assert_eq!((t.src_port, t.dst_port), (1024, 53));
        assert_eq!(t.reversed().reversed(), t);
        // Round trip.
        let mut out = [0u8; 32];
        assert_eq!(r.emit(&mut out, &ChecksumCaps::NONE).unwrap(), 20);
        assert_eq!(out[..20], UDP_PACKET[..20]);
        assert_eq!(
            r.emit(&mut out[..31], &ChecksumCaps::NONE),
            Err(Error::BufferTooSmall)
        );
        r.emit(&mut out, &ChecksumCaps::ALL).unwrap();
        assert_eq!(&out[10..12], &[0, 0]);
    }

    #[test]
    fn options_and_padding() {
        let mut buf = WITH_OPTIONS;
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.payload(), &[0x11, 0x22, 0x33, 0x44]);
        let opts: Vec<_> = p.options().collect::<Result<_, _>>().unwrap();
        assert_eq!(opts.len(), 3);
        assert_eq!(
            opts[2],
            Ipv4Option {
                kind: 0x94,
                data: &[0, 0]
            }
        );
        assert!(Repr::parse(&p, &ChecksumCaps::NONE).is_ok());
        // An option whose length runs past the header.
        buf[23] = 9;
        Packet::new_unchecked(&mut buf[..]).fill_checksum();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, &ChecksumCaps::NONE),
            Err(Error::Ipv4BadOption)
        );
    }

    #[test]
    fn rfc1812_checks() {
        let check = |f: &dyn Fn(&mut [u8; 32]), e: Error| {
            let mut b = UDP_PACKET;
            f(&mut b);
            assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), e);
        };
        check(&|b| b[0] = 0x65, Error::Ipv4BadVersion);
        check(&|b| b[0] = 0x44, Error::Ipv4BadHeaderLen);
        check(&|b| b[3] = 19, Error::Ipv4BadTotalLen);
        check(&|b| b[0] = 0x4f, Error::Ipv4BadTotalLen);
        check(&|b| b[3] = 33, Error::Ipv4Truncated);
        assert_eq!(
            Packet::new_checked(&UDP_PACKET[..19]).unwrap_err(),
            Error::Ipv4Truncated
        );
        let mut b = UDP_PACKET;
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, &ChecksumCaps::NONE),
            Err(Error::Ipv4BadChecksum)
        );
        assert!(Repr::parse(&p, &ChecksumCaps::ALL).is_ok());
    }

    #[test]
    fn ttl_decrement() {
        let mut b = UDP_PACKET;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_ttl(), Ok(63));
        assert!(p.verify_checksum());
        p.set_ttl(1);
        p.fill_checksum();
        assert_eq!(p.decrement_ttl(), Err(Error::Ipv4TtlExpired));
        assert_eq!(p.ttl(), 1);
    }

    #[test]
    fn fragments() {
        let mut b = UDP_PACKET;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_frag(false, true, 0);
        assert!(p.is_fragment() && p.is_first_fragment());
        p.set_frag(false, false, 1480);
        assert_eq!(p.frag_offset(), 1480);
        assert!(!p.is_first_fragment());
        assert_eq!(p.five_tuple(), Err(Error::Ipv4Fragment));
        p.fill_checksum();
        // A later fragment's address changes alone: its bytes after the header are data.
        let before = p.payload_slice().to_vec();
        p.rewrite_addr_only(Endpoint::Dst, Ipv4Addr::new(10, 9, 9, 9));
        assert!(p.verify_checksum());
        assert_eq!(p.payload_slice(), &before[..]);
    }
}

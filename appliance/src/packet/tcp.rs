//! TCP segments (RFC 9293) and the options NAT and MSS clamping care about.

use core::ops::{BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::checksum::{self, ChecksumCaps};
use super::field::{get_u16, get_u32, set_u16};
use super::{Error, IpProtocol};

pub(super) mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF_FLAGS: usize = 12;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Offset of the checksum field, for the in-place rewrites.
pub(crate) const CHECKSUM: usize = field::CHECKSUM;

/// TCP control bits (RFC 9293 section 3.1, RFC 3168 for ECE/CWR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u16);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x002);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x004);
    /// Push.
    pub const PSH: Flags = Flags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x010);
    /// Urgent pointer is significant.
    pub const URG: Flags = Flags(0x020);
    /// ECN echo.
    pub const ECE: Flags = Flags(0x040);
    /// Congestion window reduced.
    pub const CWR: Flags = Flags(0x080);
    /// Historic ECN nonce (RFC 3540, obsoleted), kept for lossless round trips.
    pub const NS: Flags = Flags(0x100);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// SYN set (with or without ACK).
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }

    /// ACK set.
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }

    /// FIN set.
    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }

    /// RST set.
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }

    /// A SYN without ACK or RST: an attempt to open a connection.
    pub const fn pure_syn(self) -> bool {
        self.0 & (Flags::SYN.0 | Flags::ACK.0 | Flags::RST.0) == Flags::SYN.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

/// Check the part of the TCP header NAT touches: the fixed header and a data offset that fits.
#[inline]
pub(crate) fn check_header(data: &[u8]) -> Result<(), Error> {
    if data.len() < HEADER_LEN {
        return Err(Error::TcpTruncated);
    }
    let hl = usize::from(data[field::DATA_OFF_FLAGS] >> 4) * 4;
    if hl < HEADER_LEN || hl > data.len() {
        return Err(Error::TcpBadDataOffset);
    }
    Ok(())
}

view! {
    /// A view of a TCP segment. The buffer is the whole segment (the IPv4 payload).
    pub struct Packet {
        field::SRC_PORT: u16 {
            /// Source port.
            #[inline]
            pub fn src_port;
            /// Set the source port (no checksum update).
            pub fn set_src_port;
        }
        field::DST_PORT: u16 {
            /// Destination port.
            #[inline]
            pub fn dst_port;
            /// Set the destination port (no checksum update).
            pub fn set_dst_port;
        }
        field::SEQ_NUM: u32 {
            /// Sequence number.
            #[inline]
            pub fn seq_number;
            /// Set the sequence number.
            pub fn set_seq_number;
        }
        field::ACK_NUM: u32 {
            /// Acknowledgment number (meaningful with ACK).
            #[inline]
            pub fn ack_number;
            /// Set the acknowledgment number.
            pub fn set_ack_number;
        }
        field::WIN_SIZE: u16 {
            /// Receive window (unscaled).
            #[inline]
            pub fn window_len;
            /// Set the window.
            pub fn set_window_len;
        }
        field::CHECKSUM: u16 {
            /// Checksum field.
            #[inline]
            pub fn checksum;
            /// Set the checksum field.
            pub fn set_checksum;
        }
        field::URGENT: u16 {
            /// Urgent pointer.
            #[inline]
            pub fn urgent_at;
            /// Set the urgent pointer.
            pub fn set_urgent_at;
        }
    }

    /// Wrap a segment whose fixed header fits and whose data offset is between 5 words and
    /// the segment length.
    ///
    /// # Errors
    /// [`Error::TcpTruncated`], [`Error::TcpBadDataOffset`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Header length in bytes (data offset times 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data()[field::DATA_OFF_FLAGS] >> 4) * 4
    }

    /// Control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(get_u16(self.data(), field::DATA_OFF_FLAGS) & 0x01ff)
    }

    /// Raw option bytes.
    #[inline]
    pub fn options_bytes(&self) -> &[u8] {
        &self.data()[HEADER_LEN..self.header_len()]
    }

    /// The options, one by one.
    pub fn options(&self) -> Options<'_> {
        Options {
            data: self.options_bytes(),
        }
    }

    /// Sequence space the segment takes: payload plus one for SYN and one for FIN
    /// (RFC 9293 section 3.4), used for a RST's acknowledgment number.
    pub fn segment_len(&self) -> usize {
        let f = self.flags();
        self.data().len() - self.header_len() + usize::from(f.syn()) + usize::from(f.fin())
    }

    /// Whether the checksum verifies for this segment between `src` and `dst`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let d = self.data();
        u16::try_from(d.len()).is_ok()
            && checksum::transport(src, dst, IpProtocol::TCP, d) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Payload after the header and options.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[usize::from(d[field::DATA_OFF_FLAGS] >> 4) * 4..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the header length (a multiple of 4, 20 to 60) and the control bits together,
    /// as they share a word.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: Flags) {
        let v = (((header_len / 4) as u16) << 12) | (flags.0 & 0x01ff);
        set_u16(self.buffer.as_mut(), field::DATA_OFF_FLAGS, v);
    }

    /// Mutable option bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Compute the checksum from scratch, or write the pseudo-header sum DPDK's TX offload
    /// expects when `caps.l4` is set.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, caps: &ChecksumCaps) {
        if caps.l4 {
            let len = self.buffer.as_ref().len() as u16;
            self.set_checksum(checksum::pseudo_header(src, dst, IpProtocol::TCP, len));
            return;
        }
        self.set_checksum(0);
        let sum = checksum::transport(src, dst, IpProtocol::TCP, self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    /// Lower the MSS option to at most `mss`, updating the checksum incrementally, so the
    /// path MTU behind the appliance is respected (MSS clamping). Returns whether the option
    /// was changed.
    pub fn clamp_mss(&mut self, mss: u16) -> bool {
        // The offset of the MSS value: the first well-formed MSS option before the end of the
        // list or a malformed option.
        let at = {
            let opts = self.options_bytes();
            let mut rest = opts;
            loop {
                let start = opts.len() - rest.len();
                match super::next_option(&mut rest, Error::TcpBadOption) {
                    Some(Ok((2, mss))) if mss.len() == 2 => break Some(HEADER_LEN + start + 2),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                }
            }
        };
        let Some(at) = at else { return false };
        let d = self.buffer.as_mut();
        let old = get_u16(d, at);
        if old <= mss {
            return false;
        }
        // The option may sit at an odd offset; the checksum covers 16-bit words at even ones,
        // so then the value straddles two words and both changes are summed.
        let mut delta = checksum::ChecksumDelta::ZERO;
        if at % 2 == 0 {
            delta = delta.add16(old, mss);
            set_u16(d, at, mss);
        } else {
            let w1 = get_u16(d, at - 1);
            let w2 = get_u16(d, at + 1);
            set_u16(d, at, mss);
            delta = delta
                .add16(w1, get_u16(d, at - 1))
                .add16(w2, get_u16(d, at + 1));
        }
        let c = get_u16(d, field::CHECKSUM);
        set_u16(d, field::CHECKSUM, delta.apply(c));
        true
    }
}

/// One TCP option (RFC 9293 section 3.2, RFC 7323, RFC 2018).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// No-operation padding (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift (kind 3, RFC 7323).
    WindowScale(u8),
    /// SACK permitted (kind 4, RFC 2018).
    SackPermitted,
    /// SACK blocks (kind 5, RFC 2018), raw: pairs of 32-bit left/right edges.
    Sack(&'a [u8]),
    /// Timestamps (kind 8, RFC 7323).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other option, kind and data.
    Unknown {
        /// Option kind.
        kind: u8,
        /// Bytes after kind and length.
        data: &'a [u8],
    },
}

/// Iterator over TCP options; stops at End of Option List, yields an error once on a
/// malformed option.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<TcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (kind, body) = match super::next_option(&mut self.data, Error::TcpBadOption)? {
            Ok(option) => option,
            Err(e) => return Some(Err(e)),
        };
        let opt = match (kind, body.len()) {
            (1, _) => TcpOption::NoOperation,
            (2, 2) => TcpOption::MaxSegmentSize(get_u16(body, 0)),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 && n > 0 => TcpOption::Sack(body),
            (8, 8) => TcpOption::Timestamps {
                tsval: get_u32(body, 0),
                tsecr: get_u32(body, 4),
            },
            (2..=5 | 8, _) => {
                self.data = &[];
                return Some(Err(Error::TcpBadOption));
            }
            _ => TcpOption::Unknown { kind, data: body },
        };
        Some(Ok(opt))
    }
}

/// The meaning of a TCP segment: header fields, the options the appliance understands, and
/// the payload.
///
/// The default is all zero, without options or payload: the segments the appliance writes
/// (a reset) name their header fields and take the rest from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Control bits.
    pub flags: Flags,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (as on the wire, meaningful with ACK).
    pub ack_number: u32,
    /// Window (unscaled).
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// MSS option.
    pub max_seg_size: Option<u16>,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// Timestamps option (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Read a checked segment, verifying its checksum unless `caps.l4` says the NIC did.
    /// SACK blocks and unknown options are skipped.
    ///
    /// # Errors
    /// [`Error::TcpBadChecksum`], [`Error::TcpBadOption`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<Repr<'a>, Error> {
        if !caps.l4 && !packet.verify_checksum(src, dst) {
            return Err(Error::TcpBadChecksum);
        }
        let mut r = Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            flags: packet.flags(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            timestamps: None,
            payload: packet.payload(),
        };
        for opt in packet.options() {
            match opt? {
                TcpOption::MaxSegmentSize(m) => r.max_seg_size = Some(m),
                TcpOption::WindowScale(s) => r.window_scale = Some(s),
                TcpOption::SackPermitted => r.sack_permitted = true,
                TcpOption::Timestamps { tsval, tsecr } => r.timestamps = Some((tsval, tsecr)),
                _ => {}
            }
        }
        Ok(r)
    }

    /// Header length with the options, padded to 4 bytes.
    pub fn header_len(&self) -> usize {
        let mut n = HEADER_LEN;
        n += if self.max_seg_size.is_some() { 4 } else { 0 };
        n += if self.window_scale.is_some() { 3 } else { 0 };
        n += if self.sack_permitted { 2 } else { 0 };
        n += if self.timestamps.is_some() { 10 } else { 0 };
        n.div_ceil(4) * 4
    }

    /// Bytes the segment takes.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Write the segment at the start of `buf` and fill the checksum (see
    /// [`Packet::fill_checksum`] for `caps`). Returns the segment length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`] or the segment
    /// exceeds 65535 bytes.
    pub fn emit(
        &self,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<usize, Error> {
        let len = self.buffer_len();
        if buf.len() < len || len > usize::from(u16::MAX) {
            return Err(Error::BufferTooSmall);
        }
        let hl = self.header_len();
        let buf = &mut buf[..len];
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_and_flags(hl, self.flags);
        p.set_window_len(self.window_len);
        p.set_urgent_at(self.urgent_at);
        let opts = p.options_mut();
        let mut i = 0;
        if let Some(m) = self.max_seg_size {
            opts[i..i + 4].copy_from_slice(&[2, 4, (m >> 8) as u8, m as u8]);
            i += 4;
        }
        if let Some(s) = self.window_scale {
            opts[i..i + 3].copy_from_slice(&[3, 3, s]);
            i += 3;
        }
        if self.sack_permitted {
            opts[i..i + 2].copy_from_slice(&[4, 2]);
            i += 2;
        }
        if let Some((v, e)) = self.timestamps {
            opts[i..i + 2].copy_from_slice(&[8, 10]);
            opts[i + 2..i + 6].copy_from_slice(&v.to_be_bytes());
            opts[i + 6..i + 10].copy_from_slice(&e.to_be_bytes());
            i += 10;
        }
        // End of list, then zero padding.
        opts[i..].fill(0);
        p.payload_mut().copy_from_slice(self.payload);
        p.fill_checksum(src, dst, caps);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

    // A SYN with MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (Linux's order).
    #[rustfmt::skip]
    const SYN: [u8; 40] = [
        // sport 40000, dport 80
        0x9c, 0x40, 0x00, 0x50,
        // seq 0x01020304, ack 0
        0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
        // data offset 10, flags SYN, window 64240
        0xa0, 0x02, 0xfa, 0xf0,
        // checksum (filled by the test), urgent 0
        0x00, 0x00, 0x00, 0x00,
        // MSS 1460
        0x02, 0x04, 0x05, 0xb4,
        // SACK permitted
        0x04, 0x02,
        // timestamps 1 / 0
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        // NOP, window scale 7
        0x01, 0x03, 0x03, 0x07,
    ];

    fn syn() -> [u8; 40] {
        let mut b = SYN;
        Packet::new_unchecked(&mut b[..]).fill_checksum(SRC, DST, &ChecksumCaps::NONE);
        b
    }

    #[test]
    fn parse_syn_options() {
        let b = syn();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        assert_eq!(p.segment_len(), 1);
        let r = Repr::parse(&p, SRC, DST, &ChecksumCaps::NONE).unwrap();
        assert_eq!(r.max_seg_size, Some(1460));
        assert_eq!(r.window_scale, Some(7));
        assert!(r.sack_permitted);
        assert_eq!(r.timestamps, Some((1, 0)));
        assert_eq!(
            (r.src_port, r.dst_port, r.seq_number),
            (40000, 80, 0x01020304)
        );
        // Emit in our own option order, parse again: same meaning.
        let mut out = [0u8; 60];
        let n = r.emit(&mut out, SRC, DST, &ChecksumCaps::NONE).unwrap();
        assert_eq!(n, 40);
        let p2 = Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(Repr::parse(&p2, SRC, DST, &ChecksumCaps::NONE).unwrap(), r);
    }

    #[test]
    fn bad_checksum_and_offsets() {
        let mut b = syn();
        b[17] ^= 0xff;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, SRC, DST, &ChecksumCaps::NONE),
            Err(Error::TcpBadChecksum)
        );
        assert!(Repr::parse(&p, SRC, DST, &ChecksumCaps::ALL).is_ok());
        assert_eq!(
            Packet::new_checked(&b[..19]).unwrap_err(),
            Error::TcpTruncated
        );
        assert_eq!(
            Packet::new_checked(&b[..39]).unwrap_err(),
            Error::TcpBadDataOffset
        );
        b[12] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::TcpBadDataOffset
        );
    }

    #[test]
    fn bad_option_length() {
        let mut b = syn();
        b[21] = 3; // MSS with length 3
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, SRC, DST, &ChecksumCaps::ALL),
            Err(Error::TcpBadOption)
        );
        b[21] = 30; // past the header
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options().last(), Some(Err(Error::TcpBadOption)));
    }

    #[test]
    fn mss_clamp_keeps_checksum() {
        let mut b = syn();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.clamp_mss(1400));
        assert!(!p.clamp_mss(1452));
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(
            p.options().next(),
            Some(Ok(TcpOption::MaxSegmentSize(1400)))
        );
        // MSS at an odd offset (after one NOP).
        let mut odd = [0u8; 28];
        odd[..20].copy_from_slice(&SYN[..20]);
        odd[12] = 0x70;
        odd[20..28].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 0]);
        let mut p = Packet::new_checked(&mut odd[..]).unwrap();
        p.fill_checksum(SRC, DST, &ChecksumCaps::NONE);
        assert!(p.clamp_mss(1200));
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(
            p.options().nth(1),
            Some(Ok(TcpOption::MaxSegmentSize(1200)))
        );
    }

    #[test]
    fn mss_clamp_finds_the_option_as_the_walk_does() {
        // The options of a 28-byte segment after clamping to 1200, if they changed.
        let clamp = |opts: [u8; 8]| {
            let mut seg = [0u8; 28];
            seg[..20].copy_from_slice(&SYN[..20]);
            seg[12] = 0x70;
            seg[20..].copy_from_slice(&opts);
            let mut p = Packet::new_checked(&mut seg[..]).unwrap();
            p.fill_checksum(SRC, DST, &ChecksumCaps::NONE);
            let clamped = p.clamp_mss(1200);
            assert!(p.verify_checksum(SRC, DST));
            clamped.then_some(*seg.last_chunk::<8>().unwrap())
        };
        // An MSS option of the wrong length is skipped, the next one clamped.
        assert_eq!(
            clamp([2, 3, 0, 2, 4, 0x05, 0xb4, 0]),
            Some([2, 3, 0, 2, 4, 0x04, 0xb0, 0])
        );
        // Nothing is read past the end of the list or a malformed option.
        assert_eq!(clamp([0, 0, 0, 2, 4, 0x05, 0xb4, 0]), None);
        assert_eq!(clamp([9, 1, 0, 2, 4, 0x05, 0xb4, 0]), None);
        assert_eq!(clamp([9, 9, 0, 2, 4, 0x05, 0xb4, 0]), None);
        // An MSS option cut by the end of the header.
        assert_eq!(clamp([1, 1, 1, 1, 1, 2, 4, 0x05]), None);
    }

    #[test]
    fn offload_writes_pseudo_header_sum() {
        let mut b = syn();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST, &ChecksumCaps::ALL);
        assert_eq!(
            p.checksum(),
            checksum::pseudo_header(SRC, DST, IpProtocol::TCP, 40)
        );
    }
}

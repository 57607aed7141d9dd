//! UDP datagrams (RFC 768).

use std::net::Ipv4Addr;

use super::checksum::{self, ChecksumCaps};
use super::field::get_u16;
use super::{Error, IpProtocol};

pub(super) mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field, for the in-place rewrites.
pub(crate) const CHECKSUM: usize = field::CHECKSUM;

/// Check the header fits and the length field is within `[8, data.len()]`.
#[inline]
pub(crate) fn check_header(data: &[u8]) -> Result<(), Error> {
    if data.len() < HEADER_LEN {
        return Err(Error::UdpTruncated);
    }
    let len = usize::from(get_u16(data, field::LENGTH));
    if len < HEADER_LEN || len > data.len() {
        return Err(Error::UdpBadLength);
    }
    Ok(())
}

view! {
    /// A view of a UDP datagram. The buffer is the IPv4 payload; the length field may be
    /// shorter (the rest is ignored), never longer.
    pub struct Packet {
        field::SRC_PORT: u16 {
            /// Source port (0 if unused).
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
        field::LENGTH: u16 {
            /// Length field: header plus payload.
            #[inline]
            pub fn len;
            /// Set the length field. Recheck before reading the payload of a view you changed.
            pub fn set_len;
        }
        field::CHECKSUM: u16 {
            /// Checksum field (0: none was computed).
            #[inline]
            pub fn checksum;
            /// Set the checksum field.
            pub fn set_checksum;
        }
    }

    /// Wrap a datagram whose header fits and whose length field is between 8 and the buffer
    /// length.
    ///
    /// # Errors
    /// [`Error::UdpTruncated`], [`Error::UdpBadLength`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Whether the checksum verifies; a zero checksum (none sent) counts as verified.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.data()[..usize::from(self.len())];
        checksum::transport(src, dst, IpProtocol::UDP, datagram) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[HEADER_LEN..usize::from(get_u16(d, field::LENGTH))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Mutable payload, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Compute the checksum (a computed 0 is sent as `0xffff`, RFC 768), or write the
    /// pseudo-header sum DPDK's TX offload expects when `caps.l4` is set.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr, caps: &ChecksumCaps) {
        let len = self.len();
        if caps.l4 {
            self.set_checksum(checksum::pseudo_header(src, dst, IpProtocol::UDP, len));
            return;
        }
        self.set_checksum(0);
        let datagram = &self.data()[..usize::from(len)];
        let sum = !checksum::transport(src, dst, IpProtocol::UDP, datagram);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

/// The meaning of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Read a checked datagram, verifying a non-zero checksum unless `caps.l4` says the NIC
    /// did.
    ///
    /// # Errors
    /// [`Error::UdpBadChecksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<Repr<'a>, Error> {
        if !caps.l4 && !packet.verify_checksum(src, dst) {
            return Err(Error::UdpBadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: packet.payload(),
        })
    }

    /// Bytes the datagram takes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Write the datagram at the start of `buf` with its checksum. Returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`] or the datagram
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
        let mut p = Packet::new_unchecked(&mut buf[..len]);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len as u16);
        p.payload_mut().copy_from_slice(self.payload);
        p.fill_checksum(src, dst, caps);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    // sport 1024, dport 53, length 12, checksum 0x6ad8 (computed independently), "abcd",
    // then 2 bytes beyond the length field (ignored).
    #[rustfmt::skip]
    const DATAGRAM: [u8; 14] = [
        // sport 1024, dport 53, length 12, checksum 0x6ad8
        0x04, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x6a, 0xd8,
        // payload "abcd"
        b'a', b'b', b'c', b'd',
        // 2 bytes past the length field (ignored)
        0xee, 0xee,
    ];

    #[test]
    fn known_answer_and_round_trip() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        let r = Repr::parse(&p, SRC, DST, &ChecksumCaps::NONE).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 1024,
                dst_port: 53,
                payload: b"abcd"
            }
        );
        let mut out = [0u8; 12];
        assert_eq!(r.emit(&mut out, SRC, DST, &ChecksumCaps::NONE).unwrap(), 12);
        assert_eq!(out, DATAGRAM[..12]);
        assert_eq!(
            r.emit(&mut out[..11], SRC, DST, &ChecksumCaps::NONE),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn checks() {
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..7]).unwrap_err(),
            Error::UdpTruncated
        );
        assert_eq!(
            Packet::new_checked(&DATAGRAM[..11]).unwrap_err(),
            Error::UdpBadLength
        );
        let mut b = DATAGRAM;
        b[5] = 7;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::UdpBadLength
        );
        let mut b = DATAGRAM;
        b[7] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(&p, SRC, DST, &ChecksumCaps::NONE),
            Err(Error::UdpBadChecksum)
        );
        // Zero checksum: none, accepted.
        b[6] = 0;
        b[7] = 0;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(Repr::parse(&p, SRC, DST, &ChecksumCaps::NONE).is_ok());
    }
}

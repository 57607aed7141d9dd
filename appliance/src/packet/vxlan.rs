//! VXLAN (RFC 7348), the encapsulation of Azure Gateway Load Balancer: an 8-byte header,
//! then the inner Ethernet frame.
//!
//! The UDP port is a parameter: RFC 7348 assigns 4789, Azure's gateway load balancer sends
//! its two tunnels (internal and external, VNIs 800 and 801) to ports of its own
//! configuration, 10800 and 10801 by default. The reserved fields are kept by the [`Repr`],
//! so that a header re-emitted is the header that came (extensions such as VXLAN-GBP carry
//! data there).

use super::checksum::ChecksumCaps;
use super::ethernet::EtherType;
use super::field::Field;
use super::tunnel::{self, Decap, Outer, Vni};
use super::Error;

pub(super) mod field {
    /// The VNI (24 bits) and the reserved byte after it, where GENEVE has them too.
    pub use super::tunnel::field::{RESERVED as RESERVED_LAST, VNI};
    use super::Field;
    /// Flags: I (0x08), the others reserved.
    pub const FLAGS: usize = 0;
    pub const RESERVED: Field = 1..4;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// The UDP port IANA assigned to VXLAN (RFC 7348 section 5).
pub const UDP_PORT: u16 = 4789;
/// I: the VNI is valid. RFC 7348 section 5 requires it set.
pub const FLAG_I: u8 = 0x08;

/// The header fits and has its I bit.
fn check_header(data: &[u8]) -> Result<(), Error> {
    if data.len() < HEADER_LEN {
        return Err(Error::VxlanTruncated);
    }
    if data[field::FLAGS] & FLAG_I == 0 {
        return Err(Error::VxlanIFlagMissing);
    }
    Ok(())
}

view! {
    /// A view of a VXLAN header and the inner frame after it. The buffer is the UDP payload;
    /// the inner frame runs to its end.
    pub struct Packet {
        field::FLAGS: u8 {
            /// The flags byte, I (`FLAG_I`) and seven reserved bits.
            #[inline]
            pub fn flags;
            /// Set the flags byte.
            pub fn set_flags;
        }
        field::VNI: Vni {
            /// Virtual network identifier.
            #[inline]
            pub fn vni;
            /// Set the VNI.
            pub fn set_vni;
        }
        field::RESERVED_LAST: u8 {
            /// The reserved last byte (zero when sent, ignored when received).
            pub fn reserved_last;
        }
    }

    /// Wrap a buffer that holds the 8-byte header with its I bit set (RFC 7348 section 5).
    /// The reserved bits are not checked: the RFC says to ignore them.
    ///
    /// # Errors
    /// [`Error::VxlanTruncated`], [`Error::VxlanIFlagMissing`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// The three reserved bytes between the flags and the VNI.
    #[inline]
    pub fn reserved(&self) -> [u8; 3] {
        let mut r = [0u8; 3];
        r.copy_from_slice(&self.data()[field::RESERVED]);
        r
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// The meaning of a VXLAN header, its reserved bits kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Virtual network identifier.
    pub vni: Vni,
    /// The flag bits other than I (emit writes I itself, and these without it).
    pub reserved_flags: u8,
    /// The three reserved bytes between the flags and the VNI.
    pub reserved: [u8; 3],
    /// The reserved last byte.
    pub reserved_last: u8,
}

impl Repr {
    /// A header for `vni` with every reserved bit zero, as RFC 7348 says to send it.
    pub const fn new(vni: Vni) -> Repr {
        Repr {
            vni,
            reserved_flags: 0,
            reserved: [0; 3],
            reserved_last: 0,
        }
    }

    /// Read a checked header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Repr {
        Repr {
            vni: packet.vni(),
            reserved_flags: packet.flags() & !FLAG_I,
            reserved: packet.reserved(),
            reserved_last: packet.reserved_last(),
        }
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header at the start of `buf`. Returns its length, the offset of the inner
    /// frame.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`HEADER_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(out) = buf.get_mut(..HEADER_LEN) else {
            return Err(Error::BufferTooSmall);
        };
        out[field::RESERVED].copy_from_slice(&self.reserved);
        let mut p = Packet::new_unchecked(out);
        p.set_flags(self.reserved_flags & !FLAG_I | FLAG_I);
        p.set_vni(self.vni);
        p.into_inner()[field::RESERVED_LAST] = self.reserved_last;
        Ok(HEADER_LEN)
    }
}

/// Where the inner frame of a VXLAN packet lies in `frame`: an Ethernet frame carrying IPv4
/// UDP to `port` ([`UDP_PORT`], or the port a gateway load balancer was configured with),
/// then a VXLAN header, then the inner Ethernet frame. The outer headers are validated as
/// [`super::parse_frame`] does, the VXLAN header as [`Packet::new_checked`] does.
///
/// # Errors
/// The outer headers' errors of [`super::parse_frame`]; [`Error::TunnelNotEncapsulated`] if
/// the frame is not IPv4 UDP to `port` or is a fragment; the errors of
/// [`Packet::new_checked`].
pub fn decapsulate(frame: &[u8], port: u16, caps: &ChecksumCaps) -> Result<Decap, Error> {
    decap(frame, &tunnel::outer(frame, port, caps)?)
}

/// [`decapsulate`] past the outer headers, which [`Outer`] found: the VXLAN header checked;
/// the inner Ethernet frame follows it.
///
/// # Errors
/// The errors of [`Packet::new_checked`].
pub fn decap(frame: &[u8], outer: &Outer) -> Result<Decap, Error> {
    let vxlan = Packet::new_checked(outer.udp_payload(frame))?;
    Ok(outer.decap(HEADER_LEN, EtherType::TransparentBridging, vxlan.vni()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tunnel::vectors::{
        AZURE_FRAME, AZURE_INNER as INNER, AZURE_PORT, HEADER as AT,
    };
    use crate::packet::{EthernetFrame, Ipv4Packet};

    /// A header with every reserved bit set.
    #[rustfmt::skip]
    const RESERVED: [u8; 8] = [
        // VXLAN: I and the seven reserved flags, reserved 0xabcdef, VNI 0xfffffe, reserved 0x5a
        0xff, 0xab, 0xcd, 0xef, 0xff, 0xff, 0xfe, 0x5a,
    ];

    #[test]
    fn azure_gateway_load_balancer_packet() {
        // Where decapsulate finds the parts: tunnel.rs's test of both vectors.
        let p = Packet::new_checked(&AZURE_FRAME[AT..]).unwrap();
        assert_eq!((p.flags(), p.vni().value()), (FLAG_I, 800));
        assert_eq!((p.reserved(), p.reserved_last()), ([0; 3], 0));
        let inner = EthernetFrame::new_checked(p.payload()).unwrap();
        assert!(Ipv4Packet::new_checked(inner.payload().unwrap())
            .unwrap()
            .verify_checksum());

        let r = Repr::parse(&p);
        assert_eq!(r, Repr::new(Vni::new(800).unwrap()));
        assert_eq!(r.buffer_len(), HEADER_LEN);
        let mut out = [0u8; HEADER_LEN];
        assert_eq!(r.emit(&mut out), Ok(HEADER_LEN));
        assert_eq!(out, AZURE_FRAME[AT..INNER]);
        assert_eq!(r.emit(&mut out[..7]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn reserved_bits_are_kept() {
        let p = Packet::new_checked(&RESERVED[..]).unwrap();
        assert!(p.payload().is_empty());
        let r = Repr::parse(&p);
        assert_eq!(
            r,
            Repr {
                vni: Vni::new(0xfffffe).unwrap(),
                reserved_flags: 0xf7,
                reserved: [0xab, 0xcd, 0xef],
                reserved_last: 0x5a,
            }
        );
        let mut out = [0u8; HEADER_LEN];
        r.emit(&mut out).unwrap();
        assert_eq!(out, RESERVED);
    }

    #[test]
    fn malformed_headers_each_give_their_error() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&RESERVED[..7]), Err(Error::VxlanTruncated));
        assert_eq!(check(&[]), Err(Error::VxlanTruncated));
        let mut b = RESERVED;
        b[0] = 0xf7;
        assert_eq!(check(&b), Err(Error::VxlanIFlagMissing));
        let mut f = AZURE_FRAME;
        f[AT] = 0;
        assert_eq!(
            decapsulate(&f, AZURE_PORT, &ChecksumCaps::NONE),
            Err(Error::VxlanIFlagMissing)
        );
    }

    #[test]
    fn decapsulate_takes_the_configured_port_only() {
        let caps = ChecksumCaps::NONE;
        for port in [UDP_PORT, 10801, 6081] {
            assert_eq!(
                decapsulate(&AZURE_FRAME, port, &caps),
                Err(Error::TunnelNotEncapsulated)
            );
        }
        let mut standard = AZURE_FRAME;
        standard[36..38].copy_from_slice(&UDP_PORT.to_be_bytes());
        assert_eq!(
            decapsulate(&standard, UDP_PORT, &caps).unwrap().inner,
            INNER
        );
        // A UDP length that leaves 7 bytes of VXLAN header.
        let mut short = AZURE_FRAME;
        short[39] = 15;
        assert_eq!(
            decapsulate(&short, AZURE_PORT, &caps),
            Err(Error::VxlanTruncated)
        );
    }
}

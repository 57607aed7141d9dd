//! What the two tunnel encapsulations share: the 24-bit [`Vni`], [`Decap`] (where an
//! encapsulated frame's parts lie), and the walk of the outer headers, Ethernet, IPv4 and UDP
//! to the tunnel's port, that [`super::geneve::decapsulate`] and
//! [`super::vxlan::decapsulate`] finish with their own header.

use super::checksum::ChecksumCaps;
use super::ethernet::EtherType;
use super::{ipv4, parse_frame, udp, Error, L3, L4};

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

impl super::field::Value for Vni {
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

/// The outer headers of a tunnel packet: [`Decap`] up to the tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outer {
    pub l3: usize,
    pub udp: usize,
    pub header: usize,
    pub end: usize,
}

impl Outer {
    /// The tunnel header and everything after it, to the end of the UDP datagram.
    pub fn udp_payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.header..self.end]
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
    let L3::Ipv4(meta) = parsed.l3 else {
        return Err(Error::TunnelNotEncapsulated);
    };
    if meta.l4 != L4::Udp || meta.tuple.dst_port != port {
        return Err(Error::TunnelNotEncapsulated);
    }
    let l3 = parsed.l3_offset();
    // parse_frame checked both headers, so the views below cannot fail; a first fragment
    // still holds only part of the inner frame.
    if ipv4::Packet::new_checked(&frame[l3..])?.is_fragment() {
        return Err(Error::TunnelNotEncapsulated);
    }
    let udp = meta.l4_offset();
    let datagram = udp::Packet::new_checked(&frame[udp..meta.l3_end()])?;
    Ok(Outer {
        l3,
        udp,
        header: udp + udp::HEADER_LEN,
        end: udp + usize::from(datagram.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::field::Value;

    #[test]
    fn a_vni_is_24_bits_on_three_bytes() {
        assert_eq!(Vni::new(0x00ff_ffff), Some(Vni::MAX));
        assert_eq!(Vni::new(0x0100_0000), None);
        let mut b = [0xee; 5];
        Vni::new(0x0a0b0c).unwrap().set(&mut b, 1);
        assert_eq!(b, [0xee, 0x0a, 0x0b, 0x0c, 0xee]);
        assert_eq!(u32::from(Vni::get(&b, 1)), 0x0a0b0c);
    }
}

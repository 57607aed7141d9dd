//! IPv6 fixed header (RFC 8200 section 3) and the extension-header walk, enough to classify,
//! count and filter IPv6 (the appliance does not translate it).

use std::net::Ipv6Addr;

use super::field::{get_u16, get_u32, set_u32};
use super::{Error, IpProtocol};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers the walk follows before giving up; RFC 8200 section 4.1 expects
/// at most one of each kind (two destination options), so more is an attack or a mistake.
pub const MAX_EXT_HEADERS: usize = 8;

/// The fixed header, version 6, and the payload it claims (see [`Packet::new_checked`]).
#[inline]
fn check_header(d: &[u8]) -> Result<(), Error> {
    if d.len() < HEADER_LEN {
        return Err(Error::Ipv6Truncated);
    }
    if d[0] >> 4 != 6 {
        return Err(Error::Ipv6BadVersion);
    }
    if d.len() < HEADER_LEN + usize::from(get_u16(d, field::LENGTH)) {
        return Err(Error::Ipv6Truncated);
    }
    Ok(())
}

view! {
    /// A view of an IPv6 packet.
    pub struct Packet {
        field::LENGTH: u16 {
            /// Payload length (extension headers included).
            pub fn payload_len;
            /// Set the payload length.
            pub fn set_payload_len;
        }
        field::NXT_HDR: IpProtocol {
            /// Next header after the fixed header.
            pub fn next_header;
            /// Set the next header.
            pub fn set_next_header;
        }
        field::HOP_LIMIT: u8 {
            /// Hop limit.
            pub fn hop_limit;
            /// Set the hop limit (IPv6 has no header checksum to update).
            pub fn set_hop_limit;
        }
        field::SRC_ADDR: Ipv6Addr {
            /// Source address.
            pub fn src_addr;
            /// Set the source address.
            pub fn set_src_addr;
        }
        field::DST_ADDR: Ipv6Addr {
            /// Destination address.
            pub fn dst_addr;
            /// Set the destination address.
            pub fn set_dst_addr;
        }
    }

    /// Wrap a buffer holding the fixed header, version 6, and the payload length it claims
    /// (padding may follow).
    ///
    /// # Errors
    /// [`Error::Ipv6Truncated`], [`Error::Ipv6BadVersion`].
    new_checked = check_header;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Version (6 after `new_checked`).
    pub fn version(&self) -> u8 {
        self.data()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (get_u16(self.data(), 0) >> 4) as u8
    }

    /// Flow label, 20 bits.
    pub fn flow_label(&self) -> u32 {
        get_u32(self.data(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload bytes after the fixed header, up to the payload length.
    pub fn payload_slice(&self) -> &[u8] {
        &self.data()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Walk the extension headers to the upper-layer protocol (RFC 8200 section 4).
    ///
    /// Follows hop-by-hop, routing, fragment, destination options and AH. Stops at anything
    /// else (ESP's content is opaque; "no next header" ends the packet). Ports are read for
    /// TCP and UDP when the header is there and this is not a later fragment.
    ///
    /// # Errors
    /// [`Error::Ipv6BadExtHeader`] if a header runs past the payload,
    /// [`Error::Ipv6TooManyExtHeaders`] past [`MAX_EXT_HEADERS`].
    pub fn summary(&self) -> Result<Summary, Error> {
        let payload = self.payload_slice();
        let mut next = self.next_header();
        let mut offset = 0usize;
        let mut ext_headers = 0u8;
        let mut fragment = None;
        loop {
            let len = match next {
                IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                    let b = payload.get(offset + 1).ok_or(Error::Ipv6BadExtHeader)?;
                    (usize::from(*b) + 1) * 8
                }
                IpProtocol::IPV6_FRAG => 8,
                IpProtocol::AH => {
                    let b = payload.get(offset + 1).ok_or(Error::Ipv6BadExtHeader)?;
                    (usize::from(*b) + 2) * 4
                }
                _ => break,
            };
            if usize::from(ext_headers) == MAX_EXT_HEADERS {
                return Err(Error::Ipv6TooManyExtHeaders);
            }
            if offset + len > payload.len() {
                return Err(Error::Ipv6BadExtHeader);
            }
            if next == IpProtocol::IPV6_FRAG {
                let w = get_u16(payload, offset + 2);
                fragment = Some(Fragment {
                    offset: w & 0xfff8,
                    more_frags: w & 1 != 0,
                    ident: get_u32(payload, offset + 4),
                });
            }
            next = payload[offset].into();
            offset += len;
            ext_headers += 1;
        }
        let first = !matches!(fragment, Some(f) if f.offset != 0);
        let l4 = &payload[offset..];
        let ports = match next {
            IpProtocol::TCP | IpProtocol::UDP if first && l4.len() >= 4 => {
                Some((get_u16(l4, 0), get_u16(l4, 2)))
            }
            _ => None,
        };
        Ok(Summary {
            protocol: next,
            // Below 40 + 65536.
            l4_offset: (HEADER_LEN + offset) as u32,
            ext_headers,
            fragment,
            ports,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }
}

/// An IPv6 fragment header's fields (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

/// What the extension-header walk found: enough to classify, count and filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Summary {
    /// Upper-layer protocol (or the header the walk stopped at, such as ESP).
    pub protocol: IpProtocol,
    l4_offset: u32,
    /// Extension headers walked.
    pub ext_headers: u8,
    /// The fragment header, if any.
    pub fragment: Option<Fragment>,
    /// Source and destination ports for TCP/UDP in an unfragmented packet or first fragment.
    pub ports: Option<(u16, u16)>,
}

impl Summary {
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub fn l4_offset(&self) -> usize {
        self.l4_offset as usize
    }
}

/// The meaning of the IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label.
    pub flow_label: u32,
}

impl Repr {
    /// Read the fixed header of a checked packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Repr {
        Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        }
    }

    /// Bytes header and payload take.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Write the fixed header at the start of `buf` (the payload is the caller's). Returns
    /// the header length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold [`Repr::buffer_len`] bytes or the
    /// payload length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < self.buffer_len() || self.payload_len > usize::from(u16::MAX) {
            return Err(Error::BufferTooSmall);
        }
        let mut p = Packet::new_unchecked(buf);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2001:db8::1 -> 2001:db8::2, hop-by-hop (8 bytes) -> fragment (first, MF) -> UDP 5353->53.
    #[rustfmt::skip]
    const PACKET: [u8; 64] = [
        // version 6, tc 0, flow 0x12345; payload length 24; next hop-by-hop; hop limit 64
        0x60, 0x01, 0x23, 0x45, 0x00, 0x18, 0x00, 0x40,
        // source 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        // destination 2001:db8::2
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        // hop-by-hop: next fragment, len 0, PadN(4)
        44, 0, 0x01, 0x04, 0, 0, 0, 0,
        // fragment: next UDP, reserved, offset 0 + M, ident 0xdeadbeef
        17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef,
        // UDP: 5353 -> 53, length 8, checksum 0
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn walk_and_round_trip() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        let s = p.summary().unwrap();
        assert_eq!(s.protocol, IpProtocol::UDP);
        assert_eq!(s.l4_offset(), 56);
        assert_eq!(s.ext_headers, 2);
        assert_eq!(
            s.fragment,
            Some(Fragment {
                offset: 0,
                more_frags: true,
                ident: 0xdeadbeef
            })
        );
        assert_eq!(s.ports, Some((5353, 53)));
        let r = Repr::parse(&p);
        assert_eq!(r.flow_label, 0x12345);
        assert_eq!(r.src_addr, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        let mut out = [0u8; 64];
        r.emit(&mut out).unwrap();
        assert_eq!(out[..40], PACKET[..40]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Packet::new_checked(&PACKET[..39]).unwrap_err(),
            Error::Ipv6Truncated
        );
        assert_eq!(
            Packet::new_checked(&PACKET[..63]).unwrap_err(),
            Error::Ipv6Truncated
        );
        let mut b = PACKET;
        b[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::Ipv6BadVersion
        );
        let mut b = PACKET;
        b[41] = 5; // hop-by-hop claims 48 bytes
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().summary(),
            Err(Error::Ipv6BadExtHeader)
        );
        // A later fragment: no ports.
        let mut b = PACKET;
        b[50] = 0x05;
        b[51] = 0x00;
        let s = Packet::new_checked(&b[..]).unwrap().summary().unwrap();
        assert_eq!(s.ports, None);
        assert_eq!(s.fragment.unwrap().offset, 0x0500);
    }

    #[test]
    fn too_many_ext_headers() {
        // Nine destination-options headers of 8 bytes each.
        let mut b = [0u8; 40 + 9 * 8];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&(9u16 * 8).to_be_bytes());
        b[6] = 60;
        for i in 0..9 {
            b[40 + i * 8] = if i == 8 { 59 } else { 60 };
        }
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.summary(), Err(Error::Ipv6TooManyExtHeaders));
    }
}

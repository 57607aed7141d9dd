//! Ethernet II frames with up to two 802.1Q / 802.1ad VLAN tags (IEEE 802.3, 802.1Q).

use core::fmt;
use core::str::FromStr;

use super::field::{get_u16, set_u16, Field};
use super::Error;

enum_with_unknown! {
    /// EtherType values the appliance tells apart (IEEE 802 numbers).
    pub enum EtherType(u16) {
        /// IPv4 (RFC 894).
        Ipv4 = 0x0800,
        /// ARP (RFC 826).
        Arp = 0x0806,
        /// IPv6 (RFC 2464).
        Ipv6 = 0x86dd,
        /// Transparent Ethernet bridging (RFC 1701): a whole Ethernet frame, as the payload
        /// of a tunnel (GENEVE's protocol type for an inner Ethernet frame).
        TransparentBridging = 0x6558,
        /// 802.1Q customer VLAN tag.
        Vlan = 0x8100,
        /// 802.1ad service VLAN tag (outer tag of QinQ).
        QinQ = 0x88a8,
    }
}

impl EtherType {
    /// Whether this value announces a VLAN tag rather than a payload.
    #[inline]
    pub fn is_vlan_tpid(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The address in the first 6 bytes of `data`, or `None` if it is shorter.
    pub fn from_bytes(data: &[u8]) -> Option<Address> {
        let bytes: [u8; 6] = data.get(..6)?.try_into().ok()?;
        Some(Address(bytes))
    }

    /// The address at a field the caller's checks guarantee is in bounds (views only).
    #[inline(always)]
    pub(crate) fn from_field(data: &[u8], field: Field) -> Address {
        let mut a = [0u8; 6];
        a.copy_from_slice(&data[field]);
        Address(a)
    }

    /// The bytes in transmission order.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Individual address (I/G bit clear) and not all-zero: fit as a source or a next hop.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0 && self.0 != [0; 6]
    }

    /// Group address (I/G bit set), broadcast included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Locally administered (U/L bit set), as for virtual NICs.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a MAC address string was refused by [`Address::from_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseAddressError;

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address as six hex octets separated by ':' (aa:bb:cc:dd:ee:ff)")
    }
}

impl std::error::Error for ParseAddressError {}

impl FromStr for Address {
    type Err = ParseAddressError;

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-`; one or two hex digits per octet).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for b in &mut out {
            let p = parts.next().ok_or(ParseAddressError)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseAddressError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseAddressError)?;
        }
        if parts.next().is_some() {
            return Err(ParseAddressError);
        }
        Ok(Address(out))
    }
}

pub(super) mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
    /// A VLAN tag is TCI then the next EtherType, after the TPID that announced it.
    pub const TAG_TCI: usize = 0;
    pub const TAG_NEXT: usize = 2;
}

const TPID_VLAN: u16 = 0x8100;
const TPID_QINQ: u16 = 0x88a8;

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Most VLAN tags a frame may carry here (single tag or QinQ).
pub const MAX_VLAN_TAGS: usize = 2;

/// The tag protocol identifier that announced a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tpid {
    /// 0x8100, an 802.1Q customer tag (the inner one in QinQ).
    Customer,
    /// 0x88a8, an 802.1ad service tag (the outer one in QinQ).
    Service,
}

impl From<Tpid> for EtherType {
    fn from(t: Tpid) -> EtherType {
        match t {
            Tpid::Customer => EtherType::Vlan,
            Tpid::Service => EtherType::QinQ,
        }
    }
}

/// One 802.1Q tag: the TPID that announced it and its tag control information. Six bytes,
/// since the fast path's parse result carries two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Which TPID announced the tag.
    pub tpid: Tpid,
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    /// A customer tag (TPID 0x8100) with priority 0.
    pub const fn new(vid: u16) -> VlanTag {
        VlanTag {
            tpid: Tpid::Customer,
            pcp: 0,
            dei: false,
            vid,
        }
    }

    fn from_tci(tpid: Tpid, tci: u16) -> VlanTag {
        VlanTag {
            tpid,
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// The 16-bit tag control information as on the wire.
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

/// The VLAN tags of a frame, outer first. Two tags are QinQ (802.1ad).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Vlans {
    /// Untagged.
    #[default]
    None,
    /// One tag.
    One(VlanTag),
    /// Outer (service) tag, then inner (customer) tag.
    Two(VlanTag, VlanTag),
}

impl Vlans {
    /// Number of tags.
    pub fn len(&self) -> usize {
        match self {
            Vlans::None => 0,
            Vlans::One(_) => 1,
            Vlans::Two(..) => 2,
        }
    }

    /// Whether the frame is untagged.
    pub fn is_empty(&self) -> bool {
        matches!(self, Vlans::None)
    }

    /// Bytes the tags take on the wire.
    pub fn wire_len(&self) -> usize {
        self.len() * VLAN_TAG_LEN
    }

    /// The innermost tag's VLAN id, which selects the interface a frame belongs to.
    pub fn inner_vid(&self) -> Option<u16> {
        match self {
            Vlans::None => None,
            Vlans::One(t) | Vlans::Two(_, t) => Some(t.vid),
        }
    }
}

view! {
    /// A view of an Ethernet II frame.
    ///
    /// `new_checked` guarantees the 14-byte header; VLAN tags are walked by [`Frame::vlans`] /
    /// [`Frame::payload_offset`], which check their own bounds.
    pub struct Frame {
        field::ETHERTYPE: EtherType {
            /// The EtherType at offset 12: the payload's type, or a TPID if the frame is tagged.
            #[inline]
            pub fn ethertype;
            /// Set the EtherType at offset 12 (the outer TPID on a tagged frame).
            #[inline]
            pub fn set_ethertype;
        }
    }

    /// Wrap a buffer of at least [`HEADER_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::EthernetTruncated`] if shorter.
    new_checked = |data| super::check_len(data, HEADER_LEN, Error::EthernetTruncated);
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        Address::from_field(self.data(), field::DESTINATION)
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> Address {
        Address::from_field(self.data(), field::SOURCE)
    }

    /// Walk the VLAN tags: the payload EtherType, the payload offset and the tags.
    ///
    /// # Errors
    /// [`Error::VlanTruncated`] if a tag does not fit, [`Error::VlanTooManyTags`] past
    /// [`MAX_VLAN_TAGS`].
    #[inline]
    pub fn layers(&self) -> Result<(EtherType, usize, Vlans), Error> {
        let data = self.data();
        let outer = get_u16(data, field::ETHERTYPE);
        if outer != TPID_VLAN && outer != TPID_QINQ {
            // Untagged: the common case, kept free of the tag walk.
            return Ok((EtherType::from(outer), HEADER_LEN, Vlans::None));
        }
        let mut ethertype = outer;
        let mut offset = HEADER_LEN;
        let mut tags = [VlanTag::new(0); MAX_VLAN_TAGS];
        let mut count = 0;
        while ethertype == TPID_VLAN || ethertype == TPID_QINQ {
            if count == MAX_VLAN_TAGS {
                return Err(Error::VlanTooManyTags);
            }
            if data.len() < offset + VLAN_TAG_LEN {
                return Err(Error::VlanTruncated);
            }
            // `offset` points just past the TPID; the tag is TCI then the next EtherType.
            let tci = get_u16(data, offset + field::TAG_TCI);
            let tpid = if ethertype == TPID_QINQ {
                Tpid::Service
            } else {
                Tpid::Customer
            };
            tags[count] = VlanTag::from_tci(tpid, tci);
            count += 1;
            ethertype = get_u16(data, offset + field::TAG_NEXT);
            offset += VLAN_TAG_LEN;
        }
        let vlans = match count {
            0 => Vlans::None,
            1 => Vlans::One(tags[0]),
            _ => Vlans::Two(tags[0], tags[1]),
        };
        Ok((EtherType::from(ethertype), offset, vlans))
    }

    /// Offset of the L3 header past any VLAN tags, and its EtherType. The fast path's first
    /// step.
    ///
    /// # Errors
    /// As [`Frame::layers`].
    #[inline]
    pub fn payload_offset(&self) -> Result<(EtherType, usize), Error> {
        self.layers().map(|(t, o, _)| (t, o))
    }

    /// The VLAN tags, outer first.
    ///
    /// # Errors
    /// As [`Frame::layers`].
    pub fn vlans(&self) -> Result<Vlans, Error> {
        self.layers().map(|(_, _, v)| v)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The bytes after the header and tags (L3 header onward, padding included).
    ///
    /// # Errors
    /// As [`Frame::layers`].
    pub fn payload(&self) -> Result<&'a [u8], Error> {
        let (_, offset) = self.payload_offset()?;
        Ok(&self.buffer.as_ref()[offset..])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Set the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }
}

/// The meaning of an Ethernet header: addresses, tags and payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: Address,
    /// Destination MAC.
    pub dst_addr: Address,
    /// VLAN tags, outer first.
    pub vlans: Vlans,
    /// Payload EtherType (after the tags).
    pub ethertype: EtherType,
}

impl Repr {
    /// Read the header and tags.
    ///
    /// # Errors
    /// As [`Frame::layers`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr, Error> {
        let (ethertype, _, vlans) = frame.layers()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlans,
            ethertype,
        })
    }

    /// Bytes the header and tags take.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.vlans.wire_len()
    }

    /// Write the header and tags at the start of `buf`; returns the payload offset.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        buf[field::DESTINATION].copy_from_slice(&self.dst_addr.0);
        buf[field::SOURCE].copy_from_slice(&self.src_addr.0);
        let mut at = field::ETHERTYPE;
        let mut put_tag = |buf: &mut [u8], tag: &VlanTag| {
            set_u16(buf, at, EtherType::from(tag.tpid).into());
            set_u16(buf, at + 2, tag.tci());
            at += VLAN_TAG_LEN;
        };
        match &self.vlans {
            Vlans::None => {}
            Vlans::One(t) => put_tag(buf, t),
            Vlans::Two(o, i) => {
                put_tag(buf, o);
                put_tag(buf, i);
            }
        }
        set_u16(buf, at, self.ethertype.into());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Untagged IPv4 frame header.
    #[rustfmt::skip]
    const UNTAGGED: [u8; 16] = [
        // dst 02:00:00:00:00:02, src 02:00:00:00:00:01, ethertype IPv4
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
        // first payload bytes
        0x45, 0x00,
    ];

    // QinQ: outer 802.1ad tag VID 100 PCP 5, inner 802.1Q tag VID 200 DEI, then ARP.
    #[rustfmt::skip]
    const QINQ: [u8; 24] = [
        // dst broadcast, src 02:00:00:00:00:01
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
        // TPID 88a8, TCI: pcp 5 dei 0 vid 100 = 0xa064
        0x88, 0xa8, 0xa0, 0x64,
        // TPID 8100, TCI: pcp 0 dei 1 vid 200 = 0x10c8
        0x81, 0x00, 0x10, 0xc8,
        // ethertype ARP
        0x08, 0x06,
        // payload
        0x00, 0x01,
    ];

    #[test]
    fn untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), "02:00:00:00:00:02".parse().unwrap());
        assert_eq!(f.src_addr().to_string(), "02:00:00:00:00:01");
        assert_eq!(f.payload_offset().unwrap(), (EtherType::Ipv4, 14));
        assert_eq!(f.payload().unwrap(), &[0x45, 0x00]);
        let r = Repr::parse(&f).unwrap();
        assert_eq!(r.vlans, Vlans::None);
        let mut out = [0u8; 14];
        assert_eq!(r.emit(&mut out).unwrap(), 14);
        assert_eq!(out, UNTAGGED[..14]);
    }

    #[test]
    fn qinq_round_trip() {
        let f = Frame::new_checked(&QINQ[..]).unwrap();
        let r = Repr::parse(&f).unwrap();
        assert_eq!(r.ethertype, EtherType::Arp);
        assert_eq!(
            r.vlans,
            Vlans::Two(
                VlanTag {
                    tpid: Tpid::Service,
                    pcp: 5,
                    dei: false,
                    vid: 100
                },
                VlanTag {
                    tpid: Tpid::Customer,
                    pcp: 0,
                    dei: true,
                    vid: 200
                }
            )
        );
        assert_eq!(r.vlans.inner_vid(), Some(200));
        assert_eq!(r.buffer_len(), 22);
        let mut out = [0u8; 22];
        r.emit(&mut out).unwrap();
        assert_eq!(out, QINQ[..22]);
        assert_eq!(r.emit(&mut [0u8; 21]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn vlan_errors() {
        assert_eq!(
            Frame::new_checked(&QINQ[..13]).unwrap_err(),
            Error::EthernetTruncated
        );
        let f = Frame::new_checked(&QINQ[..17]).unwrap();
        assert_eq!(f.layers().unwrap_err(), Error::VlanTruncated);
        let mut three = QINQ;
        three[20] = 0x81; // a third tag
        three[21] = 0x00;
        let f = Frame::new_checked(&three[..]).unwrap();
        assert_eq!(f.layers().unwrap_err(), Error::VlanTooManyTags);
    }

    #[test]
    fn address_text() {
        let a: Address = "AA:bb:0c:d:ee:ff".parse().unwrap();
        assert_eq!(a.0, [0xaa, 0xbb, 0x0c, 0x0d, 0xee, 0xff]);
        assert_eq!(a.to_string(), "aa:bb:0c:0d:ee:ff");
        assert_eq!("aa-bb-cc-dd-ee-ff".parse::<Address>().unwrap().0[5], 0xff);
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:fg",
            "aaa:b:c:d:e:f",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
        assert!(Address::BROADCAST.is_broadcast() && Address::BROADCAST.is_multicast());
        assert!(!a.is_multicast() && a.is_unicast() && a.is_local());
        assert!(!Address([0; 6]).is_unicast());
        assert_eq!(
            Address::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(Address([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(Address::from_bytes(&[1, 2, 3, 4, 5]), None);
    }
}

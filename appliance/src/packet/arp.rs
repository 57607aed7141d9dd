//! ARP for IPv4 over Ethernet (RFC 826), the only kind the appliance speaks.

use std::net::Ipv4Addr;

use super::ethernet::{Address, EtherType};
use super::field::{set_u16, Field};
use super::Error;

enum_with_unknown! {
    /// ARP opcode (RFC 826; IANA "ARP Parameters").
    pub enum Operation(u16) {
        /// Who has the target protocol address?
        Request = 1,
        /// The sender has it.
        Reply = 2,
    }
}

/// ARP hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    use super::Field;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Field = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Field = 18..24;
    pub const TPA: usize = 24;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

view! {
    /// A view of an ARP packet laid out for Ethernet/IPv4 (6-byte hardware, 4-byte protocol
    /// addresses). The type and length fields are readable; [`Packet::is_ethernet_ipv4`] says
    /// whether the address accessors mean anything.
    pub struct Packet {
        field::HTYPE: u16 {
            /// Hardware type (1 for Ethernet).
            pub fn hardware_type;
        }
        field::PTYPE: EtherType {
            /// Protocol type (an EtherType; IPv4 here).
            pub fn protocol_type;
        }
        field::HLEN: u8 {
            /// Hardware address length.
            pub fn hardware_len;
        }
        field::PLEN: u8 {
            /// Protocol address length.
            pub fn protocol_len;
        }
        field::OPER: Operation {
            /// Opcode.
            pub fn operation;
            /// Set the opcode.
            pub fn set_operation;
        }
        field::SPA: Ipv4Addr {
            /// Sender protocol address.
            pub fn source_protocol_addr;
            /// Set the sender protocol address.
            pub fn set_source_protocol_addr;
        }
        field::TPA: Ipv4Addr {
            /// Target protocol address.
            pub fn target_protocol_addr;
            /// Set the target protocol address.
            pub fn set_target_protocol_addr;
        }
    }

    /// Wrap a buffer of at least [`PACKET_LEN`] bytes (Ethernet padding may follow).
    ///
    /// # Errors
    /// [`Error::ArpTruncated`] if shorter.
    new_checked = |data| super::check_len(data, PACKET_LEN, Error::ArpTruncated);
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Whether this is IPv4-over-Ethernet ARP, the layout the address accessors assume.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == EtherType::Ipv4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> Address {
        Address::from_field(self.data(), field::SHA)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> Address {
        Address::from_field(self.data(), field::THA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write the fixed Ethernet/IPv4 type and length fields.
    pub fn set_ethernet_ipv4(&mut self) {
        let d = self.buffer.as_mut();
        set_u16(d, field::HTYPE, HTYPE_ETHERNET);
        set_u16(d, field::PTYPE, EtherType::Ipv4.into());
        d[field::HLEN] = 6;
        d[field::PLEN] = 4;
    }

    /// Set the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    /// Set the target hardware address.
    pub fn set_target_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }
}

/// The meaning of an IPv4-over-Ethernet ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: Address,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: Address,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Read an ARP packet.
    ///
    /// # Errors
    /// [`Error::ArpUnsupported`] unless it is IPv4 over Ethernet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        if !packet.is_ethernet_ipv4() {
            return Err(Error::ArpUnsupported);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Bytes the packet takes ([`PACKET_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Write the packet at the start of `buf`; returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`PACKET_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut p = Packet::new_checked(buf).map_err(|_| Error::BufferTooSmall)?;
        p.set_ethernet_ipv4();
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
        Ok(PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const REQUEST: [u8; 28] = [
        // htype Ethernet, ptype IPv4, hlen 6, plen 4, oper request
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        // sender 02:00:00:00:00:01 / 192.168.1.1
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01,
        // target 00:00:00:00:00:00 / 192.168.1.2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x02,
    ];

    #[test]
    fn request_round_trip() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(r.source_hardware_addr.to_string(), "02:00:00:00:00:01");
        let mut out = [0u8; 28];
        assert_eq!(r.emit(&mut out).unwrap(), 28);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::ArpTruncated
        );
        let mut v = REQUEST;
        v[4] = 8; // hlen
        assert_eq!(
            Repr::parse(&Packet::new_checked(&v[..]).unwrap()),
            Err(Error::ArpUnsupported)
        );
        let mut u = REQUEST;
        u[7] = 9;
        let p = Packet::new_checked(&u[..]).unwrap();
        assert_eq!(p.operation(), Operation::Unknown(9));
        assert_eq!(u16::from(p.operation()), 9);
    }
}

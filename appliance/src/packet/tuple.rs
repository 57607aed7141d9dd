//! The 5-tuple of an IPv4 packet: addresses, protocol and the transport's ports, read across
//! protocols (TCP, UDP, ICMP echo), so it sits above the single-protocol files.

use std::net::Ipv4Addr;

use super::field::get_u16;
use super::ipv4::{self, Endpoint};
use super::{icmp, tcp, udp, Error, IpProtocol};

/// Addresses, protocol and ports of a packet: the key a flow table looks up.
///
/// For ICMP echo request/reply both ports hold the echo identifier, which NAT maps like a
/// port (RFC 5508 section 3.1). For protocols without ports, and for ICMP other than echo,
/// both ports are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Transport protocol.
    pub protocol: IpProtocol,
    /// Source port, or ICMP echo identifier.
    pub src_port: u16,
    /// Destination port, or ICMP echo identifier.
    pub dst_port: u16,
}

impl FiveTuple {
    /// The tuple of addresses, protocol and (source, destination) ports.
    #[inline(always)]
    pub const fn new(
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
        protocol: IpProtocol,
        (src_port, dst_port): (u16, u16),
    ) -> FiveTuple {
        FiveTuple {
            src_addr,
            dst_addr,
            protocol,
            src_port,
            dst_port,
        }
    }

    /// The tuple of a reply: source and destination swapped.
    pub const fn reversed(&self) -> FiveTuple {
        FiveTuple {
            src_addr: self.dst_addr,
            dst_addr: self.src_addr,
            protocol: self.protocol,
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }

    /// Address and port of one side.
    pub const fn endpoint(&self, side: Endpoint) -> (Ipv4Addr, u16) {
        match side {
            Endpoint::Src => (self.src_addr, self.src_port),
            Endpoint::Dst => (self.dst_addr, self.dst_port),
        }
    }
}

impl<T: AsRef<[u8]>> ipv4::Packet<T> {
    /// Addresses, protocol and ports (see [`FiveTuple`]).
    ///
    /// # Errors
    /// [`Error::Ipv4Fragment`] for a non-first fragment; the transport's truncation or length
    /// errors if its header does not fit (TCP: the 20-byte header; UDP: 8 bytes and a sane
    /// length field; ICMP: 8 bytes).
    #[inline]
    pub fn five_tuple(&self) -> Result<FiveTuple, Error> {
        if !self.is_first_fragment() {
            return Err(Error::Ipv4Fragment);
        }
        let protocol = self.protocol();
        let ports = l4_ports(protocol, self.payload_slice())?;
        Ok(FiveTuple::new(
            self.src_addr(),
            self.dst_addr(),
            protocol,
            ports,
        ))
    }
}

/// Validate the part of a transport header NAT reads and writes, and return its ports.
#[inline]
pub(crate) fn l4_ports(protocol: IpProtocol, l4: &[u8]) -> Result<(u16, u16), Error> {
    match protocol {
        IpProtocol::TCP => {
            tcp::check_header(l4)?;
            Ok((get_u16(l4, 0), get_u16(l4, 2)))
        }
        IpProtocol::UDP => {
            udp::check_header(l4)?;
            Ok((get_u16(l4, 0), get_u16(l4, 2)))
        }
        IpProtocol::ICMP => {
            if l4.len() < icmp::HEADER_LEN {
                return Err(Error::IcmpTruncated);
            }
            if icmp::is_echo(l4[0]) {
                let id = get_u16(l4, icmp::ECHO_IDENT);
                Ok((id, id))
            } else {
                Ok((0, 0))
            }
        }
        _ => Ok((0, 0)),
    }
}

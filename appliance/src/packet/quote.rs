//! The packet an ICMP error quotes (RFC 792; RFC 5508 section 4 for NAT): its view, its
//! 5-tuple (the session the error is about) and the rewrite of its addresses and ports. It
//! reads its header through [`ipv4`] and sits above [`icmp`], whose errors carry it, and
//! [`super::tuple`].

use std::net::Ipv4Addr;

use super::checksum::{self, ChecksumDelta};
use super::field::{get_u16, get_u32, set_u16, set_u32};
use super::icmp::{self, QUOTE_L4_LEN};
use super::ipv4::{self, Endpoint};
use super::tuple::FiveTuple;
use super::{tcp, udp, Error, IpProtocol};

view! {
    /// A view of the packet an ICMP error quotes: an IPv4 header and at least the first 8
    /// bytes of its transport header, for NAT to find the session and translate it
    /// (RFC 5508).
    ///
    /// The quoted header's total length describes the original packet, not the quote, so
    /// this is not an [`Ipv4Packet`](super::Ipv4Packet): its header fields are read through
    /// one, its payload is not.
    pub struct Quote {
        ipv4::field::LENGTH: u16 {
            /// The original packet's total length.
            #[inline]
            pub fn total_len;
        }
    }

    /// Wrap quoted bytes: version 4, IHL at least 5, the header and 8 transport bytes
    /// present.
    ///
    /// # Errors
    /// [`Error::IcmpBadQuote`].
    new_checked = icmp::check_quote;
}

impl<T: AsRef<[u8]>> Quote<T> {
    /// The quoted header as an IPv4 view, for its header fields alone (the check guarantees
    /// the header, not the total length).
    #[inline(always)]
    fn ip(&self) -> ipv4::Packet<&[u8]> {
        ipv4::Packet::new_unchecked(self.data())
    }

    /// The quoted IPv4 header's length.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.ip().header_len()
    }

    /// Whether the quoted packet carried its transport header (offset 0).
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.ip().is_first_fragment()
    }

    /// Quoted protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.ip().protocol()
    }

    /// Quoted header checksum.
    #[inline]
    pub fn ip_checksum(&self) -> u16 {
        self.ip().checksum()
    }

    /// Quoted source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.ip().src_addr()
    }

    /// Quoted destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.ip().dst_addr()
    }

    /// The first 8 transport bytes.
    #[inline]
    pub fn l4_header(&self) -> &[u8] {
        let hl = self.header_len();
        &self.data()[hl..hl + QUOTE_L4_LEN]
    }

    /// Everything quoted after the IP header (8 bytes or more).
    #[inline]
    pub fn l4_bytes(&self) -> &[u8] {
        &self.data()[self.header_len()..]
    }

    /// The quoted packet's tuple, ports as in [`FiveTuple`] (echo identifier for a quoted
    /// echo, 0 for protocols without ports). A NAT looks up the session with it; it is the
    /// tuple of a packet the NAT *sent*, so the reverse of the error's own direction.
    ///
    /// # Errors
    /// [`Error::Ipv4Fragment`] if the quoted packet was a non-first fragment (no ports).
    pub fn five_tuple(&self) -> Result<FiveTuple, Error> {
        if !self.is_first_fragment() {
            return Err(Error::Ipv4Fragment);
        }
        let protocol = self.protocol();
        let l4 = self.l4_header();
        let ports = match protocol {
            IpProtocol::TCP | IpProtocol::UDP => (get_u16(l4, 0), get_u16(l4, 2)),
            IpProtocol::ICMP if icmp::is_echo(l4[0]) => {
                let id = get_u16(l4, icmp::ECHO_IDENT);
                (id, id)
            }
            _ => (0, 0),
        };
        Ok(FiveTuple::new(
            self.src_addr(),
            self.dst_addr(),
            protocol,
            ports,
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Quote<T> {
    /// Rewrite the quoted `side` address and port and keep the quoted checksums consistent:
    /// the IP header checksum always; UDP's (unless 0) and a quoted echo's, which lie in the
    /// 8 bytes; TCP's only if the quote reaches it. Returns the change of every 16-bit word
    /// touched, for the enclosing ICMP checksum.
    ///
    /// # Errors
    /// [`Error::IcmpUnsupported`] if the quote is an ICMP message other than echo (an error
    /// about an error should not exist). On error nothing is changed.
    pub fn rewrite(
        &mut self,
        side: Endpoint,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<ChecksumDelta, Error> {
        let hl = self.header_len();
        let first = self.is_first_fragment();
        let protocol = self.protocol();
        let original_len = self.total_len();
        if first && protocol == IpProtocol::ICMP && !icmp::is_echo(self.l4_header()[0]) {
            return Err(Error::IcmpUnsupported);
        }
        let d = self.buffer.as_mut();
        let mut outer = ChecksumDelta::ZERO;
        // Address and the quoted header checksum.
        let at = ipv4::addr_offset(side);
        let old_addr = get_u32(d, at);
        let new_addr = u32::from(addr);
        let addr_delta = ChecksumDelta::ZERO.add32(old_addr, new_addr);
        set_u32(d, at, new_addr);
        outer = outer.combine(addr_delta);
        let old_c = get_u16(d, ipv4::field::CHECKSUM);
        let new_c = addr_delta.apply(old_c);
        set_u16(d, ipv4::field::CHECKSUM, new_c);
        outer = outer.add16(old_c, new_c);
        if !first {
            return Ok(outer);
        }
        let l4 = &mut d[hl..];
        let port_at = match side {
            Endpoint::Src => 0,
            Endpoint::Dst => 2,
        };
        let put = |l4: &mut [u8], at: usize, v: u16, outer: &mut ChecksumDelta| {
            let old = get_u16(l4, at);
            set_u16(l4, at, v);
            *outer = outer.add16(old, v);
            old
        };
        match protocol {
            IpProtocol::TCP | IpProtocol::UDP => {
                let old_port = put(l4, port_at, port, &mut outer);
                let l4_delta = addr_delta.add16(old_port, port);
                let (c_at, udp) = if protocol == IpProtocol::UDP {
                    (udp::CHECKSUM, true)
                } else {
                    (tcp::CHECKSUM, false)
                };
                if l4.len() >= c_at + 2 {
                    let c = get_u16(l4, c_at);
                    let n = if udp {
                        l4_delta.apply_udp(c)
                    } else {
                        l4_delta.apply(c)
                    };
                    put(l4, c_at, n, &mut outer);
                }
            }
            IpProtocol::ICMP => {
                let old_id = put(l4, icmp::ECHO_IDENT, port, &mut outer);
                let c = get_u16(l4, icmp::CHECKSUM);
                let mut n = checksum::update16(c, old_id, port);
                if hl + l4.len() >= usize::from(original_len) {
                    n = icmp::fix_negative_zero(l4, n);
                }
                put(l4, icmp::CHECKSUM, n, &mut outer);
            }
            _ => {}
        }
        Ok(outer)
    }
}

impl<T: AsRef<[u8]>> icmp::Packet<T> {
    /// The packet quoted by an error message, checked.
    ///
    /// # Errors
    /// [`Error::IcmpUnsupported`] if this is not an error, [`Error::IcmpBadQuote`] if the
    /// quote is malformed.
    pub fn quote(&self) -> Result<Quote<&[u8]>, Error> {
        if !self.msg_type().is_error() {
            return Err(Error::IcmpUnsupported);
        }
        Quote::new_checked(self.data_slice())
    }
}

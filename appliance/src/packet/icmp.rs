//! ICMP for IPv4 (RFC 792, RFC 1812 section 4.3): the message view, its `Repr`, and the
//! check that an error carries a quote. The quoted packet itself (its view, its 5-tuple, its
//! rewrite) is [`super::quote`]'s.

use std::net::Ipv4Addr;

use super::checksum;
use super::field::set_u32;
use super::{ipv4, Error};

enum_with_unknown! {
    /// ICMP message type (IANA "ICMP Type Numbers").
    pub enum Message(u8) {
        /// Echo reply (RFC 792).
        EchoReply = 0,
        /// Destination unreachable (RFC 792, RFC 1812 section 5.2.7.1).
        DstUnreachable = 3,
        /// Source quench (deprecated by RFC 6633; still an error message).
        SourceQuench = 4,
        /// Redirect (RFC 792).
        Redirect = 5,
        /// Echo request (RFC 792).
        EchoRequest = 8,
        /// Router advertisement (RFC 1256).
        RouterAdvert = 9,
        /// Router solicitation (RFC 1256).
        RouterSolicit = 10,
        /// Time exceeded (RFC 792).
        TimeExceeded = 11,
        /// Parameter problem (RFC 792).
        ParamProblem = 12,
        /// Timestamp request (RFC 792).
        Timestamp = 13,
        /// Timestamp reply (RFC 792).
        TimestampReply = 14,
    }
}

impl Message {
    /// An error message, which quotes the packet that caused it (RFC 1812 section 4.3.2.3)
    /// and must never be answered with another error (RFC 1812 section 4.3.2.7).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::SourceQuench
                | Message::Redirect
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

enum_with_unknown! {
    /// Destination unreachable codes (RFC 792, RFC 1812 section 5.2.7.1).
    pub enum DstUnreachable(u8) {
        /// Network unreachable.
        NetUnreachable = 0,
        /// Host unreachable.
        HostUnreachable = 1,
        /// Protocol unreachable.
        ProtoUnreachable = 2,
        /// Port unreachable.
        PortUnreachable = 3,
        /// Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
        FragRequired = 4,
        /// Source route failed.
        SrcRouteFailed = 5,
        /// Destination network unknown.
        DstNetUnknown = 6,
        /// Destination host unknown.
        DstHostUnknown = 7,
        /// Source host isolated.
        SrcHostIsolated = 8,
        /// Network administratively prohibited.
        NetProhibited = 9,
        /// Host administratively prohibited.
        HostProhibited = 10,
        /// Network unreachable for ToS.
        NetUnreachToS = 11,
        /// Host unreachable for ToS.
        HostUnreachToS = 12,
        /// Communication administratively prohibited (RFC 1812), what a firewall sends.
        CommProhibited = 13,
        /// Host precedence violation.
        HostPrecedViol = 14,
        /// Precedence cutoff in effect.
        PrecedCutoff = 15,
    }
}

enum_with_unknown! {
    /// Time exceeded codes (RFC 792).
    pub enum TimeExceeded(u8) {
        /// TTL exceeded in transit.
        TtlExpired = 0,
        /// Fragment reassembly time exceeded.
        FragExpired = 1,
    }
}

/// Length of the ICMP header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;
const MSG_TYPE: usize = 0;
const CODE: usize = 1;
/// Offset of the checksum.
pub(crate) const CHECKSUM: usize = 2;
/// Offset of the echo identifier.
pub(crate) const ECHO_IDENT: usize = 4;
const ECHO_SEQ: usize = 6;
const NEXT_HOP_MTU: usize = 6;
const POINTER: usize = 4;
const GATEWAY: usize = 4;

/// The one case where an incremental update and a full computation differ: a message that is
/// all zeros (an echo reply with identifier, sequence and data 0) sums to +0, whose checksum
/// is `0xffff`, while the update yields `0x0000`. Updated checksums are 0 once in 65536
/// packets, so the scan is off the common path.
#[inline]
pub(crate) fn fix_negative_zero(message: &[u8], updated: u16) -> u16 {
    if updated == 0
        && message
            .iter()
            .enumerate()
            .all(|(i, &b)| b == 0 || i == 2 || i == 3)
    {
        0xffff
    } else {
        updated
    }
}

/// Echo request or reply: the ICMP types NAT maps by identifier.
#[inline]
pub(crate) fn is_echo(msg_type: u8) -> bool {
    msg_type == 0 || msg_type == 8
}

view! {
    /// A view of an ICMP message. The buffer is the whole message (the IPv4 payload).
    pub struct Packet {
        MSG_TYPE: Message {
            /// Message type.
            #[inline]
            pub fn msg_type;
            /// Set the type.
            pub fn set_msg_type;
        }
        CODE: u8 {
            /// Code.
            #[inline]
            pub fn code;
            /// Set the code.
            pub fn set_code;
        }
        CHECKSUM: u16 {
            /// Checksum field.
            #[inline]
            pub fn checksum;
            /// Set the checksum field.
            pub fn set_checksum;
        }
        ECHO_IDENT: u16 {
            /// Echo identifier (echo request/reply).
            #[inline]
            pub fn echo_ident;
            /// Set the echo identifier (no checksum update).
            pub fn set_echo_ident;
        }
        ECHO_SEQ: u16 {
            /// Echo sequence number (echo request/reply).
            #[inline]
            pub fn echo_seq_no;
            /// Set the echo sequence number.
            pub fn set_echo_seq_no;
        }
        NEXT_HOP_MTU: u16 {
            /// Next-hop MTU (destination unreachable, fragmentation needed; RFC 1191 section 4).
            #[inline]
            pub fn next_hop_mtu;
        }
        POINTER: u8 {
            /// Pointer to the offending octet (parameter problem).
            #[inline]
            pub fn pointer;
        }
        GATEWAY: Ipv4Addr {
            /// Gateway address (redirect).
            #[inline]
            pub fn gateway;
        }
    }

    /// Wrap a message of at least the 8-byte header.
    ///
    /// # Errors
    /// [`Error::IcmpTruncated`].
    new_checked = |data| super::check_len(data, HEADER_LEN, Error::IcmpTruncated);
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Bytes after the 8-byte header: echo data, or the quoted packet of an error.
    #[inline]
    pub fn data_slice(&self) -> &[u8] {
        &self.data()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.data()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Bytes after the 8-byte header, with the buffer's lifetime.
    #[inline]
    pub fn data_bytes(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the 4 type-specific bytes as one word (unused: 0; frag needed: MTU in the low
    /// half; parameter problem: pointer in the top byte; redirect: gateway).
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), 4, v);
    }

    /// Mutable bytes after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Compute the checksum over the whole message (ICMP has no pseudo-header and no
    /// offload).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

/// Transport bytes an ICMP error must quote at least (RFC 792).
pub const QUOTE_L4_LEN: usize = 8;

/// Whether `d` can be the packet an error quotes: version 4, IHL at least 5, the header and
/// 8 transport bytes present (RFC 792). The check of [`Repr::parse`] and of
/// [`Quote::new_checked`](super::quote::Quote::new_checked).
///
/// # Errors
/// [`Error::IcmpBadQuote`].
#[inline]
pub(super) fn check_quote(d: &[u8]) -> Result<(), Error> {
    if d.len() < ipv4::HEADER_LEN + QUOTE_L4_LEN {
        return Err(Error::IcmpBadQuote);
    }
    let ip = ipv4::Packet::new_unchecked(d);
    let hl = ip.header_len();
    if ip.version() != 4 || hl < ipv4::HEADER_LEN || d.len() < hl + QUOTE_L4_LEN {
        return Err(Error::IcmpBadQuote);
    }
    Ok(())
}

/// What an echo request carries and its reply returns (RFC 792): the identifier, the
/// sequence number and the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo<'a> {
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq_no: u16,
    /// Data, returned unchanged in the reply (RFC 1122 section 3.2.2.6).
    pub data: &'a [u8],
}

impl<'a> Echo<'a> {
    /// The echo of a checked message, request or reply (its type is not looked at).
    pub fn of<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Echo<'a> {
        Echo {
            ident: packet.echo_ident(),
            seq_no: packet.echo_seq_no(),
            data: packet.data_bytes(),
        }
    }

    /// The header's 4 type-specific bytes: the identifier, then the sequence number.
    fn rest_of_header(&self) -> u32 {
        (u32::from(self.ident) << 16) | u32::from(self.seq_no)
    }
}

/// The meaning of an ICMP message. Errors keep the quoted bytes as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest(Echo<'a>),
    /// Echo reply: the request's echo, returned.
    EchoReply(Echo<'a>),
    /// Destination unreachable.
    DstUnreachable {
        /// Why.
        reason: DstUnreachable,
        /// Next-hop MTU for [`DstUnreachable::FragRequired`], else 0.
        next_hop_mtu: u16,
        /// The quoted packet (IP header and at least 8 bytes).
        quote: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// Why.
        reason: TimeExceeded,
        /// The quoted packet.
        quote: &'a [u8],
    },
    /// Parameter problem.
    ParamProblem {
        /// Code (0: pointer indicates the error).
        code: u8,
        /// Offset of the offending octet in the quoted header.
        pointer: u8,
        /// The quoted packet.
        quote: &'a [u8],
    },
    /// Redirect.
    Redirect {
        /// Code (0 network, 1 host, 2 ToS and network, 3 ToS and host).
        code: u8,
        /// The better first hop.
        gateway: Ipv4Addr,
        /// The quoted packet.
        quote: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Read a checked message and verify its checksum; errors must carry a well-formed quote.
    ///
    /// # Errors
    /// [`Error::IcmpBadChecksum`], [`Error::IcmpBadQuote`], [`Error::IcmpUnsupported`] for
    /// other types.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Error> {
        if !packet.verify_checksum() {
            return Err(Error::IcmpBadChecksum);
        }
        let data = packet.data_bytes();
        let msg = packet.msg_type();
        if msg.is_error() {
            check_quote(data)?;
        }
        Ok(match msg {
            Message::EchoRequest => Repr::EchoRequest(Echo::of(packet)),
            Message::EchoReply => Repr::EchoReply(Echo::of(packet)),
            Message::DstUnreachable => {
                let reason = DstUnreachable::from(packet.code());
                let next_hop_mtu = if reason == DstUnreachable::FragRequired {
                    packet.next_hop_mtu()
                } else {
                    0
                };
                Repr::DstUnreachable {
                    reason,
                    next_hop_mtu,
                    quote: data,
                }
            }
            Message::TimeExceeded => Repr::TimeExceeded {
                reason: packet.code().into(),
                quote: data,
            },
            Message::ParamProblem => Repr::ParamProblem {
                code: packet.code(),
                pointer: packet.pointer(),
                quote: data,
            },
            Message::Redirect => Repr::Redirect {
                code: packet.code(),
                gateway: packet.gateway(),
                quote: data,
            },
            _ => return Err(Error::IcmpUnsupported),
        })
    }

    fn body(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest(echo) | Repr::EchoReply(echo) => echo.data,
            Repr::DstUnreachable { quote, .. }
            | Repr::TimeExceeded { quote, .. }
            | Repr::ParamProblem { quote, .. }
            | Repr::Redirect { quote, .. } => quote,
        }
    }

    /// Bytes the message takes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body().len()
    }

    /// Write the message at the start of `buf` with its checksum. Returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`Repr::buffer_len`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let mut p = Packet::new_unchecked(&mut buf[..len]);
        let (msg, code, rest) = match *self {
            Repr::EchoRequest(echo) => (Message::EchoRequest, 0, echo.rest_of_header()),
            Repr::EchoReply(echo) => (Message::EchoReply, 0, echo.rest_of_header()),
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                ..
            } => (
                Message::DstUnreachable,
                reason.into(),
                u32::from(next_hop_mtu),
            ),
            Repr::TimeExceeded { reason, .. } => (Message::TimeExceeded, reason.into(), 0),
            Repr::ParamProblem { code, pointer, .. } => {
                (Message::ParamProblem, code, u32::from(pointer) << 24)
            }
            Repr::Redirect { code, gateway, .. } => (Message::Redirect, code, u32::from(gateway)),
        };
        p.set_msg_type(msg);
        p.set_code(code);
        p.set_rest_of_header(rest);
        p.data_mut().copy_from_slice(self.body());
        p.fill_checksum();
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::ChecksumDelta;
    use crate::packet::quote::Quote;
    use crate::packet::{Endpoint, IpProtocol};

    #[rustfmt::skip]
    const ECHO: [u8; 12] = [
        // type 8 (echo request), code 0, checksum (filled by `echo()`), id 0x1234, seq 1
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01,
        // data "ping"
        b'p', b'i', b'n', b'g',
    ];

    fn echo() -> [u8; 12] {
        let mut b = ECHO;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    // Fragmentation needed, MTU 1400, quoting a UDP packet 10.0.0.1:1024 -> 192.0.2.1:53.
    #[rustfmt::skip]
    const FRAG_NEEDED: [u8; 36] = [
        // ICMP: type 3 code 4, checksum (filled), unused 0, next-hop MTU 1400
        0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x05, 0x78,
        // quoted IPv4 header: ver/ihl, tos, total 1500, id 1, DF, ttl 63, UDP, checksum
        0x45, 0x00, 0x05, 0xdc, 0x00, 0x01, 0x40, 0x00, 0x3f, 0x11, 0x00, 0x00,
        // quoted src 10.0.0.1, dst 192.0.2.1
        0x0a, 0x00, 0x00, 0x01, 0xc0, 0x00, 0x02, 0x01,
        // quoted UDP: sport 1024, dport 53, length 1480, checksum 0xbeef
        0x04, 0x00, 0x00, 0x35, 0x05, 0xc8, 0xbe, 0xef,
    ];

    #[test]
    fn echo_known_answer_and_round_trip() {
        let b = echo();
        // 0x0800 + 0x1234 + 0x0001 + 0x7069 + 0x6e67 = 0xf905 -> checksum 0x06fa
        assert_eq!(&b[2..4], &[0x06, 0xfa]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::EchoRequest(Echo {
                ident: 0x1234,
                seq_no: 1,
                data: b"ping"
            })
        );
        let mut out = [0u8; 12];
        assert_eq!(r.emit(&mut out).unwrap(), 12);
        assert_eq!(out, b);
        assert_eq!(r.emit(&mut out[..11]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn frag_needed_quote() {
        let mut b = FRAG_NEEDED;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr::DstUnreachable {
                reason: DstUnreachable::FragRequired,
                next_hop_mtu: 1400,
                quote: &b[8..]
            }
        );
        let q = p.quote().unwrap();
        let t = q.five_tuple().unwrap();
        assert_eq!(t.src_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            (t.protocol, t.src_port, t.dst_port),
            (IpProtocol::UDP, 1024, 53)
        );
        let mut out = [0u8; 36];
        r.emit(&mut out).unwrap();
        assert_eq!(out, b);
        // A quote without 8 transport bytes is refused.
        let short = Packet::new_checked(&b[..35]).unwrap();
        assert_eq!(Repr::parse(&short).unwrap_err(), Error::IcmpBadChecksum);
        let mut s = [0u8; 35];
        s.copy_from_slice(&b[..35]);
        Packet::new_unchecked(&mut s[..]).fill_checksum();
        assert_eq!(
            Repr::parse(&Packet::new_checked(&s[..]).unwrap()),
            Err(Error::IcmpBadQuote)
        );
    }

    #[test]
    fn quote_checks_and_truncated_quote() {
        let q = &FRAG_NEEDED[8..];
        // The header and 8 transport bytes, of a packet 1500 bytes long: the header fields
        // read, the total length is the original's.
        let quote = Quote::new_checked(q).unwrap();
        assert_eq!(quote.header_len(), 20);
        assert_eq!(quote.total_len(), 1500);
        assert!(quote.is_first_fragment());
        assert_eq!(quote.protocol(), IpProtocol::UDP);
        assert_eq!(quote.ip_checksum(), 0);
        assert_eq!(quote.dst_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(quote.l4_bytes(), &q[20..]);
        assert_eq!(quote.into_inner(), q);
        let refused = |f: &dyn Fn(&mut [u8; 28]), len: usize| {
            let mut b = [0u8; 28];
            b.copy_from_slice(q);
            f(&mut b);
            assert_eq!(Quote::new_checked(&b[..len]), Err(Error::IcmpBadQuote));
        };
        refused(&|_| {}, 27);
        refused(&|b| b[0] = 0x65, 28);
        refused(&|b| b[0] = 0x44, 28);
        refused(&|b| b[0] = 0x46, 28);
    }

    #[test]
    fn other_errors_round_trip() {
        let q = &FRAG_NEEDED[8..];
        let reprs = [
            Repr::TimeExceeded {
                reason: TimeExceeded::TtlExpired,
                quote: q,
            },
            Repr::ParamProblem {
                code: 0,
                pointer: 9,
                quote: q,
            },
            Repr::Redirect {
                code: 1,
                gateway: Ipv4Addr::new(10, 0, 0, 254),
                quote: q,
            },
            Repr::DstUnreachable {
                reason: DstUnreachable::CommProhibited,
                next_hop_mtu: 0,
                quote: q,
            },
            Repr::EchoReply(Echo {
                ident: 7,
                seq_no: 9,
                data: &[],
            }),
        ];
        for r in reprs {
            let mut out = [0u8; 64];
            let n = r.emit(&mut out).unwrap();
            let p = Packet::new_checked(&out[..n]).unwrap();
            assert_eq!(Repr::parse(&p).unwrap(), r);
        }
    }

    #[test]
    fn quote_rewrite_keeps_every_checksum() {
        let mut b = FRAG_NEEDED;
        // Make the quoted IP checksum right first, then the ICMP one.
        ipv4::Packet::new_unchecked(&mut b[8..28]).fill_checksum();
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        let old_udp_c = u16::from_be_bytes([b[34], b[35]]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let delta = {
            let mut q = Quote::new_checked(p.data_mut()).unwrap();
            q.rewrite(Endpoint::Src, Ipv4Addr::new(203, 0, 113, 5), 61000)
                .unwrap()
        };
        let c = p.checksum();
        p.set_checksum(delta.apply(c));
        assert!(p.verify_checksum());
        let q = p.quote().unwrap();
        assert_eq!(q.src_addr(), Ipv4Addr::new(203, 0, 113, 5));
        assert_eq!(q.l4_header()[..2], 61000u16.to_be_bytes());
        assert_eq!(checksum::data(&b[8..28]), 0xffff);
        // The UDP checksum moved by exactly the address and port change.
        let expect = ChecksumDelta::ZERO
            .add_addr(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(203, 0, 113, 5))
            .add16(1024, 61000)
            .apply_udp(old_udp_c);
        assert_eq!(u16::from_be_bytes([b[34], b[35]]), expect);
    }
}

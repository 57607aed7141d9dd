//! Packet layer: header views over byte buffers, validation, checksums and builders.
//!
//! Each protocol module has a `Packet<T: AsRef<[u8]>>` view (fields read at named offsets,
//! setters where the buffer is `AsMut`) and a plain `Repr` with `parse`, `emit` and
//! `buffer_len`. `new_checked` validates lengths once; after it no accessor panics. Errors are
//! [`Error`] variants, each a named drop reason.
//!
//! The NAT fast path uses [`parse_frame`] (VLAN tags, IPv4 checks, 5-tuple in one pass; its
//! own fast path [`common_ipv4`]) and [`translate::translate`], the rewrite of a session's
//! packet from the checksum deltas the session computed once. ICMP errors are translated by
//! [`Ipv4Packet::translate_icmp_error`] and [`Ipv4Packet::rewrite_addr_only`]. None allocates.
//!
//! A packet in a tunnel (GENEVE from AWS Gateway Load Balancer, VXLAN from Azure's) is taken
//! apart by [`geneve::decapsulate`] and [`vxlan::decapsulate`], which say where its inner
//! packet lies ([`Decap`]); their `Repr`s write a received header back byte for byte.
//!
//! # Files
//!
//! The files import each other in one direction, from the bottom of this list up (a file
//! uses only files listed before it, and this file's items):
//!
//! | file | owns | imports |
//! |---|---|---|
//! | `mod.rs` | [`IpProtocol`], the `view!` and `enum_with_unknown!` macros, the `field` accessors, the option walk | - |
//! | [`error`] | [`Error`], the drop reasons | - |
//! | [`checksum`] | RFC 1071 sums, RFC 1624 updates, [`ChecksumDelta`], [`ChecksumCaps`] | - |
//! | [`ethernet`] | Ethernet II and VLAN tags | - |
//! | [`arp`] | ARP for IPv4 over Ethernet | `ethernet` |
//! | [`ipv4`] | the IPv4 header: view, `Repr`, TTL decrement, address-only rewrite, [`Endpoint`] | `checksum` |
//! | [`ipv6`] | the IPv6 header and its extension-header walk | - |
//! | [`tcp`], [`udp`] | one transport each: view, `Repr`, header checks, options (TCP) | `checksum` |
//! | [`http`] | the health probe's HTTP/1.x: a request line read, a closing response written | `error` |
//! | [`icmp`] | ICMP messages: view, `Repr`, the check that an error carries a quote | `checksum`, `ipv4` |
//! | [`tuple`](mod@tuple) | [`FiveTuple`], the ports of any transport, `Ipv4Packet::five_tuple` | `ipv4`, `tcp`, `udp`, `icmp` |
//! | [`quote`] | the packet an ICMP error quotes: [`IcmpQuote`], its tuple and rewrite, `IcmpPacket::quote` | `checksum`, `ipv4`, `tcp`, `udp`, `icmp`, `tuple` |
//! | [`translate`] | the NAT rewrite of a session's packet and of an ICMP error about one (`Ipv4Packet::translate_icmp_error`), [`Offsets`], `Ipv4Packet::offsets`, MACs | `checksum`, `ethernet`, `ipv4`, `tcp`, `udp`, `icmp`, `tuple`, `quote` |
//! | `parse.rs` | [`parse_frame`], [`common_ipv4`]: a received frame classified in one pass | the header files, `tuple`, `translate` |
//! | [`tunnel`] | what the tunnel encapsulations share: [`Vni`], [`Outer`] and [`Decap`] (where a tunnel packet's parts lie), the walk of its outer Ethernet, IPv4 and UDP headers, its inner packet parsed in place, the packet turned around to its sender | `checksum`, `ethernet`, `ipv4`, `udp`, `parse` |
//! | [`geneve`], [`vxlan`] | one encapsulation each: view, `Repr` that re-emits the header byte for byte (GENEVE's options kept as bytes), `decapsulate` (the inner frame's offsets in a whole frame) | `checksum`, `ethernet`, `tunnel` |
//! | [`build`] | the frames the appliance sends itself (the health probe's segments carry [`http`]'s bytes, which it does not read); a tunnel packet as a load balancer sends it | `checksum`, `ethernet`, `arp`, `ipv4`, `icmp`, `tcp`, `udp`, `geneve`, `vxlan` |
//! | `exercise.rs` | every parser and rewrite over arbitrary bytes, for the fuzz target and the property tests | `build`, `parse`, `translate` and the rest |

#![warn(missing_docs)]

/// An enum over a protocol number that keeps values it does not know (`Unknown`), so decoding
/// never fails or panics and re-encoding is lossless. It is a [`field::Value`], stored as its
/// number, so it can be the type of a view's plain field.
macro_rules! enum_with_unknown {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$vattr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vattr])* $variant, )+
            /// A value without a name here, kept as is.
            Unknown($ty),
        }

        impl $name {
            /// The value on the wire (`From` in `const` code).
            #[inline]
            pub const fn value(self) -> $ty {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }

            /// The name of a value on the wire (`From` in `const` code).
            #[inline]
            pub const fn of(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$ty> for $name {
            #[inline]
            fn from(value: $ty) -> Self {
                $name::of(value)
            }
        }

        impl From<$name> for $ty {
            #[inline]
            fn from(value: $name) -> Self {
                value.value()
            }
        }

        impl $crate::packet::field::Value for $name {
            #[inline(always)]
            fn get(data: &[u8], at: usize) -> Self {
                $name::of(<$ty as $crate::packet::field::Value>::get(data, at))
            }

            #[inline(always)]
            fn set(self, data: &mut [u8], at: usize) {
                $crate::packet::field::Value::set(self.value(), data, at)
            }
        }
    };
}

/// A header view, `pub struct $name<T: AsRef<[u8]>>` over a byte buffer, with the plumbing
/// every view shares: `new_unchecked`; `new_checked`, which wraps a buffer that passes
/// `$check` (a function of `&[u8]` returning `Result<(), Error>`) and carries the doc comment
/// written above it, its `# Errors` list the check's; `into_inner`; `AsRef<[u8]>`; and the
/// private `data()` the accessors read.
///
/// The braces after the name list the view's plain fields, each one value at a fixed offset:
/// `offset: Type { pub fn getter; pub fn setter; }`, the offset a `field` constant, the type a
/// [`field::Value`], the setter optional, each function with its own doc comment and
/// attributes. They become `pub fn getter(&self) -> Type` and, where the buffer is `AsMut`,
/// `pub fn setter(&mut self, value: Type)`. Every other accessor is its module's own: those
/// that do more than read or write one field (a length in words, flag bits, options,
/// checksums, the payload), the MAC addresses, whose fields are byte ranges, and the fields
/// of an ICMP quote, read through an IPv4 view.
macro_rules! view {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $at:path: $ty:ty {
                    $(#[$get_attr:meta])*
                    pub fn $get:ident;
                    $(
                        $(#[$set_attr:meta])*
                        pub fn $set:ident;
                    )?
                }
            )*
        }

        $(#[$checked_attr:meta])*
        new_checked = $check:expr;
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap a buffer without checks; accessors may panic on a buffer
            /// [`new_checked`](Self::new_checked) would refuse.
            pub const fn new_unchecked(buffer: T) -> $name<T> {
                $name { buffer }
            }

            $(#[$checked_attr])*
            #[inline]
            pub fn new_checked(buffer: T) -> Result<$name<T>, $crate::packet::Error> {
                ($check)(buffer.as_ref())?;
                Ok($name { buffer })
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            #[inline(always)]
            fn data(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            $(
                $(#[$get_attr])*
                pub fn $get(&self) -> $ty {
                    <$ty as $crate::packet::field::Value>::get(self.data(), $at)
                }
            )*
        }

        impl<T: AsRef<[u8]>> AsRef<[u8]> for $name<T> {
            fn as_ref(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            $($(
                $(#[$set_attr])*
                pub fn $set(&mut self, value: $ty) {
                    $crate::packet::field::Value::set(value, self.buffer.as_mut(), $at)
                }
            )?)*
        }
    };
}

/// The whole check of a view whose header has no length field to validate: `data` holds at
/// least `len` bytes, else `short`.
#[inline(always)]
fn check_len(data: &[u8], len: usize, short: Error) -> Result<(), Error> {
    if data.len() < len {
        return Err(short);
    }
    Ok(())
}

/// The next option of a list laid out as IPv4's (RFC 791 section 3.1) and TCP's (RFC 9293
/// section 3.1): kind 0 ends the list, kind 1 is a one-byte no-operation, any other kind is
/// followed by a length octet that counts the kind, itself and the data.
///
/// Returns the kind and the data (empty for a no-operation) and moves `rest` past them;
/// `None` at the end of the list; `bad` once for an option whose length is below 2 or runs
/// past the list, which ends the walk (`rest` is emptied).
#[inline]
fn next_option<'a>(rest: &mut &'a [u8], bad: Error) -> Option<Result<(u8, &'a [u8]), Error>> {
    let (&kind, after) = rest.split_first()?;
    match kind {
        0 => {
            *rest = &[];
            None
        }
        1 => {
            *rest = after;
            Some(Ok((kind, &[])))
        }
        _ => match after.first().map(|&l| usize::from(l)) {
            Some(len) if len >= 2 && len <= rest.len() => {
                let data = &rest[2..len];
                *rest = &rest[len..];
                Some(Ok((kind, data)))
            }
            _ => {
                *rest = &[];
                Some(Err(bad))
            }
        },
    }
}

pub mod arp;
pub mod build;
pub mod checksum;
pub mod error;
pub mod ethernet;
#[doc(hidden)]
pub mod exercise;
pub mod geneve;
pub mod http;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod parse;
pub mod quote;
pub mod tcp;
pub mod translate;
pub mod tunnel;
pub mod tuple;
pub mod udp;
pub mod vxlan;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use checksum::{ChecksumCaps, ChecksumDelta};
pub use error::Error;
pub use ethernet::{
    Address as EthernetAddress, EtherType, Frame as EthernetFrame, Repr as EthernetRepr, Tpid,
    VlanTag, Vlans,
};
pub use geneve::{
    GeneveOption, Options as GeneveOptions, Packet as GenevePacket, Repr as GeneveRepr,
};
pub use icmp::{
    DstUnreachable as IcmpDstUnreachable, Echo as IcmpEcho, Message as IcmpMessage,
    Packet as IcmpPacket, Repr as IcmpRepr,
};
pub use ipv4::{Endpoint, Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{Packet as Ipv6Packet, Repr as Ipv6Repr, Summary as Ipv6Summary};
pub use parse::{common_ipv4, parse_frame, Common, Ipv4Meta, ParsedFrame, L3, L4};
pub use quote::Quote as IcmpQuote;
pub use tcp::{Flags as TcpFlags, Packet as TcpPacket, Repr as TcpRepr, TcpOption};
pub use translate::{ChecksumDeltas, Offsets};
pub use tunnel::{Decap, Outer, Vni};
pub use tuple::FiveTuple;
pub use udp::{Packet as UdpPacket, Repr as UdpRepr};
pub use vxlan::{Packet as VxlanPacket, Repr as VxlanRepr};

/// An IP protocol / IPv6 next-header number (IANA "Assigned Internet Protocol Numbers"),
/// with names for the ones the appliance knows; every value is kept as it is.
///
/// A number, not an enum with an `Unknown(u8)` arm like the other protocol numbers here: the
/// fast path reads the protocol of every packet from its session key and the header, and
/// with the enum each read was a match to build it and another to compare it, about 16
/// instructions a packet (callgrind, `benches/callgrind.sh`). As a number both are free, and
/// `match` on the named constants reads the same.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options (RFC 8200 section 4.3).
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// IGMP (RFC 3376).
    pub const IGMP: IpProtocol = IpProtocol(2);
    /// TCP (RFC 9293).
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP (RFC 768).
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 routing header (RFC 8200 section 4.4).
    pub const IPV6_ROUTE: IpProtocol = IpProtocol(43);
    /// IPv6 fragment header (RFC 8200 section 4.5).
    pub const IPV6_FRAG: IpProtocol = IpProtocol(44);
    /// GRE (RFC 2784).
    pub const GRE: IpProtocol = IpProtocol(47);
    /// IPsec ESP (RFC 4303).
    pub const ESP: IpProtocol = IpProtocol(50);
    /// IPsec AH (RFC 4302).
    pub const AH: IpProtocol = IpProtocol(51);
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// IPv6 "no next header" (RFC 8200 section 4.7).
    pub const IPV6_NO_NXT: IpProtocol = IpProtocol(59);
    /// IPv6 destination options (RFC 8200 section 4.6).
    pub const IPV6_OPTS: IpProtocol = IpProtocol(60);
    /// SCTP (RFC 9260).
    pub const SCTP: IpProtocol = IpProtocol(132);

    /// The number on the wire.
    #[inline(always)]
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The protocol with number `value`.
    #[inline(always)]
    pub const fn of(value: u8) -> Self {
        IpProtocol(value)
    }
}

impl From<u8> for IpProtocol {
    #[inline(always)]
    fn from(value: u8) -> Self {
        IpProtocol(value)
    }
}

impl From<IpProtocol> for u8 {
    #[inline(always)]
    fn from(value: IpProtocol) -> Self {
        value.0
    }
}

impl core::fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IpProtocol({self})")
    }
}

impl IpProtocol {
    /// The protocol named as the configuration file, the CLI and the JSON output name it:
    /// `tcp`, `udp`, `icmp` (any case), or a number 0-255.
    pub fn from_name(text: &str) -> Option<IpProtocol> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(IpProtocol::TCP),
            "udp" => Some(IpProtocol::UDP),
            "icmp" => Some(IpProtocol::ICMP),
            n => n.parse::<u8>().ok().map(IpProtocol::of),
        }
    }

    /// The name of TCP, UDP and ICMP as [`IpProtocol::from_name`] reads it, `None` for the
    /// others (which go by their number).
    pub fn name(self) -> Option<&'static str> {
        match self {
            IpProtocol::TCP => Some("tcp"),
            IpProtocol::UDP => Some("udp"),
            IpProtocol::ICMP => Some("icmp"),
            _ => None,
        }
    }
}

impl core::fmt::Display for IpProtocol {
    /// `tcp`, `udp`, `icmp`, or the number.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.value()),
        }
    }
}

/// Big-endian field access at fixed offsets. Callers guarantee the bounds (checked once in
/// `new_checked`), so these are the only place a slice index appears.
pub(crate) mod field {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::IpProtocol;

    /// A field's byte range.
    pub type Field = core::ops::Range<usize>;

    #[inline(always)]
    pub fn get_u16(data: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    #[inline(always)]
    pub fn get_u32(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
    }

    #[inline(always)]
    pub fn set_u16(data: &mut [u8], at: usize, value: u16) {
        data[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_u32(data: &mut [u8], at: usize, value: u32) {
        data[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// The type of a view's plain field (see `view!`): read from and written to the bytes at
    /// the field's offset, a number big-endian.
    pub trait Value: Sized {
        /// The value at `at`.
        fn get(data: &[u8], at: usize) -> Self;

        /// Write the value at `at`.
        fn set(self, data: &mut [u8], at: usize);
    }

    impl Value for u8 {
        #[inline(always)]
        fn get(data: &[u8], at: usize) -> Self {
            data[at]
        }

        #[inline(always)]
        fn set(self, data: &mut [u8], at: usize) {
            data[at] = self;
        }
    }

    /// The numbers wider than a byte, through the functions above.
    macro_rules! big_endian {
        ($($ty:ty: $get:ident, $set:ident;)*) => {$(
            impl Value for $ty {
                #[inline(always)]
                fn get(data: &[u8], at: usize) -> Self {
                    $get(data, at)
                }

                #[inline(always)]
                fn set(self, data: &mut [u8], at: usize) {
                    $set(data, at, self);
                }
            }
        )*};
    }

    big_endian! {
        u16: get_u16, set_u16;
        u32: get_u32, set_u32;
    }

    impl Value for IpProtocol {
        #[inline(always)]
        fn get(data: &[u8], at: usize) -> Self {
            IpProtocol(data[at])
        }

        #[inline(always)]
        fn set(self, data: &mut [u8], at: usize) {
            data[at] = self.0;
        }
    }

    impl Value for Ipv4Addr {
        #[inline(always)]
        fn get(data: &[u8], at: usize) -> Self {
            Ipv4Addr::from(get_u32(data, at))
        }

        #[inline(always)]
        fn set(self, data: &mut [u8], at: usize) {
            set_u32(data, at, self.into());
        }
    }

    impl Value for Ipv6Addr {
        #[inline(always)]
        fn get(data: &[u8], at: usize) -> Self {
            let mut a = [0u8; 16];
            a.copy_from_slice(&data[at..at + 16]);
            Ipv6Addr::from(a)
        }

        #[inline(always)]
        fn set(self, data: &mut [u8], at: usize) {
            data[at..at + 16].copy_from_slice(&self.octets());
        }
    }
}

#[cfg(test)]
mod proptests;

//! Values written as text in the configuration file: prefixes, port ranges, protocols, MAC
//! addresses.
//!
//! Each is held as a [`Parsed`]: the text as written plus the result of parsing it. Parsing
//! happens when the file is read, but a bad value is not a serde error: it is reported by
//! validation with its full field path (`egress.rule[3].dst[1]`), next to every other problem
//! in the file, instead of stopping at the first one with only a line number.

use crate::packet::{EthernetAddress, IpProtocol};
use ipnet::Ipv4Net;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::net::Ipv4Addr;

/// A type that can be read from a configuration value.
///
/// The error is the reason shown to the user after the field path and the value, so it says
/// what the value must be (and, where a likely fix exists, suggests it).
pub trait FromConfigText: Sized {
    /// Parses the text as written in the file (integers arrive as their decimal text).
    fn from_config_text(text: &str) -> Result<Self, String>;
}

/// A configuration value as written, and what it parsed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    text: String,
    value: Result<T, String>,
}

impl<T: FromConfigText> Parsed<T> {
    /// Parses `text` as the file would; for building configurations in code and in tests.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let value = T::from_config_text(text.trim());
        Self { text, value }
    }
}

impl<T> Parsed<T> {
    /// The text as written in the file.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed value, or why the text is not one.
    pub fn value(&self) -> Result<&T, &str> {
        self.value.as_ref().map_err(String::as_str)
    }

    /// The parsed value, if the text was valid.
    pub fn ok(&self) -> Option<&T> {
        self.value.as_ref().ok()
    }
}

impl<T> fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)?;
        if self.value.is_err() {
            f.write_str(" (invalid)")?;
        }
        Ok(())
    }
}

impl<T> fmt::Display for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de, T: FromConfigText> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<T>(PhantomData<T>);
        impl<T: FromConfigText> Visitor<'_> for TextVisitor<T> {
            type Value = Parsed<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Parsed::new(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Parsed::new(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Parsed::new(v.to_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}

impl FromConfigText for Ipv4Addr {
    fn from_config_text(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "must be an IPv4 address like 192.0.2.1".to_string())
    }
}

/// An interface address with its prefix length (`10.0.1.1/24`): host bits are the address.
impl FromConfigText for Ipv4Net {
    fn from_config_text(text: &str) -> Result<Self, String> {
        if !text.contains('/') {
            return Err(format!(
                "must give the prefix length of the port's subnet, like {text}/24"
            ));
        }
        parse_net(text).ok_or_else(|| {
            "must be an IPv4 address with a prefix length, like 10.0.1.1/24".to_string()
        })
    }
}

/// `a.b.c.d/len` with the standard library's strict address syntax (no leading zeros, which
/// some tools read as octal), unlike ipnet's parser.
fn parse_net(text: &str) -> Option<Ipv4Net> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Ipv4Net::new(addr, len.parse().ok()?).ok()
}

/// A CIDR prefix: `10.0.0.0/8`, or a bare address meaning `/32`.
///
/// Host bits must be zero: `10.0.0.1/8` is almost always a typo for one of two different
/// things, so it is refused with both spelled out rather than silently truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(pub Ipv4Net);

impl Prefix {
    /// The prefix matching every address, `0.0.0.0/0`.
    pub const ANY: Prefix = Prefix(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0));

    /// First address, as a number.
    pub fn first(self) -> u32 {
        u32::from(self.0.network())
    }

    /// Last address, as a number.
    pub fn last(self) -> u32 {
        u32::from(self.0.broadcast())
    }

    /// Whether `addr` is in the prefix.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        self.0.contains(&addr)
    }

    /// Whether the two prefixes share an address (for prefixes: one contains the other).
    pub fn overlaps(self, other: Prefix) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromConfigText for Prefix {
    fn from_config_text(text: &str) -> Result<Self, String> {
        let net: Ipv4Net = if text.contains('/') {
            parse_net(text).ok_or_else(|| {
                "must be an IPv4 prefix like 10.0.0.0/8 (length 0-32) or an address".to_string()
            })?
        } else {
            let addr: Ipv4Addr = text.parse().map_err(|_| {
                "must be an IPv4 prefix like 10.0.0.0/8 or an address like 192.0.2.1".to_string()
            })?;
            Ipv4Net::from(addr)
        };
        if net.addr() != net.network() {
            return Err(format!(
                "has host bits set: write {} for the whole subnet or {} for the one address",
                net.trunc(),
                net.addr()
            ));
        }
        Ok(Prefix(net))
    }
}

/// An inclusive range of TCP/UDP ports: `"1024-65535"`, `"53"` or `53`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port in the range.
    pub start: u16,
    /// Last port in the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Every port, 0-65535.
    pub const ALL: PortRange = PortRange {
        start: 0,
        end: u16::MAX,
    };

    /// A range of one port.
    pub const fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }

    /// Number of ports in the range.
    pub fn len(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Always false: a range holds at least one port (parsing refuses `start > end`).
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(self, other: PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromConfigText for PortRange {
    fn from_config_text(text: &str) -> Result<Self, String> {
        let port = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| "must be a port 0-65535 or a range like \"1024-65535\"".to_string())
        };
        let (start, end) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(text)?;
                (p, p)
            }
        };
        if start > end {
            return Err(format!(
                "is an empty range (start {start} > end {end}): write {end}-{start}"
            ));
        }
        Ok(PortRange { start, end })
    }
}

/// The IP protocol a rule matches: `"tcp"`, `"udp"`, `"icmp"`, `"any"` or a number 0-255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Proto {
    /// Every protocol.
    #[default]
    Any,
    /// One IP protocol (IANA "Assigned Internet Protocol Numbers"), named or by number.
    Is(IpProtocol),
}

impl Proto {
    /// The protocol, `None` for any.
    pub fn protocol(self) -> Option<IpProtocol> {
        match self {
            Proto::Any => None,
            Proto::Is(p) => Some(p),
        }
    }

    /// Whether rules with this protocol may name ports (TCP and UDP carry them).
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Is(IpProtocol::TCP | IpProtocol::UDP))
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Any => f.write_str("any"),
            Proto::Is(p) => write!(f, "{p}"),
        }
    }
}

impl FromConfigText for Proto {
    fn from_config_text(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("any") {
            return Ok(Proto::Any);
        }
        IpProtocol::from_name(text).map(Proto::Is).ok_or_else(|| {
            "must be \"tcp\", \"udp\", \"icmp\", \"any\" or a protocol number 0-255".into()
        })
    }
}

/// An Ethernet MAC address (`aa:bb:cc:dd:ee:ff`, or with `-` separators, two hex digits an
/// octet).
///
/// Only unicast addresses are accepted: a static neighbour with a group (multicast or
/// broadcast) or all-zero address is a typo that would black-hole the next hop.
impl FromConfigText for EthernetAddress {
    fn from_config_text(text: &str) -> Result<Self, String> {
        let bad = || "must be a MAC address like 02:00:5e:10:00:01".to_string();
        let sep = if text.contains('-') { '-' } else { ':' };
        let mut bytes = [0u8; 6];
        let mut parts = text.split(sep);
        for b in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if bytes == [0; 6] {
            return Err("is all zeros: give the neighbour's unicast MAC".into());
        }
        if bytes[0] & 1 != 0 {
            return Err(
                "is a group (multicast or broadcast) address: give the neighbour's unicast MAC"
                    .into(),
            );
        }
        Ok(EthernetAddress(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            Parsed::<Prefix>::new("10.0.0.0/8")
                .ok()
                .map(|p| p.to_string()),
            Some("10.0.0.0/8".into())
        );
        assert_eq!(
            Parsed::<Prefix>::new("192.0.2.7")
                .ok()
                .map(|p| p.to_string()),
            Some("192.0.2.7/32".into())
        );
        let err = Parsed::<Prefix>::new("10.0.0.1/8");
        assert!(
            err.value().unwrap_err().contains("10.0.0.0/8"),
            "{err:?} {:?}",
            err.value()
        );
        for bad in ["10.0.0.0/33", "10.0.0", "x", "", "10.0.0.0/", "010.0.0.0/8"] {
            assert!(Parsed::<Prefix>::new(bad).ok().is_none(), "{bad}");
        }
        assert_eq!(Prefix::ANY.first(), 0);
        assert_eq!(Prefix::ANY.last(), u32::MAX);
    }

    #[test]
    fn port_ranges() {
        let r = |s: &str| Parsed::<PortRange>::new(s).ok().copied();
        assert_eq!(r("53"), Some(PortRange::single(53)));
        assert_eq!(
            r("1024-65535"),
            Some(PortRange {
                start: 1024,
                end: 65535
            })
        );
        assert_eq!(r(" 1 - 2 "), Some(PortRange { start: 1, end: 2 }));
        for bad in ["65536", "2000-1000", "-1", "a", "1-", "1-2-3"] {
            assert_eq!(r(bad), None, "{bad}");
        }
        assert!(Parsed::<PortRange>::new("9-3")
            .value()
            .unwrap_err()
            .contains("3-9"));
    }

    #[test]
    fn protocols() {
        let p = |s: &str| Parsed::<Proto>::new(s).ok().copied();
        assert_eq!(p("tcp"), Some(Proto::Is(IpProtocol::TCP)));
        assert_eq!(p("UDP"), Some(Proto::Is(IpProtocol::UDP)));
        assert_eq!(p("icmp"), Some(Proto::Is(IpProtocol::ICMP)));
        assert_eq!(p("any"), Some(Proto::Any));
        assert_eq!(p("47"), Some(Proto::Is(IpProtocol::GRE)));
        assert_eq!(p("256"), None);
        assert_eq!(p("gre"), None);
        assert_eq!(Proto::Is(IpProtocol::TCP).to_string(), "tcp");
    }

    #[test]
    fn macs() {
        let m = |s: &str| Parsed::<EthernetAddress>::new(s).ok().copied();
        assert_eq!(
            m("02:00:5e:10:00:01"),
            Some(EthernetAddress([2, 0, 0x5e, 0x10, 0, 1]))
        );
        assert_eq!(
            m("02-AA-5e-10-00-01"),
            Some(EthernetAddress([2, 0xaa, 0x5e, 0x10, 0, 1]))
        );
        for bad in [
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "2:0:5e:10:0:1",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "zz:00:5e:10:00:01",
        ] {
            assert_eq!(m(bad), None, "{bad}");
        }
        assert_eq!(
            EthernetAddress([2, 0, 0x5e, 0x10, 0, 1]).to_string(),
            "02:00:5e:10:00:01"
        );
    }
}

//! The flow expression `appliance explain` takes: one packet, written the way people talk
//! about flows.
//!
//! ```text
//! tcp|udp SRC:PORT -> DST:PORT [on PORTNAME] [flags syn,ack,...] [ttl N]
//! icmp SRC -> DST [on PORTNAME] [type echo-request|echo-reply|unreachable|time-exceeded|N]
//!                 [code N] [id N] [ttl N]
//! ... [tunnel geneve|internal|external|none] [vni N] [options HEX]
//! ```
//!
//! Keywords and protocol names are case-insensitive; options come in any order, each at most
//! once. A TCP packet is a SYN unless `flags` says otherwise; an ICMP one an echo request with
//! identifier 1. Errors name the offending token and the form expected there.
//!
//! On a `gwlb` port the packet comes in its load balancer's tunnel: `tunnel` says which
//! (GENEVE, AWS's; Azure's internal or external VXLAN tunnel; `none`: in no tunnel), by
//! default the port's own (under VXLAN the internal one for a source in the private
//! prefixes, else the external one). `vni` and `options` (bytes in hex) are GENEVE's; by
//! default VNI 0 and AWS's three options.

use crate::packet::{IpProtocol, TcpFlags};
use std::fmt;
use std::net::Ipv4Addr;

/// The grammar, for error messages and `--help`.
pub const FORMS: &str = "\"tcp|udp SRC:PORT -> DST:PORT [on PORT] [flags syn,ack,...] [ttl N]\" \
or \"icmp SRC -> DST [on PORT] [type echo-request|echo-reply|unreachable|time-exceeded|N] \
[code N] [id N] [ttl N]\", either followed on a gwlb port by \
[tunnel geneve|internal|external|none] [vni N] [options HEX]";

/// TCP flag names `flags` accepts, with their bits.
const FLAG_NAMES: [(&str, TcpFlags); 8] = [
    ("syn", TcpFlags::SYN),
    ("ack", TcpFlags::ACK),
    ("fin", TcpFlags::FIN),
    ("rst", TcpFlags::RST),
    ("psh", TcpFlags::PSH),
    ("urg", TcpFlags::URG),
    ("ece", TcpFlags::ECE),
    ("cwr", TcpFlags::CWR),
];

/// ICMP type names `type` accepts (RFC 792), with their numbers.
const ICMP_TYPES: [(&str, u8); 9] = [
    ("echo-request", 8),
    ("echo", 8),
    ("echo-reply", 0),
    ("unreachable", 3),
    ("dest-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
];

/// The transport of a flow expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with these control bits.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Control bits (SYN unless given).
        flags: TcpFlags,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP (RFC 792).
    Icmp {
        /// Message type (8, echo request, unless given).
        ty: u8,
        /// Code.
        code: u8,
        /// Echo identifier (for errors: the ports of the quoted datagram).
        ident: u16,
    },
}

/// How a packet comes on a `gwlb` port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encapsulation {
    /// In the port's own tunnel (GENEVE with VNI 0 and AWS's options; under VXLAN the
    /// internal tunnel from a source in the private prefixes, else the external one): what
    /// the expression means when it says nothing.
    #[default]
    Own,
    /// In GENEVE (AWS's load balancer).
    Geneve {
        /// Its VNI.
        vni: u32,
        /// Its options as bytes; `None`: AWS's three.
        options: Option<Vec<u8>>,
    },
    /// In Azure's internal VXLAN tunnel (from the consumer's side).
    Internal,
    /// In Azure's external VXLAN tunnel (from the internet's side).
    External,
    /// In no tunnel.
    Plain,
}

impl Encapsulation {
    /// Its name in the expression.
    pub fn name(&self) -> &'static str {
        match self {
            Encapsulation::Own => "own",
            Encapsulation::Geneve { .. } => "geneve",
            Encapsulation::Internal => "internal",
            Encapsulation::External => "external",
            Encapsulation::Plain => "none",
        }
    }
}

/// One packet, as `appliance explain` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol and its fields.
    pub transport: Transport,
    /// The port it arrives on, by name; `None`: from the roles (see `explain`).
    pub port: Option<String>,
    /// IPv4 time to live.
    pub ttl: u8,
    /// The tunnel it comes in on a `gwlb` port.
    pub tunnel: Encapsulation,
}

/// The TTL of a packet when the expression gives none: a host's usual default.
pub const DEFAULT_TTL: u8 = 64;
/// The echo identifier when the expression gives none.
pub const DEFAULT_ICMP_ID: u16 = 1;

/// A flow expression that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: expected {expected}; the form is {FORMS}", self.at())]
pub struct ParseError {
    /// The token that is wrong (`None`: the expression ended too early).
    pub token: Option<String>,
    /// Its position, counting from 1.
    pub position: usize,
    /// What should have been there.
    pub expected: String,
}

impl ParseError {
    fn at(&self) -> String {
        match &self.token {
            Some(t) => format!("bad flow expression at {t:?} (word {})", self.position),
            None => "bad flow expression: it ends too early".to_string(),
        }
    }
}

impl Transport {
    /// The IP protocol number.
    pub fn protocol(&self) -> IpProtocol {
        match self {
            Transport::Tcp { .. } => IpProtocol::TCP,
            Transport::Udp { .. } => IpProtocol::UDP,
            Transport::Icmp { .. } => IpProtocol::ICMP,
        }
    }

    /// The protocol's name.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp { .. } => "tcp",
            Transport::Udp { .. } => "udp",
            Transport::Icmp { .. } => "icmp",
        }
    }

    /// Source and destination ports (TCP, UDP), or the echo identifier twice (ICMP), as the
    /// packet layer's 5-tuple has them.
    pub fn ports(&self) -> (u16, u16) {
        match *self {
            Transport::Tcp {
                src_port, dst_port, ..
            }
            | Transport::Udp { src_port, dst_port } => (src_port, dst_port),
            Transport::Icmp { ident, .. } => (ident, ident),
        }
    }
}

/// Names of the TCP flags in `flags`, joined by `,` (`none` for none).
pub fn flag_names(flags: TcpFlags) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(_, f)| flags.contains(*f))
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

/// The name of ICMP type `ty` (its number when it has none here).
pub fn icmp_type_name(ty: u8) -> String {
    ICMP_TYPES
        .iter()
        .find(|(n, t)| *t == ty && *n != "echo" && *n != "dest-unreachable")
        .map_or_else(|| ty.to_string(), |(n, _)| (*n).to_string())
}

impl fmt::Display for Flow {
    /// The expression in its canonical form, defaults spelled out; it parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            } => write!(
                f,
                "tcp {}:{src_port} -> {}:{dst_port} flags {}",
                self.src,
                self.dst,
                flag_names(flags)
            )?,
            Transport::Udp { src_port, dst_port } => {
                write!(f, "udp {}:{src_port} -> {}:{dst_port}", self.src, self.dst)?
            }
            Transport::Icmp { ty, code, ident } => {
                write!(
                    f,
                    "icmp {} -> {} type {}",
                    self.src,
                    self.dst,
                    icmp_type_name(ty)
                )?;
                if code != 0 {
                    write!(f, " code {code}")?;
                }
                write!(f, " id {ident}")?;
            }
        }
        if let Some(p) = &self.port {
            write!(f, " on {p}")?;
        }
        write!(f, " ttl {}", self.ttl)?;
        if let t @ (Encapsulation::Geneve { .. }
        | Encapsulation::Internal
        | Encapsulation::External
        | Encapsulation::Plain) = &self.tunnel
        {
            write!(f, " tunnel {}", t.name())?;
            if let Encapsulation::Geneve { vni, options } = t {
                write!(f, " vni {vni}")?;
                if let Some(o) = options {
                    write!(f, " options {}", hex(o))?;
                }
            }
        }
        Ok(())
    }
}

/// `bytes` in hex, two digits a byte (`-` for none).
pub fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// GENEVE options written in hex: whole 4-byte words, at most 252 bytes (`-`: none).
fn option_bytes(token: &str, position: usize) -> Result<Vec<u8>, ParseError> {
    let expected = "GENEVE options in hex, whole 4-byte words (8 digits each), at most 252 \
                    bytes, or - for none";
    if token == "-" {
        return Ok(Vec::new());
    }
    let digits = token.as_bytes();
    if digits.len() % 8 != 0 || digits.len() > 2 * crate::packet::geneve::MAX_OPTIONS_LEN {
        return Err(bad(token, position, expected));
    }
    digits
        .chunks(2)
        .map(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad(token, position, expected))
}

/// Words of the expression with their positions; `->` is a word of its own even when written
/// against an address (`10.0.1.10:5000->192.0.2.1:53`).
struct Words {
    words: Vec<String>,
    next: usize,
}

impl Words {
    fn new(text: &str) -> Words {
        let spaced = text.replace("->", " -> ");
        Words {
            words: spaced.split_whitespace().map(str::to_string).collect(),
            next: 0,
        }
    }

    /// The next word, or an error saying what was expected when there is none.
    fn take(&mut self, expected: &str) -> Result<(String, usize), ParseError> {
        match self.words.get(self.next) {
            Some(w) => {
                self.next += 1;
                Ok((w.clone(), self.next))
            }
            None => Err(ParseError {
                token: None,
                position: self.next + 1,
                expected: expected.to_string(),
            }),
        }
    }

    fn peek(&self) -> Option<&str> {
        self.words.get(self.next).map(String::as_str)
    }
}

fn bad(token: &str, position: usize, expected: impl Into<String>) -> ParseError {
    ParseError {
        token: Some(token.to_string()),
        position,
        expected: expected.into(),
    }
}

fn address(token: &str, position: usize) -> Result<Ipv4Addr, ParseError> {
    token
        .parse()
        .map_err(|_| bad(token, position, "an IPv4 address like 10.0.1.10"))
}

fn endpoint(token: &str, position: usize) -> Result<(Ipv4Addr, u16), ParseError> {
    let expected = "an address and port like 10.0.1.10:5000";
    let Some((a, p)) = token.rsplit_once(':') else {
        return Err(bad(token, position, expected));
    };
    let addr = a.parse().map_err(|_| bad(token, position, expected))?;
    let port = p
        .parse()
        .map_err(|_| bad(token, position, "a port number 0-65535 after the ':'"))?;
    Ok((addr, port))
}

fn number<T: std::str::FromStr>(token: &str, position: usize, what: &str) -> Result<T, ParseError> {
    token.parse().map_err(|_| bad(token, position, what))
}

fn flags(token: &str, position: usize) -> Result<TcpFlags, ParseError> {
    let mut out = TcpFlags::default();
    if token.eq_ignore_ascii_case("none") {
        return Ok(out);
    }
    for name in token.split([',', '+', '|']) {
        let name = name.to_ascii_lowercase();
        let Some((_, f)) = FLAG_NAMES.iter().find(|(n, _)| *n == name) else {
            return Err(bad(
                token,
                position,
                "TCP flags joined by ',' from syn, ack, fin, rst, psh, urg, ece, cwr (or none)",
            ));
        };
        out |= *f;
    }
    Ok(out)
}

fn icmp_type(token: &str, position: usize) -> Result<u8, ParseError> {
    let lower = token.to_ascii_lowercase();
    if let Some((_, t)) = ICMP_TYPES.iter().find(|(n, _)| *n == lower) {
        return Ok(*t);
    }
    number(
        token,
        position,
        "an ICMP type: echo-request, echo-reply, unreachable, time-exceeded, \
         parameter-problem, redirect, source-quench or a number 0-255",
    )
}

impl Flow {
    /// Reads a flow expression (see the module documentation for the forms).
    ///
    /// # Errors
    /// [`ParseError`] naming the first wrong word and what was expected there.
    pub fn parse(text: &str) -> Result<Flow, ParseError> {
        let mut w = Words::new(text);
        let (word, at) = w.take("a protocol: tcp, udp or icmp")?;
        let proto = word.to_ascii_lowercase();
        let icmp = match proto.as_str() {
            "tcp" | "udp" => false,
            "icmp" => true,
            _ => return Err(bad(&word, at, "a protocol: tcp, udp or icmp")),
        };
        let side = |w: &mut Words, which: &str| -> Result<(Ipv4Addr, u16), ParseError> {
            if icmp {
                let (t, at) = w.take(&format!("the {which} address"))?;
                if t.contains(':') {
                    return Err(bad(
                        &t,
                        at,
                        "an address without a port (ICMP has none; give the echo identifier \
                         with `id N`)",
                    ));
                }
                Ok((address(&t, at)?, 0))
            } else {
                let (t, at) = w.take(&format!(
                    "the {which} address and port, like 10.0.1.10:5000"
                ))?;
                endpoint(&t, at)
            }
        };
        let (src, src_port) = side(&mut w, "source")?;
        let (arrow, at) = w.take("\"->\"")?;
        if arrow != "->" {
            return Err(bad(
                &arrow,
                at,
                "\"->\" between the source and the destination",
            ));
        }
        let (dst, dst_port) = side(&mut w, "destination")?;

        let mut port: Option<String> = None;
        let mut tcp_flags: Option<TcpFlags> = None;
        let mut ty: Option<u8> = None;
        let mut code: Option<u8> = None;
        let mut ident: Option<u16> = None;
        let mut ttl: Option<u8> = None;
        let mut tunnel: Option<Encapsulation> = None;
        let mut vni: Option<u32> = None;
        let mut geneve_options: Option<Vec<u8>> = None;
        while w.peek().is_some() {
            let (key, at) = w.take("an option")?;
            let lower = key.to_ascii_lowercase();
            let options = if icmp {
                "an option: on PORT, type T, code N, id N, ttl N, tunnel T, vni N or options HEX"
            } else if proto == "tcp" {
                "an option: on PORT, flags F,..., ttl N, tunnel T, vni N or options HEX"
            } else {
                "an option: on PORT, ttl N, tunnel T, vni N or options HEX"
            };
            let allowed = match lower.as_str() {
                "on" | "ttl" | "tunnel" | "vni" | "options" => true,
                "flags" => proto == "tcp",
                "type" | "code" | "id" => icmp,
                _ => false,
            };
            if !allowed {
                return Err(bad(&key, at, options));
            }
            let (value, vat) = w.take(&format!("a value after {lower:?}"))?;
            let dup = match lower.as_str() {
                "on" => port.replace(value.clone()).is_some(),
                "ttl" => ttl
                    .replace(number::<u8>(&value, vat, "a TTL 1-255").and_then(|t| {
                        if t == 0 {
                            Err(bad(&value, vat, "a TTL 1-255"))
                        } else {
                            Ok(t)
                        }
                    })?)
                    .is_some(),
                "flags" => tcp_flags.replace(flags(&value, vat)?).is_some(),
                "tunnel" => tunnel
                    .replace(match value.to_ascii_lowercase().as_str() {
                        "geneve" => Encapsulation::Geneve {
                            vni: 0,
                            options: None,
                        },
                        "internal" => Encapsulation::Internal,
                        "external" => Encapsulation::External,
                        "none" => Encapsulation::Plain,
                        _ => {
                            return Err(bad(
                                &value,
                                vat,
                                "a tunnel: geneve, internal, external (Azure's VXLAN) or none",
                            ))
                        }
                    })
                    .is_some(),
                "vni" => vni
                    .replace(
                        number::<u32>(&value, vat, "a VNI 0-16777215").and_then(|v| {
                            if v > 0x00ff_ffff {
                                Err(bad(&value, vat, "a VNI 0-16777215"))
                            } else {
                                Ok(v)
                            }
                        })?,
                    )
                    .is_some(),
                "options" => geneve_options.replace(option_bytes(&value, vat)?).is_some(),
                "type" => ty.replace(icmp_type(&value, vat)?).is_some(),
                "code" => code
                    .replace(number(&value, vat, "an ICMP code 0-255")?)
                    .is_some(),
                _ => ident
                    .replace(number(&value, vat, "an ICMP echo identifier 0-65535")?)
                    .is_some(),
            };
            if dup {
                return Err(bad(&key, at, format!("{lower:?} only once")));
            }
        }
        let transport = match proto.as_str() {
            "tcp" => Transport::Tcp {
                src_port,
                dst_port,
                flags: tcp_flags.unwrap_or(TcpFlags::SYN),
            },
            "udp" => Transport::Udp { src_port, dst_port },
            _ => Transport::Icmp {
                ty: ty.unwrap_or(8),
                code: code.unwrap_or(0),
                ident: ident.unwrap_or(DEFAULT_ICMP_ID),
            },
        };
        let tunnel = match (tunnel, vni, geneve_options) {
            (t, None, None) => t.unwrap_or_default(),
            (None | Some(Encapsulation::Geneve { .. }), vni, options) => Encapsulation::Geneve {
                vni: vni.unwrap_or(0),
                options,
            },
            (Some(t), ..) => {
                return Err(ParseError {
                    token: Some(t.name().to_string()),
                    position: w.words.len(),
                    expected: "tunnel geneve: vni and options are GENEVE's".into(),
                })
            }
        };
        Ok(Flow {
            src,
            dst,
            transport,
            port,
            ttl: ttl.unwrap_or(DEFAULT_TTL),
            tunnel,
        })
    }
}

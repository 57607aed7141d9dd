//! Live sessions as the control socket shows them ([`SessionInfo`]), the filter expressions
//! of `appliance sessions --filter` ([`SessionFilter`]), and what a shard shows the control
//! thread: its gauges, and its sessions. Both walk shard state, so they run on the worker,
//! off the per-packet path.
//!
//! A filter is terms joined by `and`; a session is listed when every term matches:
//!
//! | term | matches a session whose |
//! |---|---|
//! | `proto tcp\|udp\|icmp\|N` | protocol |
//! | `host A.B.C.D` | inside, outside (translated) or remote address is `A.B.C.D` |
//! | `net A.B.C.D/N` | inside, outside or remote address is in the prefix |
//! | `port N` | inside, outside or remote port (ICMP: identifier) is `N` |
//! | `state S` | TCP state (`syn_sent`, `established`, ...; `active` for UDP and ICMP) |
//! | `class C` | timeout class: `tcp_established`, `tcp_transitory`, `udp`, `icmp` |
//! | `worker N` | owning worker |
//! | `generation N` | admitting policy generation |
//!
//! e.g. `proto tcp and host 10.0.1.5 and port 443`. The empty filter matches everything.

use super::class::Trace;
use super::shard::Shard;
use crate::config::{FromConfigText, Prefix};
use crate::flow::{Session, TcpState, TimeoutClass};
use crate::packet::IpProtocol;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// One live session, as the data path reports it. `Copy`, so the data path fills these
/// without allocating per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// IP protocol; named in JSON when it has a name (tcp, udp, icmp), else its number.
    #[serde(with = "proto_name")]
    pub proto: IpProtocol,
    /// The inside host's endpoint (ICMP: the echo identifier as the port).
    pub inside: SocketAddrV4,
    /// The inside endpoint as the outside sees it, after SNAT (or the public side of a
    /// port forward or static mapping).
    pub outside: SocketAddrV4,
    /// The remote (outside) endpoint.
    pub remote: SocketAddrV4,
    /// Timeout class.
    pub class: TimeoutClass,
    /// Protocol state.
    pub state: SessionState,
    /// Milliseconds since its last packet.
    pub idle_ms: u64,
    /// Packets, both directions. (A session is one 64-byte record: it keeps totals, not a
    /// count per direction, and no creation time.)
    pub packets: u64,
    /// Bytes, both directions.
    pub bytes: u64,
    /// The worker that owns it.
    pub worker: u16,
    /// The policy generation that admitted it (or last re-checked it).
    pub generation: u64,
}

/// A session's protocol state (TCP states after RFC 9293 section 3.3.2, collapsed to what a
/// middlebox can see; UDP and ICMP sessions are `Active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// SYN seen from the initiator.
    SynSent,
    /// SYN-ACK seen from the responder.
    SynReceived,
    /// Handshake complete.
    Established,
    /// A FIN seen from one side.
    FinWait,
    /// The other side's FIN seen too (closing).
    CloseWait,
    /// Both FINs acknowledged; waiting out stray segments.
    TimeWait,
    /// RST seen, or closed; waiting for expiry.
    Closed,
    /// A UDP or ICMP session (no protocol states).
    Active,
}

impl SessionState {
    /// Every state.
    pub const ALL: [SessionState; 8] = [
        SessionState::SynSent,
        SessionState::SynReceived,
        SessionState::Established,
        SessionState::FinWait,
        SessionState::CloseWait,
        SessionState::TimeWait,
        SessionState::Closed,
        SessionState::Active,
    ];

    /// The snake_case name used in JSON and filters.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::SynSent => "syn_sent",
            SessionState::SynReceived => "syn_received",
            SessionState::Established => "established",
            SessionState::FinWait => "fin_wait",
            SessionState::CloseWait => "close_wait",
            SessionState::TimeWait => "time_wait",
            SessionState::Closed => "closed",
            SessionState::Active => "active",
        }
    }
}

/// The protocol as JSON carries it: `"tcp"`, `"udp"`, `"icmp"`, or the number.
mod proto_name {
    use crate::packet::IpProtocol;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(proto: &IpProtocol, s: S) -> Result<S::Ok, S::Error> {
        match proto.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u8(proto.value()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpProtocol, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u8),
            Name(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(IpProtocol::of(n)),
            Either::Name(name) => IpProtocol::from_name(&name)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {name:?}"))),
        }
    }
}

/// One term of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// `proto P`.
    Proto(IpProtocol),
    /// `host A`: any of the three addresses.
    Host(Ipv4Addr),
    /// `net P`: any of the three addresses in the prefix.
    Net(Prefix),
    /// `port N`: any of the three ports.
    Port(u16),
    /// `state S`.
    State(SessionState),
    /// `class C`.
    Class(TimeoutClass),
    /// `worker N`.
    Worker(u16),
    /// `generation N`.
    Generation(u64),
}

impl Term {
    /// Whether `s` satisfies this term.
    pub fn matches(&self, s: &SessionInfo) -> bool {
        let addrs = [s.inside.ip(), s.outside.ip(), s.remote.ip()];
        match *self {
            Term::Proto(p) => s.proto == p,
            Term::Host(a) => addrs.iter().any(|&&x| x == a),
            Term::Net(p) => addrs.iter().any(|&&x| p.contains(x)),
            Term::Port(port) => {
                [s.inside.port(), s.outside.port(), s.remote.port()].contains(&port)
            }
            Term::State(st) => s.state == st,
            Term::Class(c) => s.class == c,
            Term::Worker(w) => s.worker == w,
            Term::Generation(g) => s.generation == g,
        }
    }
}

/// A parsed `--filter` expression: every term must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// The terms, in the order written.
    pub terms: Vec<Term>,
}

/// Why a filter expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A word that is not a term's keyword.
    #[error("filter: unknown term {word:?} at word {at} (terms: proto, host, net, port, state, class, worker, generation; joined by \"and\")")]
    UnknownTerm {
        /// The word.
        word: String,
        /// 1-based word position.
        at: usize,
    },
    /// A keyword with nothing after it.
    #[error("filter: {keyword:?} needs a value, e.g. {example:?}")]
    MissingValue {
        /// The keyword.
        keyword: &'static str,
        /// A valid use.
        example: &'static str,
    },
    /// A keyword with a bad value.
    #[error("filter: {keyword} {value:?}: {why}")]
    BadValue {
        /// The keyword.
        keyword: &'static str,
        /// The value as written.
        value: String,
        /// What it must be.
        why: String,
    },
    /// Two terms not joined by `and`, or a dangling `and`.
    #[error("filter: expected \"and\" between terms, found {found:?} at word {at}")]
    ExpectedAnd {
        /// What was there instead (empty at the end of the text).
        found: String,
        /// 1-based word position.
        at: usize,
    },
}

impl SessionFilter {
    /// Parses an expression; the empty (or all-blank) text is the filter that matches all.
    pub fn parse(text: &str) -> Result<SessionFilter, FilterError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut terms = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if !terms.is_empty() {
                if !words[i].eq_ignore_ascii_case("and") {
                    return Err(FilterError::ExpectedAnd {
                        found: words[i].to_string(),
                        at: i + 1,
                    });
                }
                i += 1;
                if i == words.len() {
                    return Err(FilterError::ExpectedAnd {
                        found: String::new(),
                        at: i + 1,
                    });
                }
            }
            let word = words[i];
            let (keyword, example) = match word.to_ascii_lowercase().as_str() {
                "proto" => ("proto", "proto tcp"),
                "host" => ("host", "host 10.0.1.5"),
                "net" => ("net", "net 10.0.1.0/24"),
                "port" => ("port", "port 443"),
                "state" => ("state", "state established"),
                "class" => ("class", "class udp"),
                "worker" => ("worker", "worker 0"),
                "generation" => ("generation", "generation 2"),
                _ => {
                    return Err(FilterError::UnknownTerm {
                        word: word.to_string(),
                        at: i + 1,
                    })
                }
            };
            let value = words
                .get(i + 1)
                .copied()
                .ok_or(FilterError::MissingValue { keyword, example })?;
            let bad = |why: String| FilterError::BadValue {
                keyword,
                value: value.to_string(),
                why,
            };
            let term = match keyword {
                "proto" => Term::Proto(
                    IpProtocol::from_name(value)
                        .ok_or_else(|| bad("must be tcp, udp, icmp or a number 0-255".into()))?,
                ),
                "host" => Term::Host(
                    value
                        .parse()
                        .map_err(|_| bad("must be an IPv4 address like 10.0.1.5".into()))?,
                ),
                "net" => Term::Net(Prefix::from_config_text(value).map_err(bad)?),
                "port" => Term::Port(
                    value
                        .parse()
                        .map_err(|_| bad("must be a port number 0-65535".into()))?,
                ),
                "state" => {
                    Term::State(by_name(SessionState::ALL, SessionState::name, value).map_err(bad)?)
                }
                "class" => {
                    Term::Class(by_name(TimeoutClass::ALL, TimeoutClass::name, value).map_err(bad)?)
                }
                "worker" => Term::Worker(
                    value
                        .parse()
                        .map_err(|_| bad("must be a worker index".into()))?,
                ),
                _ => Term::Generation(
                    value
                        .parse()
                        .map_err(|_| bad("must be a policy generation number".into()))?,
                ),
            };
            terms.push(term);
            i += 2;
        }
        Ok(SessionFilter { terms })
    }

    /// Whether `s` satisfies every term.
    pub fn matches(&self, s: &SessionInfo) -> bool {
        self.terms.iter().all(|t| t.matches(s))
    }

    /// Whether this filter matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl fmt::Display for SessionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            match t {
                Term::Proto(p) => write!(f, "proto {p}")?,
                Term::Host(a) => write!(f, "host {a}")?,
                Term::Net(p) => write!(f, "net {}", p.0)?,
                Term::Port(p) => write!(f, "port {p}")?,
                Term::State(s) => write!(f, "state {}", s.name())?,
                Term::Class(c) => write!(f, "class {}", c.name())?,
                Term::Worker(w) => write!(f, "worker {w}")?,
                Term::Generation(g) => write!(f, "generation {g}")?,
            }
        }
        Ok(())
    }
}

impl<T: Trace> Shard<T> {
    /// Publishes the gauges the control thread reads (sessions per class, NAT ports in
    /// use). Call about once a second.
    pub fn publish_gauges(&self) {
        self.counters.set_gauges(
            self.table.len_by_class(),
            self.snat.ports_in_use().map(|(_, _, n)| n),
            self.snat.exhaustion().map(|(_, _, n)| n),
        );
    }

    /// Appends to `out` up to `limit` sessions `filter` matches, as seen at `now` (seconds).
    pub fn dump(&self, now: u32, filter: &SessionFilter, limit: usize, out: &mut Vec<SessionInfo>) {
        for (_, s) in self.table.iter() {
            if out.len() >= limit {
                return;
            }
            let info = info(s, now, self.worker);
            if filter.matches(&info) {
                out.push(info);
            }
        }
    }
}

/// How the control plane shows a session.
fn info(s: &Session, now: u32, worker: u16) -> SessionInfo {
    let (inside, outside) = (s.inside(), s.outside());
    let ep = |a, p| SocketAddrV4::new(a, p);
    let class = s.timeout_class();
    let state = if inside.protocol() == IpProtocol::TCP {
        match s.tcp_state() {
            TcpState::SynSent => SessionState::SynSent,
            TcpState::SynReceived => SessionState::SynReceived,
            TcpState::Established => SessionState::Established,
            TcpState::FinWait { .. } => SessionState::FinWait,
            TcpState::CloseWait { .. } | TcpState::LastAck { .. } => SessionState::CloseWait,
            TcpState::TimeWait => SessionState::TimeWait,
            TcpState::Closed => SessionState::Closed,
        }
    } else {
        SessionState::Active
    };
    SessionInfo {
        proto: inside.protocol(),
        inside: ep(inside.src_addr(), inside.src_port()),
        outside: ep(outside.dst_addr(), outside.dst_port()),
        remote: ep(outside.src_addr(), outside.src_port()),
        class,
        state,
        idle_ms: u64::from(now.saturating_sub(s.last_seen())) * 1000,
        packets: u64::from(s.packets()),
        bytes: s.bytes(),
        worker,
        generation: u64::from(s.policy_generation()),
    }
}

/// The one of `all` whose name is `value`, in any case; else what the names are.
fn by_name<T: Copy, const N: usize>(
    all: [T; N],
    name: fn(T) -> &'static str,
    value: &str,
) -> Result<T, String> {
    all.into_iter()
        .find(|x| name(*x).eq_ignore_ascii_case(value))
        .ok_or_else(|| format!("must be one of {}", all.map(name).join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionInfo {
        SessionInfo {
            proto: IpProtocol::TCP,
            inside: "10.0.1.5:40000".parse().unwrap(),
            outside: "203.0.113.2:40000".parse().unwrap(),
            remote: "198.51.100.7:443".parse().unwrap(),
            class: TimeoutClass::TcpEstablished,
            state: SessionState::Established,
            idle_ms: 10,
            packets: 18,
            bytes: 10_000,
            worker: 1,
            generation: 3,
        }
    }

    #[test]
    fn terms_match() {
        let s = session();
        for (text, want) in [
            ("", true),
            ("   ", true),
            ("proto tcp", true),
            ("proto udp", false),
            ("proto 6", true),
            ("host 10.0.1.5", true),
            ("host 203.0.113.2", true),
            ("host 198.51.100.7", true),
            ("host 10.0.1.6", false),
            ("net 10.0.1.0/24", true),
            ("net 10.0.2.0/24", false),
            ("port 443", true),
            ("port 40000", true),
            ("port 80", false),
            ("state established", true),
            ("state ESTABLISHED", true),
            ("state syn_sent", false),
            ("class tcp_established", true),
            ("class udp", false),
            ("worker 1", true),
            ("worker 0", false),
            ("generation 3", true),
            ("proto tcp and host 10.0.1.5 and port 443", true),
            ("proto tcp AND port 80", false),
        ] {
            let f = SessionFilter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.matches(&s), want, "{text}");
            // Display gives back an equivalent expression.
            assert_eq!(SessionFilter::parse(&f.to_string()).unwrap(), f, "{text}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        for (text, why) in [
            ("colour red", "unknown term \"colour\""),
            ("proto", "needs a value"),
            ("proto gre", "tcp, udp, icmp"),
            ("proto 300", "tcp, udp, icmp"),
            ("host 10.0.1", "IPv4 address"),
            ("net 10.0.1.1/24", "net"),
            ("port 70000", "port number"),
            ("state open", "established"),
            ("class tcp", "tcp_established"),
            ("proto tcp port 443", "expected \"and\""),
            ("proto tcp and", "expected \"and\""),
            ("and proto tcp", "unknown term \"and\""),
            ("worker x", "worker index"),
        ] {
            let e = SessionFilter::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.starts_with("filter"), "{e}");
        }
    }

    #[test]
    fn json_round_trip_names_the_protocol() {
        let s = session();
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["state"], "established");
        assert_eq!(v["inside"], "10.0.1.5:40000");
        assert_eq!(serde_json::from_value::<SessionInfo>(v).unwrap(), s);
        let gre = SessionInfo {
            proto: IpProtocol::GRE,
            ..s
        };
        let v = serde_json::to_value(gre).unwrap();
        assert_eq!(v["proto"], 47);
        assert_eq!(serde_json::from_value::<SessionInfo>(v).unwrap(), gre);
    }
}

//! The shared test fixtures: one two-arm topology, its configuration, a harness that runs
//! shards on it ([`Net`]), frame builders on the packet layer ([`frames`]), and assertions on
//! printed text and JSON ([`has`], [`json_has`]).
//!
//! Unit tests, the integration tests under `appliance/tests` and the fuzz crate use these,
//! so a scenario reads the same wherever it is written. Nothing in the product uses them;
//! the module is compiled into the library (integration tests and the fuzz crate link the
//! library as any user does) and hidden from its documentation.
//!
//! The topology: port 0 `lan` (inside, 10.0.1.1/24) with hosts C1, C2 and C3; port 1 `wan`
//! (outside, 192.0.2.2/24) with the gateway 192.0.2.1, behind which are SERVER, OTHER and a
//! ROUTER that sends ICMP errors. [`BASE`] adds a port forward, 192.0.2.2:8080 to C2:80.

pub mod control;
mod expect;
pub mod frames;
pub mod gwlb;
mod net;

pub use expect::{has, json_has};
pub use frames::{
    echo, error_about, icmp, ip_frame, quoted, seen, segment, tcp, tcp_segment, udp, udp_sized,
    with_ttl, Seen, Segment,
};
pub use net::Net;

use crate::config::Config;
use crate::packet::EthernetAddress;
use crate::pipeline::Neighbours;
use crate::policy::Policy;
use std::net::Ipv4Addr;

/// The inside port's index.
pub const LAN: u8 = 0;
/// The outside port's index.
pub const WAN: u8 = 1;

/// The inside port's MAC.
pub const MAC_LAN: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xa0]);
/// The outside port's MAC.
pub const MAC_WAN: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xa1]);
/// The gateway's MAC.
pub const MAC_GW: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// C1's MAC.
pub const MAC_C1: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x10]);
/// C2's MAC.
pub const MAC_C2: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x11]);
/// C3's MAC.
pub const MAC_C3: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x12]);

/// An inside host.
pub const C1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
/// An inside host, the port forward's target.
pub const C2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);
/// An inside host.
pub const C3: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 12);
/// The inside port's address.
pub const LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
/// The outside port's address, the SNAT address.
pub const PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// A second public address on the outside link, for static mappings.
pub const STATIC_PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 40);
/// The outside port's gateway.
pub const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// A server on the internet.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Another host on the internet.
pub const OTHER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);
/// A router on the internet that reports errors.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// Source and destination MACs of a frame from C1 into the inside port.
pub const IN: (EthernetAddress, EthernetAddress) = (MAC_C1, MAC_LAN);
/// From C2 into the inside port.
pub const IN2: (EthernetAddress, EthernetAddress) = (MAC_C2, MAC_LAN);
/// From C3 into the inside port.
pub const IN3: (EthernetAddress, EthernetAddress) = (MAC_C3, MAC_LAN);
/// From the gateway into the outside port.
pub const OUT: (EthernetAddress, EthernetAddress) = (MAC_GW, MAC_WAN);

/// The two ports as a literal, so that [`PORTS`] and [`BASE`] are one text.
macro_rules! ports {
    () => {
        r#"
[eal]
lcores = "0-1"
huge_pages = false

[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "10.0.1.1/24"

[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "192.0.2.2/24"
gateway = "192.0.2.1"
"#
    };
}

/// The topology's ports and nothing else: default policy (egress allowed, ingress denied,
/// SNAT to the outside port's address). Sections appended to it complete a configuration.
pub const PORTS: &str = ports!();

/// [`PORTS`] and a port forward, TCP 192.0.2.2:8080 to C2:80, with the ingress rule that
/// admits it: the configuration most scenarios start from.
pub const BASE: &str = concat!(
    ports!(),
    r#"
[[ingress.forward]]
proto = "tcp"
public = "192.0.2.2"
public_port = 8080
private = "10.0.1.11"
private_port = 80

[[ingress.rule]]
action = "allow"
proto = "tcp"
dst_ports = [8080]
"#
);

/// [`BASE`] followed by `extra`, parsed and validated.
///
/// # Errors
/// The configuration error, as its message.
pub fn config(extra: &str) -> Result<Config, String> {
    Config::parse(&format!("{BASE}{extra}"), "test.toml").map_err(|e| e.to_string())
}

/// The policy of a whole configuration `text`, at `generation`.
///
/// # Panics
/// If the text is not a valid configuration: a fixture must be.
pub fn compile(text: &str, generation: u64) -> Policy {
    let config = Config::parse(text, "test.toml").unwrap_or_else(|e| panic!("test config: {e}"));
    Policy::compile(&config, generation).unwrap_or_else(|e| panic!("test policy: {e}"))
}

/// The policy of [`BASE`] followed by `extra`, at `generation`.
///
/// # Panics
/// As [`compile`].
pub fn policy(extra: &str, generation: u64) -> Policy {
    compile(&format!("{BASE}{extra}"), generation)
}

/// The neighbour table of the topology: the gateway and the three inside hosts.
pub fn neighbours() -> Neighbours {
    Neighbours::with(
        1,
        [
            ((WAN, GW), MAC_GW),
            ((LAN, C1), MAC_C1),
            ((LAN, C2), MAC_C2),
            ((LAN, C3), MAC_C3),
        ],
    )
}

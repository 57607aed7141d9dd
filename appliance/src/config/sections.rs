//! The policy sections of the configuration file: port addressing, `[nat]`, `[egress]`,
//! `[ingress]`, `private_prefixes` and `[local]`.
//!
//! These are the file's shape only (serde, unknown fields rejected). Values whose syntax can
//! be wrong in interesting ways (addresses, prefixes, port ranges, protocols, MACs) are held as
//! [`Parsed`] so that validation ([`super::validate`]) reports each bad one with its field path.
//! The compiled form the workers read is [`crate::policy::Policy`].
//!
//! The whole schema, annotated, is `configs/example-policy.toml`.

use super::value::{FromConfigText, Parsed, PortRange, Prefix, Proto};
use crate::flow::Timeouts;
use crate::packet::{EthernetAddress, IpProtocol};
use serde::Deserialize;
use std::net::Ipv4Addr;

/// A static ARP entry on a port: the appliance never sends ARP requests for `ip` and uses
/// `mac` as the destination of frames to it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Neighbour {
    /// The neighbour's IPv4 address; on the port's subnet.
    pub ip: Parsed<Ipv4Addr>,
    /// Its unicast MAC address, `"aa:bb:cc:dd:ee:ff"`.
    pub mac: Parsed<EthernetAddress>,
}

/// What a rule (or a rule set's default) does with a matching flow.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Admit the new flow (a session is created for it).
    Allow,
    /// Drop the packet (counted by rule).
    Deny,
}

/// NAT mapping behaviour, RFC 4787 section 4.1.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mapping {
    /// One mapping per inside endpoint, reused for every destination (RFC 4787 REQ-1: MUST).
    #[default]
    EndpointIndependent,
    /// One mapping per (inside endpoint, destination endpoint): more sessions per public
    /// address, but breaks peer-to-peer applications that learn their mapping from a server.
    EndpointDependent,
}

/// NAT filtering behaviour for packets arriving at a mapping, RFC 4787 section 5.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    /// Any outside endpoint may send to an existing mapping (RFC 4787 REQ-8 recommends it
    /// for application transparency).
    EndpointIndependent,
    /// Only addresses the inside endpoint has sent to.
    AddressDependent,
    /// Only address-and-port pairs the inside endpoint has sent to (the most restrictive,
    /// a stateful firewall's usual behaviour).
    #[default]
    AddressAndPortDependent,
}

/// Which pool address a new mapping may take, RFC 4787 section 4.1 ("IP address pooling").
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// An inside host always leaves from the same pool address (RFC 4787 REQ-2: RECOMMENDED),
    /// a pure function of its address. When that address's ports are used up for a new
    /// mapping, the flow is refused (`nat_port_exhausted`), even if other addresses have room.
    #[default]
    Paired,
    /// A new mapping takes a port on another pool address when the host's own has none left:
    /// the pool's ports serve whoever needs them, but one host may then appear from several
    /// public addresses, which breaks applications that expect one (some P2P and RTP
    /// applications, servers that pin a login to the client address).
    Arbitrary,
}

/// What happens to live sessions when a new policy is published.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnReload {
    /// A session admitted under an older policy generation is re-checked against the new
    /// policy at its next packet, so a new deny rule closes flows already open.
    #[default]
    Recheck,
    /// Sessions keep running under the policy that admitted them.
    Keep,
}

/// `[nat]`: source NAT for egress and the NAT behaviour of every session.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NatConfig {
    /// Public addresses and prefixes of the SNAT pool (`"203.0.113.5"`, `"203.0.113.8/29"`).
    /// Empty: the addresses of the outside (and both) ports, i.e. masquerade.
    pub addresses: Vec<Parsed<Prefix>>,
    /// The pool and the static mappings' public addresses reach the appliance by routing
    /// or by the cloud's address mapping, not by ARP on an outside subnet. `false` (default):
    /// each must lie on an outside or both port's subnet, and the appliance answers ARP for
    /// it there. Set it for a routed public block, or for cloud public IPs that the provider
    /// maps onto the NIC.
    pub routed: bool,
    /// Source ports SNAT may use, `"1024-65535"` by default (RFC 4787 REQ-3 keeps the
    /// well-known range apart). Workers take equal slices of it.
    pub port_range: Parsed<PortRange>,
    /// Mapping behaviour (RFC 4787 section 4.1).
    pub mapping: Mapping,
    /// Filtering behaviour (RFC 4787 section 5).
    pub filtering: Filtering,
    /// IP address pooling (RFC 4787 section 4.1): whether a new mapping may take another
    /// pool address when the host's own has no port left.
    pub pooling: Pooling,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Session table capacity for the whole appliance (split among workers).
    pub max_sessions: u32,
    /// Accept a new TCP session from a packet that is not a SYN (e.g. after a restart, mid-
    /// connection). Off: the first packet of a new TCP flow must be a SYN.
    pub tcp_loose: bool,
    /// Clamp the MSS option of TCP SYNs passing through to at most this many bytes.
    pub mss_clamp: Option<u16>,
    /// Re-check live sessions against a reloaded policy, or keep them.
    pub on_reload: OnReload,
    /// An inside host may reach another inside host through its public address and port
    /// (RFC 4787 REQ-9, RFC 5382 REQ-8).
    pub hairpinning: bool,
}

/// The default session table capacity.
pub const DEFAULT_MAX_SESSIONS: u32 = 1 << 20;

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            routed: false,
            port_range: Parsed::new("1024-65535"),
            mapping: Mapping::default(),
            filtering: Filtering::default(),
            pooling: Pooling::default(),
            timeouts: Timeouts::default(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            tcp_loose: false,
            mss_clamp: None,
            on_reload: OnReload::default(),
            hairpinning: true,
        }
    }
}

/// One filtering rule. Every field but `action` is optional; a missing or empty list matches
/// anything. A rule matches when every field matches; the first matching rule wins.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// What to do with a matching flow.
    pub action: Action,
    /// `"tcp"`, `"udp"`, `"icmp"`, `"any"` (default) or an IP protocol number.
    #[serde(default = "any_proto")]
    pub proto: Parsed<Proto>,
    /// Source prefixes (CIDR or bare address).
    #[serde(default)]
    pub src: Vec<Parsed<Prefix>>,
    /// Destination prefixes.
    #[serde(default)]
    pub dst: Vec<Parsed<Prefix>>,
    /// Source ports or ranges; only with `proto` tcp or udp.
    #[serde(default)]
    pub src_ports: Vec<Parsed<PortRange>>,
    /// Destination ports or ranges; only with `proto` tcp or udp.
    #[serde(default)]
    pub dst_ports: Vec<Parsed<PortRange>>,
    /// ICMP types (RFC 792: 0 echo reply, 3 unreachable, 8 echo, 11 time exceeded); only
    /// with `proto = "icmp"`.
    #[serde(default)]
    pub icmp_types: Vec<u8>,
    /// Free text, shown by `appliance explain` and in logs.
    #[serde(default)]
    pub comment: String,
}

fn any_proto() -> Parsed<Proto> {
    Parsed::new("any")
}

/// `[egress]`: which new flows from inside may go out.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// The action for a flow no rule matches; `allow` by default.
    pub default: Action,
    /// Ordered rules (`[[egress.rule]]`), matched against the flow as the inside host sent
    /// it (before SNAT).
    pub rule: Vec<RuleConfig>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            default: Action::Allow,
            rule: Vec::new(),
        }
    }
}

/// The transport protocol of a port forward.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ForwardProto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl ForwardProto {
    /// The IP protocol.
    pub fn protocol(self) -> IpProtocol {
        match self {
            ForwardProto::Tcp => IpProtocol::TCP,
            ForwardProto::Udp => IpProtocol::UDP,
        }
    }

    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            ForwardProto::Tcp => "tcp",
            ForwardProto::Udp => "udp",
        }
    }
}

/// A port forward (DNAT): new flows to `public:public_port` go to `private:private_port`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// `"tcp"` or `"udp"`.
    pub proto: ForwardProto,
    /// The public address: one in `nat.addresses`, or an outside (or both) port's address.
    pub public: Parsed<Ipv4Addr>,
    /// The public port, or a range (`"8000-8099"`), which maps onto a range of equal length.
    pub public_port: Parsed<PortRange>,
    /// The inside host: in the private prefixes.
    pub private: Parsed<Ipv4Addr>,
    /// The inside port (the first of the range); default: the public port.
    #[serde(default)]
    pub private_port: Option<u16>,
    /// Free text.
    #[serde(default)]
    pub comment: String,
}

/// A 1:1 address mapping (static NAT): every port and protocol of `public` goes to
/// `private`, and `private`'s own egress flows leave as `public` with their ports kept.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The public address, not in the SNAT pool.
    pub public: Parsed<Ipv4Addr>,
    /// The inside host.
    pub private: Parsed<Ipv4Addr>,
    /// Free text.
    #[serde(default)]
    pub comment: String,
}

/// `[ingress]`: unsolicited new flows from outside.
///
/// Such a flow has somewhere to go only through a port forward or a static mapping; a packet
/// that reaches neither is always dropped (`no_forward`), whatever `default` says. The
/// rules and `default` then decide which outside sources may use the forwards: they are
/// matched against the packet as the outside host sent it (destination = the public address
/// and port, before DNAT).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// The action for a flow that reaches a forward or static mapping and matches no rule.
    /// `deny` (default): a forward is usable only by sources an `allow` rule names.
    /// `allow`: every forward is open to every source unless a rule denies it.
    pub default: Action,
    /// Port forwards (`[[ingress.forward]]`).
    pub forward: Vec<ForwardConfig>,
    /// 1:1 address mappings (`[[ingress.static]]`).
    #[serde(rename = "static")]
    pub statics: Vec<StaticConfig>,
    /// Ordered rules (`[[ingress.rule]]`).
    pub rule: Vec<RuleConfig>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            default: Action::Deny,
            forward: Vec::new(),
            statics: Vec::new(),
            rule: Vec::new(),
        }
    }
}

impl IngressConfig {
    /// The public addresses of the static mappings, in file order (those that are not valid
    /// addresses left out).
    pub fn static_publics(&self) -> Vec<Ipv4Addr> {
        self.statics
            .iter()
            .filter_map(|s| s.public.ok().copied())
            .collect()
    }
}

/// What the health probe answers: a TCP handshake, or an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProbeProtocol {
    /// A SYN is answered with a SYN-ACK (a reset while draining), anything after it with a
    /// reset: the TCP check of Azure's load balancer and of AWS target groups.
    #[default]
    Tcp,
    /// A `GET` (or `HEAD`) of `path` is answered `200 OK` while the appliance takes new
    /// flows and `503 Service Unavailable` while it drains; other paths 404, other methods
    /// 405.
    Http,
}

impl ProbeProtocol {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            ProbeProtocol::Tcp => "tcp",
            ProbeProtocol::Http => "http",
        }
    }
}

impl FromConfigText for ProbeProtocol {
    fn from_config_text(text: &str) -> Result<Self, String> {
        match text {
            "tcp" => Ok(ProbeProtocol::Tcp),
            "http" => Ok(ProbeProtocol::Http),
            _ => Err("must be \"tcp\" or \"http\"".into()),
        }
    }
}

/// A health probe the appliance answers itself, from its data path (a cloud load balancer's
/// liveness check of a port address: no kernel stack owns a DPDK port).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthProbeConfig {
    /// TCP port on the appliance's port addresses.
    pub port: u16,
    /// `"tcp"` (default) or `"http"`.
    #[serde(default = "tcp_probe")]
    pub protocol: Parsed<ProbeProtocol>,
    /// The path an HTTP probe asks for (`"/healthz"`); `"/"` by default. Only with
    /// `protocol = "http"`.
    #[serde(default)]
    pub path: Option<String>,
    /// Who may probe (e.g. Azure's `168.63.129.16/32`); empty: anyone.
    #[serde(default)]
    pub sources: Vec<Parsed<Prefix>>,
    /// Seconds the appliance drains before it stops on SIGTERM or SIGINT: the probe fails
    /// (503, or a reset for a TCP probe) while traffic still flows, so that the load balancer
    /// moves new flows away first. 0 (default): stop at once. A second signal stops at once.
    #[serde(default)]
    pub drain_on_stop: u32,
}

fn tcp_probe() -> Parsed<ProbeProtocol> {
    Parsed::new("tcp")
}

/// The path of an HTTP probe when the file gives none (as AWS and Azure default to).
pub const DEFAULT_PROBE_PATH: &str = "/";

impl HealthProbeConfig {
    /// The protocol (TCP when the file's value is invalid: validation reports it).
    pub fn protocol(&self) -> ProbeProtocol {
        self.protocol.ok().copied().unwrap_or_default()
    }

    /// The path an HTTP probe answers.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_PROBE_PATH)
    }
}

/// `[local]`: services the appliance offers on its own addresses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Answer ICMP echo requests to the appliance's port addresses (RFC 1122 3.2.2.6).
    pub icmp_echo: bool,
    /// Answer a health probe (TCP or HTTP).
    pub health_probe: Option<HealthProbeConfig>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            icmp_echo: true,
            health_probe: None,
        }
    }
}

//! The configuration file: one TOML document (serde, unknown fields rejected).
//!
//! This module is the whole file: its shape (here and in `sections`: `[nat]`, `[egress]`,
//! `[ingress]`, `[local]`), the values written as text ([`value`]) and every check the file
//! alone allows ([`validate`]), each naming its field. It imports nothing above the packet
//! and flow vocabulary; [`crate::policy`] compiles a checked file into the immutable snapshot
//! the workers read.
//!
//! ```toml
//! [eal]
//! lcores = "0-1"          # first lcore = main (control), the others run workers
//! huge_pages = true       # false: EAL --no-huge (slower, for tests and small VMs)
//! memory_mb = 256
//!
//! [dataplane]
//! burst = 32
//! mbufs = 8191
//!
//! [[port]]
//! name = "lan"
//! role = "inside"
//! device = "net_af_packet0,iface=veth-lan"   # a DPDK vdev, or a PCI address
//!
//! [[port]]
//! name = "wan"
//! role = "outside"
//! device = "0000:00:05.0"
//! ```
//!
//! A port of role `gwlb` sits behind a cloud's gateway load balancer instead, with the
//! balancer's `tunnel` ([`TunnelConfig`]).

mod control;
mod error;
mod lcores;
mod sections;
mod tunnel;
pub mod validate;
pub mod value;

pub use control::{ControlConfig, DEFAULT_SOCKET};
pub use error::{ConfigError, FieldError};
pub use lcores::{allowed_cpus, parse_lcores};
pub use sections::{
    Action, EgressConfig, Filtering, ForwardConfig, ForwardProto, HealthProbeConfig, IngressConfig,
    LocalConfig, Mapping, NatConfig, Neighbour, OnReload, Pooling, ProbeProtocol, RuleConfig,
    StaticConfig, DEFAULT_MAX_SESSIONS, DEFAULT_PROBE_PATH,
};
pub use tunnel::{TunnelConfig, VxlanTunnel};
pub use value::{FromConfigText, Parsed, PortRange, Prefix, Proto};

use ipnet::Ipv4Net;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::Path;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DPDK Environment Abstraction Layer options.
    #[serde(default)]
    pub eal: EalConfig,
    /// Worker loop and buffer sizing.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// The ports, in the order DPDK probes them. At least one.
    #[serde(default)]
    pub port: Vec<PortConfig>,
    /// The private network's prefixes: in one-arm mode and behind AWS's GENEVE they give a
    /// packet its role. Default: the RFC 1918 ranges when a `both` or `gwlb` port exists,
    /// else the inside ports' subnets.
    #[serde(default)]
    pub private_prefixes: Vec<Parsed<Prefix>>,
    /// Source NAT and NAT behaviour ([`crate::policy`]).
    #[serde(default)]
    pub nat: NatConfig,
    /// Egress filtering.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Ingress: port forwards, static mappings, and who may use them.
    #[serde(default)]
    pub ingress: IngressConfig,
    /// Services on the appliance's own addresses.
    #[serde(default)]
    pub local: LocalConfig,
    /// The control socket, the Prometheus endpoint, file watching.
    #[serde(default)]
    pub control: ControlConfig,
}

/// EAL options. Everything here becomes an EAL command-line argument.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// The lcore set, in EAL `--lcores` syntax (`"0-3"`, `"0,2"`, `"0@0,1@1,2@1"`). The first
    /// lcore is the main one and runs the control thread; every other one runs a worker.
    /// `"auto"`: control on the first CPU the process may use, a worker on each other one, so
    /// one file fits every machine size (a VM image's default).
    pub lcores: String,
    /// Back packet memory with huge pages. `false` passes `--no-huge`: it works everywhere but
    /// costs about a third of the throughput (TLB misses), so use it for tests only.
    pub huge_pages: bool,
    /// Memory EAL reserves at start, in MiB (`-m`).
    pub memory_mb: u32,
    /// Prefix of EAL's runtime files; two DPDK processes on one machine need different ones.
    pub file_prefix: String,
    /// Keep DPDK's telemetry socket (off by default: it is one more file under /run).
    pub telemetry: bool,
    /// Log level for DPDK's own messages (`--log-level`), e.g. `"notice"` or `"debug"`.
    pub log_level: String,
    /// Extra EAL arguments, appended verbatim, for what this file has no field for.
    pub extra_args: Vec<String>,
}

impl EalConfig {
    /// Whether `lcores` is `"auto"`.
    pub fn is_auto(&self) -> bool {
        self.lcores.trim() == lcores::AUTO
    }

    /// The `--lcores` argument for a process that may run on `cpus`: `"auto"` fitted to them,
    /// anything else as written.
    pub fn lcores_for(&self, cpus: &[u32]) -> String {
        if self.is_auto() {
            lcores::auto_lcores(cpus)
        } else {
            self.lcores.trim().to_string()
        }
    }
}

impl Default for EalConfig {
    fn default() -> Self {
        Self {
            lcores: "0-1".into(),
            huge_pages: true,
            memory_mb: 256,
            file_prefix: "appliance".into(),
            telemetry: false,
            log_level: "notice".into(),
            extra_args: Vec::new(),
        }
    }
}

/// How the worker loop runs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// Number of workers; default: one per worker lcore. Fewer leaves lcores idle.
    pub workers: Option<u16>,
    /// Packets per rx/tx burst.
    pub burst: u16,
    /// Packet buffers in the pool (shared by all ports); `2^n - 1` is the most efficient size.
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    pub mbuf_cache: u32,
    /// Receive descriptors per queue.
    pub rx_descriptors: u16,
    /// Transmit descriptors per queue.
    pub tx_descriptors: u16,
}

/// The largest burst the worker loop supports: its burst arrays have this fixed size.
pub const MAX_BURST: u16 = 256;

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            workers: None,
            burst: 32,
            mbufs: 16383,
            mbuf_cache: 256,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
        }
    }
}

/// The side of the network a port faces.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The private network.
    Inside,
    /// Towards the internet.
    Outside,
    /// One-arm deployment: one port carries both; a packet's role comes from the configured
    /// private prefixes.
    Both,
    /// Behind a cloud's gateway load balancer: the port receives packets in the balancer's
    /// tunnel (its `tunnel`), filters them as a transparent stateful firewall (no NAT) and
    /// returns them in the tunnel. A packet's side comes from the tunnel (Azure's VXLAN) or
    /// from the private prefixes (AWS's GENEVE).
    Gwlb,
}

impl Role {
    /// The name used in the file and in counters.
    pub fn name(self) -> &'static str {
        match self {
            Role::Inside => "inside",
            Role::Outside => "outside",
            Role::Both => "both",
            Role::Gwlb => "gwlb",
        }
    }
}

/// One DPDK port.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// A short name for logs, counters and the CLI.
    pub name: String,
    /// Which side it faces.
    pub role: Role,
    /// A DPDK virtual device with its arguments (`net_af_packet0,iface=eth1`,
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `virtio_user0,path=/tmp/sock`), or a PCI
    /// address optionally followed by device arguments (`0000:00:04.0`).
    pub device: String,
    /// Rx/tx queue pairs; default: one per worker. Rx queue `q` is polled by worker
    /// `q % workers`; every worker has its own tx queue, so a port needs at least as many tx
    /// queues as there are workers.
    #[serde(default)]
    pub queues: Option<u16>,
    /// MTU to set; default: leave the device's.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Receive frames for any MAC address.
    #[serde(default)]
    pub promiscuous: bool,
    /// The port's own address with its subnet's prefix length (`"10.0.1.1/24"`).
    #[serde(default)]
    pub address: Option<Parsed<Ipv4Net>>,
    /// Next hop for destinations off the port's subnet.
    #[serde(default)]
    pub gateway: Option<Parsed<Ipv4Addr>>,
    /// Static ARP entries (`[[port.neighbours]]` or `neighbours = [{ ip, mac }]`).
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
    /// The load balancer's tunnel, on a `gwlb` port (and only there).
    #[serde(default)]
    pub tunnel: Option<TunnelConfig>,
}

/// How a port's device is handed to EAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device<'a> {
    /// `--vdev <spec>`; the port's DPDK name is the part before the first comma.
    Virtual { name: &'a str, spec: &'a str },
    /// `-a <spec>`; the port's DPDK name is the PCI address.
    Pci { address: &'a str, spec: &'a str },
}

impl PortConfig {
    /// Classifies `device` as a PCI address (`DDDD:BB:DD.F` or `BB:DD.F`) or a virtual device.
    pub fn device(&self) -> Device<'_> {
        let spec = self.device.trim();
        let name = spec.split(',').next().unwrap_or(spec);
        if is_pci_address(name) {
            Device::Pci {
                address: name,
                spec,
            }
        } else {
            Device::Virtual { name, spec }
        }
    }
}

fn is_pci_address(s: &str) -> bool {
    // Domain is optional: 0000:00:04.0 or 00:04.0.
    let parts: Vec<&str> = s.split(':').collect();
    let (bus, devfn) = match parts.as_slice() {
        [domain, bus, devfn] if domain.len() == 4 && is_hex(domain) => (bus, devfn),
        [bus, devfn] => (bus, devfn),
        _ => return false,
    };
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    bus.len() == 2
        && is_hex(bus)
        && dev.len() == 2
        && is_hex(dev)
        && func.len() == 1
        && func.chars().all(|c| ('0'..='7').contains(&c))
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

impl Config {
    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a configuration held in memory; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| 1 + text[..span.start.min(text.len())].matches('\n').count());
            // Quote the offending line: the parser's message alone often omits the key.
            let quoted = line
                .and_then(|l| text.lines().nth(l - 1))
                .map(|l| format!(" (at `{}`)", l.trim()))
                .unwrap_or_default();
            ConfigError::Syntax {
                origin: origin.to_string(),
                line,
                message: format!("{}{quoted}", e.message().trim_end()),
            }
        })?;
        config.validate().map_err(|errors| ConfigError::Invalid {
            origin: origin.to_string(),
            errors,
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: every problem found, not just the first.
    pub fn validate(&self) -> Result<(), Vec<error::FieldError>> {
        use error::FieldError as E;
        let mut errors = Vec::new();
        match parse_lcores(&self.eal.lcores) {
            // Fitted to the machine at start; `check_cpus` judges it against the machine.
            _ if self.eal.is_auto() => {}
            Err(why) => errors.push(E::new(
                "eal.lcores",
                &self.eal.lcores,
                format!("is not EAL --lcores syntax ({why}); e.g. \"0-1\" or \"0@0,1@1,2@1\""),
            )),
            Ok(ids) if ids.len() < 2 => errors.push(E::new(
                "eal.lcores",
                &self.eal.lcores,
                "must name at least two lcores: the first runs control, the others workers",
            )),
            Ok(ids) => {
                if let Some(w) = self.dataplane.workers {
                    if usize::from(w) > ids.len() - 1 {
                        errors.push(E::new(
                            "dataplane.workers",
                            w,
                            format!(
                                "eal.lcores = {:?} gives only {} worker lcore(s)",
                                self.eal.lcores,
                                ids.len() - 1
                            ),
                        ));
                    }
                }
            }
        }
        if self.eal.memory_mb < 64 {
            errors.push(E::new(
                "eal.memory_mb",
                self.eal.memory_mb,
                "must be at least 64",
            ));
        }
        if self.eal.file_prefix.is_empty()
            || !self
                .eal
                .file_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(E::new(
                "eal.file_prefix",
                &self.eal.file_prefix,
                "must be non-empty letters, digits, '-' or '_'",
            ));
        }
        let d = &self.dataplane;
        if d.workers == Some(0) {
            errors.push(E::new("dataplane.workers", 0, "must be at least 1"));
        }
        if d.burst == 0 || d.burst > MAX_BURST {
            errors.push(E::new(
                "dataplane.burst",
                d.burst,
                format!("must be between 1 and {MAX_BURST}"),
            ));
        }
        if d.mbufs < 1024 {
            errors.push(E::new("dataplane.mbufs", d.mbufs, "must be at least 1024"));
        }
        if d.mbuf_cache > 512 || d.mbuf_cache > d.mbufs / 4 {
            errors.push(E::new(
                "dataplane.mbuf_cache",
                d.mbuf_cache,
                "must be at most 512 and at most a quarter of dataplane.mbufs",
            ));
        }
        for (field, v) in [
            ("dataplane.rx_descriptors", d.rx_descriptors),
            ("dataplane.tx_descriptors", d.tx_descriptors),
        ] {
            if !(64..=16384).contains(&v) || !v.is_power_of_two() {
                errors.push(E::new(
                    field,
                    v,
                    "must be a power of two between 64 and 16384",
                ));
            }
        }
        if self.port.is_empty() {
            errors.push(E::new("port", "[]", "at least one [[port]] is needed"));
        }
        for (i, p) in self.port.iter().enumerate() {
            let at = |f: &str| format!("port[{i}].{f}");
            if p.name.is_empty()
                || p.name.len() > 32
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                errors.push(E::new(
                    at("name"),
                    &p.name,
                    "must be 1-32 letters, digits, '-' or '_'",
                ));
            }
            if self.port[..i].iter().any(|q| q.name == p.name) {
                errors.push(E::new(at("name"), &p.name, "is used by an earlier port"));
            }
            if p.device.trim().is_empty() {
                errors.push(E::new(at("device"), "", "must name a DPDK device"));
            } else if self.port[..i]
                .iter()
                .any(|q| device_name(q) == device_name(p))
            {
                errors.push(E::new(
                    at("device"),
                    &p.device,
                    "is the same device as an earlier port",
                ));
            }
            if p.queues == Some(0) {
                errors.push(E::new(at("queues"), 0, "must be at least 1"));
            }
            if let Some(mtu) = p.mtu {
                if !(68..=9600).contains(&mtu) {
                    errors.push(E::new(at("mtu"), mtu, "must be between 68 and 9600"));
                }
            }
        }
        let has = |r: Role| self.port.iter().any(|p| p.role == r);
        if has(Role::Inside) != has(Role::Outside) {
            errors.push(E::new(
                "port.role",
                if has(Role::Inside) {
                    "inside"
                } else {
                    "outside"
                },
                "an inside port needs an outside port and the reverse (or use role = \"both\")",
            ));
        }
        crate::config::validate::check(self, &mut errors);
        tunnel::check(self, &mut errors);
        control::check(&self.control, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Number of workers this configuration runs on this machine: `dataplane.workers`, or one
    /// per worker lcore.
    pub fn workers(&self) -> usize {
        let lcores = self.eal.lcores_for(&allowed_cpus().unwrap_or_default());
        let lcores = parse_lcores(&lcores).map_or(2, |v| v.len());
        self.dataplane
            .workers
            .map_or(lcores.saturating_sub(1).max(1), usize::from)
    }

    /// Checks the lcores against the CPUs this process may run on and returns those CPUs.
    /// `check` and `run` both ask, so a file naming CPUs the machine lacks is refused with
    /// their names before EAL sees it (EAL's own answer is its whole usage text).
    pub fn check_machine(&self) -> Result<Vec<u32>, FieldError> {
        let cpus = allowed_cpus().map_err(|why| {
            FieldError::new(
                "eal.lcores",
                &self.eal.lcores,
                format!("cannot tell which CPUs this process may use: {why}"),
            )
        })?;
        self.check_cpus(&cpus)?;
        Ok(cpus)
    }

    /// [`Config::check_machine`] for a process that may run on `cpus`: every CPU the lcores
    /// name must be one of them, and `dataplane.workers` must fit what `"auto"` gives.
    pub fn check_cpus(&self, cpus: &[u32]) -> Result<(), FieldError> {
        let spec = self.eal.lcores_for(cpus);
        let Ok(set) = lcores::parse_lcore_set(&spec) else {
            return Ok(()); // a syntax error: `validate` reports it
        };
        let missing: Vec<u32> = set
            .cpus
            .iter()
            .copied()
            .filter(|c| !cpus.contains(c))
            .collect();
        if !missing.is_empty() {
            return Err(FieldError::new(
                "eal.lcores",
                &self.eal.lcores,
                format!(
                    "names CPU {} but this process may run only on CPU {}: name only those, \
                     or use lcores = \"auto\"",
                    lcores::cpu_list(&missing),
                    lcores::cpu_list(cpus)
                ),
            ));
        }
        let available = set.lcores.len().saturating_sub(1);
        match self.dataplane.workers {
            Some(w) if self.eal.is_auto() && usize::from(w) > available => Err(FieldError::new(
                "dataplane.workers",
                w,
                format!(
                    "eal.lcores = \"auto\" gives {available} worker lcore(s) on CPU {}",
                    lcores::cpu_list(cpus)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Index of the port a plain L2 forwarder sends a port's traffic to: the first port of the
    /// opposite role; a `both` or `gwlb` port sends back out of itself.
    pub fn peer_port(&self, index: usize) -> Option<usize> {
        let role = self.port.get(index)?.role;
        let wanted = match role {
            Role::Inside => Role::Outside,
            Role::Outside => Role::Inside,
            Role::Both | Role::Gwlb => return Some(index),
        };
        self.port.iter().position(|p| p.role == wanted)
    }
}

fn device_name(p: &PortConfig) -> &str {
    match p.device() {
        Device::Virtual { name, .. } => name,
        Device::Pci { address, .. } => address,
    }
}

#[cfg(test)]
mod tests;

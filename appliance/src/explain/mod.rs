//! `appliance explain`: what the appliance would do with one packet, without a running
//! appliance.
//!
//! The answer comes from the real pipeline, so it cannot drift from it: the policy is
//! compiled, a one-worker [`Shard`] is created with a small table and a [`Recorder`] as its
//! tracer, the packet the flow expression ([`Flow`]) describes is built with the packet
//! layer's `Repr`s and processed, and what comes out is read back: the pipeline's
//! [`Disposition`], the frame as it leaves, the counters, the session created, and what the
//! pipeline told the recorder as it decided (the [`Class`], the rule that decided, the port
//! forward, static mapping or SNAT pool address used). Only the naming is done here.
//!
//! Two things differ from a running appliance, and the output says so: the shard starts
//! with no sessions (a packet is judged as the first of its flow; `--reply` then sends the
//! answer through the same shard), and every next hop's MAC is known (static entries from
//! the configuration, made-up ones for the rest) so that forwarding is never held up by ARP.

pub mod expr;
pub mod frame;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use crate::pipeline::Class;
pub use expr::{Encapsulation, Flow, ParseError, Transport};
pub use frame::{PacketView, TunnelView};

use crate::config::{Action, Config, Role};
use crate::flow::HashSeed;
use crate::packet::{EthernetAddress, TcpFlags};
use crate::pipeline::{
    Disposition, Env, Health, Neighbours, Reason, Rules, SessionFilter, SessionInfo, Shard,
    ShardConfig, ShardCounters, Trace, Translation, VecBuf,
};
use crate::policy::{Decision, Policy, Tunnel};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Sessions the explaining shard holds: a handful are used, and a small table is quick to
/// allocate.
pub const CAPACITY: u32 = 4096;
/// The clock (seconds) of the first packet; a reply comes one second later.
pub const NOW: u32 = 1000;
/// The flow table's hash seed: fixed, so that the same question gets the same answer.
const SEED: HashSeed = HashSeed::fixed(0x6578_706c, 0x6169_6e21, 0x006e_7661);

/// Why a flow could not be explained (besides a bad expression or configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// `on PORT` names no port of the configuration.
    #[error("no port is named {name:?}: the ports are {known}")]
    UnknownPort {
        /// The name given.
        name: String,
        /// The configured names.
        known: String,
    },
    /// No port has the role the source address calls for.
    #[error("no {role} port receives a packet from {src}: name the port with `on PORT`")]
    NoPort {
        /// `inside` or `outside`.
        role: &'static str,
        /// The source address.
        src: Ipv4Addr,
    },
    /// The port is past the 256 the pipeline numbers.
    #[error("port {name:?} is past the 256th: the pipeline numbers ports 0-255")]
    PortBeyond255 {
        /// Its name.
        name: String,
    },
    /// The NAT port range cannot make a worker's slice.
    #[error("nat.port_range is too small for a worker's slice")]
    NoSlice,
    /// The packet layer refused to build the packet.
    #[error("cannot build the packet: {0}")]
    Build(crate::packet::Error),
}

/// What happens to the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Sent on, out of `port`.
    Forward,
    /// The appliance answered it itself (echo reply, health probe, ICMP time exceeded), out
    /// of `port`.
    Answer,
    /// Dropped, for `reason`.
    Drop,
    /// Used up without a reply (ARP news).
    Consume,
    /// Handed to another worker (never with the one worker `explain` runs).
    Handoff,
}

/// The pipeline's decision, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// What happens.
    pub action: Handling,
    /// The port it leaves by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The drop reason (counter name); for an answer, the reason the original was dropped
    /// (`ttl_expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Where a forwarded packet goes next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextHopView {
    /// The address whose MAC the frame is sent to.
    pub ip: Ipv4Addr,
    /// Out of this port.
    pub port: String,
    /// `on-link` (the destination itself) or `gateway`.
    pub via: &'static str,
    /// Its MAC.
    pub mac: String,
    /// `static` (from the configuration) or `assumed` (made up: a running appliance would
    /// resolve it with ARP first).
    pub mac_from: &'static str,
}

/// The outcome of one packet.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The port it arrives on.
    pub port: String,
    /// The outer headers, when it arrives in a load balancer's tunnel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelView>,
    /// The packet as it arrives (in a tunnel, the inner packet).
    pub packet: PacketView,
    /// What the appliance takes it for.
    pub class: Class,
    /// What happens to it.
    pub verdict: Verdict,
    /// The packet as it leaves (translated, or the appliance's answer; back in a tunnel,
    /// the inner packet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PacketView>,
    /// The outer headers it leaves with, back in the load balancer's tunnel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tunnel: Option<TunnelView>,
    /// Where it goes next (forwarded packets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<NextHopView>,
    /// Whether it created a session.
    pub session_created: bool,
    /// The session it created or used, as `appliance sessions` shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
    /// Its idle timeout, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Every drop reason the pipeline counted for it (for an answer, the original's).
    pub counted: Vec<&'static str>,
    /// The pipeline's action, unnamed.
    #[serde(skip)]
    pub action: Disposition,
    /// The frame after processing (rewritten, or the answer; unchanged if dropped).
    #[serde(skip)]
    pub frame: Vec<u8>,
}

/// The rule that decides a new flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    /// `egress` or `ingress`.
    pub set: &'static str,
    /// The rule's index in the file (`None`: no rule matched, the default decided).
    pub index: Option<usize>,
    /// `allow` or `deny`.
    pub action: &'static str,
    /// The rule's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl RuleMatch {
    /// The rule's place in the file: `egress.rule[2]`, or `egress.default`.
    pub fn path(&self) -> String {
        match self.index {
            Some(i) => format!("{}.rule[{i}]", self.set),
            None => format!("{}.default", self.set),
        }
    }
}

/// A translation the packet gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NatView {
    /// Source NAT to a pool address.
    Snat {
        /// The pool address.
        address: Ipv4Addr,
        /// The public port (ICMP: echo identifier).
        port: u16,
        /// Whether the inside port was kept.
        port_kept: bool,
        /// `endpoint-independent` or `endpoint-dependent`.
        mapping: &'static str,
        /// Who may then send to the mapping.
        filtering: &'static str,
    },
    /// A port forward (DNAT), `[[ingress.forward]]` number `index`.
    Forward {
        /// Its index in the file.
        index: usize,
        /// `tcp` or `udp`.
        proto: String,
        /// Public address.
        public: Ipv4Addr,
        /// Public port.
        public_port: u16,
        /// Inside address.
        private: Ipv4Addr,
        /// Inside port.
        private_port: u16,
        /// Its comment.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A static 1:1 mapping, `[[ingress.static]]` number `index`.
    Static {
        /// Its index in the file.
        index: usize,
        /// Public address.
        public: Ipv4Addr,
        /// Inside address.
        private: Ipv4Addr,
        /// Its comment.
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

/// Everything `explain` found out about a packet.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The flow, in canonical form.
    pub flow: String,
    /// Why it arrives on the port it does.
    pub port_choice: String,
    /// The packet's outcome.
    #[serde(flatten)]
    pub step: Step,
    /// The rule that decides it (new flows that reach a rule set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleMatch>,
    /// Translations: a port forward or static mapping, and source NAT.
    pub nat: Vec<NatView>,
    /// With `--reply`: what the answer to the packet as it left becomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Step>,
    /// What differs from a running appliance, and other remarks.
    pub notes: Vec<String>,
}

/// What `explain` is asked besides the flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Also send the reply to the packet as it left through the same shard.
    pub reply: bool,
}

/// The MAC `explain` gives port `index`.
pub fn port_mac(index: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x4e, 0x56, 0x41, 0, index as u8])
}

/// The MAC `explain` assumes for a host it has no static entry for: locally administered,
/// with the address in it.
pub fn host_mac(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x02, 0x00, o[0], o[1], o[2], o[3]])
}

fn mac_text(m: EthernetAddress) -> String {
    let b = m.0;
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// Which port the flow arrives on, and why.
///
/// `on PORT` names it; otherwise a source in the private prefixes arrives on the first inside
/// port, any other on the first outside port, and either on a `both` port if there is none.
pub fn arrival_port(policy: &Policy, flow: &Flow) -> Result<(u8, String), ExplainError> {
    let index = |i: usize| {
        u8::try_from(i).map_err(|_| ExplainError::PortBeyond255 {
            name: policy.ports[i].name.clone(),
        })
    };
    if let Some(name) = &flow.port {
        return match policy.ports.iter().position(|p| &p.name == name) {
            Some(i) => Ok((index(i)?, "given".into())),
            None => Err(ExplainError::UnknownPort {
                name: name.clone(),
                known: policy
                    .ports
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        };
    }
    let private = policy.is_private(flow.src);
    let (role, label, why) = if private {
        (Role::Inside, "inside", "is in the private prefixes")
    } else {
        (Role::Outside, "outside", "is not in the private prefixes")
    };
    let first = |r: Role| policy.ports.iter().position(|p| p.role == r);
    let found = first(role)
        .map(|i| (i, label))
        .or_else(|| first(Role::Both).map(|i| (i, "one-arm")))
        .or_else(|| first(Role::Gwlb).map(|i| (i, "gwlb")));
    match found {
        Some((i, "gwlb")) => Ok((
            index(i)?,
            "the first gwlb port: a gwlb appliance has ports of no other role".into(),
        )),
        Some((i, kind)) => Ok((
            index(i)?,
            format!("the first {kind} port: {} {why}", flow.src),
        )),
        None => Err(ExplainError::NoPort {
            role: label,
            src: flow.src,
        }),
    }
}

/// The neighbour table `explain` runs with: the configuration's static entries, and a made-up
/// MAC for the next hop of every address the flow, its reply or a translation can lead to.
pub fn neighbours(config: &Config, policy: &Policy, flow: &Flow) -> Neighbours {
    let mut candidates: Vec<Ipv4Addr> = vec![flow.src, flow.dst];
    candidates.extend(policy.ports.iter().filter_map(|p| p.gateway));
    for (proto, addr, port) in policy.forwards.public_ports() {
        if let Some(f) = policy.forwards.lookup(proto, addr, port) {
            candidates.push(*f.private.ip());
        }
    }
    candidates.extend(
        config
            .ingress
            .statics
            .iter()
            .filter_map(|s| s.private.ok().copied()),
    );
    let mut entries: Vec<((u8, Ipv4Addr), EthernetAddress)> = Vec::new();
    for (i, p) in policy.ports.iter().enumerate() {
        let Ok(port) = u8::try_from(i) else { continue };
        for n in &p.neighbours {
            entries.push(((port, n.ip), EthernetAddress(n.mac.0)));
        }
    }
    for ip in candidates {
        let Some(hop) = policy.next_hop(ip) else {
            continue;
        };
        let Ok(port) = u8::try_from(hop.port) else {
            continue;
        };
        if !entries.iter().any(|(k, _)| *k == (port, hop.ip)) {
            entries.push(((port, hop.ip), host_mac(hop.ip)));
        }
    }
    Neighbours::with(1, entries)
}

/// What the pipeline told `explain` about one packet: the class it took it for, the rule
/// set's decision about a new flow, the translations a new session got. Told as the pipeline
/// decides ([`Trace`]), never worked out again here.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// The class; a local answer overrides what the packet looked like before, and nothing
    /// overrides invalid.
    pub class: Option<Class>,
    /// The rule set that decided a new flow, and how.
    pub rule: Option<(Rules, Decision)>,
    /// The translations of the session the packet created, in the order decided.
    pub translations: Vec<Translation>,
}

impl Trace for Recorder {
    fn class(&mut self, class: Class) {
        self.class = Some(match (self.class, class) {
            (Some(Class::Invalid), _) => Class::Invalid,
            (Some(Class::Local), c) if c != Class::Invalid => Class::Local,
            (_, c) => c,
        });
    }

    fn rule(&mut self, rules: Rules, decision: Decision) {
        self.rule = Some((rules, decision));
    }

    fn translation(&mut self, translation: Translation) {
        self.translations.push(translation);
    }
}

/// A shard set up for `explain`, with the environment it runs in.
struct Bench<'a> {
    policy: &'a Policy,
    shard: Shard<Recorder>,
    counters: Arc<ShardCounters>,
    neighbours: Neighbours,
    macs: Vec<EthernetAddress>,
}

/// What one `process` call did.
struct Outcome {
    action: Disposition,
    frame: Vec<u8>,
    created: bool,
    answered: bool,
    counted: Vec<Reason>,
    told: Recorder,
}

impl<'a> Bench<'a> {
    fn new(config: &Config, policy: &'a Policy, flow: &Flow) -> Result<Bench<'a>, ExplainError> {
        let mut c = ShardConfig::from_policy(policy, 0, 1, 0).ok_or(ExplainError::NoSlice)?;
        c.capacity = c.capacity.min(CAPACITY);
        c.seed = Some(SEED);
        let counters = Arc::new(ShardCounters::new(policy.snat.addresses.len()));
        Ok(Bench {
            policy,
            shard: Shard::with_trace(c, Arc::clone(&counters), Recorder::default()),
            counters,
            neighbours: neighbours(config, policy, flow),
            macs: (0..policy.ports.len()).map(port_mac).collect(),
        })
    }

    fn run(&mut self, now: u32, in_port: u8, frame: &[u8]) -> Outcome {
        let drops = |c: &ShardCounters| c.drops().map(|(_, n)| n).collect::<Vec<u64>>();
        let (created, local, before) = (
            self.counters.created(),
            self.counters.local_replies(),
            drops(&self.counters),
        );
        let env = Env {
            policy: self.policy,
            neighbours: &self.neighbours,
            macs: &self.macs,
            health: Health::Serving,
        };
        let mut bufs = [VecBuf::new(frame)];
        let mut out = [Disposition::Consumed];
        *self.shard.trace_mut() = Recorder::default();
        self.shard.process(&env, now, in_port, &mut bufs, &mut out);
        let told = std::mem::take(self.shard.trace_mut());
        let after = drops(&self.counters);
        let counted = self
            .counters
            .drops()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| a > b)
            .map(|((r, _), _)| r)
            .collect();
        let [buf] = bufs;
        Outcome {
            action: out[0],
            frame: crate::pipeline::PacketBuf::bytes(&buf).to_vec(),
            created: self.counters.created() > created,
            answered: self.counters.local_replies() > local,
            counted,
            told,
        }
    }

    fn port_name(&self, port: u8) -> String {
        self.policy
            .ports
            .get(usize::from(port))
            .map_or_else(|| format!("port {port}"), |p| p.name.clone())
    }

    /// Processes `flow`'s packet arriving on `in_port` and names the outcome, with what the
    /// pipeline told about it.
    fn step(
        &mut self,
        now: u32,
        in_port: u8,
        flow: &Flow,
    ) -> Result<(Step, Recorder), ExplainError> {
        let our_mac = self.macs[usize::from(in_port)];
        let tunnel = self.tunnel(in_port);
        let mut frame =
            frame::build(flow, host_mac(flow.src), our_mac).map_err(ExplainError::Build)?;
        if let Some((t, ends)) = tunnel {
            let how = arrival_tunnel(self.policy, &t, flow);
            frame = frame::encapsulate(&frame, &how, &t, &ends).map_err(ExplainError::Build)?;
        }
        let (arriving, packet) = self.views(in_port, &frame);
        let packet = packet.ok_or(ExplainError::Build(crate::packet::Error::EthernetTruncated))?;
        let o = self.run(now, in_port, &frame);
        let verdict = match o.action {
            Disposition::Forward(p) if o.answered => Verdict {
                action: Handling::Answer,
                port: Some(self.port_name(p)),
                reason: o.counted.first().map(|r| r.name()),
            },
            Disposition::Forward(p) => Verdict {
                action: Handling::Forward,
                port: Some(self.port_name(p)),
                reason: None,
            },
            Disposition::Drop(r) => Verdict {
                action: Handling::Drop,
                port: None,
                reason: Some(r.name()),
            },
            Disposition::Consumed => Verdict {
                action: Handling::Consume,
                port: None,
                reason: None,
            },
            Disposition::Handoff(_) => Verdict {
                action: Handling::Handoff,
                port: None,
                reason: None,
            },
        };
        let forwarded = matches!(o.action, Disposition::Forward(_));
        // Every packet gets a class on its way; a valid frame built here always does.
        let class = o.told.class.unwrap_or(Class::Invalid);
        let (output_tunnel, output) = if forwarded {
            self.views(in_port, &o.frame)
        } else {
            (None, None)
        };
        let next_hop = match (&output, o.action) {
            (Some(out), Disposition::Forward(p)) if !o.answered => self.next_hop_view(out.dst, p),
            _ => None,
        };
        let session = match &output {
            Some(out) if !o.answered => self.session_of(now, out),
            _ => None,
        };
        let t = self.policy.sessions.timeouts;
        let timeout_s = session.map(|s| t.of(s.class));
        let step = Step {
            port: self.port_name(in_port),
            tunnel: arriving,
            packet,
            class,
            verdict,
            output,
            output_tunnel,
            next_hop,
            session_created: o.created,
            session,
            timeout_s,
            counted: o.counted.iter().map(|r| r.name()).collect(),
            action: o.action,
            frame: o.frame,
        };
        Ok((step, o.told))
    }

    fn next_hop_view(&self, dst: Ipv4Addr, out_port: u8) -> Option<NextHopView> {
        let hop = self.policy.next_hop(dst)?;
        let port = u8::try_from(hop.port).ok()?;
        if port != out_port {
            return None;
        }
        let mac = self.neighbours.get(port, hop.ip)?;
        let from_config = self
            .policy
            .ports
            .get(hop.port)
            .is_some_and(|p| p.neighbours.iter().any(|n| n.ip == hop.ip));
        Some(NextHopView {
            ip: hop.ip,
            port: self.port_name(port),
            via: if hop.ip == dst { "on-link" } else { "gateway" },
            mac: mac_text(mac),
            mac_from: if from_config { "static" } else { "assumed" },
        })
    }

    /// The tunnel of port `port` and where its packets go between, if it is a `gwlb` port.
    fn tunnel(&self, port: u8) -> Option<(Tunnel, frame::Ends)> {
        let p = self.policy.ports.get(usize::from(port))?;
        let (t, net) = (p.tunnel?, p.address?);
        Some((
            t,
            frame::Ends {
                lb: load_balancer(p),
                lb_mac: host_mac(load_balancer(p)),
                port: net.addr(),
                port_mac: self.macs[usize::from(port)],
            },
        ))
    }

    /// What a frame on port `port` carries: on a `gwlb` port, a tunnel packet's outer
    /// headers and its inner packet; anywhere, a plain packet.
    fn views(&self, port: u8, frame: &[u8]) -> (Option<TunnelView>, Option<PacketView>) {
        match self
            .tunnel(port)
            .and_then(|(t, _)| TunnelView::of(frame, &t))
        {
            Some((outer, inner)) => (Some(outer), inner),
            None => (None, PacketView::of(frame)),
        }
    }

    /// The session a packet that left belongs to: the one whose endpoints it carries.
    fn session_of(&self, now: u32, out: &PacketView) -> Option<SessionInfo> {
        let mut all = Vec::new();
        self.shard
            .dump(now, &SessionFilter::default(), CAPACITY as usize, &mut all);
        let port = |p: Option<u16>, id: Option<u16>| p.or(id).unwrap_or(0);
        let (sp, dp) = (
            port(out.src_port, out.icmp_id),
            port(out.dst_port, out.icmp_id),
        );
        all.into_iter().find(|s| {
            let sides = [s.inside, s.outside, s.remote];
            let has = |a: Ipv4Addr, p: u16| {
                sides
                    .iter()
                    .any(|e| *e.ip() == a && (out.icmp_id.is_some() || e.port() == p))
            };
            has(out.src, sp) && has(out.dst, dp)
        })
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn mapping_name(m: crate::config::Mapping) -> &'static str {
    match m {
        crate::config::Mapping::EndpointIndependent => "endpoint-independent",
        crate::config::Mapping::EndpointDependent => "endpoint-dependent",
    }
}

fn filtering_name(f: crate::config::Filtering) -> &'static str {
    match f {
        crate::config::Filtering::EndpointIndependent => "endpoint-independent",
        crate::config::Filtering::AddressDependent => "address-dependent",
        crate::config::Filtering::AddressAndPortDependent => "address-and-port-dependent",
    }
}

fn static_view(config: &Config, public: Ipv4Addr, private: Ipv4Addr) -> NatView {
    let found = config
        .ingress
        .statics
        .iter()
        .position(|s| s.public.ok() == Some(&public));
    NatView::Static {
        index: found.unwrap_or(0),
        public,
        private,
        comment: found.and_then(|i| nonempty(&config.ingress.statics[i].comment)),
    }
}

/// The rule that decided, as the pipeline told it, with its comment from the file.
fn rule_match(config: &Config, rules: Rules, d: Decision) -> RuleMatch {
    let (set, configs) = match rules {
        Rules::Egress => ("egress", &config.egress.rule),
        Rules::Ingress => ("ingress", &config.ingress.rule),
    };
    RuleMatch {
        set,
        index: d.rule,
        action: match d.action {
            Action::Allow => "allow",
            Action::Deny => "deny",
        },
        comment: d
            .rule
            .and_then(|i| configs.get(i))
            .and_then(|r| nonempty(&r.comment)),
    }
}

/// How a translation the pipeline told shows, for `flow`.
fn nat_view(config: &Config, policy: &Policy, flow: &Flow, t: Translation) -> NatView {
    match t {
        Translation::Snat { public } => NatView::Snat {
            address: public.0,
            port: public.1,
            port_kept: public.1 == flow.transport.ports().0,
            mapping: mapping_name(policy.snat.mapping),
            filtering: filtering_name(policy.snat.filtering),
        },
        Translation::Forward(f) => NatView::Forward {
            index: f.index,
            proto: flow.transport.protocol().to_string(),
            public: flow.dst,
            public_port: flow.transport.ports().1,
            private: *f.private.ip(),
            private_port: f.private.port(),
            comment: config
                .ingress
                .forward
                .get(f.index)
                .and_then(|c| nonempty(&c.comment)),
        },
        Translation::Static { public, private } => static_view(config, public, private),
    }
}

/// The load balancer a `gwlb` port's tunnel comes from, as `explain` assumes it: the port's
/// gateway, or the first other address of its subnet.
fn load_balancer(p: &crate::policy::PortAddressing) -> Ipv4Addr {
    let Some(net) = p.address else {
        return Ipv4Addr::UNSPECIFIED;
    };
    p.gateway.unwrap_or_else(|| {
        let first = u32::from(net.network()) + 1;
        let ours = u32::from(net.addr());
        Ipv4Addr::from(if first == ours { first + 1 } else { first })
    })
}

/// How `flow` comes on a port of tunnel `t`: as it says, or the port's own tunnel (under
/// Azure's VXLAN, the internal one from a source in the private prefixes, else the external
/// one).
fn arrival_tunnel(policy: &Policy, t: &Tunnel, flow: &Flow) -> Encapsulation {
    match (&flow.tunnel, t) {
        (Encapsulation::Own, Tunnel::Geneve { .. }) => Encapsulation::Geneve {
            vni: 0,
            options: None,
        },
        (Encapsulation::Own, Tunnel::Vxlan { .. }) if policy.is_private(flow.src) => {
            Encapsulation::Internal
        }
        (Encapsulation::Own, Tunnel::Vxlan { .. }) => Encapsulation::External,
        (how, _) => how.clone(),
    }
}

/// The reply to the packet `out` as it left: addresses and ports swapped, a SYN answered by
/// a SYN-ACK, an echo request by an echo reply, in the tunnel the packet left in (`tunnel`).
/// `None` for what has no reply.
fn reply_flow(sent: &Flow, out: &PacketView, port: String, tunnel: Encapsulation) -> Option<Flow> {
    let transport = match sent.transport {
        Transport::Tcp { flags, .. } => Transport::Tcp {
            src_port: out.dst_port?,
            dst_port: out.src_port?,
            flags: if flags.syn() && !flags.ack() {
                TcpFlags::SYN | TcpFlags::ACK
            } else if flags.rst() {
                return None;
            } else {
                TcpFlags::ACK
            },
        },
        Transport::Udp { .. } => Transport::Udp {
            src_port: out.dst_port?,
            dst_port: out.src_port?,
        },
        Transport::Icmp { ty: 8, .. } => Transport::Icmp {
            ty: 0,
            code: 0,
            ident: out.icmp_id?,
        },
        Transport::Icmp { .. } => return None,
    };
    Some(Flow {
        src: out.dst,
        dst: out.src,
        transport,
        port: Some(port),
        ttl: expr::DEFAULT_TTL,
        tunnel,
    })
}

/// Explains `flow` under `config` (already checked) and its compiled `policy`.
///
/// # Errors
/// [`ExplainError`]: an unknown port name, no port for the source's role, a port range too
/// small, a packet that cannot be built.
pub fn explain(
    config: &Config,
    policy: &Policy,
    flow: &Flow,
    options: &Options,
) -> Result<Explanation, ExplainError> {
    let (in_port, port_choice) = arrival_port(policy, flow)?;
    let mut bench = Bench::new(config, policy, flow)?;
    let (step, told) = bench.step(NOW, in_port, flow)?;
    let mut notes = vec![
        "explain starts with no sessions: the packet is judged as the first of its flow"
            .to_string(),
    ];
    // The rule and the translations, as the pipeline told them.
    let rule = told.rule.map(|(rules, d)| rule_match(config, rules, d));
    let nat: Vec<NatView> = told
        .translations
        .iter()
        .map(|&t| nat_view(config, policy, flow, t))
        .collect();
    let by_rule = told
        .translations
        .iter()
        .any(|t| matches!(t, Translation::Forward(_) | Translation::Static { .. }));
    if step.class == Class::Ingress && !by_rule && step.tunnel.is_none() {
        notes.push(
            "no port forward or static mapping takes it: the ingress rules are not consulted"
                .into(),
        );
    }

    if let Some(t) = &step.tunnel {
        notes.push(format!(
            "in the {} tunnel of port {} from an assumed load balancer at {} (the port's \
             gateway, or its subnet's first address)",
            t.kind, step.port, t.src
        ));
    }
    let mut reply = None;
    if options.reply {
        let left = match (step.action, &step.output) {
            (Disposition::Forward(p), Some(out)) if step.verdict.action == Handling::Forward => {
                Some((p, out.clone()))
            }
            _ => None,
        };
        // The reply comes in the tunnel the packet left in.
        let back_in = match (&step.output_tunnel, bench.tunnel(in_port)) {
            (Some(v), Some((t, _))) => match v.encapsulation(&t) {
                Encapsulation::Geneve { vni, .. } => Encapsulation::Geneve {
                    vni,
                    options: match &flow.tunnel {
                        Encapsulation::Geneve { options, .. } => options.clone(),
                        _ => None,
                    },
                },
                other => other,
            },
            _ => Encapsulation::Own,
        };
        match left {
            Some((p, out)) => match reply_flow(flow, &out, bench.port_name(p), back_in) {
                Some(back) => reply = Some(bench.step(NOW + 1, p, &back)?.0),
                None => notes.push("no reply to show: this packet gets none".into()),
            },
            None if step.verdict.action == Handling::Answer => {
                notes.push("no reply to show: the appliance answered the packet itself".into())
            }
            None => notes.push("no reply to show: the packet is not sent on".into()),
        }
    }

    let mut assumed: Vec<String> = Vec::new();
    for h in step
        .next_hop
        .iter()
        .chain(reply.iter().flat_map(|r| r.next_hop.iter()))
    {
        let hop = format!("{} on {}", h.ip, h.port);
        if h.mac_from == "assumed" && !assumed.contains(&hop) {
            assumed.push(hop);
        }
    }
    if !assumed.is_empty() {
        notes.push(format!(
            "assumed next-hop MAC for {}: a running appliance resolves it with ARP first",
            assumed.join(", ")
        ));
    }
    Ok(Explanation {
        flow: flow.to_string(),
        port_choice,
        step,
        rule,
        nat,
        reply,
        notes,
    })
}

/// Label column width of the human output.
const LABEL: usize = 12;

fn line(out: &mut String, indent: &str, label: &str, text: impl std::fmt::Display) {
    let width = LABEL.saturating_sub(indent.len()).max(label.len() + 1);
    let _ = writeln!(out, "{indent}{label:<width$}{text}");
}

fn verdict_text(v: &Verdict) -> String {
    let port = v.port.as_deref().unwrap_or("?");
    match v.action {
        Handling::Forward => format!("forward out of {port}"),
        Handling::Answer => match v.reason {
            Some(r) => format!("answered by the appliance on {port} (the packet itself: {r})"),
            None => format!("answered by the appliance on {port}"),
        },
        Handling::Drop => format!("drop ({})", v.reason.unwrap_or("?")),
        Handling::Consume => "consumed (no reply)".into(),
        Handling::Handoff => "handed to another worker".into(),
    }
}

fn step_lines(out: &mut String, indent: &str, s: &Step) {
    line(
        out,
        indent,
        "class",
        format_args!("{}: {}", s.class.name(), s.class.meaning()),
    );
    let verdict = match (&s.output_tunnel, s.verdict.action) {
        (Some(_), Handling::Forward) => format!(
            "back into the tunnel, out of {}",
            s.verdict.port.as_deref().unwrap_or("?")
        ),
        _ => verdict_text(&s.verdict),
    };
    line(out, indent, "verdict", verdict);
    if let Some(o) = &s.output {
        line(out, indent, "leaves", o);
    }
    if let Some(t) = &s.output_tunnel {
        let same = s.tunnel.as_ref().is_some_and(|i| i.options == t.options);
        let options = if same && !t.options.is_empty() {
            " (options unchanged)"
        } else {
            ""
        };
        line(out, indent, "  in", format_args!("{t}{options}"));
    }
    if let Some(h) = &s.next_hop {
        line(
            out,
            indent,
            "next hop",
            format_args!(
                "{} ({}) on {}, MAC {} ({})",
                h.ip, h.via, h.port, h.mac, h.mac_from
            ),
        );
    }
    if let Some(x) = &s.session {
        let what = if s.session_created { "created" } else { "used" };
        let mut text = format!(
            "{what}: inside {}, outside {}, remote {}, {}, {}",
            x.inside,
            x.outside,
            x.remote,
            x.class.name(),
            x.state.name()
        );
        if let Some(t) = s.timeout_s {
            let _ = write!(text, ", idle timeout {t} s");
        }
        line(out, indent, "session", text);
    }
}

impl Explanation {
    /// The human form: a few aligned lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        line(&mut out, "", "flow", &self.flow);
        line(
            &mut out,
            "",
            "arrives",
            format_args!("on {} ({})", self.step.port, self.port_choice),
        );
        if let Some(t) = &self.step.tunnel {
            line(&mut out, "", "tunnel", t);
            line(&mut out, "", "inner", &self.step.packet);
        }
        let s = &self.step;
        line(
            &mut out,
            "",
            "class",
            format_args!("{}: {}", s.class.name(), s.class.meaning()),
        );
        if let Some(r) = &self.rule {
            let mut text = format!("{}: {}", r.path(), r.action);
            if let Some(c) = &r.comment {
                let _ = write!(text, " ({c:?})");
            }
            line(&mut out, "", "rule", text);
        }
        for n in &self.nat {
            line(&mut out, "", "nat", nat_text(n, &self.step.packet));
        }
        // The class line is already out; the rest of the step follows.
        let mut rest = String::new();
        step_lines(&mut rest, "", s);
        for l in rest.lines().skip(1) {
            out.push_str(l);
            out.push('\n');
        }
        if let Some(r) = &self.reply {
            line(
                &mut out,
                "",
                "reply",
                format_args!("{} on {}", r.packet, r.port),
            );
            step_lines(&mut out, "  ", r);
        }
        for n in &self.notes {
            line(&mut out, "", "note", n);
        }
        out
    }
}

fn nat_text(n: &NatView, packet: &PacketView) -> String {
    match n {
        NatView::Snat {
            address,
            port,
            port_kept,
            mapping,
            filtering,
        } => {
            let (what, kept) = if packet.icmp_id.is_some() {
                ("identifier", "identifier kept")
            } else {
                ("port", "port kept")
            };
            let how = if *port_kept {
                kept.to_string()
            } else {
                format!("{what} {port}")
            };
            format!(
                "source {} -> {address}:{port} (SNAT pool address, {how}; {mapping} mapping, \
                 {filtering} filtering)",
                packet.src_text()
            )
        }
        NatView::Forward {
            index,
            proto,
            public,
            public_port,
            private,
            private_port,
            comment,
        } => {
            let mut t = format!(
                "ingress.forward[{index}]: {proto} {public}:{public_port} -> \
                 {private}:{private_port}"
            );
            if let Some(c) = comment {
                let _ = write!(t, " ({c:?})");
            }
            t
        }
        NatView::Static {
            index,
            public,
            private,
            comment,
        } => {
            let mut t = format!("ingress.static[{index}]: {public} <-> {private} (1:1)");
            if let Some(c) = comment {
                let _ = write!(t, " ({c:?})");
            }
            t
        }
    }
}

//! What the data path tells the control thread: a plain-data [`Snapshot`] of every counter.
//!
//! The data path sums its per-worker relaxed-atomic counters into one of these whenever
//! [`super::DataplaneView::snapshot`] is called (about once a second for the Prometheus
//! endpoint, and for each `appliance stats`). Every count is a running total since start, so
//! a reader computes rates from two snapshots; nothing here is reset.
//!
//! The JSON form (`appliance stats --json`, the `stats` command of the control socket) is the
//! serde form of these types; [`Snapshot::drops`] becomes an object from reason to count.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::net::Ipv4Addr;

/// Every counter of the running appliance at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Seconds since the data path started.
    pub uptime_secs: f64,
    /// Generation of the policy in force. Filled in by [`super::Control`] (the data path may
    /// leave it 0).
    pub policy_generation: u64,
    /// Per port, in config order (the DPDK port order).
    pub ports: Vec<PortSnapshot>,
    /// Per worker, in worker order.
    pub workers: Vec<WorkerSnapshot>,
    /// Packets dropped, by reason, summed over workers. Reasons are snake_case names of the
    /// data path's drop counters (`"ipv4_bad_checksum"`, `"session_table_full"`,
    /// `"no_forward"`, `"policy_deny"`, `"handoff_congestion"`, ...), each listed once; a
    /// reason whose count is still 0 may be listed or left out.
    #[serde(serialize_with = "drops_as_object")]
    pub drops: Vec<(&'static str, u64)>,
    /// Live sessions by class, and sessions created since start.
    pub sessions: SessionCounts,
    /// NAT port usage.
    pub nat: NatSnapshot,
    /// Reloads since start. Filled in by [`super::Control`].
    pub reloads: ReloadCounts,
    /// Whether the appliance drains (`appliance drain`, or a stop with
    /// `local.health_probe.drain_on_stop`): its health probe fails, traffic still flows.
    /// Filled in by [`super::Control`].
    pub draining: bool,
    /// Per `gwlb` port, what its load balancer's tunnel carried (none on other ports).
    pub tunnels: Vec<TunnelSnapshot>,
}

/// What the tunnel of one `gwlb` port carried, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TunnelSnapshot {
    /// The port's name (`port[i].name`).
    pub port: String,
    /// `"geneve"` or `"vxlan"`.
    pub kind: &'static str,
    /// Tunnel packets taken apart (their inner packet judged).
    pub decapsulated_packets: u64,
    /// Their bytes, whole frames as received.
    pub decapsulated_bytes: u64,
    /// Packets sent back into the tunnel.
    pub encapsulated_packets: u64,
    /// Their bytes, whole frames as sent.
    pub encapsulated_bytes: u64,
    /// The drops among the port's packets, by reason (the reasons with a count only):
    /// malformed tunnel headers (`geneve_*`, `vxlan_*`), the rules' denials, ...
    #[serde(serialize_with = "drops_as_object")]
    pub drops: Vec<(&'static str, u64)>,
}

/// One port's counters: what the workers counted and what the driver counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortSnapshot {
    /// Port name from the config (`port[i].name`).
    pub name: String,
    /// `"inside"`, `"outside"` or `"both"` ([`crate::config::Role::name`]).
    pub role: &'static str,
    /// The DPDK driver serving it (`net_virtio`, `net_ena`, `net_af_xdp`, ...).
    pub driver: String,
    /// Packets received (workers' count).
    pub rx_packets: u64,
    /// Bytes received (workers' count).
    pub rx_bytes: u64,
    /// Packets handed to the driver and taken by it.
    pub tx_packets: u64,
    /// Bytes handed to the driver and taken by it.
    pub tx_bytes: u64,
    /// Packets freed because the driver's tx ring was full.
    pub tx_dropped: u64,
    /// Driver: packets the NIC dropped for lack of rx descriptors (`imissed`).
    pub rx_missed: u64,
    /// Driver: erroneous received packets (`ierrors`).
    pub rx_errors: u64,
    /// Driver: failed transmissions (`oerrors`).
    pub tx_errors: u64,
    /// Driver: rx mbuf allocation failures (`rx_nombuf`).
    pub rx_nombuf: u64,
    /// Whether the link is up (false when the driver cannot tell).
    pub link_up: bool,
}

/// One worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerSnapshot {
    /// The EAL lcore it runs on.
    pub lcore: u32,
    /// Packets it processed (received from a port or from a handoff ring).
    pub packets: u64,
    /// TSC cycles spent in loop iterations that moved packets.
    pub busy_cycles: u64,
    /// TSC cycles spent in iterations that found nothing.
    pub idle_cycles: u64,
    /// TSC ticks per second, to turn cycles into time.
    pub tsc_hz: u64,
    /// Packets it handed to another worker (the flow's owner).
    pub handoffs: u64,
    /// Packets it dropped because the owner's handoff ring was full.
    pub handoff_drops: u64,
}

impl WorkerSnapshot {
    /// Busy cycles per packet since start, as OVS's `pmd-stats-show` gives it; 0 before the
    /// first packet.
    pub fn cycles_per_packet(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / self.packets as f64
        }
    }

    /// Share of its cycles the worker spent moving packets, 0 to 1.
    pub fn busy_ratio(&self) -> f64 {
        let total = self.busy_cycles.saturating_add(self.idle_cycles);
        if total == 0 {
            0.0
        } else {
            self.busy_cycles as f64 / total as f64
        }
    }
}

/// Live sessions by timeout class, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionCounts {
    /// Established TCP connections.
    pub tcp_established: u64,
    /// TCP connections opening or closing.
    pub tcp_transitory: u64,
    /// UDP sessions.
    pub udp: u64,
    /// ICMP query sessions.
    pub icmp: u64,
    /// Sessions created since start.
    pub created_total: u64,
}

impl SessionCounts {
    /// Live sessions of every class.
    pub fn active(&self) -> u64 {
        self.tcp_established + self.tcp_transitory + self.udp + self.icmp
    }

    /// `(class name, live sessions)` for each class, in a fixed order.
    pub fn by_class(&self) -> [(&'static str, u64); 4] {
        [
            ("tcp_established", self.tcp_established),
            ("tcp_transitory", self.tcp_transitory),
            ("udp", self.udp),
            ("icmp", self.icmp),
        ]
    }
}

/// NAT port usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NatSnapshot {
    /// Ports (ICMP: identifiers) in use, per public address and protocol, summed over workers.
    pub ports_in_use: Vec<NatPortUsage>,
    /// New flows dropped because no port was free (summed over addresses and workers).
    pub exhaustion_total: u64,
}

/// Ports in use on one public address for one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NatPortUsage {
    /// The public address.
    pub address: Ipv4Addr,
    /// `"tcp"`, `"udp"` or `"icmp"`.
    pub proto: &'static str,
    /// Ports allocated now.
    pub in_use: u64,
    /// New flows of inside hosts paired with this address refused for want of a port.
    pub exhausted: u64,
}

/// Reloads since start, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReloadCounts {
    /// Reloads that published a new policy.
    pub ok: u64,
    /// Reloads refused (bad file, restart-only change); the running policy stayed.
    pub failed: u64,
}

impl Snapshot {
    /// Total drops over every reason.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }
}

fn drops_as_object<S: Serializer>(drops: &[(&'static str, u64)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(drops.len()))?;
    for (reason, count) in drops {
        map.serialize_entry(reason, count)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let s = Snapshot {
            uptime_secs: 1.5,
            drops: vec![("policy_deny", 3), ("no_forward", 1)],
            workers: vec![WorkerSnapshot {
                packets: 4,
                busy_cycles: 1000,
                idle_cycles: 3000,
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["drops"]["policy_deny"], 3);
        assert_eq!(v["drops"]["no_forward"], 1);
        assert_eq!(v["reloads"]["ok"], 0);
        assert_eq!(s.drops_total(), 4);
        assert_eq!(s.workers[0].cycles_per_packet(), 250.0);
        assert_eq!(s.workers[0].busy_ratio(), 0.25);
        assert_eq!(WorkerSnapshot::default().cycles_per_packet(), 0.0);
    }
}

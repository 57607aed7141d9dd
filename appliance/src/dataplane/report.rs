//! What `appliance run` reports when it stops: per port, per worker, the drops by reason,
//! sessions, and the benchmark's figures when it was one. A table or JSON.

use super::bench::BenchResult;
use super::counters::{port_totals, PortTotals, WorkerCounters};
use super::view::tunnel_snapshot;
use crate::config::Config;
use crate::control::TunnelSnapshot;
use crate::packet::EthernetAddress;
use crate::pipeline::{Reason, ShardCounters};
use dpdk_sys::{LcoreId, Port, PortStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Counters at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// How long the workers ran, in seconds.
    pub elapsed_secs: f64,
    /// Per port, in config order.
    pub ports: Vec<PortReport>,
    /// Per worker.
    pub workers: Vec<WorkerReport>,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Drops by reason (only reasons that happened).
    pub drops: Vec<(&'static str, u64)>,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions live at the end.
    pub sessions_live: u64,
    /// Per `gwlb` port, what its tunnel carried.
    pub tunnels: Vec<TunnelSnapshot>,
    /// Benchmark figures, for `appliance bench`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench: Option<BenchResult>,
}

/// One port's totals: what the workers counted, and what the driver counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortReport {
    /// Port name from the config.
    pub name: String,
    /// The port's MAC address.
    pub mac: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets freed because the driver's tx ring was full.
    pub tx_dropped: u64,
    /// Driver: packets the NIC dropped for lack of rx descriptors.
    pub rx_missed: u64,
    /// Driver: rx mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Driver: erroneous received packets.
    pub rx_errors: u64,
    /// Driver: failed transmissions.
    pub tx_errors: u64,
}

impl PortReport {
    fn new(name: &str, mac: EthernetAddress, t: PortTotals, s: PortStats) -> Self {
        PortReport {
            name: name.to_string(),
            mac: mac.to_string(),
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            tx_dropped: t.tx_dropped,
            rx_missed: s.rx_missed,
            rx_nombuf: s.rx_nombuf,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
        }
    }
}

/// One worker's totals.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WorkerReport {
    /// The lcore it ran on.
    pub lcore: u32,
    /// Packets it processed.
    pub processed: u64,
    /// Cycles in iterations that moved packets.
    pub busy_cycles: u64,
    /// Cycles in idle iterations.
    pub idle_cycles: u64,
    /// Packets handed to other workers.
    pub handoffs: u64,
    /// Packets dropped because a handoff ring was full.
    pub handoff_drops: u64,
}

/// The report of a run that lasted `elapsed`: stops the ports (reading their driver
/// counters first), sums the workers' and shards' counters.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    config: &Config,
    elapsed: Duration,
    tsc_hz: u64,
    ports: &mut [Port<'_>],
    macs: &[EthernetAddress],
    workers: &[WorkerCounters],
    lcores: &[LcoreId],
    shards: &[Arc<ShardCounters>],
    bench: Option<BenchResult>,
) -> Report {
    let mut report = Report {
        elapsed_secs: elapsed.as_secs_f64(),
        ports: Vec::new(),
        workers: Vec::new(),
        tsc_hz,
        drops: Vec::new(),
        sessions_created: shards.iter().map(|s| s.created()).sum(),
        sessions_live: shards.iter().map(|s| s.active().iter().sum::<u64>()).sum(),
        tunnels: (config.port.iter().enumerate())
            .filter_map(|(i, p)| Some(tunnel_snapshot(shards, i as u8, &p.name, p.tunnel?.kind())))
            .collect(),
        bench,
    };
    for r in (0..Reason::COUNT).filter_map(Reason::from_index) {
        let n: u64 = shards.iter().map(|s| s.drops_of(r)).sum();
        if n > 0 {
            report.drops.push((r.name(), n));
        }
    }
    for (i, port) in ports.iter_mut().enumerate() {
        let stats = port.stats().unwrap_or_default();
        if let Err(e) = port.stop() {
            warn!(port = %config.port[i].name, error = %e, "stopping port");
        }
        report.ports.push(PortReport::new(
            &config.port[i].name,
            macs[i],
            port_totals(workers, i),
            stats,
        ));
    }
    for (c, lcore) in workers.iter().zip(lcores) {
        report.workers.push(WorkerReport {
            lcore: lcore.0,
            processed: c.processed.load(Ordering::Relaxed),
            busy_cycles: c.busy_cycles.load(Ordering::Relaxed),
            idle_cycles: c.idle_cycles.load(Ordering::Relaxed),
            handoffs: c.handoffs.load(Ordering::Relaxed),
            handoff_drops: c.handoff_drops.load(Ordering::Relaxed),
        });
    }
    report
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed_secs.max(1e-9);
        writeln!(f, "ran {:.3} s", secs)?;
        writeln!(
            f,
            "{:<12} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10}",
            "port", "rx", "tx", "tx_dropped", "rx_missed", "rx_nombuf", "tx_Mpps"
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "{:<12} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10.3}",
                p.name,
                p.rx_packets,
                p.tx_packets,
                p.tx_dropped,
                p.rx_missed,
                p.rx_nombuf,
                p.tx_packets as f64 / secs / 1e6
            )?;
        }
        writeln!(
            f,
            "sessions: {} created, {} live at exit",
            self.sessions_created, self.sessions_live
        )?;
        for t in &self.tunnels {
            writeln!(
                f,
                "tunnel {} ({}): {} in, {} back, {} dropped",
                t.port,
                t.kind,
                t.decapsulated_packets,
                t.encapsulated_packets,
                t.drops.iter().map(|(_, n)| n).sum::<u64>()
            )?;
        }
        if !self.drops.is_empty() {
            writeln!(f, "drops by reason:")?;
            for (name, n) in &self.drops {
                writeln!(f, "  {name:<28} {n:>12}")?;
            }
        }
        writeln!(
            f,
            "{:<8} {:>6} {:>14} {:>8} {:>12} {:>10}",
            "worker", "lcore", "packets", "busy%", "cycles/pkt", "handoffs"
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            let total = (w.busy_cycles + w.idle_cycles).max(1);
            let cpp = if w.processed > 0 {
                w.busy_cycles as f64 / w.processed as f64
            } else {
                0.0
            };
            writeln!(
                f,
                "{:<8} {:>6} {:>14} {:>7.1}% {:>12.1} {:>10}",
                i,
                w.lcore,
                w.processed,
                100.0 * w.busy_cycles as f64 / total as f64,
                cpp,
                w.handoffs
            )?;
        }
        if let Some(b) = &self.bench {
            writeln!(
                f,
                "bench: {} flows; setup {:.2} s ({:.3} M sessions/s); established {:.3} Mpps over \
                 {:.1} s, {:.1} cycles/packet at {:.2} GHz, workers {:.0}% busy; generator \
                 waited {} times; table {:.1} B/session; resident {:.1} MB for {} sessions, \
                 {:.1} B/session (huge pages {:.0} MB apart)",
                b.flows,
                b.setup_secs,
                b.setup_per_sec / 1e6,
                b.established_pps / 1e6,
                b.established_secs,
                b.cycles_per_packet,
                self.tsc_hz as f64 / 1e9,
                b.worker_busy * 100.0,
                b.generator_refused,
                b.table_bytes_per_session,
                b.rss_bytes as f64 / 1e6,
                b.max_sessions,
                b.rss_bytes_per_session,
                b.hugetlb_bytes as f64 / 1e6
            )?;
        }
        Ok(())
    }
}

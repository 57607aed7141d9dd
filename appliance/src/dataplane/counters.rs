//! Per-worker counters: written by one worker, read by the control thread.
//!
//! Each counter has a single writer, so a worker adds with a relaxed load and store (a plain
//! `mov`/`add`, no locked instruction); readers see values at most one update old. Each
//! worker's block is cache-line aligned so workers never share a line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The most ports the appliance drives.
pub const MAX_PORTS: usize = 16;

/// Counters of one port as seen by one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: AtomicU64,
    /// Bytes received.
    pub rx_bytes: AtomicU64,
    /// Packets handed to the driver for transmission.
    pub tx_packets: AtomicU64,
    /// Packets the driver did not take (tx ring full), freed.
    pub tx_dropped: AtomicU64,
}

/// Counters of one worker.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Per port, indexed like `[[port]]` in the config.
    pub ports: [PortCounters; MAX_PORTS],
    /// TSC cycles spent in loop iterations that moved packets.
    pub busy_cycles: AtomicU64,
    /// TSC cycles spent in iterations that found nothing.
    pub idle_cycles: AtomicU64,
    /// Packets processed (for cycles per packet).
    pub processed: AtomicU64,
    /// Packets handed to the worker that owns their session.
    pub handoffs: AtomicU64,
    /// Packets dropped because the ring to their owner was full (`handoff_congestion`).
    pub handoff_drops: AtomicU64,
}

/// Adds `n` to a counter only the calling worker writes.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A plain snapshot of one port's counters, summed over workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortTotals {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped because the tx ring was full.
    pub tx_dropped: u64,
}

impl WorkerCounters {
    /// Snapshot of one port.
    pub fn port(&self, i: usize) -> PortTotals {
        let p = &self.ports[i];
        PortTotals {
            rx_packets: p.rx_packets.load(Relaxed),
            rx_bytes: p.rx_bytes.load(Relaxed),
            tx_packets: p.tx_packets.load(Relaxed),
            tx_dropped: p.tx_dropped.load(Relaxed),
        }
    }
}

/// Sums port `i` over all workers.
pub fn port_totals(workers: &[WorkerCounters], i: usize) -> PortTotals {
    workers.iter().fold(PortTotals::default(), |mut t, w| {
        let p = w.port(i);
        t.rx_packets += p.rx_packets;
        t.rx_bytes += p.rx_bytes;
        t.tx_packets += p.tx_packets;
        t.tx_dropped += p.tx_dropped;
        t
    })
}

/// How often at most the control thread logs SNAT port exhaustion of one (pool address,
/// protocol) while it goes on.
pub const EXHAUSTION_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// When to log SNAT port exhaustion, per (pool address, protocol): the first refusal at
/// once, then at most one line every [`EXHAUSTION_LOG_EVERY`] while refusals go on, each
/// with the refusals since the line before. Workers only count (no syscalls on the fast
/// path); the control thread asks this once a second with the counts summed over workers.
#[derive(Debug, Default)]
pub struct ExhaustionLog {
    /// Per pair: the total at the last line, and when it was written.
    logged: Vec<(u64, Option<std::time::Instant>)>,
}

impl ExhaustionLog {
    /// The lines due at `now`, given each pair's total refusals (in a fixed order): the
    /// pair's index, the refusals since its last line, and its total.
    pub fn due(
        &mut self,
        now: std::time::Instant,
        totals: impl IntoIterator<Item = u64>,
    ) -> Vec<(usize, u64, u64)> {
        let mut out = Vec::new();
        for (i, total) in totals.into_iter().enumerate() {
            if self.logged.len() <= i {
                self.logged.resize(i + 1, (0, None));
            }
            let (was, at) = self.logged[i];
            let quiet = at.is_none_or(|t| now.duration_since(t) >= EXHAUSTION_LOG_EVERY);
            if total > was && quiet {
                out.push((i, total - was, total));
                self.logged[i] = (total, Some(now));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn bump_and_sum() {
        let w: Vec<WorkerCounters> = (0..3).map(|_| WorkerCounters::default()).collect();
        for (i, c) in w.iter().enumerate() {
            bump(&c.ports[1].rx_packets, 10 * (i as u64 + 1));
            bump(&c.ports[1].tx_dropped, 1);
        }
        let t = port_totals(&w, 1);
        assert_eq!(t.rx_packets, 60);
        assert_eq!(t.tx_dropped, 3);
        assert_eq!(port_totals(&w, 0), PortTotals::default());
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
    }

    #[test]
    fn exhaustion_is_logged_at_once_then_at_most_every_ten_seconds() {
        let mut log = ExhaustionLog::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(log.due(at(0), [0, 0]), []);
        assert_eq!(log.due(at(1), [0, 3]), [(1, 3, 3)], "the first at once");
        assert_eq!(log.due(at(2), [0, 9]), [], "then quiet");
        assert_eq!(
            log.due(at(10), [5, 20]),
            [(0, 5, 5)],
            "another pair has its own"
        );
        assert_eq!(
            log.due(at(11), [5, 25]),
            [(1, 22, 25)],
            "ten seconds on, the sum"
        );
        assert_eq!(log.due(at(30), [5, 25]), [], "nothing new, nothing said");
        assert_eq!(log.due(at(31), [5, 26]), [(1, 1, 26)]);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

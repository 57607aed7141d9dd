//! The poll-mode worker loop: rx bursts, forward, buffered tx, nothing else on the hot path.
//!
//! For now a worker forwards at layer 2 (inside <-> outside, as the config pairs the ports);
//! the stateful pipeline plugs in where `peer` is consulted.

use super::counters::{bump, WorkerCounters};
use dpdk_sys::{tsc, Burst, RxQueue, TxQueue};
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest burst the worker handles (config `dataplane.burst` is at most this).
pub const MAX_BURST: usize = crate::config::MAX_BURST as usize;

/// What one worker owns: its rx queues, one tx queue on every port, and where each port's
/// traffic goes.
#[derive(Debug)]
pub struct Worker<'p, 'eal> {
    /// Worker index (0-based), for logs.
    pub index: usize,
    /// (port index, rx queue) pairs this worker polls.
    pub rx: Vec<(usize, RxQueue<'p, 'eal>)>,
    /// This worker's tx queue on each port, indexed by port index.
    pub tx: Vec<TxQueue<'p, 'eal>>,
    /// Output port index for traffic received on each port.
    pub peer: Vec<usize>,
    /// Packets per rx burst.
    pub burst: usize,
}

impl<'eal> Worker<'_, 'eal> {
    /// Polls until `stop` is set. No lock, allocation or syscall inside the loop: buffers
    /// are allocated before it, counters are single-writer relaxed atomics.
    pub fn run(mut self, counters: &WorkerCounters, stop: &AtomicBool) {
        let mut rx: Burst<'eal, MAX_BURST> = Burst::new();
        let mut pending: Vec<Burst<'eal, MAX_BURST>> =
            (0..self.tx.len()).map(|_| Burst::new()).collect();
        let burst = self.burst.clamp(1, MAX_BURST);
        let mut last = tsc::now();
        while !stop.load(Ordering::Relaxed) {
            let mut moved = 0u64;
            for (port, queue) in &mut self.rx {
                let n = queue.rx_burst(&mut rx, burst);
                if n == 0 {
                    continue;
                }
                moved += n as u64;
                let pc = &counters.ports[*port];
                bump(&pc.rx_packets, n as u64);
                let bytes: usize = rx.as_slice().iter().map(|m| m.pkt_len() as usize).sum();
                bump(&pc.rx_bytes, bytes as u64);
                let out = self.peer[*port];
                if pending[out].is_empty() {
                    // The common case: hand the whole burst over without moving mbufs.
                    std::mem::swap(&mut rx, &mut pending[out]);
                    continue;
                }
                for m in rx.drain() {
                    if let Err(m) = pending[out].push(m) {
                        flush(&mut self.tx[out], &mut pending[out], counters, out);
                        // Flushing empties the buffer (sent or freed), so this push fits.
                        let _ = pending[out].push(m);
                    }
                }
            }
            for (out, buf) in pending.iter_mut().enumerate() {
                if !buf.is_empty() {
                    flush(&mut self.tx[out], buf, counters, out);
                }
            }
            let now = tsc::now();
            let spent = now.wrapping_sub(last);
            last = now;
            if moved > 0 {
                bump(&counters.busy_cycles, spent);
                bump(&counters.processed, moved);
            } else {
                bump(&counters.idle_cycles, spent);
            }
        }
        for (out, buf) in pending.iter_mut().enumerate() {
            flush(&mut self.tx[out], buf, counters, out);
        }
    }
}

/// Sends what `buf` holds on `tx`; what the driver does not take is freed and counted.
#[inline]
fn flush<'eal, const N: usize>(
    tx: &mut TxQueue<'_, 'eal>,
    buf: &mut Burst<'eal, N>,
    counters: &WorkerCounters,
    port: usize,
) {
    let sent = tx.tx_burst(buf);
    let pc = &counters.ports[port];
    bump(&pc.tx_packets, sent as u64);
    let dropped = buf.free_all();
    if dropped > 0 {
        bump(&pc.tx_dropped, dropped as u64);
    }
}

//! The poll-mode worker loop: rx bursts through the worker's pipeline shard, handoffs to and
//! from other workers, buffered tx, periodic expiry. No lock, allocation or syscall on the
//! packet path: buffers are allocated before the loop, counters are single-writer relaxed
//! atomics, the policy and neighbour snapshots are loaded once per iteration.

use super::counters::{bump, WorkerCounters};
use super::view::DumpSlot;
use crate::packet::EthernetAddress;
use crate::pipeline::{Action, Env, Neighbours, Note, PacketBuf, Shard};
use crate::policy::Policy;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use dpdk_sys::{tsc, Burst, Mbuf, RxQueue, TxQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Largest burst the worker handles (config `dataplane.burst` is at most this).
pub const MAX_BURST: usize = crate::config::MAX_BURST as usize;

/// Expiry runs this often (microseconds) and frees at most this many sessions each time.
const EXPIRE_EVERY_US: u64 = 100;
const EXPIRE_BUDGET: u32 = 64;

impl PacketBuf for Mbuf<'_> {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.data()
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }

    fn set_len(&mut self, len: usize) -> bool {
        u16::try_from(len).is_ok_and(|l| Mbuf::set_len(self, l))
    }
}

/// What all workers share: the published snapshots, the handoff rings, the notes queue.
pub struct Shared<'eal> {
    /// The policy in force (published by the control thread).
    pub policy: Arc<ArcSwap<Policy>>,
    /// The neighbour table in force.
    pub neighbours: Arc<ArcSwap<Neighbours>>,
    /// `rings[from][to]`: packets worker `from` hands to worker `to`.
    pub rings: Vec<Vec<ArrayQueue<Mbuf<'eal>>>>,
    /// Notes for the control thread (neighbours learned, next hops to resolve).
    pub notes: ArrayQueue<Note>,
    /// Frames the control thread wants sent (ARP), sent by worker 0: (port index, frame).
    pub outbox: ArrayQueue<(u8, Mbuf<'eal>)>,
    /// Each port's MAC.
    pub macs: Vec<EthernetAddress>,
    /// Session listing requests, one slot per worker.
    pub dumps: Vec<DumpSlot>,
    /// Set to stop every worker.
    pub stop: AtomicBool,
}

impl std::fmt::Debug for Shared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// What one worker owns: its shard, its rx queues, one tx queue on every port.
pub struct Worker<'p, 'eal> {
    /// Worker index (0-based).
    pub index: usize,
    /// (port index, rx queue) pairs this worker polls.
    pub rx: Vec<(usize, RxQueue<'p, 'eal>)>,
    /// This worker's tx queue on each port, indexed by port.
    pub tx: Vec<TxQueue<'p, 'eal>>,
    /// Packets per rx burst.
    pub burst: usize,
    /// The worker's pipeline state.
    pub shard: Shard,
}

impl std::fmt::Debug for Worker<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Per-iteration state of the loop, allocated once.
struct Loop<'eal> {
    rx: Burst<'eal, MAX_BURST>,
    actions: [Action; MAX_BURST],
    pending: Vec<Burst<'eal, MAX_BURST>>,
}

impl<'eal> Worker<'_, 'eal> {
    /// Polls until `shared.stop` is set.
    pub fn run(mut self, shared: &Shared<'eal>, counters: &WorkerCounters) {
        let mut l = Loop {
            rx: Burst::new(),
            actions: [Action::Consumed; MAX_BURST],
            pending: (0..self.tx.len()).map(|_| Burst::new()).collect(),
        };
        let burst = self.burst.clamp(1, MAX_BURST);
        let hz = tsc::hz().max(1);
        let start = tsc::now();
        let expire_every = hz / 1_000_000 * EXPIRE_EVERY_US;
        let mut last = start;
        let mut last_expire = start;
        let mut last_gauges = start;
        while !shared.stop.load(Ordering::Relaxed) {
            let policy = shared.policy.load();
            let neighbours = shared.neighbours.load();
            let env = Env {
                policy: &policy,
                neighbours: &neighbours,
                macs: &shared.macs,
            };
            let begin = tsc::now();
            // Whole seconds since start, plus one so that no session is ever stamped 0.
            let now = ((begin - start) / hz) as u32 + 1;
            let mut moved = 0u64;
            for (port, queue) in &mut self.rx {
                let n = queue.rx_burst(&mut l.rx, burst);
                if n == 0 {
                    continue;
                }
                moved += n as u64;
                let pc = &counters.ports[*port];
                bump(&pc.rx_packets, n as u64);
                // Start every frame's first cache line on its way before the pipeline reads
                // the first one (it arrived from the NIC or another core).
                let mut bytes = 0usize;
                for m in l.rx.as_slice() {
                    bytes += m.pkt_len() as usize;
                    if let Some(b) = m.data().first() {
                        super::mem::prefetch(b);
                    }
                }
                bump(&pc.rx_bytes, bytes as u64);
                self.shard.process(
                    &env,
                    now,
                    *port as u8,
                    l.rx.as_mut_slice(),
                    &mut l.actions[..n],
                );
                dispatch(&mut self.tx, self.index, &mut l, shared, counters);
            }
            moved += self.drain_handoffs(&env, now, &mut l, shared, counters, burst);
            if self.index == 0 {
                while let Some((port, m)) = shared.outbox.pop() {
                    let out = usize::from(port);
                    if let Some(buf) = l.pending.get_mut(out) {
                        if let Err(m) = buf.push(m) {
                            flush(&mut self.tx[out], buf, counters, out);
                            let _ = buf.push(m);
                        }
                    }
                }
            }
            for (out, buf) in l.pending.iter_mut().enumerate() {
                if !buf.is_empty() {
                    flush(&mut self.tx[out], buf, counters, out);
                }
            }
            let end = tsc::now();
            if end - last_expire >= expire_every {
                last_expire = end;
                self.shard.expire(now, EXPIRE_BUDGET);
                self.shard.take_notes(|n| {
                    let _ = shared.notes.push(n);
                });
                let slot = &shared.dumps[self.index];
                slot.serve(|filter, limit, out| self.shard.dump(now, filter, limit, out));
            }
            if end - last_gauges >= hz {
                last_gauges = end;
                self.shard.publish_gauges();
            }
            let spent = end.wrapping_sub(last);
            last = end;
            if moved > 0 {
                bump(&counters.busy_cycles, spent);
                bump(&counters.processed, moved);
            } else {
                bump(&counters.idle_cycles, spent);
            }
        }
        for (out, buf) in l.pending.iter_mut().enumerate() {
            flush(&mut self.tx[out], buf, counters, out);
        }
        self.shard.publish_gauges();
    }

    /// Processes what other workers handed over, a burst at a time per sending worker.
    fn drain_handoffs(
        &mut self,
        env: &Env<'_>,
        now: u32,
        l: &mut Loop<'eal>,
        shared: &Shared<'eal>,
        counters: &WorkerCounters,
        burst: usize,
    ) -> u64 {
        let mut moved = 0;
        for from in 0..shared.rings.len() {
            if from == self.index {
                continue;
            }
            let ring = &shared.rings[from][self.index];
            while l.rx.len() < burst {
                match ring.pop() {
                    Some(m) => {
                        let _ = l.rx.push(m);
                    }
                    None => break,
                }
            }
            let n = l.rx.len();
            if n == 0 {
                continue;
            }
            moved += n as u64;
            // The rx port is in each mbuf; a burst is processed per run of one port.
            let mut start = 0;
            while start < n {
                let port = l.rx.as_slice()[start].port();
                let mut end = start + 1;
                while end < n && l.rx.as_slice()[end].port() == port {
                    end += 1;
                }
                let port_index = self.port_index(port);
                self.shard.process(
                    env,
                    now,
                    port_index,
                    &mut l.rx.as_mut_slice()[start..end],
                    &mut l.actions[start..end],
                );
                start = end;
            }
            // A handed-over packet is never handed over again (the owner function agrees
            // between workers); if it were, it is dropped rather than ping-ponged.
            for a in &mut l.actions[..n] {
                if matches!(a, Action::Handoff(_)) {
                    bump(&counters.handoff_drops, 1);
                    *a = Action::Consumed;
                }
            }
            dispatch(&mut self.tx, self.index, l, shared, counters);
        }
        moved
    }

    /// The config index of DPDK port `id` (ports are probed in config order).
    fn port_index(&self, id: u16) -> u8 {
        self.tx.iter().position(|q| q.port().0 == id).unwrap_or(0) as u8
    }
}

/// Moves each packet of the burst where its action says: a port's tx buffer, another
/// worker's ring, or back to the pool.
fn dispatch<'eal>(
    tx: &mut [TxQueue<'_, 'eal>],
    me: usize,
    l: &mut Loop<'eal>,
    shared: &Shared<'eal>,
    counters: &WorkerCounters,
) {
    for (i, m) in l.rx.drain().enumerate() {
        match l.actions[i] {
            Action::Forward(port) => {
                let out = usize::from(port);
                if out >= l.pending.len() {
                    continue; // dropped: not a port of ours
                }
                if let Err(m) = l.pending[out].push(m) {
                    flush(&mut tx[out], &mut l.pending[out], counters, out);
                    let _ = l.pending[out].push(m);
                }
            }
            Action::Handoff(w) => {
                let ring = &shared.rings[me][usize::from(w)];
                if ring.push(m).is_err() {
                    bump(&counters.handoff_drops, 1);
                } else {
                    bump(&counters.handoffs, 1);
                }
            }
            Action::Drop(_) | Action::Consumed => {}
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

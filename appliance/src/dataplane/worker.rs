//! The poll-mode worker loop: rx bursts through the worker's pipeline shard, handoffs to and
//! from other workers, buffered tx, periodic expiry. No lock, allocation or syscall on the
//! packet path: buffers are allocated before the loop, counters are single-writer relaxed
//! atomics, the policy and neighbour snapshots are loaded once per iteration.

use super::counters::{bump, WorkerCounters};
use super::view::DumpSlot;
use crate::packet::EthernetAddress;
use crate::pipeline::{
    Discard, Disposition, Env, Health, Neighbours, Note, PacketBuf, Shard, ShardCounters,
};
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
    /// Set while the appliance drains (the control thread's [`Control::draining_flag`]):
    /// what the health probe answers.
    ///
    /// [`Control::draining_flag`]: crate::control::Control::draining_flag
    pub draining: Arc<AtomicBool>,
}

/// Packets each handoff ring holds (per pair of workers).
const HANDOFF_RING: usize = 4096;

impl<'eal> Shared<'eal> {
    /// What `workers` workers share: the published `policy` and `neighbours`, the drain
    /// flag, each port's MAC, empty rings, queues and session-listing slots.
    pub fn new(
        policy: Arc<ArcSwap<Policy>>,
        neighbours: Arc<ArcSwap<Neighbours>>,
        draining: Arc<AtomicBool>,
        macs: Vec<EthernetAddress>,
        workers: usize,
    ) -> Self {
        Shared {
            policy,
            neighbours,
            draining,
            rings: (0..workers)
                .map(|_| {
                    (0..workers)
                        .map(|_| ArrayQueue::new(HANDOFF_RING))
                        .collect()
                })
                .collect(),
            notes: ArrayQueue::new(4096),
            outbox: ArrayQueue::new(256),
            macs,
            dumps: (0..workers).map(|_| DumpSlot::default()).collect(),
            stop: AtomicBool::new(false),
        }
    }
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
    actions: [Disposition; MAX_BURST],
    pending: Vec<Burst<'eal, MAX_BURST>>,
}

impl<'eal> Worker<'_, 'eal> {
    /// Polls until `shared.stop` is set.
    pub fn run(mut self, shared: &Shared<'eal>, counters: &WorkerCounters) {
        let mut l = Loop {
            rx: Burst::new(),
            actions: [Disposition::Consumed; MAX_BURST],
            pending: (0..self.tx.len()).map(|_| Burst::new()).collect(),
        };
        let burst = self.burst.clamp(1, MAX_BURST);
        let hz = tsc::hz().max(1);
        let start = tsc::now();
        let expire_every = hz / 1_000_000 * EXPIRE_EVERY_US;
        let mut last = start;
        let mut last_expire = start;
        let mut last_gauges = start;
        // Whole seconds since start, plus one so that no session is ever stamped 0; counted
        // up as the clock passes each second rather than divided out every iteration.
        let mut now = 1u32;
        let mut next_second = start + hz;
        // The published snapshots, re-read only when the control thread has published a
        // new one (one atomic load an iteration, not arc-swap's full protocol).
        let mut policies = arc_swap::Cache::new(&*shared.policy);
        let mut neighbour_tables = arc_swap::Cache::new(&*shared.neighbours);
        // Packets the last iteration moved: its cycles are busy or idle by it. One clock
        // read an iteration ends the last one and begins this one.
        let mut moved_last = 0u64;
        while !shared.stop.load(Ordering::Relaxed) {
            let begin = tsc::now();
            let spent = begin.wrapping_sub(last);
            last = begin;
            if moved_last > 0 {
                bump(&counters.busy_cycles, spent);
                bump(&counters.processed, moved_last);
            } else {
                bump(&counters.idle_cycles, spent);
            }
            while begin >= next_second {
                now += 1;
                next_second += hz;
            }
            let env = Env {
                policy: policies.load(),
                neighbours: neighbour_tables.load(),
                macs: &shared.macs,
                health: if shared.draining.load(Ordering::Relaxed) {
                    Health::Draining
                } else {
                    Health::Serving
                },
            };
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
                        crate::sys::prefetch(b);
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
                let drops = self.shard.counters();
                deliver(
                    &mut self.tx,
                    self.index,
                    &mut l,
                    false,
                    shared,
                    counters,
                    drops,
                );
            }
            moved += self.drain_handoffs(&env, now, &mut l, shared, counters, burst);
            flush_all(&mut self.tx, &mut l.pending, counters);
            moved_last = moved;
            if begin - last_expire >= expire_every {
                last_expire = begin;
                self.shard.expire(now, EXPIRE_BUDGET);
                self.shard.take_notes(|n| {
                    let _ = shared.notes.push(n);
                });
                let slot = &shared.dumps[self.index];
                slot.serve(|filter, limit, out| self.shard.dump(now, filter, limit, out));
                if self.index == 0 {
                    // The control thread's frames (ARP), as if this worker had made them:
                    // a tenth of a millisecond late at most, and no look at the queue on
                    // every iteration.
                    self.send_outbox(&mut l, shared, counters);
                }
            }
            if begin - last_gauges >= hz {
                last_gauges = begin;
                self.shard.publish_gauges();
            }
        }
        if moved_last > 0 {
            bump(&counters.busy_cycles, tsc::now().wrapping_sub(last));
            bump(&counters.processed, moved_last);
        }
        flush_all(&mut self.tx, &mut l.pending, counters);
        self.shard.publish_gauges();
    }

    /// Sends the frames the control thread queued (ARP) out of their ports.
    fn send_outbox(
        &mut self,
        l: &mut Loop<'eal>,
        shared: &Shared<'eal>,
        counters: &WorkerCounters,
    ) {
        let mut out = Out {
            tx: &mut self.tx,
            pending: &mut l.pending,
            rings: &shared.rings[self.index],
            counters,
        };
        while let Some((port, m)) = shared.outbox.pop() {
            let to = [Disposition::Forward(port)];
            dispatch(
                [m].into_iter(),
                &to,
                false,
                &mut out,
                counters,
                self.shard.counters(),
            );
        }
        flush_all(&mut self.tx, &mut l.pending, counters);
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
                let (pkts, actions) = (
                    &mut l.rx.as_mut_slice()[start..end],
                    &mut l.actions[start..end],
                );
                match self.port_index(port) {
                    Some(index) => self.shard.process(env, now, index, pkts, actions),
                    None => {
                        // Not a port of ours: nothing to process it as.
                        let unknown = Disposition::Drop(Discard::UnknownPort.into());
                        for a in actions.iter_mut() {
                            self.shard
                                .counters()
                                .count_drop(Discard::UnknownPort.into());
                            *a = unknown;
                        }
                    }
                }
                start = end;
            }
            let drops = self.shard.counters();
            deliver(&mut self.tx, self.index, l, true, shared, counters, drops);
        }
        moved
    }

    /// The config index of DPDK port `id` (ports are probed in config order).
    fn port_index(&self, id: u16) -> Option<u8> {
        port_index(self.tx.iter().map(|q| q.port().0), id)
    }
}

/// [`dispatch`] of the burst in `l` to worker `me`'s outputs: its transmit queues `tx` and
/// its row of handoff rings; pipeline drops are counted in `drops`.
fn deliver<'eal>(
    tx: &mut [TxQueue<'_, 'eal>],
    me: usize,
    l: &mut Loop<'eal>,
    handed: bool,
    shared: &Shared<'eal>,
    counters: &WorkerCounters,
    drops: &ShardCounters,
) {
    let mut out = Out {
        tx,
        pending: &mut l.pending,
        rings: &shared.rings[me],
        counters,
    };
    let n = l.rx.len();
    dispatch(
        l.rx.drain(),
        &l.actions[..n],
        handed,
        &mut out,
        counters,
        drops,
    );
}

/// Where `dispatch` can put a packet: a port's transmit buffer or another worker's handoff
/// ring. A seam, so that what happens to every packet is tested without DPDK.
pub(crate) trait Outputs<M> {
    /// How many ports there are (a port index is below this).
    fn ports(&self) -> usize;
    /// Queues `m` for transmission on port `port`.
    fn send(&mut self, port: usize, m: M);
    /// Puts `m` on worker `worker`'s handoff ring, or gives it back when that ring is full.
    fn hand(&mut self, worker: usize, m: M) -> Result<(), M>;
}

/// Moves each packet of a burst where its action says: a port's transmit buffer, another
/// worker's ring, or back to the pool (a packet dropped is freed when it goes out of scope).
/// `handed` says the burst came from other workers' rings.
pub(crate) fn dispatch<M>(
    pkts: impl Iterator<Item = M>,
    actions: &[Disposition],
    handed: bool,
    out: &mut impl Outputs<M>,
    counters: &WorkerCounters,
    drops: &ShardCounters,
) {
    for (m, action) in pkts.zip(actions) {
        match *action {
            Disposition::Forward(port) if usize::from(port) < out.ports() => {
                out.send(usize::from(port), m);
            }
            Disposition::Forward(_) => drops.count_drop(Discard::UnknownPort.into()),
            // The owner function agrees between workers, so this does not happen; if it
            // did, passing the packet back and forth would be worse than dropping it.
            Disposition::Handoff(_) if handed => drops.count_drop(Discard::HandoffLoop.into()),
            Disposition::Handoff(w) => match out.hand(usize::from(w), m) {
                Ok(()) => bump(&counters.handoffs, 1),
                Err(_) => bump(&counters.handoff_drops, 1),
            },
            Disposition::Drop(_) | Disposition::Consumed => {}
        }
    }
}

/// The worker's real outputs: its transmit buffers (sent when full) and its row of handoff
/// rings.
struct Out<'a, 'p, 'eal> {
    tx: &'a mut [TxQueue<'p, 'eal>],
    pending: &'a mut [Burst<'eal, MAX_BURST>],
    rings: &'a [ArrayQueue<Mbuf<'eal>>],
    counters: &'a WorkerCounters,
}

impl<'eal> Out<'_, '_, 'eal> {
    /// `send` when the port's buffer is full: sends it, then queues `m`. Out of line, so
    /// that `send` itself is a push inlined into the dispatch loop.
    #[cold]
    #[inline(never)]
    fn send_full(&mut self, port: usize, m: Mbuf<'eal>) {
        let buf = &mut self.pending[port];
        flush(&mut self.tx[port], buf, self.counters, port);
        let _ = buf.push(m);
    }
}

impl<'eal> Outputs<Mbuf<'eal>> for Out<'_, '_, 'eal> {
    fn ports(&self) -> usize {
        self.pending.len()
    }

    #[inline]
    fn send(&mut self, port: usize, m: Mbuf<'eal>) {
        if let Err(m) = self.pending[port].push(m) {
            self.send_full(port, m);
        }
    }

    fn hand(&mut self, worker: usize, m: Mbuf<'eal>) -> Result<(), Mbuf<'eal>> {
        match self.rings.get(worker) {
            Some(ring) => ring.push(m),
            None => Err(m),
        }
    }
}

/// The config index of DPDK port `id`, given each port's DPDK id in config order; `None`
/// for a port that is not one of them.
pub(crate) fn port_index(ids: impl IntoIterator<Item = u16>, id: u16) -> Option<u8> {
    let i = ids.into_iter().position(|p| p == id)?;
    u8::try_from(i).ok()
}

/// Sends what every port's buffer in `pending` holds on its queue in `tx`.
#[inline]
fn flush_all<'eal>(
    tx: &mut [TxQueue<'_, 'eal>],
    pending: &mut [Burst<'eal, MAX_BURST>],
    counters: &WorkerCounters,
) {
    for (port, buf) in pending.iter_mut().enumerate() {
        if !buf.is_empty() {
            flush(&mut tx[port], buf, counters, port);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Reason;

    /// Outputs that record where each packet went: (port, packet) sent, (worker, packet)
    /// handed; rings of `room` packets.
    #[derive(Default)]
    struct Record {
        ports: usize,
        room: usize,
        sent: Vec<(usize, u32)>,
        handed: Vec<(usize, u32)>,
    }

    impl Record {
        /// Two ports, rings of `room` packets, nothing recorded yet.
        fn two_ports(room: usize) -> Record {
            Record {
                ports: 2,
                room,
                ..Record::default()
            }
        }
    }

    impl Outputs<u32> for Record {
        fn ports(&self) -> usize {
            self.ports
        }
        fn send(&mut self, port: usize, m: u32) {
            self.sent.push((port, m));
        }
        fn hand(&mut self, worker: usize, m: u32) -> Result<(), u32> {
            if self.handed.len() < self.room {
                self.handed.push((worker, m));
                Ok(())
            } else {
                Err(m)
            }
        }
    }

    fn drops(c: &ShardCounters, d: Discard) -> u64 {
        c.drops_of(Reason::from(d))
    }

    /// Every packet is sent, handed over, or dropped and counted under a name of its own:
    /// a full ring is `handoff_drops`, a port the worker does not have is `unknown_port`.
    #[test]
    fn every_packet_goes_somewhere_or_is_counted() {
        let (w, s) = (WorkerCounters::default(), ShardCounters::default());
        let mut out = Record::two_ports(1);
        let actions = [
            Disposition::Forward(1),
            Disposition::Forward(7),
            Disposition::Handoff(1),
            Disposition::Handoff(1),
            Disposition::Drop(Discard::NoRoute.into()),
            Disposition::Consumed,
        ];
        dispatch(0..6u32, &actions, false, &mut out, &w, &s);
        assert_eq!(out.sent, [(1, 0)]);
        assert_eq!(out.handed, [(1, 2)]);
        assert_eq!(w.handoffs.load(Ordering::Relaxed), 1);
        assert_eq!(w.handoff_drops.load(Ordering::Relaxed), 1, "the full ring");
        assert_eq!(drops(&s, Discard::UnknownPort), 1, "port 7");
    }

    /// A packet another worker handed over is not handed over again (the workers would
    /// disagree on its owner): it is dropped as `handoff_loop`, not counted as a full ring.
    #[test]
    fn a_packet_handed_over_twice_is_its_own_drop() {
        let (w, s) = (WorkerCounters::default(), ShardCounters::default());
        let mut out = Record::two_ports(8);
        dispatch(0..1u32, &[Disposition::Handoff(0)], true, &mut out, &w, &s);
        assert!(out.handed.is_empty());
        assert_eq!(w.handoff_drops.load(Ordering::Relaxed), 0);
        assert_eq!(drops(&s, Discard::HandoffLoop), 1);
    }

    /// A handed-over mbuf names the DPDK port it came in on; one that is not a port of this
    /// worker has no config index (it is dropped as `unknown_port`), never port 0's.
    #[test]
    fn an_unknown_dpdk_port_has_no_index() {
        assert_eq!(port_index([3, 5, 9], 5), Some(1));
        assert_eq!(port_index([3, 5, 9], 4), None);
    }
}

//! A shard's counters: written by its worker only (a relaxed load and store, no locked
//! instruction), read by the control thread at any time.

use super::reason::Reason;
use crate::config::validate::MAX_PORTS;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one shard. Cache-line aligned so two workers' counters never share a line.
#[derive(Debug)]
#[repr(align(64))]
pub struct ShardCounters {
    drops: [AtomicU64; Reason::COUNT],
    forwarded: AtomicU64,
    handoffs: AtomicU64,
    created: AtomicU64,
    expired: AtomicU64,
    closed: AtomicU64,
    local_replies: AtomicU64,
    /// Gauges the worker refreshes about once a second: live sessions per timeout class
    /// (tcp-transitory, tcp-established, udp, icmp), NAT ports in use per (pool address,
    /// protocol: icmp, tcp, udp), allocation failures per (pool address, protocol).
    active: [AtomicU64; 4],
    nat_in_use: Box<[AtomicU64]>,
    nat_exhausted: Box<[AtomicU64]>,
    /// Per port (by index), what its tunnel carried: only a `gwlb` port's count.
    tunnels: Box<[TunnelCounters]>,
}

/// What the tunnel of one `gwlb` port carried, counted by one shard: packets and bytes taken
/// out of the tunnel (whole frames, as received) and sent back into it (as sent), and the
/// drops of what the port received, by reason.
#[derive(Debug)]
pub struct TunnelCounters {
    decapsulated: [AtomicU64; 2],
    encapsulated: [AtomicU64; 2],
    drops: [AtomicU64; Reason::COUNT],
}

impl Default for TunnelCounters {
    fn default() -> Self {
        TunnelCounters {
            decapsulated: Default::default(),
            encapsulated: Default::default(),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl TunnelCounters {
    pub(super) fn add_decapsulated(&self, bytes: usize) {
        add(&self.decapsulated[0], 1);
        add(&self.decapsulated[1], bytes as u64);
    }

    pub(super) fn add_encapsulated(&self, bytes: usize) {
        add(&self.encapsulated[0], 1);
        add(&self.encapsulated[1], bytes as u64);
    }

    pub(super) fn count_drop(&self, r: Reason) {
        add(&self.drops[r.index()], 1);
    }

    /// Packets and bytes taken out of the tunnel.
    pub fn decapsulated(&self) -> (u64, u64) {
        let [p, b] = &self.decapsulated;
        (p.load(Relaxed), b.load(Relaxed))
    }

    /// Packets and bytes sent back into the tunnel.
    pub fn encapsulated(&self) -> (u64, u64) {
        let [p, b] = &self.encapsulated;
        (p.load(Relaxed), b.load(Relaxed))
    }

    /// Drops of one reason among the port's packets.
    pub fn drops_of(&self, r: Reason) -> u64 {
        self.drops[r.index()].load(Relaxed)
    }
}

impl Default for ShardCounters {
    fn default() -> Self {
        Self::new(0)
    }
}

impl ShardCounters {
    /// Counters for a shard whose SNAT pool has `addresses` addresses.
    pub fn new(addresses: usize) -> Self {
        ShardCounters {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            forwarded: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
            created: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            local_replies: AtomicU64::new(0),
            active: std::array::from_fn(|_| AtomicU64::new(0)),
            nat_in_use: (0..addresses * 3).map(|_| AtomicU64::new(0)).collect(),
            nat_exhausted: (0..addresses * 3).map(|_| AtomicU64::new(0)).collect(),
            tunnels: (0..MAX_PORTS).map(|_| TunnelCounters::default()).collect(),
        }
    }
}

#[inline(always)]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

impl ShardCounters {
    /// Counts a drop.
    #[inline]
    pub fn count_drop(&self, r: Reason) {
        add(&self.drops[r.index()], 1);
    }

    /// Adds the packets forwarded by one burst (the shard counts them in a plain integer
    /// and publishes once per burst, not per packet).
    pub(super) fn add_forwarded(&self, n: u64) {
        if n != 0 {
            add(&self.forwarded, n);
        }
    }

    pub(super) fn bump_handoff(&self) {
        add(&self.handoffs, 1);
    }

    pub(super) fn bump_created(&self) {
        add(&self.created, 1);
    }

    pub(super) fn add_expired(&self, n: u64) {
        add(&self.expired, n);
    }

    pub(super) fn add_closed(&self, n: u64) {
        add(&self.closed, n);
    }

    pub(super) fn bump_local(&self) {
        add(&self.local_replies, 1);
    }

    /// The tunnel counters of port `port` (a port past the last counts with the first:
    /// the configuration has no such port).
    #[inline]
    pub fn tunnel(&self, port: u8) -> &TunnelCounters {
        &self.tunnels[usize::from(port) % MAX_PORTS]
    }

    /// Drops so far, by reason, in [`Reason::index`] order.
    pub fn drops(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        self.drops
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Reason::from_index(i).map(|r| (r, c.load(Relaxed))))
    }

    /// Drops of one reason.
    pub fn drops_of(&self, r: Reason) -> u64 {
        self.drops[r.index()].load(Relaxed)
    }

    /// Packets sent on (forwarded, translated or not).
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Relaxed)
    }

    /// Packets handed to another worker.
    pub fn handoffs(&self) -> u64 {
        self.handoffs.load(Relaxed)
    }

    /// Sessions created.
    pub fn created(&self) -> u64 {
        self.created.load(Relaxed)
    }

    /// Sessions freed by timeout.
    pub fn expired(&self) -> u64 {
        self.expired.load(Relaxed)
    }

    /// Sessions closed by a policy recheck.
    pub fn closed(&self) -> u64 {
        self.closed.load(Relaxed)
    }

    /// Replies the appliance sent itself (ARP, ICMP, health probe).
    pub fn local_replies(&self) -> u64 {
        self.local_replies.load(Relaxed)
    }

    /// Live sessions per timeout class, as last published: tcp-transitory, tcp-established,
    /// udp, icmp.
    pub fn active(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.active[i].load(Relaxed))
    }

    /// NAT ports in use, as last published, for pool address index `a` and protocol index
    /// `p` (0 ICMP, 1 TCP, 2 UDP).
    pub fn nat_in_use(&self, a: usize, p: usize) -> u64 {
        self.nat_in_use
            .get(a * 3 + p)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// SNAT allocations that failed for lack of ports.
    pub fn nat_exhausted(&self) -> u64 {
        self.nat_exhausted.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// SNAT allocations that failed for lack of ports on pool address `a` for protocol `p`
    /// (0 ICMP, 1 TCP, 2 UDP).
    pub fn nat_exhausted_at(&self, a: usize, p: usize) -> u64 {
        self.nat_exhausted
            .get(a * 3 + p)
            .map_or(0, |c| c.load(Relaxed))
    }

    pub(super) fn set_gauges(
        &self,
        active: [u32; 4],
        in_use: impl Iterator<Item = usize>,
        exhausted: impl Iterator<Item = u64>,
    ) {
        for (c, v) in self.active.iter().zip(active) {
            c.store(u64::from(v), Relaxed);
        }
        for (c, v) in self.nat_in_use.iter().zip(in_use) {
            c.store(v as u64, Relaxed);
        }
        for (c, v) in self.nat_exhausted.iter().zip(exhausted) {
            c.store(v, Relaxed);
        }
    }
}

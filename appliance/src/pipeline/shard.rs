//! A worker's shard: its sessions, its NAT state, its counters and what it tells the control
//! thread. Only its worker touches it. The stages that process a burst are `impl` blocks of
//! their own files ([`super::burst`] runs them); this one holds the state and what every
//! stage shares.

use super::action::{Disposition, Note};
use super::class::{NoTrace, Trace};
use super::counters::ShardCounters;
use super::env::NeighbourCache;
use super::meta::{Meta, EMPTY_META};
use super::owner::Sharding;
use super::reason::Reason;
use crate::config::{Filtering, Mapping};
use crate::flow::{FlowTable, HashSeed, Pending, Probe, Timeouts, BURST_MAX};
use crate::nat::{Slices, Snat};
use crate::packet::ChecksumCaps;
use crate::policy::Policy;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Notes kept for the control thread between two collections.
const NOTES_MAX: usize = 32;

/// Settings fixed for the life of the process (changing them needs a restart).
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// This worker's index.
    pub worker: usize,
    /// The ownership function shared by all workers.
    pub sharding: Sharding,
    /// SNAT pool addresses.
    pub pool: Vec<Ipv4Addr>,
    /// Sessions this shard holds at most.
    pub capacity: u32,
    /// Checksums the NIC verified on receive.
    pub rx_caps: ChecksumCaps,
    /// Seed of the flow table's hash (random in production, fixed in tests).
    pub seed: Option<HashSeed>,
    /// The mapping behaviour the process starts with: the NAT's maps are sized for it when
    /// the shard is made, not at its first packet ([`Snat::prepare`]).
    pub mapping: Mapping,
    /// The secret of the health probe's initial sequence numbers, the same for every worker
    /// (a segment after the SYN is checked against it, whichever worker gets it).
    pub probe_key: u64,
}

impl ShardConfig {
    /// The configuration of worker `worker` of `workers`, from the policy the process starts
    /// with: pool addresses, port slices, and an equal share of `max_sessions`.
    pub fn from_policy(
        policy: &Policy,
        worker: usize,
        workers: usize,
        seed: u64,
    ) -> Option<ShardConfig> {
        let ports = policy.snat.ports;
        let slices = Slices::new(ports.start, ports.end, workers)?;
        let capacity = (policy.sessions.max_sessions / workers.max(1) as u32).max(64);
        Some(ShardConfig {
            worker,
            sharding: Sharding::new(workers, slices, seed),
            pool: policy.snat.addresses.clone(),
            capacity,
            rx_caps: ChecksumCaps::NONE,
            seed: None,
            mapping: policy.snat.mapping,
            probe_key: probe_key(seed),
        })
    }
}

/// The health probe's secret from the process's sharding seed, through a one-way hash: the
/// initial sequence numbers the probe sends must not let anyone work back to the seed that
/// decides which worker owns a flow.
fn probe_key(seed: u64) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (b"health probe", seed).hash(&mut h);
    h.finish()
}

/// One worker's shard of the appliance state. Only its worker touches it. `T` is what it
/// tells of its decisions ([`Trace`]): nothing in the data path.
pub struct Shard<T: Trace = NoTrace> {
    pub(super) worker: u16,
    pub(super) sharding: Sharding,
    pub(super) table: FlowTable,
    pub(super) snat: Snat,
    pub(super) counters: Arc<ShardCounters>,
    pub(super) neigh: NeighbourCache,
    pub(super) rx_caps: ChecksumCaps,
    /// Policy generation last synchronised (timeouts, forward reservations).
    pub(super) policy_generation: Option<u64>,
    /// Scratch for replies the appliance builds (ICMP errors quote the packet they answer).
    pub(super) scratch: Box<[u8]>,
    /// The health probe's secret ([`ShardConfig::probe_key`]).
    pub(super) probe_key: u64,
    notes: [Option<Note>; NOTES_MAX],
    notes_len: usize,
    /// Recently requested resolutions: (port, ip, time).
    pub(super) resolving: [(u8, u32, u32); 16],
    pub(super) resolving_next: usize,
    /// Packets forwarded since the counters were last updated (once per burst).
    pub(super) forwarded: u64,
    // Per-burst scratch, sized for one chunk: stage 1's results by packet, and the lookups in
    // flight (probe, second step) with the packet each is for.
    pub(super) metas: [Meta; BURST_MAX],
    pub(super) probes: [Probe; BURST_MAX],
    pub(super) pending: [Pending; BURST_MAX],
    pub(super) pos: [u8; BURST_MAX],
    /// Whoever is told what the shard decides.
    pub(super) trace: T,
}

impl<T: Trace> std::fmt::Debug for Shard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("worker", &self.worker)
            .field("sessions", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// A shard with empty tables, allocating everything now.
    pub fn new(config: ShardConfig, counters: Arc<ShardCounters>) -> Shard {
        Shard::with_trace(config, counters, NoTrace)
    }
}

impl<T: Trace> Shard<T> {
    /// A shard that tells `trace` what it decides (`appliance explain`'s).
    pub fn with_trace(config: ShardConfig, counters: Arc<ShardCounters>, trace: T) -> Shard<T> {
        let timeouts = Timeouts::default();
        let table = match config.seed {
            Some(seed) => FlowTable::with_seed(config.capacity, timeouts, seed),
            None => FlowTable::new(config.capacity, timeouts),
        };
        let mut snat = Snat::new(
            config.worker,
            *config.sharding.slices(),
            &config.pool,
            config.capacity as usize,
            0x5eed ^ config.worker as u64,
        );
        snat.prepare(config.mapping);
        Shard {
            worker: config.worker as u16,
            sharding: config.sharding,
            table,
            snat,
            counters,
            neigh: NeighbourCache::default(),
            rx_caps: config.rx_caps,
            policy_generation: None,
            scratch: vec![0u8; 2048].into_boxed_slice(),
            probe_key: config.probe_key,
            notes: [None; NOTES_MAX],
            notes_len: 0,
            resolving: [(0, 0, 0); 16],
            resolving_next: 0,
            forwarded: 0,
            metas: [EMPTY_META; BURST_MAX],
            probes: [Probe::default(); BURST_MAX],
            pending: [Pending::default(); BURST_MAX],
            pos: [0; BURST_MAX],
            trace,
        }
    }

    /// This shard's worker index.
    pub fn worker(&self) -> usize {
        usize::from(self.worker)
    }

    /// The session table (read-only: for statistics and session listings).
    pub fn table(&self) -> &FlowTable {
        &self.table
    }

    /// The NAT state (read-only: port usage).
    pub fn snat(&self) -> &Snat {
        &self.snat
    }

    /// The counters this shard writes.
    pub fn counters(&self) -> &Arc<ShardCounters> {
        &self.counters
    }

    /// Takes the notes gathered since the last call.
    pub fn take_notes(&mut self, mut f: impl FnMut(Note)) {
        for n in self.notes[..self.notes_len].iter_mut() {
            if let Some(n) = n.take() {
                f(n);
            }
        }
        self.notes_len = 0;
    }

    pub(super) fn note(&mut self, n: Note) {
        if self.notes_len < NOTES_MAX {
            self.notes[self.notes_len] = Some(n);
            self.notes_len += 1;
        }
    }

    /// Counts a drop and says so.
    #[inline]
    pub(super) fn discard(&mut self, reason: impl Into<Reason>) -> Disposition {
        let r = reason.into();
        self.counters.count_drop(r);
        if let Some(class) = r.class() {
            self.trace.class(class);
        }
        Disposition::Drop(r)
    }

    /// What the shard has told its tracer.
    pub fn trace(&self) -> &T {
        &self.trace
    }

    /// The tracer, to read what it kept and start again.
    pub fn trace_mut(&mut self) -> &mut T {
        &mut self.trace
    }

    /// Brings the shard in line with a new policy generation: timeouts, the ports held back
    /// for port forwards, room for the mapping behaviour. Runs once per generation, not per
    /// packet.
    pub(super) fn sync_policy(&mut self, policy: &Policy) {
        if self.policy_generation == Some(policy.generation) {
            return;
        }
        self.policy_generation = Some(policy.generation);
        self.table.set_timeouts(policy.sessions.timeouts);
        self.snat.reserve(policy.forwards.public_ports());
        self.snat.prepare(policy.snat.mapping);
        let count = policy.snat.filtering == Filtering::AddressDependent;
        if count != self.snat.counts_contacts() {
            self.snat.set_counts_contacts(count);
            if count {
                self.snat.count_open_contacts(&mut self.table);
            }
        }
    }

    /// Frees expired sessions, at most `budget`, releasing their NAT resources. Bounded work
    /// for the worker loop's periodic tick.
    pub fn expire(&mut self, now: u32, budget: u32) -> u32 {
        let snat = &mut self.snat;
        let n = self
            .table
            .expire(now, budget, |_, s| snat.release_session(s));
        self.counters.add_expired(u64::from(n));
        n
    }

    /// Ends session `idx` now (policy recheck denied it), releasing its NAT resources.
    pub(super) fn close(&mut self, idx: u32) {
        if let Some(s) = self.table.get(idx) {
            self.snat.release_session(s);
            self.table.remove(idx);
            self.counters.add_closed(1);
        }
    }
}

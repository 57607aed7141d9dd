//! A worker's shard: its sessions, its NAT state, and the per-burst processing.
//!
//! A burst goes through three stages (DESIGN.md, "Session table"):
//! 1. parse every packet, decide which worker owns it, build its flow key;
//! 2. look the keys of the packets this worker owns up in the table, a burst at a time, with
//!    prefetch;
//! 3. hits take the fast path (rewrite from the session, route, send); misses take the slow
//!    path (classification, policy, session creation), then the same rewrite.

use super::buf::PacketBuf;
use super::counters::ShardCounters;
use super::env::{Env, NeighbourCache};
use super::owner::Sharding;
use super::reason::{Discard, Reason};
use crate::config::{Filtering, OnReload};
use crate::flow::{
    FlowKey, FlowTable, HashSeed, Hit, Pending, Probe, Session, Timeouts, BURST_MAX,
};
use crate::nat::{Slices, Snat};
use crate::packet::translate::{set_macs, translate};
use crate::packet::{
    common_ipv4, icmp, parse_frame, ChecksumCaps, ChecksumDeltas, Common, EthernetAddress,
    IcmpMessage, IpProtocol, Ipv4Packet, Offsets, TcpFlags, TcpPacket, L3, L4,
};
use crate::policy::Policy;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// What the worker does with a packet once the shard has processed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send it out of this port (rewritten in place, or turned into a reply).
    Forward(u8),
    /// Another worker owns its session: hand it over.
    Handoff(u16),
    /// Drop it; the shard has counted the reason.
    Drop(Reason),
    /// Used up here (an ARP reply that taught us a neighbour): free it, not a drop.
    Consumed,
}

/// Something the control thread should know: a neighbour learned from ARP, or a next hop
/// to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// `ip` is at `mac` on `port`.
    Learned {
        /// Port index.
        port: u8,
        /// The neighbour's address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// Traffic waits for the MAC of `ip` on `port`: send an ARP request.
    Resolve {
        /// Port index.
        port: u8,
        /// The next hop.
        ip: Ipv4Addr,
    },
}

/// How a session got its public endpoint, kept in the session's tag so freeing it gives back
/// the right thing.
pub(super) mod tag {
    use crate::config::Mapping;

    /// No SNAT port: a port forward, a static mapping.
    pub const NONE: u8 = 0;
    /// A port of the pool, owned by this session alone (endpoint-dependent mapping).
    pub const POOL: u8 = 1;
    /// A reference on an endpoint-independent mapping.
    pub const MAPPING: u8 = 2;
    /// A reference on an endpoint-independent mapping, and the session's remote address
    /// counted for address-dependent filtering ([`crate::nat::Snat::counts_contacts`]).
    pub const MAPPING_CONTACT: u8 = 3;

    /// The tag of a reference on a mapping, counted or not.
    pub fn mapping(contacted: bool) -> u8 {
        if contacted {
            MAPPING_CONTACT
        } else {
            MAPPING
        }
    }

    /// Whether the tag is a reference on a mapping.
    pub fn is_mapping(t: u8) -> bool {
        t == MAPPING || t == MAPPING_CONTACT
    }

    /// What to give back to the NAT for a tag: the mapping behaviour it was taken under, and
    /// whether the contact was counted. `None`: nothing.
    pub fn held(t: u8) -> Option<(Mapping, bool)> {
        match t {
            POOL => Some((Mapping::EndpointDependent, false)),
            MAPPING => Some((Mapping::EndpointIndependent, false)),
            MAPPING_CONTACT => Some((Mapping::EndpointIndependent, true)),
            _ => None,
        }
    }
}

/// What stage 1 learned about a packet: 32 bytes, so passing it between stages is two
/// vector moves. (The VLAN tags are not kept: only replies the appliance builds need them,
/// and those read them again from the frame, whose Ethernet header nothing changed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub key: FlowKey,
    pub l3: u16,
    pub l4: u16,
    pub end: u16,
    pub kind: Kind,
    pub tcp_flags: TcpFlags,
    pub icmp_type: u8,
}

impl Meta {
    /// Where the IPv4 header of an untagged frame starts: a packet whose header starts
    /// elsewhere came with VLAN tags.
    pub const UNTAGGED_L3: u16 = crate::packet::ethernet::HEADER_LEN as u16;

    /// Whether the frame came with VLAN tags.
    #[inline(always)]
    pub fn tagged(&self) -> bool {
        self.l3 != Self::UNTAGGED_L3
    }

    /// Where the packet's headers lie in its frame.
    #[inline(always)]
    pub fn offsets(&self) -> Offsets {
        Offsets {
            l3: usize::from(self.l3),
            l4: usize::from(self.l4),
            end: usize::from(self.end),
        }
    }

    /// Whether forwarding the packet would take its TTL to 0 (RFC 1812 section 5.3.1): it
    /// is answered with time exceeded instead. `bytes` is the frame stage 1 validated.
    pub fn ttl_runs_out(&self, bytes: &[u8]) -> bool {
        let ip = Ipv4Packet::new_unchecked(&bytes[usize::from(self.l3)..usize::from(self.end)]);
        ip.ttl() <= 1
    }

    /// Stage 1's facts of a common frame ([`common_ipv4`]), written in place: the same as
    /// [`Shard::classify`] finds.
    #[inline(always)]
    pub fn set_common(&mut self, c: &Common) {
        let (kind, tcp_flags, protocol) = if c.tcp {
            (Kind::Tcp, c.tcp_flags, IpProtocol::Tcp)
        } else {
            (Kind::Udp, TcpFlags(0), IpProtocol::Udp)
        };
        self.key = FlowKey::from_raw(c.src_addr, c.dst_addr, c.src_port, c.dst_port, protocol);
        self.l3 = Common::L3_OFFSET as u16;
        self.l4 = Common::L4_OFFSET as u16;
        self.end = c.l3_end as u16;
        self.kind = kind;
        self.tcp_flags = tcp_flags;
        self.icmp_type = 0;
    }
}

/// The transport of a packet, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Tcp,
    Udp,
    IcmpEcho,
    IcmpError,
    IcmpOther,
    OtherProto,
    Arp,
}

impl Kind {
    /// Whether packets of this kind belong to sessions (and are looked up in stage 2).
    #[inline(always)]
    pub fn has_session(self) -> bool {
        matches!(self, Kind::Tcp | Kind::Udp | Kind::IcmpEcho)
    }
}

pub(super) const EMPTY_META: Meta = Meta {
    key: FlowKey::from_raw(0, 0, 0, 0, IpProtocol::of(0)),
    l3: 0,
    l4: 0,
    end: 0,
    kind: Kind::OtherProto,
    tcp_flags: TcpFlags(0),
    icmp_type: 0,
};

/// Pending resolution requests are remembered this long (seconds) to avoid asking again for
/// every packet.
const RESOLVE_HOLDOFF: u32 = 1;
const NOTES_MAX: usize = 32;

/// How many lookups behind the one it starts stage 1 takes the second step of
/// ([`Shard::start_lookup`]): enough packets of parsing (about 10 ns each) to cover a bucket's
/// load from memory.
const LAG: usize = 16;

// A chunk's packets and lookups are tracked in 32-bit masks (`special`, `misses`).
const _: () = assert!(BURST_MAX <= 32);

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
        })
    }
}

/// One worker's shard of the appliance state. Only its worker touches it.
pub struct Shard {
    pub(super) worker: u16,
    pub(super) sharding: Sharding,
    pub(super) table: FlowTable,
    pub(super) snat: Snat,
    pub(super) counters: Arc<ShardCounters>,
    pub(super) neigh: NeighbourCache,
    pub(super) rx_caps: ChecksumCaps,
    /// Policy generation last synchronised (timeouts, forward reservations).
    policy_generation: Option<u64>,
    /// Scratch for replies the appliance builds (ICMP errors quote the packet they answer).
    pub(super) scratch: Box<[u8]>,
    notes: [Option<Note>; NOTES_MAX],
    notes_len: usize,
    /// Recently requested resolutions: (port, ip, time).
    resolving: [(u8, u32, u32); 16],
    resolving_next: usize,
    /// Packets forwarded since the counters were last updated (once per burst).
    forwarded: u64,
    // Per-burst scratch, sized for one chunk: stage 1's results by packet, and the lookups in
    // flight (probe, second step) with the packet each is for.
    metas: [Meta; BURST_MAX],
    probes: [Probe; BURST_MAX],
    pending: [Pending; BURST_MAX],
    pos: [u8; BURST_MAX],
}

impl std::fmt::Debug for Shard {
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
        let timeouts = Timeouts::default();
        let table = match config.seed {
            Some(seed) => FlowTable::with_seed(config.capacity, timeouts, seed),
            None => FlowTable::new(config.capacity, timeouts),
        };
        let snat = Snat::new(
            config.worker,
            *config.sharding.slices(),
            &config.pool,
            config.capacity as usize,
            0x5eed ^ config.worker as u64,
        );
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
            notes: [None; NOTES_MAX],
            notes_len: 0,
            resolving: [(0, 0, 0); 16],
            resolving_next: 0,
            forwarded: 0,
            metas: [EMPTY_META; BURST_MAX],
            probes: [Probe::default(); BURST_MAX],
            pending: [Pending::default(); BURST_MAX],
            pos: [0; BURST_MAX],
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

    /// Asks for `ip` on `port` to be resolved, at most once a second.
    pub(super) fn want_neighbour(&mut self, port: u8, ip: Ipv4Addr, now: u32) {
        let raw = u32::from(ip);
        if self
            .resolving
            .iter()
            .any(|&(p, i, t)| p == port && i == raw && now.wrapping_sub(t) < RESOLVE_HOLDOFF)
        {
            return;
        }
        self.resolving[self.resolving_next] = (port, raw, now);
        self.resolving_next = (self.resolving_next + 1) % self.resolving.len();
        self.note(Note::Resolve { port, ip });
    }

    /// Counts a drop and says so.
    #[inline]
    pub(super) fn discard(&self, reason: impl Into<Reason>) -> Disposition {
        let r = reason.into();
        self.counters.count_drop(r);
        Disposition::Drop(r)
    }

    /// Brings the shard in line with a new policy generation: timeouts, and the ports held
    /// back for port forwards. Runs once per generation, not per packet.
    fn sync_policy(&mut self, policy: &Policy) {
        if self.policy_generation == Some(policy.generation) {
            return;
        }
        self.policy_generation = Some(policy.generation);
        let t = policy.sessions.timeouts;
        self.table.set_timeouts(Timeouts {
            tcp_established: t.tcp_established,
            tcp_transitory: t.tcp_transitory,
            udp: t.udp,
            icmp: t.icmp,
        });
        self.snat.reserve(policy.forwards.public_ports());
        let count = policy.snat.filtering == Filtering::AddressDependent;
        if count != self.snat.counts_contacts() {
            self.snat.set_counts_contacts(count);
            if count {
                self.count_open_contacts();
            }
        }
    }

    /// Counts the contacts of the sessions already open on endpoint-independent mappings, when
    /// a policy turns address-dependent filtering on: from then on every live session on a
    /// mapping is counted, as if the filtering had always been address-dependent. O(capacity),
    /// once for such a reload.
    fn count_open_contacts(&mut self) {
        for idx in 0..self.table.capacity() {
            let Some(s) = self.table.get_mut(idx) else {
                continue;
            };
            if s.tag() != tag::MAPPING {
                continue;
            }
            s.set_tag(tag::MAPPING_CONTACT);
            let outside = *s.outside();
            self.snat.add_contact(
                outside.protocol(),
                (outside.dst_addr(), outside.dst_port()),
                outside.src_addr(),
            );
        }
    }

    /// Processes a burst of packets received on `in_port` at time `now` (seconds): each
    /// packet is rewritten in place (or turned into a reply) and `out[i]` says what to do
    /// with `pkts[i]`.
    ///
    /// # Panics
    /// If `out` is shorter than `pkts`.
    pub fn process<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkts: &mut [B],
        out: &mut [Disposition],
    ) {
        assert!(out.len() >= pkts.len(), "one action per packet");
        self.sync_policy(env.policy);
        for (pkts, out) in pkts.chunks_mut(BURST_MAX).zip(out.chunks_mut(BURST_MAX)) {
            self.chunk(env, now, in_port, pkts, out);
        }
        self.counters
            .add_forwarded(std::mem::take(&mut self.forwarded));
    }

    fn chunk<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkts: &mut [B],
        out: &mut [Disposition],
    ) {
        // Stage 1: parse, own, key. Packets without a session (ARP, ICMP errors, other
        // protocols) wait in `special` for the end of the burst.
        let mut lookups = 0;
        let mut special = 0u32;
        // Bit `j`: lookup `j` found no candidate (a new flow, most likely).
        let mut misses = 0u32;
        let ours = env.macs.get(usize::from(in_port)).map(|m| m.0);
        for (i, pkt) in pkts.iter().enumerate() {
            let bytes = pkt.bytes();
            // The common frame, unicast to us, is read straight into its `Meta`.
            if let Some(c) = self.common(ours, bytes) {
                self.metas[i].set_common(&c);
                if self.sharding.workers() > 1 {
                    let owner = self.owner_of_key(env, &self.metas[i].key);
                    if owner != usize::from(self.worker) {
                        self.counters.bump_handoff();
                        out[i] = Disposition::Handoff(owner as u16);
                        continue;
                    }
                }
                self.pos[lookups] = i as u8;
                let key = self.metas[i].key;
                misses |= self.start_lookup(lookups, &key);
                lookups += 1;
                continue;
            }
            match self.classify(env, in_port, bytes) {
                Ok(meta) => {
                    self.metas[i] = meta;
                    // A tagged frame is never forwarded, so it needs no session.
                    if meta.kind.has_session() && !meta.tagged() {
                        self.pos[lookups] = i as u8;
                        misses |= self.start_lookup(lookups, &meta.key);
                        lookups += 1;
                    } else {
                        special |= 1 << i;
                    }
                }
                Err(action) => out[i] = action,
            }
        }
        // Stage 2's second step for the last LAG lookups, which stage 1 had no later packets
        // to overlap with.
        for j in lookups.saturating_sub(LAG)..lookups {
            misses |= self.advance(j);
        }
        // New flows: the outside key of each new session has an index bucket no lookup read.
        // Load them all now, together, from the outside key SNAT will most likely give.
        while misses != 0 {
            let j = misses.trailing_zeros() as usize;
            misses &= misses - 1;
            let meta = &self.metas[usize::from(self.pos[j])];
            super::slow::prefetch_new_session(self, env.policy, &meta.key);
        }
        // Stage 3: finish the lookup (confirm the key on the session, now in cache); hits take
        // the fast path, misses the slow path. An earlier packet of the burst may have changed
        // the table (closed a session, created one, moved index entries): `finish` then looks
        // again, so each packet sees the table as it is.
        for j in 0..lookups {
            let i = usize::from(self.pos[j]);
            let meta = self.metas[i];
            out[i] = match self
                .table
                .finish(&meta.key, self.probes[j], self.pending[j])
            {
                Some(hit) => self.hit(env, now, in_port, &mut pkts[i], &meta, hit),
                None => self.miss(env, now, in_port, &mut pkts[i], &meta),
            };
        }
        while special != 0 {
            let i = special.trailing_zeros() as usize;
            special &= special - 1;
            let meta = self.metas[i];
            out[i] = self.special(env, now, in_port, &mut pkts[i], &meta);
        }
    }

    /// Stage 2, run from stage 1's loop: hashes lookup `j`'s key and prefetches its index
    /// bucket, then takes the second step of lookup `j - LAG` (matches its bucket, loaded by
    /// now, and prefetches its session).
    ///
    /// So the bucket loads overlap with parsing the next packets and the session loads with
    /// parsing the rest, where two passes after stage 1 (every bucket, then every session)
    /// left the core waiting on the first bucket and again on the first session of each
    /// burst. Measured with `pipeline_rate` at 1 M sessions, windows of the two orders
    /// interleaved in one process (so both see the same machine): the median window 3 to 4 ns
    /// a packet faster (61 against 64.5), the best 1 to 2 ns.
    ///
    /// Stage 3 stays a pass of its own, after every lookup of the chunk was started. A
    /// software pipeline that also interleaves stage 3 (finish packet `j` while starting
    /// `j + d`) measured slower on this machine at every distance tried, in bursts of 32 and
    /// in one continuous pipeline over bursts of 128: 63 to 81 ns a packet at 1 M sessions
    /// against 57. With lines still loading, each packet of stage 3 waits on the memory
    /// system; as a pass over loaded lines it runs at the speed of a small table.
    ///
    /// Nor does overlapping bursts pay, measured with `pipeline_rate`, windows of both orders
    /// alternated in one process:
    /// - stage 3 of a burst run after stage 1 of the next, so one burst's lines load while
    ///   the other's packets are processed: at 1 M sessions within the noise (best window
    ///   0.8 to 6.5 ns a packet faster in six runs; 4.4 faster, 3.4 and 7.9 slower in three
    ///   more), at 1 K 0.4 to 2.9 ns slower;
    /// - three bursts in one loop (stage 1 of one, stage 2 of the one before, stage 3 of the
    ///   one before that, so each line has a whole burst to load): 7.3 to 9.1 ns slower at
    ///   1 M, 1.2 to 4.2 at 1 K.
    ///
    /// At 1 M sessions the core waits on the memory system's line rate, not on the latency
    /// of any one line: timed apart, even the pass that only parses and prefetches took 27
    /// to 31 ns a packet, against 15 to 17 at 1 K. Moving the wait around does not remove it.
    ///
    /// Returns the miss bit ([`Shard::advance`]) of lookup `j - LAG`, if it took that step.
    #[inline(always)]
    fn start_lookup(&mut self, j: usize, key: &FlowKey) -> u32 {
        self.probes[j] = self.table.start(key);
        if j >= LAG {
            self.advance(j - LAG)
        } else {
            0
        }
    }

    /// The second step of lookup `j` ([`FlowTable::advance`]). Returns bit `j` set if it found
    /// no candidate (a new flow, most likely), for the pass that prefetches what new sessions
    /// will touch.
    #[inline(always)]
    fn advance(&mut self, j: usize) -> u32 {
        let pending = self.table.advance(self.probes[j]);
        self.pending[j] = pending;
        u32::from(pending.is_miss()) << j
    }

    /// The common frame (untagged IPv4 TCP or UDP without options, unicast to our MAC
    /// `ours`): stage 1 reads it straight into its [`Meta`], which is what
    /// [`Shard::classify`] would give ([`common_ipv4`] is [`parse_frame`]'s own fast path).
    #[inline(always)]
    pub(super) fn common(&self, ours: Option<[u8; 6]>, bytes: &[u8]) -> Option<Common> {
        let c = common_ipv4(bytes, &self.rx_caps)?;
        // A group address is never ours: the general path drops IPv4 sent to one.
        let unicast = ours.is_some_and(|m| m[0] & 1 == 0);
        (unicast && bytes.first_chunk::<6>() == ours.as_ref()).then_some(c)
    }

    /// Stage 1 for one packet: parse and validate, check the frame is for us, decide the
    /// owner. `Err` carries the final action (a drop, or a handoff).
    #[inline(never)]
    pub(super) fn classify(
        &self,
        env: &Env<'_>,
        in_port: u8,
        bytes: &[u8],
    ) -> Result<Meta, Disposition> {
        let parsed = parse_frame(bytes, &self.rx_caps).map_err(|e| self.discard(e))?;
        // Unicast frames must be for this port; broadcast and multicast frames carry ARP only:
        // an IPv4 packet received as a link-layer broadcast or multicast is never forwarded
        // (RFC 1812 section 5.3.4) nor answered.
        let dst_mac = &bytes[..6];
        let group = dst_mac[0] & 1 != 0;
        if !group {
            let ours = env
                .macs
                .get(usize::from(in_port))
                .is_some_and(|m| m.0 == *dst_mac);
            if !ours {
                return Err(self.discard(Discard::NotForUs));
            }
        }
        let l3 = parsed.l3_offset() as u16;
        let m = match parsed.l3 {
            L3::Ipv4(_) if group => return Err(self.discard(Discard::NotForUs)),
            L3::Ipv4(m) => m,
            L3::Arp => {
                return Ok(Meta {
                    l3,
                    kind: Kind::Arp,
                    ..EMPTY_META
                })
            }
            L3::Ipv6(_) => return Err(self.discard(Discard::Ipv6)),
            L3::Other(_) => return Err(self.discard(Discard::NotIp)),
        };
        let t = m.tuple;
        let (kind, tcp_flags, icmp_type) = match m.l4 {
            L4::Tcp(f) => (Kind::Tcp, f, 0),
            L4::Udp => (Kind::Udp, TcpFlags(0), 0),
            L4::Icmp(msg) => {
                let ty = u8::from(msg);
                let kind = match msg {
                    IcmpMessage::EchoRequest | IcmpMessage::EchoReply => Kind::IcmpEcho,
                    m if m.is_error() => Kind::IcmpError,
                    _ => Kind::IcmpOther,
                };
                (kind, TcpFlags(0), ty)
            }
            L4::Fragment => return Err(self.discard(Discard::Fragment)),
            L4::Other => (Kind::OtherProto, TcpFlags(0), 0),
        };
        let key = FlowKey::of(&t);
        let meta = Meta {
            key,
            l3,
            l4: m.l4_offset() as u16,
            end: m.l3_end() as u16,
            kind,
            tcp_flags,
            icmp_type,
        };
        if self.sharding.workers() > 1 {
            let owner = self.owner(env, bytes, &meta);
            if owner != usize::from(self.worker) {
                self.counters.bump_handoff();
                return Err(Disposition::Handoff(owner as u16));
            }
        }
        Ok(meta)
    }

    /// The worker that owns the session of a packet with key `k`.
    fn owner_of_key(&self, env: &Env<'_>, k: &FlowKey) -> usize {
        self.sharding.of_packet(
            env.policy,
            self.snat.addresses(),
            k.protocol(),
            (k.src_addr(), k.src_port()),
            (k.dst_addr(), k.dst_port()),
        )
    }

    /// The worker that owns a packet's session.
    fn owner(&self, env: &Env<'_>, bytes: &[u8], meta: &Meta) -> usize {
        match meta.kind {
            Kind::Tcp | Kind::Udp | Kind::IcmpEcho => self.owner_of_key(env, &meta.key),
            Kind::IcmpError => {
                // The owner of the quoted packet's reply.
                let quoted = bytes
                    .get(usize::from(meta.l4)..usize::from(meta.end))
                    .and_then(|icmp_bytes| icmp::Packet::new_checked(icmp_bytes).ok())
                    .and_then(|p| p.quote().ok().and_then(|q| q.five_tuple().ok()));
                match quoted {
                    Some(q) => self.sharding.of_packet(
                        env.policy,
                        self.snat.addresses(),
                        q.protocol,
                        (q.dst_addr, q.dst_port),
                        (q.src_addr, q.src_port),
                    ),
                    None => usize::from(self.worker),
                }
            }
            // Stateless: answered by whoever received it.
            Kind::Arp | Kind::IcmpOther | Kind::OtherProto => usize::from(self.worker),
        }
    }

    /// The fast path: a packet of a known session.
    ///
    /// It fetches the session record once, for the checks, the count and the rewrite. (Three
    /// fetches, each with its own bounds and liveness test, cost 22 instructions a packet more
    /// by callgrind: the compiler cannot keep a record across the writes in between.)
    #[inline(always)]
    pub(super) fn hit<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        let generation = env.policy.generation as u32;
        let len = pkt.bytes().len() as u32;
        let Some(s) = self.table.get_mut(hit.index) else {
            return self.discard(Discard::SessionGone);
        };
        if !arrives_right(env, in_port, hit.side, s) {
            return self.discard(Discard::SpoofedSource);
        }
        if s.policy_generation() != generation {
            return self.hit_recheck(env, now, in_port, pkt, meta, hit);
        }
        s.count(len);
        let idle = now > s.last_seen();
        let to = *s.key(hit.side.other());
        let deltas = s.deltas_from(hit.side);
        let tcp = (meta.kind == Kind::Tcp).then_some(meta.tcp_flags);
        self.table.follow(hit, now, tcp, idle);
        self.send_translated(env, now, in_port, pkt, meta, &to, deltas)
    }

    /// The fast path of a session admitted under an older policy: checks it against the
    /// current one first (once per session and policy change), then takes the fast path,
    /// which the recheck made current.
    #[cold]
    #[inline(never)]
    fn hit_recheck<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        if !self.recheck(env, hit.index) {
            return self.discard(Discard::PolicyRecheckDeny);
        }
        self.hit(env, now, in_port, pkt, meta, hit)
    }

    /// Translates a packet of session `hit` (it arrived on `hit.side`), decrements its TTL,
    /// routes it and addresses the frame to the next hop: [`Shard::send_translated`] with the
    /// session's rewrite. The tail of session creation.
    #[inline(always)]
    pub(super) fn send_session<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
        hit: Hit,
    ) -> Disposition {
        let Some(s) = self.table.get(hit.index) else {
            return self.discard(Discard::SessionGone);
        };
        let to = *s.key(hit.side.other());
        let deltas = s.deltas_from(hit.side);
        self.send_translated(env, now, in_port, pkt, meta, &to, deltas)
    }

    /// Translates a packet to `to`, the session's key of the other side, with the checksum
    /// `deltas` of its direction ([`translate`]), decrements its TTL, routes it and
    /// addresses the frame to the next hop. A packet whose TTL runs out is answered with an
    /// ICMP time exceeded instead.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_translated<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        in_port: u8,
        pkt: &mut B,
        meta: &Meta,
        to: &FlowKey,
        deltas: ChecksumDeltas,
    ) -> Disposition {
        let (addrs, ports) = to.reverse_wire();
        let protocol = meta.key.protocol();
        match translate(
            pkt.bytes_mut(),
            meta.offsets(),
            protocol,
            addrs,
            ports,
            deltas,
        ) {
            Some(dst) => self.forward(env, now, pkt, meta, dst),
            None => self.time_exceeded(env, in_port, pkt, meta),
        }
    }

    /// The end of every forwarded packet, its IPv4 header final (TTL decremented): clamps
    /// the MSS of a SYN, routes it towards `dst`, writes the next hop's and our MAC.
    #[inline(always)]
    pub(super) fn forward<B: PacketBuf>(
        &mut self,
        env: &Env<'_>,
        now: u32,
        pkt: &mut B,
        meta: &Meta,
        dst: Ipv4Addr,
    ) -> Disposition {
        if meta.kind == Kind::Tcp && meta.tcp_flags.syn() {
            if let Some(mss) = env.policy.sessions.mss_clamp {
                let (l4, end) = (usize::from(meta.l4), usize::from(meta.end));
                if let Some(Ok(mut tcp)) =
                    pkt.bytes_mut().get_mut(l4..end).map(TcpPacket::new_checked)
                {
                    tcp.clamp_mss(mss);
                }
            }
        }
        let Some(hop) = env.policy.next_hop(dst) else {
            return self.discard(Discard::NoRoute);
        };
        let port = hop.port as u8;
        let Some(mac) = self.neigh.lookup(env.neighbours, port, hop.ip) else {
            self.want_neighbour(port, hop.ip, now);
            return self.discard(Discard::NeighbourUnresolved);
        };
        const NONE: EthernetAddress = EthernetAddress([0; 6]);
        let src = env.macs.get(hop.port).unwrap_or(&NONE);
        set_macs(pkt.bytes_mut(), &mac, src);
        self.forwarded += 1;
        Disposition::Forward(port)
    }

    /// Frees expired sessions, at most `budget`, releasing their NAT resources. Bounded work
    /// for the worker loop's periodic tick.
    pub fn expire(&mut self, now: u32, budget: u32) -> u32 {
        let snat = &mut self.snat;
        let n = self.table.expire(now, budget, |_, s| release(snat, s));
        self.counters.add_expired(u64::from(n));
        n
    }

    /// Ends session `idx` now (policy recheck denied it), releasing its NAT resources.
    pub(super) fn close(&mut self, idx: u32) {
        if let Some(s) = self.table.get(idx) {
            release(&mut self.snat, s);
            self.table.remove(idx);
            self.counters.add_closed(1);
        }
    }

    /// Re-checks session `idx` against the current policy; false if it was closed.
    fn recheck(&mut self, env: &Env<'_>, idx: u32) -> bool {
        let generation = env.policy.generation as u32;
        let keep = env.policy.sessions.on_reload == OnReload::Keep || {
            let Some(s) = self.table.get(idx) else {
                return false;
            };
            super::slow::still_allowed(env.policy, s, &self.snat)
        };
        if keep {
            if let Some(s) = self.table.get_mut(idx) {
                s.set_policy_generation(generation);
            }
            true
        } else {
            self.close(idx);
            false
        }
    }
}

/// Whether a packet that matched `side` of session `s` came in where that side's packets
/// come from: a session's inside tuple only from an inside (or one-arm) port, its outside
/// tuple only from an outside (or one-arm) port, or from an inside port when the session is
/// hairpinned (its other end is an inside host). Otherwise somebody outside forges an inside
/// host's packets (or the reverse), and the packet must not use the session.
#[inline]
pub(super) fn arrives_right(
    env: &Env<'_>,
    in_port: u8,
    side: crate::flow::Side,
    s: &Session,
) -> bool {
    use crate::config::Role;
    use crate::flow::Side;
    match (
        side,
        env.policy.ports.get(usize::from(in_port)).map(|p| p.role),
    ) {
        (Side::Inside, Some(Role::Outside)) => false,
        // The outside tuple's source is a private host only for a hairpinned session, whose
        // packets come from the inside, never from the outside port.
        (Side::Outside, Some(Role::Inside)) => env.policy.is_private(s.outside().src_addr()),
        (Side::Outside, Some(Role::Outside)) => !env.policy.is_private(s.outside().src_addr()),
        _ => true,
    }
}

/// Gives back what a session held: its pool port or its reference on a mapping.
pub(super) fn release(snat: &mut Snat, s: &Session) {
    let Some((mapping, contacted)) = tag::held(s.tag()) else {
        return;
    };
    let inside = s.inside();
    let outside = s.outside();
    snat.release(
        inside.protocol(),
        (inside.src_addr(), inside.src_port()),
        (outside.dst_addr(), outside.dst_port()),
        outside.src_addr(),
        mapping,
        contacted,
    );
}

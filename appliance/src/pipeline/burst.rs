//! A burst through the three stages (DESIGN.md, "Session table"):
//! 1. parse every packet, decide which worker owns it, build its flow key ([`super::classify`]);
//! 2. look the keys of the packets this worker owns up in the table, a burst at a time, with
//!    prefetch (the staged lookup's steps, overlapped with stage 1);
//! 3. hits take the fast path ([`super::fast`]); misses the slow path ([`super::slow`]); the
//!    packets without a session (ARP, ICMP errors, other ICMP and protocols, VLAN-tagged
//!    frames) are handled last ([`super::local`], [`super::related`]).

use super::action::Disposition;
use super::buf::PacketBuf;
use super::class::Trace;
use super::env::{Ctx, Env};
use super::shard::Shard;
use crate::flow::{FlowKey, BURST_MAX};

/// How many lookups behind the one it starts stage 1 takes the second step of
/// ([`Shard::start_lookup`]): enough packets of parsing (about 10 ns each) to cover a bucket's
/// load from memory.
const LAG: usize = 16;

// A chunk's packets and lookups are tracked in 32-bit masks (`special`, `misses`).
const _: () = assert!(BURST_MAX <= 32);

impl<T: Trace> Shard<T> {
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
        let cx = Ctx::new(env, now, in_port);
        let chunks = pkts.chunks_mut(BURST_MAX).zip(out.chunks_mut(BURST_MAX));
        if cx.tunnel.is_some() {
            for (pkts, out) in chunks {
                self.chunk::<B, true>(&cx, pkts, out);
                self.count_tunnel_drops(in_port, out);
            }
        } else {
            for (pkts, out) in chunks {
                self.chunk::<B, false>(&cx, pkts, out);
            }
        }
        self.counters
            .add_forwarded(std::mem::take(&mut self.forwarded));
    }

    /// One chunk of a burst. `TUNNEL`: it came in on a `gwlb` port ([`super::tunnel`]): no
    /// packet takes the common-frame path (a tunnel packet is a common frame outside), tunnel
    /// packets are looked up by their inner packet, tagged or not, and every stage is the
    /// tunnel's. Each kind of port has its own copy of the loop, so the others pay nothing.
    fn chunk<B: PacketBuf, const TUNNEL: bool>(
        &mut self,
        cx: &Ctx<'_>,
        pkts: &mut [B],
        out: &mut [Disposition],
    ) {
        let env = &cx.env;
        let in_port = cx.in_port;
        let tunnel = cx.tunnel.as_ref();
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
            let common = if TUNNEL {
                None
            } else {
                self.common(ours, bytes)
            };
            if let Some(c) = common {
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
            match self.classify(env, in_port, tunnel, bytes) {
                Ok(meta) => {
                    self.metas[i] = meta;
                    // A tagged frame is never forwarded, so it needs no session; a tunnel
                    // packet goes back where it came from, tags and all.
                    let routed = if TUNNEL {
                        meta.via.tunnelled() || !meta.tagged()
                    } else {
                        !meta.tagged()
                    };
                    if meta.kind.has_session() && routed {
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
        if misses != 0 {
            self.prefetch_new_sessions(env, misses);
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
                Some(hit) => self.hit::<B, TUNNEL>(cx, &mut pkts[i], &meta, hit),
                None if TUNNEL => self.tunnel_miss(cx, &mut pkts[i], &meta),
                None => self.miss(cx, &mut pkts[i], &meta),
            };
        }
        while special != 0 {
            let i = special.trailing_zeros() as usize;
            special &= special - 1;
            let meta = self.metas[i];
            out[i] = if TUNNEL {
                self.tunnel_special(cx, &mut pkts[i], &meta)
            } else {
                self.special(cx, &mut pkts[i], &meta)
            };
        }
    }

    /// Counts the drops among a chunk of a tunnel port's packets as that tunnel's.
    #[cold]
    fn count_tunnel_drops(&self, in_port: u8, out: &[Disposition]) {
        let tunnel = self.counters.tunnel(in_port);
        for d in out {
            if let Disposition::Drop(r) = d {
                tunnel.count_drop(*r);
            }
        }
    }

    /// New flows (bit `j` of `misses`: lookup `j` found no candidate): the outside key of
    /// each new session has an index bucket no lookup read. Load them all now, together,
    /// from the outside key the NAT will most likely give. Out of line: a burst of
    /// established packets skips it, and its loop keeps its registers.
    #[inline(never)]
    fn prefetch_new_sessions(&self, env: &Env<'_>, mut misses: u32) {
        while misses != 0 {
            let j = misses.trailing_zeros() as usize;
            misses &= misses - 1;
            let meta = &self.metas[usize::from(self.pos[j])];
            self.prefetch_new_session(env.policy, &meta.key);
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
}

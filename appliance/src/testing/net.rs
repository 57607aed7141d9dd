//! [`Net`]: shards on the two-arm topology, with a fake clock, driven one frame or one burst
//! at a time.

use super::{neighbours, policy, seen, Seen, MAC_LAN, MAC_WAN};
use crate::flow::{FlowKey, HashSeed, TcpState};
use crate::packet::EthernetAddress;
use crate::pipeline::{
    Disposition, Env, Health, Neighbours, PacketBuf, Reason, Shard, ShardConfig, ShardCounters,
    VecBuf,
};
use crate::policy::Policy;
use std::sync::Arc;

/// Sessions per test shard: a million per table would make each test slow.
const CAPACITY: u32 = 4096;

/// One shard (or several) on the topology of [`super`], a fake clock starting at 1000 s,
/// and the neighbour table of [`neighbours`]. Every field is the test's to change.
pub struct Net {
    /// The shards, worker 0 first.
    pub shards: Vec<Shard>,
    /// The policy in force.
    pub policy: Policy,
    /// The neighbour table in force.
    pub neighbours: Neighbours,
    /// Each port's MAC, by port index.
    pub macs: Vec<EthernetAddress>,
    /// The clock, seconds.
    pub now: u32,
    /// What the health probe answers.
    pub health: Health,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("shards", &self.shards.len())
            .field("sessions", &self.sessions())
            .field("generation", &self.policy.generation)
            .field("now", &self.now)
            .finish()
    }
}

impl Net {
    /// One shard, the policy of [`super::BASE`] followed by `extra`.
    pub fn new(extra: &str) -> Net {
        Net::with_workers(extra, 1)
    }

    /// `workers` shards sharing the policy of [`super::BASE`] followed by `extra`.
    pub fn with_workers(extra: &str, workers: usize) -> Net {
        Net::with_policy(policy(extra, 1), workers)
    }

    /// `workers` shards sharing `policy`.
    ///
    /// # Panics
    /// If the policy's SNAT ports cannot be split between the workers.
    pub fn with_policy(policy: Policy, workers: usize) -> Net {
        let shards = (0..workers)
            .map(|w| {
                let mut c = ShardConfig::from_policy(&policy, w, workers, 42).expect("slices");
                c.seed = Some(HashSeed::fixed(1, 2, 3));
                c.capacity = c.capacity.min(CAPACITY);
                Shard::new(c, Arc::new(ShardCounters::default()))
            })
            .collect();
        Net {
            shards,
            policy,
            neighbours: neighbours(),
            macs: vec![MAC_LAN, MAC_WAN],
            now: 1000,
            health: Health::Serving,
        }
    }

    /// Sends one frame into `port` of shard 0, following a handoff to the shard that owns
    /// the flow: the disposition and the frame as it leaves.
    ///
    /// # Panics
    /// If the packet is handed off twice (the owner function would disagree between
    /// workers).
    pub fn send(&mut self, port: u8, frame: impl AsRef<[u8]>) -> (Disposition, Vec<u8>) {
        let mut at = 0usize;
        let mut buf = [VecBuf::new(frame.as_ref())];
        let mut out = [Disposition::Consumed];
        for _ in 0..2 {
            self.process(at, port, &mut buf, &mut out);
            match out[0] {
                Disposition::Handoff(w) => {
                    assert_ne!(usize::from(w), at, "handoff to itself");
                    at = usize::from(w);
                }
                _ => return (out[0], buf[0].bytes().to_vec()),
            }
        }
        panic!("handed off twice: the owner function disagrees between workers");
    }

    /// Sends `frame` into `port` and asserts that it leaves by `out`: the frame as it
    /// leaves, read back with every checksum verified ([`seen`]).
    ///
    /// # Panics
    /// If the frame is not sent on out of `out`, or leaves with a wrong checksum.
    #[track_caller]
    pub fn forwarded(&mut self, port: u8, frame: impl AsRef<[u8]>, out: u8) -> Seen {
        let (a, f) = self.send(port, frame);
        assert_eq!(a, Disposition::Forward(out), "{f:02x?}");
        seen(&f)
    }

    /// Sends `frame` into `port` and asserts that it is dropped for `reason`.
    ///
    /// # Panics
    /// If it is not.
    #[track_caller]
    pub fn dropped(&mut self, port: u8, frame: impl AsRef<[u8]>, reason: impl Into<Reason>) {
        let (a, f) = self.send(port, frame);
        assert_eq!(a, Disposition::Drop(reason.into()), "{f:02x?}");
    }

    /// One burst of frames received on `port` by shard 0 (handoffs not followed).
    pub fn burst(&mut self, port: u8, frames: &[&[u8]]) -> Vec<(Disposition, Vec<u8>)> {
        let mut buf: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
        let mut out = vec![Disposition::Consumed; frames.len()];
        self.process(0, port, &mut buf, &mut out);
        out.into_iter()
            .zip(buf.iter().map(|b| b.bytes().to_vec()))
            .collect()
    }

    fn process(&mut self, shard: usize, port: u8, buf: &mut [VecBuf], out: &mut [Disposition]) {
        let env = Env {
            policy: &self.policy,
            neighbours: &self.neighbours,
            macs: &self.macs,
            health: self.health,
        };
        self.shards[shard].process(&env, self.now, port, buf, out);
    }

    /// Packets dropped for `r`, over every shard.
    pub fn drops(&self, r: impl Into<Reason>) -> u64 {
        let r = r.into();
        self.shards.iter().map(|s| s.counters().drops_of(r)).sum()
    }

    /// Sessions, over every shard.
    pub fn sessions(&self) -> u32 {
        self.shards.iter().map(|s| s.table().len()).sum()
    }

    /// Runs expiry on every shard, without a budget.
    pub fn expire_all(&mut self) {
        for s in &mut self.shards {
            s.expire(self.now, u32::MAX);
        }
    }

    /// Lets `secs` seconds pass and runs expiry: the sessions left.
    pub fn idle(&mut self, secs: u32) -> u32 {
        self.now += secs;
        self.expire_all();
        self.sessions()
    }

    /// SNAT ports in use, over every shard.
    pub fn ports_in_use(&self) -> usize {
        let shards = self.shards.iter();
        shards
            .flat_map(|s| s.snat().ports_in_use())
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Puts the policy of [`super::BASE`] followed by `extra` in force, at the next
    /// generation.
    pub fn reload(&mut self, extra: &str) {
        self.policy = policy(extra, self.policy.generation + 1);
    }

    /// The TCP state and last-seen time of shard 0's session with `key`.
    pub fn session(&self, key: &FlowKey) -> Option<(TcpState, u32)> {
        let t = self.shards[0].table();
        let hit = t.lookup(key)?;
        t.get(hit.index).map(|s| (s.tcp_state(), s.last_seen()))
    }
}

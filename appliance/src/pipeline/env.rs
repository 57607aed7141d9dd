//! What a worker reads besides its own sessions: the policy, the neighbour table, the
//! ports' MAC addresses and whether the appliance drains. The control thread publishes new
//! policies and neighbour tables; workers take the current ones once per burst.

use crate::config::Role;
use crate::packet::EthernetAddress;
use crate::policy::{Policy, Tunnel};
use hashbrown::HashMap;
use std::net::Ipv4Addr;

/// The neighbour (ARP) table: which MAC answers for an address on a port. Immutable once
/// published; every change makes a new table with the next generation.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    generation: u64,
    entries: HashMap<(u8, Ipv4Addr), EthernetAddress>,
}

impl Neighbours {
    /// An empty table of generation 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with `entries`, at `generation`.
    pub fn with(
        generation: u64,
        entries: impl IntoIterator<Item = ((u8, Ipv4Addr), EthernetAddress)>,
    ) -> Self {
        Neighbours {
            generation,
            entries: entries.into_iter().collect(),
        }
    }

    /// The generation (changes with every published table).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The MAC of `ip` on `port`.
    pub fn get(&self, port: u8, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries.get(&(port, ip)).copied()
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = ((u8, Ipv4Addr), EthernetAddress)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, *v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether the appliance asks for new flows: what its health probe says. An operator drains
/// it (`appliance drain`, or a stop with `local.health_probe.drain_on_stop`) so that a load
/// balancer sends new flows elsewhere before maintenance; the data path itself carries on
/// exactly as before, sessions and new flows alike. The control thread sets it; workers read
/// it once per burst (a relaxed atomic load), never under a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Health {
    /// The probe passes: HTTP 200, a SYN-ACK.
    #[default]
    Serving,
    /// The probe fails: HTTP 503, a reset to a SYN.
    Draining,
}

impl Health {
    /// The name `appliance stats` shows.
    pub fn name(self) -> &'static str {
        match self {
            Health::Serving => "serving",
            Health::Draining => "draining",
        }
    }
}

/// One burst's view of the world, borrowed from the published snapshots.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The policy in force.
    pub policy: &'a Policy,
    /// The neighbour table in force.
    pub neighbours: &'a Neighbours,
    /// Each port's MAC address, by port index.
    pub macs: &'a [EthernetAddress],
    /// What the health probe answers.
    pub health: Health,
}

/// What every stage reads of the burst it processes: the world ([`Env`]), the clock, the
/// port the burst arrived on and that port's role. Built once per burst and passed by
/// reference, so a stage's arguments are this and the packet.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The policy, neighbours and MACs in force.
    pub env: Env<'a>,
    /// The clock (seconds).
    pub now: u32,
    /// The port the burst arrived on.
    pub in_port: u8,
    /// That port's role (`None`: a port the policy does not know).
    pub role: Option<Role>,
    /// That port's tunnel, on a `gwlb` port.
    pub tunnel: Option<Tunnel>,
}

impl<'a> Ctx<'a> {
    /// The context of a burst that arrived on `in_port` at `now`.
    pub fn new(env: &Env<'a>, now: u32, in_port: u8) -> Ctx<'a> {
        let port = env.policy.ports.get(usize::from(in_port));
        Ctx {
            env: *env,
            now,
            in_port,
            role: port.map(|p| p.role),
            tunnel: port.and_then(|p| p.tunnel),
        }
    }
}

const CACHE_SLOTS: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// [`Slot::tag`] of the next hop held, 0 for none: one compare tells a hit.
    tag: u64,
    generation: u64,
    mac: [u8; 6],
}

impl Slot {
    /// `ip` and `port` in one word, with a bit set so that no next hop's tag is 0.
    #[inline(always)]
    fn tag(port: u8, ip: u32) -> u64 {
        u64::from(ip) | u64::from(port) << 32 | 1 << 40
    }
}

/// A worker's direct-mapped cache in front of the neighbour table, so the per-packet next-hop
/// MAC costs an array read, not a hash-map lookup. Entries from an older table generation are
/// misses.
///
/// The last next hop found is also kept apart and asked first: consecutive packets mostly go
/// to the same one (everything leaving through a gateway), and that test is a few compares,
/// without the hash.
#[derive(Debug)]
pub struct NeighbourCache {
    slots: Box<[Slot]>,
    last: Slot,
}

impl Default for NeighbourCache {
    fn default() -> Self {
        NeighbourCache {
            slots: vec![Slot::default(); CACHE_SLOTS].into_boxed_slice(),
            last: Slot::default(),
        }
    }
}

impl NeighbourCache {
    fn slot(port: u8, raw: u32) -> usize {
        ((raw.wrapping_mul(0x9e37_79b1) >> 22) as usize ^ usize::from(port)) & (CACHE_SLOTS - 1)
    }

    /// Remembers what this worker just learned from ARP, valid while `table` is the
    /// published one: replies to the host that asked need not wait for the control thread
    /// to publish a new table.
    pub fn learn(&mut self, table: &Neighbours, port: u8, ip: Ipv4Addr, mac: EthernetAddress) {
        let raw = u32::from(ip);
        let slot = Slot {
            tag: Slot::tag(port, raw),
            generation: table.generation(),
            mac: mac.0,
        };
        self.slots[Self::slot(port, raw)] = slot;
        if self.last.tag == slot.tag {
            self.last = slot;
        }
    }

    /// The MAC of `ip` on `port`, from the cache or else the table.
    #[inline(always)]
    pub fn lookup(
        &mut self,
        table: &Neighbours,
        port: u8,
        ip: Ipv4Addr,
    ) -> Option<EthernetAddress> {
        let raw = u32::from(ip);
        let generation = table.generation();
        let tag = Slot::tag(port, raw);
        let hit = |s: &Slot| s.tag == tag && s.generation == generation;
        if hit(&self.last) {
            return Some(EthernetAddress(self.last.mac));
        }
        let i = Self::slot(port, raw);
        if !hit(&self.slots[i]) {
            let mac = table.get(port, ip)?;
            self.slots[i] = Slot {
                tag,
                generation,
                mac: mac.0,
            };
        }
        self.last = self.slots[i];
        Some(EthernetAddress(self.last.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_next_hop_is_never_stale() {
        let (x, y) = (Ipv4Addr::new(10, 0, 1, 10), Ipv4Addr::new(10, 0, 1, 11));
        let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let b = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let t1 = Neighbours::with(1, [((0, x), a), ((0, y), b), ((1, x), b)]);
        let mut c = NeighbourCache::default();
        for _ in 0..3 {
            assert_eq!(c.lookup(&t1, 0, x), Some(a));
            assert_eq!(c.lookup(&t1, 0, x), Some(a));
            assert_eq!(c.lookup(&t1, 0, y), Some(b));
            assert_eq!(c.lookup(&t1, 1, x), Some(b), "same address, other port");
        }
        assert_eq!(c.lookup(&t1, 0, x), Some(a));
        c.learn(&t1, 0, x, b);
        assert_eq!(
            c.lookup(&t1, 0, x),
            Some(b),
            "relearned under the same table"
        );
        let t2 = Neighbours::with(2, [((0, x), a)]);
        assert_eq!(c.lookup(&t2, 0, x), Some(a), "a new table");
        assert_eq!(c.lookup(&t2, 0, y), None);
        assert_eq!(c.lookup(&t2, 0, x), Some(a));
    }

    #[test]
    fn cache_follows_the_table_generation() {
        let ip = Ipv4Addr::new(10, 0, 1, 10);
        let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let b = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let t1 = Neighbours::with(1, [((0, ip), a)]);
        let mut c = NeighbourCache::default();
        assert_eq!(c.lookup(&t1, 0, ip), Some(a));
        assert_eq!(c.lookup(&t1, 0, ip), Some(a));
        assert_eq!(c.lookup(&t1, 1, ip), None, "other port");
        let t2 = Neighbours::with(2, [((0, ip), b)]);
        assert_eq!(c.lookup(&t2, 0, ip), Some(b), "new generation refreshes");
        let t3 = Neighbours::with(3, []);
        assert_eq!(c.lookup(&t3, 0, ip), None, "removed entries are gone");
        c.learn(&t3, 0, ip, a);
        assert_eq!(
            c.lookup(&t3, 0, ip),
            Some(a),
            "learned here, before publication"
        );
        let t4 = Neighbours::with(4, []);
        assert_eq!(c.lookup(&t4, 0, ip), None, "until the next table");
    }
}

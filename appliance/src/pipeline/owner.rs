//! Which worker owns a packet's session: a pure function every worker computes alike, so a
//! packet can be handed to its owner without shared state (DESIGN.md, "Ownership").
//!
//! - A flow from inside belongs to `hash(inside endpoint)`: all sessions of one inside
//!   endpoint live on one worker, so its endpoint-independent mapping is that worker's.
//! - A packet to a pool address at a port of the SNAT range belongs to the worker whose slice
//!   holds that port: that worker allocated it.
//! - A packet to a port forward or a static mapping belongs to `hash(private endpoint)`, the
//!   same worker the private host's replies hash to.
//! - An ICMP error belongs to the owner of the packet it quotes, seen as a reply.

use crate::nat::Slices;
use crate::packet::IpProtocol;
use crate::policy::Policy;
use std::net::Ipv4Addr;

/// The ownership function of a set of workers.
#[derive(Debug, Clone, Copy)]
pub struct Sharding {
    workers: u16,
    slices: Slices,
    seed: u64,
}

impl Sharding {
    /// `workers` workers sharing the SNAT port range `slices`, hashing with `seed` (the same
    /// for all workers, chosen at start).
    pub fn new(workers: usize, slices: Slices, seed: u64) -> Self {
        Sharding {
            workers: workers.clamp(1, usize::from(u16::MAX)) as u16,
            slices,
            seed: seed | 1,
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        usize::from(self.workers)
    }

    /// The SNAT port slices.
    pub fn slices(&self) -> &Slices {
        &self.slices
    }

    /// The worker of an inside endpoint.
    #[inline]
    pub fn of_endpoint(&self, proto: IpProtocol, addr: Ipv4Addr, port: u16) -> usize {
        if self.workers == 1 {
            return 0;
        }
        let x =
            (u64::from(u32::from(addr)) << 24) ^ (u64::from(port) << 8) ^ u64::from(proto.value());
        let mut h = (x ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        (((h & 0xffff_ffff) * u64::from(self.workers)) >> 32) as usize
    }

    /// The worker of a flow between endpoints `a` and `b` whichever way its packet goes:
    /// a tunnel port's, which translates nothing, so no NAT slice says whose it is.
    #[inline]
    pub fn of_either_way(
        &self,
        proto: IpProtocol,
        a: (Ipv4Addr, u16),
        b: (Ipv4Addr, u16),
    ) -> usize {
        let addr = Ipv4Addr::from(u32::from(a.0) ^ u32::from(b.0));
        self.of_endpoint(proto, addr, a.1 ^ b.1)
    }

    /// The worker of a packet with `tuple` (proto, src, sport, dst, dport) that is not an ICMP
    /// error: see the module documentation.
    #[inline]
    pub fn of_packet(
        &self,
        policy: &Policy,
        pool: &[Ipv4Addr],
        proto: IpProtocol,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
    ) -> usize {
        if self.workers == 1 {
            return 0;
        }
        // Forwards first: a forward's public port may lie in the SNAT range of a pool address
        // (the SNAT allocator never hands it out).
        if let Some(f) = policy.forwards.lookup(proto, dst.0, dst.1) {
            return self.of_endpoint(proto, *f.private.ip(), f.private.port());
        }
        if pool.contains(&dst.0) && self.slices.contains(dst.1) {
            if let Some(w) = self.slices.owner(dst.1) {
                return w;
            }
        }
        if let Some(private) = policy.statics.private_of(dst.0) {
            return self.of_endpoint(proto, private, dst.1);
        }
        self.of_endpoint(proto, src.0, src.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_spread_and_one_worker_is_trivial() {
        let s = Sharding::new(4, Slices::new(1024, 65535, 4).unwrap(), 7);
        let mut seen = [0usize; 4];
        for i in 0..4000u32 {
            seen[s.of_endpoint(IpProtocol::UDP, Ipv4Addr::from(0x0a00_0000 + i), 40000)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        let one = Sharding::new(1, Slices::new(1024, 65535, 1).unwrap(), 7);
        assert_eq!(
            one.of_endpoint(IpProtocol::TCP, Ipv4Addr::new(1, 2, 3, 4), 5),
            0
        );
    }
}

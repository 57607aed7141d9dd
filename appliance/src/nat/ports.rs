//! Public ports: the range split into one slice per worker, and each worker's O(1) free-port
//! structure per (public address, protocol).
//!
//! Each worker owns a contiguous slice of the SNAT port range, so the worker that owns a
//! translated flow is a pure function of the flow's public port: a packet from outside finds
//! its owner from its destination port alone, without shared state (VPP's
//! `port_per_thread` does the same).

/// The SNAT port range split between workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slices {
    lo: u16,
    hi: u16,
    workers: u16,
    per: u32,
}

impl Slices {
    /// Splits `lo..=hi` into `workers` slices of equal size (the last one takes the rest).
    /// `None` if the range is empty or has fewer ports than workers.
    pub fn new(lo: u16, hi: u16, workers: usize) -> Option<Self> {
        let span = u32::from(hi).checked_sub(u32::from(lo))? + 1;
        let workers = u16::try_from(workers).ok().filter(|&w| w > 0)?;
        if span < u32::from(workers) {
            return None;
        }
        Some(Slices {
            lo,
            hi,
            workers,
            per: span / u32::from(workers),
        })
    }

    /// The ports of worker `w`, inclusive.
    pub fn slice(&self, w: usize) -> (u16, u16) {
        let w = w.min(usize::from(self.workers) - 1) as u32;
        let start = u32::from(self.lo) + w * self.per;
        let end = if w + 1 == u32::from(self.workers) {
            u32::from(self.hi)
        } else {
            start + self.per - 1
        };
        (start as u16, end as u16)
    }

    /// The worker whose slice holds `port`, or `None` if the port is outside the range.
    #[inline]
    pub fn owner(&self, port: u16) -> Option<usize> {
        if port < self.lo || port > self.hi {
            return None;
        }
        let w = (u32::from(port) - u32::from(self.lo)) / self.per;
        Some((w as usize).min(usize::from(self.workers) - 1))
    }

    /// Whether `port` is in the SNAT range.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        usize::from(self.workers)
    }
}

const NOT_FREE: u32 = u32::MAX;

/// The free ports of one slice for one (public address, protocol): a stack of free ports
/// and each port's place in it, so taking a given port, taking a random one and freeing are
/// all O(1) with no allocation after creation.
#[derive(Debug, Clone)]
pub struct PortPool {
    lo: u16,
    free: Vec<u16>,
    /// For each port of the slice (`port - lo`), its index in `free`, or `NOT_FREE`.
    pos: Vec<u32>,
    rng: u64,
}

impl PortPool {
    /// A pool of every port in `lo..=hi`, all free; `seed` drives the random choice.
    pub fn new(lo: u16, hi: u16, seed: u64) -> Self {
        let n = usize::from(hi.max(lo) - lo) + 1;
        let free: Vec<u16> = (0..n).map(|i| lo + i as u16).collect();
        let pos = (0..n as u32).collect();
        PortPool {
            lo,
            free,
            pos,
            rng: seed | 1,
        }
    }

    /// Ports in the slice.
    pub fn capacity(&self) -> usize {
        self.pos.len()
    }

    /// Ports handed out.
    pub fn in_use(&self) -> usize {
        self.pos.len() - self.free.len()
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Whether `port` is in this slice and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.index(port).is_some_and(|i| self.pos[i] != NOT_FREE)
    }

    /// Takes `want` if it is in the slice and free (port preservation, RFC 4787 section 4.2.1),
    /// else a pseudo-random free port (RFC 6056 style, so ports
    /// are hard to guess); `None` when the slice is exhausted.
    pub fn alloc(&mut self, want: u16) -> Option<u16> {
        if self.take(want) {
            return Some(want);
        }
        self.alloc_random()
    }

    /// Takes a pseudo-random free port.
    pub fn alloc_random(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        // xorshift64*: cheap, and the output is only a hint for spreading ports.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let i = (((r >> 32) * self.free.len() as u64) >> 32) as usize;
        let port = self.free[i];
        self.remove_at(i);
        Some(port)
    }

    /// Takes exactly `port`; false if it is outside the slice or in use.
    pub fn take(&mut self, port: u16) -> bool {
        match self.index(port).map(|i| self.pos[i]) {
            Some(p) if p != NOT_FREE => {
                self.remove_at(p as usize);
                true
            }
            _ => false,
        }
    }

    /// Gives `port` back; false (and nothing changes) if it is outside the slice or already
    /// free, which would be a bookkeeping bug the caller counts.
    pub fn free(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port) else {
            return false;
        };
        if self.pos[i] != NOT_FREE {
            return false;
        }
        self.pos[i] = self.free.len() as u32;
        self.free.push(port);
        true
    }

    #[inline]
    fn index(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.lo)?);
        (i < self.pos.len()).then_some(i)
    }

    /// Removes `free[i]` by swapping the last free port into its place.
    fn remove_at(&mut self, i: usize) {
        let port = self.free.swap_remove(i);
        self.pos[usize::from(port - self.lo)] = NOT_FREE;
        if let Some(&moved) = self.free.get(i) {
            self.pos[usize::from(moved - self.lo)] = i as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slices_cover_the_range_once() {
        let s = Slices::new(1024, 65535, 3).unwrap();
        let mut next = 1024u32;
        for w in 0..3 {
            let (a, b) = s.slice(w);
            assert_eq!(u32::from(a), next);
            assert!(b >= a);
            for p in [a, b, a + (b - a) / 2] {
                assert_eq!(s.owner(p), Some(w), "port {p}");
            }
            next = u32::from(b) + 1;
        }
        assert_eq!(next, 65536);
        assert_eq!(s.owner(1023), None);
        assert!(Slices::new(10, 9, 1).is_none());
        assert!(Slices::new(10, 11, 3).is_none());
        assert!(Slices::new(10, 11, 0).is_none());
        let one = Slices::new(0, 65535, 1).unwrap();
        assert_eq!(one.slice(0), (0, 65535));
        assert_eq!(one.owner(65535), Some(0));
    }

    #[test]
    fn preservation_then_random_then_exhaustion() {
        let mut p = PortPool::new(2000, 2009, 7);
        assert_eq!(p.alloc(2005), Some(2005));
        let other = p.alloc(2005).unwrap();
        assert_ne!(other, 2005);
        assert_eq!(p.alloc(80).map(|x| (2000..=2009).contains(&x)), Some(true));
        while p.alloc_random().is_some() {}
        assert_eq!(p.available(), 0);
        assert_eq!(p.in_use(), 10);
        assert_eq!(p.alloc(2001), None);
        assert!(p.free(2001));
        assert!(!p.free(2001), "double free refused");
        assert!(!p.free(3000), "foreign port refused");
        assert_eq!(p.alloc(1), Some(2001));
    }

    proptest! {
        /// Against a set model: allocations are distinct, in range, frees restore, and after
        /// freeing everything every port is free again (no leak).
        #[test]
        fn pool_matches_a_set(ops in prop::collection::vec((0u8..4, 0u16..40), 1..400)) {
            let mut p = PortPool::new(100, 131, 42);
            let mut used = std::collections::BTreeSet::new();
            for (op, x) in ops {
                let port = 95 + x;
                match op {
                    0 => if let Some(got) = p.alloc(port) {
                        prop_assert!((100..=131).contains(&got));
                        prop_assert!(used.insert(got), "handed out twice");
                    } else {
                        prop_assert_eq!(used.len(), 32);
                    },
                    1 => {
                        let was_free = (100..=131).contains(&port) && !used.contains(&port);
                        prop_assert_eq!(p.take(port), was_free);
                        if was_free { used.insert(port); }
                    }
                    2 => {
                        prop_assert_eq!(p.free(port), used.remove(&port));
                    }
                    _ => {
                        let was_free = (100..=131).contains(&port) && !used.contains(&port);
                        prop_assert_eq!(p.is_free(port), was_free);
                        if was_free {
                            prop_assert_eq!(p.alloc(port), Some(port), "free port preserved");
                            used.insert(port);
                        }
                    }
                }
                prop_assert_eq!(p.in_use(), used.len());
            }
            for port in used { prop_assert!(p.free(port)); }
            prop_assert_eq!(p.available(), 32);
        }
    }
}

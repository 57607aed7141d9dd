//! Public ports: the range split into one slice per worker, and each worker's O(1) structure
//! of free, held and shared ports per (public address, protocol).
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

/// A port's state in [`PortPool`]: below `HELD`, free, and its index in the free stack;
/// `HELD`, held by one owner (an endpoint-independent mapping, or a port forward's
/// reservation); above it, shared by that many endpoint-dependent sessions (`HELD + n`).
const HELD: u32 = 1 << 31;

/// The ports of one slice for one (public address, protocol): a stack of free ports and each
/// port's state, so taking a given port, taking a random one, freeing, sharing and unsharing
/// are all O(1) with no allocation after creation. Six bytes a port.
///
/// A port is free, held by one owner, or shared: endpoint-dependent sessions share a port
/// as long as their remote endpoints differ (the session table keeps that true: the caller
/// shares a port only when the session's outside tuple is not taken), and a shared port is
/// never held, so an endpoint-independent mapping never meets another host's session on its
/// port.
#[derive(Debug, Clone)]
pub struct PortPool {
    lo: u16,
    free: Vec<u16>,
    /// For each port of the slice (`port - lo`), its state (see [`HELD`]).
    state: Vec<u32>,
    rng: u64,
}

impl PortPool {
    /// A pool of every port in `lo..=hi`, all free; `seed` drives the random choice.
    pub fn new(lo: u16, hi: u16, seed: u64) -> Self {
        let n = usize::from(hi.max(lo) - lo) + 1;
        let free: Vec<u16> = (0..n).map(|i| lo + i as u16).collect();
        let state = (0..n as u32).collect();
        PortPool {
            lo,
            free,
            state,
            rng: seed | 1,
        }
    }

    /// Ports in the slice.
    pub fn capacity(&self) -> usize {
        self.state.len()
    }

    /// Ports held or shared.
    pub fn in_use(&self) -> usize {
        self.state.len() - self.free.len()
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Whether `port` is in this slice and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.state_of(port).is_some_and(|s| s < HELD)
    }

    /// Whether `port` is in this slice and free or shared: one more endpoint-dependent
    /// session may share it ([`PortPool::share`]).
    #[inline]
    pub fn shareable(&self, port: u16) -> bool {
        self.state_of(port).is_some_and(|s| s != HELD)
    }

    /// Sessions sharing `port` (0 when it is free or held).
    pub fn sharers(&self, port: u16) -> u32 {
        self.state_of(port)
            .filter(|&s| s > HELD)
            .map_or(0, |s| s - HELD)
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
        let i = self.random_below(self.free.len());
        let port = self.free[i];
        self.remove_at(i);
        Some(port)
    }

    /// A pseudo-random port of the slice, in whatever state: a candidate for sharing.
    #[inline]
    pub fn random_port(&mut self) -> u16 {
        self.lo + self.random_below(self.state.len()) as u16
    }

    /// Takes exactly `port` (held); false if it is outside the slice or not free.
    pub fn take(&mut self, port: u16) -> bool {
        match self.state_of(port) {
            Some(i) if i < HELD => {
                self.remove_at(i as usize);
                true
            }
            _ => false,
        }
    }

    /// Gives a held `port` back; false (and nothing changes) if it is outside the slice, free
    /// or shared, which would be a bookkeeping bug the caller counts.
    pub fn free(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port) else {
            return false;
        };
        if self.state[i] != HELD {
            return false;
        }
        self.state[i] = self.free.len() as u32;
        self.free.push(port);
        true
    }

    /// One more session shares `port`, which must be free or shared; false otherwise (and
    /// nothing changes).
    #[inline]
    pub fn share(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port) else {
            return false;
        };
        match self.state[i] {
            s if s < HELD => {
                self.remove_at(s as usize);
                self.state[i] = HELD + 1;
            }
            HELD => return false,
            s => self.state[i] = s + 1,
        }
        true
    }

    /// One session fewer shares `port`. `Some(true)` when it was the last: the port is then
    /// held, for the caller to [`free`](PortPool::free) or keep; `Some(false)` while others
    /// share it; `None` (nothing changes) if it was not shared, a bookkeeping bug.
    pub fn unshare(&mut self, port: u16) -> Option<bool> {
        let i = self.index(port)?;
        let s = self.state[i];
        if s <= HELD {
            return None;
        }
        self.state[i] = s - 1;
        Some(s - 1 == HELD)
    }

    /// A pseudo-random number below `n` (xorshift64*: cheap, and the output is only a hint
    /// for spreading ports).
    #[inline]
    fn random_below(&mut self, n: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (((r >> 32) * n as u64) >> 32) as usize
    }

    #[inline]
    fn index(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.lo)?);
        (i < self.state.len()).then_some(i)
    }

    #[inline]
    fn state_of(&self, port: u16) -> Option<u32> {
        self.index(port).map(|i| self.state[i])
    }

    /// Removes `free[i]` by swapping the last free port into its place; the port is held.
    fn remove_at(&mut self, i: usize) {
        let port = self.free.swap_remove(i);
        self.state[usize::from(port - self.lo)] = HELD;
        if let Some(&moved) = self.free.get(i) {
            self.state[usize::from(moved - self.lo)] = i as u32;
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

    #[test]
    fn shared_ports_are_neither_free_nor_held() {
        let mut p = PortPool::new(3000, 3003, 1);
        assert!(p.share(3001));
        assert!(p.share(3001));
        assert_eq!((p.sharers(3001), p.in_use()), (2, 1));
        assert!(!p.is_free(3001) && p.shareable(3001));
        assert!(!p.take(3001), "a shared port is not held");
        assert_ne!(p.alloc(3001), Some(3001));
        assert!(!p.free(3001), "a shared port is not freed");
        assert_eq!(p.unshare(3001), Some(false));
        assert_eq!(p.unshare(3001), Some(true), "the last one: now held");
        assert!(!p.shareable(3001));
        assert_eq!(p.unshare(3001), None);
        assert!(p.free(3001));
        assert!(p.is_free(3001));
        for _ in 0..100 {
            assert!((3000..=3003).contains(&p.random_port()));
        }
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Model {
        Held,
        Shared(u32),
    }

    proptest! {
        /// Against a model (port -> held or shared by n): allocations are distinct, in range,
        /// shared ports are never held, frees and unshares restore, and after giving
        /// everything back every port is free again (no leak).
        #[test]
        fn pool_matches_a_model(ops in prop::collection::vec((0u8..6, 0u16..40), 1..400)) {
            let mut p = PortPool::new(100, 131, 42);
            let mut used = std::collections::BTreeMap::new();
            let in_range = |port: u16| (100..=131).contains(&port);
            for (op, x) in ops {
                let port = 95 + x;
                let was_free = in_range(port) && !used.contains_key(&port);
                match op {
                    0 => if let Some(got) = p.alloc(port) {
                        prop_assert!(in_range(got));
                        prop_assert!(used.insert(got, Model::Held).is_none(), "handed out twice");
                    } else {
                        prop_assert_eq!(used.len(), 32);
                    },
                    1 => {
                        prop_assert_eq!(p.take(port), was_free);
                        if was_free { used.insert(port, Model::Held); }
                    }
                    2 => {
                        let held = used.get(&port) == Some(&Model::Held);
                        prop_assert_eq!(p.free(port), held);
                        if held { used.remove(&port); }
                    }
                    3 => {
                        prop_assert_eq!(p.is_free(port), was_free);
                        if was_free {
                            prop_assert_eq!(p.alloc(port), Some(port), "free port preserved");
                            used.insert(port, Model::Held);
                        }
                    }
                    4 => {
                        let ok = in_range(port) && used.get(&port) != Some(&Model::Held);
                        prop_assert_eq!(p.shareable(port), ok);
                        prop_assert_eq!(p.share(port), ok);
                        if ok {
                            let n = match used.get(&port) { Some(Model::Shared(n)) => *n, _ => 0 };
                            used.insert(port, Model::Shared(n + 1));
                        }
                    }
                    _ => match used.get(&port).copied() {
                        Some(Model::Shared(n)) => {
                            prop_assert_eq!(p.unshare(port), Some(n == 1));
                            used.insert(port, if n == 1 { Model::Held } else { Model::Shared(n - 1) });
                        }
                        _ => prop_assert_eq!(p.unshare(port), None),
                    },
                }
                prop_assert_eq!(p.in_use(), used.len());
            }
            for (port, m) in used {
                if let Model::Shared(n) = m {
                    for _ in 1..n { prop_assert_eq!(p.unshare(port), Some(false)); }
                    prop_assert_eq!(p.unshare(port), Some(true));
                }
                prop_assert!(p.free(port));
            }
            prop_assert_eq!(p.available(), 32);
        }
    }
}

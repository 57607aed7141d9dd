//! Public ports: the range split into one slice per worker, and each worker's bitmap of
//! free, held and shared ports per (public address, protocol).
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

/// Random ports [`PortPool::alloc_random`] tries before it scans the bitmap for a free one.
const RANDOM_TRIES: usize = 8;

/// The ports of one slice for one (public address, protocol). A port is free, held by one
/// owner (an endpoint-independent mapping, or a port forward's reservation), or shared by
/// endpoint-dependent sessions whose remote endpoints differ (the session table keeps that
/// true: the caller shares a port only when the session's outside tuple is not taken). A
/// shared port is never held, so an endpoint-independent mapping never meets another host's
/// session on its port.
///
/// Taking a given port, freeing, sharing and unsharing are O(1); taking a random free port
/// tries a few at random, then scans a bitmap (at most slice / 64 words). Nothing is
/// allocated until the first port is taken, and then a bit per port for each of two bitmaps
/// and, in zeroed memory whose pages are touched only where ports are used, a count and a
/// holder's tag per port: an address or protocol no flow uses costs nothing.
#[derive(Debug, Clone)]
pub struct PortPool {
    lo: u16,
    len: u32,
    in_use: u32,
    rng: u64,
    ports: Option<Box<Ports>>,
}

/// A pool's per-port state, made at its first use.
#[derive(Debug, Clone)]
struct Ports {
    /// Bit per port: held or shared.
    used: Vec<u64>,
    /// Bit per port: shared.
    shared: Vec<u64>,
    /// Per port: the sessions sharing it, or the holder's count ([`PortPool::holder`]).
    count: Vec<u32>,
    /// Per port: the holder's tag.
    tag: Vec<u64>,
}

impl Ports {
    fn new(len: usize) -> Box<Ports> {
        let words = len.div_ceil(64);
        // vec![0; n] is calloc: the kernel's zero pages until written.
        Box::new(Ports {
            used: vec![0; words],
            shared: vec![0; words],
            count: vec![0; len],
            tag: vec![0; len],
        })
    }
}

#[inline]
fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

#[inline]
fn set(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

impl PortPool {
    /// A pool of every port in `lo..=hi`, all free; `seed` drives the random choice.
    /// Allocates nothing yet.
    pub fn new(lo: u16, hi: u16, seed: u64) -> Self {
        PortPool {
            lo,
            len: u32::from(hi.max(lo) - lo) + 1,
            in_use: 0,
            rng: seed | 1,
            ports: None,
        }
    }

    /// Ports in the slice.
    pub fn capacity(&self) -> usize {
        self.len as usize
    }

    /// Ports held or shared.
    pub fn in_use(&self) -> usize {
        self.in_use as usize
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        (self.len - self.in_use) as usize
    }

    /// Bytes of memory the pool has allocated (its pages are resident only where used).
    pub fn allocated_bytes(&self) -> usize {
        self.ports.as_ref().map_or(0, |p| {
            8 * (p.used.len() + p.shared.len()) + 4 * p.count.len() + 8 * p.tag.len()
        })
    }

    /// Whether `port` is in this slice and free.
    pub fn is_free(&self, port: u16) -> bool {
        self.index(port)
            .is_some_and(|i| self.ports.as_ref().is_none_or(|p| !bit(&p.used, i)))
    }

    /// Whether `port` is in this slice and free or shared: one more endpoint-dependent
    /// session may share it ([`PortPool::share`]).
    #[inline]
    pub fn shareable(&self, port: u16) -> bool {
        self.index(port).is_some_and(|i| {
            self.ports
                .as_ref()
                .is_none_or(|p| !bit(&p.used, i) || bit(&p.shared, i))
        })
    }

    /// Sessions sharing `port` (0 when it is free or held).
    pub fn sharers(&self, port: u16) -> u32 {
        match (self.index(port), &self.ports) {
            (Some(i), Some(p)) if bit(&p.shared, i) => p.count[i],
            _ => 0,
        }
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

    /// Takes a pseudo-random free port ([`PortPool::random_free`]).
    pub fn alloc_random(&mut self) -> Option<u16> {
        let port = self.random_free()?;
        self.take(port);
        Some(port)
    }

    /// A pseudo-random free port, not taken: a few random tries, then the first free port
    /// of the bitmap from a random word on; `None` when none is free.
    pub fn random_free(&mut self) -> Option<u16> {
        if self.in_use == self.len {
            return None;
        }
        for _ in 0..RANDOM_TRIES {
            let port = self.random_port();
            if self.is_free(port) {
                return Some(port);
            }
        }
        let words = self.ports.as_ref()?.used.len();
        let start = self.random_below(words);
        let p = self.ports.as_ref()?;
        (0..words).find_map(|k| {
            let w = (start + k) % words;
            let free = !p.used[w];
            let i = w * 64 + free.trailing_zeros() as usize;
            (free != 0 && i < self.len as usize).then(|| self.lo + i as u16)
        })
    }

    /// A pseudo-random port of the slice, in whatever state: a candidate for sharing.
    #[inline]
    pub fn random_port(&mut self) -> u16 {
        self.lo + self.random_below(self.len as usize) as u16
    }

    /// Takes exactly `port` (held, its count and tag zero); false if it is outside the slice
    /// or not free.
    pub fn take(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port) else {
            return false;
        };
        let len = self.len as usize;
        let p = self.ports.get_or_insert_with(|| Ports::new(len));
        if bit(&p.used, i) {
            return false;
        }
        set(&mut p.used, i, true);
        self.in_use += 1;
        true
    }

    /// Gives a held `port` back; false (and nothing changes) if it is outside the slice, free
    /// or shared, which would be a bookkeeping bug the caller counts.
    pub fn free(&mut self, port: u16) -> bool {
        let (Some(i), Some(p)) = (self.index(port), self.ports.as_mut()) else {
            return false;
        };
        if !bit(&p.used, i) || bit(&p.shared, i) {
            return false;
        }
        set(&mut p.used, i, false);
        p.count[i] = 0;
        p.tag[i] = 0;
        self.in_use -= 1;
        true
    }

    /// One more session shares `port`, which must be free or shared; false otherwise (and
    /// nothing changes).
    #[inline]
    pub fn share(&mut self, port: u16) -> bool {
        let Some(i) = self.index(port) else {
            return false;
        };
        let len = self.len as usize;
        let p = self.ports.get_or_insert_with(|| Ports::new(len));
        if !bit(&p.used, i) {
            set(&mut p.used, i, true);
            set(&mut p.shared, i, true);
            p.count[i] = 1;
            self.in_use += 1;
        } else if bit(&p.shared, i) {
            p.count[i] += 1;
        } else {
            return false;
        }
        true
    }

    /// One session fewer shares `port`. `Some(true)` when it was the last: the port is then
    /// held, for the caller to [`free`](PortPool::free) or keep; `Some(false)` while others
    /// share it; `None` (nothing changes) if it was not shared, a bookkeeping bug.
    pub fn unshare(&mut self, port: u16) -> Option<bool> {
        let i = self.index(port)?;
        let p = self.ports.as_mut()?;
        if !bit(&p.shared, i) {
            return None;
        }
        p.count[i] -= 1;
        if p.count[i] > 0 {
            return Some(false);
        }
        set(&mut p.shared, i, false);
        Some(true)
    }

    /// The count and tag a held `port` keeps for its holder (zero when taken), or `None` if
    /// it is not held.
    #[inline]
    pub fn holder(&self, port: u16) -> Option<(u32, u64)> {
        let i = self.index(port)?;
        let p = self.ports.as_ref()?;
        (bit(&p.used, i) && !bit(&p.shared, i)).then(|| (p.count[i], p.tag[i]))
    }

    /// [`PortPool::holder`], to change.
    #[inline]
    pub fn holder_mut(&mut self, port: u16) -> Option<(&mut u32, &mut u64)> {
        let i = self.index(port)?;
        let p = self.ports.as_deref_mut()?;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let (used, shared) = (*p.used.get(w)?, *p.shared.get(w)?);
        if used & !shared & b == 0 {
            return None;
        }
        Some((p.count.get_mut(i)?, p.tag.get_mut(i)?))
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
        let i = u32::from(port.checked_sub(self.lo)?);
        (i < self.len).then_some(i as usize)
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
    fn nothing_is_allocated_before_the_first_port() {
        let mut p = PortPool::new(1024, 65535, 1);
        assert_eq!(p.allocated_bytes(), 0);
        assert!(p.is_free(5000) && p.shareable(5000));
        assert_eq!(p.alloc(5000), Some(5000));
        assert_eq!(p.allocated_bytes(), 2 * 8 * 1008 + 12 * 64512);
    }

    #[test]
    fn random_allocation_finds_the_last_free_port() {
        let mut p = PortPool::new(100, 1123, 9);
        for port in 100..=1123 {
            if port != 777 {
                assert!(p.take(port));
            }
        }
        assert_eq!(p.alloc_random(), Some(777), "found by the scan");
        assert_eq!(p.alloc_random(), None);
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
        assert_eq!(p.holder(3001), Some((0, 0)));
        let (count, tag) = p.holder_mut(3001).unwrap();
        (*count, *tag) = (3, 77);
        assert_eq!(p.holder(3001), Some((3, 77)));
        assert!(p.free(3001));
        assert!(p.is_free(3001));
        assert!(p.take(3001));
        assert_eq!(
            p.holder(3001),
            Some((0, 0)),
            "a new holder starts from zero"
        );
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

//! The per-packet index: flow key -> session entry, a bucketized cuckoo hash table looked up a
//! burst at a time.
//!
//! Layout: a power-of-two array of 64-byte buckets, each one cache line with [`SLOTS`] entries of
//! a 16-bit signature and a 32-bit session entry (index plus side). There is no key in the
//! bucket: the full key is compared against the session's own copy, which the packet needs
//! anyway, so an index entry costs 6.4 bytes. Every key has two candidate buckets, the primary
//! from the low hash bits and an alternate `primary ^ f(signature)` (partial-key cuckoo hashing,
//! Fan et al., "MemC3", NSDI 2013), so an entry can be moved to its other bucket from its
//! signature alone, without reading its key. Inserting into two full buckets displaces entries
//! along the shortest path found by a bounded breadth-first search. A lookup reads exactly two
//! buckets and, on a signature match, one session line: its cost does not depend on the keys.
//!
//! [`FlowIndex::lookup_burst`] does a burst in three passes so that the memory accesses of all
//! keys overlap instead of following each other: hash every key and prefetch both its buckets;
//! match signatures and prefetch the candidate session; confirm keys. DPDK's `rte_hash` bulk
//! lookup and VPP's bihash are built the same way for the same reason.

use super::key::{FlowKey, HashSeed, Side};
use crate::dataplane::mem::{advise_huge_pages, prefetch};

/// Entries per bucket: ten (16-bit signature, 32-bit entry) pairs fill 60 of the 64 bytes.
pub const SLOTS: usize = 10;

/// Most keys [`FlowIndex::lookup_burst`] processes in one pass; longer slices are cut in chunks.
pub const BURST_MAX: usize = 64;

/// The highest load factor [`FlowIndex::buckets_for`] plans for. Two-choice cuckoo hashing with
/// ten-slot buckets fills past 95 % before inserts start failing; 90 % keeps displacement paths
/// short.
pub const MAX_LOAD: f64 = 0.9;

/// Breadth-first search bound for displacement: two roots, then ten children per bucket, covers
/// every path of up to three moves with room to spare.
const BFS_MAX: usize = 256;

/// Signature of an empty slot; real signatures are never zero.
const EMPTY_SIG: u16 = 0;

/// A lookup result: which session, and which of its two keys matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hit {
    /// Session index in the slab.
    pub index: u32,
    /// Which of the session's keys matched: the side the packet arrived on.
    pub side: Side,
}

impl Hit {
    /// The largest session index an entry can hold (the top bit holds the side).
    pub const MAX_INDEX: u32 = (1 << 31) - 1;

    #[inline(always)]
    fn encode(self) -> u32 {
        self.index | ((self.side as u32) << 31)
    }

    #[inline(always)]
    fn decode(e: u32) -> Hit {
        Hit {
            index: e & Self::MAX_INDEX,
            side: if e >> 31 == 0 {
                Side::Inside
            } else {
                Side::Outside
            },
        }
    }
}

/// Where the full keys live: the index stores only signatures and entries, and asks the store
/// for the key of a candidate entry to confirm a match. The session slab is the store in the
/// appliance; tests use plain vectors.
pub trait KeyStore {
    /// The key stored under `hit`. Called only for entries that were inserted and not removed.
    fn key_of(&self, hit: Hit) -> &FlowKey;
    /// Hints the CPU to load what [`KeyStore::key_of`] will read for `hit`.
    fn prefetch(&self, hit: Hit);
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Both candidate buckets are full and no displacement path was found within the search
    /// bound: the index is too full for this key.
    Full,
    /// The key is already in the index, under this entry.
    Exists(Hit),
}

#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    sigs: [u16; SLOTS],
    entries: [u32; SLOTS],
    _spare: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sigs: [EMPTY_SIG; SLOTS],
        entries: [0; SLOTS],
        _spare: 0,
    };

    /// Bit `i` set when slot `i` holds `sig`.
    #[inline(always)]
    fn matches(&self, sig: u16) -> u32 {
        let mut m = 0u32;
        for (i, &s) in self.sigs.iter().enumerate() {
            m |= u32::from(s == sig) << i;
        }
        m
    }

    #[inline(always)]
    fn free_slot(&self) -> Option<usize> {
        let m = self.matches(EMPTY_SIG);
        (m != 0).then(|| m.trailing_zeros() as usize)
    }

    #[inline(always)]
    fn free_count(&self) -> u32 {
        self.matches(EMPTY_SIG).count_ones()
    }
}

/// The two candidate buckets and the signature of one key.
#[derive(Clone, Copy, Debug, Default)]
struct Probe {
    b1: u32,
    b2: u32,
    sig: u16,
}

/// A node of the displacement search: a full bucket, reached from slot `slot` of node `parent`.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    bucket: u32,
    parent: u16,
    slot: u8,
}

const NO_PARENT: u16 = u16::MAX;

/// The per-packet table from [`FlowKey`] to session entry ([`Hit`]): fixed capacity, no
/// allocation after [`FlowIndex::new`], bucket array advised to transparent huge pages.
pub struct FlowIndex {
    buckets: Vec<Bucket>,
    mask: u32,
    sig_mask: u16,
    seed: HashSeed,
    len: usize,
}

impl std::fmt::Debug for FlowIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowIndex")
            .field("buckets", &self.buckets.len())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl FlowIndex {
    /// An empty index of `buckets` buckets (a power of two, at least 2, at most 2^31) hashing
    /// with `seed`. Allocates and touches all its memory now, so the fast path never faults a
    /// page in.
    ///
    /// # Panics
    /// If `buckets` is not a power of two in `2..=2^31`.
    pub fn new(buckets: usize, seed: HashSeed) -> Self {
        Self::with_signature_mask(buckets, seed, u16::MAX)
    }

    /// Like [`FlowIndex::new`], keeping only the signature bits in `sig_mask`: tests use a
    /// narrow mask to force signature collisions.
    pub(crate) fn with_signature_mask(buckets: usize, seed: HashSeed, sig_mask: u16) -> Self {
        assert!(
            buckets.is_power_of_two() && (2..=1 << 31).contains(&buckets),
            "bucket count {buckets} must be a power of two in 2..=2^31"
        );
        let mut v: Vec<Bucket> = Vec::with_capacity(buckets);
        advise_huge_pages(v.spare_capacity_mut());
        v.resize(buckets, Bucket::EMPTY);
        Self {
            buckets: v,
            mask: (buckets - 1) as u32,
            sig_mask,
            seed,
            len: 0,
        }
    }

    /// The bucket count that holds `entries` entries at no more than [`MAX_LOAD`]: the next
    /// power of two, at least 2.
    pub fn buckets_for(entries: usize) -> usize {
        let min = (entries as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as usize;
        min.max(2).next_power_of_two()
    }

    /// Bytes of bucket memory for `buckets` buckets.
    pub const fn bytes_for(buckets: usize) -> usize {
        buckets * std::mem::size_of::<Bucket>()
    }

    /// Entries currently stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Total entry slots (buckets x [`SLOTS`]).
    pub fn slots(&self) -> usize {
        self.buckets.len() * SLOTS
    }

    /// Bytes of bucket memory.
    pub fn memory_bytes(&self) -> usize {
        Self::bytes_for(self.buckets.len())
    }

    /// Removes every entry. O(buckets): for resets outside the fast path.
    pub fn clear(&mut self) {
        self.buckets.fill(Bucket::EMPTY);
        self.len = 0;
    }

    #[inline(always)]
    fn probe(&self, key: &FlowKey) -> Probe {
        let h = key.hash(&self.seed);
        let b1 = (h as u32) & self.mask;
        let sig = ((h >> 48) as u16) & self.sig_mask;
        let sig = sig + u16::from(sig == EMPTY_SIG);
        Probe {
            b1,
            b2: self.alt(b1, sig),
            sig,
        }
    }

    /// The other bucket of an entry with signature `sig` in bucket `b`. An involution
    /// (`alt(alt(b)) == b`), never equal to `b` (the offset is odd), and spread over the whole
    /// table by the multiplication.
    #[inline(always)]
    fn alt(&self, b: u32, sig: u16) -> u32 {
        b ^ ((u32::from(sig).wrapping_mul(0x9E37_79B1) | 1) & self.mask)
    }

    #[inline(always)]
    fn bucket(&self, b: u32) -> &Bucket {
        &self.buckets[b as usize]
    }

    /// Confirms the candidates of `m` (bits `0..SLOTS` in `b1`, the next `SLOTS` in `b2`).
    #[inline(always)]
    fn confirm<S: KeyStore>(&self, key: &FlowKey, p: Probe, mut m: u32, store: &S) -> Option<Hit> {
        while m != 0 {
            let bit = m.trailing_zeros() as usize;
            let e = if bit < SLOTS {
                self.bucket(p.b1).entries[bit]
            } else {
                self.bucket(p.b2).entries[bit - SLOTS]
            };
            let hit = Hit::decode(e);
            if store.key_of(hit) == key {
                return Some(hit);
            }
            m &= m - 1;
        }
        None
    }

    #[inline(always)]
    fn candidates(&self, p: Probe) -> u32 {
        self.bucket(p.b1).matches(p.sig) | (self.bucket(p.b2).matches(p.sig) << SLOTS)
    }

    /// The entry of `key`, one key at a time (control path, tests, slow path).
    #[inline]
    pub fn lookup<S: KeyStore>(&self, key: &FlowKey, store: &S) -> Option<Hit> {
        let p = self.probe(key);
        self.confirm(key, p, self.candidates(p), store)
    }

    /// Looks up a burst: `out[i]` receives the entry of `keys[i]`, or `None`.
    ///
    /// Three passes over the burst, so the cache misses of all keys are in flight together:
    /// (1) hash each key and prefetch its two buckets; (2) match the signature in both buckets
    /// and prefetch the first candidate's key in the store; (3) confirm the full key, trying
    /// further candidates (a 16-bit signature collides with probability about 2^-12 per lookup
    /// at full load). Bursts longer than [`BURST_MAX`] are processed in chunks.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    #[inline]
    pub fn lookup_burst<S: KeyStore>(&self, keys: &[FlowKey], store: &S, out: &mut [Option<Hit>]) {
        assert!(out.len() >= keys.len(), "output shorter than the burst");
        for (k, o) in keys.chunks(BURST_MAX).zip(out.chunks_mut(BURST_MAX)) {
            self.lookup_chunk(k, store, o);
        }
    }

    #[inline(always)]
    fn lookup_chunk<S: KeyStore>(&self, keys: &[FlowKey], store: &S, out: &mut [Option<Hit>]) {
        let mut probes = [Probe::default(); BURST_MAX];
        let mut cands = [0u32; BURST_MAX];
        let probes = &mut probes[..keys.len()];
        let cands = &mut cands[..keys.len()];
        // Stage 1: hash, prefetch both buckets.
        for (p, k) in probes.iter_mut().zip(keys) {
            *p = self.probe(k);
            prefetch(self.bucket(p.b1));
            prefetch(self.bucket(p.b2));
        }
        // Stage 2: match signatures, prefetch the first candidate's key.
        for (c, p) in cands.iter_mut().zip(probes.iter()) {
            let m = self.candidates(*p);
            *c = m;
            if m != 0 {
                let bit = m.trailing_zeros() as usize;
                let e = if bit < SLOTS {
                    self.bucket(p.b1).entries[bit]
                } else {
                    self.bucket(p.b2).entries[bit - SLOTS]
                };
                store.prefetch(Hit::decode(e));
            }
        }
        // Stage 3: confirm.
        for (((o, k), p), c) in out
            .iter_mut()
            .zip(keys)
            .zip(probes.iter())
            .zip(cands.iter())
        {
            *o = self.confirm(k, *p, *c, store);
        }
    }

    /// Hints the CPU to load the two buckets of `key`, ahead of an [`FlowIndex::insert`] (the
    /// slow path can issue it for a whole burst of new flows first).
    #[inline]
    pub fn prefetch_key(&self, key: &FlowKey) {
        let p = self.probe(key);
        prefetch(self.bucket(p.b1));
        prefetch(self.bucket(p.b2));
    }

    /// Inserts `key -> hit`.
    ///
    /// Goes to the emptier of the two candidate buckets; when both are full, moves entries
    /// along the shortest displacement path found by a breadth-first search of at most
    /// `BFS_MAX` buckets. Checks `store` for an existing equal key first, so one key never has
    /// two entries.
    ///
    /// # Errors
    /// [`InsertError::Exists`] if `key` is already present; [`InsertError::Full`] if no slot
    /// could be made free (the index is left unchanged).
    pub fn insert<S: KeyStore>(
        &mut self,
        key: &FlowKey,
        hit: Hit,
        store: &S,
    ) -> Result<(), InsertError> {
        debug_assert!(hit.index <= Hit::MAX_INDEX);
        let p = self.probe(key);
        if let Some(old) = self.confirm(key, p, self.candidates(p), store) {
            return Err(InsertError::Exists(old));
        }
        let f1 = self.bucket(p.b1).free_count();
        let f2 = self.bucket(p.b2).free_count();
        let (b, slot) = if f1 != 0 && f1 >= f2 {
            (p.b1, self.bucket(p.b1).free_slot())
        } else if f2 != 0 {
            (p.b2, self.bucket(p.b2).free_slot())
        } else {
            match self.make_room(p.b1, p.b2) {
                Some((b, s)) => (b, Some(s)),
                None => return Err(InsertError::Full),
            }
        };
        let slot = slot.ok_or(InsertError::Full)?;
        let bk = &mut self.buckets[b as usize];
        bk.sigs[slot] = p.sig;
        bk.entries[slot] = hit.encode();
        self.len += 1;
        Ok(())
    }

    /// Frees a slot in `b1` or `b2` (both full) by moving entries to their alternate buckets;
    /// returns the freed slot.
    fn make_room(&mut self, b1: u32, b2: u32) -> Option<(u32, usize)> {
        let mut q = [Node::default(); BFS_MAX];
        q[0] = Node {
            bucket: b1,
            parent: NO_PARENT,
            slot: 0,
        };
        q[1] = Node {
            bucket: b2,
            parent: NO_PARENT,
            slot: 0,
        };
        let mut len = 2;
        let mut head = 0;
        while head < len {
            let node = q[head];
            for s in 0..SLOTS {
                let alt = self.alt(node.bucket, self.bucket(node.bucket).sigs[s]);
                if on_path(&q, head, alt) {
                    continue;
                }
                if let Some(free) = self.bucket(alt).free_slot() {
                    // Move along the path from the leaf up, each move filling the slot the
                    // previous one freed.
                    self.move_entry(node.bucket, s, alt, free);
                    let (mut to_b, mut to_s) = (node.bucket, s);
                    let mut n = head;
                    while q[n].parent != NO_PARENT {
                        let parent = q[usize::from(q[n].parent)];
                        let from_s = usize::from(q[n].slot);
                        self.move_entry(parent.bucket, from_s, to_b, to_s);
                        (to_b, to_s) = (parent.bucket, from_s);
                        n = usize::from(q[n].parent);
                    }
                    return Some((to_b, to_s));
                }
                if len < BFS_MAX {
                    q[len] = Node {
                        bucket: alt,
                        parent: head as u16,
                        slot: s as u8,
                    };
                    len += 1;
                }
            }
            head += 1;
        }
        None
    }

    fn move_entry(&mut self, from_b: u32, from_s: usize, to_b: u32, to_s: usize) {
        let (sig, e) = {
            let f = &mut self.buckets[from_b as usize];
            let v = (f.sigs[from_s], f.entries[from_s]);
            f.sigs[from_s] = EMPTY_SIG;
            v
        };
        debug_assert_eq!(self.alt(from_b, sig), to_b);
        let t = &mut self.buckets[to_b as usize];
        debug_assert_eq!(t.sigs[to_s], EMPTY_SIG);
        t.sigs[to_s] = sig;
        t.entries[to_s] = e;
    }

    /// Removes the entry `hit` stored under `key`; returns whether it was there. Reads no key:
    /// the entry value identifies the slot.
    pub fn remove(&mut self, key: &FlowKey, hit: Hit) -> bool {
        let p = self.probe(key);
        let e = hit.encode();
        for b in [p.b1, p.b2] {
            let bk = &mut self.buckets[b as usize];
            let mut m = bk.matches(p.sig);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                if bk.entries[i] == e {
                    bk.sigs[i] = EMPTY_SIG;
                    bk.entries[i] = 0;
                    self.len -= 1;
                    return true;
                }
                m &= m - 1;
            }
        }
        false
    }

    /// Checks the structure: every entry sits in one of its two buckets, the count matches.
    /// For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants<S: KeyStore>(&self, store: &S) {
        let mut n = 0;
        for (b, bk) in self.buckets.iter().enumerate() {
            for s in 0..SLOTS {
                if bk.sigs[s] == EMPTY_SIG {
                    continue;
                }
                n += 1;
                let hit = Hit::decode(bk.entries[s]);
                let p = self.probe(store.key_of(hit));
                assert_eq!(p.sig, bk.sigs[s], "signature of {hit:?}");
                assert!(
                    p.b1 == b as u32 || p.b2 == b as u32,
                    "{hit:?} in bucket {b}, not one of its candidates {p:?}"
                );
            }
        }
        assert_eq!(n, self.len);
    }
}

fn on_path(q: &[Node], mut n: usize, bucket: u32) -> bool {
    loop {
        if q[n].bucket == bucket {
            return true;
        }
        if q[n].parent == NO_PARENT {
            return false;
        }
        n = usize::from(q[n].parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::PROTO_UDP;

    /// A key store of plain keys: entry index `i` on side `s` is `keys[i][s]`.
    #[derive(Default)]
    struct Keys(Vec<[FlowKey; 2]>);

    impl KeyStore for Keys {
        fn key_of(&self, hit: Hit) -> &FlowKey {
            &self.0[hit.index as usize][hit.side as usize]
        }
        fn prefetch(&self, hit: Hit) {
            prefetch(&self.0[hit.index as usize]);
        }
    }

    fn key(i: u32) -> FlowKey {
        FlowKey::from_raw(
            0x0a00_0000 | i,
            0x0808_0808,
            (i % 50000) as u16,
            53,
            PROTO_UDP,
        )
    }

    fn fill(buckets: usize, n: u32, sig_mask: u16) -> (FlowIndex, Keys, u32) {
        let mut t = FlowIndex::with_signature_mask(buckets, HashSeed::fixed(7, 8, 9), sig_mask);
        let mut ks = Keys::default();
        let mut inserted = 0;
        for i in 0..n {
            ks.0.push([key(i), key(i).reverse()]);
            let hit = Hit {
                index: i,
                side: Side::Inside,
            };
            match t.insert(&key(i), hit, &ks) {
                Ok(()) => inserted += 1,
                Err(InsertError::Full) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        (t, ks, inserted)
    }

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn hit_encoding_round_trip() {
        for hit in [
            Hit {
                index: 0,
                side: Side::Inside,
            },
            Hit {
                index: Hit::MAX_INDEX,
                side: Side::Outside,
            },
            Hit {
                index: 12345,
                side: Side::Outside,
            },
        ] {
            assert_eq!(Hit::decode(hit.encode()), hit);
        }
    }

    #[test]
    fn alt_is_an_involution_and_differs() {
        let t = FlowIndex::new(1024, HashSeed::fixed(1, 2, 3));
        for b in [0u32, 1, 511, 1023] {
            for sig in [1u16, 2, 0x8000, 0xffff] {
                let a = t.alt(b, sig);
                assert_ne!(a, b);
                assert!(a < 1024);
                assert_eq!(t.alt(a, sig), b);
            }
        }
    }

    #[test]
    fn sizing() {
        assert_eq!(FlowIndex::buckets_for(0), 2);
        assert_eq!(FlowIndex::buckets_for(2_000), 256);
        assert_eq!(FlowIndex::buckets_for(2_000_000), 262_144);
        assert_eq!(FlowIndex::buckets_for(20_000_000), 4_194_304);
        assert_eq!(FlowIndex::bytes_for(256), 16_384);
    }

    #[test]
    fn insert_lookup_remove() {
        let (mut t, ks, n) = fill(64, 100, u16::MAX);
        assert_eq!(n, 100);
        for i in 0..100 {
            let want = Hit {
                index: i,
                side: Side::Inside,
            };
            assert_eq!(t.lookup(&key(i), &ks), Some(want));
            assert_eq!(t.lookup(&key(i).reverse(), &ks), None);
        }
        assert!(t.remove(
            &key(5),
            Hit {
                index: 5,
                side: Side::Inside
            }
        ));
        assert!(!t.remove(
            &key(5),
            Hit {
                index: 5,
                side: Side::Inside
            }
        ));
        assert_eq!(t.lookup(&key(5), &ks), None);
        assert_eq!(t.len(), 99);
        t.check_invariants(&ks);
    }

    #[test]
    fn duplicate_key_is_refused() {
        let (mut t, mut ks, _) = fill(16, 10, u16::MAX);
        ks.0.push([key(3), key(3)]);
        let r = t.insert(
            &key(3),
            Hit {
                index: 10,
                side: Side::Inside,
            },
            &ks,
        );
        assert_eq!(
            r,
            Err(InsertError::Exists(Hit {
                index: 3,
                side: Side::Inside
            }))
        );
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn remove_needs_the_right_entry() {
        let (mut t, ks, _) = fill(16, 10, u16::MAX);
        assert!(!t.remove(
            &key(3),
            Hit {
                index: 4,
                side: Side::Inside
            }
        ));
        assert!(!t.remove(
            &key(3),
            Hit {
                index: 3,
                side: Side::Outside
            }
        ));
        assert_eq!(t.lookup(&key(3), &ks).map(|h| h.index), Some(3));
    }

    #[test]
    fn displacement_fills_past_ninety_percent() {
        // 64 buckets x 10 = 640 slots: without displacement, two-choice insertion stops well
        // before; with it the table takes more than 95 %.
        let (t, ks, n) = fill(64, 640, u16::MAX);
        assert!(n >= 608, "only {n} of 640 inserted");
        t.check_invariants(&ks);
        for i in 0..n {
            assert_eq!(t.lookup(&key(i), &ks).map(|h| h.index), Some(i));
        }
    }

    #[test]
    fn full_table_refuses_and_stays_intact() {
        let (mut t, mut ks, n) = fill(2, 100, u16::MAX);
        assert_eq!(n, 20, "two buckets hold exactly twenty entries");
        let extra = key(1000);
        ks.0.push([extra, extra]);
        let idx = (ks.0.len() - 1) as u32;
        assert_eq!(
            t.insert(
                &extra,
                Hit {
                    index: idx,
                    side: Side::Inside
                },
                &ks
            ),
            Err(InsertError::Full)
        );
        assert_eq!(t.len(), 20);
        t.check_invariants(&ks);
        for i in 0..20 {
            assert_eq!(t.lookup(&key(i), &ks).map(|h| h.index), Some(i));
        }
        // Freeing one slot makes room again.
        assert!(t.remove(
            &key(7),
            Hit {
                index: 7,
                side: Side::Inside
            }
        ));
        assert_eq!(
            t.insert(
                &extra,
                Hit {
                    index: idx,
                    side: Side::Inside
                },
                &ks
            ),
            Ok(())
        );
    }

    #[test]
    fn signature_collisions_are_resolved_by_key() {
        // Two signature bits: most entries in a bucket share a signature with the probe.
        let (t, ks, n) = fill(32, 250, 0x3);
        assert_eq!(n, 250);
        t.check_invariants(&ks);
        let keys: Vec<FlowKey> = (0..250).map(key).collect();
        let mut out = vec![None; 250];
        t.lookup_burst(&keys, &ks, &mut out);
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.map(|h| h.index), Some(i as u32));
        }
        let missing: Vec<FlowKey> = (250..300).map(key).collect();
        t.lookup_burst(&missing, &ks, &mut out);
        assert!(out[..50].iter().all(Option::is_none));
    }

    #[test]
    fn burst_matches_single_lookups_across_chunks() {
        let (t, ks, _) = fill(128, 500, u16::MAX);
        let keys: Vec<FlowKey> = (0..200).map(|i| key(i * 3)).collect();
        let mut out = vec![None; 200];
        t.lookup_burst(&keys, &ks, &mut out);
        for (k, o) in keys.iter().zip(&out) {
            assert_eq!(*o, t.lookup(k, &ks));
        }
        assert!(out.iter().filter(|o| o.is_some()).count() > 100);
    }

    #[test]
    fn clear_empties() {
        let (mut t, ks, _) = fill(16, 50, u16::MAX);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.lookup(&key(1), &ks), None);
    }
}

//! The per-packet index: flow key -> session entry, a bucketized cuckoo hash table looked up a
//! burst at a time.
//!
//! Layout: a power-of-two array of 64-byte buckets, each one cache line with [`SLOTS`] entries of
//! a 16-bit signature and a 32-bit session entry (index plus side). There is no key in the
//! bucket: the full key is compared against the session's own copy, which the packet needs
//! anyway, so an index entry costs 6.4 bytes at full load. Every key has two candidate buckets,
//! the primary from the low hash bits and an alternate `primary ^ f(signature)` (partial-key
//! cuckoo hashing, Fan et al., "MemC3", NSDI 2013), so an entry can be moved to its other bucket
//! from its signature alone, without reading its key.
//!
//! Placement is primary-first: a key goes to its primary bucket when it has room, to its
//! alternate one otherwise (then it is a *guest* there), and when both are full entries are
//! displaced along the shortest path found by a bounded breadth-first search. Each bucket counts
//! the keys of its own that spilled to their alternate bucket, so a lookup reads the alternate
//! bucket only when that count is not zero. At the load the index is sized for (at most
//! [`MAX_LOAD`]) few buckets spill, and a lookup costs one bucket line plus one session line.
//! The work per lookup is bounded whatever the keys: at most two buckets and their candidates.
//!
//! A lookup comes in three steps so that the memory accesses of a burst's keys overlap instead
//! of following each other: [`FlowIndex::start`] hashes a key and prefetches its primary
//! bucket; [`FlowIndex::advance`] matches signatures there and prefetches the candidate session,
//! or the alternate bucket when the primary one has spilled; [`FlowIndex::finish`] matches the
//! alternate bucket if needed and confirms the key. The pipeline runs each step as a pass over
//! the burst; [`FlowIndex::lookup_burst`] does the same for a slice of keys. DPDK's `rte_hash`
//! bulk lookup and VPP's bihash are built the same way for the same reason. The index counts
//! its changes, so a lookup whose steps straddle an insert or a removal is redone at `finish`.

use super::key::{FlowKey, HashSeed, Side};
use crate::sys::{advise_huge_pages, eq_mask_u16x8, prefetch};

/// Entries per bucket: ten (16-bit signature, 32-bit entry) pairs fill 60 of the 64 bytes; the
/// last four hold the guest bits and the spill count.
pub const SLOTS: usize = 10;

/// Most keys [`FlowIndex::lookup_burst`] processes in one pass; longer slices are cut in chunks.
/// Thirty-two keys keep about a hundred cache lines in flight, more than the CPU tracks.
pub const BURST_MAX: usize = 32;

/// The highest load factor [`FlowIndex::buckets_for`] plans for. Inserts would succeed far
/// beyond (two-choice cuckoo hashing with ten-slot buckets fills past 95 %), but below one half
/// only about one bucket in a hundred spills (primary occupancy is roughly Poisson with a mean
/// of five), so lookups almost never read a second bucket line. Costs at most 51 bytes of index
/// per session (two entries at 25 % load, just past a doubling of the bucket count).
pub const MAX_LOAD: f64 = 0.5;

/// Breadth-first search bound for displacement: two roots, then ten children per bucket, covers
/// every path of up to three moves with room to spare.
const BFS_MAX: usize = 256;

/// Signature of an empty slot; real signatures are never zero.
const EMPTY_SIG: u16 = 0;

/// Marks, in a candidate mask, a key whose primary bucket has spilled: the alternate bucket
/// must be read too.
const READ_ALT: u32 = 1 << 31;

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
    /// Bit `i`: slot `i` holds a guest, an entry whose primary bucket is the other one.
    guests: u16,
    /// How many entries whose primary bucket is this one sit in their alternate bucket.
    spilled: u16,
}

// One bucket is one cache line: probing a bucket loads one line.
const _: () = assert!(size_of::<Bucket>() == 64 && align_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sigs: [EMPTY_SIG; SLOTS],
        entries: [0; SLOTS],
        guests: 0,
        spilled: 0,
    };

    /// Bit `i` set when slot `i` holds `sig`: one SSE2 compare for the first eight slots
    /// ([`eq_mask_u16x8`]), two scalar ones for the last two. About a dozen instructions,
    /// against about 45 for a SWAR version over three 64-bit words and more for what the
    /// auto-vectorizer makes of the plain loop ([`Bucket::matches_naive`]).
    #[inline(always)]
    fn matches(&self, sig: u16) -> u32 {
        let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9] = self.sigs;
        eq_mask_u16x8(&[s0, s1, s2, s3, s4, s5, s6, s7], sig)
            | (u32::from(s8 == sig) << 8)
            | (u32::from(s9 == sig) << 9)
    }

    /// The plain definition of [`Bucket::matches`], for tests.
    #[cfg(test)]
    fn matches_naive(&self, sig: u16) -> u32 {
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
    fn is_guest(&self, slot: usize) -> bool {
        self.guests & (1 << slot) != 0
    }
}

/// Where a key is looked for: its primary bucket and its signature, which give the alternate
/// bucket. A function of the key and the seed alone, so it stays right while the index
/// changes. Step one of a staged lookup ([`FlowIndex::start`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    b1: u32,
    sig: u16,
}

/// A lookup after its second step ([`FlowIndex::advance`]): the slots whose signature matched,
/// and the index's modification count when they were read, so [`FlowIndex::finish`] knows
/// whether they still hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    cands: u32,
    epoch: u32,
}

impl Pending {
    /// Whether no entry had the key's signature: the key was absent when the step ran (most
    /// likely a new flow).
    #[inline(always)]
    pub fn is_miss(&self) -> bool {
        self.cands == 0
    }
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
    /// Counts the changes (inserts, moves, removals): a [`Pending`] read at another count is
    /// stale.
    epoch: u32,
}

impl std::fmt::Debug for FlowIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (buckets, len) = (self.buckets.len(), self.len);
        write!(f, "FlowIndex {{ buckets: {buckets}, len: {len}, .. }}")
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
            epoch: 0,
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
        buckets * size_of::<Bucket>()
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

    /// Fraction of buckets that have spilled entries to their alternate bucket: about the
    /// fraction of lookups of random keys that read two bucket lines. O(buckets), for reports.
    pub fn spilled_fraction(&self) -> f64 {
        let n = self.buckets.iter().filter(|b| b.spilled != 0).count();
        n as f64 / self.buckets.len() as f64
    }

    /// Removes every entry. O(buckets): for resets outside the fast path.
    pub fn clear(&mut self) {
        self.buckets.fill(Bucket::EMPTY);
        self.len = 0;
        self.epoch = self.epoch.wrapping_add(1);
    }

    #[inline(always)]
    fn probe(&self, key: &FlowKey) -> Probe {
        let h = key.hash(&self.seed);
        let b1 = (h as u32) & self.mask;
        let sig = ((h >> 48) as u16) & self.sig_mask;
        let sig = sig + u16::from(sig == EMPTY_SIG);
        Probe { b1, sig }
    }

    /// The other bucket of an entry with signature `sig` in bucket `b`. An involution
    /// (`alt(alt(b)) == b`), never equal to `b` (the offset is odd), and spread over the whole
    /// table by the multiplication.
    #[inline(always)]
    fn alt(&self, b: u32, sig: u16) -> u32 {
        b ^ ((u32::from(sig).wrapping_mul(0x9E37_79B1) | 1) & self.mask)
    }

    /// The alternate bucket of a probe: computed when needed, as most lookups never read it.
    #[inline(always)]
    fn b2(&self, p: Probe) -> u32 {
        self.alt(p.b1, p.sig)
    }

    #[inline(always)]
    fn bucket(&self, b: u32) -> &Bucket {
        &self.buckets[b as usize]
    }

    /// The entry behind candidate bit `bit` (bits `0..SLOTS` in `b1`, the next `SLOTS` in `b2`).
    #[inline(always)]
    fn entry(&self, p: Probe, bit: usize) -> u32 {
        if bit < SLOTS {
            self.bucket(p.b1).entries[bit]
        } else {
            self.alt_entry(p, bit - SLOTS)
        }
    }

    /// Slot `slot` of the alternate bucket: out of line, so that the lookups that read only
    /// their primary bucket (almost all) do not compute the alternate bucket's address.
    #[cold]
    #[inline(never)]
    fn alt_entry(&self, p: Probe, slot: usize) -> u32 {
        self.bucket(self.b2(p)).entries[slot]
    }

    /// Confirms the candidates of `m` against the stored keys.
    #[inline(always)]
    fn confirm<S: KeyStore>(&self, key: &FlowKey, p: Probe, mut m: u32, store: &S) -> Option<Hit> {
        while m != 0 {
            let hit = Hit::decode(self.entry(p, m.trailing_zeros() as usize));
            if store.key_of(hit) == key {
                return Some(hit);
            }
            m &= m - 1;
        }
        None
    }

    /// Signature matches of `p`: in the primary bucket, and in the alternate one if the primary
    /// bucket has spilled.
    #[inline(always)]
    fn candidates(&self, p: Probe) -> u32 {
        let b1 = self.bucket(p.b1);
        let m = b1.matches(p.sig);
        if b1.spilled == 0 {
            m
        } else {
            m | (self.bucket(self.b2(p)).matches(p.sig) << SLOTS)
        }
    }

    /// The entry of `key`, one key at a time (control path, tests, slow path).
    #[inline]
    pub fn lookup<S: KeyStore>(&self, key: &FlowKey, store: &S) -> Option<Hit> {
        let p = self.probe(key);
        self.confirm(key, p, self.candidates(p), store)
    }

    /// Step one of a staged lookup of `key`: hashes it and prefetches its primary bucket.
    ///
    /// A staged lookup is [`FlowIndex::start`], later [`FlowIndex::advance`], later
    /// [`FlowIndex::finish`]. Between the steps the caller does other work (starts other
    /// lookups, processes earlier packets) while the cache lines come in, the way DPDK's
    /// `rte_hash` bulk lookup and VPP's bihash hide memory latency. The index may change in
    /// between: `finish` notices and looks again, so the result is always the current one.
    #[inline(always)]
    pub fn start(&self, key: &FlowKey) -> Probe {
        let p = self.probe(key);
        prefetch(self.bucket(p.b1));
        p
    }

    /// Step two: matches the signature in the primary bucket and prefetches the first
    /// candidate's key in the store, or the alternate bucket when the primary one has spilled.
    #[inline(always)]
    pub fn advance<S: KeyStore>(&self, p: Probe, store: &S) -> Pending {
        let b1 = self.bucket(p.b1);
        let m = b1.matches(p.sig);
        let cands = if b1.spilled != 0 {
            prefetch(self.bucket(self.b2(p)));
            m | READ_ALT
        } else {
            if m != 0 {
                store.prefetch(Hit::decode(b1.entries[m.trailing_zeros() as usize]));
            }
            m
        };
        Pending {
            cands,
            epoch: self.epoch,
        }
    }

    /// The last step: the entry of `key` (whose probe is `p` and second step `pending`), or
    /// `None`. Matches the alternate bucket if it must be read and confirms the full key (a
    /// 16-bit signature collides with probability about 2^-13 per bucket read at the planned
    /// load). If the index changed since `pending` was read, the candidates are read again.
    #[inline(always)]
    pub fn finish<S: KeyStore>(
        &self,
        key: &FlowKey,
        p: Probe,
        pending: Pending,
        store: &S,
    ) -> Option<Hit> {
        if pending.epoch != self.epoch {
            return self.confirm(key, p, self.candidates(p), store);
        }
        let mut m = pending.cands;
        if m & READ_ALT != 0 {
            m = (m & !READ_ALT) | (self.bucket(self.b2(p)).matches(p.sig) << SLOTS);
        }
        self.confirm(key, p, m, store)
    }

    /// Looks up a burst: `out[i]` receives the entry of `keys[i]`, or `None`.
    ///
    /// The three steps of a staged lookup, each as a pass over the burst, so the cache misses
    /// of all keys are in flight together: [`FlowIndex::start`] every key, then
    /// [`FlowIndex::advance`] every key, then [`FlowIndex::finish`] every key. Bursts longer
    /// than [`BURST_MAX`] are processed in chunks.
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
        let mut pending = [Pending::default(); BURST_MAX];
        let probes = &mut probes[..keys.len()];
        let pending = &mut pending[..keys.len()];
        for (p, k) in probes.iter_mut().zip(keys) {
            *p = self.start(k);
        }
        for (d, p) in pending.iter_mut().zip(probes.iter()) {
            *d = self.advance(*p, store);
        }
        for (((o, k), p), d) in out
            .iter_mut()
            .zip(keys)
            .zip(probes.iter())
            .zip(pending.iter())
        {
            *o = self.finish(k, *p, *d, store);
        }
    }

    /// Hints the CPU to load the primary bucket of `key`, ahead of an [`FlowIndex::insert`]
    /// (the slow path can issue it for a whole burst of new flows first).
    #[inline]
    pub fn prefetch_key(&self, key: &FlowKey) {
        prefetch(self.bucket(self.probe(key).b1));
    }

    /// Inserts `key -> hit`.
    ///
    /// Goes to the primary bucket when it has room, else to the alternate one; when both are
    /// full, moves entries along the shortest displacement path found by a breadth-first search
    /// of at most `BFS_MAX` buckets. Checks `store` for an existing equal key first, so one key
    /// never has two entries.
    ///
    /// # Errors
    /// [`InsertError::Exists`] if `key` is already present; [`InsertError::Full`] if no slot
    /// could be made free (the index is left unchanged).
    #[inline(always)]
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
        let can_spill = self.bucket(p.b1).spilled < u16::MAX;
        let (b, slot) = if let Some(s) = self.bucket(p.b1).free_slot() {
            (p.b1, s)
        } else {
            let b2 = self.b2(p);
            if let Some(s) = self.bucket(b2).free_slot().filter(|_| can_spill) {
                (b2, s)
            } else {
                let roots = if can_spill { [p.b1, b2] } else { [p.b1, p.b1] };
                self.make_room(roots).ok_or(InsertError::Full)?
            }
        };
        self.epoch = self.epoch.wrapping_add(1);
        let guest = b != p.b1;
        let bk = &mut self.buckets[b as usize];
        bk.sigs[slot] = p.sig;
        bk.entries[slot] = hit.encode();
        if guest {
            bk.guests |= 1 << slot;
            self.buckets[p.b1 as usize].spilled += 1;
        }
        self.len += 1;
        Ok(())
    }

    /// Frees a slot in one of the `roots` (full buckets) by moving entries to their other
    /// buckets; returns the freed slot. Rare at the planned load, so kept out of line, away
    /// from the common insert path (which the compiler still does not inline into the slow
    /// path: callgrind shows `FlowIndex::insert` as its own function, 92 instructions a call).
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, roots: [u32; 2]) -> Option<(u32, usize)> {
        let mut q = [Node::default(); BFS_MAX];
        q[0] = Node {
            bucket: roots[0],
            parent: NO_PARENT,
            slot: 0,
        };
        q[1] = Node {
            bucket: roots[1],
            parent: NO_PARENT,
            slot: 0,
        };
        let mut len = if roots[0] == roots[1] { 1 } else { 2 };
        let mut head = 0;
        while head < len {
            let node = q[head];
            for s in 0..SLOTS {
                let bk = self.bucket(node.bucket);
                // Moving a resident out makes it a guest: its home's spill count must not
                // overflow. A path visits a bucket once, and the new key may spill from its
                // primary bucket after the moves: one unit of headroom covers both.
                if !bk.is_guest(s) && bk.spilled >= u16::MAX - 1 {
                    continue;
                }
                let alt = self.alt(node.bucket, bk.sigs[s]);
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

    /// Moves the entry in `from_b[from_s]` to its other bucket `to_b`, slot `to_s` (free),
    /// keeping the guest bits and spill counts right.
    fn move_entry(&mut self, from_b: u32, from_s: usize, to_b: u32, to_s: usize) {
        self.epoch = self.epoch.wrapping_add(1);
        let (sig, e, was_guest) = {
            let f = &mut self.buckets[from_b as usize];
            let v = (f.sigs[from_s], f.entries[from_s], f.is_guest(from_s));
            f.sigs[from_s] = EMPTY_SIG;
            f.guests &= !(1 << from_s);
            v
        };
        debug_assert_eq!(self.alt(from_b, sig), to_b);
        let t = &mut self.buckets[to_b as usize];
        debug_assert_eq!(t.sigs[to_s], EMPTY_SIG);
        t.sigs[to_s] = sig;
        t.entries[to_s] = e;
        if was_guest {
            // Back home.
            t.spilled -= 1;
        } else {
            t.guests |= 1 << to_s;
            self.buckets[from_b as usize].spilled += 1;
        }
    }

    /// Removes the entry `hit` stored under `key`; returns whether it was there. Reads no key:
    /// the entry value identifies the slot.
    #[inline(always)]
    pub fn remove(&mut self, key: &FlowKey, hit: Hit) -> bool {
        let p = self.probe(key);
        let e = hit.encode();
        let spilled = self.bucket(p.b1).spilled != 0;
        let b2 = self.b2(p);
        for b in [p.b1, b2] {
            if b == b2 && !spilled {
                break;
            }
            let bk = &mut self.buckets[b as usize];
            let mut m = bk.matches(p.sig);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                if bk.entries[i] == e && bk.is_guest(i) == (b == b2) {
                    bk.sigs[i] = EMPTY_SIG;
                    bk.entries[i] = 0;
                    bk.guests &= !(1 << i);
                    if b == b2 {
                        self.buckets[p.b1 as usize].spilled -= 1;
                    }
                    self.len -= 1;
                    self.epoch = self.epoch.wrapping_add(1);
                    return true;
                }
                m &= m - 1;
            }
        }
        false
    }

    /// Checks the structure: every entry sits in its primary bucket or, as a guest, in its
    /// alternate one; spill counts and the length match. For tests.
    #[cfg(test)]
    pub(crate) fn check_invariants<S: KeyStore>(&self, store: &S) {
        let mut n = 0;
        let mut spilled = vec![0u32; self.buckets.len()];
        for (b, bk) in self.buckets.iter().enumerate() {
            for s in 0..SLOTS {
                if bk.sigs[s] == EMPTY_SIG {
                    assert!(!bk.is_guest(s), "empty slot {s} of bucket {b} marked guest");
                    continue;
                }
                n += 1;
                let hit = Hit::decode(bk.entries[s]);
                let p = self.probe(store.key_of(hit));
                assert_eq!(p.sig, bk.sigs[s], "signature of {hit:?}");
                if bk.is_guest(s) {
                    assert_eq!(
                        self.b2(p),
                        b as u32,
                        "guest {hit:?} in bucket {b}, not {p:?}"
                    );
                    spilled[p.b1 as usize] += 1;
                } else {
                    assert_eq!(p.b1, b as u32, "resident {hit:?} in bucket {b}, not {p:?}");
                }
            }
        }
        assert_eq!(n, self.len);
        for (b, bk) in self.buckets.iter().enumerate() {
            assert_eq!(
                u32::from(bk.spilled),
                spilled[b],
                "spill count of bucket {b}"
            );
        }
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
    use crate::packet::IpProtocol;

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

    /// The entry of session `index`'s inside key.
    fn inside(index: u32) -> Hit {
        Hit {
            index,
            side: Side::Inside,
        }
    }

    /// The entry of session `index`'s outside key.
    fn outside(index: u32) -> Hit {
        Hit {
            index,
            side: Side::Outside,
        }
    }

    fn key(i: u32) -> FlowKey {
        FlowKey::from_raw(
            0x0a00_0000 | i,
            0x0808_0808,
            (i % 50000) as u16,
            53,
            IpProtocol::UDP,
        )
    }

    fn fill(buckets: usize, n: u32, sig_mask: u16) -> (FlowIndex, Keys, u32) {
        let mut t = FlowIndex::with_signature_mask(buckets, HashSeed::fixed(7, 8, 9), sig_mask);
        let mut ks = Keys::default();
        let mut inserted = 0;
        for i in 0..n {
            ks.0.push([key(i), key(i).reverse()]);
            let hit = inside(i);
            match t.insert(&key(i), hit, &ks) {
                Ok(()) => inserted += 1,
                Err(InsertError::Full) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        (t, ks, inserted)
    }

    /// One burst lookup finds keys `0..n`, each under its own entry.
    fn burst_finds_all(t: &FlowIndex, ks: &Keys, n: u32) {
        let keys: Vec<FlowKey> = (0..n).map(key).collect();
        let mut out = vec![None; keys.len()];
        t.lookup_burst(&keys, ks, &mut out);
        for (i, o) in (0..n).zip(&out) {
            assert_eq!(o.map(|h| h.index), Some(i));
        }
    }

    #[test]
    fn matches_equal_naive() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = Bucket::EMPTY;
            // Few distinct values, so lanes collide often; include 0, 1, 0x8000 and 0xffff.
            let pool = [0u16, 1, 0x7fff, 0x8000, 0xffff, (next() as u16)];
            for s in b.sigs.iter_mut() {
                *s = pool[(next() % pool.len() as u64) as usize];
            }
            for sig in pool.iter().copied().chain([next() as u16]) {
                assert_eq!(
                    b.matches(sig),
                    b.matches_naive(sig),
                    "{:?} {sig:#x}",
                    b.sigs
                );
            }
        }
    }

    #[test]
    fn hit_encoding_round_trip() {
        for hit in [inside(0), outside(Hit::MAX_INDEX), outside(12345)] {
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
        assert_eq!(FlowIndex::buckets_for(2_000), 512);
        assert_eq!(FlowIndex::buckets_for(2_000_000), 524_288);
        assert_eq!(FlowIndex::buckets_for(20_000_000), 4_194_304);
        assert_eq!(FlowIndex::bytes_for(256), 16_384);
    }

    #[test]
    fn insert_lookup_remove() {
        let (mut t, ks, n) = fill(64, 100, u16::MAX);
        assert_eq!(n, 100);
        for i in 0..100 {
            let want = inside(i);
            assert_eq!(t.lookup(&key(i), &ks), Some(want));
            assert_eq!(t.lookup(&key(i).reverse(), &ks), None);
        }
        assert!(t.remove(&key(5), inside(5)));
        assert!(!t.remove(&key(5), inside(5)));
        assert_eq!(t.lookup(&key(5), &ks), None);
        assert_eq!(t.len(), 99);
        t.check_invariants(&ks);
    }

    #[test]
    fn duplicate_key_is_refused() {
        let (mut t, mut ks, _) = fill(16, 10, u16::MAX);
        ks.0.push([key(3), key(3)]);
        let r = t.insert(&key(3), inside(10), &ks);
        assert_eq!(r, Err(InsertError::Exists(inside(3))));
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn remove_needs_the_right_entry() {
        let (mut t, ks, _) = fill(16, 10, u16::MAX);
        assert!(!t.remove(&key(3), inside(4)));
        assert!(!t.remove(&key(3), outside(3)));
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
    fn guests_are_found_and_removed() {
        // Eight buckets filled to 90 %: many primaries overflow into their alternate bucket.
        let (mut t, ks, n) = fill(8, 72, u16::MAX);
        assert_eq!(n, 72);
        assert!(t.spilled_fraction() > 0.0);
        t.check_invariants(&ks);
        burst_finds_all(&t, &ks, 72);
        // Removing everything brings every spill count back to zero.
        for i in 0..72 {
            assert!(t.remove(&key(i), inside(i)));
            t.check_invariants(&ks);
        }
        assert_eq!(t.spilled_fraction(), 0.0);
    }

    #[test]
    fn saturated_spill_count_refuses_instead_of_overflowing() {
        // Two buckets; pretend bucket 0 already has u16::MAX keys spilled elsewhere.
        let mut t = FlowIndex::new(2, HashSeed::fixed(7, 8, 9));
        let mut ks = Keys::default();
        t.buckets[0].spilled = u16::MAX;
        let (mut home0, mut refused) = (0, 0);
        for i in 0..200 {
            ks.0.push([key(i), key(i)]);
            let p = t.probe(&key(i));
            let r = t.insert(&key(i), inside(i), &ks);
            if p.b1 == 0 {
                match r {
                    Ok(()) => home0 += 1,
                    Err(InsertError::Full) => refused += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        // Keys whose primary is bucket 0 fill it and are then refused, never spilled.
        assert_eq!(home0, SLOTS);
        assert!(refused > 0);
        assert_eq!(t.buckets[0].spilled, u16::MAX);
        assert_eq!(t.buckets[1].guests, 0);
    }

    #[test]
    fn half_load_rarely_spills() {
        let (t, ks, n) = fill(1024, 5120, u16::MAX);
        assert_eq!(n, 5120);
        t.check_invariants(&ks);
        let f = t.spilled_fraction();
        assert!(f < 0.05, "{f}");
    }

    #[test]
    fn full_table_refuses_and_stays_intact() {
        let (mut t, mut ks, n) = fill(2, 100, u16::MAX);
        assert_eq!(n, 20, "two buckets hold exactly twenty entries");
        let extra = key(1000);
        ks.0.push([extra, extra]);
        let idx = (ks.0.len() - 1) as u32;
        assert_eq!(t.insert(&extra, inside(idx), &ks), Err(InsertError::Full));
        assert_eq!(t.len(), 20);
        t.check_invariants(&ks);
        for i in 0..20 {
            assert_eq!(t.lookup(&key(i), &ks).map(|h| h.index), Some(i));
        }
        // Freeing one slot makes room again.
        assert!(t.remove(&key(7), inside(7)));
        assert_eq!(t.insert(&extra, inside(idx), &ks), Ok(()));
    }

    #[test]
    fn signature_collisions_are_resolved_by_key() {
        // Two signature bits: most entries in a bucket share a signature with the probe.
        let (t, ks, n) = fill(32, 250, 0x3);
        assert_eq!(n, 250);
        t.check_invariants(&ks);
        burst_finds_all(&t, &ks, 250);
        let missing: Vec<FlowKey> = (250..300).map(key).collect();
        let mut out = vec![None; 50];
        t.lookup_burst(&missing, &ks, &mut out);
        assert!(out.iter().all(Option::is_none));
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

    /// Work between the steps of a staged lookup (the pipeline's earlier packets creating and
    /// closing sessions) moves, removes and adds entries; `finish` must still give the current
    /// answer. Without the change count it would not: the test checks that some answers taken
    /// from the stale second steps are wrong.
    #[test]
    fn a_staged_lookup_sees_the_changes_made_between_its_steps() {
        // 32 buckets, 300 keys: nearly full, so inserts displace entries.
        let (mut t, mut ks, n) = fill(32, 300, u16::MAX);
        assert!(n > 250, "{n}");
        let keys: Vec<FlowKey> = (0..n + 100).map(key).collect();
        let steps: Vec<(Probe, Pending)> = keys
            .iter()
            .map(|k| {
                let p = t.start(k);
                (p, t.advance(p, &ks))
            })
            .collect();
        for i in (0..n).step_by(7) {
            let hit = inside(i);
            assert!(t.remove(&key(i), hit));
        }
        for i in n..n + 100 {
            ks.0.push([key(i), key(i).reverse()]);
            let hit = inside(i);
            if t.insert(&key(i), hit, &ks) == Err(InsertError::Full) {
                break;
            }
        }
        t.check_invariants(&ks);
        let mut stale = 0;
        for (k, (p, d)) in keys.iter().zip(&steps) {
            let now = t.lookup(k, &ks);
            assert_eq!(t.finish(k, *p, *d, &ks), now, "{k:?}");
            let ignoring_changes = Pending {
                cands: d.cands,
                epoch: t.epoch,
            };
            stale += usize::from(t.finish(k, *p, ignoring_changes, &ks) != now);
        }
        assert!(
            stale > 10,
            "only {stale} stale second steps: the test changes too little"
        );
    }

    #[test]
    fn clear_empties() {
        let (mut t, ks, _) = fill(16, 50, u16::MAX);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.lookup(&key(1), &ks), None);
    }
}

//! The per-worker session table: flow keys, the session slab, the per-packet index, the expiry
//! lists and TCP connection tracking (DESIGN.md, "Session table").
//!
//! One [`FlowTable`] per worker, owned and used by that worker only, so nothing here locks.
//! Sizes are fixed when the table is created and nothing allocates afterwards: the lookup,
//! [`FlowTable::touch`], [`FlowTable::create`] and [`FlowTable::expire`] work in preallocated
//! memory. Time is the caller's clock (seconds as `u32`), passed in, so tests use a fake clock.
//!
//! A session is indexed under two keys, the tuple of its packets arriving on the inside and the
//! tuple of those arriving on the outside; a lookup tells which one matched ([`Hit::side`]).
//!
//! Memory per session: 64 bytes of session record plus the index slots of its two keys (6.4
//! bytes each at full load; the index is sized for at most half load, so 26 to 52 bytes for
//! both): [`FlowTable::bytes_per_session_for`], at most 116 bytes.

pub mod expiry;
pub mod index;
pub mod key;
pub mod session;
pub mod tcp;
pub mod timeouts;

#[cfg(test)]
mod tests;

pub use index::{FlowIndex, Hit, InsertError, KeyStore, Pending, Probe, BURST_MAX};
pub use key::{FlowKey, HashSeed, Side};
pub use session::{Session, Slab};
pub use tcp::{Dir, TcpState};
pub use timeouts::{TimeoutClass, Timeouts};

use crate::packet::{ChecksumDeltas, IpProtocol, TcpFlags};
use expiry::Lru;
use session::NIL;
use timeouts::is_expired;

/// Why a session could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// No free session and none expired to reuse, or no index room for a key: the flow is
    /// dropped and counted as `session_table_full`.
    Full,
    /// One of the two keys already belongs to a live session (this one).
    Exists(Hit),
}

impl From<InsertError> for CreateError {
    fn from(e: InsertError) -> Self {
        match e {
            InsertError::Full => CreateError::Full,
            InsertError::Exists(h) => CreateError::Exists(h),
        }
    }
}

/// What the slow path knows about a new session when it creates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// Tuple of the session's packets arriving from the inside.
    pub inside: FlowKey,
    /// Tuple of the session's packets arriving from the outside.
    pub outside: FlowKey,
    /// Side of the first packet: [`Side::Inside`] for SNAT egress, [`Side::Outside`] for a port
    /// forward.
    pub orig: Side,
    /// Initial TCP state (from [`TcpState::open`]); ignored for other protocols.
    pub tcp: TcpState,
    /// Policy generation the session is admitted under.
    pub policy_gen: u32,
    /// Inside-to-outside checksum deltas.
    pub deltas: ChecksumDeltas,
}

impl NewSession {
    /// A session between `inside` and `outside` opened from `orig`, TCP state `SynSent`, policy
    /// generation 0, zero checksum deltas.
    pub const fn new(inside: FlowKey, outside: FlowKey, orig: Side) -> Self {
        Self {
            inside,
            outside,
            orig,
            tcp: TcpState::SynSent,
            policy_gen: 0,
            deltas: ChecksumDeltas { ip: 0, l4: 0 },
        }
    }

    /// A session between `inside` and `outside` opened from `orig` whose packets are
    /// translated: its checksum deltas are those from the inside tuple to the one its packets
    /// leave with, the reverse of the outside key ([`ChecksumDeltas::between`]). TCP state
    /// `SynSent`, policy generation 0, as [`NewSession::new`].
    #[inline]
    pub fn translating(inside: FlowKey, outside: FlowKey, orig: Side) -> Self {
        Self {
            deltas: ChecksumDeltas::between(&inside.tuple(), &outside.reverse().tuple()),
            ..Self::new(inside, outside, orig)
        }
    }

    /// The timeout class the session starts in: from the TCP state for TCP, else from the
    /// protocol (UDP timeout for protocols other than ICMP).
    pub const fn class(&self) -> TimeoutClass {
        match self.inside.protocol() {
            IpProtocol::TCP => self.tcp.timeout_class(),
            IpProtocol::ICMP => TimeoutClass::Icmp,
            _ => TimeoutClass::Udp,
        }
    }
}

/// The per-worker session table: index + slab + expiry lists.
pub struct FlowTable {
    index: FlowIndex,
    slab: Slab,
    lru: [Lru; 4],
    timeouts: Timeouts,
    cursor: usize,
    /// Per expiry list, the sessions that will be its next heads, loading ([`Ahead`]).
    ahead: [Ahead; 4],
}

/// How many sessions of an expiry list, from its head on, are loading ahead of their removal.
const AHEAD: usize = 4;

/// The next heads of an expiry list, in list order from the head, whose records were
/// prefetched (and, all but the last, their index buckets too): removing the oldest sessions
/// one by one (reclaim, expiry) then finds each one's lines loaded several removals earlier,
/// where following the list one record at a time would wait for each.
///
/// A hint only: if the list changed under it (a queued session was touched, closed or
/// reclaimed elsewhere), the front no longer is the head and the queue starts again from the
/// head; a stale entry costs a wasted prefetch, never a wrong removal.
#[derive(Clone, Copy, Debug)]
struct Ahead {
    ring: [u32; AHEAD],
    start: usize,
    len: usize,
}

impl Ahead {
    const EMPTY: Ahead = Ahead {
        ring: [NIL; AHEAD],
        start: 0,
        len: 0,
    };

    fn front(&self) -> Option<u32> {
        (self.len > 0).then(|| self.ring[self.start])
    }

    fn back(&self) -> Option<u32> {
        (self.len > 0).then(|| self.ring[(self.start + self.len - 1) % AHEAD])
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.start = (self.start + 1) % AHEAD;
            self.len -= 1;
        }
    }

    fn push(&mut self, idx: u32) {
        if self.len < AHEAD {
            self.ring[(self.start + self.len) % AHEAD] = idx;
            self.len += 1;
        }
    }
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("len", &self.slab.len())
            .field("capacity", &self.slab.capacity())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl FlowTable {
    /// A table for `capacity` sessions, hashing with a fresh random seed. Allocates everything
    /// now (`capacity` x 64 bytes of sessions and an index sized for `2 x capacity` keys at up
    /// to [`index::MAX_LOAD`]), advised to transparent huge pages.
    ///
    /// # Panics
    /// If `capacity` is zero or above 2^31 - 1.
    pub fn new(capacity: u32, timeouts: Timeouts) -> Self {
        Self::with_seed(capacity, timeouts, HashSeed::random())
    }

    /// Like [`FlowTable::new`] with a given hash seed: reproducible tests and benchmarks only.
    pub fn with_seed(capacity: u32, timeouts: Timeouts, seed: HashSeed) -> Self {
        let buckets = FlowIndex::buckets_for(2 * capacity as usize);
        Self {
            index: FlowIndex::new(buckets, seed),
            slab: Slab::new(capacity),
            lru: [Lru::EMPTY; 4],
            timeouts,
            cursor: 0,
            ahead: [Ahead::EMPTY; 4],
        }
    }

    #[cfg(test)]
    pub(crate) fn with_index(capacity: u32, timeouts: Timeouts, index: FlowIndex) -> Self {
        Self {
            index,
            slab: Slab::new(capacity),
            lru: [Lru::EMPTY; 4],
            timeouts,
            cursor: 0,
            ahead: [Ahead::EMPTY; 4],
        }
    }

    /// Bytes a table of `capacity` sessions allocates (slab + index), divided by `capacity`:
    /// the memory cost of one session including both its index entries, at full load.
    pub fn bytes_per_session_for(capacity: u32) -> f64 {
        let buckets = FlowIndex::buckets_for(2 * capacity as usize);
        (Slab::bytes_for(capacity) + FlowIndex::bytes_for(buckets)) as f64 / f64::from(capacity)
    }

    /// Bytes this table allocated (slab + index).
    pub fn memory_bytes(&self) -> usize {
        Slab::bytes_for(self.slab.capacity()) + self.index.memory_bytes()
    }

    /// Live sessions.
    #[inline]
    pub fn len(&self) -> u32 {
        self.slab.len()
    }

    /// Whether no session is live.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Most sessions the table holds.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.slab.capacity()
    }

    /// Live sessions in each timeout class, in [`TimeoutClass::ALL`] order (for the
    /// sessions-by-class counters).
    pub fn len_by_class(&self) -> [u32; 4] {
        self.lru.map(|l| l.len)
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Changes the timeouts (a policy reload). Each class list stays ordered by `last_seen`,
    /// so expiry under the new values stays correct.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// Every live session with its index. O(capacity): for listings, not the fast path.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Session)> + '_ {
        self.slab.iter()
    }

    /// The per-packet index (for its load and size).
    pub fn index(&self) -> &FlowIndex {
        &self.index
    }

    /// The session and side of `key`, one key at a time.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<Hit> {
        self.index.lookup(key, &self.slab)
    }

    /// Looks up a burst of keys with prefetching ([`FlowIndex::lookup_burst`]); `out[i]` gets
    /// the session of `keys[i]`. On return the matched sessions are in cache.
    ///
    /// # Panics
    /// If `out` is shorter than `keys`.
    #[inline]
    pub fn lookup_burst(&self, keys: &[FlowKey], out: &mut [Option<Hit>]) {
        self.index.lookup_burst(keys, &self.slab, out);
    }

    /// Step one of a staged lookup ([`FlowIndex::start`]): hashes `key`, prefetches its bucket.
    #[inline(always)]
    pub fn start(&self, key: &FlowKey) -> Probe {
        self.index.start(key)
    }

    /// Step two of a staged lookup ([`FlowIndex::advance`]): matches signatures, prefetches the
    /// candidate session.
    #[inline(always)]
    pub fn advance(&self, p: Probe) -> Pending {
        self.index.advance(p, &self.slab)
    }

    /// The last step of a staged lookup ([`FlowIndex::finish`]): the session and side of `key`,
    /// as the table is now, whatever changed since the first steps.
    #[inline(always)]
    pub fn finish(&self, key: &FlowKey, p: Probe, pending: Pending) -> Option<Hit> {
        self.index.finish(key, p, pending, &self.slab)
    }

    /// Hints the CPU to load session `idx`.
    #[inline(always)]
    pub fn prefetch(&self, idx: u32) {
        self.slab.prefetch(idx);
    }

    /// Hints the CPU to load the index buckets `key` would be inserted in: the slow path can
    /// issue it for every new flow of a burst before creating them.
    #[inline]
    pub fn prefetch_insert(&self, key: &FlowKey) {
        self.index.prefetch_key(key);
    }

    /// The live session `idx`.
    #[inline(always)]
    pub fn get(&self, idx: u32) -> Option<&Session> {
        self.slab.get(idx)
    }

    /// The live session `idx`, mutably: rewrite deltas, policy generation and counters. Keys,
    /// times, class and TCP state change only through the table, which keeps the index and the
    /// expiry lists consistent with them.
    #[inline(always)]
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut Session> {
        self.slab.get_mut(idx)
    }

    /// Records activity of session `idx` at `now`: sets `last_seen` and moves the session to the
    /// tail of its expiry list. A second touch within the same clock tick changes nothing (the
    /// list stays ordered without moving it), nor does a clock that went backwards. Unknown
    /// indices are ignored.
    #[inline]
    pub fn touch(&mut self, idx: u32, now: u32) {
        let Some(s) = self.slab.get_mut(idx) else {
            return;
        };
        if now <= s.last_seen {
            return;
        }
        s.last_seen = now;
        let class = s.timeout_class() as usize;
        self.lru[class].move_to_tail(self.slab.records_mut(), idx);
    }

    /// The fast path's list work for a packet that matched `hit` at `now`, once the caller
    /// counted it on the record ([`Session::count`]; the pipeline fetches the record once for
    /// its checks, the count and the rewrite): runs the TCP tracker when `tcp` carries the
    /// segment's flags ([`FlowTable::track_tcp`]), else touches the session
    /// ([`FlowTable::touch`]) when `idle` (the clock moved past its last packet). For most
    /// packets that is no list work at all.
    #[inline(always)]
    pub fn follow(&mut self, hit: Hit, now: u32, tcp: Option<TcpFlags>, idle: bool) {
        match tcp {
            Some(flags) => {
                self.track_tcp(hit.index, flags, hit.side, now);
            }
            None if idle => self.touch(hit.index, now),
            None => {}
        }
    }

    /// Touches the sessions of a looked-up burst ([`FlowTable::lookup_burst`]'s output) at
    /// `now`, in two passes: first prefetch the list neighbours of every session that will
    /// move (their links are rewritten, and they are random lines), then touch. Same effect as
    /// [`FlowTable::touch`] on each hit in order.
    #[inline]
    pub fn touch_burst(&mut self, hits: &[Option<Hit>], now: u32) {
        for h in hits.iter().flatten() {
            if let Some(s) = self.slab.get(h.index) {
                if now > s.last_seen && s.next != NIL {
                    self.slab.prefetch(s.prev);
                    self.slab.prefetch(s.next);
                }
            }
        }
        for h in hits.iter().flatten() {
            self.touch(h.index, now);
        }
    }

    /// Runs the TCP tracker for a packet with `flags` that arrived on `from`, at `now`: updates
    /// the state, moves the session to the list of its new timeout class, and touches it.
    /// Returns the new state, or `None` for an unknown index or a session of another protocol
    /// (which is only touched).
    #[inline]
    pub fn track_tcp(
        &mut self,
        idx: u32,
        flags: TcpFlags,
        from: Side,
        now: u32,
    ) -> Option<TcpState> {
        let s = self.slab.get_mut(idx)?;
        if s.inside().protocol() != IpProtocol::TCP {
            self.touch(idx, now);
            return None;
        }
        let (state, class) = s.tcp_state().step(flags, s.dir_of(from));
        s.set_tcp_state(state);
        let old = s.timeout_class();
        if old == class {
            // `touch`, on the record in hand.
            if now > s.last_seen {
                s.last_seen = now;
                self.lru[class as usize].move_to_tail(self.slab.records_mut(), idx);
            }
        } else {
            s.set_class(class);
            s.last_seen = s.last_seen.max(now);
            let recs = self.slab.records_mut();
            self.lru[old as usize].unlink(recs, idx);
            self.lru[class as usize].push_tail(recs, idx);
        }
        Some(state)
    }

    /// Creates a session and indexes both its keys; returns its index.
    ///
    /// When every session is in use, the one whose deadline passed longest ago is reused:
    /// `on_reclaim(idx, &session)` is called first so the owner can release its NAT port. A
    /// session that has not expired is never evicted, established or not.
    ///
    /// It loads nothing ahead: a caller that creates sessions on a large table prefetches the
    /// index buckets of both keys first ([`FlowTable::prefetch_insert`]), as
    /// [`FlowTable::create_burst`] and the pipeline's stage 2 do.
    ///
    /// # Errors
    /// [`CreateError::Full`] when nothing is free or expired (or, rarely, the index has no room
    /// for a key); [`CreateError::Exists`] when a key is already taken. The table is unchanged
    /// either way, except for an expired session that may have been reclaimed.
    ///
    /// Inlined where the pipeline creates sessions (its slow path and a tunnel port's): as a
    /// call, each new flow cost about 40 instructions more (callgrind, `benches/callgrind.sh`).
    #[inline(always)]
    pub fn create<F: FnMut(u32, &Session)>(
        &mut self,
        new: &NewSession,
        now: u32,
        on_reclaim: F,
    ) -> Result<u32, CreateError> {
        let idx = match self.slab.alloc() {
            Some(i) => i,
            None => {
                if !self.reclaim_one(now, on_reclaim) {
                    return Err(CreateError::Full);
                }
                self.slab.alloc().ok_or(CreateError::Full)?
            }
        };
        let class = new.class();
        let tcp = if new.inside.protocol() == IpProtocol::TCP {
            new.tcp
        } else {
            TcpState::Closed
        };
        if let Some(s) = self.slab.get_mut(idx) {
            s.init(
                new.inside,
                new.outside,
                new.orig,
                tcp,
                class,
                new.policy_gen,
                new.deltas,
                now,
            );
        }
        let inside = Hit {
            index: idx,
            side: Side::Inside,
        };
        if let Err(e) = self.index.insert(&new.inside, inside, &self.slab) {
            self.slab.free(idx);
            return Err(e.into());
        }
        let outside = Hit {
            index: idx,
            side: Side::Outside,
        };
        if let Err(e) = self.index.insert(&new.outside, outside, &self.slab) {
            self.index.remove(&new.inside, inside);
            self.slab.free(idx);
            return Err(e.into());
        }
        self.lru[class as usize].push_tail(self.slab.records_mut(), idx);
        Ok(idx)
    }

    /// Creates a burst of sessions: first prefetches the index buckets of every key, then
    /// creates each in order, so the bucket misses of the whole burst overlap (several times
    /// the rate of cold one-by-one [`FlowTable::create`] calls on a large table). `out[i]`
    /// receives the result for `new[i]`; `on_reclaim` as for [`FlowTable::create`].
    ///
    /// # Panics
    /// If `out` is shorter than `new`.
    pub fn create_burst<F: FnMut(u32, &Session)>(
        &mut self,
        new: &[NewSession],
        now: u32,
        mut on_reclaim: F,
        out: &mut [Result<u32, CreateError>],
    ) {
        assert!(out.len() >= new.len(), "output shorter than the burst");
        for n in new {
            self.index.prefetch_key(&n.inside);
            self.index.prefetch_key(&n.outside);
        }
        for (n, o) in new.iter().zip(out.iter_mut()) {
            *o = self.create(n, now, &mut on_reclaim);
        }
    }

    /// Frees the expired session with the oldest deadline, if any.
    fn reclaim_one<F: FnMut(u32, &Session)>(&mut self, now: u32, mut on_reclaim: F) -> bool {
        let mut best: Option<(u64, u32)> = None;
        for class in TimeoutClass::ALL {
            let head = self.lru[class as usize].head;
            let Some(s) = self.slab.get(head) else {
                continue;
            };
            let timeout = self.timeouts.of(class);
            if is_expired(s.last_seen, timeout, now) {
                let deadline = u64::from(s.last_seen) + u64::from(timeout);
                match best {
                    Some((d, _)) if d <= deadline => {}
                    _ => best = Some((deadline, head)),
                }
            }
        }
        let Some((_, idx)) = best else {
            return false;
        };
        let class = match self.slab.get(idx) {
            Some(s) => {
                on_reclaim(idx, s);
                s.timeout_class()
            }
            None => return false,
        };
        let removed = self.remove_prefetched(idx);
        self.prefetch_ahead(class);
        removed
    }

    /// Hints the CPU to load what removing the next heads of `class`'s list will touch: their
    /// records and the index buckets of their keys ([`Ahead`]). Called when a head was just
    /// removed (expired or reclaimed).
    ///
    /// Each call moves the queue one session on: it reads the record of the last session
    /// queued (prefetched by the previous call, so loaded), prefetches that session's buckets
    /// and the record after it, and queues that one. A session's buckets are so asked for
    /// `AHEAD - 2` removals before its own, its record `AHEAD - 1` removals before.
    #[inline]
    fn prefetch_ahead(&mut self, class: TimeoutClass) {
        let head = self.lru[class as usize].head;
        let q = &mut self.ahead[class as usize];
        if q.front().is_some_and(|f| f != head) {
            // The front was the head just removed; anything else means the list changed.
            q.pop();
            if q.front().is_some_and(|f| f != head) {
                *q = Ahead::EMPTY;
            }
        }
        if q.len == 0 {
            if head == NIL {
                return;
            }
            q.push(head);
        }
        // Twice while the queue is short (after it started again), so it grows back to
        // AHEAD; once it is full, once a call (a removal took one off).
        for _ in 0..2 {
            if q.len >= AHEAD {
                break;
            }
            let Some(s) = q.back().and_then(|last| self.slab.get(last)) else {
                *q = Ahead::EMPTY;
                return;
            };
            self.index.prefetch_key(&s.keys[0]);
            self.index.prefetch_key(&s.keys[1]);
            if s.next == NIL {
                break;
            }
            self.slab.prefetch(s.next);
            q.push(s.next);
        }
    }

    /// Deletes session `idx`: both index entries, its list link, its record. Returns false if it
    /// was not live.
    pub fn remove(&mut self, idx: u32) -> bool {
        if let Some(s) = self.slab.get(idx) {
            // Independent random lines (a bucket per key): start them together rather than one
            // after another.
            self.index.prefetch_key(&s.keys[0]);
            self.index.prefetch_key(&s.keys[1]);
            // Its list neighbours, whose links the unlink rewrites. (A head has none before
            // it, and the queue of next heads loaded the one after.)
            self.slab.prefetch(s.prev);
            self.slab.prefetch(s.next);
        }
        self.remove_prefetched(idx)
    }

    /// [`FlowTable::remove`] for a session whose index buckets and list neighbours were
    /// prefetched: by `remove`, or for the head of an expiry list by
    /// [`FlowTable::prefetch_ahead`].
    fn remove_prefetched(&mut self, idx: u32) -> bool {
        let Some(s) = self.slab.get(idx) else {
            return false;
        };
        let (inside, outside, class) = (s.keys[0], s.keys[1], s.timeout_class());
        self.index.remove(
            &inside,
            Hit {
                index: idx,
                side: Side::Inside,
            },
        );
        self.index.remove(
            &outside,
            Hit {
                index: idx,
                side: Side::Outside,
            },
        );
        self.lru[class as usize].unlink(self.slab.records_mut(), idx);
        self.slab.free(idx)
    }

    /// Frees up to `budget` expired sessions (`last_seen + timeout <= now`), oldest first in each
    /// class, calling `on_expire(idx, &session)` before each is deleted so the owner can release
    /// its NAT port and log it. Returns how many were freed.
    ///
    /// Bounded work for the worker loop: each list is ordered by `last_seen`, so the walk stops
    /// at the first live head of each class; the starting class rotates between calls so a
    /// class with many expired sessions cannot starve the others.
    pub fn expire<F: FnMut(u32, &Session)>(
        &mut self,
        now: u32,
        budget: u32,
        mut on_expire: F,
    ) -> u32 {
        let mut done = 0;
        for k in 0..TimeoutClass::ALL.len() {
            let class = TimeoutClass::ALL[(self.cursor + k) % TimeoutClass::ALL.len()];
            let timeout = self.timeouts.of(class);
            while done < budget {
                let head = self.lru[class as usize].head;
                let Some(s) = self.slab.get(head) else {
                    break;
                };
                if !is_expired(s.last_seen, timeout, now) {
                    break;
                }
                on_expire(head, s);
                self.remove_prefetched(head);
                self.prefetch_ahead(class);
                done += 1;
            }
        }
        self.cursor = (self.cursor + 1) % TimeoutClass::ALL.len();
        done
    }

    /// Deletes every session without callbacks. O(capacity): for resets outside the fast path.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slab.clear();
        self.lru = [Lru::EMPTY; 4];
        self.ahead = [Ahead::EMPTY; 4];
    }

    /// Checks every structural invariant; for tests. With `sorted`, also that each list is
    /// ordered by `last_seen` (true when the clock never went backwards).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self, sorted: bool) {
        let mut on_lists = 0;
        for class in TimeoutClass::ALL {
            let l = &self.lru[class as usize];
            let (mut i, mut prev, mut n, mut last) = (l.head, NIL, 0, 0);
            while i != NIL {
                let s = self.slab.get(i).expect("listed session is live");
                assert_eq!(s.timeout_class(), class, "session {i} on the wrong list");
                assert_eq!(s.prev, prev);
                if sorted {
                    assert!(s.last_seen >= last, "list {class:?} out of order at {i}");
                }
                last = s.last_seen;
                prev = i;
                i = s.next;
                n += 1;
            }
            assert_eq!(l.tail, prev);
            assert_eq!(l.len, n);
            on_lists += n;
        }
        assert_eq!(
            on_lists,
            self.slab.len(),
            "every live session on exactly one list"
        );
        assert_eq!(
            self.slab.free_list_len() + self.slab.len(),
            self.slab.capacity()
        );
        assert_eq!(self.index.len(), 2 * self.slab.len() as usize);
        self.index.check_invariants(&self.slab);
        for idx in 0..self.slab.capacity() {
            if let Some(s) = self.slab.get(idx) {
                for side in [Side::Inside, Side::Outside] {
                    assert_eq!(
                        self.lookup(s.key(side)),
                        Some(Hit { index: idx, side }),
                        "key of session {idx} {side:?}"
                    );
                }
            }
        }
    }
}

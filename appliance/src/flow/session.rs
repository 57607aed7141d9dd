//! The session record and the preallocated slab that holds them.

use super::index::{Hit, KeyStore};
use super::key::{FlowKey, Side};
use super::tcp::{Dir, TcpState};
use super::timeouts::TimeoutClass;
use crate::packet::{ChecksumDeltas, IpProtocol};
use crate::sys::{advise_huge_pages, prefetch};
use std::mem::offset_of;

/// "No session": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

const META_CLASS: u8 = 0b0000_0011;
const META_ORIG_OUTSIDE: u8 = 0b0000_0100;
const META_TAG: u8 = 0b0011_1000;
const META_TAG_SHIFT: u32 = 3;
const META_LIVE: u8 = 0b1000_0000;

/// One NAT session: exactly one 64-byte cache line, so confirming the key, rewriting the packet,
/// counting and touching it cost a single cache miss.
///
/// Layout (offsets in bytes):
///
/// | offset | field | |
/// |---|---|---|
/// | 0 | `keys[0]` | inside-side key: the tuple of packets arriving from the inside |
/// | 16 | `keys[1]` | outside-side key: the tuple of packets arriving from the outside |
/// | 32 | `prev`, `next` | LRU links within the timeout class list (`next` links the free list) |
/// | 40 | `last_seen` | time of the last packet, caller's clock (seconds) |
/// | 44 | `policy_gen` | policy generation the session was last admitted under |
/// | 48 | `ip_delta`, `l4_delta` | checksum deltas for inside-to-outside rewriting |
/// | 52 | `packets` | packets, both directions (wrapping u32) |
/// | 56 | `bytes_lo`, `bytes_hi` | bytes, both directions (48 bits: 256 TiB) |
/// | 62 | `tcp` | [`TcpState`] code |
/// | 63 | `meta` | timeout class (2 bits), originating side, live flag |
///
/// The rewrite is not stored twice: a packet that arrived with one side's key leaves with the
/// reverse of the other side's key (that is what the other side sees), so the new addresses and
/// ports of both directions are in the keys, and the outside-to-inside checksum deltas are the
/// ones' complement negation of the inside-to-outside ones ([`Session::deltas_from`]).
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Session {
    pub(super) keys: [FlowKey; 2],
    pub(super) prev: u32,
    pub(super) next: u32,
    pub(super) last_seen: u32,
    policy_gen: u32,
    ip_delta: u16,
    l4_delta: u16,
    packets: u32,
    bytes_lo: u32,
    bytes_hi: u16,
    tcp: u8,
    meta: u8,
}

// The layout above, checked by the compiler: a change that moves a field or grows the record
// past its cache line does not build.
const _: () = {
    assert!(size_of::<Session>() == 64 && align_of::<Session>() == 64);
    assert!(offset_of!(Session, keys) == 0);
    assert!(offset_of!(Session, prev) == 32);
    assert!(offset_of!(Session, last_seen) == 40);
    assert!(offset_of!(Session, ip_delta) == 48);
    assert!(offset_of!(Session, packets) == 52);
    assert!(offset_of!(Session, tcp) == 62);
    assert!(offset_of!(Session, meta) == 63);
};

impl Session {
    /// A free record: on the free list, linked to `next`.
    const fn free(next: u32) -> Self {
        Self {
            keys: [FlowKey::from_raw(0, 0, 0, 0, IpProtocol::of(0)); 2],
            prev: NIL,
            next,
            last_seen: 0,
            policy_gen: 0,
            ip_delta: 0,
            l4_delta: 0,
            packets: 0,
            bytes_lo: 0,
            bytes_hi: 0,
            tcp: 0,
            meta: 0,
        }
    }

    /// Initialises a record taken off the free list; links are left to the caller.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn init(
        &mut self,
        inside: FlowKey,
        outside: FlowKey,
        orig: Side,
        tcp: TcpState,
        class: TimeoutClass,
        policy_gen: u32,
        deltas: ChecksumDeltas,
        now: u32,
    ) {
        self.keys = [inside, outside];
        self.last_seen = now;
        self.policy_gen = policy_gen;
        self.ip_delta = deltas.ip;
        self.l4_delta = deltas.l4;
        self.packets = 0;
        self.bytes_lo = 0;
        self.bytes_hi = 0;
        self.tcp = tcp.to_code();
        self.meta = META_LIVE
            | (class as u8)
            | if orig == Side::Outside {
                META_ORIG_OUTSIDE
            } else {
                0
            };
    }

    /// The key of packets arriving on `side`.
    #[inline(always)]
    pub fn key(&self, side: Side) -> &FlowKey {
        &self.keys[side as usize]
    }

    /// The inside-side key.
    #[inline]
    pub fn inside(&self) -> &FlowKey {
        &self.keys[0]
    }

    /// The outside-side key.
    #[inline]
    pub fn outside(&self) -> &FlowKey {
        &self.keys[1]
    }

    /// The checksum deltas of a packet that arrived on `from`: the stored ones for a packet
    /// from the inside, negated for one from the outside. A packet leaves with the reverse of
    /// the other side's key ([`FlowKey::reverse_wire`]), so these and that key are its whole
    /// rewrite ([`crate::packet::translate::translate`]).
    #[inline(always)]
    pub fn deltas_from(&self, from: Side) -> ChecksumDeltas {
        let deltas = ChecksumDeltas {
            ip: self.ip_delta,
            l4: self.l4_delta,
        };
        match from {
            Side::Inside => deltas,
            Side::Outside => deltas.reversed(),
        }
    }

    /// The stored inside-to-outside checksum deltas.
    #[inline]
    pub fn checksum_deltas(&self) -> ChecksumDeltas {
        ChecksumDeltas {
            ip: self.ip_delta,
            l4: self.l4_delta,
        }
    }

    /// Sets the inside-to-outside checksum deltas (the NAT computes them from the two keys).
    #[inline]
    pub fn set_checksum_deltas(&mut self, d: ChecksumDeltas) {
        self.ip_delta = d.ip;
        self.l4_delta = d.l4;
    }

    /// The side whose packet opened the session: inside for SNAT egress, outside for a port
    /// forward.
    #[inline]
    pub fn orig_side(&self) -> Side {
        if self.meta & META_ORIG_OUTSIDE != 0 {
            Side::Outside
        } else {
            Side::Inside
        }
    }

    /// The TCP direction of a packet that arrived on `side`.
    #[inline]
    pub fn dir_of(&self, side: Side) -> Dir {
        if side == self.orig_side() {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }

    /// Tracked TCP state (meaningless for other protocols).
    #[inline]
    pub fn tcp_state(&self) -> TcpState {
        TcpState::from_code(self.tcp)
    }

    #[inline]
    pub(super) fn set_tcp_state(&mut self, s: TcpState) {
        self.tcp = s.to_code();
    }

    /// The owner's 3-bit tag (0 when created): the NAT records there how the session got its
    /// public endpoint, so freeing it gives back the right thing.
    #[inline]
    pub fn tag(&self) -> u8 {
        (self.meta & META_TAG) >> META_TAG_SHIFT
    }

    /// Sets the owner's tag (only the low 3 bits are kept).
    #[inline]
    pub fn set_tag(&mut self, tag: u8) {
        self.meta = (self.meta & !META_TAG) | ((tag << META_TAG_SHIFT) & META_TAG);
    }

    /// The timeout class, which names the expiry list the session is on.
    #[inline]
    pub fn timeout_class(&self) -> TimeoutClass {
        TimeoutClass::from_bits(self.meta & META_CLASS)
    }

    #[inline]
    pub(super) fn set_class(&mut self, c: TimeoutClass) {
        self.meta = (self.meta & !META_CLASS) | c as u8;
    }

    /// Time of the last packet (the clock the caller passes to `touch`).
    #[inline]
    pub fn last_seen(&self) -> u32 {
        self.last_seen
    }

    /// The policy generation the session was last checked against.
    #[inline]
    pub fn policy_generation(&self) -> u32 {
        self.policy_gen
    }

    /// Records that the session was re-checked against policy generation `g`.
    #[inline]
    pub fn set_policy_generation(&mut self, g: u32) {
        self.policy_gen = g;
    }

    /// Counts one packet of `len` bytes. Packets wrap at 2^32, bytes at 2^48.
    #[inline(always)]
    pub fn count(&mut self, len: u32) {
        self.packets = self.packets.wrapping_add(1);
        let (lo, carry) = self.bytes_lo.overflowing_add(len);
        self.bytes_lo = lo;
        self.bytes_hi = self.bytes_hi.wrapping_add(u16::from(carry));
    }

    /// Packets counted, modulo 2^32.
    #[inline]
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Bytes counted, modulo 2^48.
    #[inline]
    pub fn bytes(&self) -> u64 {
        u64::from(self.bytes_lo) | (u64::from(self.bytes_hi) << 32)
    }

    /// Whether the record holds a session (not on the free list).
    #[inline]
    pub fn is_live(&self) -> bool {
        self.meta & META_LIVE != 0
    }
}

/// Preallocated, fixed-capacity storage of sessions with an intrusive free list: O(1) alloc and
/// free, `u32` indices, no allocation after [`Slab::new`]. Freed records are reused first (LIFO),
/// as their cache lines are the likeliest to be warm.
pub struct Slab {
    sessions: Vec<Session>,
    free_head: u32,
    live: u32,
}

impl std::fmt::Debug for Slab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (capacity, live) = (self.sessions.len(), self.live);
        write!(f, "Slab {{ capacity: {capacity}, live: {live}, .. }}")
    }
}

impl Slab {
    /// A slab of `capacity` free records, advised to transparent huge pages and touched now so
    /// the fast path never faults a page in.
    ///
    /// # Panics
    /// If `capacity` is zero or above [`Hit::MAX_INDEX`].
    pub fn new(capacity: u32) -> Self {
        assert!(
            (1..=Hit::MAX_INDEX).contains(&capacity),
            "slab capacity {capacity} must be in 1..=2^31-1"
        );
        let mut sessions: Vec<Session> = Vec::with_capacity(capacity as usize);
        advise_huge_pages(sessions.spare_capacity_mut());
        sessions.extend((1..=capacity).map(|n| Session::free(if n == capacity { NIL } else { n })));
        Self {
            sessions,
            free_head: 0,
            live: 0,
        }
    }

    /// Bytes of session memory for `capacity` records.
    pub const fn bytes_for(capacity: u32) -> usize {
        capacity as usize * size_of::<Session>()
    }

    /// Takes a record off the free list and marks it live; `None` when all are in use.
    #[inline]
    pub fn alloc(&mut self) -> Option<u32> {
        let idx = self.free_head;
        let s = self.sessions.get_mut(idx as usize)?;
        self.free_head = s.next;
        s.meta = META_LIVE;
        s.prev = NIL;
        s.next = NIL;
        self.live += 1;
        Some(idx)
    }

    /// Returns a live record to the free list; returns false (and does nothing) if `idx` is not
    /// live.
    #[inline]
    pub fn free(&mut self, idx: u32) -> bool {
        match self.sessions.get_mut(idx as usize) {
            Some(s) if s.is_live() => {
                s.meta = 0;
                s.prev = NIL;
                s.next = self.free_head;
                self.free_head = idx;
                self.live -= 1;
                true
            }
            _ => false,
        }
    }

    /// The live session at `idx`.
    #[inline(always)]
    pub fn get(&self, idx: u32) -> Option<&Session> {
        self.sessions.get(idx as usize).filter(|s| s.is_live())
    }

    /// The live session at `idx`, mutably.
    #[inline(always)]
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut Session> {
        self.sessions.get_mut(idx as usize).filter(|s| s.is_live())
    }

    /// All records, live or free, for the expiry lists' link updates.
    #[inline(always)]
    /// Every live session with its index, in slab order. O(capacity): for listings on the
    /// control path, not the fast path.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Session)> + '_ {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, s)| (i as u32, s))
    }

    pub(super) fn records_mut(&mut self) -> &mut [Session] {
        &mut self.sessions
    }

    /// Live records.
    #[inline]
    pub fn len(&self) -> u32 {
        self.live
    }

    /// Whether no record is live.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of records.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// Frees every record. O(capacity): for resets outside the fast path.
    pub fn clear(&mut self) {
        let cap = self.capacity();
        for (i, s) in self.sessions.iter_mut().enumerate() {
            let n = i as u32 + 1;
            *s = Session::free(if n == cap { NIL } else { n });
        }
        self.free_head = 0;
        self.live = 0;
    }

    /// Hints the CPU to load session `idx`.
    #[inline(always)]
    pub fn prefetch(&self, idx: u32) {
        if let Some(s) = self.sessions.get(idx as usize) {
            prefetch(s);
        }
    }

    /// Counts free records by walking the free list. For tests.
    #[cfg(test)]
    pub(crate) fn free_list_len(&self) -> u32 {
        let mut n = 0;
        let mut i = self.free_head;
        while i != NIL {
            assert!(
                !self.sessions[i as usize].is_live(),
                "live record {i} on the free list"
            );
            n += 1;
            i = self.sessions[i as usize].next;
        }
        n
    }
}

impl KeyStore for Slab {
    #[inline(always)]
    fn key_of(&self, hit: Hit) -> &FlowKey {
        self.sessions[hit.index as usize].key(hit.side)
    }

    #[inline(always)]
    fn prefetch(&self, hit: Hit) {
        Slab::prefetch(self, hit.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{ChecksumDeltas, IpProtocol};

    #[test]
    fn alloc_free_lifo_and_exhaustion() {
        let mut s = Slab::new(3);
        assert_eq!(
            (s.alloc(), s.alloc(), s.alloc(), s.alloc()),
            (Some(0), Some(1), Some(2), None)
        );
        assert_eq!(s.len(), 3);
        assert!(s.free(1));
        assert!(!s.free(1), "double free refused");
        assert!(!s.free(7), "out of range refused");
        assert!(s.get(1).is_none());
        assert_eq!(s.alloc(), Some(1));
        assert_eq!(s.free_list_len(), 0);
        s.clear();
        assert_eq!((s.len(), s.free_list_len()), (0, 3));
    }

    #[test]
    fn tag_keeps_the_other_meta_bits() {
        let mut slab = Slab::new(1);
        let i = slab.alloc().unwrap_or(0);
        let s = slab.get_mut(i).expect("live");
        s.init(
            FlowKey::from_raw(1, 2, 3, 4, IpProtocol::UDP),
            FlowKey::from_raw(2, 5, 4, 6, IpProtocol::UDP),
            Side::Outside,
            TcpState::Closed,
            TimeoutClass::Udp,
            7,
            ChecksumDeltas::default(),
            9,
        );
        assert_eq!(s.tag(), 0);
        s.set_tag(0xff);
        assert_eq!(s.tag(), 7);
        s.set_tag(2);
        assert_eq!(s.tag(), 2);
        assert_eq!(s.orig_side(), Side::Outside);
        assert_eq!(s.timeout_class(), TimeoutClass::Udp);
        assert!(s.is_live());
    }

    #[test]
    fn counters_carry_into_48_bits() {
        let mut slab = Slab::new(1);
        let i = slab.alloc().unwrap_or(0);
        let s = slab.get_mut(i).expect("live");
        for _ in 0..3 {
            s.count(u32::MAX);
        }
        s.count(10);
        assert_eq!(s.packets(), 4);
        assert_eq!(s.bytes(), 3 * u64::from(u32::MAX) + 10);
    }

    #[test]
    fn outside_deltas_are_the_inside_ones_negated() {
        let inside = FlowKey::from_raw(0x0a00_0001, 0x0808_0808, 5000, 53, IpProtocol::UDP);
        let outside = FlowKey::from_raw(0x0808_0808, 0xc633_6401, 53, 61000, IpProtocol::UDP);
        let mut slab = Slab::new(1);
        let i = slab.alloc().unwrap_or(0);
        let s = slab.get_mut(i).expect("live");
        let d = ChecksumDeltas {
            ip: 0x1234,
            l4: 0xfedc,
        };
        s.init(
            inside,
            outside,
            Side::Inside,
            TcpState::Closed,
            TimeoutClass::Udp,
            3,
            d,
            10,
        );
        assert_eq!(s.deltas_from(Side::Inside), d);
        assert_eq!(
            s.deltas_from(Side::Outside),
            ChecksumDeltas {
                ip: !0x1234,
                l4: !0xfedc
            }
        );
        assert_eq!(s.dir_of(Side::Inside), Dir::Orig);
        assert_eq!(s.dir_of(Side::Outside), Dir::Reply);
        assert_eq!(s.timeout_class(), TimeoutClass::Udp);
        assert_eq!(s.policy_generation(), 3);
    }
}

//! Timeout classes and the intrusive LRU lists the sessions of each class sit on.
//!
//! Every live session is on exactly one list, the one of its class, ordered by `last_seen`
//! (oldest at the head), because a touched session moves to the tail with the newest time. So
//! the expired sessions of a class are a prefix of its list, and finding them costs one look at
//! each head: no timer wheel, no scan.

use super::session::{Session, NIL};

/// Which idle timeout applies to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP partially open or partially closed (RFC 5382 REQ-5: at least 4 minutes).
    TcpTransitory = 0,
    /// TCP established (RFC 5382 REQ-5: at least 2 hours 4 minutes).
    TcpEstablished = 1,
    /// UDP (RFC 4787 REQ-5: at least 2 minutes, 5 recommended); also other protocols.
    Udp = 2,
    /// ICMP echo (RFC 5508 REQ-1: at least 60 seconds).
    Icmp = 3,
}

impl TimeoutClass {
    /// All classes, in list order.
    pub const ALL: [TimeoutClass; 4] = [
        TimeoutClass::TcpTransitory,
        TimeoutClass::TcpEstablished,
        TimeoutClass::Udp,
        TimeoutClass::Icmp,
    ];

    #[inline]
    pub(crate) const fn from_bits(b: u8) -> Self {
        match b & 3 {
            0 => TimeoutClass::TcpTransitory,
            1 => TimeoutClass::TcpEstablished,
            2 => TimeoutClass::Udp,
            _ => TimeoutClass::Icmp,
        }
    }
}

/// Idle timeouts per class, in seconds (the unit of the table's clock): the file's
/// `[nat.timeouts]`, where each has the floor its RFC sets and lower values are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Established TCP connections; default and floor 7440 s (2 h 4 min, RFC 5382 REQ-5).
    pub tcp_established: u32,
    /// TCP connections opening or closing (SYN sent, FIN or RST seen); default and floor
    /// 240 s (RFC 5382 REQ-5).
    pub tcp_transitory: u32,
    /// UDP and other protocols; at least 120 s (RFC 4787 REQ-5), default 300 s as it
    /// recommends.
    pub udp: u32,
    /// ICMP echo; default and floor 60 s (RFC 5508 REQ-1).
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tcp_established: 7440,
            tcp_transitory: 240,
            udp: 300,
            icmp: 60,
        }
    }
}

impl Timeouts {
    /// The timeout of `class`.
    #[inline]
    pub const fn of(&self, class: TimeoutClass) -> u32 {
        match class {
            TimeoutClass::TcpTransitory => self.tcp_transitory,
            TimeoutClass::TcpEstablished => self.tcp_established,
            TimeoutClass::Udp => self.udp,
            TimeoutClass::Icmp => self.icmp,
        }
    }
}

/// Whether a session last seen at `last_seen` with timeout `timeout` has expired at `now`
/// (`last_seen + timeout <= now`, without overflow).
#[inline(always)]
pub(crate) fn is_expired(last_seen: u32, timeout: u32, now: u32) -> bool {
    u64::from(last_seen) + u64::from(timeout) <= u64::from(now)
}

/// Head and tail of one intrusive doubly linked list threaded through the sessions' `prev` and
/// `next` fields.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lru {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) len: u32,
}

impl Lru {
    pub(crate) const EMPTY: Lru = Lru {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    /// Appends `idx` (not on any list) at the tail.
    #[inline(always)]
    pub(crate) fn push_tail(&mut self, s: &mut [Session], idx: u32) {
        let tail = self.tail;
        {
            let rec = &mut s[idx as usize];
            rec.prev = tail;
            rec.next = NIL;
        }
        if tail == NIL {
            self.head = idx;
        } else {
            s[tail as usize].next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Takes `idx` (on this list) off it.
    #[inline(always)]
    pub(crate) fn unlink(&mut self, s: &mut [Session], idx: u32) {
        let (prev, next) = {
            let rec = &s[idx as usize];
            (rec.prev, rec.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            s[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            s[next as usize].prev = prev;
        }
        let rec = &mut s[idx as usize];
        rec.prev = NIL;
        rec.next = NIL;
        self.len -= 1;
    }

    /// Moves `idx` (on this list) to the tail.
    #[inline(always)]
    pub(crate) fn move_to_tail(&mut self, s: &mut [Session], idx: u32) {
        if self.tail != idx {
            self.unlink(s, idx);
            self.push_tail(s, idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::session::Slab;

    fn walk(l: &Lru, slab: &mut Slab) -> Vec<u32> {
        let s = slab.records_mut();
        let mut v = Vec::new();
        let mut i = l.head;
        let mut prev = NIL;
        while i != NIL {
            assert_eq!(s[i as usize].prev, prev);
            v.push(i);
            prev = i;
            i = s[i as usize].next;
        }
        assert_eq!(l.tail, prev);
        assert_eq!(l.len as usize, v.len());
        v
    }

    #[test]
    fn push_unlink_move() {
        let mut slab = Slab::new(4);
        for _ in 0..4 {
            slab.alloc();
        }
        let mut l = Lru::EMPTY;
        for i in 0..4 {
            l.push_tail(slab.records_mut(), i);
        }
        assert_eq!(walk(&l, &mut slab), [0, 1, 2, 3]);
        l.move_to_tail(slab.records_mut(), 0);
        assert_eq!(walk(&l, &mut slab), [1, 2, 3, 0]);
        l.move_to_tail(slab.records_mut(), 2);
        assert_eq!(walk(&l, &mut slab), [1, 3, 0, 2]);
        l.move_to_tail(slab.records_mut(), 2);
        assert_eq!(walk(&l, &mut slab), [1, 3, 0, 2]);
        l.unlink(slab.records_mut(), 1);
        l.unlink(slab.records_mut(), 2);
        assert_eq!(walk(&l, &mut slab), [3, 0]);
        l.unlink(slab.records_mut(), 3);
        l.unlink(slab.records_mut(), 0);
        assert_eq!(walk(&l, &mut slab), Vec::<u32>::new());
        assert_eq!((l.head, l.tail), (NIL, NIL));
    }

    #[test]
    fn defaults_meet_the_rfcs() {
        let t = Timeouts::default();
        assert!(t.tcp_established >= 7440);
        assert!(t.tcp_transitory >= 240);
        assert!(t.udp >= 120);
        assert!(t.icmp >= 60);
        assert_eq!(t.of(TimeoutClass::Udp), 300);
    }

    #[test]
    fn expiry_boundary_and_overflow() {
        assert!(!is_expired(100, 60, 159));
        assert!(is_expired(100, 60, 160));
        assert!(!is_expired(u32::MAX - 10, 60, u32::MAX));
    }

    #[test]
    fn class_bits_round_trip() {
        for c in TimeoutClass::ALL {
            assert_eq!(TimeoutClass::from_bits(c as u8), c);
        }
    }
}

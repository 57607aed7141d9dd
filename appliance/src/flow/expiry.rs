//! The intrusive LRU lists the sessions of each timeout class sit on.
//!
//! Every live session is on exactly one list, the one of its class, ordered by `last_seen`
//! (oldest at the head), because a touched session moves to the tail with the newest time. So
//! the expired sessions of a class are a prefix of its list, and finding them costs one look at
//! each head: no timer wheel, no scan.

use super::session::{Session, NIL};

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
}

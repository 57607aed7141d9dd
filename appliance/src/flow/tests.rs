//! Tests of the whole table: unit tests for full tables and reuse, and property tests against
//! `hashbrown` models.

use super::timeouts::is_expired;
use super::*;
use crate::packet::IpProtocol;
use hashbrown::HashMap;
use proptest::prelude::*;

const T: Timeouts = Timeouts {
    tcp_established: 100,
    tcp_transitory: 20,
    udp: 30,
    icmp: 10,
};

fn seed() -> HashSeed {
    HashSeed::fixed(0x1234, 0x5678, 0x9abc)
}

/// Inside key of flow `i`: host 10.0.x.y talking to 8.8.8.8.
fn inside(i: u32, proto: IpProtocol) -> FlowKey {
    FlowKey::from_raw(
        0x0a00_0000 | i,
        0x0808_0808,
        1024 + (i % 60000) as u16,
        53,
        proto,
    )
}

/// Outside key of flow `i`: 8.8.8.8 answering public port `2000 + i`.
fn outside(i: u32, proto: IpProtocol) -> FlowKey {
    FlowKey::from_raw(
        0x0808_0808,
        0xc633_6401,
        53,
        2000 + (i % 60000) as u16,
        proto,
    )
}

fn new_udp(i: u32) -> NewSession {
    NewSession::new(
        inside(i, IpProtocol::UDP),
        outside(i, IpProtocol::UDP),
        Side::Inside,
    )
}

/// An echo session: 10.0.0.1 pinging 8.8.8.8, identifier 7 inside and 9 outside.
fn new_icmp() -> NewSession {
    NewSession::new(
        FlowKey::icmp_echo(0x0a00_0001.into(), 0x0808_0808.into(), 7),
        FlowKey::icmp_echo(0x0808_0808.into(), 0xc633_6401.into(), 9),
        Side::Inside,
    )
}

fn new_tcp(i: u32, tcp: TcpState) -> NewSession {
    NewSession {
        tcp,
        ..NewSession::new(
            inside(i, IpProtocol::TCP),
            outside(i, IpProtocol::TCP),
            Side::Inside,
        )
    }
}

/// A table of `capacity` records, with the test timeouts and seed.
fn table(capacity: u32) -> FlowTable {
    FlowTable::with_seed(capacity, T, seed())
}

/// A table of `capacity` records holding UDP flows `0..n`, all created at 0.
fn with_udp(capacity: u32, n: u32) -> FlowTable {
    let mut t = table(capacity);
    for i in 0..n {
        add(&mut t, &new_udp(i), 0);
    }
    t
}

/// Creates `new` at `now`, reclaiming nothing: its record.
#[track_caller]
fn add(t: &mut FlowTable, new: &NewSession, now: u32) -> u32 {
    t.create(new, now, no_cb).expect("created")
}

/// The SYN of session `i` answered by a SYN+ACK from `answerer` and acknowledged from the
/// other side, at `now`: the states tracked after each.
fn handshake(t: &mut FlowTable, i: u32, answerer: Side, now: u32) -> [Option<TcpState>; 2] {
    [
        t.track_tcp(i, TcpFlags::SYN | TcpFlags::ACK, answerer, now),
        t.track_tcp(i, TcpFlags::ACK, answerer.other(), now),
    ]
}

/// What [`handshake`] should track.
const HANDSHAKE: [Option<TcpState>; 2] = [Some(TcpState::SynReceived), Some(TcpState::Established)];

fn hit(index: u32, side: Side) -> Hit {
    Hit { index, side }
}

fn no_cb(_: u32, _: &Session) {
    panic!("no session should be reclaimed");
}

// =============================================================================================
// Unit tests
// =============================================================================================

#[test]
fn both_keys_find_the_session_with_their_side() {
    let mut t = table(16);
    let idx = add(&mut t, &new_udp(1), 5);
    assert_eq!(
        t.lookup(&inside(1, IpProtocol::UDP)),
        Some(hit(idx, Side::Inside))
    );
    assert_eq!(
        t.lookup(&outside(1, IpProtocol::UDP)),
        Some(hit(idx, Side::Outside))
    );
    assert_eq!(t.lookup(&inside(1, IpProtocol::TCP)), None);
    let s = t.get(idx).expect("live");
    assert_eq!(s.inside(), &inside(1, IpProtocol::UDP));
    assert_eq!(s.outside(), &outside(1, IpProtocol::UDP));
    assert_eq!(s.last_seen(), 5);
    assert_eq!(s.timeout_class(), TimeoutClass::Udp);
    assert_eq!(t.len(), 1);
    t.check_invariants(true);
    assert!(t.remove(idx));
    assert!(!t.remove(idx));
    assert_eq!(t.lookup(&inside(1, IpProtocol::UDP)), None);
    assert!(t.is_empty());
    t.check_invariants(true);
}

#[test]
fn burst_lookup_matches_single_lookup() {
    let t = with_udp(1000, 1000);
    let keys: Vec<FlowKey> = (0..96)
        .map(|i| {
            if i % 3 == 0 {
                outside(i * 7, IpProtocol::UDP)
            } else {
                inside(i * 13, IpProtocol::UDP)
            }
        })
        .collect();
    let mut out = [None; 96];
    t.lookup_burst(&keys, &mut out);
    for (k, o) in keys.iter().zip(out) {
        assert_eq!(o, t.lookup(k));
    }
    assert!(out.iter().filter(|o| o.is_some()).count() >= 70);
}

#[test]
fn class_follows_protocol_and_tcp_state() {
    let mut t = table(8);
    let a = add(&mut t, &new_tcp(1, TcpState::SynSent), 0);
    let b = add(&mut t, &new_tcp(2, TcpState::Established), 0);
    let c = add(&mut t, &new_icmp(), 0);
    let d = add(&mut t, &new_udp(3), 0);
    let class = |t: &FlowTable, i| t.get(i).map(Session::timeout_class);
    assert_eq!(class(&t, a), Some(TimeoutClass::TcpTransitory));
    assert_eq!(class(&t, b), Some(TimeoutClass::TcpEstablished));
    assert_eq!(class(&t, c), Some(TimeoutClass::Icmp));
    assert_eq!(class(&t, d), Some(TimeoutClass::Udp));
    assert_eq!(t.len_by_class(), [1, 1, 1, 1]);
    t.check_invariants(true);
}

#[test]
fn tcp_tracking_moves_between_lists() {
    let mut t = table(8);
    let i = add(&mut t, &new_tcp(1, TcpState::SynSent), 0);
    assert_eq!(handshake(&mut t, i, Side::Outside, 2), HANDSHAKE);
    assert_eq!(t.len_by_class(), [0, 1, 0, 0]);
    t.check_invariants(true);
    // Established outlives the transitory timeout.
    assert_eq!(t.expire(2 + T.tcp_transitory + 5, 100, no_cb), 0);
    assert_eq!(
        t.track_tcp(i, TcpFlags::RST, Side::Outside, 30),
        Some(TcpState::Closed)
    );
    assert_eq!(t.len_by_class(), [1, 0, 0, 0]);
    assert_eq!(t.get(i).map(Session::last_seen), Some(30));
    t.check_invariants(true);
    let mut freed = Vec::new();
    assert_eq!(
        t.expire(30 + T.tcp_transitory, 100, |i, _| freed.push(i)),
        1
    );
    assert_eq!(freed, [i]);
    // A UDP session is touched, not tracked.
    let u = add(&mut t, &new_udp(2), 40);
    assert_eq!(t.track_tcp(u, TcpFlags::SYN, Side::Inside, 41), None);
    assert_eq!(
        t.get(u).map(Session::timeout_class),
        Some(TimeoutClass::Udp)
    );
    assert_eq!(t.get(u).map(Session::last_seen), Some(41));
}

#[test]
fn ingress_session_directions() {
    let mut t = table(8);
    let new = NewSession {
        orig: Side::Outside,
        ..new_tcp(1, TcpState::SynSent)
    };
    let i = add(&mut t, &new, 0);
    assert_eq!(t.get(i).map(|s| s.dir_of(Side::Outside)), Some(Dir::Orig));
    // The SYN+ACK comes from the inside server.
    assert_eq!(handshake(&mut t, i, Side::Inside, 1), HANDSHAKE);
}

#[test]
fn create_burst_equals_creates_in_order() {
    let mut a = table(6);
    let mut b = table(6);
    // Eight new sessions for six records, one duplicate, two reclaims once time has passed.
    let mut new: Vec<NewSession> = (0..8).map(new_udp).collect();
    new[5] = NewSession::new(
        inside(2, IpProtocol::UDP),
        outside(50, IpProtocol::UDP),
        Side::Inside,
    );
    for t in [&mut a, &mut b] {
        add(t, &new_udp(100), 0);
        add(t, &new_udp(101), 0);
    }
    let mut out = vec![Ok(0); new.len()];
    let mut reclaimed_a = Vec::new();
    a.create_burst(&new, 40, |i, _: &Session| reclaimed_a.push(i), &mut out);
    let mut reclaimed_b = Vec::new();
    let want: Vec<_> = new
        .iter()
        .map(|n| b.create(n, 40, |i, _: &Session| reclaimed_b.push(i)))
        .collect();
    assert_eq!(out, want);
    assert_eq!(reclaimed_a, reclaimed_b);
    assert_eq!(reclaimed_a.len(), 2);
    assert!(matches!(out[5], Err(CreateError::Exists(_))));
    assert_eq!(out[7], Err(CreateError::Full));
    a.check_invariants(true);
}

#[test]
fn duplicate_keys_are_refused() {
    let mut t = table(8);
    let a = add(&mut t, &new_udp(1), 0);
    let udp = IpProtocol::UDP;
    let mut create =
        |inside, outside| t.create(&NewSession::new(inside, outside, Side::Inside), 0, no_cb);
    let same_inside = create(inside(1, udp), outside(2, udp));
    assert_eq!(same_inside, Err(CreateError::Exists(hit(a, Side::Inside))));
    let same_outside = create(inside(2, udp), outside(1, udp));
    assert_eq!(
        same_outside,
        Err(CreateError::Exists(hit(a, Side::Outside)))
    );
    // An outside key equal to another session's inside key is a duplicate too.
    let crossed = create(inside(3, udp), inside(1, udp));
    assert!(matches!(crossed, Err(CreateError::Exists(_))));
    assert_eq!(t.len(), 1);
    t.check_invariants(true);
}

#[test]
fn full_table_refuses_when_nothing_expired() {
    let mut t = with_udp(4, 4);
    assert_eq!(
        t.create(&new_udp(9), T.udp - 1, no_cb),
        Err(CreateError::Full)
    );
    assert_eq!(t.len(), 4);
    assert_eq!(t.lookup(&inside(9, IpProtocol::UDP)), None);
    t.check_invariants(true);
}

#[test]
fn full_table_reuses_oldest_expired_session() {
    let mut t = table(4);
    let ids: Vec<u32> = (0..4).map(|i| add(&mut t, &new_udp(i), i)).collect();
    // At 31 the sessions seen at 0 and 1 have expired; the one seen at 0 is the oldest.
    let mut reclaimed = Vec::new();
    let n = t
        .create(&new_udp(10), 31, |i, s: &Session| {
            reclaimed.push((i, *s.inside()))
        })
        .expect("reuses");
    assert_eq!(reclaimed, [(ids[0], inside(0, IpProtocol::UDP))]);
    assert_eq!(n, ids[0], "the freed record is reused");
    assert_eq!(t.lookup(&inside(0, IpProtocol::UDP)), None);
    assert_eq!(t.lookup(&outside(0, IpProtocol::UDP)), None);
    assert_eq!(
        t.lookup(&inside(10, IpProtocol::UDP)).map(|h| h.index),
        Some(n)
    );
    assert_eq!(t.len(), 4);
    t.check_invariants(true);
}

/// The sessions of `class`'s list queued to be loaded ahead, and the first ones of the list.
fn ahead_and_list(t: &FlowTable, class: TimeoutClass) -> (Vec<u32>, Vec<u32>) {
    let q = &t.ahead[class as usize];
    let queued: Vec<u32> = (0..q.len).map(|k| q.ring[(q.start + k) % AHEAD]).collect();
    let mut list = Vec::new();
    let mut i = t.lru[class as usize].head;
    while i != NIL && list.len() < queued.len() {
        list.push(i);
        i = t.get(i).expect("listed").next;
    }
    (queued, list)
}

#[test]
fn reclaim_keeps_the_next_heads_loading() {
    let mut t = table(64);
    for i in 0..64 {
        add(&mut t, &new_udp(i), i);
    }
    // Everything expired: each new flow reclaims the oldest session.
    let now = 1000;
    let mut next = 100;
    let mut reclaim = |t: &mut FlowTable, n: u32| {
        for _ in 0..n {
            let mut got = None;
            let oldest = t.lru[TimeoutClass::Udp as usize].head;
            t.create(&new_udp(next), now, |i, _: &Session| got = Some(i))
                .expect("reuses");
            assert_eq!(got, Some(oldest), "the oldest is reclaimed");
            next += 1;
        }
    };
    reclaim(&mut t, 6);
    let (queued, list) = ahead_and_list(&t, TimeoutClass::Udp);
    assert_eq!(queued.len(), AHEAD, "the queue grew to its length");
    assert_eq!(queued, list, "and follows the list from its head");
    // The list changes under the queue: a queued session is seen again (to the tail), one is
    // closed. Reclaiming goes on with the oldest, and the queue starts again from the head.
    t.touch(queued[1], now);
    t.remove(queued[2]);
    t.create(&new_udp(999), now, no_cb)
        .expect("takes the record freed");
    reclaim(&mut t, 1);
    let (queued, list) = ahead_and_list(&t, TimeoutClass::Udp);
    assert_eq!(queued, list, "in step again after the change");
    reclaim(&mut t, 4);
    let (queued, list) = ahead_and_list(&t, TimeoutClass::Udp);
    assert_eq!((queued.len(), &queued), (AHEAD, &list));
    t.check_invariants(false);
}

#[test]
fn reuse_picks_the_earliest_deadline_across_classes() {
    let mut t = table(3);
    // ICMP seen at 0 expires at 10, UDP seen at 0 at 30, TCP transitory seen at 5 at 25.
    let u = add(&mut t, &new_udp(1), 0);
    let c = add(&mut t, &new_icmp(), 0);
    let p = add(&mut t, &new_tcp(2, TcpState::SynSent), 5);
    let mut got = Vec::new();
    for k in 3..6 {
        t.create(&new_udp(k), 40, |i, _: &Session| got.push(i))
            .expect("reuse");
    }
    assert_eq!(got, [c, p, u]);
    t.check_invariants(true);
}

#[test]
fn established_sessions_are_never_evicted() {
    let mut t = table(2);
    add(&mut t, &new_tcp(1, TcpState::Established), 0);
    add(&mut t, &new_tcp(2, TcpState::Established), 0);
    // Well past every other timeout, but not the established one.
    assert_eq!(
        t.create(&new_udp(3), T.tcp_established - 1, no_cb),
        Err(CreateError::Full)
    );
    assert_eq!(t.len(), 2);
    let mut got = 0;
    t.create(&new_udp(3), T.tcp_established, |_, _: &Session| got += 1)
        .expect("reuse");
    assert_eq!(got, 1);
}

#[test]
fn touch_postpones_expiry() {
    let mut t = table(4);
    let a = add(&mut t, &new_udp(1), 0);
    let b = add(&mut t, &new_udp(2), 0);
    t.touch(b, 10);
    t.touch(a, 20);
    t.touch(a, 20); // same tick: nothing to move
    t.touch(b, 5); // clock went backwards: ignored
    t.check_invariants(true);
    let mut freed = Vec::new();
    assert_eq!(t.expire(40, 10, |i, _| freed.push(i)), 1);
    assert_eq!(freed, [b]);
    assert_eq!(t.expire(49, 10, |i, _| freed.push(i)), 0);
    assert_eq!(t.expire(50, 10, |i, _| freed.push(i)), 1);
    assert_eq!(freed, [b, a]);
    assert!(t.is_empty());
    t.touch(a, 60); // freed index: ignored
    t.check_invariants(true);
}

#[test]
fn touch_burst_equals_touch_in_order() {
    let mut a = table(64);
    let mut b = table(64);
    for i in 0..64 {
        a.create(&new_udp(i), i / 8, no_cb).expect("a");
        b.create(&new_udp(i), i / 8, no_cb).expect("b");
    }
    let keys: Vec<FlowKey> = (0..40)
        .map(|i| inside((i * 3) % 80, IpProtocol::UDP))
        .collect();
    let mut hits = vec![None; keys.len()];
    a.lookup_burst(&keys, &mut hits);
    assert!(hits.iter().any(Option::is_none), "some keys miss");
    a.touch_burst(&hits, 9);
    for h in hits.iter().flatten() {
        b.touch(h.index, 9);
    }
    a.check_invariants(true);
    let order = |t: &mut FlowTable| {
        let mut v = Vec::new();
        t.expire(1000, u32::MAX, |i, _| v.push(i));
        v
    };
    assert_eq!(order(&mut a), order(&mut b));
}

#[test]
fn expire_respects_budget_and_rotates_classes() {
    let mut t = table(64);
    for i in 0..20 {
        add(&mut t, &new_udp(i), 0);
        add(&mut t, &new_tcp(100 + i, TcpState::SynSent), 0);
    }
    let mut n = 0;
    assert_eq!(t.expire(1000, 5, |_, _| n += 1), 5);
    assert_eq!(n, 5);
    assert_eq!(t.len(), 35);
    // Rotation: after a few calls both classes have lost sessions.
    assert_eq!(t.expire(1000, 5, |_, _| ()), 5);
    assert_eq!(t.expire(1000, 5, |_, _| ()), 5);
    let [tr, _, udp, _] = t.len_by_class();
    assert!(tr < 20 && udp < 20, "{tr} {udp}");
    assert_eq!(t.expire(1000, 1000, |_, _| ()), 25);
    assert!(t.is_empty());
    t.check_invariants(true);
}

#[test]
fn index_overflow_is_refused_cleanly() {
    // 2 buckets = 20 index slots for a 16-session slab: the 11th session's keys cannot fit.
    let mut t = FlowTable::with_index(16, T, FlowIndex::new(2, seed()));
    for i in 0..10 {
        t.create(&new_udp(i), 0, no_cb).expect("fits");
    }
    assert_eq!(t.create(&new_udp(10), 0, no_cb), Err(CreateError::Full));
    assert_eq!(t.len(), 10);
    t.check_invariants(true);
    t.remove(3);
    t.create(&new_udp(10), 0, no_cb).expect("room again");
    t.check_invariants(true);
}

#[test]
fn counters_and_deltas_through_get_mut() {
    let mut t = table(4);
    let d = ChecksumDeltas {
        ip: 0xbeef,
        l4: 0x1234,
    };
    let i = t
        .create(
            &NewSession {
                deltas: d,
                policy_gen: 7,
                ..new_udp(1)
            },
            0,
            no_cb,
        )
        .expect("created");
    let s = t.get_mut(i).expect("live");
    s.count(100);
    s.count(1400);
    s.set_policy_generation(8);
    let s = t.get(i).expect("live");
    assert_eq!(
        (s.packets(), s.bytes(), s.policy_generation()),
        (2, 1500, 8)
    );
    assert_eq!(s.key(Side::Outside), &outside(1, IpProtocol::UDP));
    assert_eq!(s.deltas_from(Side::Inside), d);
    assert_eq!(s.deltas_from(Side::Outside), d.reversed());
}

#[test]
fn memory_per_session_within_budget() {
    for cap in [1_000u32, 1 << 20, 1_000_000, 10_000_000, 1_100_000] {
        let b = FlowTable::bytes_per_session_for(cap);
        assert!(b <= 128.0, "{cap} sessions: {b} bytes each");
    }
    // The worst case: just past a bucket-count doubling.
    let cap = 5 * (1 << 18) + 1;
    assert_eq!(FlowIndex::buckets_for(2 * cap as usize), 1 << 20);
    let worst = FlowTable::bytes_per_session_for(cap);
    assert!(worst <= 128.0, "{worst}");
    let t = table(1000);
    assert_eq!(t.memory_bytes(), 1000 * 64 + 512 * 64);
    assert!((FlowTable::bytes_per_session_for(1000) - 96.768).abs() < 1e-9);
}

#[test]
fn clear_resets_everything() {
    let mut t = with_udp(8, 8);
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.lookup(&inside(1, IpProtocol::UDP)), None);
    t.check_invariants(true);
    for i in 0..8 {
        t.create(&new_udp(i), 0, no_cb).expect("created again");
    }
}

// =============================================================================================
// Property tests
// =============================================================================================

/// Index-only ops against a `hashbrown` model.
#[derive(Clone, Debug)]
enum IndexOp {
    Insert(u8),
    Remove(u8),
    Lookup(u8),
}

fn index_op() -> impl Strategy<Value = IndexOp> {
    prop_oneof![
        5 => any::<u8>().prop_map(IndexOp::Insert),
        2 => any::<u8>().prop_map(IndexOp::Remove),
        3 => any::<u8>().prop_map(IndexOp::Lookup),
    ]
}

/// Keys of entry `i` in a plain store.
#[derive(Default)]
struct Store(Vec<FlowKey>);

impl KeyStore for Store {
    fn key_of(&self, hit: Hit) -> &FlowKey {
        &self.0[hit.index as usize]
    }
    fn prefetch(&self, _: Hit) {}
}

fn pool_key(k: u8) -> FlowKey {
    FlowKey::from_raw(
        0x0a00_0000 | u32::from(k),
        0x0808_0808,
        1000 + u16::from(k),
        80,
        IpProtocol::TCP,
    )
}

/// Whole-table ops against a model.
#[derive(Clone, Debug)]
enum Op {
    /// Create a session between inside key `a` and outside key `b` of protocol class `proto`
    /// (0 UDP, 1 TCP opened by SYN, 2 TCP picked up mid-stream, 3 ICMP).
    Create {
        a: u8,
        b: u8,
        proto: u8,
    },
    Remove(u8),
    Touch(u8),
    Tcp {
        idx: u8,
        flags: u8,
        from_inside: bool,
    },
    Advance(u8),
    Expire(u8),
    Lookup(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>(), 0u8..4).prop_map(|(a, b, proto)| Op::Create { a, b, proto }),
        1 => any::<u8>().prop_map(Op::Remove),
        3 => any::<u8>().prop_map(Op::Touch),
        3 => (any::<u8>(), prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x11, 0x04, 0x14, 0x18]),
              any::<bool>())
            .prop_map(|(idx, flags, from_inside)| Op::Tcp { idx, flags, from_inside }),
        2 => (0u8..40).prop_map(Op::Advance),
        2 => (0u8..12).prop_map(Op::Expire),
        2 => any::<u8>().prop_map(Op::Lookup),
    ]
}

fn proto_of(p: u8) -> IpProtocol {
    match p {
        0 => IpProtocol::UDP,
        3 => IpProtocol::ICMP,
        _ => IpProtocol::TCP,
    }
}

/// Key `k` of a small pool shared by both sides, so keys collide across sessions and sides.
fn side_key(k: u8, proto: IpProtocol) -> FlowKey {
    let k = u32::from(k % 48);
    FlowKey::from_raw(
        0x0a00_0000 | (k & 7),
        0x0808_0800 | (k >> 3),
        4000 + k as u16,
        443,
        proto,
    )
}

#[derive(Clone, Copy, Debug)]
struct ModelSession {
    keys: [FlowKey; 2],
    last_seen: u32,
    class: TimeoutClass,
    tcp: TcpState,
    orig: Side,
}

impl ModelSession {
    fn deadline(&self) -> u64 {
        u64::from(self.last_seen) + u64::from(T.of(self.class))
    }
}

struct Model {
    sessions: HashMap<u32, ModelSession>,
    keys: HashMap<FlowKey, Hit>,
}

impl Model {
    fn drop_session(&mut self, idx: u32) -> ModelSession {
        let m = self.sessions.remove(&idx).expect("model has the session");
        for k in m.keys {
            self.keys.remove(&k);
        }
        m
    }

    fn expired_min_deadline(&self, now: u32) -> Option<u64> {
        self.sessions
            .values()
            .filter(|m| m.deadline() <= u64::from(now))
            .map(ModelSession::deadline)
            .min()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The index behaves like a map under any sequence of inserts, removes and lookups, up to
    /// and including a full table, with full or two-bit signatures.
    #[test]
    fn index_matches_hashbrown(
        log2_buckets in 1u32..5,
        narrow_sigs in any::<bool>(),
        ops in proptest::collection::vec(index_op(), 1..400),
        seed_words in any::<(u64, u64, u64)>(),
    ) {
        let seed = HashSeed::fixed(seed_words.0, seed_words.1, seed_words.2);
        let sig_mask = if narrow_sigs { 0x3 } else { u16::MAX };
        let mut t = FlowIndex::with_signature_mask(1 << log2_buckets, seed, sig_mask);
        let mut store = Store::default();
        let mut model: HashMap<FlowKey, Hit> = HashMap::new();
        for op in ops {
            match op {
                IndexOp::Insert(k) => {
                    let key = pool_key(k);
                    store.0.push(key);
                    let hit = Hit { index: (store.0.len() - 1) as u32, side: Side::Inside };
                    match (t.insert(&key, hit, &store), model.get(&key)) {
                        (Err(InsertError::Exists(h)), Some(&m)) => prop_assert_eq!(h, m),
                        (Ok(()), None) => { model.insert(key, hit); }
                        (Err(InsertError::Full), None) => {
                            prop_assert!(t.len() >= t.slots() / 2,
                                "full at {} of {}", t.len(), t.slots());
                        }
                        (r, m) => prop_assert!(false, "insert {:?} with model {:?}", r, m),
                    }
                }
                IndexOp::Remove(k) => {
                    let key = pool_key(k);
                    match model.remove(&key) {
                        Some(hit) => {
                            // An entry that was never inserted does not remove it.
                            let wrong = Hit { index: Hit::MAX_INDEX, side: hit.side };
                            prop_assert!(!t.remove(&key, wrong));
                            let other_side = Hit { side: Side::Outside, ..hit };
                            prop_assert!(!t.remove(&key, other_side));
                            prop_assert!(t.remove(&key, hit));
                        }
                        None => {
                            let never = Hit { index: Hit::MAX_INDEX, side: Side::Inside };
                            prop_assert!(!t.remove(&key, never));
                        }
                    }
                }
                IndexOp::Lookup(k) => {
                    let key = pool_key(k);
                    prop_assert_eq!(t.lookup(&key, &store), model.get(&key).copied());
                }
            }
            prop_assert_eq!(t.len(), model.len());
            t.check_invariants(&store);
        }
        let keys: Vec<FlowKey> = (0..=255).map(pool_key).collect();
        let mut out = vec![None; keys.len()];
        t.lookup_burst(&keys, &store, &mut out);
        for (k, o) in keys.iter().zip(out) {
            prop_assert_eq!(o, model.get(k).copied());
        }
    }

    /// The table against a model: lookups agree, no two live sessions share a key, expiry and
    /// reuse free only expired sessions (the oldest first), and once everything has expired
    /// the slab is empty and every record free.
    #[test]
    fn table_matches_model(
        capacity in 1u32..24,
        tiny_index in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut t = if tiny_index {
            // 2 buckets, two-bit signatures: index overflow and signature collisions.
            FlowTable::with_index(capacity, T, FlowIndex::with_signature_mask(2, seed(), 3))
        } else {
            table(capacity)
        };
        let mut m = Model { sessions: HashMap::new(), keys: HashMap::new() };
        let mut now = 0u32;
        for op in ops {
            match op {
                Op::Create { a, b, proto } => {
                    let p = proto_of(proto);
                    let tcp = if proto == 2 { TcpState::Established } else { TcpState::SynSent };
                    let new = NewSession {
                        tcp,
                        ..NewSession::new(side_key(a, p), side_key(b.wrapping_add(100), p), Side::Inside)
                    };
                    let full = m.sessions.len() as u32 == capacity;
                    let min_deadline = m.expired_min_deadline(now);
                    let mut reclaimed = None;
                    let r = t.create(&new, now, |i, s: &Session| {
                        assert!(reclaimed.is_none(), "one reclaim per create");
                        reclaimed = Some((i, *s.inside()));
                    });
                    if let Some((i, key)) = reclaimed {
                        prop_assert!(full, "reclaimed with free records");
                        let ms = m.drop_session(i);
                        prop_assert_eq!(ms.keys[0], key);
                        prop_assert_eq!(Some(ms.deadline()), min_deadline, "not the oldest");
                    } else if full {
                        prop_assert!(min_deadline.is_none(), "expired session not reused");
                    }
                    let exists = m.keys.get(&new.inside).copied()
                        .or_else(|| m.keys.get(&new.outside).copied())
                        .or((new.inside == new.outside).then_some(Hit { index: 0, side: Side::Inside }));
                    match r {
                        Ok(idx) => {
                            prop_assert!(exists.is_none(), "created over an existing key");
                            prop_assert!(!m.sessions.contains_key(&idx), "live index reused");
                            let class = new.class();
                            m.sessions.insert(idx, ModelSession {
                                keys: [new.inside, new.outside], last_seen: now, class,
                                tcp: if p == IpProtocol::TCP { tcp } else { TcpState::Closed },
                                orig: Side::Inside,
                            });
                            m.keys.insert(new.inside, Hit { index: idx, side: Side::Inside });
                            m.keys.insert(new.outside, Hit { index: idx, side: Side::Outside });
                        }
                        Err(CreateError::Exists(h)) => {
                            prop_assert!(exists.is_some(), "phantom duplicate {:?}", h);
                            if new.inside != new.outside {
                                let mk = m.keys.get(&new.inside).or_else(|| m.keys.get(&new.outside));
                                prop_assert_eq!(Some(&h), mk);
                            }
                        }
                        Err(CreateError::Full) => {
                            // An index with no room for the inside key says so before
                            // looking at the outside key.
                            prop_assert!(exists.is_none() || full || tiny_index,
                                "full hides a duplicate");
                            prop_assert!(
                                full || tiny_index,
                                "full with {} of {} records used", m.sessions.len(), capacity
                            );
                        }
                    }
                }
                Op::Remove(i) => {
                    let idx = u32::from(i) % capacity;
                    let live = m.sessions.contains_key(&idx);
                    prop_assert_eq!(t.remove(idx), live);
                    if live {
                        m.drop_session(idx);
                    }
                }
                Op::Touch(i) => {
                    let idx = u32::from(i) % capacity;
                    t.touch(idx, now);
                    if let Some(ms) = m.sessions.get_mut(&idx) {
                        ms.last_seen = ms.last_seen.max(now);
                    }
                }
                Op::Tcp { idx, flags, from_inside } => {
                    let idx = u32::from(idx) % capacity;
                    let from = if from_inside { Side::Inside } else { Side::Outside };
                    let flags = TcpFlags(u16::from(flags));
                    let got = t.track_tcp(idx, flags, from, now);
                    match m.sessions.get_mut(&idx) {
                        Some(ms) if ms.keys[0].protocol() == IpProtocol::TCP => {
                            let dir = if from == ms.orig { Dir::Orig } else { Dir::Reply };
                            let (s, c) = ms.tcp.step(flags, dir);
                            prop_assert_eq!(got, Some(s));
                            ms.tcp = s;
                            ms.class = c;
                            ms.last_seen = ms.last_seen.max(now);
                        }
                        Some(ms) => {
                            prop_assert_eq!(got, None);
                            ms.last_seen = ms.last_seen.max(now);
                        }
                        None => prop_assert_eq!(got, None),
                    }
                }
                Op::Advance(d) => now += u32::from(d),
                Op::Expire(budget) => {
                    let budget = u32::from(budget);
                    let mut freed = Vec::new();
                    let n = t.expire(now, budget, |i, s: &Session| {
                        freed.push((i, s.last_seen(), s.timeout_class()));
                    });
                    prop_assert_eq!(n as usize, freed.len());
                    prop_assert!(n <= budget);
                    for (i, last_seen, class) in freed {
                        let ms = m.drop_session(i);
                        prop_assert_eq!((ms.last_seen, ms.class), (last_seen, class));
                        prop_assert!(is_expired(last_seen, T.of(class), now),
                            "freed session {} seen at {} class {:?} at {}", i, last_seen, class, now);
                    }
                    if n < budget {
                        prop_assert!(m.expired_min_deadline(now).is_none(),
                            "expired sessions left behind with budget to spare");
                    }
                }
                Op::Lookup(k) => {
                    for p in [IpProtocol::UDP, IpProtocol::TCP, IpProtocol::ICMP] {
                        for key in [side_key(k, p), side_key(k.wrapping_add(100), p)] {
                            prop_assert_eq!(t.lookup(&key), m.keys.get(&key).copied());
                        }
                    }
                }
            }
            prop_assert_eq!(t.len() as usize, m.sessions.len());
        }
        t.check_invariants(true);
        // No two live sessions share a key: the model maps each key to one session, and holds
        // exactly two keys per session.
        prop_assert_eq!(m.keys.len(), 2 * m.sessions.len());
        for (idx, ms) in &m.sessions {
            let s = t.get(*idx).expect("model session live");
            prop_assert_eq!(s.inside(), &ms.keys[0]);
            prop_assert_eq!(s.outside(), &ms.keys[1]);
            prop_assert_eq!(s.tcp_state(), ms.tcp);
        }
        // Everything expires eventually.
        let end = now + T.tcp_established;
        prop_assert_eq!(t.expire(end - 1, u32::MAX, |_, _| ()) as usize,
            m.sessions.values().filter(|s| s.deadline() <= u64::from(end - 1)).count());
        t.expire(end, u32::MAX, |_, _| ());
        prop_assert!(t.is_empty());
        prop_assert_eq!(t.len_by_class(), [0; 4]);
        prop_assert!(t.index().is_empty());
        prop_assert_eq!(t.slab.free_list_len(), capacity);
        for idx in 0..capacity {
            prop_assert!(t.get(idx).is_none());
        }
        t.check_invariants(true);
    }
}

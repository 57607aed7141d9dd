//! Session table benchmarks (DESIGN.md "Performance", DPDK-NOTES.md "Session lookup cost").
//!
//! - `flow_lookup/<size>`: a burst of 32 random existing sessions (either side's key, rebuilt
//!   from raw header values the way a parser would), looked up and touched, at 1 K, 1 M and
//!   10 M sessions. Variants: the staged burst lookup alone; plus counting the packet in the
//!   session and touching it within the current clock tick (`_count_touch`, the work the
//!   reference figures in DPDK-NOTES.md measure); the same with the clock advancing every burst
//!   so every touch moves its session in the LRU list (`_relink`, the worst case); and the
//!   `hashbrown` baseline doing the `_count_touch` work one key at a time. Criterion reports
//!   time per key and throughput in keys (packets) per second: each iteration is one key,
//!   measured over whole bursts.
//! - `flow_create/<size>`: session creation including both index entries and the LRU link,
//!   filling the table from empty to full over and over (so at every load factor): one at a
//!   time (`create`), and in bursts of 32 that prefetch their buckets first (`create_burst`).
//! - Bytes per session (slab + index) are printed before each group.
//!
//! `FLOW_BENCH_SIZES=1K,1M` runs some sizes only. `FLOW_BENCH_CLOCK=cpu` measures the thread's
//! on-CPU time instead of wall time (groups then end in `_cpu`): on a machine shared with other
//! jobs it leaves out the time the bench sat descheduled, though not the caches the other jobs
//! evicted.

mod common;

use common::{cpu_clock, stamp};
use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use appliance::flow::{FlowKey, FlowTable, Hit, NewSession, Session, Side, TcpState, Timeouts};
use appliance::packet::IpProtocol;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hashbrown::HashMap;

const BURST: usize = 32;

/// `cpu` measures on-CPU time (see [`common`]).
const CLOCK_VAR: &str = "FLOW_BENCH_CLOCK";

/// Criterion group name, marked when measuring on-CPU time.
fn group(name: &str, label: &str) -> String {
    if cpu_clock() {
        format!("{name}_cpu/{label}")
    } else {
        format!("{name}/{label}")
    }
}

/// Sizes to run: all by default; `FLOW_BENCH_SIZES=1K,1M` picks some (building the large tables
/// takes seconds).
fn sizes(all: &[(u32, &'static str)]) -> Vec<(u32, &'static str)> {
    let pick = std::env::var("FLOW_BENCH_SIZES").unwrap_or_default();
    all.iter()
        .copied()
        .filter(|(_, l)| pick.is_empty() || pick.split(',').any(|p| p == *l))
        .collect()
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Session `i` (unique for `i < 2^24`): a host 10.0.x.y:port talking to a pseudo-random remote,
/// translated to 198.51.100.z:port; even sessions TCP established, odd ones UDP.
fn session(i: u32) -> NewSession {
    let r = splitmix(u64::from(i));
    let remote = r as u32;
    let rport = (r >> 32) as u16;
    let proto = if i & 1 == 0 {
        IpProtocol::TCP
    } else {
        IpProtocol::UDP
    };
    let inside = FlowKey::from_raw(
        0x0a00_0000 | (i & 0xffff),
        remote,
        1024 + (i >> 16) as u16,
        rport,
        proto,
    );
    let outside = FlowKey::from_raw(
        remote,
        0xc633_6400 | (i & 0xff),
        rport,
        1024 + (i >> 8) as u16,
        proto,
    );
    NewSession {
        tcp: TcpState::Established,
        ..NewSession::new(inside, outside, Side::Inside)
    }
}

/// Header fields of one packet as a parser reads them (addresses as host-order integers).
#[derive(Clone, Copy)]
struct Fields {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    proto: IpProtocol,
}

impl Fields {
    fn of(k: &FlowKey) -> Self {
        Self {
            src: k.src_addr_raw(),
            dst: k.dst_addr_raw(),
            sport: k.src_port(),
            dport: k.dst_port(),
            proto: k.protocol(),
        }
    }

    #[inline(always)]
    fn key(&self) -> FlowKey {
        FlowKey::from_raw(self.src, self.dst, self.sport, self.dport, self.proto)
    }
}

/// Packets of random existing sessions, random side, read in order by the benchmark.
fn packets(n: u32) -> Vec<Fields> {
    let len = (n as usize * 4).clamp(64 * BURST, 1 << 20);
    (0..len as u64)
        .map(|j| {
            let r = splitmix(j ^ 0x5555_0000_0000);
            let s = session((r % u64::from(n)) as u32);
            Fields::of(if r >> 63 == 0 { &s.inside } else { &s.outside })
        })
        .collect()
}

fn build(n: u32) -> FlowTable {
    let mut t = FlowTable::new(n, Timeouts::default());
    for i in 0..n {
        t.create(&session(i), 0, |_, _: &Session| {})
            .expect("sessions fit");
    }
    t
}

/// Runs whole bursts covering `iters` keys; returns the time scaled to exactly `iters` keys.
fn per_key(iters: u64, mut burst: impl FnMut()) -> Duration {
    let bursts = iters.div_ceil(BURST as u64);
    let start = stamp();
    for _ in 0..bursts {
        burst();
    }
    (stamp() - start).mul_f64(iters as f64 / (bursts * BURST as u64) as f64)
}

/// Next burst start in a cyclic walk over `len` packets.
fn advance(pos: &mut usize, len: usize) -> usize {
    let base = *pos;
    *pos = if base + 2 * BURST > len {
        0
    } else {
        base + BURST
    };
    base
}

/// Looks up the next burst of `pkts` (see [`advance`]) in one staged burst, its keys rebuilt
/// from the header fields as a parser would.
#[inline(always)]
fn next_burst(table: &FlowTable, pkts: &[Fields], pos: &mut usize) -> [Option<Hit>; BURST] {
    let base = advance(pos, pkts.len());
    let mut keys = [FlowKey::default(); BURST];
    for (k, p) in keys.iter_mut().zip(&pkts[base..base + BURST]) {
        *k = p.key();
    }
    let mut out = [None; BURST];
    table.lookup_burst(&keys, &mut out);
    out
}

fn lookup(c: &mut Criterion) {
    for (n, label) in sizes(&[(1_000, "1K"), (1_000_000, "1M"), (10_000_000, "10M")]) {
        let mut table = build(n);
        let pkts = packets(n);
        println!(
            "flow_table/{label}: {:.1} bytes per session (slab {} MiB + index {} MiB, {} buckets, \
             index load {:.1} %, {:.2} % of buckets spilled)",
            table.memory_bytes() as f64 / f64::from(n),
            (n as usize * std::mem::size_of::<Session>()) >> 20,
            table.index().memory_bytes() >> 20,
            table.index().bucket_count(),
            100.0 * table.index().len() as f64 / table.index().slots() as f64,
            100.0 * table.index().spilled_fraction(),
        );
        // Every packet hits.
        let keys: Vec<FlowKey> = pkts[..BURST].iter().map(Fields::key).collect();
        let mut out = [None; BURST];
        table.lookup_burst(&keys, &mut out);
        assert!(out.iter().all(Option::is_some));

        let mut g = c.benchmark_group(group("flow_lookup", label));
        g.throughput(Throughput::Elements(1))
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));

        let mut pos = 0;
        g.bench_function("staged_lookup", |b| {
            b.iter_custom(|iters| {
                per_key(iters, || {
                    let out = next_burst(&table, &pkts, &mut pos);
                    black_box(&out);
                })
            })
        });

        // What the reference figures measure: find the session, write to it (count the packet)
        // and touch it within the current clock tick (no LRU move).
        let now = 1u32;
        g.bench_function("staged_lookup_count_touch", |b| {
            b.iter_custom(|iters| {
                per_key(iters, || {
                    let out = next_burst(&table, &pkts, &mut pos);
                    for h in out.iter().flatten() {
                        if let Some(s) = table.get_mut(h.index) {
                            s.count(64);
                        }
                        table.touch(h.index, now);
                    }
                    black_box(&out);
                })
            })
        });

        // Worst case for expiry upkeep: the clock ticks every burst, so every touch moves its
        // session to the tail of its LRU list (rewriting two random neighbours).
        let mut tick = now;
        g.bench_function("staged_lookup_count_touch_relink", |b| {
            b.iter_custom(|iters| {
                per_key(iters, || {
                    let out = next_burst(&table, &pkts, &mut pos);
                    tick += 1;
                    for h in out.iter().flatten() {
                        if let Some(s) = table.get_mut(h.index) {
                            s.count(64);
                        }
                    }
                    table.touch_burst(&out, tick);
                    black_box(&out);
                })
            })
        });
        // Back to a clock no session is ahead of, for the baseline below.
        let now = tick;

        let mut map: HashMap<FlowKey, u32> = HashMap::with_capacity(2 * n as usize);
        for i in 0..n {
            let s = session(i);
            let idx = table.lookup(&s.inside).map_or(u32::MAX, |h| h.index);
            map.insert(s.inside, idx);
            map.insert(s.outside, idx);
        }
        println!(
            "flow_table/{label}: hashbrown baseline {:.1} bytes per session (slab + map)",
            (n as usize * std::mem::size_of::<Session>() + map.allocation_size()) as f64
                / f64::from(n),
        );
        // The same work as staged_lookup_count_touch, one key at a time through hashbrown.
        g.bench_function("hashbrown_get_count_touch", |b| {
            b.iter_custom(|iters| {
                per_key(iters, || {
                    let base = advance(&mut pos, pkts.len());
                    for p in &pkts[base..base + BURST] {
                        if let Some(&i) = map.get(&p.key()) {
                            if let Some(s) = table.get_mut(i) {
                                s.count(64);
                            }
                            table.touch(i, now);
                        }
                    }
                })
            })
        });
        g.finish();
    }
}

/// Creates `iters` sessions in all, from session `next` on, and times only the creating: in
/// batches that each fill the table up to its capacity, emptied (untimed) whenever it is full.
/// `create` creates the sessions of one batch.
fn fill_timed(
    iters: u64,
    table: &mut FlowTable,
    next: &mut u32,
    mut create: impl FnMut(&mut FlowTable, Range<u32>),
) -> Duration {
    let n = table.capacity();
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if *next == n {
            table.clear();
            *next = 0;
        }
        let batch = left.min(u64::from(n - *next)) as u32;
        let start = stamp();
        create(table, *next..*next + batch);
        total += stamp() - start;
        *next += batch;
        left -= u64::from(batch);
    }
    total
}

fn create(c: &mut Criterion) {
    for (n, label) in sizes(&[(1_000_000, "1M"), (10_000_000, "10M")]) {
        let mut table = FlowTable::new(n, Timeouts::default());
        println!(
            "flow_table/{label}: {:.1} bytes per session allocated for {n} sessions",
            FlowTable::bytes_per_session_for(n)
        );
        let mut g = c.benchmark_group(group("flow_create", label));
        g.throughput(Throughput::Elements(1))
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        let mut next = 0u32;
        g.bench_function("create", |b| {
            b.iter_custom(|iters| {
                fill_timed(iters, &mut table, &mut next, |table, batch| {
                    for i in batch {
                        let r = table.create(&session(i), 0, |_, _: &Session| {});
                        black_box(r.is_ok());
                    }
                })
            })
        });
        g.bench_function("create_burst", |b| {
            b.iter_custom(|iters| {
                fill_timed(iters, &mut table, &mut next, |table, batch| {
                    let mut i = batch.start;
                    while i < batch.end {
                        let end = (i + BURST as u32).min(batch.end);
                        let len = (end - i) as usize;
                        let mut new = [session(0); BURST];
                        for (j, s) in (i..end).zip(new.iter_mut()) {
                            *s = session(j);
                        }
                        let mut out = [Ok(0); BURST];
                        table.create_burst(&new[..len], 0, |_, _: &Session| {}, &mut out);
                        black_box(&out);
                        i = end;
                    }
                })
            })
        });
        g.finish();
        assert!(!table.is_empty());
    }
}

/// The state of the machine during the run, to read the other figures against: the latency of
/// a dependent random read over 64 MiB (THP-advised, like the tables) and the time of a step of
/// a two-cycle dependency chain (half of it is the effective cycle time).
fn machine(c: &mut Criterion) {
    let mut g = c.benchmark_group(group("flow_machine", "calibration"));
    g.throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let lines = (64usize << 20) / 64;
    let mut chase: Vec<[u32; 16]> = Vec::with_capacity(lines);
    appliance::sys::advise_huge_pages(chase.spare_capacity_mut());
    chase.resize(lines, [0; 16]);
    // Sattolo's shuffle: one cycle through every line.
    let mut perm: Vec<u32> = (0..lines as u32).collect();
    for i in (1..lines).rev() {
        let j = (splitmix(i as u64) % i as u64) as usize;
        perm.swap(i, j);
    }
    for (i, &p) in perm.iter().enumerate() {
        chase[i][0] = p;
    }
    let mut at = 0u32;
    g.bench_function("dependent_read_64MiB", |b| {
        b.iter_custom(|iters| {
            let start = stamp();
            for _ in 0..iters {
                at = chase[at as usize][0];
            }
            let t = stamp() - start;
            black_box(at);
            t
        })
    });
    // Two cycles per step: the add and the shift both wait for x, the xor for both.
    g.bench_function("two_cycle_step", |b| {
        b.iter_custom(|iters| {
            let mut x = black_box(1u64);
            let start = stamp();
            for i in 0..iters {
                x = x.wrapping_add(i) ^ (x >> 1);
            }
            let t = stamp() - start;
            black_box(x);
            t
        })
    });
    g.finish();
}

criterion_group!(benches, machine, lookup, create);
criterion_main!(benches);

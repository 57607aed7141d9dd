//! The whole per-worker pipeline on one core, without DPDK: bursts of 32 64-byte UDP frames of
//! established sessions (parse, staged lookup, touch, rewrite, TTL, route, L2) at 1 K, 1 M and
//! 10 M sessions; new-session setup (slow path: policy, SNAT, two index entries); and the
//! memory each session costs.
//!
//! Frames are built in criterion's untimed setup (a NIC would have written them), 32 per
//! iteration, for flows drawn at random over all sessions, so the table is walked like real
//! traffic walks it. Targets on this machine: >= 20 Mpps at 1 M sessions, setup >= 5 M/s,
//! <= 128 bytes per session.
//!
//! `PIPELINE_SIZES=1000,1000000` picks the table sizes (default 1 K, 1 M, 10 M).

use appliance::flow::FlowTable;
use appliance::pipeline::{Disposition, VecBuf};
use appliance_benches::workload::{buffers, Workload, BURST};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

/// Times `iters` bursts of `w`: `fill` writes each burst's frames untimed (as a NIC would
/// have), then only the pipeline's processing of the burst is timed.
fn timed_bursts(
    iters: u64,
    w: &mut Workload,
    bufs: &mut [VecBuf],
    mut fill: impl FnMut(&mut Workload, &mut [VecBuf]),
) -> Duration {
    let mut actions = [Disposition::Consumed; BURST];
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill(w, bufs);
        let t = Instant::now();
        w.run(bufs, &mut actions);
        total += t.elapsed();
    }
    std::hint::black_box(&actions);
    total
}

fn sizes() -> Vec<u32> {
    std::env::var("PIPELINE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 1_000_000, 10_000_000])
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_established");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    for sessions in sizes() {
        let mut w = Workload::new(sessions);
        let start = Instant::now();
        w.fill(sessions);
        let took = start.elapsed();
        println!(
            "{sessions} sessions: created through the slow path in {:.2} s ({:.2} M/s one burst at a time); table {:.1} bytes/session",
            took.as_secs_f64(),
            f64::from(sessions) / took.as_secs_f64() / 1e6,
            FlowTable::bytes_per_session_for(sessions.max(64)),
        );
        let mut bufs = buffers();
        g.bench_function(format!("udp64/{sessions}"), |bench| {
            bench.iter_custom(|iters| {
                timed_bursts(iters, &mut w, &mut bufs, |w, bufs| {
                    w.established(bufs, sessions)
                })
            })
        });
        w.check_forwarded();
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_setup");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    // A table that new flows keep filling; when it is full, time jumps past the UDP timeout so
    // the oldest expired sessions are reused (steady state). At 4 M sessions every line a new
    // flow touches (its buckets, the reclaimed session and that one's buckets) is in DRAM; at
    // 20 K they stay in the caches, which shows what the memory costs.
    for capacity in [20_000u32, 4_000_000] {
        let mut b = Workload::new(capacity);
        let mut bufs = buffers();
        g.bench_with_input(
            BenchmarkId::new("new_udp_flows", capacity),
            &capacity,
            |bench, &capacity| {
                bench.iter_custom(|iters| {
                    timed_bursts(iters, &mut b, &mut bufs, |b, bufs| {
                        b.new_flows(bufs, capacity)
                    })
                })
            },
        );
        println!(
            "setup: {} sessions live, {} endpoint-independent mappings, table {:.1} bytes/session",
            b.shard.table().len(),
            b.shard.snat().mappings(),
            FlowTable::bytes_per_session_for(capacity),
        );
    }
    g.finish();
}

criterion_group!(benches, established, setup);
criterion_main!(benches);

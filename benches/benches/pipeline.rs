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

use appliance::config::Config;
use appliance::flow::FlowTable;
use appliance::packet::build::{self, Link};
use appliance::packet::{EthernetAddress, Vlans};
use appliance::pipeline::{
    Action, Env, Neighbours, PacketBuf, Shard, ShardConfig, ShardCounters, VecBuf,
};
use appliance::policy::Policy;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const MAC_LAN: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa0]);
const MAC_WAN: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa1]);
const MAC_GW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_HOST: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x10]);
/// Remote servers per inside endpoint: sessions = endpoints x REMOTES.
const REMOTES: u32 = 1000;

fn policy(max_sessions: u32) -> Policy {
    let text = format!(
        r#"
[eal]
lcores = "0-1"
huge_pages = false
[nat]
max_sessions = {max_sessions}
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "10.0.0.1/16"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "192.0.2.2/24"
gateway = "192.0.2.1"
neighbours = [{{ ip = "192.0.2.1", mac = "02:00:00:00:00:01" }}]
"#
    );
    Policy::compile(&Config::parse(&text, "bench").expect("config"), 1).expect("policy")
}

/// Inside endpoint `e` (address and source port) and remote `r`.
fn flow(e: u32, r: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let inside = Ipv4Addr::from(0x0a00_0000 + 2 + e / 8);
    let port = 20000 + (e % 8) as u16;
    let remote = Ipv4Addr::from(0xc633_6400 + 1 + r); // 198.51.100.1 upwards: public space
    ((inside, port), (remote, 443))
}

/// Writes a 64-byte Ethernet/IPv4/UDP frame from `src` to `dst`, checksums valid, into
/// `out` (no allocation: the buffers are reused like mbufs).
fn frame(out: &mut VecBuf, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) {
    let link = Link {
        src: MAC_HOST,
        dst: MAC_LAN,
        vlans: Vlans::None,
    };
    out.set_len(64);
    build::udp_datagram(out.bytes_mut(), &link, src, dst, &[0x5a; 18]).unwrap();
}

/// Times `iters` bursts: each burst's frames are written untimed (as a NIC would have), then
/// only the pipeline's processing of the burst is timed.
fn timed_bursts(
    iters: u64,
    bufs: &mut [VecBuf],
    mut fill: impl FnMut(&mut [VecBuf]),
    mut run: impl FnMut(&mut [VecBuf], &mut [Action]),
) -> Duration {
    let mut actions = [Action::Consumed; BURST];
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill(bufs);
        let t = Instant::now();
        run(bufs, &mut actions);
        total += t.elapsed();
    }
    std::hint::black_box(&actions);
    total
}

struct Bench {
    shard: Shard,
    policy: Policy,
    neighbours: Neighbours,
    now: u32,
    rng: u64,
}

impl Bench {
    fn new(sessions: u32) -> Bench {
        let policy = policy(sessions.max(64));
        let cfg = ShardConfig::from_policy(&policy, 0, 1, 7).unwrap();
        let shard = Shard::new(cfg, Arc::new(ShardCounters::new(1)));
        let neighbours = Neighbours::with(1, [((1, Ipv4Addr::new(192, 0, 2, 1)), MAC_GW)]);
        Bench {
            shard,
            policy,
            neighbours,
            now: 1,
            rng: 0x1234_5678_9abc_def1,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn run(&mut self, bufs: &mut [VecBuf], actions: &mut [Action]) {
        let macs = [MAC_LAN, MAC_WAN];
        let env = Env {
            policy: &self.policy,
            neighbours: &self.neighbours,
            macs: &macs,
        };
        self.shard.process(&env, self.now, 0, bufs, actions);
    }

    /// Creates every session (endpoints x remotes) through the slow path.
    fn fill(&mut self, sessions: u32) -> Duration {
        let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 64])).collect();
        let mut actions = [Action::Consumed; BURST];
        let start = Instant::now();
        let mut i = 0;
        while i < sessions {
            let n = (sessions - i).min(BURST as u32) as usize;
            for (k, b) in bufs[..n].iter_mut().enumerate() {
                let s = i + k as u32;
                let (src, dst) = flow(s / REMOTES, s % REMOTES);
                frame(b, src, dst);
            }
            self.run(&mut bufs[..n], &mut actions[..n]);
            i += n as u32;
        }
        let took = start.elapsed();
        assert_eq!(self.shard.table().len(), sessions, "every session created");
        took
    }
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
        let mut b = Bench::new(sessions);
        let took = b.fill(sessions);
        println!(
            "{sessions} sessions: created through the slow path in {:.2} s ({:.2} M/s one burst at a time); table {:.1} bytes/session",
            took.as_secs_f64(),
            f64::from(sessions) / took.as_secs_f64() / 1e6,
            FlowTable::bytes_per_session_for(sessions.max(64)),
        );
        let per = u64::from(sessions);
        let b = std::cell::RefCell::new(b);
        let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 64])).collect();
        g.bench_function(format!("udp64/{sessions}"), |bench| {
            bench.iter_custom(|iters| {
                timed_bursts(
                    iters,
                    &mut bufs,
                    |bufs| {
                        let mut b = b.borrow_mut();
                        for buf in bufs.iter_mut() {
                            let s = (b.next() % per) as u32;
                            let (src, dst) = flow(s / REMOTES, s % REMOTES);
                            frame(buf, src, dst);
                        }
                    },
                    |bufs, actions| b.borrow_mut().run(bufs, actions),
                )
            })
        });
        let mut check: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 64])).collect();
        let mut actions = [Action::Consumed; BURST];
        for buf in &mut check {
            let (src, dst) = flow(0, 1);
            frame(buf, src, dst);
        }
        b.borrow_mut().run(&mut check, &mut actions);
        assert!(
            actions.iter().all(|a| *a == Action::Forward(1)),
            "{actions:?}"
        );
        assert!(check[0].bytes()[26..30] == [192, 0, 2, 2], "translated");
    }
    g.finish();
}

fn setup(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_setup");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    // A table of 4 M sessions that new flows keep filling; when it is full, time jumps past
    // the UDP timeout so the oldest expired sessions are reused (steady state).
    let capacity = 4_000_000u32;
    let b = std::cell::RefCell::new(Bench::new(capacity));
    let mut next = 0u32;
    let mut round = 0u32;
    let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; 64])).collect();
    g.bench_function("new_udp_flows", |bench| {
        bench.iter_custom(|iters| {
            timed_bursts(
                iters,
                &mut bufs,
                |bufs| {
                    let mut b = b.borrow_mut();
                    for buf in bufs.iter_mut() {
                        if next >= capacity {
                            // Every flow so far is now idle past the UDP timeout; the next
                            // round talks to other remotes, so each packet is a new flow.
                            next = 0;
                            round += 1;
                            b.now += 301;
                        }
                        let (src, dst) = flow(next / REMOTES, round * REMOTES + next % REMOTES);
                        next += 1;
                        frame(buf, src, dst);
                    }
                },
                |bufs, actions| b.borrow_mut().run(bufs, actions),
            )
        })
    });
    g.finish();
    let b = b.into_inner();
    println!(
        "setup: {} sessions live, {} endpoint-independent mappings, table {:.1} bytes/session",
        b.shard.table().len(),
        b.shard.snat().mappings(),
        FlowTable::bytes_per_session_for(capacity),
    );
}

criterion_group!(benches, established, setup);
criterion_main!(benches);

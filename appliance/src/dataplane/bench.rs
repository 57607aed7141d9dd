//! The whole-data-path throughput harness (`appliance bench`): the real worker loop and
//! pipeline on `net_ring` ports made of rings we own, fed by a generator lcore.
//!
//! The generator writes 64-byte UDP frames of `flows` distinct flows from inside hosts to
//! outside servers into the inside port's rx rings (one per rx queue, flows spread over them
//! like RSS would), and frees what the workers send out of the outside port. First every flow
//! once, in order (session setup), then flows drawn at random (established traffic) until the
//! run ends. Frames are written from one template (addresses, port and checksums changed), so
//! the generator holds no memory per flow and the process's resident memory is the
//! appliance's. The control loop watches the phases ([`Phases`]) and samples the counters and
//! the resident memory at the phase change and at the end.
//!
//! The seam with [`super::run`]: a [`Bench`] makes the ports of devices named `bench:*`,
//! runs the generator on the lcore after the workers', and [`Phases`] tells the control loop
//! when the run is over. Nothing else of the data path knows it is a benchmark.

use super::counters::WorkerCounters;
use crate::config::Mapping;
use crate::packet::build::{self, Link};
use crate::packet::{ChecksumDelta, EthernetAddress, Vlans};
use dpdk_sys::{Burst, Eal, Mempool, PortId, Ring};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the benchmark generates, and the NAT it goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchSpec {
    /// Distinct flows (sessions).
    pub flows: u32,
    /// Remote servers per inside endpoint: each inside endpoint opens flows to this many
    /// servers (1: every flow from an inside endpoint of its own, the most mappings an
    /// endpoint-independent NAT can be asked for).
    pub remotes: u32,
    /// The NAT's mapping behaviour.
    pub mapping: Mapping,
    /// Pool addresses, 192.0.2.16 upwards; 0: the outside port's own (masquerade).
    pub addresses: u8,
    /// Session table capacity; `None`: `flows` and a tenth.
    pub max_sessions: Option<u32>,
}

impl BenchSpec {
    /// `flows` flows to 1 000 servers per inside endpoint, endpoint-independent mapping on
    /// the outside port's address, a table a tenth larger than the flows.
    pub fn new(flows: u32) -> Self {
        BenchSpec {
            flows,
            remotes: 1000,
            mapping: Mapping::EndpointIndependent,
            addresses: 0,
            max_sessions: None,
        }
    }

    /// The session table capacity of the run.
    pub fn max_sessions(&self) -> u32 {
        self.max_sessions
            .unwrap_or_else(|| (u64::from(self.flows) * 11 / 10).clamp(1024, 64 << 20) as u32)
    }
}
/// The bench configuration's fixed addressing (see [`config_text`]).
pub const INSIDE_NET: &str = "10.64.0.1/10";
/// The bench's gateway MAC (a static neighbour).
const GATEWAY_MAC: &str = "02:00:00:00:00:01";

/// The configuration `appliance bench` runs: two ring ports, the pool and mapping of
/// `spec`, a static neighbour for the gateway, sessions for its flows.
pub fn config_text(lcores: &str, workers: u16, spec: &BenchSpec, huge_pages: bool) -> String {
    let sessions = spec.max_sessions();
    let mapping = match spec.mapping {
        Mapping::EndpointIndependent => "endpoint-independent",
        Mapping::EndpointDependent => "endpoint-dependent",
    };
    let addresses: Vec<String> = (0..spec.addresses)
        .map(|i| format!("\"{}\"", Ipv4Addr::new(192, 0, 2, 16 + i)))
        .collect();
    let addresses = addresses.join(", ");
    format!(
        r#"
[eal]
lcores = "{lcores}"
huge_pages = {huge_pages}
memory_mb = 1024
file_prefix = "appliance-bench-{pid}"

[dataplane]
workers = {workers}
mbufs = 65535
burst = 32

[control]
socket = ""

[nat]
max_sessions = {sessions}
mapping = "{mapping}"
addresses = [{addresses}]

[[port]]
name = "lan"
role = "inside"
device = "bench:lan"
address = "{INSIDE_NET}"

[[port]]
name = "wan"
role = "outside"
device = "bench:wan"
address = "192.0.2.2/24"
gateway = "192.0.2.1"
neighbours = [{{ ip = "192.0.2.1", mac = "{GATEWAY_MAC}" }}]
"#,
        pid = std::process::id()
    )
}

/// Inside endpoint and remote of flow `f`, with `remotes` servers per inside endpoint.
fn flow(f: u32, remotes: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let e = f / remotes;
    let inside = Ipv4Addr::from(0x0a40_0000 + 2 + e / 8); // 10.64.0.2 upwards
    let port = 20000 + (e % 8) as u16;
    let remote = Ipv4Addr::from(0xc633_6400 + 1 + f % remotes); // 198.51.100.1 upwards
    ((inside, port), (remote, 443))
}

/// The frames of the flows: flow 0's, built once, and for flow `f` the same bytes with its
/// addresses and source port written in and both checksums updated (RFC 1624).
struct Frames {
    template: [u8; 64],
    first: ((Ipv4Addr, u16), (Ipv4Addr, u16)),
    remotes: u32,
}

/// Offsets in the frame: IPv4 checksum, source, destination; UDP source port, checksum.
const IP_CHECKSUM: usize = 24;
const IP_SRC: usize = 26;
const IP_DST: usize = 30;
const UDP_SRC: usize = 34;
const UDP_CHECKSUM: usize = 40;

impl Frames {
    fn new(dst_mac: EthernetAddress, remotes: u32) -> Self {
        let first = flow(0, remotes);
        let link = Link {
            src: EthernetAddress([2, 0, 0, 0, 0, 0x10]),
            dst: dst_mac,
            vlans: Vlans::None,
        };
        let mut template = [0u8; 64];
        // 64 bytes hold the frame: this cannot fail.
        let _ = build::udp_datagram(&mut template, &link, first.0, first.1, &[0x5a; 18]);
        Frames {
            template,
            first,
            remotes,
        }
    }

    /// Writes flow `f`'s frame into `out` (64 bytes).
    #[inline]
    fn write(&self, f: u32, out: &mut [u8]) {
        let ((src, sport), (dst, _)) = flow(f, self.remotes);
        let ((src0, sport0), (dst0, _)) = self.first;
        out.copy_from_slice(&self.template);
        let ip = ChecksumDelta::ZERO.add_addr(src0, src).add_addr(dst0, dst);
        let udp = ip.add16(sport0, sport);
        let get = |at: usize| u16::from_be_bytes([self.template[at], self.template[at + 1]]);
        out[IP_SRC..IP_SRC + 4].copy_from_slice(&src.octets());
        out[IP_DST..IP_DST + 4].copy_from_slice(&dst.octets());
        out[UDP_SRC..UDP_SRC + 2].copy_from_slice(&sport.to_be_bytes());
        out[IP_CHECKSUM..IP_CHECKSUM + 2]
            .copy_from_slice(&ip.apply(get(IP_CHECKSUM)).to_be_bytes());
        let sum = udp.apply_udp(get(UDP_CHECKSUM));
        out[UDP_CHECKSUM..UDP_CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The process's resident memory and its huge pages (`/proc/self/status` `VmRSS` and
/// `HugetlbPages`), in bytes; `None` where the kernel does not say.
pub fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    Some((kb("VmRSS:")?, kb("HugetlbPages:").unwrap_or(0)))
}

/// What `appliance bench` measured.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct BenchResult {
    /// Flows (sessions) generated.
    pub flows: u32,
    /// Seconds to create every session (first packet of each flow through the slow path).
    pub setup_secs: f64,
    /// Sessions created per second in that phase.
    pub setup_per_sec: f64,
    /// Seconds of established traffic measured.
    pub established_secs: f64,
    /// Packets per second the workers sent out in the established phase.
    pub established_pps: f64,
    /// Busy TSC cycles per packet processed in the established phase (all workers).
    pub cycles_per_packet: f64,
    /// Share of the workers' time spent on packets in the established phase (1.0: the
    /// workers are the bottleneck; less: the generator is).
    pub worker_busy: f64,
    /// Times the generator found the rx ring full and waited (the workers were saturated).
    pub generator_refused: u64,
    /// Session table bytes per session (slab + index).
    pub table_bytes_per_session: f64,
    /// The session table capacity (`nat.max_sessions`).
    pub max_sessions: u32,
    /// Resident memory of the whole process when every session was created (`VmRSS`: not
    /// the huge pages of the packet buffers, [`BenchResult::hugetlb_bytes`]).
    pub rss_bytes: u64,
    /// `rss_bytes` divided by `max_sessions`: what a session costs, all included, when the
    /// table is full.
    pub rss_bytes_per_session: f64,
    /// Huge pages mapped by the process then (DPDK's memory: packet buffers, rings).
    pub hugetlb_bytes: u64,
}

/// Counters the generator keeps.
#[derive(Debug, Default)]
pub struct GenCounters {
    /// Frames handed to the inside port.
    pub sent: AtomicU64,
    /// Times the rx ring was full (the workers were saturated) and the generator waited.
    pub refused: AtomicU64,
    /// Frames the workers sent out, drained and freed.
    pub drained: AtomicU64,
    /// Set once every flow has been sent once (setup phase over).
    pub setup_sent: AtomicBool,
}

/// A benchmark's ports and generator: the rings behind the `bench:*` devices (which must
/// outlive those ports), what the generator counts, and its stop flag.
pub struct Bench<'eal> {
    spec: BenchSpec,
    /// Per bench port, in config order: the rx rings the generator feeds (one per queue)
    /// and the tx rings the workers fill (one per worker).
    rings: Vec<(Vec<Ring<'eal>>, Vec<Ring<'eal>>)>,
    counters: GenCounters,
    stop: AtomicBool,
}

impl std::fmt::Debug for Bench<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl<'eal> Bench<'eal> {
    /// A benchmark of `spec`, before its ports exist.
    pub fn new(spec: BenchSpec) -> Self {
        Bench {
            spec,
            rings: Vec::new(),
            counters: GenCounters::default(),
            stop: AtomicBool::new(false),
        }
    }

    /// What it generates.
    pub fn spec(&self) -> BenchSpec {
        self.spec
    }

    /// Makes the ring port of device `bench:name`: `rx_queues` rings the generator feeds,
    /// `tx_queues` the workers send into.
    ///
    /// # Errors
    /// DPDK's, when a ring or the port cannot be made.
    pub fn port(
        &mut self,
        eal: &'eal Eal,
        name: &str,
        rx_queues: u16,
        tx_queues: u16,
    ) -> Result<PortId, dpdk_sys::Error> {
        let rings = |kind: &str, n: u16| -> Result<Vec<Ring<'eal>>, dpdk_sys::Error> {
            (0..n)
                .map(|q| Ring::new(eal, &format!("b_{name}_{kind}{q}"), 1024))
                .collect()
        };
        let rx = rings("rx", rx_queues)?;
        let tx = rings("tx", tx_queues)?;
        let id = {
            let rxr: Vec<&Ring<'_>> = rx.iter().collect();
            let txr: Vec<&Ring<'_>> = tx.iter().collect();
            dpdk_sys::ring_port(eal, &format!("bench_{name}"), &rxr, &txr)?
        };
        self.rings.push((rx, tx));
        Ok(id)
    }

    /// The generator loop, for the generator's lcore: frames into the first bench port's
    /// rx rings (addressed to `lan_mac`), out of every port's tx rings and back to the pool,
    /// until [`Bench::stop`].
    pub fn generate(&self, lan_mac: EthernetAddress, pool: &Mempool<'_>) {
        let feed: Vec<&Ring<'_>> = self
            .rings
            .first()
            .map(|(rx, _)| rx.iter().collect())
            .unwrap_or_default();
        let drain: Vec<&Ring<'_>> = self.rings.iter().flat_map(|(_, tx)| tx.iter()).collect();
        generate(
            self.spec,
            lan_mac,
            pool,
            &feed,
            &drain,
            &self.counters,
            &self.stop,
        );
    }

    /// Stops the generator.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// What the generator counted.
    pub fn counters(&self) -> &GenCounters {
        &self.counters
    }
}

/// The workers' totals the phases are measured by.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    /// Packets sent out of every port.
    out: u64,
    busy: u64,
    idle: u64,
    processed: u64,
}

impl Totals {
    fn of(workers: &[WorkerCounters]) -> Totals {
        let mut t = Totals::default();
        for w in workers {
            t.out += w
                .ports
                .iter()
                .map(|p| p.tx_packets.load(Ordering::Relaxed))
                .sum::<u64>();
            t.busy += w.busy_cycles.load(Ordering::Relaxed);
            t.idle += w.idle_cycles.load(Ordering::Relaxed);
            t.processed += w.processed.load(Ordering::Relaxed);
        }
        t
    }
}

/// Where a benchmark is: setting its sessions up, or measuring established traffic since a
/// moment whose totals it keeps.
#[derive(Debug)]
pub struct Phases {
    flows: u32,
    duration: Option<Duration>,
    started: Instant,
    established: Option<(Instant, Totals)>,
    result: BenchResult,
}

/// Setup gives up after this long.
const SETUP_LIMIT: Duration = Duration::from_secs(600);

impl Phases {
    /// The phases of a benchmark of `spec` that measures established traffic for
    /// `duration` (`None`: until stopped), started at `started`.
    pub fn new(spec: &BenchSpec, duration: Option<Duration>, started: Instant) -> Self {
        Phases {
            flows: spec.flows,
            duration,
            started,
            established: None,
            result: BenchResult {
                flows: spec.flows,
                max_sessions: spec.max_sessions(),
                ..BenchResult::default()
            },
        }
    }

    /// The control loop's look at the benchmark: `created` sessions so far, the workers'
    /// counters, the generator's. True when the run is over (the measurement is complete,
    /// or setup took too long).
    pub fn watch(&mut self, created: u64, workers: &[WorkerCounters], gen: &GenCounters) -> bool {
        match self.established {
            None if created >= u64::from(self.flows) && gen.setup_sent.load(Ordering::Acquire) => {
                let secs = self.started.elapsed().as_secs_f64();
                info!(flows = self.flows, secs, "benchmark: every session created");
                self.result.setup_secs = secs;
                self.result.setup_per_sec = f64::from(self.flows) / secs;
                if let Some((rss, huge)) = resident_memory() {
                    self.result.rss_bytes = rss;
                    self.result.hugetlb_bytes = huge;
                    let max = f64::from(self.result.max_sessions.max(1));
                    self.result.rss_bytes_per_session = rss as f64 / max;
                }
                self.established = Some((Instant::now(), Totals::of(workers)));
                false
            }
            None if self.started.elapsed() > SETUP_LIMIT => {
                warn!(created, "benchmark: session setup did not finish in 600 s");
                true
            }
            Some((t0, before)) if self.duration.is_none_or(|d| t0.elapsed() >= d) => {
                let now = Totals::of(workers);
                let secs = t0.elapsed().as_secs_f64();
                let r = &mut self.result;
                r.established_secs = secs;
                r.established_pps = (now.out - before.out) as f64 / secs;
                r.cycles_per_packet = (now.busy - before.busy) as f64
                    / (now.processed - before.processed).max(1) as f64;
                let (busy, idle) = (now.busy - before.busy, now.idle - before.idle);
                r.worker_busy = busy as f64 / (busy + idle).max(1) as f64;
                true
            }
            _ => false,
        }
    }

    /// The figures, once setup is over (`None` before: nothing was measured).
    pub fn result(&self, gen: &GenCounters, table_bytes_per_session: f64) -> Option<BenchResult> {
        self.established.map(|_| BenchResult {
            generator_refused: gen.refused.load(Ordering::Relaxed),
            table_bytes_per_session,
            ..self.result
        })
    }
}

/// The generator loop: runs until `stop`.
fn generate(
    spec: BenchSpec,
    lan_mac: EthernetAddress,
    pool: &Mempool<'_>,
    feed: &[&Ring<'_>],
    drain: &[&Ring<'_>],
    counters: &GenCounters,
    stop: &AtomicBool,
) {
    let flows = spec.flows.max(1);
    let frames = Frames::new(lan_mac, spec.remotes.max(1));
    let mut next = 0u32;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut setup = true;
    let mut b: Burst<'_, 32> = Burst::new();
    let mut out: Burst<'_, 64> = Burst::new();
    let (mut sent, mut refused, mut drained) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        if b.is_empty() {
            if b.alloc_from(pool, 32) == 0 {
                // The pool is empty: the workers hold everything; drain and retry.
            }
            for m in b.as_mut_slice() {
                let f = if setup {
                    let f = next;
                    next += 1;
                    if next == flows {
                        setup = false;
                        counters.setup_sent.store(true, Ordering::Release);
                    }
                    f
                } else {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    ((rng >> 16) % u64::from(flows)) as u32
                };
                if let Some(buf) = m.append(64) {
                    frames.write(f, buf);
                }
            }
        }
        // Spread bursts over the rx queues (an RSS stand-in: the workers hand off what
        // they do not own). A full ring means the workers are saturated: back off rather
        // than spin on the ring's cache lines, which the workers need.
        let q = (sent as usize / 32) % feed.len();
        let done = feed[q].enqueue(&mut b);
        sent += done as u64;
        if done == 0 {
            refused += 1;
            for _ in 0..64 {
                dpdk_sys::tsc::pause();
            }
        }
        for r in drain {
            while r.dequeue(&mut out, 64) > 0 {
                drained += out.free_all() as u64;
            }
        }
        counters.sent.store(sent, Ordering::Relaxed);
        counters.refused.store(refused, Ordering::Relaxed);
        counters.drained.store(drained, Ordering::Relaxed);
    }
    b.free_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame written from the template is the frame built for that flow, checksums and all.
    #[test]
    fn frames_from_the_template_are_the_flows_frames() {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        for remotes in [1, 7, 1000] {
            let frames = Frames::new(mac, remotes);
            for f in [0, 1, 6, 999, 1000, 123_457, 9_999_999] {
                let (src, dst) = flow(f, remotes);
                let link = Link {
                    src: EthernetAddress([2, 0, 0, 0, 0, 0x10]),
                    dst: mac,
                    vlans: Vlans::None,
                };
                let mut built = [0u8; 64];
                build::udp_datagram(&mut built, &link, src, dst, &[0x5a; 18]).unwrap();
                let mut written = [0u8; 64];
                frames.write(f, &mut written);
                assert_eq!(written, built, "flow {f} of {remotes}");
            }
        }
    }

    #[test]
    fn the_config_carries_the_spec() {
        let spec = BenchSpec {
            mapping: Mapping::EndpointDependent,
            addresses: 2,
            max_sessions: Some(5000),
            ..BenchSpec::new(4000)
        };
        let config =
            crate::config::Config::parse(&config_text("0@0,1@1,2@0", 1, &spec, false), "b")
                .unwrap();
        assert_eq!(config.nat.max_sessions, 5000);
        assert_eq!(config.nat.mapping, Mapping::EndpointDependent);
        assert_eq!(config.nat.addresses.len(), 2);
        assert_eq!(BenchSpec::new(4000).max_sessions(), 4400);
        assert!(resident_memory().is_some_and(|(rss, _)| rss > 0));
    }
}

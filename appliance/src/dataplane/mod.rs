//! DPDK ports, worker lcores, tx buffering: the only user of DPDK (through `dpdk-sys`, whose
//! safe layer holds its unsafe code).
//!
//! [`run`] is `appliance run`: EAL init, one mempool, the ports configured and started, one
//! worker per worker lcore, and the main lcore left to the control loop until a stop is
//! asked (signal or duration). Then workers stop, ports stop, counters are reported and EAL
//! cleans up.

pub mod arp;
pub mod bench;
pub mod counters;
mod eal_args;
pub mod view;
pub mod worker;

pub use eal_args::eal_args;

use crate::config::Config;
use crate::control::Control;
use crate::packet::EthernetAddress;
use crate::pipeline::{Neighbours, Reason, Shard, ShardConfig, ShardCounters};
use arc_swap::ArcSwap;
use arp::{NeighbourManager, Sender};
use counters::{port_totals, PortTotals, WorkerCounters};
use crossbeam_queue::ArrayQueue;
use dpdk_sys::{tsc, Eal, Mempool, Port, PortSettings, PortStats};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};
use view::{DumpSlot, View};
use worker::{Shared, Worker};

/// Packets each handoff ring holds (per pair of workers).
const HANDOFF_RING: usize = 4096;

/// Why the appliance could not start or run. Each names the config field or the
/// environment problem, for a one-line error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Huge pages asked for but not available.
    #[error("eal.huge_pages = true but {0}; reserve some (echo 512 > /proc/sys/vm/nr_hugepages and mount hugetlbfs on /dev/hugepages) or set eal.huge_pages = false")]
    NoHugePages(String),
    /// EAL refused to start.
    #[error("EAL initialisation failed (check eal.lcores = {lcores:?} and the EAL messages above): {source}")]
    Eal {
        /// The configured lcores.
        lcores: String,
        /// DPDK's error.
        source: dpdk_sys::Error,
    },
    /// Too few worker lcores for the workers asked.
    #[error("dataplane.workers = {asked} but eal.lcores = {lcores:?} gives {available} worker lcore(s) (the first lcore is the main one)")]
    NotEnoughLcores {
        /// Workers asked.
        asked: usize,
        /// Worker lcores EAL has.
        available: usize,
        /// The configured lcores.
        lcores: String,
    },
    /// The packet-buffer pool could not be created.
    #[error("dataplane.mbufs = {mbufs}: cannot create the packet-buffer pool (raise eal.memory_mb or lower dataplane.mbufs): {source}")]
    Mempool {
        /// Mbufs asked.
        mbufs: u32,
        /// DPDK's error.
        source: dpdk_sys::Error,
    },
    /// A port could not be probed, configured or started.
    #[error("port[{index}] ({name}) device {device:?}: {source}")]
    Port {
        /// Index in the config.
        index: usize,
        /// Port name.
        name: String,
        /// Its device string.
        device: String,
        /// DPDK's error.
        source: dpdk_sys::Error,
    },
    /// The control plane could not start (policy, control socket, metrics endpoint).
    #[error("{0}")]
    Control(#[from] crate::control::ControlError),
    /// The SNAT port range is too small for the workers.
    #[error("nat.port_range has fewer ports than the {0} workers need (one slice each)")]
    PortRange(usize),
    /// A worker could not be launched or failed.
    #[error("worker {index} on lcore {lcore}: {source}")]
    Worker {
        /// Worker index.
        index: usize,
        /// Its lcore.
        lcore: u32,
        /// The failure.
        source: dpdk_sys::Error,
    },
}

/// Options of one run that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop by itself after this long (in a benchmark: this long after session setup).
    pub duration: Option<Duration>,
    /// Log per-port rates this often.
    pub stats_interval: Option<Duration>,
    /// Run as the throughput benchmark: ports named `bench:*` are rings fed by a generator
    /// on the last worker lcore.
    pub bench: Option<bench::BenchSpec>,
}

/// Counters at the end of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// How long the workers ran, in seconds.
    pub elapsed_secs: f64,
    /// Per port, in config order.
    pub ports: Vec<PortReport>,
    /// Per worker.
    pub workers: Vec<WorkerReport>,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Drops by reason (only reasons that happened).
    pub drops: Vec<(&'static str, u64)>,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions live at the end.
    pub sessions_live: u64,
    /// Benchmark figures, for `appliance bench`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench: Option<BenchResult>,
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
}

/// One port's totals: what the workers counted, and what the driver counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortReport {
    /// Port name from the config.
    pub name: String,
    /// The port's MAC address.
    pub mac: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets freed because the driver's tx ring was full.
    pub tx_dropped: u64,
    /// Driver: packets the NIC dropped for lack of rx descriptors.
    pub rx_missed: u64,
    /// Driver: rx mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Driver: erroneous received packets.
    pub rx_errors: u64,
    /// Driver: failed transmissions.
    pub tx_errors: u64,
}

impl PortReport {
    fn new(name: &str, mac: EthernetAddress, t: PortTotals, s: PortStats) -> Self {
        PortReport {
            name: name.to_string(),
            mac: mac.to_string(),
            rx_packets: t.rx_packets,
            rx_bytes: t.rx_bytes,
            tx_packets: t.tx_packets,
            tx_dropped: t.tx_dropped,
            rx_missed: s.rx_missed,
            rx_nombuf: s.rx_nombuf,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
        }
    }
}

/// One worker's totals.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WorkerReport {
    /// The lcore it ran on.
    pub lcore: u32,
    /// Packets it processed.
    pub processed: u64,
    /// Cycles in iterations that moved packets.
    pub busy_cycles: u64,
    /// Cycles in idle iterations.
    pub idle_cycles: u64,
    /// Packets handed to other workers.
    pub handoffs: u64,
    /// Packets dropped because a handoff ring was full.
    pub handoff_drops: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed_secs.max(1e-9);
        writeln!(f, "ran {:.3} s", secs)?;
        writeln!(
            f,
            "{:<12} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10}",
            "port", "rx", "tx", "tx_dropped", "rx_missed", "rx_nombuf", "tx_Mpps"
        )?;
        for p in &self.ports {
            writeln!(
                f,
                "{:<12} {:>14} {:>14} {:>12} {:>10} {:>10} {:>10.3}",
                p.name,
                p.rx_packets,
                p.tx_packets,
                p.tx_dropped,
                p.rx_missed,
                p.rx_nombuf,
                p.tx_packets as f64 / secs / 1e6
            )?;
        }
        writeln!(
            f,
            "sessions: {} created, {} live at exit",
            self.sessions_created, self.sessions_live
        )?;
        if !self.drops.is_empty() {
            writeln!(f, "drops by reason:")?;
            for (name, n) in &self.drops {
                writeln!(f, "  {name:<28} {n:>12}")?;
            }
        }
        writeln!(
            f,
            "{:<8} {:>6} {:>14} {:>8} {:>12} {:>10}",
            "worker", "lcore", "packets", "busy%", "cycles/pkt", "handoffs"
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            let total = (w.busy_cycles + w.idle_cycles).max(1);
            let cpp = if w.processed > 0 {
                w.busy_cycles as f64 / w.processed as f64
            } else {
                0.0
            };
            writeln!(
                f,
                "{:<8} {:>6} {:>14} {:>7.1}% {:>12.1} {:>10}",
                i,
                w.lcore,
                w.processed,
                100.0 * w.busy_cycles as f64 / total as f64,
                cpp,
                w.handoffs
            )?;
        }
        Ok(())
    }
}

/// Checks that huge pages are reserved and free before EAL tries (its own error is vague).
fn check_huge_pages() -> Result<(), RunError> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free == 0 {
        return Err(RunError::NoHugePages(
            "the system has no free huge pages (HugePages_Free: 0 in /proc/meminfo)".into(),
        ));
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
    {
        return Err(RunError::NoHugePages("no hugetlbfs is mounted".into()));
    }
    Ok(())
}

/// Runs the data path for `config` (read from `config_path`, which reloads re-read) until
/// `stop` is set (signal handler) or `options.duration` passes.
pub fn run(
    config_path: &Path,
    config: &Config,
    options: &RunOptions,
    stop: &AtomicBool,
) -> Result<Report, RunError> {
    if config.eal.huge_pages {
        check_huge_pages()?;
    }
    let mut control = Control::new(config_path, config.clone())?;
    control.reload_on_sighup()?;
    let policy0 = control.current();
    let args = eal_args(config);
    info!(args = ?args, "initialising EAL");
    let eal = Eal::init(&args).map_err(|source| RunError::Eal {
        lcores: config.eal.lcores.clone(),
        source,
    })?;
    let lcores = eal.worker_lcores();
    let workers = config.dataplane.workers.map_or(lcores.len(), usize::from);
    let needed = workers + usize::from(options.bench.is_some());
    if workers == 0 || needed > lcores.len() {
        return Err(RunError::NotEnoughLcores {
            asked: needed.max(1),
            available: lcores.len(),
            lcores: config.eal.lcores.clone(),
        });
    }
    let d = &config.dataplane;
    let pool = Mempool::new(
        &eal,
        "appliance_mbufs",
        d.mbufs,
        d.mbuf_cache,
        dpdk_sys::ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
        None,
    )
    .map_err(|source| RunError::Mempool {
        mbufs: d.mbufs,
        source,
    })?;

    // Every worker has a tx queue on every port.
    let mut bench_rings: Vec<(Vec<dpdk_sys::Ring<'_>>, Vec<dpdk_sys::Ring<'_>>)> = Vec::new();
    let mut ports = Vec::with_capacity(config.port.len());
    for (index, pc) in config.port.iter().enumerate() {
        let port_err = |source| RunError::Port {
            index,
            name: pc.name.clone(),
            device: pc.device.clone(),
            source,
        };
        let rx_queues = pc.queues.unwrap_or(workers as u16);
        let id = if let Some(name) = pc.device.trim().strip_prefix("bench:") {
            // Benchmark ports: rings we own, one per queue.
            let mk = |kind: &str, n: u16| -> Result<Vec<dpdk_sys::Ring<'_>>, RunError> {
                (0..n)
                    .map(|q| {
                        dpdk_sys::Ring::new(&eal, &format!("b_{name}_{kind}{q}"), 1024)
                            .map_err(port_err)
                    })
                    .collect()
            };
            let rx = mk("rx", rx_queues)?;
            let tx = mk("tx", workers as u16)?;
            let rxr: Vec<&dpdk_sys::Ring<'_>> = rx.iter().collect();
            let txr: Vec<&dpdk_sys::Ring<'_>> = tx.iter().collect();
            let id = dpdk_sys::ring_port(&eal, &format!("bench_{name}"), &rxr, &txr)
                .map_err(port_err)?;
            bench_rings.push((rx, tx));
            id
        } else {
            dpdk_sys::attach(&eal, pc.device.trim()).map_err(port_err)?
        };
        let settings = PortSettings {
            rx_queues,
            tx_queues: workers as u16,
            rx_descriptors: d.rx_descriptors,
            tx_descriptors: d.tx_descriptors,
            mtu: pc.mtu,
            promiscuous: pc.promiscuous,
        };
        let mut port = Port::configure(&eal, id, &settings, &pool).map_err(port_err)?;
        port.start().map_err(port_err)?;
        let link = port.link().ok();
        info!(
            port = %pc.name,
            id = id.0,
            driver = %port.info().driver,
            mac = %EthernetAddress(port.mac()),
            rx_queues = settings.rx_queues,
            tx_queues = settings.tx_queues,
            rss = port.info().rss_enabled,
            link_up = link.map(|l| l.up),
            speed_mbps = link.map(|l| l.speed_mbps),
            "port started"
        );
        ports.push(port);
    }
    let macs: Vec<EthernetAddress> = ports.iter().map(|p| EthernetAddress(p.mac())).collect();

    // Per-worker state, built here and moved to the worker lcores.
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(tsc::now());
        h.finish()
    };
    let shard_counters: Vec<Arc<ShardCounters>> = (0..workers)
        .map(|_| Arc::new(ShardCounters::new(policy0.snat.addresses.len())))
        .collect();
    let mut shards = Vec::with_capacity(workers);
    for (w, c) in shard_counters.iter().enumerate() {
        let sc = ShardConfig::from_policy(&policy0, w, workers, seed)
            .ok_or(RunError::PortRange(workers))?;
        shards.push(Shard::new(sc, c.clone()));
    }
    let pool_addresses = policy0.snat.addresses.clone();
    let neighbours = Arc::new(ArcSwap::from_pointee(Neighbours::new()));
    let neighbour_manager = NeighbourManager::new(neighbours.clone(), &policy0);
    let shared = Shared {
        policy: control.policy(),
        neighbours: neighbours.clone(),
        rings: (0..workers)
            .map(|_| {
                (0..workers)
                    .map(|_| ArrayQueue::new(HANDOFF_RING))
                    .collect()
            })
            .collect(),
        notes: ArrayQueue::new(4096),
        outbox: ArrayQueue::new(256),
        macs: macs.clone(),
        dumps: (0..workers).map(|_| DumpSlot::default()).collect(),
        stop: AtomicBool::new(false),
    };
    let counters: Vec<WorkerCounters> = (0..workers).map(|_| WorkerCounters::default()).collect();
    let started = Instant::now();
    let tsc_hz = tsc::hz();
    let lcore_ids: Vec<u32> = lcores.iter().take(workers).map(|l| l.0).collect();

    let mut bench_result: Option<BenchResult> = None;
    let gen_counters = bench::GenCounters::default();
    let gen_stop = AtomicBool::new(false);
    let result = {
        let mut plans: Vec<Worker<'_, '_>> = shards
            .into_iter()
            .enumerate()
            .map(|(index, shard)| Worker {
                index,
                rx: Vec::new(),
                tx: Vec::new(),
                burst: usize::from(d.burst),
                shard,
            })
            .collect();
        for (pi, port) in ports.iter().enumerate() {
            let (rxqs, txqs) = port
                .queues()
                .expect("queues of a freshly configured port are free");
            for q in rxqs {
                let w = usize::from(q.queue().0) % workers;
                plans[w].rx.push((pi, q));
            }
            for (w, q) in txqs.into_iter().enumerate() {
                plans[w].tx.push(q);
            }
        }
        eal.scope(|s| {
            let mut running = Vec::with_capacity(workers);
            let mut launch_error = None;
            for (plan, (&lcore, c)) in plans.into_iter().zip(lcores.iter().zip(&counters)) {
                let index = plan.index;
                let shared = &shared;
                match s.spawn(lcore, move || {
                    plan.run(shared, c);
                    0
                }) {
                    Ok(w) => running.push((index, w)),
                    Err(source) => {
                        launch_error = Some(RunError::Worker {
                            index,
                            lcore: lcore.0,
                            source,
                        });
                        break;
                    }
                }
            }
            let mut generator = None;
            if let (Some(spec), None) = (options.bench, &launch_error) {
                let feed: Vec<&dpdk_sys::Ring<'_>> = bench_rings
                    .first()
                    .map(|(rx, _)| rx.iter().collect())
                    .unwrap_or_default();
                let drain: Vec<&dpdk_sys::Ring<'_>> =
                    bench_rings.iter().flat_map(|(_, tx)| tx.iter()).collect();
                let (pool, gc, gs, mac) = (&pool, &gen_counters, &gen_stop, macs[0]);
                match s.spawn(lcores[workers], move || {
                    bench::generate(spec, mac, pool, &feed, &drain, gc, gs);
                    0
                }) {
                    Ok(g) => generator = Some(g),
                    Err(source) => {
                        launch_error = Some(RunError::Worker {
                            index: workers,
                            lcore: lcores[workers].0,
                            source,
                        })
                    }
                }
            }
            if launch_error.is_none() {
                info!(workers, "workers running");
                let view = View {
                    config,
                    ports: &ports,
                    workers: &counters,
                    shards: &shard_counters,
                    lcores: &lcore_ids,
                    dumps: &shared.dumps,
                    pool: &pool_addresses,
                    started,
                    tsc_hz,
                };
                let mut sender = Sender {
                    outbox: &shared.outbox,
                    pool: &pool,
                    macs: &macs,
                    addresses: Vec::new(),
                };
                bench_result = control_loop(
                    &mut control,
                    &view,
                    &mut sender,
                    &shared,
                    neighbour_manager,
                    options,
                    stop,
                    started,
                    &gen_counters,
                );
            }
            gen_stop.store(true, Ordering::SeqCst);
            if let Some(g) = generator {
                let _ = g.join();
            }
            if let Some(r) = bench_result.as_mut() {
                r.generator_refused = gen_counters.refused.load(Ordering::Relaxed);
            }
            shared.stop.store(true, Ordering::SeqCst);
            let mut first_error = launch_error;
            for (index, w) in running {
                let lcore = w.lcore().0;
                if let Err(source) = w.join() {
                    first_error.get_or_insert(RunError::Worker {
                        index,
                        lcore,
                        source,
                    });
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    };
    let elapsed = started.elapsed();
    let mut report = Report {
        elapsed_secs: elapsed.as_secs_f64(),
        ports: Vec::new(),
        workers: Vec::new(),
        tsc_hz,
        drops: Vec::new(),
        sessions_created: shard_counters.iter().map(|s| s.created()).sum(),
        sessions_live: shard_counters
            .iter()
            .map(|s| s.active().iter().sum::<u64>())
            .sum(),
        bench: bench_result.map(|mut b| {
            b.table_bytes_per_session = crate::flow::FlowTable::bytes_per_session_for(
                policy0.sessions.max_sessions / workers as u32,
            );
            b
        }),
    };
    for i in 0..Reason::COUNT {
        if let Some(r) = Reason::from_index(i) {
            let n: u64 = shard_counters.iter().map(|s| s.drops_of(r)).sum();
            if n > 0 {
                report.drops.push((r.name(), n));
            }
        }
    }
    for (i, port) in ports.iter_mut().enumerate() {
        let stats = port.stats().unwrap_or_default();
        if let Err(e) = port.stop() {
            warn!(port = %config.port[i].name, error = %e, "stopping port");
        }
        report.ports.push(PortReport::new(
            &config.port[i].name,
            macs[i],
            port_totals(&counters, i),
            stats,
        ));
    }
    for (c, lcore) in counters.iter().zip(&lcores) {
        report.workers.push(WorkerReport {
            lcore: lcore.0,
            processed: c.processed.load(Ordering::Relaxed),
            busy_cycles: c.busy_cycles.load(Ordering::Relaxed),
            idle_cycles: c.idle_cycles.load(Ordering::Relaxed),
            handoffs: c.handoffs.load(Ordering::Relaxed),
            handoff_drops: c.handoff_drops.load(Ordering::Relaxed),
        });
    }
    // Mbufs still in handoff rings go back to the pool before the ports and EAL go.
    drop(shared);
    drop(ports);
    drop(bench_rings);
    drop(eal);
    result.map(|()| report)
}

/// The main lcore's loop while workers run: the control plane (socket, reloads, metrics),
/// neighbours (notes from workers, ARP), link changes, rate logs; until stop.
#[allow(clippy::too_many_arguments)]
fn control_loop(
    control: &mut Control,
    view: &View<'_, '_>,
    sender: &mut Sender<'_, '_>,
    shared: &Shared<'_>,
    mut neighbours: NeighbourManager,
    options: &RunOptions,
    stop: &AtomicBool,
    started: Instant,
    gen: &bench::GenCounters,
) -> Option<BenchResult> {
    let ports = view.ports;
    // Benchmark phases: (time, packets out, busy cycles, idle cycles, processed) when the
    // last session of the setup phase was created.
    let mut phase2: Option<(Instant, u64, u64, u64, u64)> = None;
    let totals = || {
        let out: u64 = (0..ports.len())
            .map(|i| port_totals(view.workers, i).tx_packets)
            .sum();
        let busy: u64 = view
            .workers
            .iter()
            .map(|w| w.busy_cycles.load(Ordering::Relaxed))
            .sum();
        let idle: u64 = view
            .workers
            .iter()
            .map(|w| w.idle_cycles.load(Ordering::Relaxed))
            .sum();
        let processed: u64 = view
            .workers
            .iter()
            .map(|w| w.processed.load(Ordering::Relaxed))
            .sum();
        (out, busy, idle, processed)
    };
    let mut result = None;
    let port_config = &view.config.port;
    let mut links: Vec<Option<bool>> = ports.iter().map(|p| p.link().ok().map(|l| l.up)).collect();
    let mut last_stats = Instant::now();
    let mut last_totals: Vec<PortTotals> = (0..ports.len())
        .map(|i| port_totals(view.workers, i))
        .collect();
    let mut last_link_check = Instant::now();
    // Drops the workers cannot log themselves (no syscalls on the fast path): the control
    // thread logs their increase, at most once a second.
    let watched = [
        crate::pipeline::Discard::SessionTableFull,
        crate::pipeline::Discard::NatPortExhausted,
        crate::pipeline::Discard::NoNatAddress,
    ];
    let drops_of = |d: crate::pipeline::Discard| -> u64 {
        view.shards.iter().map(|s| s.drops_of(d.into())).sum()
    };
    let mut last_drops: Vec<u64> = watched.iter().map(|&d| drops_of(d)).collect();
    let mut last_congestion = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if let Some(spec) = options.bench {
            let created: u64 = view.shards.iter().map(|s| s.created()).sum();
            match phase2 {
                None if created >= u64::from(spec.flows)
                    && gen.setup_sent.load(Ordering::Acquire) =>
                {
                    let (out, busy, idle, processed) = totals();
                    phase2 = Some((Instant::now(), out, busy, idle, processed));
                    let secs = started.elapsed().as_secs_f64();
                    info!(flows = spec.flows, secs, "benchmark: every session created");
                    result = Some(BenchResult {
                        flows: spec.flows,
                        setup_secs: secs,
                        setup_per_sec: f64::from(spec.flows) / secs,
                        ..Default::default()
                    });
                }
                None if started.elapsed() > Duration::from_secs(600) => {
                    warn!(created, "benchmark: session setup did not finish in 600 s");
                    break;
                }
                Some((t0, out0, busy0, idle0, processed0))
                    if options.duration.is_none_or(|d| t0.elapsed() >= d) =>
                {
                    let (out, busy, idle, processed) = totals();
                    let secs = t0.elapsed().as_secs_f64();
                    if let Some(r) = result.as_mut() {
                        r.established_secs = secs;
                        r.established_pps = (out - out0) as f64 / secs;
                        r.cycles_per_packet =
                            (busy - busy0) as f64 / (processed - processed0).max(1) as f64;
                        r.worker_busy =
                            (busy - busy0) as f64 / ((busy - busy0) + (idle - idle0)).max(1) as f64;
                    }
                    break;
                }
                _ => {}
            }
        } else if options.duration.is_some_and(|d| started.elapsed() >= d) {
            info!("run duration reached");
            break;
        }
        let now = Instant::now();
        let policy = control.current();
        sender.addresses = policy
            .ports
            .iter()
            .map(|p| p.address.map(|n| n.addr()))
            .collect();
        while let Some(n) = shared.notes.pop() {
            neighbours.note(n, now, sender);
        }
        neighbours.tick(&policy, now, sender);
        control.tick(view);
        std::thread::sleep(Duration::from_millis(5));
        if last_link_check.elapsed() >= Duration::from_secs(1) {
            last_link_check = Instant::now();
            for (i, &d) in watched.iter().enumerate() {
                let now_count = drops_of(d);
                if now_count > last_drops[i] {
                    warn!(
                        reason = d.name(),
                        new = now_count - last_drops[i],
                        total = now_count,
                        "new flows dropped"
                    );
                    last_drops[i] = now_count;
                }
            }
            let congestion: u64 = view
                .workers
                .iter()
                .map(|w| w.handoff_drops.load(Ordering::Relaxed))
                .sum();
            if congestion > last_congestion {
                warn!(
                    new = congestion - last_congestion,
                    "handoff rings full: packets dropped"
                );
                last_congestion = congestion;
            }
            for (i, p) in ports.iter().enumerate() {
                let up = p.link().ok().map(|l| l.up);
                if up != links[i] {
                    info!(port = %port_config[i].name, up = ?up, "link changed");
                    links[i] = up;
                }
            }
        }
        if let Some(every) = options.stats_interval {
            if last_stats.elapsed() >= every {
                let secs = last_stats.elapsed().as_secs_f64();
                last_stats = Instant::now();
                for (i, pc) in port_config.iter().enumerate() {
                    let t = port_totals(view.workers, i);
                    let l = last_totals[i];
                    info!(
                        port = %pc.name,
                        rx_mpps = (t.rx_packets - l.rx_packets) as f64 / secs / 1e6,
                        tx_mpps = (t.tx_packets - l.tx_packets) as f64 / secs / 1e6,
                        tx_dropped = t.tx_dropped - l.tx_dropped,
                        "rates"
                    );
                    last_totals[i] = t;
                }
            }
        }
    }
    result
}

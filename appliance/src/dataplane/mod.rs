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
pub mod report;
pub mod view;
pub mod worker;

pub use eal_args::eal_args;
pub use report::{PortReport, Report, WorkerReport};

use crate::config::Config;
use crate::control::Control;
use crate::flow::FlowTable;
use crate::packet::EthernetAddress;
use crate::pipeline::{Discard, Neighbours, Shard, ShardConfig, ShardCounters};
use crate::policy::Policy;
use arc_swap::ArcSwap;
use arp::{NeighbourManager, Sender};
use bench::{Bench, Phases};
use counters::{port_totals, ExhaustionLog, PortTotals, WorkerCounters};
use dpdk_sys::{tsc, Eal, Mempool, Port, PortSettings};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};
use view::View;
use worker::Worker;

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
    /// The lcores name CPUs this process may not run on (or `"auto"` gives too few workers).
    #[error("{0}")]
    Lcores(crate::config::FieldError),
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
    let cpus = config.check_machine().map_err(RunError::Lcores)?;
    if config.eal.huge_pages {
        check_huge_pages()?;
    }
    let mut control = Control::new(config_path, config.clone())?;
    control.reload_on_sighup()?;
    let policy0 = control.current();
    let args = eal_args(config, &cpus);
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
    let mut bench = options.bench.map(Bench::new);
    let mut ports = start_ports(&eal, config, workers, &pool, bench.as_mut())?;
    let macs: Vec<EthernetAddress> = ports.iter().map(|p| EthernetAddress(p.mac())).collect();
    let (shards, shard_counters) = make_shards(&policy0, workers)?;
    let neighbours = Arc::new(ArcSwap::from_pointee(Neighbours::new()));
    let neighbour_manager = NeighbourManager::new(neighbours.clone(), &policy0);
    let shared = worker::Shared::new(
        control.policy(),
        neighbours,
        control.draining_flag(),
        macs.clone(),
        workers,
    );
    let counters: Vec<WorkerCounters> = (0..workers).map(|_| WorkerCounters::default()).collect();
    let started = Instant::now();
    let tsc_hz = tsc::hz();
    let lcore_ids: Vec<u32> = lcores.iter().take(workers).map(|l| l.0).collect();
    let mut phases = bench
        .as_ref()
        .map(|b| Phases::new(&b.spec(), options.duration, started));

    let result = {
        let plans = plan_workers(shards, &ports, usize::from(d.burst));
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
            if let (Some(b), None) = (&bench, &launch_error) {
                let (pool, mac) = (&pool, macs[0]);
                match s.spawn(lcores[workers], move || {
                    b.generate(mac, pool);
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
                    pool: &policy0.snat.addresses,
                    started,
                    tsc_hz,
                };
                let mut sender = Sender {
                    outbox: &shared.outbox,
                    pool: &pool,
                    macs: &macs,
                    addresses: Vec::new(),
                };
                let mut lp = ControlLoop::new(&view, options, stop);
                lp.run(
                    &mut control,
                    &mut sender,
                    &shared,
                    neighbour_manager,
                    bench.as_ref().zip(phases.as_mut()),
                );
            }
            if let Some(b) = &bench {
                b.stop();
            }
            if let Some(g) = generator {
                let _ = g.join();
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
    let bench_result = bench.as_ref().zip(phases.as_ref()).and_then(|(b, p)| {
        let share = policy0.sessions.max_sessions / workers as u32;
        p.result(b.counters(), FlowTable::bytes_per_session_for(share))
    });
    let report = report::build(
        config,
        started.elapsed(),
        tsc_hz,
        &mut ports,
        &macs,
        &counters,
        &lcores,
        &shard_counters,
        bench_result,
    );
    // Mbufs still in handoff rings go back to the pool before the ports and EAL go; the
    // bench's rings back its ports, so they go after them.
    drop(shared);
    drop(ports);
    drop(bench);
    drop(eal);
    result.map(|()| report)
}

/// Probes, configures and starts every port of the configuration, in config order, with a
/// tx queue for each of the `workers` and rx queues as configured (default: one per
/// worker). Devices named `bench:*` are the benchmark's rings.
fn start_ports<'eal>(
    eal: &'eal Eal,
    config: &Config,
    workers: usize,
    pool: &Mempool<'eal>,
    mut bench: Option<&mut Bench<'eal>>,
) -> Result<Vec<Port<'eal>>, RunError> {
    let d = &config.dataplane;
    let mut ports = Vec::with_capacity(config.port.len());
    for (index, pc) in config.port.iter().enumerate() {
        let port_err = |source| RunError::Port {
            index,
            name: pc.name.clone(),
            device: pc.device.clone(),
            source,
        };
        let rx_queues = pc.queues.unwrap_or(workers as u16);
        let device = pc.device.trim();
        let id = match (device.strip_prefix("bench:"), bench.as_deref_mut()) {
            (Some(name), Some(b)) => b.port(eal, name, rx_queues, workers as u16),
            _ => dpdk_sys::attach(eal, device),
        }
        .map_err(port_err)?;
        let settings = PortSettings {
            rx_queues,
            tx_queues: workers as u16,
            rx_descriptors: d.rx_descriptors,
            tx_descriptors: d.tx_descriptors,
            mtu: pc.mtu,
            promiscuous: pc.promiscuous,
        };
        let mut port = Port::configure(eal, id, &settings, pool).map_err(port_err)?;
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
    Ok(ports)
}

/// What each worker will own: its shard, the rx queues it polls (queue `q` of a port goes to
/// worker `q % workers`), and its own tx queue on every port.
fn plan_workers<'p, 'eal>(
    shards: Vec<Shard>,
    ports: &'p [Port<'eal>],
    burst: usize,
) -> Vec<Worker<'p, 'eal>> {
    let workers = shards.len();
    let mut plans: Vec<Worker<'p, 'eal>> = shards
        .into_iter()
        .enumerate()
        .map(|(index, shard)| Worker {
            index,
            rx: Vec::new(),
            tx: Vec::new(),
            burst,
            shard,
        })
        .collect();
    for (pi, port) in ports.iter().enumerate() {
        let (rxqs, txqs) = port
            .queues()
            .expect("queues of a freshly configured port are free");
        for q in rxqs {
            plans[usize::from(q.queue().0) % workers].rx.push((pi, q));
        }
        for (w, q) in txqs.into_iter().enumerate() {
            plans[w].tx.push(q);
        }
    }
    plans
}

/// One shard for each of the `workers`, with the counters the control thread reads, on the
/// policy the process starts with; every worker hashes with one seed drawn now.
fn make_shards(
    policy: &Policy,
    workers: usize,
) -> Result<(Vec<Shard>, Vec<Arc<ShardCounters>>), RunError> {
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(tsc::now());
        h.finish()
    };
    let counters: Vec<Arc<ShardCounters>> = (0..workers)
        .map(|_| Arc::new(ShardCounters::new(policy.snat.addresses.len())))
        .collect();
    let mut shards = Vec::with_capacity(workers);
    for (w, c) in counters.iter().enumerate() {
        let sc = ShardConfig::from_policy(policy, w, workers, seed)
            .ok_or(RunError::PortRange(workers))?;
        shards.push(Shard::new(sc, c.clone()));
    }
    Ok((shards, counters))
}

/// Drops the workers cannot log themselves (no syscalls on the fast path): the control
/// thread logs their increase, at most once a second. Port exhaustion has its own line, per
/// address and protocol ([`ExhaustionLog`]).
const WATCHED_DROPS: [Discard; 2] = [Discard::SessionTableFull, Discard::NoNatAddress];

/// The main lcore's loop while workers run: the control plane (socket, reloads, metrics),
/// neighbours (notes from workers, ARP), link changes, the logs of what workers cannot log,
/// rate logs; until stop, the run's duration, or the benchmark's end.
struct ControlLoop<'v, 'a, 'eal> {
    view: &'v View<'a, 'eal>,
    options: &'v RunOptions,
    stop: &'v AtomicBool,
    links: Vec<Option<bool>>,
    last_second: Instant,
    last_stats: Instant,
    last_totals: Vec<PortTotals>,
    last_drops: [u64; WATCHED_DROPS.len()],
    last_congestion: u64,
    exhaustion: ExhaustionLog,
}

impl<'v, 'a, 'eal> ControlLoop<'v, 'a, 'eal> {
    fn new(view: &'v View<'a, 'eal>, options: &'v RunOptions, stop: &'v AtomicBool) -> Self {
        let ports = view.ports;
        let mut lp = ControlLoop {
            view,
            options,
            stop,
            links: ports.iter().map(|p| p.link().ok().map(|l| l.up)).collect(),
            last_second: Instant::now(),
            last_stats: Instant::now(),
            last_totals: (0..ports.len())
                .map(|i| port_totals(view.workers, i))
                .collect(),
            last_drops: [0; WATCHED_DROPS.len()],
            last_congestion: 0,
            exhaustion: ExhaustionLog::default(),
        };
        lp.last_drops = WATCHED_DROPS.map(|d| lp.drops_of(d));
        lp
    }

    fn drops_of(&self, d: Discard) -> u64 {
        self.view.shards.iter().map(|s| s.drops_of(d.into())).sum()
    }

    fn run(
        &mut self,
        control: &mut Control,
        sender: &mut Sender<'_, '_>,
        shared: &worker::Shared<'_>,
        mut neighbours: NeighbourManager,
        mut bench: Option<(&Bench<'_>, &mut Phases)>,
    ) {
        let view = self.view;
        // When a signal's stop waits for a drain: the moment it ends.
        let mut drained_at: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                let policy = control.current();
                let wait = policy
                    .local
                    .health_probe
                    .as_ref()
                    .map_or(0, |h| h.drain_on_stop);
                if drained_at.is_some() || wait == 0 {
                    break;
                }
                // The first signal drains; the next one (the flag set again) stops at once.
                self.stop.store(false, Ordering::SeqCst);
                control.set_draining(true, "stop asked by a signal");
                info!(
                    seconds = wait,
                    "stop asked: draining first (local.health_probe.drain_on_stop); a second \
                     signal stops at once"
                );
                drained_at = Some(Instant::now() + Duration::from_secs(u64::from(wait)));
            }
            if drained_at.is_some_and(|t| Instant::now() >= t) {
                info!("drain over: stopping");
                break;
            }
            match bench.as_mut() {
                Some((b, phases)) => {
                    let created: u64 = view.shards.iter().map(|s| s.created()).sum();
                    if phases.watch(created, view.workers, b.counters()) {
                        break;
                    }
                }
                None if self
                    .options
                    .duration
                    .is_some_and(|d| view.started.elapsed() >= d) =>
                {
                    info!("run duration reached");
                    break;
                }
                None => {}
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
            if self.last_second.elapsed() >= Duration::from_secs(1) {
                self.last_second = Instant::now();
                self.each_second();
            }
            if let Some(every) = self.options.stats_interval {
                if self.last_stats.elapsed() >= every {
                    self.log_rates();
                }
            }
        }
    }

    /// What workers cannot log (drops of new flows, full handoff rings), and link changes.
    fn each_second(&mut self) {
        let view = self.view;
        for (i, &d) in WATCHED_DROPS.iter().enumerate() {
            let n = self.drops_of(d);
            if n > self.last_drops[i] {
                warn!(
                    reason = d.name(),
                    new = n - self.last_drops[i],
                    total = n,
                    "new flows dropped"
                );
                self.last_drops[i] = n;
            }
        }
        self.log_exhaustion();
        let congestion: u64 = view
            .workers
            .iter()
            .map(|w| w.handoff_drops.load(Ordering::Relaxed))
            .sum();
        if congestion > self.last_congestion {
            warn!(
                new = congestion - self.last_congestion,
                "handoff rings full: packets dropped"
            );
            self.last_congestion = congestion;
        }
        for (i, p) in view.ports.iter().enumerate() {
            let up = p.link().ok().map(|l| l.up);
            if up != self.links[i] {
                info!(port = %view.config.port[i].name, up = ?up, "link changed");
                self.links[i] = up;
            }
        }
    }

    /// SNAT port exhaustion per pool address and protocol, rate-limited ([`ExhaustionLog`]).
    fn log_exhaustion(&mut self) {
        const PROTOS: [&str; 3] = ["icmp", "tcp", "udp"];
        let view = self.view;
        let totals = (0..view.pool.len()).flat_map(|a| {
            (0..PROTOS.len())
                .map(move |p| view.shards.iter().map(|s| s.nat_exhausted_at(a, p)).sum())
        });
        for (i, refused, total) in self.exhaustion.due(Instant::now(), totals) {
            warn!(
                address = %view.pool[i / PROTOS.len()],
                protocol = PROTOS[i % PROTOS.len()],
                refused,
                total,
                "SNAT ports exhausted: new flows refused"
            );
        }
    }

    /// Per-port packet rates since the last time.
    fn log_rates(&mut self) {
        let secs = self.last_stats.elapsed().as_secs_f64();
        self.last_stats = Instant::now();
        for (i, pc) in self.view.config.port.iter().enumerate() {
            let t = port_totals(self.view.workers, i);
            let l = self.last_totals[i];
            info!(
                port = %pc.name,
                rx_mpps = (t.rx_packets - l.rx_packets) as f64 / secs / 1e6,
                tx_mpps = (t.tx_packets - l.tx_packets) as f64 / secs / 1e6,
                tx_dropped = t.tx_dropped - l.tx_dropped,
                "rates"
            );
            self.last_totals[i] = t;
        }
    }
}

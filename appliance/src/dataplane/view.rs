//! The data path as the control thread sees it: counters summed into a snapshot, and
//! session listings asked of the workers that own the sessions.

use super::counters::{port_totals, WorkerCounters};
use crate::config::Config;
use crate::control::{
    DataplaneView, NatPortUsage, NatSnapshot, PortSnapshot, SessionCounts, Snapshot,
    TunnelSnapshot, WorkerSnapshot,
};
use crate::pipeline::{Reason, SessionFilter, SessionInfo, ShardCounters, TunnelCounters};
use dpdk_sys::Port;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IDLE: u8 = 0;
const ASKED: u8 = 1;
const DONE: u8 = 2;

/// How long a listing waits for a worker.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct DumpRequest {
    filter: SessionFilter,
    limit: usize,
    out: Vec<SessionInfo>,
}

/// A worker's mailbox for session listings. The worker looks at it with one relaxed load per
/// expiry tick; only when a listing is asked does it take the lock (off the packet path).
#[derive(Debug, Default)]
pub struct DumpSlot {
    state: AtomicU8,
    request: Mutex<DumpRequest>,
}

impl DumpSlot {
    /// Worker side: answers a pending request with `dump(filter, limit, out)`.
    pub fn serve(&self, dump: impl FnOnce(&SessionFilter, usize, &mut Vec<SessionInfo>)) {
        if self.state.load(Ordering::Acquire) != ASKED {
            return;
        }
        if let Ok(mut r) = self.request.lock() {
            let r = &mut *r;
            dump(&r.filter, r.limit, &mut r.out);
        }
        self.state.store(DONE, Ordering::Release);
    }

    /// Control side: asks and waits (bounded) for the answer.
    fn ask(&self, filter: &SessionFilter, limit: usize) -> Vec<SessionInfo> {
        if let Ok(mut r) = self.request.lock() {
            r.filter = filter.clone();
            r.limit = limit;
            r.out = Vec::with_capacity(limit.min(4096));
        } else {
            return Vec::new();
        }
        self.state.store(ASKED, Ordering::Release);
        let deadline = Instant::now() + DUMP_TIMEOUT;
        while self.state.load(Ordering::Acquire) != DONE && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let out = if self.state.load(Ordering::Acquire) == DONE {
            self.request
                .lock()
                .map(|mut r| std::mem::take(&mut r.out))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.state.store(IDLE, Ordering::Release);
        out
    }
}

/// Everything the control thread reads from the running data path.
pub struct View<'a, 'eal> {
    /// The configuration the data path runs (port names and roles).
    pub config: &'a Config,
    /// The ports, in config order.
    pub ports: &'a [Port<'eal>],
    /// Per-worker loop counters.
    pub workers: &'a [WorkerCounters],
    /// Per-worker pipeline counters.
    pub shards: &'a [Arc<ShardCounters>],
    /// Lcore of each worker.
    pub lcores: &'a [u32],
    /// Listing mailboxes.
    pub dumps: &'a [DumpSlot],
    /// SNAT pool addresses (fixed at start).
    pub pool: &'a [Ipv4Addr],
    /// When the data path started.
    pub started: Instant,
    /// TSC rate.
    pub tsc_hz: u64,
}

impl std::fmt::Debug for View<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").finish_non_exhaustive()
    }
}

impl DataplaneView for View<'_, '_> {
    fn snapshot(&self) -> Snapshot {
        let ports = self
            .config
            .port
            .iter()
            .enumerate()
            .map(|(i, pc)| {
                let t = port_totals(self.workers, i);
                let d = self
                    .ports
                    .get(i)
                    .and_then(|p| p.stats().ok())
                    .unwrap_or_default();
                let link_up = self
                    .ports
                    .get(i)
                    .and_then(|p| p.link().ok())
                    .is_some_and(|l| l.up);
                PortSnapshot {
                    name: pc.name.clone(),
                    role: pc.role.name(),
                    driver: self
                        .ports
                        .get(i)
                        .map(|p| p.info().driver.clone())
                        .unwrap_or_default(),
                    rx_packets: t.rx_packets,
                    rx_bytes: t.rx_bytes,
                    tx_packets: t.tx_packets,
                    tx_bytes: d.tx_bytes,
                    tx_dropped: t.tx_dropped,
                    rx_missed: d.rx_missed,
                    rx_errors: d.rx_errors,
                    tx_errors: d.tx_errors,
                    rx_nombuf: d.rx_nombuf,
                    link_up,
                }
            })
            .collect();
        let workers = self
            .workers
            .iter()
            .zip(self.lcores)
            .map(|(w, &lcore)| WorkerSnapshot {
                lcore,
                packets: w.processed.load(Ordering::Relaxed),
                busy_cycles: w.busy_cycles.load(Ordering::Relaxed),
                idle_cycles: w.idle_cycles.load(Ordering::Relaxed),
                tsc_hz: self.tsc_hz,
                handoffs: w.handoffs.load(Ordering::Relaxed),
                handoff_drops: w.handoff_drops.load(Ordering::Relaxed),
            })
            .collect();
        let mut drops: Vec<(&'static str, u64)> = (0..Reason::COUNT)
            .filter_map(Reason::from_index)
            .map(|r| (r.name(), self.shards.iter().map(|s| s.drops_of(r)).sum()))
            .collect();
        let congestion: u64 = self
            .workers
            .iter()
            .map(|w| w.handoff_drops.load(Ordering::Relaxed))
            .sum();
        drops.push(("handoff_congestion", congestion));
        let tx_full: u64 = (0..self.config.port.len())
            .map(|i| port_totals(self.workers, i).tx_dropped)
            .sum();
        drops.push(("tx_full", tx_full));
        let mut active = [0u64; 4];
        for s in self.shards {
            for (a, v) in active.iter_mut().zip(s.active()) {
                *a += v;
            }
        }
        let sessions = SessionCounts {
            tcp_transitory: active[0],
            tcp_established: active[1],
            udp: active[2],
            icmp: active[3],
            created_total: self.shards.iter().map(|s| s.created()).sum(),
        };
        let ports_in_use = self
            .pool
            .iter()
            .enumerate()
            .flat_map(|(a, &address)| {
                ["icmp", "tcp", "udp"]
                    .into_iter()
                    .enumerate()
                    .map(move |(p, proto)| NatPortUsage {
                        address,
                        proto,
                        in_use: self.shards.iter().map(|s| s.nat_in_use(a, p)).sum(),
                        exhausted: self.shards.iter().map(|s| s.nat_exhausted_at(a, p)).sum(),
                    })
            })
            .collect();
        let tunnels = self
            .config
            .port
            .iter()
            .enumerate()
            .filter_map(|(i, pc)| Some((i as u8, pc, pc.tunnel?)))
            .map(|(i, pc, t)| tunnel_snapshot(self.shards, i, &pc.name, t.kind()))
            .collect();
        Snapshot {
            uptime_secs: self.started.elapsed().as_secs_f64(),
            policy_generation: 0,
            ports,
            workers,
            drops,
            sessions,
            nat: NatSnapshot {
                ports_in_use,
                exhaustion_total: self.shards.iter().map(|s| s.nat_exhausted()).sum(),
            },
            reloads: Default::default(),
            draining: false,
            tunnels,
        }
    }

    fn sessions(&self, filter: &SessionFilter, limit: usize) -> Vec<SessionInfo> {
        let mut all = Vec::new();
        for slot in self.dumps {
            if all.len() >= limit {
                break;
            }
            all.extend(slot.ask(filter, limit - all.len()));
        }
        all.truncate(limit);
        all
    }
}

/// The counters of port `port`'s tunnel, summed over the shards.
pub fn tunnel_snapshot(
    shards: &[Arc<ShardCounters>],
    port: u8,
    name: &str,
    kind: &'static str,
) -> TunnelSnapshot {
    let sum = |f: &dyn Fn(&TunnelCounters) -> (u64, u64)| {
        shards
            .iter()
            .map(|s| f(s.tunnel(port)))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let (decapsulated_packets, decapsulated_bytes) = sum(&|t| t.decapsulated());
    let (encapsulated_packets, encapsulated_bytes) = sum(&|t| t.encapsulated());
    let drops = (0..Reason::COUNT)
        .filter_map(Reason::from_index)
        .map(|r| {
            (
                r.name(),
                shards.iter().map(|s| s.tunnel(port).drops_of(r)).sum(),
            )
        })
        .filter(|&(_, n): &(&str, u64)| n > 0)
        .collect();
    TunnelSnapshot {
        port: name.to_string(),
        kind,
        decapsulated_packets,
        decapsulated_bytes,
        encapsulated_packets,
        encapsulated_bytes,
        drops,
    }
}

//! The established fast path's best rate, for A/B comparisons of pipeline changes on a machine
//! whose speed wanders (a shared VM: criterion's mean then moves by a third between runs of
//! the same binary). Runs many windows of bursts and reports the fastest window and the
//! median: the fastest window is the code's speed when nothing else took the core.
//!
//! Usage: `pipeline_rate [SESSIONS...]` (default 1000 1000000). The same traffic as the
//! `pipeline` criterion bench: 64-byte UDP frames of random established sessions, written
//! untimed before each burst of 32.
//!
//! `replies` among the arguments sends the sessions' replies instead (remote to public
//! endpoint, in on `wan`, out to the inside host). `burst=N` among the arguments makes the
//! bursts N packets long (the worker's `dataplane.burst`; the shard takes them in chunks of 32).
//!
//! `pipeline_rate setup [SESSIONS]`: the new-session rate instead, as the `pipeline_setup`
//! bench drives it: every packet a new flow, in a table of 4 M sessions (or `SESSIONS`) that is
//! filled first; then the clock jumps past the UDP timeout, so each new flow reuses the oldest
//! expired session. `pipeline_rate setup-fresh [SESSIONS]`: new flows into a table with a free
//! session for each (none is reused). `edm` after either: endpoint-dependent mapping (ports
//! shared between remote endpoints) instead of endpoint-independent.

use appliance::config::Mapping;
use appliance::pipeline::{Disposition, VecBuf};
use appliance_benches::workload::{buffers, Workload, BURST};
use std::time::{Duration, Instant};

/// Bursts per window and windows per size.
const WINDOW: u32 = 256;
const WINDOWS: usize = 400;

fn main() {
    let first = std::env::args().nth(1);
    if matches!(first.as_deref(), Some("setup" | "setup-fresh")) {
        let capacity = std::env::args().skip(2).find_map(|a| a.parse().ok());
        let reuse = first.as_deref() == Some("setup");
        let mapping = if std::env::args().any(|a| a == "edm") {
            Mapping::EndpointDependent
        } else {
            Mapping::EndpointIndependent
        };
        return setup(capacity.unwrap_or(4_000_000), reuse, mapping);
    }
    let burst = std::env::args()
        .find_map(|a| a.strip_prefix("burst=").and_then(|n| n.parse().ok()))
        .filter(|&n: &usize| n > 0)
        .unwrap_or(BURST);
    let replies = std::env::args().any(|a| a == "replies");
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 1_000_000]
    } else {
        sizes
    };
    for sessions in sizes {
        let mut w = Workload::new(sessions);
        w.fill(sessions);
        let mut bufs: Vec<VecBuf> = (0..burst).map(|_| VecBuf::new(&[0; 64])).collect();
        let mut actions = vec![Disposition::Consumed; burst];
        let mut windows: Vec<Duration> = Vec::with_capacity(WINDOWS);
        // About WINDOW bursts of 32 packets a window, whatever the burst length.
        let rounds = (WINDOW as usize * BURST).div_ceil(burst);
        for _ in 0..WINDOWS {
            let mut t = Duration::ZERO;
            for _ in 0..rounds {
                let start = if replies {
                    w.replies(&mut bufs, sessions);
                    let start = Instant::now();
                    w.run_on(1, &mut bufs, &mut actions);
                    start
                } else {
                    w.established(&mut bufs, sessions);
                    let start = Instant::now();
                    w.run(&mut bufs, &mut actions);
                    start
                };
                t += start.elapsed();
            }
            if replies {
                assert!(
                    actions.iter().all(|a| *a == Disposition::Forward(0)),
                    "replies go back to lan: {actions:?}"
                );
            }
            windows.push(t);
        }
        w.check_forwarded();
        let what = format!(
            "{sessions} sessions{}{}",
            if replies { ", replies" } else { "" },
            if burst == BURST {
                String::new()
            } else {
                format!(", bursts of {burst}")
            }
        );
        report(&what, "packet", "Mpps", windows, rounds * burst);
        huge_pages();
    }
}

/// Prints how much of the process's anonymous memory transparent huge pages back (the tables
/// ask for them): random accesses over pages of 4 KiB miss the TLB.
fn huge_pages() {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps_rollup") else {
        return;
    };
    let kb = |field: &str| {
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    if let (Some(anon), Some(huge)) = (kb("Anonymous:"), kb("AnonHugePages:")) {
        println!(
            "  huge pages back {} of {} MiB of anonymous memory",
            huge / 1024,
            anon / 1024
        );
    }
}

/// Prints the fastest and the median window, per packet and as a rate.
fn report(what: &str, unit: &str, rate: &str, mut windows: Vec<Duration>, per_window: usize) {
    windows.sort();
    let packets = per_window as f64;
    let ns = |d: Duration| d.as_nanos() as f64 / packets;
    let (best, median) = (ns(windows[0]), ns(windows[windows.len() / 2]));
    println!(
        "{what}: best {best:.2} ns/{unit} ({:.2} {rate}), median {median:.2} ns/{unit} ({:.2} {rate})",
        1e3 / best,
        1e3 / median,
    );
}

/// New flows, each reusing the oldest expired session of a full table (`reuse`), or taking a
/// free one (a table large enough for every flow of the run, filled only by it).
fn setup(capacity: u32, reuse: bool, mapping: Mapping) {
    let flows = WINDOWS * WINDOW as usize * BURST;
    let capacity = if reuse {
        capacity
    } else {
        capacity.max(flows as u32 + 1)
    };
    let mut w = Workload::with_mapping(capacity, mapping);
    if reuse {
        w.fill(capacity);
    }
    let mut bufs = buffers();
    let mut actions = [Disposition::Consumed; BURST];
    let mut windows: Vec<Duration> = Vec::with_capacity(WINDOWS);
    for _ in 0..WINDOWS {
        let mut t = Duration::ZERO;
        for _ in 0..WINDOW {
            w.new_flows(&mut bufs, capacity);
            let start = Instant::now();
            w.run(&mut bufs, &mut actions);
            t += start.elapsed();
            assert!(
                actions.iter().all(|a| *a == Disposition::Forward(1)),
                "{actions:?}"
            );
        }
        windows.push(t);
    }
    let what = if reuse {
        format!("new flows, {capacity} sessions reused")
    } else {
        format!("new flows into free sessions ({capacity})")
    };
    let what = match mapping {
        Mapping::EndpointIndependent => what,
        Mapping::EndpointDependent => format!("{what}, endpoint-dependent"),
    };
    report(&what, "flow", "M/s", windows, WINDOW as usize * BURST);
}

//! A fixed workload for instruction counting (`valgrind --tool=callgrind`): 1 000 established
//! UDP sessions, 2 000 bursts of 32 packets through one shard (`Workload::run`). The frames are
//! written between bursts, visible apart in the profile (`workload::frame`).
//!
//! With the argument `fill`, only the 1 000 sessions' creation: what `benches/callgrind.sh`
//! subtracts to count the established packets alone.
//!
//! With the argument `setup`, the slow path instead: 200 000 new UDP flows in bursts of 32
//! through a table of 100 000 sessions, so the second half reuses expired sessions, the steady
//! state of the `pipeline_setup` bench.

use appliance::pipeline::Disposition;
use appliance_benches::workload::{buffers, Workload, BURST};

/// Sessions in the table of the `setup` workload.
const SETUP_TABLE: u32 = 100_000;

fn main() {
    let mode = std::env::args().nth(1);
    if mode.as_deref() == Some("setup") {
        return new_flows();
    }
    let mut w = Workload::new(4096);
    w.fill(1000);
    if mode.as_deref() == Some("fill") {
        return println!("{} sessions created", w.shard.table().len());
    }
    let mut bufs = buffers();
    let mut actions = [Disposition::Consumed; BURST];
    let mut forwarded = 0u64;
    for _ in 0..2000 {
        w.established(&mut bufs, 1000);
        w.run(&mut bufs, &mut actions);
        forwarded += actions
            .iter()
            .filter(|a| **a == Disposition::Forward(1))
            .count() as u64;
    }
    println!("{forwarded} packets forwarded");
}

/// The `setup` workload: every packet opens a new flow; the table fills in the first round,
/// the clock then jumps past the UDP timeout and each new flow of the second round (to other
/// remotes) reuses the oldest expired session.
fn new_flows() {
    let mut w = Workload::new(SETUP_TABLE);
    let mut bufs = buffers();
    let mut actions = [Disposition::Consumed; BURST];
    let mut forwarded = 0u64;
    for _ in 0..(2 * SETUP_TABLE / BURST as u32) {
        w.new_flows(&mut bufs, SETUP_TABLE);
        w.run(&mut bufs, &mut actions);
        forwarded += actions
            .iter()
            .filter(|a| **a == Disposition::Forward(1))
            .count() as u64;
    }
    println!(
        "{forwarded} new flows forwarded, {} sessions live",
        w.shard.table().len()
    );
}

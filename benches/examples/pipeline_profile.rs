//! A fixed workload for instruction counting (`valgrind --tool=callgrind`, see
//! `benches/callgrind.sh`): 1 000 established UDP sessions, 2 000 bursts of 32 packets through
//! one shard. Each burst goes through [`measured`], kept out of line so callgrind counts the
//! shard's processing apart from writing the frames and creating the sessions first.
//!
//! With the argument `setup`, the slow path instead: 200 000 new UDP flows in bursts of 32
//! through a table of 100 000 sessions, so the second half reuses expired sessions, the steady
//! state of the `pipeline_setup` bench.

use appliance::pipeline::Disposition;
use appliance::pipeline::VecBuf;
use appliance_benches::workload::{buffers, Workload, BURST};

/// Sessions in the table of the `setup` workload.
const SETUP_TABLE: u32 = 100_000;

/// One burst through the shard: what callgrind counts.
#[inline(never)]
fn measured(w: &mut Workload, bufs: &mut [VecBuf], actions: &mut [Disposition]) {
    w.run(bufs, actions);
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("setup") {
        return new_flows();
    }
    let mut w = Workload::new(4096);
    w.fill(1000);
    let mut bufs = buffers();
    let mut actions = [Disposition::Consumed; BURST];
    let mut forwarded = 0u64;
    for _ in 0..2000 {
        w.established(&mut bufs, 1000);
        measured(&mut w, &mut bufs, &mut actions);
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
        measured(&mut w, &mut bufs, &mut actions);
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

//! What the criterion benches share: the clock they time with.
//!
//! A bench names its clock variable in a `CLOCK_VAR` constant at its root (`FLOW_BENCH_CLOCK`,
//! `PACKET_BENCH_CLOCK`); set to `cpu`, the bench times on the thread's on-CPU clock instead
//! of wall time. On a machine shared with other jobs that leaves out the time the bench sat
//! descheduled, though not the caches the other jobs evicted.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether to time on-CPU (`CLOCK_VAR=cpu`) rather than wall time. Read once per run.
pub fn cpu_clock() -> bool {
    static CPU: OnceLock<bool> = OnceLock::new();
    *CPU.get_or_init(|| std::env::var(super::CLOCK_VAR).is_ok_and(|v| v == "cpu"))
}

/// A timestamp on the selected clock.
pub fn stamp() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    if cpu_clock() {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    } else {
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

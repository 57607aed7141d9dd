//! The whole-data-path throughput harness (`appliance bench`): the real worker loop and
//! pipeline on `net_ring` ports made of rings we own, fed by a generator lcore.
//!
//! The generator writes 64-byte UDP frames of `flows` distinct flows from inside hosts to
//! outside servers into the inside port's rx rings (one per rx queue, flows spread over them
//! like RSS would), and frees what the workers send out of the outside port. First every flow
//! once, in order (session setup), then flows drawn at random (established traffic) until the
//! run ends. The control loop samples the counters at the phase change and at the end.

use crate::packet::build::{self, Link};
use crate::packet::{EthernetAddress, Vlans};
use dpdk_sys::{Burst, Mempool, Ring};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What the benchmark generates.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// Distinct flows (sessions).
    pub flows: u32,
}

/// Remote servers per inside endpoint.
const REMOTES: u32 = 1000;
/// The bench configuration's fixed addressing (see [`config_text`]).
pub const INSIDE_NET: &str = "10.64.0.1/10";
/// The bench's gateway MAC (a static neighbour).
const GATEWAY_MAC: &str = "02:00:00:00:00:01";

/// The configuration `appliance bench` runs: two ring ports, a pool address, a static
/// neighbour for the gateway, sessions for `flows`.
pub fn config_text(lcores: &str, workers: u16, flows: u32, huge_pages: bool) -> String {
    let sessions = (u64::from(flows) * 11 / 10).clamp(1024, 64 << 20);
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

/// Inside endpoint and remote of flow `f`.
fn flow(f: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let e = f / REMOTES;
    let inside = Ipv4Addr::from(0x0a40_0000 + 2 + e / 8); // 10.64.0.2 upwards
    let port = 20000 + (e % 8) as u16;
    let remote = Ipv4Addr::from(0xc633_6400 + 1 + f % REMOTES); // 198.51.100.1 upwards
    ((inside, port), (remote, 443))
}

fn frame(dst_mac: EthernetAddress, f: u32) -> [u8; 64] {
    let (src, dst) = flow(f);
    let link = Link {
        src: EthernetAddress([2, 0, 0, 0, 0, 0x10]),
        dst: dst_mac,
        vlans: Vlans::None,
    };
    let mut out = [0u8; 64];
    // 64 bytes hold the frame: this cannot fail.
    let _ = build::udp_datagram(&mut out, &link, src, dst, &[0x5a; 18]);
    out
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

/// The generator loop: runs until `stop`.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    spec: BenchSpec,
    lan_mac: EthernetAddress,
    pool: &Mempool<'_>,
    feed: &[&Ring<'_>],
    drain: &[&Ring<'_>],
    counters: &GenCounters,
    stop: &AtomicBool,
) {
    let flows = spec.flows.max(1);
    let frames: Vec<[u8; 64]> = (0..flows).map(|f| frame(lan_mac, f)).collect();
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
                    buf.copy_from_slice(&frames[f as usize]);
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

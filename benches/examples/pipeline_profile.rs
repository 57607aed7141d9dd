//! A fixed workload for instruction counting (`valgrind --tool=callgrind`): 1 000 established
//! UDP sessions, 2 000 bursts of 32 packets through one shard. Frames are restored from
//! pristine copies between bursts (a memcpy, visible apart in the profile).
//!
//! With the argument `setup`, the slow path instead: 200 000 new UDP flows in bursts of 32
//! through a table of 100 000 sessions, so the second half reuses expired sessions, the steady
//! state of the `pipeline_setup` bench.

use appliance::config::Config;
use appliance::packet::build::{self, Link};
use appliance::packet::{EthernetAddress, Vlans};
use appliance::pipeline::{
    Action, Env, Neighbours, PacketBuf, Shard, ShardConfig, ShardCounters, VecBuf,
};
use appliance::policy::Policy;
use std::net::Ipv4Addr;
use std::sync::Arc;

fn frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> [u8; 64] {
    let link = Link {
        src: EthernetAddress([2, 0, 0, 0, 0, 0x10]),
        dst: EthernetAddress([2, 0, 0, 0, 0, 0xa0]),
        vlans: Vlans::None,
    };
    let mut f = [0u8; 64];
    build::udp_datagram(&mut f, &link, src, dst, &[0x5a; 18]).unwrap();
    f
}

#[inline(never)]
fn process(
    shard: &mut Shard,
    env: &Env<'_>,
    now: u32,
    bufs: &mut [VecBuf],
    actions: &mut [Action],
) {
    shard.process(env, now, 0, bufs, actions);
}

fn main() {
    let setup = std::env::args().nth(1).as_deref() == Some("setup");
    let max_sessions = if setup { SETUP_TABLE } else { 4096 };
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
    let policy = Policy::compile(&Config::parse(&text, "p").unwrap(), 1).unwrap();
    let mut shard = Shard::new(
        ShardConfig::from_policy(&policy, 0, 1, 7).unwrap(),
        Arc::new(ShardCounters::new(1)),
    );
    let neighbours = Neighbours::with(
        1,
        [(
            (1, Ipv4Addr::new(192, 0, 2, 1)),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
        )],
    );
    let macs = [
        EthernetAddress([2, 0, 0, 0, 0, 0xa0]),
        EthernetAddress([2, 0, 0, 0, 0, 0xa1]),
    ];
    let env = Env {
        policy: &policy,
        neighbours: &neighbours,
        macs: &macs,
    };
    if setup {
        return new_flows(&mut shard, &env);
    }
    let pristine: Vec<[u8; 64]> = (0..1000u32)
        .map(|i| {
            frame(
                (Ipv4Addr::from(0x0a00_0002 + i / 8), 20000 + (i % 8) as u16),
                (Ipv4Addr::new(198, 51, 100, 1), 443),
            )
        })
        .collect();
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&[0; 64])).collect();
    let mut actions = [Action::Consumed; 32];
    // Create the sessions.
    for chunk in pristine.chunks(32) {
        for (b, f) in bufs.iter_mut().zip(chunk) {
            b.bytes_mut().copy_from_slice(f);
        }
        process(
            &mut shard,
            &env,
            1,
            &mut bufs[..chunk.len()],
            &mut actions[..chunk.len()],
        );
    }
    let mut forwarded = 0u64;
    for round in 0..2000usize {
        for (k, b) in bufs.iter_mut().enumerate() {
            b.bytes_mut()
                .copy_from_slice(&pristine[(round * 7 + k * 31) % pristine.len()]);
        }
        process(&mut shard, &env, 1, &mut bufs, &mut actions);
        forwarded += actions.iter().filter(|a| **a == Action::Forward(1)).count() as u64;
    }
    println!("{forwarded} packets forwarded");
}

/// Sessions in the table of the `setup` workload.
const SETUP_TABLE: u32 = 100_000;

/// The `setup` workload: every packet opens a new flow, from inside endpoint
/// `i % SETUP_TABLE / 1000` to remote `i % 1000` of round `i / SETUP_TABLE`; the table fills
/// in the first round, the clock then jumps past the UDP timeout and each new flow of the
/// second round reuses the oldest expired session.
fn new_flows(shard: &mut Shard, env: &Env<'_>) {
    let mut bufs: Vec<VecBuf> = (0..32).map(|_| VecBuf::new(&[0; 64])).collect();
    let mut actions = [Action::Consumed; 32];
    let mut forwarded = 0u64;
    let mut now = 1;
    for burst in 0..(2 * SETUP_TABLE / 32) {
        if burst * 32 == SETUP_TABLE {
            now += 301;
        }
        for (k, b) in bufs.iter_mut().enumerate() {
            let i = burst * 32 + k as u32;
            let e = i % SETUP_TABLE / 1000;
            let f = frame(
                (Ipv4Addr::from(0x0a00_0002 + e / 8), 20000 + (e % 8) as u16),
                (
                    Ipv4Addr::from(0xc633_6401 + i % 1000 + 1000 * (i / SETUP_TABLE)),
                    443,
                ),
            );
            b.bytes_mut().copy_from_slice(&f);
        }
        process(shard, env, now, &mut bufs, &mut actions);
        forwarded += actions.iter().filter(|a| **a == Action::Forward(1)).count() as u64;
    }
    println!(
        "{forwarded} new flows forwarded, {} sessions live",
        shard.table().len()
    );
}

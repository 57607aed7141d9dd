//! NAT at cloud scale, through the pipeline: one public address carries a million UDP
//! sessions with endpoint-dependent mapping, from 254 inside hosts to 254 remote hosts, all
//! translated both ways, each reply reaching its own inside endpoint, no two sessions on the
//! same (public endpoint, remote endpoint).

use appliance::packet::EthernetAddress;
use appliance::pipeline::{
    Disposition, Env, Health, Neighbours, PacketBuf, Shard, ShardConfig, ShardCounters, VecBuf,
};
use appliance::testing::{self, seen};
use std::net::Ipv4Addr;
use std::sync::Arc;

const FLOWS: u32 = 1_000_000;
const HOSTS: u32 = 254;
const SERVERS: u32 = 254;
const PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const LAN: u8 = 0;
const WAN: u8 = 1;
const BURST: usize = 32;

/// Flow `i`: inside host `10.0.1.(h+1)`, source port 1024 up, to server `198.51.100.(s+1)`
/// port 53. Even hosts all send their `k`-th flow to the same server from the same port (so
/// all but one of them need another public port); odd hosts spread over the servers (so the
/// inside port is kept).
fn flow(i: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let (h, k) = (i % HOSTS, i / HOSTS);
    let s = if h % 2 == 0 {
        k % SERVERS
    } else {
        (h + k) % SERVERS
    };
    let host = Ipv4Addr::new(10, 0, 1, h as u8 + 1);
    let server = Ipv4Addr::new(198, 51, 100, s as u8 + 1);
    ((host, 1024 + k as u16), (server, 53))
}

fn host_mac(h: Ipv4Addr) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 1, h.octets()[3]])
}

/// The shared topology's ports, the inside one on a /16 so that hosts 10.0.1.1-254 are
/// neighbours of a port address that is not one of them; endpoint-dependent mapping.
fn config() -> String {
    assert!(
        testing::PORTS.contains("10.0.1.1/24"),
        "the topology changed"
    );
    let ports = testing::PORTS.replace("10.0.1.1/24", "10.0.0.1/16");
    format!("{ports}\n[nat]\nmapping = \"endpoint-dependent\"\nmax_sessions = 1000000\n")
}

/// Sends `frames` into `port` in bursts: each frame as it leaves, which must be forwarded
/// out of `out`.
fn pass(
    shard: &mut Shard,
    env: &Env<'_>,
    port: u8,
    out: u8,
    frames: impl Iterator<Item = Vec<u8>>,
    mut each: impl FnMut(&[u8]),
) {
    let mut bufs: Vec<VecBuf> = Vec::with_capacity(BURST);
    let mut flush = |bufs: &mut Vec<VecBuf>| {
        let mut actions = vec![Disposition::Consumed; bufs.len()];
        shard.process(env, 1000, port, bufs, &mut actions);
        for (a, b) in actions.iter().zip(bufs.iter()) {
            assert_eq!(*a, Disposition::Forward(out), "{:02x?}", b.bytes());
            each(b.bytes());
        }
        bufs.clear();
    };
    for f in frames {
        bufs.push(VecBuf::new(&f));
        if bufs.len() == BURST {
            flush(&mut bufs);
        }
    }
    flush(&mut bufs);
}

#[test]
fn a_million_sessions_on_one_public_address() {
    let policy = testing::compile(&config(), 1);
    let mut config = ShardConfig::from_policy(&policy, 0, 1, 7).expect("slices");
    assert_eq!(config.capacity, FLOWS, "the table holds exactly the flows");
    config.seed = Some(appliance::flow::HashSeed::fixed(1, 2, 3));
    let counters = Arc::new(ShardCounters::new(1));
    let mut shard = Shard::new(config, counters.clone());
    let mut entries: Vec<((u8, Ipv4Addr), EthernetAddress)> = (1..=HOSTS as u8)
        .map(|h| {
            let host = Ipv4Addr::new(10, 0, 1, h);
            ((LAN, host), host_mac(host))
        })
        .collect();
    entries.push(((WAN, testing::GW), testing::MAC_GW));
    let neighbours = Neighbours::with(1, entries);
    let macs = [testing::MAC_LAN, testing::MAC_WAN];
    let env = Env {
        policy: &policy,
        neighbours: &neighbours,
        macs: &macs,
        health: Health::Serving,
    };

    // Out: every flow's first packet, in order; remember the public port each got.
    let mut public = Vec::with_capacity(FLOWS as usize);
    let mut used = vec![0u64; (SERVERS as usize) << 10]; // a bit per (server, public port)
    let egress = (0..FLOWS).map(|i| {
        let (inside, remote) = flow(i);
        testing::udp(inside, remote, (host_mac(inside.0), testing::MAC_LAN))
    });
    let mut i = 0;
    pass(&mut shard, &env, LAN, WAN, egress, |f| {
        let s = seen(f);
        let (_, remote) = flow(i);
        assert_eq!((s.src.0, s.dst), (PUBLIC, remote), "flow {i}");
        let bit = (usize::from(remote.0.octets()[3] - 1) << 16) | usize::from(s.src.1);
        assert_eq!(
            used[bit / 64] & (1 << (bit % 64)),
            0,
            "flow {i}: {:?} reused",
            s.src
        );
        used[bit / 64] |= 1 << (bit % 64);
        public.push(s.src.1);
        i += 1;
    });
    assert_eq!(shard.table().len(), FLOWS, "every flow has its session");
    assert_eq!(counters.nat_exhausted(), 0);
    let preserved = (0..FLOWS)
        .filter(|&i| public[i as usize] == flow(i).0 .1)
        .count();
    // Half the flows (odd hosts) could keep their port but for the random ports of the
    // even hosts' flows to the same server; one even host in 254 keeps its own.
    assert!(
        preserved > FLOWS as usize * 45 / 100,
        "the inside port is kept where it is free: {preserved}"
    );

    // Back: each flow's reply, to its public port, reaches its own inside endpoint.
    let replies = (0..FLOWS).map(|i| {
        let (_, remote) = flow(i);
        testing::udp(remote, (PUBLIC, public[i as usize]), testing::OUT)
    });
    let mut i = 0;
    pass(&mut shard, &env, WAN, LAN, replies, |f| {
        let s = seen(f);
        let (inside, remote) = flow(i);
        assert_eq!((s.src, s.dst), (remote, inside), "reply {i}");
        assert_eq!(s.dst_mac, host_mac(inside.0));
        i += 1;
    });
    assert_eq!(shard.table().len(), FLOWS);
    assert_eq!(shard.counters().forwarded(), 2 * u64::from(FLOWS));
}

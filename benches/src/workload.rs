//! The pipeline workload the `pipeline` criterion bench, the `pipeline_profile` example and the
//! `pipeline_rate` example share: one shard of a two-port appliance (inside `lan`, outside
//! `wan` with its gateway's MAC known), 64-byte UDP frames from inside endpoints to remote
//! servers, and the sessions they open.

use appliance::config::{Config, Mapping};
use appliance::dataplane::bench;
use appliance::flow::FlowKey;
use appliance::packet::build::{self, Link};
use appliance::packet::{EthernetAddress, IpProtocol, Vlans};
use appliance::pipeline::{
    Disposition, Env, Health, Neighbours, PacketBuf, Shard, ShardConfig, ShardCounters, VecBuf,
};
use appliance::policy::Policy;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Packets per burst, as a worker receives them.
pub const BURST: usize = 32;
/// Remote servers per inside endpoint: sessions = endpoints x REMOTES.
pub const REMOTES: u32 = 1000;

const MAC_LAN: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa0]);
const MAC_WAN: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa1]);
const MAC_GW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_HOST: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x10]);

/// The policy: the appliance `appliance bench` runs (inside `lan`, outside `wan` with its
/// gateway's MAC known, SNAT to `wan`'s address), with room for exactly `max_sessions`.
pub fn policy(max_sessions: u32) -> Policy {
    policy_mapping(max_sessions, Mapping::EndpointIndependent)
}

/// [`policy`] with the NAT's mapping behaviour `mapping`.
pub fn policy_mapping(max_sessions: u32, mapping: Mapping) -> Policy {
    let spec = bench::BenchSpec {
        max_sessions: Some(max_sessions),
        mapping,
        ..bench::BenchSpec::new(max_sessions)
    };
    let text = bench::config_text("0-1", 1, &spec, false);
    let mut policy =
        Policy::compile(&Config::parse(&text, "bench").expect("config"), 1).expect("policy");
    policy.sessions.max_sessions = max_sessions;
    policy
}

/// Inside endpoint `e` (address and source port) and remote `r` (in public space,
/// 198.51.100.1 upwards).
pub fn flow(e: u32, r: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let inside = Ipv4Addr::from(0x0a40_0000 + 2 + e / 8); // in bench::INSIDE_NET
    let port = 20000 + (e % 8) as u16;
    let remote = Ipv4Addr::from(0xc633_6400 + 1 + r);
    ((inside, port), (remote, 443))
}

/// The flow of session `s` when sessions are numbered endpoint-major: remote `s % REMOTES`
/// of endpoint `s / REMOTES`, plus `round` x `REMOTES` on the remote (a later round talks to
/// other remotes, so its flows are new).
pub fn session_flow(s: u32, round: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    flow(s / REMOTES, round * REMOTES + s % REMOTES)
}

/// Writes a 64-byte Ethernet/IPv4/UDP frame from `src` to `dst` arriving on `lan`, checksums
/// valid, into `out` (no allocation: the buffers are reused like mbufs).
pub fn frame(out: &mut VecBuf, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) {
    let link = Link {
        src: MAC_HOST,
        dst: MAC_LAN,
        vlans: Vlans::None,
    };
    out.set_len(64);
    build::udp_datagram(out.bytes_mut(), &link, src, dst, &[0x5a; 18])
        .expect("a 64-byte frame holds the datagram");
}

/// A burst's worth of 64-byte buffers.
pub fn buffers() -> Vec<VecBuf> {
    (0..BURST).map(|_| VecBuf::new(&[0; 64])).collect()
}

/// One shard with its policy, neighbours, clock and a random generator for traffic.
#[derive(Debug)]
pub struct Workload {
    /// The shard under test.
    pub shard: Shard,
    policy: Policy,
    neighbours: Neighbours,
    /// The clock passed to the shard (seconds).
    pub now: u32,
    rng: u64,
    /// The next new flow [`Workload::new_flows`] writes: session number and round.
    next_new: (u32, u32),
    /// Each inside endpoint's public endpoint, for [`Workload::replies`].
    public: Vec<(Ipv4Addr, u16)>,
}

impl Workload {
    /// A shard with room for `sessions` sessions (at least 64), hash seed fixed. The inside
    /// hosts of those sessions and the gateway are known neighbours.
    pub fn new(sessions: u32) -> Workload {
        Workload::with_mapping(sessions, Mapping::EndpointIndependent)
    }

    /// [`Workload::new`] with the NAT's mapping behaviour `mapping`.
    pub fn with_mapping(sessions: u32, mapping: Mapping) -> Workload {
        let policy = policy_mapping(sessions.max(64), mapping);
        let cfg = ShardConfig::from_policy(&policy, 0, 1, 7).expect("shard config");
        let shard = Shard::new(cfg, Arc::new(ShardCounters::new(1)));
        let hosts = (0..=sessions / REMOTES).map(|e| session_flow(e * REMOTES, 0).0 .0);
        let neighbours = Neighbours::with(
            1,
            hosts
                .map(|h| ((0, h), MAC_HOST))
                .chain([((1, Ipv4Addr::new(192, 0, 2, 1)), MAC_GW)]),
        );
        Workload {
            shard,
            policy,
            neighbours,
            now: 1,
            rng: 0x1234_5678_9abc_def1,
            next_new: (0, 0),
            public: Vec::new(),
        }
    }

    /// The next value of a xorshift generator.
    pub fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Processes `bufs` as a burst received on `lan`.
    pub fn run(&mut self, bufs: &mut [VecBuf], actions: &mut [Disposition]) {
        self.run_on(0, bufs, actions);
    }

    /// Processes `bufs` as a burst received on port `port` (0 `lan`, 1 `wan`).
    pub fn run_on(&mut self, port: u8, bufs: &mut [VecBuf], actions: &mut [Disposition]) {
        let macs = [MAC_LAN, MAC_WAN];
        let env = Env {
            policy: &self.policy,
            neighbours: &self.neighbours,
            macs: &macs,
            health: Health::Serving,
        };
        self.shard.process(&env, self.now, port, bufs, actions);
    }

    /// Creates sessions `0..sessions` through the slow path, a burst at a time.
    ///
    /// # Panics
    /// If not every session was created.
    pub fn fill(&mut self, sessions: u32) {
        let mut bufs = buffers();
        let mut actions = [Disposition::Consumed; BURST];
        let mut i = 0;
        while i < sessions {
            let n = (sessions - i).min(BURST as u32) as usize;
            for (k, b) in bufs[..n].iter_mut().enumerate() {
                let (src, dst) = session_flow(i + k as u32, 0);
                frame(b, src, dst);
            }
            self.run(&mut bufs[..n], &mut actions[..n]);
            i += n as u32;
        }
        assert_eq!(self.shard.table().len(), sessions, "every session created");
        self.next_new = (sessions, 0);
    }

    /// Writes a burst of new flows for a table of `capacity` sessions: sessions numbered on
    /// from the last ones created; past `capacity`, the clock jumps past the UDP timeout and a
    /// new round starts whose flows talk to other remotes, so every packet is a new flow and,
    /// once the table is full, each one reuses the oldest expired session (the steady state).
    pub fn new_flows(&mut self, bufs: &mut [VecBuf], capacity: u32) {
        for buf in bufs.iter_mut() {
            let (next, round) = &mut self.next_new;
            if *next >= capacity {
                *next = 0;
                *round += 1;
                self.now += 301;
            }
            let (src, dst) = session_flow(self.next_new.0, self.next_new.1);
            self.next_new.0 += 1;
            frame(buf, src, dst);
        }
    }

    /// Writes a burst of packets of sessions drawn at random among `0..sessions`.
    pub fn established(&mut self, bufs: &mut [VecBuf], sessions: u32) {
        for buf in bufs.iter_mut() {
            let s = (self.random() % u64::from(sessions)) as u32;
            let (src, dst) = session_flow(s, 0);
            frame(buf, src, dst);
        }
    }

    /// Writes a burst of replies (remote to the public endpoint, arriving on `wan`) to sessions
    /// drawn at random among `0..sessions`, which must exist.
    ///
    /// The mapping is endpoint-independent, so an inside endpoint has one public endpoint for
    /// all its remotes: those are read from the table once, and writing a reply touches none
    /// of the lines the shard will read for it.
    ///
    /// # Panics
    /// If an endpoint's first session does not exist.
    pub fn replies(&mut self, bufs: &mut [VecBuf], sessions: u32) {
        let endpoints = sessions.div_ceil(REMOTES) as usize;
        if self.public.len() < endpoints {
            self.public = (0..endpoints as u32)
                .map(|e| {
                    let (src, dst) = session_flow(e * REMOTES, 0);
                    let key = FlowKey::new(src.0, dst.0, src.1, dst.1, IpProtocol::UDP);
                    let table = self.shard.table();
                    let out = table
                        .lookup(&key)
                        .and_then(|h| table.get(h.index))
                        .map(|s| *s.outside())
                        .expect("the endpoint has sessions");
                    (out.dst_addr(), out.dst_port())
                })
                .collect();
        }
        let link = Link {
            src: MAC_GW,
            dst: MAC_WAN,
            vlans: Vlans::None,
        };
        for buf in bufs.iter_mut() {
            let s = (self.random() % u64::from(sessions)) as u32;
            let (_, remote) = session_flow(s, 0);
            buf.set_len(64);
            build::udp_datagram(
                buf.bytes_mut(),
                &link,
                remote,
                self.public[(s / REMOTES) as usize],
                &[0x5a; 18],
            )
            .expect("a 64-byte frame holds the datagram");
        }
    }

    /// Checks that a packet of session 1 is forwarded out of `wan`, translated.
    ///
    /// # Panics
    /// If it is not.
    pub fn check_forwarded(&mut self) {
        let mut bufs = buffers();
        let mut actions = [Disposition::Consumed; BURST];
        for buf in &mut bufs {
            let (src, dst) = session_flow(1, 0);
            frame(buf, src, dst);
        }
        self.run(&mut bufs, &mut actions);
        assert!(
            actions.iter().all(|a| *a == Disposition::Forward(1)),
            "{actions:?}"
        );
        assert!(bufs[0].bytes()[26..30] == [192, 0, 2, 2], "translated");
    }
}

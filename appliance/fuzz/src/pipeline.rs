//! The whole-pipeline harness: the fuzzer's bytes are a small program of bursts, clock steps,
//! expiry ticks and policy reloads, run against one shard (or two, handoffs followed) with a
//! fixed two-arm policy, with the invariants checked after every burst and at the end.
//!
//! # Input format
//!
//! Every byte string is a valid program (reads past the end give zeros; the program ends
//! with the input).
//!
//! - byte 0, the setup: bits 0-1 filtering (0 and 3 address-and-port-dependent, 1
//!   address-dependent, 2 endpoint-independent), bit 2 tiny limits (SNAT ports 8070-8090,
//!   64 sessions; else 1024-5119 and 4096), bit 3 two workers, bit 4 `tcp_loose`, bit 5
//!   endpoint-dependent mapping (ports shared between remote endpoints; a reload flips the
//!   mapping either way), bit 6 a second pool address (192.0.2.3) and arbitrary pooling,
//!   bit 7 tunnel mode ([`crate::tunnel`]: one `gwlb` port, GENEVE, or VXLAN if bit 0 is
//!   set; bits 2, 3 and 4 as above; every frame in the load balancer's tunnel, as one more
//!   byte says).
//! - then operations, `op % 8`: 0-3 a burst, 4 a clock step, 5 an expiry tick, 6 a policy
//!   reload (to the other of two policies, next generation), 7 a clock step and a worker's
//!   expiry tick (budget 64).
//!   - burst: one byte `port | worker << 1 | (count - 1) << 2` (the worker that receives
//!     it, modulo the number of workers; up to 40 frames, more than one chunk of 32), then
//!     `count` frames.
//!   - clock step: a selector byte, below 240 one of [`STEPS`] seconds, else a big-endian
//!     u16 of seconds follows.
//!   - expiry: a budget byte, 0 unlimited, else `b % 16`.
//! - a frame: an [`l2`] byte, a kind byte (`% 12`, [`kind`]) and its fields, then a mutation
//!   byte: bit 7 set mutates the built frame at the big-endian u16 offset and with the byte
//!   that follow: mode `(m >> 5) & 3` 0 xor, 1 xor then fix the checksums, 2 truncate, 3 set
//!   then fix the checksums.
//!
//! Addresses and ports are mostly picked from small tables ([`ADDRS`], [`PORTS`]; index 15
//! reads a raw value) so that flows meet: replies and ICMP errors can also be built from a
//! frame the pipeline sent earlier ([`kind::REPLY`], [`kind::ERROR_ABOUT`]).
//!
//! # Invariants (a panic is a bug)
//!
//! After every burst: no panic; every `Forward(p)` names a port that exists, leaves from that
//! port's MAC and re-parses; a forwarded IPv4 frame made from a frame whose checksums all
//! verified has every checksum right, recomputed in full ([`wire::verify`]: IPv4 header,
//! TCP, UDP, ICMP, and the quoted header of an ICMP error), and its IPv4 header checksum is
//! right whatever came in; a frame sent out of the outside port carries no inside
//! (10.0.1.0/24) address as its source, in an ICMP error's quote, or as an ARP sender; a
//! handed-off packet is not handed off again; sessions never exceed a shard's capacity;
//! SNAT ports in use and endpoint-independent mappings never outnumber sessions (in tunnel
//! mode there are none, and what leaves is what a load balancer's target sends back,
//! [`crate::tunnel::check`]). At the end,
//! after the clock passes every timeout and expiry runs: every table is empty and no port
//! or mapping is left.

use crate::tunnel::{self, Encap};
use crate::wire::{self, Ip, L2};
use appliance::config::Config;
use appliance::flow::HashSeed;
use appliance::packet::{parse_frame, ChecksumCaps, EthernetAddress};
use appliance::pipeline::{
    Disposition, Env, Health, Neighbours, Note, PacketBuf, Shard, ShardConfig, ShardCounters, VecBuf,
};
use appliance::policy::Policy;
use appliance::testing;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

pub use appliance::testing::{LAN, WAN};

const MAC_LAN: [u8; 6] = testing::MAC_LAN.0;
const MAC_WAN: [u8; 6] = testing::MAC_WAN.0;
const MAC_GW: [u8; 6] = testing::MAC_GW.0;
/// C1, C2 and C3 of the shared topology (in its neighbour table), and C4 (not in it).
const MAC_HOSTS: [[u8; 6]; 4] = [
    testing::MAC_C1.0,
    testing::MAC_C2.0,
    testing::MAC_C3.0,
    [0x02, 0, 0, 0, 0, 0x13],
];

/// Addresses frames are built from (index 15 of a selector reads a raw one).
pub const ADDRS: [Ipv4Addr; 15] = [
    testing::C1,                       // 0
    testing::C2,                       // 1 the port forward's target
    testing::C3,                       // 2 the static mapping's
    Ipv4Addr::new(10, 0, 1, 13),       // 3 c4, no neighbour entry
    testing::LAN_IP,                   // 4 the inside port
    testing::PUBLIC,                   // 5 the outside port, the SNAT pool
    testing::STATIC_PUBLIC,            // 6 the static mapping's public address
    testing::GW,                       // 7 the gateway
    testing::SERVER,                   // 8 a server
    testing::OTHER,                    // 9 another
    Ipv4Addr::new(192, 0, 2, 77),      // 10 on the outside link, unresolved
    Ipv4Addr::new(127, 0, 0, 1),       // 11
    Ipv4Addr::new(224, 0, 0, 1),       // 12
    Ipv4Addr::new(255, 255, 255, 255), // 13
    Ipv4Addr::new(198, 51, 100, 11),   // 14 a server's neighbour
];

/// Address selector values, for seeds.
pub mod a {
    pub const C1: u8 = 0;
    pub const C2: u8 = 1;
    pub const C3: u8 = 2;
    pub const C4: u8 = 3;
    pub const LAN_IP: u8 = 4;
    pub const PUBLIC: u8 = 5;
    pub const STATIC: u8 = 6;
    pub const GW: u8 = 7;
    pub const SERVER: u8 = 8;
    pub const OTHER: u8 = 9;
}

/// Ports frames are built from (index 15 of a selector reads a raw one).
pub const PORTS: [u16; 15] = [
    53, 80, 443, 25, 1024, 5000, 8070, 2000, 8080, 8081, 8090, 9999, 40000, 65535, 0,
];

/// Port selector values, for seeds.
pub mod p {
    pub const DNS: u8 = 0;
    pub const HTTP: u8 = 1;
    pub const HTTPS: u8 = 2;
    pub const SMTP: u8 = 3;
    pub const P5000: u8 = 5;
    pub const FORWARD: u8 = 8;
    pub const PROBE: u8 = 11;
    pub const P40000: u8 = 12;
}

/// Clock steps in seconds: around every default timeout (ICMP 60, UDP 300, TCP transitory
/// 240, established 7440).
pub const STEPS: [u32; 16] = [
    0, 1, 2, 5, 30, 59, 60, 61, 119, 121, 239, 241, 299, 301, 7439, 7441,
];

/// Frame kinds (`kind % 12`).
pub mod kind {
    /// ip, sport, dport, flags, opt (bit 0 MSS option, bits 1-3 payload length / 8).
    pub const TCP: u8 = 0;
    /// ip, sport, dport, opt (bit 0 checksum 0, bits 1-6 payload length).
    pub const UDP: u8 = 1;
    /// ip, opt (bit 0 request, else reply), identifier (a port selector).
    pub const ECHO: u8 = 2;
    /// ip, type, code: an ICMP message that is neither echo nor error.
    pub const ICMP_OTHER: u8 = 3;
    /// ip, error selector, quoted proto (`% 4`: TCP, UDP, echo, GRE), quoted src, dst,
    /// sport, dport, opt (bit 0 whole quote, bit 1 options in the quoted header).
    pub const ICMP_ERROR: u8 = 4;
    /// opt (bit 0 reply, bit 1 multicast sender MAC), sender address, target address.
    pub const ARP: u8 = 5;
    /// nth (a frame the pipeline sent, counting back), TCP flags: that frame's reply.
    pub const REPLY: u8 = 6;
    /// nth, error selector, opt (bit 0 from the router, else from the frame's destination;
    /// bit 1 whole quote): an ICMP error about a frame the pipeline sent.
    pub const ERROR_ABOUT: u8 = 8;
    /// ip, protocol number.
    pub const OTHER_PROTO: u8 = 10;
    /// length, bytes: IPv4-looking garbage after the Ethernet header.
    pub const RAW: u8 = 11;
}

/// ICMP errors (`sel % 8`): type, code.
const ERRORS: [(u8, u8); 8] = [
    (3, 3),
    (3, 1),
    (3, 4),
    (11, 0),
    (12, 0),
    (3, 13),
    (4, 0),
    (5, 1),
];

const TTLS: [u8; 8] = [64, 1, 2, 0, 255, 64, 128, 3];

const INSIDE: (u32, u32) = (0x0a00_0100, 0xffff_ff00);

fn inside(a: Ipv4Addr) -> bool {
    u32::from(a) & INSIDE.1 == INSIDE.0
}

/// Setup bits.
pub mod setup {
    /// Filtering, 2 bits.
    pub const FILTERING: u8 = 0b11;
    /// Tiny limits: SNAT ports 8070-8090 (the forward's 8080 among them), 64 sessions.
    pub const TINY: u8 = 0b100;
    /// Two workers.
    pub const TWO_WORKERS: u8 = 0b1000;
    /// `tcp_loose = true`.
    pub const LOOSE: u8 = 0b1_0000;
    /// Endpoint-dependent mapping (the reloaded policy has the other).
    pub const DEPENDENT: u8 = 0b10_0000;
    /// Two pool addresses, arbitrary pooling.
    pub const TWO_ADDRESSES: u8 = 0b100_0000;
    /// Every setup bit of the two-arm mode.
    pub const ALL: u8 = 0b111_1111;
    /// Tunnel mode: one `gwlb` port (GENEVE; VXLAN with bit 0).
    pub const TUNNEL: u8 = 0b1000_0000;
}

/// The tunnel mode's policies, compiled once: `[vxlan | tiny << 1 | loose << 2][alt]`.
fn tunnel_policies() -> &'static [[Policy; 2]] {
    static P: OnceLock<Vec<[Policy; 2]>> = OnceLock::new();
    P.get_or_init(|| {
        (0..8u8)
            .map(|i| {
                let encap = if i & 1 != 0 {
                    Encap::Vxlan
                } else {
                    Encap::Geneve
                };
                [false, true].map(|alt| {
                    let text = tunnel::config_text(encap, i & 2 != 0, i & 4 != 0, alt);
                    let config = Config::parse(&text, "fuzz.toml").expect("harness config");
                    Policy::compile(&config, 1).expect("harness policy")
                })
            })
            .collect()
    })
}

fn config_text(s: u8, alt: bool) -> String {
    let filtering = match s & setup::FILTERING {
        1 => "address-dependent",
        2 => "endpoint-independent",
        _ => "address-and-port-dependent",
    };
    // Not tiny: a range of 4096 ports (1024, 2000 and 5000 are kept, 40000 is not). The
    // default 1024-65535 would spend most of each run building its free lists.
    let (range, max) = if s & setup::TINY != 0 {
        ("8070-8090", 64)
    } else {
        ("1024-5119", 4096)
    };
    let loose = s & setup::LOOSE != 0;
    // The reloaded policy has the other mapping: sessions and mappings of one live on under
    // the other.
    let mapping = if (s & setup::DEPENDENT != 0) != alt {
        "endpoint-dependent"
    } else {
        "endpoint-independent"
    };
    let (addresses, pooling) = if s & setup::TWO_ADDRESSES != 0 {
        (r#""192.0.2.2", "192.0.2.3""#, "arbitrary")
    } else {
        (r#""192.0.2.2""#, "paired")
    };
    // The other policy of a reload: the forward moves to 8081, UDP to the servers' network
    // is denied (sessions admitted before are re-checked), and the health probe speaks HTTP
    // (the harness drains while this policy is in force: 503s and refused handshakes).
    let (forward, extra, probe) = if alt {
        (
            8081,
            "[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst = [\"198.51.100.0/24\"]\n",
            "protocol = \"http\"\npath = \"/healthz\"",
        )
    } else {
        (8080, "", "protocol = \"tcp\"")
    };
    let ports = testing::PORTS;
    format!(
        r#"{ports}
[nat]
addresses = [{addresses}]
pooling = "{pooling}"
mapping = "{mapping}"
filtering = "{filtering}"
port_range = "{range}"
max_sessions = {max}
tcp_loose = {loose}
hairpinning = true

[[egress.rule]]
action = "deny"
proto = "tcp"
dst_ports = [25]
comment = "no SMTP"
{extra}
[[ingress.forward]]
proto = "tcp"
public = "192.0.2.2"
public_port = {forward}
private = "10.0.1.11"
private_port = 80

[[ingress.static]]
public = "192.0.2.40"
private = "10.0.1.12"

[[ingress.rule]]
action = "allow"
proto = "tcp"
dst_ports = [{forward}]

[[ingress.rule]]
action = "allow"
dst = ["192.0.2.40"]

[local]
icmp_echo = true

[local.health_probe]
port = 9999
{probe}
sources = ["198.51.100.0/24"]
"#
    )
}

/// Every policy the harness uses, compiled once: `[setup & setup::ALL][alt]`.
fn policies() -> &'static [[Policy; 2]] {
    static P: OnceLock<Vec<[Policy; 2]>> = OnceLock::new();
    P.get_or_init(|| {
        (0..=setup::ALL)
            .map(|s| {
                [false, true].map(|alt| {
                    let text = config_text(s, alt);
                    let config = Config::parse(&text, "fuzz.toml").expect("harness config");
                    Policy::compile(&config, 1).expect("harness policy")
                })
            })
            .collect()
    })
}

/// Reads the program; zeros past the end.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn addr(&mut self) -> Ipv4Addr {
        match usize::from(self.u8() & 0x0f) {
            15 => Ipv4Addr::from(self.u32()),
            i => ADDRS[i],
        }
    }

    fn port(&mut self) -> u16 {
        match usize::from(self.u8() & 0x0f) {
            15 => self.u16(),
            i => PORTS[i],
        }
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"fuzz-payload"[i % 12]).collect()
}

/// A frame the pipeline sent: the port and the bytes.
struct Sent {
    port: u8,
    frame: Vec<u8>,
}

struct World {
    setup: u8,
    tunnel: Option<Encap>,
    alt: bool,
    policy: Policy,
    neighbours: Neighbours,
    shards: Vec<Shard>,
    now: u32,
    sent: Vec<Sent>,
    sent_next: usize,
}

const SENT_KEPT: usize = 16;

impl World {
    fn new(setup: u8) -> World {
        let tunnel = (setup & setup::TUNNEL != 0).then_some(if setup & 1 != 0 {
            Encap::Vxlan
        } else {
            Encap::Geneve
        });
        let s = setup & setup::ALL;
        let mut policy = Self::policy(s, tunnel, false);
        policy.generation = 1;
        let workers = if s & setup::TWO_WORKERS != 0 { 2 } else { 1 };
        let shards = (0..workers)
            .map(|w| {
                let mut c = ShardConfig::from_policy(&policy, w, workers, 42).expect("slices");
                c.seed = Some(HashSeed::fixed(1, 2, 3));
                Shard::new(c, Arc::new(ShardCounters::default()))
            })
            .collect();
        World {
            setup: s,
            tunnel,
            alt: false,
            policy,
            neighbours: testing::neighbours(),
            shards,
            now: 1000,
            sent: Vec::new(),
            sent_next: 0,
        }
    }

    /// The policy of setup `s` (tunnel mode: `tunnel`), or the other one of a reload.
    fn policy(s: u8, tunnel: Option<Encap>, alt: bool) -> Policy {
        match tunnel {
            None => policies()[usize::from(s)][usize::from(alt)].clone(),
            Some(e) => {
                let i = u8::from(e == Encap::Vxlan)
                    | u8::from(s & setup::TINY != 0) << 1
                    | u8::from(s & setup::LOOSE != 0) << 2;
                tunnel_policies()[usize::from(i)][usize::from(alt)].clone()
            }
        }
    }

    fn reload(&mut self) {
        self.alt = !self.alt;
        let generation = self.policy.generation + 1;
        self.policy = Self::policy(self.setup, self.tunnel, self.alt);
        self.policy.generation = generation;
    }

    /// The port a burst is received on: its port bit, or in tunnel mode the `gwlb` port
    /// (the bit then picks Azure's tunnel).
    fn rx_port(&self, bit: u8) -> u8 {
        if self.tunnel.is_some() {
            0
        } else {
            bit
        }
    }

    fn step(&mut self, r: &mut Reader<'_>) {
        let sel = r.u8();
        let d = if sel < 240 {
            STEPS[usize::from(sel % 16)]
        } else {
            u32::from(r.u16())
        };
        self.now += d;
    }

    fn expire(&mut self, budget: u32) {
        for s in &mut self.shards {
            s.expire(self.now, budget);
        }
    }

    fn l2(&self, r: &mut Reader<'_>, port: u8) -> L2 {
        let b = r.u8();
        let ours = if port == LAN { MAC_LAN } else { MAC_WAN };
        let dst = match b & 7 {
            5 => [0xff; 6],
            6 => [0x02, 0x99, 0x99, 0x99, 0x99, 0x99],
            7 => [0x01, 0, 0x5e, 0, 0, 1],
            _ => ours,
        };
        let src = if port == LAN {
            MAC_HOSTS[usize::from((b >> 4) & 3)]
        } else {
            MAC_GW
        };
        L2 {
            dst,
            src,
            vlan: (b & 8 != 0).then_some(100),
        }
    }

    fn ip(r: &mut Reader<'_>, proto: u8) -> Ip {
        let src = r.addr();
        let dst = r.addr();
        let f = r.u8();
        Ip {
            src,
            dst,
            proto,
            ttl: TTLS[usize::from(f & 7)],
            ident: 0x4242,
            dont_frag: f & 8 != 0,
            more_frags: (f >> 5) & 3 == 1,
            frag_offset: if (f >> 5) & 3 == 2 { 185 } else { 0 },
            options: f & 0x10 != 0,
        }
    }

    /// The nth frame sent, counting back from the last.
    fn sent(&self, nth: u8) -> Option<(&Sent, wire::Ipv4Info)> {
        if self.sent.is_empty() {
            return None;
        }
        let n = self.sent.len();
        let i = (self.sent_next + n - 1 - usize::from(nth) % n) % n;
        let s = &self.sent[i];
        let info = wire::verify(&s.frame).ok().flatten()?;
        Some((s, info))
    }

    fn frame(&self, r: &mut Reader<'_>, port: u8) -> Vec<u8> {
        let l2 = self.l2(r, port);
        let mut f = match r.u8() % 12 {
            kind::TCP => {
                let ip = Self::ip(r, 6);
                let (sport, dport, flags, opt) = (r.port(), r.port(), r.u8(), r.u8());
                let ack = if flags & 0x10 != 0 { 5000 } else { 0 };
                let mss = (opt & 1 != 0).then_some(1460);
                let data = payload(usize::from((opt >> 1) & 7) * 8);
                let l4 = wire::tcp(ip.src, ip.dst, sport, dport, 1000, ack, flags, mss, &data);
                wire::ipv4_frame(&l2, &ip.packet(&l4))
            }
            kind::UDP => {
                let ip = Self::ip(r, 17);
                let (sport, dport, opt) = (r.port(), r.port(), r.u8());
                let data = payload(usize::from((opt >> 1) & 0x3f));
                let l4 = wire::udp(ip.src, ip.dst, sport, dport, &data, opt & 1 != 0);
                wire::ipv4_frame(&l2, &ip.packet(&l4))
            }
            kind::ECHO => {
                let ip = Self::ip(r, 1);
                let (opt, id) = (r.u8(), r.port());
                let ty = if opt & 1 != 0 { 8 } else { 0 };
                let mut rest = [0u8; 4];
                rest[..2].copy_from_slice(&id.to_be_bytes());
                rest[3] = opt >> 1;
                let l4 = wire::icmp(ty, 0, rest, &payload(usize::from(opt >> 3)));
                wire::ipv4_frame(&l2, &ip.packet(&l4))
            }
            kind::ICMP_OTHER => {
                let ip = Self::ip(r, 1);
                let (ty, code) = (r.u8(), r.u8());
                let l4 = wire::icmp(ty, code, [0, 1, 0, 2], &payload(12));
                wire::ipv4_frame(&l2, &ip.packet(&l4))
            }
            kind::ICMP_ERROR => {
                let ip = Self::ip(r, 1);
                let err = ERRORS[usize::from(r.u8() % 8)];
                let proto = r.u8() % 4;
                let (qsrc, qdst, qsport, qdport, opt) =
                    (r.addr(), r.addr(), r.port(), r.port(), r.u8());
                let mut q = Ip::new(qsrc, qdst, [6, 17, 1, 47][usize::from(proto)], 63);
                q.options = opt & 2 != 0;
                let l4 = match proto {
                    0 => wire::tcp(qsrc, qdst, qsport, qdport, 1, 0, 0x02, None, &[]),
                    1 => wire::udp(qsrc, qdst, qsport, qdport, &payload(20), false),
                    2 => {
                        let mut rest = [0u8; 4];
                        rest[..2].copy_from_slice(&qsport.to_be_bytes());
                        wire::icmp(8, 0, rest, &payload(16))
                    }
                    _ => payload(16),
                };
                let quoted = q.packet(&l4);
                wire::ipv4_frame(&l2, &ip.packet(&error(err, &quoted, opt & 1 != 0)))
            }
            kind::ARP => {
                let opt = r.u8();
                let (spa, tpa) = (r.addr(), r.addr());
                let sha = if opt & 2 != 0 {
                    [0x01, 0, 0x5e, 0, 0, 9]
                } else {
                    l2.src
                };
                let (op, tha) = if opt & 1 != 0 {
                    (2, MAC_LAN)
                } else {
                    (1, [0; 6])
                };
                wire::arp(&l2, op, sha, spa, tha, tpa)
            }
            kind::REPLY | 7 => {
                let (nth, flags) = (r.u8(), r.u8());
                match self.sent(nth) {
                    Some((_, i)) => reply(&l2, &i, flags),
                    None => Vec::new(),
                }
            }
            kind::ERROR_ABOUT | 9 => {
                let (nth, err, opt) = (r.u8(), ERRORS[usize::from(r.u8() % 8)], r.u8());
                match self.sent(nth) {
                    Some((s, i)) => {
                        let router = if s.port == WAN {
                            Ipv4Addr::new(198, 51, 100, 1)
                        } else {
                            Ipv4Addr::new(10, 0, 1, 254)
                        };
                        let from = if opt & 1 != 0 { router } else { i.dst };
                        let l3 = wire::layout(&s.frame).map_or(14, |l| l.l3);
                        let quoted = &s.frame[l3..i.end];
                        let msg = error(err, quoted, opt & 2 != 0);
                        wire::ipv4_frame(&l2, &Ip::new(from, i.src, 1, 64).packet(&msg))
                    }
                    None => Vec::new(),
                }
            }
            kind::OTHER_PROTO => {
                let ip = Self::ip(r, 0);
                let proto = r.u8();
                let ip = Ip { proto, ..ip };
                wire::ipv4_frame(&l2, &ip.packet(&payload(24)))
            }
            _ => {
                let len = usize::from(r.u8());
                let mut f = Vec::with_capacity(18 + len);
                f.extend_from_slice(&l2.dst);
                f.extend_from_slice(&l2.src);
                f.extend_from_slice(&[0x08, 0x00]);
                for _ in 0..len {
                    f.push(r.u8());
                }
                f
            }
        };
        let m = r.u8();
        if m & 0x80 != 0 {
            let (at, v) = (usize::from(r.u16()), r.u8());
            if !f.is_empty() {
                let at = at % f.len();
                match (m >> 5) & 3 {
                    0 => f[at] ^= v | 1,
                    1 => {
                        f[at] ^= v | 1;
                        wire::fix_checksums(&mut f);
                    }
                    2 => f.truncate(at),
                    _ => {
                        f[at] = v;
                        wire::fix_checksums(&mut f);
                    }
                }
            }
        }
        match self.tunnel {
            Some(e) => {
                let t = r.u8();
                tunnel::encapsulate(e, f, port, t, || r.u8())
            }
            None => f,
        }
    }

    /// Runs one burst received on `port` by worker `start`, follows handoffs, checks every
    /// result.
    fn burst(&mut self, start: usize, port: u8, frames: &[Vec<u8>]) {
        let workers = self.shards.len();
        let start = start % workers;
        let macs = [EthernetAddress(MAC_LAN), EthernetAddress(MAC_WAN)];
        let valid: Vec<bool> = frames.iter().map(|f| wire::verify(f).is_ok()).collect();
        let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
        let mut out = vec![Disposition::Consumed; bufs.len()];
        {
            let env = Env {
                policy: &self.policy,
                neighbours: &self.neighbours,
                macs: &macs,
                health: if self.alt {
                    Health::Draining
                } else {
                    Health::Serving
                },
            };
            self.shards[start].process(&env, self.now, port, &mut bufs, &mut out);
            for w in 0..workers {
                let idx: Vec<usize> = (0..out.len())
                    .filter(|&i| out[i] == Disposition::Handoff(w as u16))
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                assert_ne!(w, start, "a worker handed a packet to itself");
                let mut hb: Vec<VecBuf> = idx.iter().map(|&i| bufs[i].clone()).collect();
                let mut ho = vec![Disposition::Consumed; hb.len()];
                self.shards[w].process(&env, self.now, port, &mut hb, &mut ho);
                for (k, &i) in idx.iter().enumerate() {
                    assert!(
                        !matches!(ho[k], Disposition::Handoff(_)),
                        "handed off twice ({start} -> {w} -> {:?}): the owner function \
                         disagrees between workers\n{}",
                        ho[k],
                        hex(&frames[i])
                    );
                    bufs[i] = hb[k].clone();
                    out[i] = ho[k];
                }
            }
        }
        for i in 0..frames.len() {
            self.check(port, &frames[i], valid[i], bufs[i].bytes(), out[i]);
        }
        for s in &self.shards {
            let t = s.table();
            assert!(t.len() <= t.capacity(), "{} sessions > capacity", t.len());
            let ports: usize = s.snat().ports_in_use().map(|x| x.2).sum();
            assert!(
                self.tunnel.is_none() || ports + s.snat().mappings() == 0,
                "a tunnel port translated: {ports} SNAT ports, {} mappings",
                s.snat().mappings()
            );
            assert!(
                ports <= t.len() as usize && s.snat().mappings() <= t.len() as usize,
                "{ports} SNAT ports and {} mappings for {} sessions",
                s.snat().mappings(),
                t.len()
            );
        }
        // What the control thread does with the workers' notes: learned neighbours join the
        // published table.
        let mut learned = Vec::new();
        for s in &mut self.shards {
            s.take_notes(|n| {
                if let Note::Learned { port, ip, mac } = n {
                    learned.push(((port, ip), mac));
                }
            });
        }
        learned.retain(|(k, mac)| self.neighbours.get(k.0, k.1) != Some(*mac));
        if !learned.is_empty() {
            let mut entries: Vec<_> = self.neighbours.iter().collect();
            entries.retain(|(k, _)| !learned.iter().any(|(l, _)| l == k));
            entries.extend(learned);
            self.neighbours = Neighbours::with(self.neighbours.generation() + 1, entries);
        }
    }

    fn check(&mut self, in_port: u8, input: &[u8], valid_in: bool, f: &[u8], action: Disposition) {
        if trace() {
            eprintln!(
                "t={} in on {in_port}:\n{}\n-> {action:?}\n{}\n",
                self.now,
                hex(input),
                hex(f)
            );
        }
        let p = match action {
            Disposition::Forward(p) => p,
            Disposition::Handoff(w) => panic!("handoff to worker {w} left over"),
            Disposition::Drop(_) | Disposition::Consumed => return,
        };
        let why = || {
            format!(
                "in on port {in_port}:\n{}\nout on port {p}:\n{}",
                hex(input),
                hex(f)
            )
        };
        assert!(usize::from(p) < self.policy.ports.len(), "no port {p}");
        if let Some(e) = self.tunnel {
            let inner = tunnel::check(e, input, f, &why);
            match wire::verify(f) {
                Err(what) if valid_in || what == "IPv4 header checksum" => {
                    panic!("{what} wrong: {}", why())
                }
                _ => {}
            }
            if let Some(frame) = inner {
                self.remember(0, frame);
            }
            return;
        }
        let mac = if p == LAN { MAC_LAN } else { MAC_WAN };
        assert!(
            f.len() >= 14 && f[6..12] == mac,
            "not from our MAC: {}",
            why()
        );
        let parsed = parse_frame(f, &ChecksumCaps::NONE);
        assert!(parsed.is_ok(), "does not re-parse: {parsed:?}\n{}", why());
        let info = match wire::verify(f) {
            Ok(info) => info,
            Err(what) if valid_in || what == "IPv4 header checksum" => {
                panic!("{what} wrong: {}", why())
            }
            Err(_) => None,
        };
        if let Some(info) = info {
            assert!(info.ttl > 0, "TTL 0 sent: {}", why());
            if p == WAN {
                assert!(!inside(info.src), "inside source sent outside: {}", why());
                if let Some((qs, qd)) = info.quoted {
                    assert!(
                        !inside(qs) && !inside(qd),
                        "inside address quoted in an ICMP error sent outside: {}",
                        why()
                    );
                }
            }
            self.remember(p, f.to_vec());
        } else if p == WAN {
            if let Some(l) = wire::layout(f).filter(|l| l.ethertype == 0x0806) {
                if let Some(spa) = f.get(l.l3 + 14..l.l3 + 18) {
                    let spa = Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]);
                    assert!(!inside(spa), "inside ARP sender sent outside: {}", why());
                }
            }
        }
    }

    /// Keeps a frame sent out of `port` for the replies and errors built from it.
    fn remember(&mut self, port: u8, frame: Vec<u8>) {
        let s = Sent { port, frame };
        if self.sent.len() < SENT_KEPT {
            self.sent.push(s);
        } else {
            self.sent[self.sent_next] = s;
        }
        self.sent_next = (self.sent_next + 1) % SENT_KEPT;
    }

    /// Past every timeout, expiry leaves nothing: no session, no port, no mapping.
    fn finish(&mut self) {
        self.now += 1_000_000;
        for (w, s) in self.shards.iter_mut().enumerate() {
            for _ in 0..4 {
                if s.expire(self.now, u32::MAX) == 0 {
                    break;
                }
            }
            assert_eq!(s.table().len(), 0, "worker {w}: sessions left after expiry");
            let ports: Vec<_> = s.snat().ports_in_use().filter(|x| x.2 != 0).collect();
            assert!(ports.is_empty(), "worker {w}: SNAT ports leaked: {ports:?}");
            assert_eq!(s.snat().mappings(), 0, "worker {w}: mappings leaked");
        }
    }
}

/// An ICMP error quoting `quoted` (its header and 8 bytes, or all of it up to 520 bytes).
fn error((ty, code): (u8, u8), quoted: &[u8], whole: bool) -> Vec<u8> {
    let hl = quoted.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
    let n = if whole { 520 } else { hl + 8 };
    let rest = if (ty, code) == (3, 4) {
        [0, 0, 0x05, 0x78]
    } else {
        [0; 4]
    };
    wire::icmp(ty, code, rest, &quoted[..n.min(quoted.len())])
}

/// The reply to a frame the pipeline sent, as its destination would send it.
fn reply(l2: &L2, i: &wire::Ipv4Info, flags: u8) -> Vec<u8> {
    let ip = Ip::new(i.dst, i.src, i.proto, 64);
    let l4 = match i.proto {
        6 => wire::tcp(i.dst, i.src, i.dport, i.sport, 5000, 1001, flags, None, &[]),
        17 => wire::udp(i.dst, i.src, i.dport, i.sport, &payload(8), false),
        1 if i.kind == 8 || i.kind == 0 => {
            let mut rest = [0u8; 4];
            rest[..2].copy_from_slice(&i.sport.to_be_bytes());
            wire::icmp(if i.kind == 8 { 0 } else { 8 }, 0, rest, &payload(8))
        }
        _ => payload(8),
    };
    wire::ipv4_frame(l2, &ip.packet(&l4))
}

/// `PIPELINE_TRACE=1`: print every frame, its action and what left (to read a reproducer:
/// `PIPELINE_TRACE=1 target/.../pipeline artifacts/pipeline/crash-...`).
fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("PIPELINE_TRACE").is_some())
}

fn hex(f: &[u8]) -> String {
    f.chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs one program (see the module documentation).
pub fn run(data: &[u8]) {
    let mut r = Reader { data, at: 0 };
    let mut world = World::new(r.u8());
    let mut frames = Vec::new();
    while !r.is_empty() {
        match r.u8() % 8 {
            0..=3 => {
                let h = r.u8();
                let port = h & 1;
                let start = usize::from((h >> 1) & 1);
                let count = 1 + usize::from(h >> 2) % 40;
                frames.clear();
                for _ in 0..count {
                    frames.push(world.frame(&mut r, port));
                }
                world.burst(start, world.rx_port(port), &frames);
            }
            4 => world.step(&mut r),
            5 => {
                let b = r.u8();
                world.expire(if b == 0 { u32::MAX } else { u32::from(b % 16) });
            }
            6 => world.reload(),
            _ => {
                world.step(&mut r);
                world.expire(64);
            }
        }
    }
    world.finish();
}

/// Writes programs in the input format: the committed seeds are made with it
/// (`seeds_are_current` below).
#[derive(Debug, Clone)]
pub struct Script(pub Vec<u8>);

impl Script {
    /// A program with this setup byte.
    pub fn new(setup: u8) -> Script {
        Script(vec![setup])
    }

    /// A burst of encoded frames ([`enc`]) into `port`, received by `worker`.
    pub fn burst(mut self, port: u8, worker: u8, frames: &[Vec<u8>]) -> Script {
        assert!((1..=40).contains(&frames.len()));
        self.0.push(0);
        self.0
            .push(port | (worker << 1) | (((frames.len() - 1) as u8) << 2));
        for f in frames {
            self.0.extend_from_slice(f);
        }
        self
    }

    /// A clock step of `STEPS[sel]` seconds.
    pub fn step(mut self, sel: u8) -> Script {
        self.0.extend_from_slice(&[4, sel]);
        self
    }

    /// An expiry tick with budget byte `b`.
    pub fn expire(mut self, b: u8) -> Script {
        self.0.extend_from_slice(&[5, b]);
        self
    }

    /// A policy reload.
    pub fn reload(mut self) -> Script {
        self.0.push(6);
        self
    }
}

/// Frame encoders for [`Script::burst`]: each is the l2 byte, the kind and its fields, and
/// no mutation.
pub mod enc {
    use super::kind;

    /// The l2 byte: our MAC, no VLAN tag, first host MAC.
    pub const US: u8 = 0;
    /// The l2 byte: broadcast.
    pub const BROADCAST: u8 = 5;
    /// The l2 byte of the second inside host.
    pub const HOST2: u8 = 0x10;

    /// IP fields: TTL 64, DF.
    pub fn ip(src: u8, dst: u8) -> [u8; 3] {
        [src, dst, 0x08]
    }

    /// IP fields with TTL 1.
    pub fn ip_ttl1(src: u8, dst: u8) -> [u8; 3] {
        [src, dst, 0x09]
    }

    fn frame(l2: u8, k: u8, fields: &[u8]) -> Vec<u8> {
        let mut v = vec![l2, k];
        v.extend_from_slice(fields);
        v.push(0);
        v
    }

    /// A TCP segment.
    pub fn tcp(l2: u8, ip: [u8; 3], sport: u8, dport: u8, flags: u8) -> Vec<u8> {
        frame(
            l2,
            kind::TCP,
            &[ip[0], ip[1], ip[2], sport, dport, flags, 1],
        )
    }

    /// A UDP datagram with 16 bytes of payload.
    pub fn udp(l2: u8, ip: [u8; 3], sport: u8, dport: u8) -> Vec<u8> {
        frame(l2, kind::UDP, &[ip[0], ip[1], ip[2], sport, dport, 16 << 1])
    }

    /// An echo request with a port selector as identifier.
    pub fn echo(l2: u8, ip: [u8; 3], id: u8) -> Vec<u8> {
        frame(l2, kind::ECHO, &[ip[0], ip[1], ip[2], 1 | (2 << 3), id])
    }

    /// The reply to the `nth` last frame sent (TCP flags if it was TCP).
    pub fn reply(l2: u8, nth: u8, flags: u8) -> Vec<u8> {
        frame(l2, kind::REPLY, &[nth, flags])
    }

    /// An ICMP error about the `nth` last frame sent.
    pub fn error_about(l2: u8, nth: u8, err: u8, opt: u8) -> Vec<u8> {
        frame(l2, kind::ERROR_ABOUT, &[nth, err, opt])
    }

    /// An ARP request (opt 0) or reply (opt 1).
    pub fn arp(l2: u8, opt: u8, spa: u8, tpa: u8) -> Vec<u8> {
        frame(l2, kind::ARP, &[opt, spa, tpa])
    }

    /// A frame put in the tunnel as the tunnel byte `t` says (tunnel mode).
    pub fn tunnelled(mut frame: Vec<u8>, t: u8) -> Vec<u8> {
        frame.push(t);
        frame
    }

    /// A frame in the tunnel with the byte at `at` of its outer headers changed by `v`
    /// (bit 7: the checksums fixed after).
    pub fn tunnel_broken(mut frame: Vec<u8>, at: u8, v: u8) -> Vec<u8> {
        frame.extend_from_slice(&[3, at, v]);
        frame
    }

    /// Garbage after an IPv4 ethertype.
    pub fn raw(l2: u8, bytes: &[u8]) -> Vec<u8> {
        let mut f = vec![bytes.len() as u8];
        f.extend_from_slice(bytes);
        frame(l2, kind::RAW, &f)
    }
}

/// The committed seeds, by file name.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use a::*;
    use enc::*;
    use p::*;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const SYN_ACK: u8 = 0x12;
    const FIN_ACK: u8 = 0x11;
    const PSH_ACK: u8 = 0x18;
    const RST: u8 = 0x04;
    vec![
        (
            "udp_egress_reply_expiry.bin",
            Script::new(0)
                .burst(LAN, 0, &[udp(US, ip(C1, SERVER), P5000, DNS)])
                .burst(WAN, 0, &[reply(US, 0, 0)])
                .step(13)
                .expire(0)
                .burst(WAN, 0, &[reply(US, 1, 0)])
                .0,
        ),
        (
            "tcp_handshake_close.bin",
            Script::new(0)
                .burst(LAN, 0, &[tcp(US, ip(C1, SERVER), P40000, HTTPS, SYN)])
                .burst(WAN, 0, &[reply(US, 0, SYN_ACK)])
                .burst(LAN, 0, &[tcp(US, ip(C1, SERVER), P40000, HTTPS, ACK)])
                .burst(WAN, 0, &[reply(US, 0, PSH_ACK)])
                .burst(LAN, 0, &[tcp(US, ip(C1, SERVER), P40000, HTTPS, FIN_ACK)])
                .burst(WAN, 0, &[reply(US, 0, FIN_ACK)])
                .burst(LAN, 0, &[tcp(US, ip(C1, SERVER), P40000, HTTPS, ACK)])
                .burst(LAN, 0, &[tcp(US, ip(C1, OTHER), P40000, SMTP, SYN)])
                .burst(LAN, 0, &[tcp(US, ip(C1, OTHER), HTTP, HTTP, SYN)])
                .burst(WAN, 0, &[reply(US, 0, RST)])
                .step(11)
                .expire(3)
                .0,
        ),
        (
            "forward_hairpin_static.bin",
            Script::new(2)
                .burst(WAN, 0, &[tcp(US, ip(OTHER, PUBLIC), P40000, FORWARD, SYN)])
                .burst(LAN, 0, &[reply(HOST2, 0, SYN_ACK)])
                .burst(LAN, 0, &[tcp(US, ip(C1, PUBLIC), P40000, FORWARD, SYN)])
                .burst(LAN, 0, &[reply(HOST2, 0, SYN_ACK)])
                .burst(LAN, 0, &[udp(US, ip(C3, SERVER), P5000, DNS)])
                .burst(WAN, 0, &[udp(US, ip(OTHER, STATIC), P5000, P5000)])
                .burst(WAN, 0, &[udp(US, ip(OTHER, PUBLIC), DNS, P5000)])
                .reload()
                .burst(WAN, 0, &[tcp(US, ip(OTHER, PUBLIC), P40000, FORWARD, ACK)])
                .0,
        ),
        (
            "icmp_echo_errors.bin",
            Script::new(1)
                .burst(LAN, 0, &[echo(US, ip(C1, SERVER), P5000)])
                .burst(WAN, 0, &[reply(US, 0, 0)])
                .burst(LAN, 0, &[udp(US, ip(C1, SERVER), P5000, DNS)])
                .burst(WAN, 0, &[error_about(US, 0, 0, 0)])
                .burst(WAN, 0, &[error_about(US, 1, 3, 3)])
                .burst(LAN, 0, &[echo(US, ip(C1, LAN_IP), DNS)])
                .burst(WAN, 0, &[echo(US, ip(OTHER, PUBLIC), DNS)])
                .burst(LAN, 0, &[udp(US, ip_ttl1(C1, SERVER), P5000, DNS)])
                .burst(WAN, 0, &[tcp(US, ip(SERVER, PUBLIC), DNS, PROBE, SYN)])
                .0,
        ),
        (
            "two_workers.bin",
            Script::new(setup::TWO_WORKERS | setup::TINY | 2)
                .burst(
                    LAN,
                    0,
                    &[
                        udp(US, ip(C1, SERVER), P5000, DNS),
                        udp(US, ip(C1, SERVER), P40000, DNS),
                        udp(HOST2, ip(C2, SERVER), P5000, DNS),
                        udp(US, ip(C1, OTHER), P5000, DNS),
                        tcp(US, ip(C1, SERVER), P40000, HTTPS, SYN),
                        echo(US, ip(C1, SERVER), P40000),
                    ],
                )
                .burst(
                    WAN,
                    1,
                    &[
                        reply(US, 0, 0),
                        reply(US, 1, SYN_ACK),
                        reply(US, 2, 0),
                        reply(US, 3, 0),
                        reply(US, 4, 0),
                        error_about(US, 5, 1, 1),
                    ],
                )
                .burst(WAN, 1, &[tcp(US, ip(OTHER, PUBLIC), P40000, FORWARD, SYN)])
                .burst(LAN, 1, &[tcp(US, ip(C1, PUBLIC), P40000, FORWARD, SYN)])
                .reload()
                .burst(LAN, 0, &[udp(US, ip(C1, SERVER), P5000, DNS)])
                .0,
        ),
        (
            "geneve_tunnel.bin",
            Script::new(setup::TUNNEL)
                .burst(0, 0, &[tunnelled(udp(US, ip(C1, SERVER), P5000, DNS), 0)])
                .burst(0, 0, &[tunnelled(reply(US, 0, 0), 0x80)])
                .burst(
                    0,
                    0,
                    &[tunnelled(tcp(US, ip(OTHER, C2), P40000, HTTP, SYN), 0)],
                )
                .burst(0, 0, &[tunnelled(reply(US, 0, SYN_ACK), 0x14)])
                .burst(
                    0,
                    0,
                    &[
                        tunnelled(tcp(US, ip(C1, SERVER), P40000, SMTP, SYN), 0),
                        tunnelled(udp(US, ip(C1, SERVER), P5000, DNS), 8),
                        tunnel_broken(udp(US, ip(C1, SERVER), P5000, DNS), 28, 0xc0),
                        tunnel_broken(udp(US, ip(C1, SERVER), P5000, DNS), 31, 0x9f),
                        tunnelled(echo(US, ip(C1, SERVER), P5000), 2),
                        tunnelled(error_about(US, 1, 0, 0), 0),
                    ],
                )
                .reload()
                .burst(0, 0, &[tunnelled(reply(US, 1, 0), 0)])
                .step(13)
                .expire(0)
                .0,
        ),
        (
            "vxlan_tunnels.bin",
            Script::new(setup::TUNNEL | setup::TWO_WORKERS | 1)
                .burst(
                    1,
                    0,
                    &[tunnelled(tcp(US, ip(OTHER, C2), P40000, HTTP, SYN), 0)],
                )
                .burst(0, 1, &[tunnelled(reply(US, 0, SYN_ACK), 0)])
                .burst(0, 0, &[tunnelled(udp(US, ip(C1, SERVER), P5000, DNS), 0)])
                .burst(
                    1,
                    1,
                    &[
                        tunnelled(reply(US, 0, 0), 0),
                        tunnelled(reply(US, 0, 0), 0x10),
                        tunnelled(udp(US, ip(C1, SERVER), P5000, DNS), 0),
                        tunnel_broken(udp(US, ip(C1, SERVER), P5000, DNS), 28, 0x88),
                    ],
                )
                .step(13)
                .expire(0)
                .0,
        ),
        (
            "arp_and_garbage.bin",
            Script::new(0)
                .burst(
                    LAN,
                    0,
                    &[
                        arp(BROADCAST, 0, C1, LAN_IP),
                        arp(BROADCAST, 0, C4, C2),
                        udp(US, ip(C4, SERVER), P5000, DNS),
                        raw(US, &[0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0]),
                    ],
                )
                .burst(WAN, 0, &[arp(BROADCAST, 0, GW, PUBLIC), reply(US, 0, 0)])
                .burst(LAN, 0, &[udp(US, ip(C1, C4), P5000, DNS)])
                .0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds/pipeline")
    }

    /// The committed seeds are what [`seeds`] writes (`UPDATE_SEEDS=1 cargo test` rewrites
    /// them), and each runs clean.
    #[test]
    fn seeds_are_current() {
        let update = std::env::var_os("UPDATE_SEEDS").is_some();
        for (name, bytes) in seeds() {
            let path = dir().join(name);
            if update {
                std::fs::create_dir_all(dir()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let on_disk = std::fs::read(&path).unwrap_or_default();
            assert_eq!(on_disk, bytes, "{name} is stale: UPDATE_SEEDS=1 cargo test");
            run(&bytes);
        }
    }

    /// The seeds do what they are for: sessions are made and translated both ways.
    #[test]
    fn seeds_reach_the_paths_they_name() {
        for (name, bytes) in seeds() {
            let mut r = Reader {
                data: &bytes,
                at: 0,
            };
            let mut w = World::new(r.u8());
            let mut frames = Vec::new();
            while !r.is_empty() {
                match r.u8() % 8 {
                    0..=3 => {
                        let h = r.u8();
                        frames.clear();
                        for _ in 0..1 + usize::from(h >> 2) % 40 {
                            frames.push(w.frame(&mut r, h & 1));
                        }
                        w.burst(usize::from((h >> 1) & 1), w.rx_port(h & 1), &frames);
                    }
                    4 => w.step(&mut r),
                    5 => {
                        r.u8();
                    }
                    6 => w.reload(),
                    _ => w.step(&mut r),
                }
            }
            let forwarded: u64 = w.shards.iter().map(|s| s.counters().forwarded()).sum();
            let created: u64 = w.shards.iter().map(|s| s.counters().created()).sum();
            assert!(
                forwarded >= 2 && created >= 1,
                "{name}: {forwarded} forwarded, {created} created"
            );
        }
    }

    /// Inputs that once crashed the target (fixed bugs) keep passing.
    #[test]
    fn regressions_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/pipeline");
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            run(&std::fs::read(entry.path()).unwrap());
        }
    }

    #[test]
    fn any_bytes_are_a_program() {
        for data in [&[][..], &[0xff; 64], &[0; 64], &[3, 0, 0xfd, 11, 200]] {
            run(data);
        }
    }
}

//! Packet-layer costs on the NAT fast path, per 64-byte frame: classify (Ethernet, IPv4 with
//! header checksum, UDP/TCP, 5-tuple) and SNAT with `packet::translate`, the rewrite the
//! pipeline runs (source address and port, TTL, IPv4 header and transport checksums updated
//! incrementally from the deltas a session computed once).
//!
//! Target: parse + rewrite <= 15 ns per packet.
//!
//! The rewriting benches get a fresh copy of the frame per iteration, in batches of [`BATCH`]
//! frames (see [`batched`], criterion's `iter_batched_ref` with a fixed batch): the copies are
//! made outside the timed loop and stay in L1 (16 KiB), so neither the copy nor a cache miss
//! is timed, and the clock is read once per batch. `components/batch_floor` is the same
//! harness around a routine that only reads one byte of the frame: the part of each figure
//! that is harness, not packet work.
//! The frame (as a slice, so its length is not a constant), the rewrite and the checksum
//! capabilities go through `black_box`, and so does the whole parse result (all of it is
//! computed and stored), as a caller would use all of it.
//!
//! Instruction counts: `PACKET_COUNT=N PACKET_COUNT_CASE=udp_64 valgrind --tool=callgrind
//! --toggle-collect='*count_*' <bench binary>` runs each step N times outside criterion (see
//! [`count`]); `callgrind_annotate --inclusive=yes` then gives each `count_*` function's
//! instructions, and dividing by N gives them per packet (call and return included).
//!
//! `PACKET_BENCH_CLOCK=cpu` times on the thread's on-CPU clock instead of wall time (the group
//! is then `packet_cpu`), as the flow_table bench does: on a machine shared with other jobs it
//! leaves out the time the bench sat descheduled, though not the caches the other jobs
//! evicted. That clock is a system call, so its floor (`components/batch_floor`) is higher.

mod common;

use common::{cpu_clock, stamp};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use appliance::packet::translate::{translate, Transport};
use appliance::packet::{
    checksum, parse_frame, ChecksumCaps, ChecksumDeltas, EthernetFrame, FiveTuple, IpProtocol,
    Ipv4Packet, Offsets, TcpFlags, TcpRepr, UdpRepr,
};
use appliance::packet::{Error, ParsedFrame};
use criterion::{criterion_group, Bencher, Criterion, Throughput};

/// Frames per timed batch for the benches that rewrite the frame (see the module docs).
const BATCH: usize = 256;

/// `cpu` times on-CPU (see [`common`]).
const CLOCK_VAR: &str = "PACKET_BENCH_CLOCK";

/// `routine` once per iteration, timed on the selected clock.
fn plain<O>(b: &mut Bencher, mut routine: impl FnMut() -> O) {
    b.iter_custom(|iters| {
        let start = stamp();
        for _ in 0..iters {
            black_box(routine());
        }
        stamp().saturating_sub(start)
    })
}

/// `routine` once per iteration on a fresh copy of `frame`, timed per batch of [`BATCH`]
/// copies on the selected clock; the copies are made before the batch's clock starts.
fn batched<O>(b: &mut Bencher, frame: [u8; 64], mut routine: impl FnMut(&mut [u8; 64]) -> O) {
    b.iter_custom(|iters| {
        let mut frames = vec![frame; BATCH];
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let batch = &mut frames[..BATCH.min(left as usize)];
            batch.fill(frame);
            let batch = black_box(batch);
            let start = stamp();
            for f in batch.iter_mut() {
                black_box(routine(f));
            }
            total += stamp().saturating_sub(start);
            left -= batch.len() as u64;
        }
        total
    })
}

const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A 64-byte Ethernet frame (untagged, no FCS) carrying IPv4 and `protocol`, checksums valid.
fn frame(protocol: IpProtocol) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let l4_len = 64 - 14 - 20;
    let payload = [0x5au8; 64];
    let (l3, l4) = f[14..].split_at_mut(20);
    match protocol {
        IpProtocol::UDP => {
            let r = UdpRepr {
                src_port: 40000,
                dst_port: 53,
                payload: &payload[..l4_len - 8],
            };
            r.emit(l4, INSIDE, SERVER, &ChecksumCaps::NONE).unwrap();
        }
        IpProtocol::TCP => {
            let r = TcpRepr {
                src_port: 40000,
                dst_port: 443,
                flags: TcpFlags::ACK | TcpFlags::PSH,
                seq_number: 1,
                ack_number: 1,
                window_len: 502,
                urgent_at: 0,
                max_seg_size: None,
                window_scale: None,
                sack_permitted: false,
                timestamps: None,
                payload: &payload[..l4_len - 20],
            };
            r.emit(l4, INSIDE, SERVER, &ChecksumCaps::NONE).unwrap();
        }
        _ => unreachable!(),
    }
    let mut ip = Ipv4Packet::new_unchecked(l3);
    ip.set_version_and_header_len(20);
    ip.set_total_len(50);
    ip.set_frag(true, false, 0);
    ip.set_ttl(64);
    ip.set_protocol(protocol);
    ip.set_src_addr(INSIDE);
    ip.set_dst_addr(SERVER);
    ip.fill_checksum();
    f
}

/// A session's rewrite of one direction, as the fast path reads it from the session: the new
/// addresses and ports in wire order, and the checksum deltas computed once.
#[derive(Clone, Copy)]
struct Snat {
    protocol: IpProtocol,
    addrs: [u8; 8],
    ports: [u8; 4],
    deltas: ChecksumDeltas,
}

impl Snat {
    /// The rewrite from `(from, port)` to `(to, new_port)` as the source of a packet to the
    /// server.
    fn new(protocol: IpProtocol, from: (Ipv4Addr, u16), to: (Ipv4Addr, u16)) -> Snat {
        let dport = if protocol == IpProtocol::UDP { 53 } else { 443 };
        let tuple = |(a, p): (Ipv4Addr, u16)| FiveTuple {
            src_addr: a,
            dst_addr: SERVER,
            protocol,
            src_port: p,
            dst_port: dport,
        };
        let mut addrs = [0u8; 8];
        addrs[..4].copy_from_slice(&to.0.octets());
        addrs[4..].copy_from_slice(&SERVER.octets());
        let mut ports = [0u8; 4];
        ports[..2].copy_from_slice(&to.1.to_be_bytes());
        ports[2..].copy_from_slice(&dport.to_be_bytes());
        Snat {
            protocol,
            addrs,
            ports,
            deltas: ChecksumDeltas::between(&tuple(from), &tuple(to)),
        }
    }

    /// Translates the packet whose headers `parse_frame` found at `at`.
    #[inline(always)]
    fn apply(&self, f: &mut [u8], at: Offsets) -> bool {
        translate(
            f,
            &at,
            Transport::of(self.protocol),
            self.addrs,
            self.ports,
            self.deltas,
        )
    }
}

/// Classify, then translate with the session's rewrite in place.
#[inline(always)]
fn parse_and_snat(f: &mut [u8], rw: &Snat, caps: &ChecksumCaps) {
    let parsed = parse_frame(f, caps);
    black_box(&parsed);
    let at = parsed
        .as_ref()
        .ok()
        .and_then(ParsedFrame::offsets)
        .expect("IPv4");
    assert!(rw.apply(f, at), "TTL left");
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group(if cpu_clock() { "packet_cpu" } else { "packet" });
    g.throughput(Throughput::Elements(1));
    for (name, proto) in [("udp", IpProtocol::UDP), ("tcp", IpProtocol::TCP)] {
        let f = frame(proto);
        let rw = Snat::new(proto, (INSIDE, 40000), (PUBLIC, 61000));
        let at = parse_frame(&f, &ChecksumCaps::NONE)
            .unwrap()
            .offsets()
            .unwrap();

        g.bench_function(format!("parse/{name}_64"), |b| {
            plain(b, || {
                parse_frame(black_box(&f), &ChecksumCaps::NONE).unwrap()
            })
        });
        g.bench_function(format!("parse_ipv4_offloaded/{name}_64"), |b| {
            let caps = ChecksumCaps {
                ipv4: true,
                l4: false,
            };
            plain(b, || parse_frame(black_box(&f), &caps).unwrap())
        });
        g.bench_function(format!("snat_translate/{name}_64"), |b| {
            batched(b, f, |f| black_box(&rw).apply(&mut f[..], black_box(at)))
        });
        g.bench_function(format!("parse_and_snat/{name}_64"), |b| {
            let caps = ChecksumCaps::NONE;
            batched(b, f, |f| {
                parse_and_snat(black_box(&mut f[..]), black_box(&rw), black_box(&caps))
            })
        });
        // The same when the NIC verified the IPv4 header checksum (RX offload).
        g.bench_function(format!("parse_and_snat_ipv4_offloaded/{name}_64"), |b| {
            let caps = ChecksumCaps {
                ipv4: true,
                l4: false,
            };
            batched(b, f, |f| {
                parse_and_snat(black_box(&mut f[..]), black_box(&rw), black_box(&caps))
            })
        });
    }
    let f = frame(IpProtocol::UDP);
    // Components of the parse, to see where its time goes; `noop` is the harness's floor.
    g.bench_function("components/noop", |b| plain(b, || black_box(1u64) + 1));
    g.bench_function("components/batch_floor", |b| {
        batched(b, f, |f| black_box(f[14]))
    });
    g.bench_function("components/ethernet_layers", |b| {
        plain(b, || {
            EthernetFrame::new_checked(black_box(&f[..]))
                .unwrap()
                .layers()
                .unwrap()
        })
    });
    g.bench_function("components/ipv4_new_checked", |b| {
        plain(b, || {
            Ipv4Packet::new_checked(black_box(&f[14..]))
                .unwrap()
                .total_len()
        })
    });
    g.bench_function("components/ipv4_header_checksum", |b| {
        plain(b, || checksum::data(black_box(&f[14..34])))
    });
    g.bench_function("components/five_tuple", |b| {
        plain(b, || {
            Ipv4Packet::new_checked(black_box(&f[14..]))
                .unwrap()
                .five_tuple()
                .unwrap()
        })
    });
    g.bench_function("decrement_ttl/udp_64", |b| {
        batched(b, f, |f| {
            Ipv4Packet::new_checked(&mut f[14..])
                .unwrap()
                .decrement_ttl()
                .unwrap()
        })
    });
    g.finish();
}

/// One parse, as the pipeline calls it (out of line here so callgrind can count it).
#[inline(never)]
fn count_parse(f: &[u8], caps: &ChecksumCaps) -> Result<ParsedFrame, Error> {
    parse_frame(f, caps)
}

/// One translation of a frame `parse_frame` accepted.
#[inline(never)]
fn count_translate(f: &mut [u8], at: Offsets, rw: &Snat) -> bool {
    rw.apply(f, at)
}

/// Parse and translate, as the `parse_and_snat` benches time it.
#[inline(never)]
fn count_parse_and_snat(f: &mut [u8], rw: &Snat, caps: &ChecksumCaps) {
    parse_and_snat(f, rw, caps)
}

/// Run each step `n` times for callgrind, for the case `case` names (`udp_64`, `tcp_64`,
/// `udp_64_ipv4_offloaded`, `tcp_64_ipv4_offloaded`), so one run counts one case. Each
/// translation gets a fresh copy of the frame (its TTL drops), copied outside the counted
/// functions.
fn count(n: u64, case: &str) {
    let proto = match case.split('_').next() {
        Some("udp") => IpProtocol::UDP,
        Some("tcp") => IpProtocol::TCP,
        _ => panic!(
            "PACKET_COUNT_CASE: udp_64, tcp_64, udp_64_ipv4_offloaded or tcp_64_ipv4_offloaded"
        ),
    };
    let caps = ChecksumCaps {
        ipv4: case.ends_with("_ipv4_offloaded"),
        l4: false,
    };
    let rw = Snat::new(proto, (INSIDE, 40000), (PUBLIC, 61000));
    let orig = frame(proto);
    let at = parse_frame(&orig, &caps).unwrap().offsets().unwrap();
    for _ in 0..n {
        black_box(count_parse(black_box(&orig), black_box(&caps)).unwrap());
    }
    let mut f = orig;
    for _ in 0..n {
        f = orig;
        black_box(count_translate(
            black_box(&mut f),
            black_box(at),
            black_box(&rw),
        ));
    }
    for _ in 0..n {
        f = orig;
        count_parse_and_snat(black_box(&mut f), black_box(&rw), black_box(&caps));
    }
    let mut expect = orig;
    assert!(rw.apply(&mut expect, at), "TTL left");
    assert_eq!(f, expect, "every translation of the frame is the same");
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var_os("PACKET_COUNT") {
        let n = n.to_str().and_then(|s| s.parse().ok());
        let n: u64 = n.expect("PACKET_COUNT=<number of iterations>");
        count(
            n,
            &std::env::var("PACKET_COUNT_CASE").unwrap_or("udp_64".into()),
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

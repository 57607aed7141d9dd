//! Property tests: incremental checksum updates equal full recomputation, and parsing never
//! panics.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::checksum::{self, ChecksumCaps};
use super::exercise::wire;
use super::icmp::{self, TimeExceeded};
use super::ipv4::{self, Endpoint};
use super::translate::{self, Offsets};
use super::{build, geneve, tcp, udp, vxlan, FiveTuple, IcmpEcho, IcmpRepr, IpProtocol};

/// The transport of a generated packet.
#[derive(Debug, Clone)]
enum L4Gen {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        flags: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
        no_checksum: bool,
    },
    Echo {
        request: bool,
        ident: u16,
        seq: u16,
    },
}

#[derive(Debug, Clone)]
struct PacketGen {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    ident: u16,
    options: usize,
    l4: L4Gen,
    payload: Vec<u8>,
}

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn l4_gen() -> impl Strategy<Value = L4Gen> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>(), 0u16..0x200).prop_map(
            |(sport, dport, seq, flags)| L4Gen::Tcp {
                sport,
                dport,
                seq,
                flags
            }
        ),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(sport, dport, no_checksum)| {
            L4Gen::Udp {
                sport,
                dport,
                no_checksum,
            }
        }),
        (any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(request, ident, seq)| L4Gen::Echo {
            request,
            ident,
            seq
        }),
    ]
}

fn packet_gen() -> impl Strategy<Value = PacketGen> {
    (
        addr(),
        addr(),
        any::<u8>(),
        any::<u16>(),
        0usize..3,
        l4_gen(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(src, dst, ttl, ident, options, l4, payload)| PacketGen {
            src,
            dst,
            ttl,
            ident,
            options,
            l4,
            payload,
        })
}

impl PacketGen {
    fn protocol(&self) -> IpProtocol {
        match self.l4 {
            L4Gen::Tcp { .. } => IpProtocol::TCP,
            L4Gen::Udp { .. } => IpProtocol::UDP,
            L4Gen::Echo { .. } => IpProtocol::ICMP,
        }
    }

    /// The IPv4 packet with every checksum computed from scratch.
    fn build(&self) -> Vec<u8> {
        let (src, dst) = (self.src, self.dst);
        let l4: Vec<u8> = match self.l4 {
            L4Gen::Tcp {
                sport,
                dport,
                seq,
                flags,
            } => {
                let r = tcp::Repr {
                    src_port: sport,
                    dst_port: dport,
                    flags: tcp::Flags(flags),
                    seq_number: seq,
                    ack_number: seq.rotate_left(7),
                    window_len: 512,
                    urgent_at: 0,
                    max_seg_size: Some(1460),
                    window_scale: None,
                    sack_permitted: true,
                    timestamps: None,
                    payload: &self.payload,
                };
                let mut v = vec![0u8; r.buffer_len()];
                r.emit(&mut v, src, dst, &ChecksumCaps::NONE).unwrap();
                v
            }
            L4Gen::Udp {
                sport,
                dport,
                no_checksum,
            } => {
                let r = udp::Repr {
                    src_port: sport,
                    dst_port: dport,
                    payload: &self.payload,
                };
                let mut v = vec![0u8; r.buffer_len()];
                r.emit(&mut v, src, dst, &ChecksumCaps::NONE).unwrap();
                if no_checksum {
                    v[6] = 0;
                    v[7] = 0;
                }
                v
            }
            L4Gen::Echo {
                request,
                ident,
                seq,
            } => {
                let echo = IcmpEcho {
                    ident,
                    seq_no: seq,
                    data: &self.payload,
                };
                let r = if request {
                    IcmpRepr::EchoRequest(echo)
                } else {
                    IcmpRepr::EchoReply(echo)
                };
                let mut v = vec![0u8; r.buffer_len()];
                r.emit(&mut v).unwrap();
                v
            }
        };
        let hl = ipv4::HEADER_LEN + 4 * self.options;
        let mut v = vec![0u8; hl + l4.len()];
        {
            let mut p = ipv4::Packet::new_unchecked(&mut v[..]);
            p.set_version_and_header_len(hl);
            p.set_total_len((hl + l4.len()) as u16);
            p.set_ident(self.ident);
            p.set_frag(true, false, 0);
            p.set_ttl(self.ttl);
            p.set_protocol(self.protocol());
            p.set_src_addr(src);
            p.set_dst_addr(dst);
        }
        // NOP options.
        v[ipv4::HEADER_LEN..hl].fill(1);
        v[hl..].copy_from_slice(&l4);
        ipv4::Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }
}

/// `t` with the endpoint on `side` replaced; for ICMP echo both ports are the identifier.
fn with_endpoint_tuple(t: &FiveTuple, side: Endpoint, addr: Ipv4Addr, port: u16) -> FiveTuple {
    let mut n = *t;
    match side {
        Endpoint::Src => (n.src_addr, n.src_port) = (addr, port),
        Endpoint::Dst => (n.dst_addr, n.dst_port) = (addr, port),
    }
    if t.protocol == IpProtocol::ICMP {
        n.dst_port = port;
        n.src_port = port;
    }
    n
}

/// The offsets of an IPv4 packet that starts the buffer.
fn offsets(pkt: &[u8]) -> Offsets {
    ipv4::Packet::new_checked(pkt).unwrap().offsets()
}

/// `pkt` with the addresses and ports of `t` written in place, TTL `ttl`, and every checksum
/// recomputed: what an exact translation must give.
fn with_endpoint(pkt: &[u8], t: &FiveTuple, ttl: u8) -> Vec<u8> {
    let mut v = pkt.to_vec();
    let mut p = ipv4::Packet::new_checked(&mut v[..]).unwrap();
    p.set_src_addr(t.src_addr);
    p.set_dst_addr(t.dst_addr);
    p.set_ttl(ttl);
    let l4 = p.payload_mut();
    if t.protocol == IpProtocol::ICMP {
        l4[4..6].copy_from_slice(&t.src_port.to_be_bytes());
    } else {
        l4[..2].copy_from_slice(&t.src_port.to_be_bytes());
        l4[2..4].copy_from_slice(&t.dst_port.to_be_bytes());
    }
    recompute(&v)
}

/// Recompute every checksum of `pkt` from scratch, the way `build` does.
fn recompute(pkt: &[u8]) -> Vec<u8> {
    let mut v = pkt.to_vec();
    let mut p = ipv4::Packet::new_checked(&mut v[..]).unwrap();
    p.fill_checksum();
    let (src, dst, proto) = (p.src_addr(), p.dst_addr(), p.protocol());
    let l4 = p.payload_mut();
    match proto {
        IpProtocol::TCP => {
            tcp::Packet::new_checked(&mut *l4)
                .unwrap()
                .fill_checksum(src, dst, &ChecksumCaps::NONE)
        }
        IpProtocol::UDP => {
            let mut u = udp::Packet::new_checked(&mut *l4).unwrap();
            if u.checksum() != 0 {
                u.fill_checksum(src, dst, &ChecksumCaps::NONE);
            }
        }
        IpProtocol::ICMP => icmp::Packet::new_checked(&mut *l4).unwrap().fill_checksum(),
        _ => unreachable!(),
    }
    v
}

fn side() -> impl Strategy<Value = Endpoint> {
    prop_oneof![Just(Endpoint::Src), Just(Endpoint::Dst)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn translate_equals_full_recompute(g in packet_gen(), side in side(), new_addr in addr(), new_port: u16) {
        let orig = g.build();
        prop_assert_eq!(recompute(&orig), orig.clone(), "generator makes valid checksums");
        let before = ipv4::Packet::new_checked(&orig[..]).unwrap().five_tuple().unwrap();
        let after = with_endpoint_tuple(&before, side, new_addr, new_port);

        // As a session does: deltas computed once from the two tuples, then the rewrite.
        let mut a = orig.clone();
        let at = offsets(&a);
        let (addrs, ports) = wire(&after);
        let deltas = translate::ChecksumDeltas::between(&before, &after);
        let dst = translate::translate(&mut a, &at, translate::Transport::of(g.protocol()), addrs, ports, deltas);
        if g.ttl <= 1 {
            prop_assert!(!dst);
            prop_assert_eq!(a, orig);
            return Ok(());
        }
        prop_assert!(dst);
        // The same bytes as writing the new fields and recomputing every checksum.
        let direct = with_endpoint(&orig, &after, g.ttl - 1);
        prop_assert_eq!(&a, &direct);
        if let L4Gen::Udp { no_checksum: true, .. } = g.l4 {
            prop_assert_eq!(&a[a.len() - g.payload.len() - 2..a.len() - g.payload.len()], &[0, 0]);
        }
        // The reverse deltas take it back, one hop older again.
        let (addrs, ports) = wire(&before);
        let back = translate::translate(&mut a, &at, translate::Transport::of(g.protocol()), addrs, ports, deltas.reversed());
        if g.ttl > 2 {
            prop_assert!(back);
            prop_assert_eq!(a, with_endpoint(&orig, &before, g.ttl - 2));
        }
    }

    #[test]
    fn ttl_decrement_equals_full_recompute(g in packet_gen()) {
        let mut a = g.build();
        let mut p = ipv4::Packet::new_checked(&mut a[..]).unwrap();
        match p.decrement_ttl() {
            Ok(t) => prop_assert_eq!(t, g.ttl - 1),
            Err(e) => {
                prop_assert!(g.ttl <= 1);
                prop_assert_eq!(e, super::Error::Ipv4TtlExpired);
            }
        }
        prop_assert_eq!(&recompute(&a), &a);
    }

    #[test]
    fn icmp_error_translation_keeps_checksums(
        g in packet_gen(), new_addr in addr(), new_port: u16, full_quote: bool
    ) {
        // The error quotes a packet the NAT sent (g), from a router to g's source.
        let mut orig = g.build();
        // Unicast addresses so the builder accepts it.
        {
            let mut p = ipv4::Packet::new_checked(&mut orig[..]).unwrap();
            p.set_src_addr(Ipv4Addr::new(10, 1, 2, 3));
            p.set_dst_addr(Ipv4Addr::new(198, 51, 100, 4));
        }
        let orig = recompute(&orig);
        let ip = ipv4::Packet::new_checked(&orig[..]).unwrap();
        let quote_len = if full_quote { orig.len() } else { ip.header_len() + 8 };
        let mut frame = [0u8; 1600];
        let link = build::Link {
            src: super::EthernetAddress([2, 0, 0, 0, 0, 9]),
            dst: super::EthernetAddress([2, 0, 0, 0, 0, 8]),
            vlans: super::Vlans::None,
        };
        let n = build::icmp_time_exceeded(
            &mut frame, &link, Ipv4Addr::new(192, 0, 2, 1), &orig, TimeExceeded::TtlExpired,
        ).unwrap();
        let mut err = frame[14..n].to_vec();
        // Cut the quote to the requested length.
        let total = ipv4::HEADER_LEN + icmp::HEADER_LEN + quote_len;
        err.truncate(total);
        {
            let mut p = ipv4::Packet::new_unchecked(&mut err[..]);
            p.set_total_len(total as u16);
            p.fill_checksum();
            icmp::Packet::new_unchecked(p.payload_mut()).fill_checksum();
        }

        let mut p = ipv4::Packet::new_checked(&mut err[..]).unwrap();
        p.translate_icmp_error(Endpoint::Src, new_addr, new_port).unwrap();
        p.rewrite_addr_only(Endpoint::Dst, new_addr);
        prop_assert!(p.verify_checksum());
        let msg = icmp::Packet::new_checked(p.payload_slice()).unwrap();
        prop_assert!(msg.verify_checksum());
        let q = msg.quote().unwrap();
        let t = q.five_tuple().unwrap();
        prop_assert_eq!(t.endpoint(Endpoint::Src), (new_addr, new_port));
        prop_assert_eq!(checksum::data(&q.as_ref()[..q.header_len()]), 0xffff);
        if full_quote {
            // The whole original is quoted: it must equal the original with the new source,
            // every checksum recomputed.
            let before = ipv4::Packet::new_checked(&orig[..]).unwrap().five_tuple().unwrap();
            let after = with_endpoint_tuple(&before, Endpoint::Src, new_addr, new_port);
            prop_assert_eq!(q.as_ref(), &with_endpoint(&orig, &after, g.ttl)[..]);
        }
    }

    #[test]
    fn delta_composes(words in prop::collection::vec((any::<u16>(), any::<u16>()), 1..8), c: u16) {
        prop_assume!(c != 0xffff);
        let mut step = c;
        let mut d = checksum::ChecksumDelta::ZERO;
        for &(o, n) in &words {
            step = checksum::update16(step, o, n);
            d = d.add16(o, n);
        }
        prop_assert_eq!(d.apply(c), step);
    }
}

/// Bytes from a seed, eight at a time (splitmix64). Generating a `Vec<u8>` byte by byte
/// through proptest costs over 100 µs per case in a debug build, which would make the 100,000
/// cases below take most of a minute; this keeps them to a few seconds. Shrinking then works
/// on the length and the seed.
fn bytes_from_seed(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Arbitrary bytes, or a frame that starts out plausible (Ethernet, VLAN tags, IPv4/IPv6/ARP
/// headers with sane version, length and checksum fields) so random bytes reach the deeper
/// parsers and the rewrites.
fn frame_bytes(seed: u64, len: usize, shape: u8) -> Vec<u8> {
    let mut body = bytes_from_seed(seed, len);
    if shape % 4 == 0 {
        return body;
    }
    let tags = usize::from(shape / 4 % 3);
    let ethertype: u16 = [0x0800, 0x0800, 0x86dd, 0x0806][usize::from(shape / 16 % 4)];
    let proto = [6u8, 17, 1, body.first().copied().unwrap_or(0)][usize::from(shape / 64)];
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for _ in 0..tags {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    match ethertype {
        0x0800 if body.len() >= 20 => {
            body[0] = 0x40 | (body[0] & 0x0f).clamp(5, 6);
            let len = body.len() as u16;
            body[2..4].copy_from_slice(&len.to_be_bytes());
            body[6] &= 0x40; // mostly first fragments
            body[9] = proto;
            let hl = usize::from(body[0] & 0x0f) * 4;
            if hl <= body.len() {
                body[10] = 0;
                body[11] = 0;
                let c = !checksum::data(&body[..hl]);
                body[10..12].copy_from_slice(&c.to_be_bytes());
            }
            // Sane TCP data offset / UDP length so the transport parses.
            if body.len() >= hl + 20 && proto == 6 {
                body[hl + 12] = 0x50;
            }
            if body.len() >= hl + 8 && proto == 17 {
                let ul = (body.len() - hl) as u16;
                body[hl + 4..hl + 6].copy_from_slice(&ul.to_be_bytes());
            }
            // One UDP datagram in four to GENEVE's port with a version 0 header and up to 3
            // words of options, one in four to VXLAN's with the I bit.
            if body.len() >= hl + 16 && proto == 17 {
                match body[hl + 3] % 4 {
                    0 => {
                        body[hl + 2..hl + 4].copy_from_slice(&geneve::UDP_PORT.to_be_bytes());
                        body[hl + 8] &= 0x03;
                    }
                    1 => {
                        body[hl + 2..hl + 4].copy_from_slice(&vxlan::UDP_PORT.to_be_bytes());
                        body[hl + 8] |= vxlan::FLAG_I;
                    }
                    _ => {}
                }
            }
        }
        0x86dd if body.len() >= 40 => {
            body[0] = 0x60;
            let len = (body.len() - 40) as u16;
            body[4..6].copy_from_slice(&len.to_be_bytes());
        }
        0x0806 if body.len() >= 8 => body[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]),
        _ => {}
    }
    f.extend_from_slice(&body);
    f
}

proptest! {
    // Cheap cases (no allocation): many of them, over the whole input space.
    #![proptest_config(ProptestConfig::with_cases(200_000))]

    #[test]
    fn folds_to_ffff_equals_fold(acc: u64, small in 0u64..(5 << 32)) {
        for a in [acc, small, small / 0xffff * 0xffff] {
            prop_assert_eq!(checksum::folds_to_ffff(a), checksum::fold(a) == 0xffff);
        }
    }

}

/// One change to a valid untagged frame, aimed at a check of the fast paths.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    None,
    EtherType(u16),
    VersionIhl(u8),
    TotalLen(u16),
    FlagsOffset(u16),
    Protocol(u8),
    /// The UDP length, the TCP data offset byte (which also holds 4 flag bits) or the ICMP
    /// type.
    L4Length(u16),
    /// Cut the frame short by this many bytes.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::None),
        prop_oneof![Just(0x0800u16), Just(0x8100), Just(0x86dd), any::<u16>()]
            .prop_map(Mutation::EtherType),
        prop_oneof![
            Just(0x45u8),
            Just(0x46),
            Just(0x44),
            Just(0x55),
            any::<u8>()
        ]
        .prop_map(Mutation::VersionIhl),
        prop_oneof![0u16..100, any::<u16>()].prop_map(Mutation::TotalLen),
        prop_oneof![Just(0x2000u16), Just(0x0001), Just(0x4000), any::<u16>()]
            .prop_map(Mutation::FlagsOffset),
        prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()].prop_map(Mutation::Protocol),
        prop_oneof![0u16..0x100, any::<u16>()].prop_map(Mutation::L4Length),
        (0usize..30).prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// `parse_frame` takes a fast path for the common frame; whatever the frame, its result
    /// must be the general path's, bit for bit.
    #[test]
    fn fast_paths_equal_general_paths(
        g in packet_gen(), m in mutation(), padding in 0usize..8, fix_checksum: bool,
    ) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&g.build());
        f.resize(f.len() + padding, 0);
        let hl = usize::from(f[14] & 0x0f) * 4;
        match m {
            Mutation::None => {}
            Mutation::EtherType(v) => f[12..14].copy_from_slice(&v.to_be_bytes()),
            Mutation::VersionIhl(v) => f[14] = v,
            Mutation::TotalLen(v) => f[16..18].copy_from_slice(&v.to_be_bytes()),
            Mutation::FlagsOffset(v) => f[20..22].copy_from_slice(&v.to_be_bytes()),
            Mutation::Protocol(v) => f[23] = v,
            Mutation::L4Length(v) => match g.protocol() {
                IpProtocol::UDP => f[14 + hl + 4..14 + hl + 6].copy_from_slice(&v.to_be_bytes()),
                IpProtocol::TCP => f[14 + hl + 12] = v as u8,
                _ => f[14 + hl] = v as u8,
            },
            Mutation::Truncate(n) => f.truncate(f.len().saturating_sub(n).max(14)),
        }
        let hl = f.get(14).map_or(0, |&b| usize::from(b & 0x0f) * 4);
        if fix_checksum && hl >= 20 && f.len() >= 14 + hl {
            f[24..26].fill(0);
            let c = !checksum::data(&f[14..14 + hl]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        for caps in [ChecksumCaps::NONE, ChecksumCaps::ALL] {
            prop_assert_eq!(
                super::parse_frame(&f, &caps),
                super::parse::parse_frame_general(&f, &caps)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100_000))]

    #[test]
    fn parse_never_panics(seed: u64, len in 0usize..160, shape: u8) {
        super::exercise::exercise(&frame_bytes(seed, len, shape));
    }
}

/// A GENEVE option as generated: class, type (the critical bit among its 8 bits), the 3
/// reserved bits of its length byte, its data.
type OptionGen = (u16, u8, u8, Vec<u8>);

/// Up to 8 options with 0 to 31 words of data each, as many as fit in the 252 bytes a
/// header can announce.
fn geneve_options() -> impl Strategy<Value = Vec<OptionGen>> {
    let option = (any::<u16>(), any::<u8>(), 0u8..8, 0usize..=31, any::<u64>()).prop_map(
        |(class, kind, r, words, seed)| (class, kind, r, bytes_from_seed(seed, words * 4)),
    );
    prop::collection::vec(option, 0..8).prop_map(|mut options| {
        let mut len = 0;
        options.retain(|o| {
            len += geneve::OPTION_HEADER_LEN + o.3.len();
            len <= geneve::MAX_OPTIONS_LEN
        });
        options
    })
}

/// The options area, written field by field (not by the code under test).
fn geneve_options_bytes(options: &[OptionGen]) -> Vec<u8> {
    let mut v = Vec::new();
    for (class, kind, r, data) in options {
        v.extend_from_slice(&class.to_be_bytes());
        v.push(*kind);
        v.push(r << 5 | (data.len() / 4) as u8);
        v.extend_from_slice(data);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// A GENEVE header written by hand parses to what was written, walks to the options it
    /// holds, and re-emits byte for byte; a `Repr` emitted parses back to itself.
    #[test]
    fn geneve_round_trips(
        options in geneve_options(), oam: bool, critical: bool, protocol: u16,
        vni in 0u32..=0xff_ffff, reserved_flags in 0u8..0x40, reserved: u8,
        payload_len in 0usize..64,
    ) {
        let area = geneve_options_bytes(&options);
        let mut bytes = vec![(area.len() / 4) as u8];
        bytes.push(u8::from(oam) << 7 | u8::from(critical) << 6 | reserved_flags);
        bytes.extend_from_slice(&protocol.to_be_bytes());
        bytes.extend_from_slice(&vni.to_be_bytes()[1..]);
        bytes.push(reserved);
        bytes.extend_from_slice(&area);
        let header_len = bytes.len();
        bytes.extend_from_slice(&bytes_from_seed(vni.into(), payload_len));

        let p = geneve::Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(p.header_len(), header_len);
        prop_assert_eq!(p.payload().len(), payload_len);
        let walked: Vec<_> = p.options().map(Result::unwrap).collect();
        prop_assert_eq!(walked.len(), options.len());
        for (o, (class, kind, _, data)) in walked.iter().zip(&options) {
            prop_assert_eq!((o.class, o.kind, o.data), (*class, *kind, &data[..]));
            prop_assert_eq!(o.is_critical(), kind & geneve::OPTION_CRITICAL != 0);
        }
        let r = geneve::Repr::parse(&p);
        let expected = geneve::Repr {
            oam,
            critical,
            protocol: protocol.into(),
            vni: super::Vni::new(vni).unwrap(),
            options: &area,
            reserved_flags,
            reserved,
        };
        prop_assert_eq!(r, expected);
        let mut out = vec![0u8; r.buffer_len()];
        prop_assert_eq!(r.emit(&mut out), Ok(header_len));
        prop_assert_eq!(&out[..], &bytes[..header_len]);
        let back = geneve::Packet::new_checked(&out[..]).unwrap();
        prop_assert_eq!(geneve::Repr::parse(&back), expected);
    }

    /// A VXLAN header written by hand re-emits byte for byte, reserved bits included; a
    /// `Repr` emitted parses back to itself.
    #[test]
    fn vxlan_round_trips(
        vni in 0u32..=0xff_ffff, flags: u8, reserved: [u8; 3], reserved_last: u8,
        payload_len in 0usize..64,
    ) {
        let mut bytes = vec![flags | vxlan::FLAG_I];
        bytes.extend_from_slice(&reserved);
        bytes.extend_from_slice(&vni.to_be_bytes()[1..]);
        bytes.push(reserved_last);
        bytes.extend_from_slice(&bytes_from_seed(vni.into(), payload_len));
        let p = vxlan::Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(p.payload().len(), payload_len);
        let r = vxlan::Repr::parse(&p);
        let expected = vxlan::Repr {
            vni: super::Vni::new(vni).unwrap(),
            reserved_flags: flags & !vxlan::FLAG_I,
            reserved,
            reserved_last,
        };
        prop_assert_eq!(r, expected);
        let mut out = [0u8; vxlan::HEADER_LEN];
        prop_assert_eq!(r.emit(&mut out), Ok(vxlan::HEADER_LEN));
        prop_assert_eq!(&out[..], &bytes[..vxlan::HEADER_LEN]);
        prop_assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&out[..]).unwrap()), r);
    }

    /// Wrapped in Ethernet (tagged or not), IPv4 and UDP, each encapsulation is found at its
    /// port and nowhere else, and the inner packet is where it was put.
    #[test]
    fn decapsulate_finds_the_inner_packet(
        options in geneve_options(), vni in 0u32..=0xff_ffff, inner_len in 0usize..200,
        tags in 0usize..3, vxlan_port in 1u16..,
    ) {
        let vni = super::Vni::new(vni).unwrap();
        let inner = bytes_from_seed(vni.value().into(), inner_len);
        let area = geneve_options_bytes(&options);
        let geneve_repr = geneve::Repr {
            oam: false,
            critical: false,
            protocol: super::EtherType::Ipv4,
            vni,
            options: &area,
            reserved_flags: 0,
            reserved: 0,
        };
        let vxlan_repr = vxlan::Repr::new(vni);
        let vlans = match tags {
            0 => super::Vlans::None,
            1 => super::Vlans::One(super::VlanTag::new(5)),
            _ => super::Vlans::Two(super::VlanTag::new(5), super::VlanTag::new(6)),
        };
        let link = build::Link {
            src: super::EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst: super::EthernetAddress([2, 0, 0, 0, 0, 2]),
            vlans,
        };
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 10));
        let header = 14 + 4 * tags + 20 + 8;
        // By kind, not by port: VXLAN's port may be drawn as GENEVE's 6081.
        let kinds = [(true, geneve::UDP_PORT, geneve_repr.buffer_len()), (false, vxlan_port, 8)];
        for (is_geneve, port, header_len) in kinds {
            let mut payload = vec![0u8; header_len];
            if is_geneve {
                geneve_repr.emit(&mut payload).unwrap();
            } else {
                vxlan_repr.emit(&mut payload).unwrap();
            }
            payload.extend_from_slice(&inner);
            let mut frame = vec![0u8; header + payload.len() + 60];
            let n = build::udp_datagram(&mut frame, &link, (src, 49153), (dst, port), &payload)
                .unwrap();
            frame.truncate(n);
            let found = if is_geneve {
                geneve::decapsulate(&frame, &ChecksumCaps::NONE)
            } else {
                vxlan::decapsulate(&frame, port, &ChecksumCaps::NONE)
            };
            let d = found.unwrap();
            prop_assert_eq!((d.l3, d.udp, d.header), (14 + 4 * tags, header - 8, header));
            prop_assert_eq!(&frame[d.inner..d.end], &inner[..]);
            prop_assert_eq!(d.vni, vni);
            prop_assert_eq!(
                vxlan::decapsulate(&frame, port.wrapping_add(1), &ChecksumCaps::NONE),
                Err(super::Error::TunnelNotEncapsulated)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// A tunnel packet built with random GENEVE options (critical or not, any length that
    /// fits) or a VXLAN header, around an IPv4 datagram: decapsulated, its inner packet is
    /// the one put in; turned around, it goes back with the tunnel header and the inner
    /// packet byte for byte, the outer addresses swapped and every checksum right; moved to
    /// another tunnel and back, it is the packet that came, but for the outer TTL.
    #[test]
    fn encapsulation_round_trips(
        options in geneve_options(), critical: bool, vni in 0u32..=0xff_ffff,
        geneve_tunnel: bool, port in 1u16.., payload_len in 0usize..100, sport: u16,
    ) {
        let vni = super::Vni::new(vni).unwrap();
        let area = geneve_options_bytes(&options);
        let (header, port) = if geneve_tunnel {
            let repr = geneve::Repr {
                oam: false,
                critical,
                protocol: super::EtherType::Ipv4,
                vni,
                options: &area,
                reserved_flags: 0,
                reserved: 0,
            };
            (build::Encap::Geneve(repr), geneve::UDP_PORT)
        } else {
            (build::Encap::Vxlan(vxlan::Repr::new(vni)), port)
        };
        let link = build::Link {
            src: super::EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst: super::EthernetAddress([2, 0, 0, 0, 0, 2]),
            vlans: super::Vlans::None,
        };
        let (client, server) = (Ipv4Addr::new(192, 168, 1, 10), Ipv4Addr::new(198, 51, 100, 7));
        let mut inner = vec![0u8; 14 + 28 + payload_len + 60];
        let payload = bytes_from_seed(u64::from(sport), payload_len);
        let n = build::udp_datagram(&mut inner, &link, (client, sport), (server, 53), &payload)
            .unwrap();
        // GENEVE from AWS carries the IP packet; VXLAN carries the whole Ethernet frame.
        let inner = if geneve_tunnel { &inner[14..14 + 28 + payload_len] } else { &inner[..n] };
        let (lb, us) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 10));
        let mut frame = vec![0u8; 14 + 28 + header.buffer_len() + inner.len() + 60];
        let n = build::encapsulated(&mut frame, &link, (lb, 49153), (us, port), &header, inner)
            .unwrap();
        frame.truncate(n);

        let caps = ChecksumCaps::NONE;
        let d = if geneve_tunnel {
            geneve::decapsulate(&frame, &caps)
        } else {
            vxlan::decapsulate(&frame, port, &caps)
        }
        .unwrap();
        prop_assert_eq!(&frame[d.inner..d.end], inner);
        prop_assert_eq!(d.vni, vni);
        let parsed = super::tunnel::parse_inner(&frame, &d, &caps).unwrap();
        let super::L3::Ipv4(m) = parsed.l3 else {
            panic!("{parsed:?}")
        };
        prop_assert_eq!((m.tuple.src_addr, m.tuple.dst_addr, m.tuple.src_port), (client, server, sport));
        if geneve_tunnel {
            let p = geneve::Packet::new_checked(&frame[d.header..d.end]).unwrap();
            let walked: Vec<_> = p.options().map(Result::unwrap).collect();
            prop_assert_eq!(walked.len(), options.len());
            prop_assert_eq!(p.critical(), critical);
        }

        let mut back = frame.clone();
        super::tunnel::turn_around(&mut back, d.l3, d.udp, None).unwrap();
        prop_assert_eq!(&back[d.header..], &frame[d.header..]);
        let ip = super::Ipv4Packet::new_checked(&back[d.l3..]).unwrap();
        prop_assert_eq!((ip.src_addr(), ip.dst_addr()), (us, lb));
        prop_assert!(ip.verify_checksum());
        let datagram = super::UdpPacket::new_checked(&back[d.udp..d.end]).unwrap();
        prop_assert!(datagram.verify_checksum(us, lb));

        let other = super::Vni::new(vni.value() ^ 0x00a5_5a5a).unwrap();
        super::tunnel::turn_around(&mut back, d.l3, d.udp, Some((port ^ 1, other))).unwrap();
        let datagram = super::UdpPacket::new_checked(&back[d.udp..d.end]).unwrap();
        prop_assert!(datagram.verify_checksum(lb, us));
        super::tunnel::turn_around(&mut back, d.l3, d.udp, Some((port, vni))).unwrap();
        super::tunnel::turn_around(&mut back, d.l3, d.udp, None).unwrap();
        super::Ipv4Packet::new_unchecked(&mut back[d.l3..]).set_ttl(64);
        super::Ipv4Packet::new_unchecked(&mut back[d.l3..]).fill_checksum();
        prop_assert_eq!(back, frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Arbitrary bytes as a tunnel header, mostly with a first byte that passes (GENEVE
    /// version 0 with up to 15 words of options, so that a walk may fit; from 8 on, the
    /// VXLAN I bit): no panic, and what passes re-emits byte for byte (`exercise` checks it,
    /// and walks the options of the raw bytes).
    #[test]
    fn tunnel_headers_never_panic(seed: u64, len in 0usize..80, first in 0u8..16, ragged: bool) {
        let mut bytes = bytes_from_seed(seed, len);
        if let (Some(b), false) = (bytes.first_mut(), ragged) {
            *b = first;
        }
        super::exercise::exercise(&bytes);
    }
}

//! Every parser, accessor and in-place rewrite run over arbitrary bytes, with the invariants
//! that must hold whatever the input. Shared by the fuzz target (`appliance/fuzz`) and the
//! "parsing never panics" property test, so both check the same thing.

use std::net::Ipv4Addr;

use super::build::{self, Link, Unreachable};
use super::icmp::TimeExceeded;
use super::translate::{translate, ChecksumDeltas, Transport};
use super::{
    arp, geneve, icmp, ipv4, ipv6, tcp, tunnel, udp, vxlan, ChecksumCaps, Decap, Endpoint, Error,
    EthernetAddress, EthernetFrame, FiveTuple, IpProtocol, Vlans, Vni, L3, L4,
};

const LINK: Link = Link {
    src: EthernetAddress([2, 0, 0, 0, 0, 1]),
    dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
    vlans: Vlans::None,
};

/// Run everything on `data` as an Ethernet frame and as each L3/L4 header directly.
///
/// Panics only if an invariant breaks: a view or a rewrite panicked, an incremental rewrite
/// turned a valid checksum into an invalid one, or the fast path of `parse_frame` disagreed
/// with its general path. `data` is not modified (rewrites run
/// on copies).
pub fn exercise(data: &[u8]) {
    for caps in [ChecksumCaps::NONE, ChecksumCaps::ALL] {
        let parsed = super::parse_frame(data, &caps);
        assert_eq!(
            parsed,
            super::parse::parse_frame_general(data, &caps),
            "fast path and general walk disagree"
        );
        if let Ok(frame) = parsed {
            if let L3::Ipv4(meta) = frame.l3 {
                assert!(meta.l4_offset() <= meta.l3_end() && meta.l3_end() <= data.len());
                if meta.l4 == L4::Udp {
                    decapsulated(data, meta.tuple.dst_port, &caps);
                }
            }
        }
    }
    if let Ok(f) = EthernetFrame::new_checked(data) {
        let _ = (f.src_addr(), f.dst_addr(), f.ethertype());
        if let Ok(r) = super::EthernetRepr::parse(&f) {
            let mut out = [0u8; 32];
            let n = r.emit(&mut out).expect("ethernet header fits");
            assert_eq!(out[..n], data[..n], "ethernet round trip");
        }
        if let Ok(payload) = f.payload() {
            l3(payload);
        }
    }
    l3(data);
    l4_all(data, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    tunnel_headers(data);
}

/// `data` as the payload of a tunnel's UDP datagram: a header that passes its checks walks
/// and re-emits byte for byte.
fn tunnel_headers(data: &[u8]) {
    for _ in geneve::Options::new(data) {}
    if let Ok(p) = geneve::Packet::new_checked(data) {
        let _ = (p.version(), p.oam(), p.critical(), p.protocol(), p.vni());
        assert!(
            p.options().all(|o| o.is_ok()),
            "a checked header's options fit"
        );
        assert_eq!(p.header_len() + p.payload().len(), data.len());
        let r = geneve::Repr::parse(&p);
        let mut out = [0u8; geneve::HEADER_LEN + geneve::MAX_OPTIONS_LEN];
        let n = r.emit(&mut out).expect("a parsed header emits");
        assert_eq!(out[..n], data[..p.header_len()], "geneve round trip");
    }
    if let Ok(p) = vxlan::Packet::new_checked(data) {
        let r = vxlan::Repr::parse(&p);
        let mut out = [0u8; vxlan::HEADER_LEN];
        r.emit(&mut out).expect("a vxlan header fits");
        assert_eq!(out[..], data[..vxlan::HEADER_LEN], "vxlan round trip");
        assert_eq!(p.payload().len(), data.len() - vxlan::HEADER_LEN);
    }
}

/// A frame carrying UDP to `port` taken apart as a tunnel packet, GENEVE at its port and
/// VXLAN at `port`: the parts lie in order inside the frame, and the header at `header`
/// is one its own view accepts, ending at `inner`.
fn decapsulated(frame: &[u8], port: u16, caps: &ChecksumCaps) {
    let in_order = |d: &Decap| {
        assert!(d.l3 < d.udp && d.udp + udp::HEADER_LEN == d.header, "{d:?}");
        assert!(
            d.header < d.inner && d.inner <= d.end && d.end <= frame.len(),
            "{d:?}"
        );
    };
    if let Ok(d) = geneve::decapsulate(frame, caps) {
        in_order(&d);
        let p = geneve::Packet::new_checked(&frame[d.header..d.end]).expect("checked");
        assert_eq!(d.header + p.header_len(), d.inner);
        assert_eq!((p.protocol(), p.vni()), (d.inner_type, d.vni));
        turned_around(frame, &d, caps);
    }
    if let Ok(d) = vxlan::decapsulate(frame, port, caps) {
        in_order(&d);
        assert_eq!(d.header + vxlan::HEADER_LEN, d.inner);
        let p = vxlan::Packet::new_checked(&frame[d.header..d.end]).expect("checked");
        assert_eq!(p.vni(), d.vni);
        turned_around(frame, &d, caps);
    }
}

/// A tunnel packet's inner packet, parsed, lies inside the datagram; turned around, the
/// packet goes back with its tunnel header and inner packet unchanged and its checksums as
/// right as they were, and moved to another tunnel, with only the port and VNI changed.
fn turned_around(frame: &[u8], d: &Decap, caps: &ChecksumCaps) {
    if let Ok(inner) = tunnel::parse_inner(frame, d, caps) {
        assert!((d.inner..=d.end).contains(&inner.l3_offset()), "{d:?}");
        if let L3::Ipv4(m) = inner.l3 {
            assert!(m.l4_offset() <= m.l3_end() && m.l3_end() <= d.end, "{d:?}");
        }
    }
    let udp_ok = |f: &[u8]| {
        let ip = ipv4::Packet::new_checked(&f[d.l3..]).expect("checked");
        let datagram = udp::Packet::new_checked(&f[d.udp..d.end]).expect("checked");
        datagram.checksum() == 0 || datagram.verify_checksum(ip.src_addr(), ip.dst_addr())
    };
    let ip_ok = |f: &[u8]| ipv4::Packet::new_checked(&f[d.l3..]).is_ok_and(|p| p.verify_checksum());
    let mut back = frame.to_vec();
    tunnel::turn_around(&mut back, d.l3, d.udp, None).expect("the headers fit");
    assert_eq!(back[d.header..], frame[d.header..], "header and inner kept");
    assert_eq!((&back[..6], &back[6..12]), (&frame[6..12], &frame[..6]));
    assert_eq!(ip_ok(&back), ip_ok(frame), "ipv4 checksum");
    assert_eq!(udp_ok(&back), udp_ok(frame), "udp checksum");
    let other = Vni::new(d.vni.value() ^ 0x5a5a5a).expect("24 bits");
    tunnel::turn_around(&mut back, d.l3, d.udp, Some((0x2a31, other))).expect("fits");
    assert_eq!(back[d.inner..], frame[d.inner..], "inner kept");
    assert_eq!(ip_ok(&back), ip_ok(frame), "ipv4 checksum, other tunnel");
    assert_eq!(udp_ok(&back), udp_ok(frame), "udp checksum, other tunnel");
}

fn l3(data: &[u8]) {
    ipv4_checks(data);
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = ipv6::Repr::parse(&p);
        if let Ok(s) = p.summary() {
            assert!(s.l4_offset() <= data.len());
        }
    }
    if let Ok(p) = arp::Packet::new_checked(data) {
        if let Ok(r) = arp::Repr::parse(&p) {
            let mut out = [0u8; arp::PACKET_LEN];
            r.emit(&mut out).expect("arp fits");
            assert_eq!(out[..], data[..arp::PACKET_LEN], "arp round trip");
        }
    }
}

fn ipv4_checks(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else {
        return;
    };
    let _ = ipv4::Repr::parse(&p, &ChecksumCaps::NONE);
    for _ in p.options() {}
    let _ = p.five_tuple();
    let (src, dst) = (p.src_addr(), p.dst_addr());
    l4_all(p.payload(), src, dst);
    let valid = p.verify_checksum();

    let mut buf = [0u8; 1600];
    for why in [Unreachable::Port, Unreachable::FragNeeded { mtu: 1280 }] {
        let _ = build::icmp_dst_unreachable(&mut buf, &LINK, src, data, why);
    }
    let _ = build::icmp_time_exceeded(&mut buf, &LINK, dst, data, TimeExceeded::TtlExpired);
    let _ = build::icmp_echo_reply(&mut buf, &LINK, data);
    let _ = build::tcp_rst(&mut buf, &LINK, data);
    let _ = build::tcp_syn_ack(&mut buf, &LINK, data, 1);

    // In-place rewrites on a copy: a checksum that verified must still verify.
    let mut copy = data.to_vec();
    let mut q = ipv4::Packet::new_checked(&mut copy[..]).expect("same bytes");
    if q.decrement_ttl().is_ok() {
        assert_eq!(q.verify_checksum(), valid, "ttl decrement");
    }
    let new_addr = Ipv4Addr::new(203, 0, 113, 77);
    if let Ok(old) = q.five_tuple() {
        translate_checks(&mut q.as_ref().to_vec(), &old, new_addr, valid);
    }
    let icmp_valid = icmp_checksum_ok(&q);
    if q.translate_icmp_error(Endpoint::Src, new_addr, 4242)
        .is_ok()
    {
        assert_eq!(icmp_checksum_ok(&q), icmp_valid, "icmp error translation");
    }
    q.rewrite_addr_only(Endpoint::Dst, Ipv4Addr::new(10, 9, 8, 7));
    assert_eq!(q.verify_checksum(), valid, "address-only rewrite");
}

/// The NAT rewrite of a session's packet (the source endpoint to `new_addr`, as SNAT does),
/// on a packet whose tuple `old` parsed: checksums that verified still verify, and the
/// packet carries the new tuple, one hop older. Only what has sessions is translated: TCP,
/// UDP and ICMP echo, first fragments alone.
fn translate_checks(pkt: &mut [u8], old: &FiveTuple, new_addr: Ipv4Addr, valid: bool) {
    let q = ipv4::Packet::new_checked(&*pkt).expect("it parsed");
    let echo = old.protocol == IpProtocol::ICMP && icmp::is_echo(q.payload_slice()[0]);
    if !(matches!(old.protocol, IpProtocol::TCP | IpProtocol::UDP) || echo) || q.is_fragment() {
        return;
    }
    let new = FiveTuple {
        src_addr: new_addr,
        src_port: 61000,
        dst_port: if echo { 61000 } else { old.dst_port },
        ..*old
    };
    let l4_valid = l4_checksum_ok(&q);
    let ttl = q.ttl();
    let at = q.offsets();
    let (addrs, ports) = wire(&new);
    let deltas = ChecksumDeltas::between(old, &new);
    let out = translate(pkt, &at, Transport::of(old.protocol), addrs, ports, deltas);
    let q = ipv4::Packet::new_checked(&*pkt).expect("same length");
    if ttl <= 1 {
        assert!(!out, "no translation once the TTL runs out");
        return;
    }
    assert!(out, "translated");
    assert_eq!(q.five_tuple(), Ok(new), "translated tuple");
    assert_eq!(q.ttl(), ttl - 1);
    assert_eq!(q.verify_checksum(), valid, "translation ip checksum");
    if l4_valid == Some(true) {
        assert_eq!(l4_checksum_ok(&q), Some(true), "translation l4 checksum");
    }
}

fn l4_checksum_ok<T: AsRef<[u8]>>(p: &ipv4::Packet<T>) -> Option<bool> {
    if !p.is_first_fragment() || p.is_fragment() {
        return None;
    }
    let (s, d, l4) = (p.src_addr(), p.dst_addr(), p.payload_slice());
    match p.protocol() {
        IpProtocol::TCP => tcp::Packet::new_checked(l4)
            .ok()
            .map(|t| t.verify_checksum(s, d)),
        IpProtocol::UDP => udp::Packet::new_checked(l4)
            .ok()
            .map(|u| u.verify_checksum(s, d)),
        IpProtocol::ICMP => icmp::Packet::new_checked(l4)
            .ok()
            .map(|i| i.verify_checksum()),
        _ => None,
    }
}

fn icmp_checksum_ok<T: AsRef<[u8]>>(p: &ipv4::Packet<T>) -> Option<bool> {
    icmp::Packet::new_checked(p.payload_slice())
        .ok()
        .map(|i| i.verify_checksum())
}

fn l4_all(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    if let Ok(t) = tcp::Packet::new_checked(data) {
        let _ = (t.flags(), t.segment_len(), t.payload());
        for _ in t.options() {}
        if let Ok(r) = tcp::Repr::parse(&t, src, dst, &ChecksumCaps::ALL) {
            let emit = |out: &mut [u8]| r.emit(out, src, dst, &ChecksumCaps::NONE);
            if let Some(out) = emitted(r.buffer_len(), emit) {
                let back = tcp::Packet::new_checked(&out[..]).expect("emitted tcp parses");
                let r2 = tcp::Repr::parse(&back, src, dst, &ChecksumCaps::NONE).expect("valid");
                assert_eq!(r2, r, "tcp round trip");
            }
        }
        let mut copy = data.to_vec();
        let mut m = tcp::Packet::new_checked(&mut copy[..]).expect("same bytes");
        let ok = m.verify_checksum(src, dst);
        if m.clamp_mss(536) {
            assert_eq!(m.verify_checksum(src, dst), ok, "mss clamp");
        }
    }
    if let Ok(u) = udp::Packet::new_checked(data) {
        tunnel_headers(u.payload());
        if let Ok(r) = udp::Repr::parse(&u, src, dst, &ChecksumCaps::NONE) {
            let emit = |out: &mut [u8]| r.emit(out, src, dst, &ChecksumCaps::NONE);
            if let Some(out) = emitted(r.buffer_len(), emit) {
                assert_eq!(out[..4], data[..4]);
                let back = udp::Packet::new_checked(&out[..]).expect("emitted udp parses");
                assert!(back.verify_checksum(src, dst));
            }
        }
    }
    if let Ok(i) = icmp::Packet::new_checked(data) {
        let _ = (i.echo_ident(), i.next_hop_mtu(), i.pointer(), i.gateway());
        if let Ok(q) = i.quote() {
            let _ = (q.five_tuple(), q.l4_bytes(), q.total_len(), q.ip_checksum());
        }
        if let Ok(r) = icmp::Repr::parse(&i) {
            if let Some(out) = emitted(r.buffer_len(), |out| r.emit(out)) {
                let back = icmp::Packet::new_checked(&out[..]).expect("emitted icmp parses");
                assert_eq!(icmp::Repr::parse(&back), Ok(r), "icmp round trip");
            }
        }
    }
}

/// What a `Repr` of `len` bytes writes with `emit`, or `None` if it is longer than a frame.
fn emitted(len: usize, emit: impl FnOnce(&mut [u8]) -> Result<usize, Error>) -> Option<Vec<u8>> {
    if len > 1600 {
        return None;
    }
    let mut out = vec![0u8; len];
    let n = emit(&mut out).expect("fits");
    out.truncate(n);
    Some(out)
}

/// The `addrs` and `ports` that [`translate`] writes to give a packet the tuple `t`: in wire
/// order, for ICMP echo the identifier first.
pub(crate) fn wire(t: &FiveTuple) -> ([u8; 8], [u8; 4]) {
    let mut addrs = [0u8; 8];
    addrs[..4].copy_from_slice(&t.src_addr.octets());
    addrs[4..].copy_from_slice(&t.dst_addr.octets());
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&t.src_port.to_be_bytes());
    ports[2..].copy_from_slice(&t.dst_port.to_be_bytes());
    (addrs, ports)
}

//! Minimal reproducers of pipeline bugs the whole-pipeline fuzz target (`appliance/fuzz`,
//! target `pipeline`) found, on the public API. Each test states the property that broke;
//! it fails until the bug is fixed.

use appliance::packet::Ipv4Packet;
use appliance::pipeline::Disposition;
use appliance::testing::*;
use std::net::Ipv4Addr;

fn inside(a: Ipv4Addr) -> bool {
    a.octets()[..3] == [10, 0, 1]
}

/// Found by the `pipeline` fuzz target (invariant: nothing sent out of the outside port
/// quotes an inside address in an ICMP error).
///
/// An inside host's flow to another inside address is source-NATed like egress and sent back
/// out of the inside port, so the session's remote endpoint is an inside host. An ICMP error
/// from inside about that session is then forwarded to whatever its outer header names, even
/// an outside host that is not the quoted packet's source, and only the quoted destination is
/// translated: the other inside host's address leaves by the outside port inside the quote.
/// An error from inside should go to the quoted packet's source (RFC 5508 section 4.2: the
/// outer destination of a translated error matches the restored quote), so an error whose
/// outer destination is not its quoted source (here: outside vs inside) should be dropped.
#[test]
fn icmp_error_from_inside_does_not_leak_an_inside_address_outside() {
    let mut n = Net::new("");
    // C1 talks to C2 through the appliance (a host with a wrong netmask, or a routed inside
    // network). Fixed first by not carrying inside-to-inside traffic at all: it is dropped
    // (`private_destination`), so no session has an inside host as its remote end.
    let (a, _) = n.send(LAN, udp((C1, 5000), (C2, 5000), IN));
    assert!(
        matches!(a, Disposition::Drop(_)),
        "inside-to-inside is not carried: {a:?}"
    );
    // And an error from inside must go to the source of the packet it quotes: a session
    // with an outside remote, and an error about it addressed elsewhere, is dropped.
    let (a, _) = n.send(LAN, udp((C1, 5001), (SERVER, 53), IN));
    assert_eq!(a, Disposition::Forward(WAN), "set-up: egress");
    let reply = udp((SERVER, 53), (PUBLIC, 5001), OUT);
    let (a, delivered) = n.send(WAN, &reply);
    assert_eq!(a, Disposition::Forward(LAN), "set-up: the reply comes in");
    let mut err = error_about(&delivered, C1, IN, 0);
    let mut ip = Ipv4Packet::new_checked(&mut err[14..]).unwrap();
    ip.set_dst_addr(Ipv4Addr::new(203, 0, 113, 99)); // not the quoted packet's source
    ip.fill_checksum();
    let (a, _) = n.send(LAN, &err);
    assert!(
        matches!(a, Disposition::Drop(_)),
        "misaddressed error dropped: {a:?}"
    );
    // C1 reports an error about C2's packet to it, addressed to an outside server.
    let offending = udp((C2, 5000), (C1, 5000), IN2);
    let mut buf = error_about(&offending, C1, IN, 0);
    // The error's outer destination: rewrite it from C2 to SERVER.
    let mut ip = Ipv4Packet::new_checked(&mut buf[14..]).unwrap();
    ip.set_dst_addr(SERVER);
    ip.fill_checksum();
    let (a, out) = n.send(LAN, &buf);
    if a == Disposition::Forward(WAN) {
        let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
        let ((q_src, q_sport), (q_dst, q_dport)) = quoted(&out);
        assert!(
            !inside(ip.src_addr()) && !inside(q_src) && !inside(q_dst),
            "sent out of the outside port to {}: outer source {}, quote {q_src}:{q_sport} -> \
             {q_dst}:{q_dport}",
            ip.dst_addr(),
            ip.src_addr(),
        );
    }
}

/// Found by the `pipeline` fuzz target (a time exceeded sent out of the outside port quoted a
/// packet from an inside address that had arrived on the outside port).
///
/// Spoofed sources are only checked on the slow path (`spoofed_source` for a packet from
/// outside with an inside source). A packet arriving on the outside port whose tuple is a
/// live session's *inside* key (an inside host's source address and port) takes the fast
/// path as if it came from that host: it is source-NATed and forwarded. Anyone outside who
/// knows or guesses a flow's tuple can inject packets into it (and into hairpinned flows,
/// reach the inside host behind them). DESIGN.md classes such a packet as invalid.
#[test]
fn packet_from_outside_with_an_inside_source_never_uses_a_session() {
    let mut n = Net::new("");
    let (a, _) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
    assert_eq!(a, Disposition::Forward(WAN), "set-up: egress flow");
    // The same tuple, arriving on the outside port.
    let spoofed = udp((C1, 5000), (SERVER, 53), OUT);
    let (a, out) = n.send(WAN, &spoofed);
    assert!(
        matches!(a, Disposition::Drop(_)),
        "a packet from outside with the inside source {C1} was {a:?}: {out:02x?}"
    );
}

//! NAT behavioural requirements (RFC 4787 UDP, RFC 5382 TCP, RFC 5508 ICMP) that no other
//! test showed, on the public pipeline API: one or two shards on the two-arm topology of
//! `appliance::testing` (the fixtures every pipeline test shares), frames as byte vectors. `docs/rfc-conformance.md` cites each test by
//! name. Where we deviate from a requirement, the test asserts what we do and says so: if
//! one of those starts failing, the behaviour changed and the document must change with it.

use appliance::config::Config;
use appliance::flow::{FlowKey, TcpState};
use appliance::packet::{IcmpPacket, IpProtocol, Ipv4Packet, TcpFlags};
use appliance::pipeline::{Discard, Disposition, Reason};
use appliance::policy::Policy;
use std::net::Ipv4Addr;

use appliance::testing::*;

fn forwarded(a: Disposition, port: u8) {
    assert_eq!(a, Disposition::Forward(port));
}

fn dropped(a: Disposition, why: Discard) {
    assert_eq!(a, Disposition::Drop(Reason::from(why)));
}

/// Offsets in an untagged frame: the IP header, the ICMP header, the quoted IP header.
const IP: usize = 14;
const ICMP: usize = 34;
const QUOTE: usize = 42;

/// Recomputes the ICMP checksum of an untagged frame (after editing the quote).
fn fix_icmp_checksum(f: &mut [u8]) {
    let ip = Ipv4Packet::new_checked(&f[IP..]).unwrap();
    let end = IP + ip.total_len();
    let mut icmp = IcmpPacket::new_checked(&mut f[ICMP..end]).unwrap();
    icmp.fill_checksum();
}

// --- RFC 4787: UDP ----------------------------------------------------------------------

mod rfc4787 {
    use super::*;

    /// REQ-2: every flow of one inside host leaves from the same public address of the pool
    /// (paired pooling), whatever the destination and whatever the mapping mode.
    #[test]
    fn req2_paired_pooling_one_public_address_per_host() {
        for mapping in ["endpoint-independent", "endpoint-dependent"] {
            let mut n = Net::new(&format!(
                "[nat]\naddresses = [\"192.0.2.8/30\"]\nmapping = \"{mapping}\"\n"
            ));
            let mut seen_by: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
            for (host, macs) in [(C1, IN), (C2, IN2)] {
                for (i, dst) in [SERVER, OTHER, ROUTER].into_iter().enumerate() {
                    let (a, f) = n.send(LAN, udp((host, 5000 + i as u16), (dst, 53), macs));
                    forwarded(a, WAN);
                    seen_by.push((host, seen(&f).src.0));
                }
            }
            for (host, public) in &seen_by {
                let first = seen_by.iter().find(|(h, _)| h == host).unwrap().1;
                assert_eq!(*public, first, "{mapping}: {host} always leaves as {first}");
                assert!(
                    (8..12).contains(&public.octets()[3]),
                    "{public} is in the pool"
                );
            }
        }
    }

    /// REQ-3a (deviation): a source port below 1024 is not kept below 1024; it gets a port of
    /// `nat.port_range` (1024-65535 by default). Ports at or above 1024 stay there.
    #[test]
    fn req3a_low_source_ports_leave_from_the_snat_range() {
        let mut n = Net::new("");
        let (_, f) = n.send(LAN, udp((C1, 123), (SERVER, 123), IN));
        assert!(seen(&f).src.1 >= 1024, "{:?}", seen(&f).src);
        let (_, f) = n.send(LAN, udp((C1, 40000), (SERVER, 123), IN));
        assert_eq!(seen(&f).src.1, 40000);
    }

    /// REQ-4 (deviation): a port that cannot be kept is replaced by a random free one, of
    /// either parity.
    #[test]
    fn req4_replacement_ports_do_not_keep_parity() {
        let mut n = Net::new("");
        let mut parities = [0u32; 2];
        for i in 0..64u16 {
            let port = 20000 + 2 * i; // even
            n.send(LAN, udp((C1, port), (SERVER, 53), IN));
            let (a, f) = n.send(LAN, udp((C2, port), (SERVER, 53), IN2));
            forwarded(a, WAN);
            let public = seen(&f).src.1;
            assert_ne!(public, port, "the port is C1's");
            parities[usize::from(public % 2)] += 1;
        }
        assert!(
            parities[1] > 0,
            "odd replacements for even ports: {parities:?}"
        );
    }

    /// REQ-6: packets from inside keep the mapping alive past the UDP timeout; REQ-6a:
    /// packets from outside do too.
    #[test]
    fn req6_outbound_and_inbound_packets_refresh_the_mapping() {
        for inbound in [false, true] {
            let mut n = Net::new("");
            let (_, f) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
            let public = seen(&f).src;
            for _ in 0..4 {
                n.now += 200;
                n.expire_all();
                let (a, _) = if inbound {
                    n.send(WAN, udp((SERVER, 53), public, OUT))
                } else {
                    n.send(LAN, udp((C1, 5000), (SERVER, 53), IN))
                };
                assert!(
                    matches!(a, Disposition::Forward(_)),
                    "inbound {inbound}: {a:?}"
                );
            }
            assert_eq!(n.sessions(), 1, "alive after 800 s of traffic");
            n.now += 301;
            n.expire_all();
            assert_eq!(n.sessions(), 0, "and gone 300 s after the last packet");
        }
    }

    /// REQ-9a: a hairpinned packet reaches the other inside host from the sender's public
    /// address and port. REQ-9 deviation: the hairpin is admitted by endpoint-independent
    /// filtering whatever `nat.filtering` says (here the default,
    /// address-and-port-dependent, under which the same packet from outside is dropped).
    #[test]
    fn req9a_hairpinned_udp_comes_from_the_senders_public_endpoint() {
        let mut n = Net::new("");
        let (_, f) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        let c1_public = seen(&f).src;
        let (_, f) = n.send(LAN, udp((C2, 6000), (SERVER, 53), IN2));
        let c2_public = seen(&f).src;
        let (a, f) = n.send(LAN, udp((C2, 6000), c1_public, IN2));
        forwarded(a, LAN);
        let s = seen(&f);
        assert_eq!((s.src, s.dst), (c2_public, (C1, 5000)));
        assert_eq!(s.dst_mac, MAC_C1);
        // The reply goes back the same way, to C2's public endpoint.
        let (a, f) = n.send(LAN, udp((C1, 5000), c2_public, IN));
        forwarded(a, LAN);
        assert_eq!((seen(&f).src, seen(&f).dst), (c1_public, (C2, 6000)));
        // The same packet from an outside host C1 never sent to is filtered.
        let (a, _) = n.send(WAN, udp((OTHER, 6000), c1_public, OUT));
        dropped(a, Discard::NoForward);
    }

    /// REQ-11: the mapping behaviour does not change when the inside port cannot be kept:
    /// the replacement port is reused for every destination, as a preserved port would be.
    #[test]
    fn req11_mapping_stays_endpoint_independent_under_port_contention() {
        let mut n = Net::new("");
        n.send(LAN, udp((C2, 7000), (SERVER, 53), IN2));
        let (_, f1) = n.send(LAN, udp((C1, 7000), (SERVER, 53), IN));
        let (_, f2) = n.send(LAN, udp((C1, 7000), (OTHER, 53), IN));
        let (_, f3) = n.send(LAN, udp((C1, 7000), (ROUTER, 9), IN));
        let p = seen(&f1).src;
        assert_ne!(p.1, 7000);
        assert_eq!((seen(&f2).src, seen(&f3).src), (p, p));
    }

    /// REQ-12: an ICMP error about a session leaves the session and its mapping in place:
    /// the next packets both ways pass with the same public endpoint.
    #[test]
    fn req12_icmp_errors_do_not_end_the_mapping() {
        for kind in 0..3 {
            let mut n = Net::new("");
            let (_, sent) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
            let public = seen(&sent).src;
            let (a, _) = n.send(WAN, error_about(&sent, SERVER, OUT, kind));
            forwarded(a, LAN);
            assert_eq!(n.sessions(), 1);
            let (a, f) = n.send(LAN, udp((C1, 5000), (OTHER, 53), IN));
            forwarded(a, WAN);
            assert_eq!(seen(&f).src, public, "same mapping");
            let (a, _) = n.send(WAN, udp((SERVER, 53), public, OUT));
            forwarded(a, LAN);
        }
    }

    /// REQ-13 and REQ-13a (deviation): the pipeline knows no port MTU. A packet larger than
    /// the outside port's `mtu` leaves whole, DF set or not: no "fragmentation needed" is
    /// sent back and nothing is fragmented (the NIC drops what it cannot send).
    #[test]
    fn req13_oversized_packets_are_neither_refused_nor_fragmented() {
        let mut n = Net::new("");
        let mut wan_mtu = BASE.replace(
            "gateway = \"192.0.2.1\"",
            "gateway = \"192.0.2.1\"\nmtu = 1280",
        );
        wan_mtu.push('\n');
        n.policy = Policy::compile(&Config::parse(&wan_mtu, "t").unwrap(), 2).unwrap();
        for df in [true, false] {
            let big = udp_sized((C1, 5000), (SERVER, 53), IN, &[7u8; 1400], df);
            let len = big.len();
            let (a, f) = n.send(LAN, big);
            forwarded(a, WAN);
            assert_eq!(f.len(), len, "DF {df}: sent whole");
        }
    }

    /// REQ-14 (deviation): non-first fragments have no ports to find a session with and are
    /// dropped (`fragment`); there is no reassembly. A first fragment is translated like an
    /// unfragmented packet, so only unfragmented traffic works.
    #[test]
    fn req14_non_first_fragments_are_dropped() {
        let mut n = Net::new("");
        let (a, first) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        forwarded(a, WAN);
        let _ = first;
        for (port, mut f) in [
            (LAN, udp((C1, 5000), (SERVER, 53), IN)),
            (WAN, udp((SERVER, 53), (PUBLIC, 5000), OUT)),
        ] {
            let mut ip = Ipv4Packet::new_checked(&mut f[IP..]).unwrap();
            ip.set_frag(false, false, 185 * 8);
            ip.fill_checksum();
            let (a, _) = n.send(port, f);
            dropped(a, Discard::Fragment);
        }
    }
}

// --- RFC 5382: TCP ----------------------------------------------------------------------

mod rfc5382 {
    use super::*;

    fn handshake(n: &mut Net, from: (Ipv4Addr, u16), to: (Ipv4Addr, u16)) -> (Ipv4Addr, u16) {
        let (a, f) = n.send(LAN, tcp(from, to, TcpFlags::SYN, IN));
        forwarded(a, WAN);
        let public = seen(&f).src;
        let (a, _) = n.send(WAN, tcp(to, public, TcpFlags::SYN | TcpFlags::ACK, OUT));
        forwarded(a, LAN);
        let (a, _) = n.send(LAN, tcp(from, to, TcpFlags::ACK, IN));
        forwarded(a, WAN);
        public
    }

    /// REQ-1: one inside endpoint's TCP connections to different destinations share one
    /// public endpoint.
    #[test]
    fn req1_tcp_mapping_is_endpoint_independent() {
        let mut n = Net::new("");
        let p1 = handshake(&mut n, (C1, 40000), (SERVER, 443));
        let p2 = handshake(&mut n, (C1, 40000), (OTHER, 80));
        assert_eq!(p1, p2);
        assert_eq!(p1, (PUBLIC, 40000), "port preserved");
    }

    /// REQ-2: simultaneous open (both sides send a SYN, then both SYN-ACK) establishes the
    /// connection through the NAT.
    #[test]
    fn req2_simultaneous_open() {
        let mut n = Net::new("");
        let (a, f) = n.send(LAN, tcp((C1, 40000), (SERVER, 5001), TcpFlags::SYN, IN));
        forwarded(a, WAN);
        let public = seen(&f).src;
        let (a, f) = n.send(WAN, tcp((SERVER, 5001), public, TcpFlags::SYN, OUT));
        forwarded(a, LAN);
        assert_eq!(seen(&f).dst, (C1, 40000));
        let sa = TcpFlags::SYN | TcpFlags::ACK;
        let (a, _) = n.send(LAN, tcp((C1, 40000), (SERVER, 5001), sa, IN));
        forwarded(a, WAN);
        let (a, _) = n.send(WAN, tcp((SERVER, 5001), public, sa, OUT));
        forwarded(a, LAN);
        for (port, frame) in [
            (LAN, tcp((C1, 40000), (SERVER, 5001), TcpFlags::ACK, IN)),
            (WAN, tcp((SERVER, 5001), public, TcpFlags::ACK, OUT)),
        ] {
            let (a, _) = n.send(port, frame);
            assert!(matches!(a, Disposition::Forward(_)), "{a:?}");
        }
        let key = FlowKey::new(C1, SERVER, 40000, 5001, IpProtocol::TCP);
        assert_eq!(n.session(&key).unwrap().0, TcpState::Established);
    }

    /// REQ-3 and REQ-3a: TCP follows `nat.filtering` like UDP (one setting for both, so
    /// REQ-3b's independent setting is not offered): with endpoint-independent filtering a
    /// SYN from any outside host to a live TCP mapping is admitted; by default
    /// (address-and-port-dependent) it is not.
    #[test]
    fn req3_tcp_filtering_follows_the_setting() {
        for (filtering, admitted) in [
            ("endpoint-independent", true),
            ("address-dependent", false),
            ("address-and-port-dependent", false),
        ] {
            let mut n = Net::new(&format!("[nat]\nfiltering = \"{filtering}\"\n"));
            let public = handshake(&mut n, (C1, 40000), (SERVER, 443));
            let (a, f) = n.send(WAN, tcp((OTHER, 1234), public, TcpFlags::SYN, OUT));
            if admitted {
                forwarded(a, LAN);
                assert_eq!(seen(&f).dst, (C1, 40000));
            } else {
                dropped(a, Discard::NoForward);
            }
        }
    }

    /// REQ-4 and REQ-4a: an unsolicited SYN is dropped silently (no RST, no ICMP: the
    /// ingress policy forbids answering). When the inside host then sends its own SYN, the
    /// outside host's retransmitted SYN passes: simultaneous open works.
    #[test]
    fn req4_unsolicited_syn_is_dropped_silently_then_the_outbound_syn_opens() {
        let mut n = Net::new("[nat]\nfiltering = \"endpoint-independent\"\n");
        let (a, _) = n.send(
            WAN,
            tcp((SERVER, 5001), (PUBLIC, 40000), TcpFlags::SYN, OUT),
        );
        dropped(a, Discard::NoForward);
        assert_eq!(n.sessions(), 0);
        n.now += 2;
        let (a, _) = n.send(LAN, tcp((C1, 40000), (SERVER, 5001), TcpFlags::SYN, IN));
        forwarded(a, WAN);
        let (a, f) = n.send(
            WAN,
            tcp((SERVER, 5001), (PUBLIC, 40000), TcpFlags::SYN, OUT),
        );
        forwarded(a, LAN);
        assert_eq!(seen(&f).dst, (C1, 40000));
    }

    /// REQ-5: a connection that is opening (SYN sent) lives the transitory timeout, at least
    /// 4 minutes.
    #[test]
    fn req5_transitory_timeout_is_four_minutes() {
        let mut n = Net::new("");
        n.send(LAN, tcp((C1, 40000), (SERVER, 443), TcpFlags::SYN, IN));
        n.now += 239;
        n.expire_all();
        assert_eq!(n.sessions(), 1);
        n.now += 2;
        n.expire_all();
        assert_eq!(n.sessions(), 0);
    }

    /// REQ-7: a public port in use by one inside host's TCP connection is not given to
    /// another's, even towards another destination.
    #[test]
    fn req7_tcp_ports_are_not_overloaded() {
        let mut n = Net::new("");
        let p1 = handshake(&mut n, (C1, 40000), (SERVER, 443));
        let (a, f) = n.send(LAN, tcp((C2, 40000), (OTHER, 443), TcpFlags::SYN, IN2));
        forwarded(a, WAN);
        assert_eq!(p1.1, 40000);
        assert_ne!(seen(&f).src.1, 40000);
    }

    /// REQ-8a: a hairpinned TCP connection reaches the target from the client's public
    /// address and port (the endpoint-independent mapping the client has outside too).
    #[test]
    fn req8a_hairpinned_tcp_comes_from_the_senders_public_endpoint() {
        let mut n = Net::new("");
        let client_public = handshake(&mut n, (C1, 41000), (SERVER, 443));
        let (a, f) = n.send(LAN, tcp((C1, 41000), (PUBLIC, 8080), TcpFlags::SYN, IN));
        forwarded(a, LAN);
        let s = seen(&f);
        assert_eq!((s.src, s.dst), (client_public, (C2, 80)));
    }

    /// REQ-10: ICMP errors about an established connection (port unreachable, time
    /// exceeded, fragmentation needed) are forwarded and leave it established.
    #[test]
    fn req10_icmp_errors_leave_the_tcp_session_established() {
        let mut n = Net::new("");
        let public = handshake(&mut n, (C1, 40000), (SERVER, 443));
        let (_, sent) = n.send(LAN, tcp((C1, 40000), (SERVER, 443), TcpFlags::ACK, IN));
        for kind in 0..3 {
            let (a, _) = n.send(WAN, error_about(&sent, ROUTER, OUT, kind));
            forwarded(a, LAN);
        }
        let key = FlowKey::new(C1, SERVER, 40000, 443, IpProtocol::TCP);
        assert_eq!(n.session(&key).unwrap().0, TcpState::Established);
        let (a, _) = n.send(WAN, tcp((SERVER, 443), public, TcpFlags::ACK, OUT));
        forwarded(a, LAN);
    }
}

// --- RFC 5508: ICMP ---------------------------------------------------------------------

mod rfc5508 {
    use super::*;

    /// REQ-1a: one inside host's echo identifier keeps its public identifier for every
    /// destination.
    #[test]
    fn req1a_echo_identifier_mapping_is_endpoint_independent() {
        let mut n = Net::new("");
        n.send(LAN, echo(C2, SERVER, 77, true, IN2)); // takes 77 first
        let (_, f1) = n.send(LAN, echo(C1, SERVER, 77, true, IN));
        let (_, f2) = n.send(LAN, echo(C1, OTHER, 77, true, IN));
        let id = seen(&f1).src.1;
        assert_ne!(id, 77);
        assert_eq!(seen(&f2).src, (PUBLIC, id));
        for from in [SERVER, OTHER] {
            let (a, f) = n.send(WAN, echo(from, PUBLIC, id, false, OUT));
            forwarded(a, LAN);
            assert_eq!(seen(&f).dst, (C1, 77));
        }
    }

    /// REQ-2: an echo session lives at least 60 s; REQ-2a: the timeout is
    /// `nat.timeouts.icmp`.
    #[test]
    fn req2_echo_session_lives_the_icmp_timeout() {
        for (extra, timeout) in [("", 60), ("[nat.timeouts]\nicmp = 90\n", 90)] {
            let mut n = Net::new(extra);
            n.send(LAN, echo(C1, SERVER, 9, true, IN));
            n.now += timeout - 1;
            n.expire_all();
            assert_eq!(n.sessions(), 1, "{timeout}");
            n.now += 2;
            n.expire_all();
            assert_eq!(n.sessions(), 0, "{timeout}");
        }
    }

    /// Every idle timeout is configurable (RFC 4787 REQ-5b, RFC 5382 REQ-5a, RFC 5508
    /// REQ-2a) but never below the RFC floors: UDP 120 s, TCP established 7440 s,
    /// transitory 240 s, ICMP 60 s.
    #[test]
    fn timeouts_are_configurable_down_to_the_rfc_floors() {
        for (field, floor) in [
            ("udp", 120),
            ("tcp_established", 7440),
            ("tcp_transitory", 240),
            ("icmp", 60),
        ] {
            let ok = format!("[nat.timeouts]\n{field} = {floor}\n");
            let c = config(&ok).unwrap_or_else(|e| panic!("{field} = {floor}: {e}"));
            let p = Policy::compile(&c, 1).unwrap();
            let t = p.sessions.timeouts;
            let got = match field {
                "udp" => t.udp,
                "tcp_established" => t.tcp_established,
                "tcp_transitory" => t.tcp_transitory,
                _ => t.icmp,
            };
            assert_eq!(got, floor);
            let low = format!("[nat.timeouts]\n{field} = {}\n", floor - 1);
            let err = config(&low).expect_err(&low);
            assert!(err.contains(&format!("nat.timeouts.{field}")), "{err}");
            assert!(err.contains("RFC"), "{err}");
        }
    }

    /// REQ-3 and REQ-3a (deviation): an ICMP error whose ICMP checksum is wrong, or whose
    /// quoted IPv4 header checksum is wrong, is not dropped: it is translated and forwarded
    /// (its checksums stay as wrong as they came, updated incrementally).
    #[test]
    fn req3_errors_with_bad_checksums_are_forwarded() {
        for broken in ["icmp", "quoted ip"] {
            let mut n = Net::new("");
            let (_, sent) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
            let mut err = error_about(&sent, ROUTER, OUT, 0);
            match broken {
                "icmp" => err[ICMP + 2] ^= 0x40,
                _ => {
                    err[QUOTE + 10] ^= 0x40;
                    fix_icmp_checksum(&mut err);
                }
            }
            let (a, f) = n.send(WAN, err);
            forwarded(a, LAN);
            assert_eq!(quoted(&f).0, (C1, 5000), "{broken}");
        }
    }

    /// REQ-3b: a quoted header with IP options is walked past to its transport header.
    /// REQ-3c: the quoted transport checksum is not checked (here it is wrong and the error
    /// is still translated).
    #[test]
    fn req3b_3c_quoted_options_are_skipped_and_the_quoted_checksum_not_checked() {
        let mut n = Net::new("");
        let (_, sent) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        // The packet as sent, with a router-alert option and a wrong UDP checksum.
        let ip = Ipv4Packet::new_checked(&sent[IP..]).unwrap();
        let total = ip.total_len();
        let mut with_options = sent[IP..IP + 20].to_vec();
        with_options[0] = 0x46;
        with_options.extend_from_slice(&[0x94, 0x04, 0, 0]);
        with_options.extend_from_slice(&sent[IP + 20..IP + total]);
        let len = with_options.len() as u16;
        with_options[2..4].copy_from_slice(&len.to_be_bytes());
        with_options[24 + 6] ^= 0x55; // UDP checksum
        let mut q = Ipv4Packet::new_checked(&mut with_options[..]).unwrap();
        q.fill_checksum();
        let mut offending = sent[..IP].to_vec();
        offending.extend_from_slice(&with_options);
        let (a, f) = n.send(WAN, error_about(&offending, ROUTER, OUT, 0));
        forwarded(a, LAN);
        let s = seen(&f);
        assert_eq!(s.dst.0, C1);
        assert_eq!(quoted(&f), ((C1, 5000), (SERVER, 53)));
        let icmp = IcmpPacket::new_checked(&f[ICMP..]).unwrap();
        assert_eq!(icmp.data_slice()[0], 0x46, "options kept");
    }

    /// REQ-6 (deviation): an ICMP error about an echo session refreshes the session (its
    /// last-seen time moves to the error's arrival), where the RFC says it must not.
    #[test]
    fn req6_error_about_an_echo_session_refreshes_it() {
        let mut n = Net::new("");
        let (_, sent) = n.send(LAN, echo(C1, SERVER, 9, true, IN));
        let key = FlowKey::icmp_echo(C1, SERVER, 9);
        let before = n.session(&key).unwrap().1;
        n.now += 50;
        let (a, _) = n.send(WAN, error_about(&sent, ROUTER, OUT, 1));
        forwarded(a, LAN);
        let after = n.session(&key).unwrap().1;
        assert_eq!(after, before + 50, "refreshed by the error");
        n.now += 30;
        n.expire_all();
        assert_eq!(
            n.sessions(),
            1,
            "alive 80 s after its last echo (timeout 60 s)"
        );
    }

    /// REQ-7: an echo request from one inside host to another's static (1:1) public address
    /// is hairpinned, from the sender's public endpoint, and the reply comes back.
    #[test]
    fn req7_hairpinned_echo_to_a_static_mapping() {
        let mut n =
            Net::new("[[ingress.static]]\npublic = \"192.0.2.40\"\nprivate = \"10.0.1.12\"\n");
        let (a, f) = n.send(LAN, echo(C1, STATIC_PUBLIC, 33, true, IN));
        forwarded(a, LAN);
        let s = seen(&f);
        assert_eq!((s.src.0, s.dst.0, s.dst_mac), (PUBLIC, C3, MAC_C3));
        let (a, f) = n.send(LAN, echo(C3, s.src.0, s.src.1, false, (MAC_C3, MAC_LAN)));
        forwarded(a, LAN);
        let r = seen(&f);
        assert_eq!((r.src.0, r.dst), (STATIC_PUBLIC, (C1, 33)));
    }

    /// REQ-7 and REQ-7a (deviation): an ICMP error from the target of a hairpinned flow
    /// reaches the client, but its quote is only half reverted: the quoted source is the
    /// client again, the quoted destination stays the target's private endpoint instead of
    /// the public one the client sent to, so the client's stack cannot match it to its
    /// connection.
    #[test]
    fn req7a_hairpinned_icmp_error_quote_keeps_the_private_destination() {
        let mut n = Net::new("");
        let (a, delivered) = n.send(LAN, tcp((C1, 41000), (PUBLIC, 8080), TcpFlags::SYN, IN));
        forwarded(a, LAN);
        let client_public = seen(&delivered).src;
        let err = error_about(&delivered, C2, IN2, 0);
        let (a, f) = n.send(LAN, err);
        forwarded(a, LAN);
        let s = seen(&f);
        assert_eq!(s.dst.0, C1, "outer destination: the client");
        let (qs, qd) = quoted(&f);
        assert_eq!(qs, (C1, 41000), "quoted source reverted");
        assert_eq!(
            qd,
            (C2, 80),
            "quoted destination NOT reverted to (PUBLIC, 8080)"
        );
        assert_ne!(qd, (PUBLIC, 8080));
        let _ = client_public;
    }

    /// REQ-8 (deviation): a flow refused by policy or for lack of resources is dropped and
    /// counted; no ICMP "administratively prohibited" is sent back.
    #[test]
    fn req8_refused_flows_get_no_icmp() {
        let mut n = Net::new(
            "[nat]\nport_range = \"2000-2000\"\n\
             [[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst_ports = [5353]\n",
        );
        let (a, _) = n.send(LAN, udp((C1, 5000), (SERVER, 5353), IN));
        dropped(a, Discard::EgressDenied);
        let (a, _) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        forwarded(a, WAN);
        let (a, _) = n.send(LAN, udp((C2, 5000), (SERVER, 53), IN2));
        dropped(a, Discard::NatPortExhausted);
    }

    /// REQ-1 (limit) and REQ-11: ICMP passing through that is neither echo nor an error is
    /// dropped: a timestamp request (a query other than echo, which REQ-1 asks to pass) and
    /// a router advertisement (non-QueryError, which REQ-11 lets us drop).
    #[test]
    fn req1_req11_icmp_other_than_echo_and_errors_is_dropped() {
        let mut n = Net::new("");
        for ty in [13u8, 9] {
            let mut l4 = vec![ty, 0, 0, 0, 0, 1, 0, 1];
            l4.extend_from_slice(&[0u8; 12]);
            let mut f = ip_frame(IN, C1, SERVER, IpProtocol::ICMP, &l4);
            fix_icmp_checksum(&mut f);
            let (a, _) = n.send(LAN, f);
            dropped(a, Discard::ProtocolUnsupported);
        }
    }
}

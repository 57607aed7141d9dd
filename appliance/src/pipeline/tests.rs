//! Scenario tests of the pipeline on byte vectors, grouped by behaviour: egress and replies,
//! unsolicited ingress, port forwards, hairpinning, TCP tracking, ICMP (echo, errors both
//! ways), expiry, limits, local services, policy reload, and several shards.

use super::*;
use crate::config::Config;
use crate::packet::build;
use crate::packet::{
    parse_frame, ChecksumCaps, EthernetAddress, IcmpPacket, IpProtocol, Ipv4Packet, TcpFlags,
    TcpPacket, TcpRepr, Vlans, L3, L4,
};
use crate::policy::Policy;
use std::net::Ipv4Addr;

use crate::testing::*;
use Discard::*;

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const SYN_ACK: TcpFlags = TcpFlags(0x12);

/// A segment from OTHER:40000 to the port forward, PUBLIC:8080 (C2:80 inside).
fn to_the_forward(flags: TcpFlags) -> Vec<u8> {
    tcp((OTHER, 40000), (PUBLIC, 8080), flags, OUT)
}

/// The forward's target answering [`to_the_forward`].
fn from_the_forward(flags: TcpFlags) -> Vec<u8> {
    tcp((C2, 80), (OTHER, 40000), flags, IN2)
}

/// C1 opening a connection to the port forward from inside: hairpinned.
fn hairpin_syn() -> Vec<u8> {
    tcp((C1, 41000), (PUBLIC, 8080), SYN, IN)
}

/// What happens to a packet dropped for `r`.
fn drop_for(r: Discard) -> Disposition {
    Disposition::Drop(r.into())
}

// --- egress and replies ----------------------------------------------------------------

mod egress {
    use super::*;

    #[test]
    fn udp_out_and_reply_back() {
        let mut n = Net::new("");
        let s = n.forwarded(LAN, udp((C1, 5000), (SERVER, 53), IN), WAN);
        assert_eq!(
            s.src,
            (PUBLIC, 5000),
            "SNAT to the public address, port preserved"
        );
        assert_eq!(s.dst, (SERVER, 53));
        assert_eq!((s.src_mac, s.dst_mac), (MAC_WAN, MAC_GW));
        assert_eq!(s.ttl, 63);
        let s = n.forwarded(WAN, udp((SERVER, 53), (PUBLIC, 5000), OUT), LAN);
        assert_eq!((s.src, s.dst), ((SERVER, 53), (C1, 5000)));
        assert_eq!((s.src_mac, s.dst_mac), (MAC_LAN, MAC_C1));
        assert_eq!(n.sessions(), 1);
    }

    /// A hit whose session is gone by the time the fast path reads it (the lookup found it,
    /// something closed it) is dropped under a name of its own, not as an ICMP error's.
    #[test]
    fn a_hit_on_a_vanished_session_is_not_an_icmp_error() {
        let mut n = Net::new("");
        let f = udp((C1, 5000), (SERVER, 53), IN);
        n.send(LAN, f.clone());
        let macs = [MAC_LAN, MAC_WAN];
        let env = Env {
            policy: &n.policy,
            neighbours: &n.neighbours,
            macs: &macs,
            health: Health::Serving,
        };
        let shard = &mut n.shards[0];
        let meta = shard.classify(&env, LAN, None, &f).expect("a valid frame");
        let hit = shard.table().lookup(&meta.key).expect("the session");
        shard.close(hit.index);
        let cx = Ctx::new(&env, n.now, LAN);
        let a = shard.hit::<_, false>(&cx, &mut VecBuf::new(&f), &meta, hit);
        assert_eq!(a, drop_for(SessionGone));
        assert_eq!(n.drops(SessionGone), 1);
        assert_eq!(n.drops(IcmpErrorNoSession), 0);
    }

    #[test]
    fn endpoint_independent_mapping_reuses_the_public_port() {
        let mut n = Net::new("");
        let (_, f1) = n.send(LAN, udp((C1, 6000), (SERVER, 53), IN));
        let (_, f2) = n.send(LAN, udp((C1, 6000), (OTHER, 53), IN));
        assert_eq!(seen(&f1).src, seen(&f2).src, "RFC 4787 REQ-1");
        assert_eq!(n.sessions(), 2);
    }

    /// Endpoint-dependent mapping shares a public port between sessions to different remote
    /// endpoints, keeping the inside port where it can; each reply reaches its own inside
    /// endpoint.
    #[test]
    fn endpoint_dependent_mapping_shares_ports_between_destinations() {
        let mut n = Net::new("[nat]\nmapping = \"endpoint-dependent\"\n");
        let flows = [
            ((C1, 6000), (SERVER, 53), IN),
            ((C1, 6000), (OTHER, 53), IN),
            ((C2, 6000), (SERVER, 53), IN2),
            ((C2, 6000), (OTHER, 54), IN2),
        ];
        let mut public = Vec::new();
        for (inside, remote, mac) in flows {
            let (_, f) = n.send(LAN, udp(inside, remote, mac));
            let s = seen(&f);
            assert_eq!((s.src.0, s.dst), (PUBLIC, remote));
            public.push(s.src.1);
        }
        assert_eq!(public[..2], [6000, 6000], "one port, two destinations");
        assert_ne!(public[2], 6000, "C1 has 6000 towards the server");
        assert_eq!(public[3], 6000, "free towards that one");
        assert_eq!(n.ports_in_use(), 2);
        for ((inside, remote, _), port) in flows.into_iter().zip(public) {
            let (a, f) = n.send(WAN, udp(remote, (PUBLIC, port), OUT));
            assert_eq!(a, Disposition::Forward(LAN));
            assert_eq!(seen(&f).dst, inside, "reply from {remote:?} to {port}");
        }
    }

    #[test]
    fn port_taken_by_another_host_is_not_reused() {
        let mut n = Net::new("");
        let (_, f1) = n.send(LAN, udp((C1, 7000), (SERVER, 53), IN));
        let (_, f2) = n.send(LAN, udp((C2, 7000), (SERVER, 53), IN2));
        assert_eq!(seen(&f1).src.1, 7000);
        assert_ne!(
            seen(&f2).src.1,
            7000,
            "no port overloading (RFC 4787 REQ-3)"
        );
    }

    #[test]
    fn icmp_echo_identifier_is_mapped() {
        let mut n = Net::new("");
        let s = n.forwarded(LAN, echo(C1, SERVER, 0x4242, true, IN), WAN);
        assert_eq!(s.src.0, PUBLIC);
        let id = s.src.1;
        let s = n.forwarded(WAN, echo(SERVER, PUBLIC, id, false, OUT), LAN);
        assert_eq!((s.src.0, s.dst.0, s.dst.1), (SERVER, C1, 0x4242));
    }

    #[test]
    fn two_hosts_pinging_with_one_identifier() {
        let mut n = Net::new("");
        let (_, f1) = n.send(LAN, echo(C1, SERVER, 77, true, IN));
        let (_, f2) = n.send(LAN, echo(C2, SERVER, 77, true, IN2));
        let (id1, id2) = (seen(&f1).src.1, seen(&f2).src.1);
        assert_ne!(id1, id2, "the second identifier is remapped");
        for (id, host, want) in [(id1, C1, 77), (id2, C2, 77)] {
            let s = n.forwarded(WAN, echo(SERVER, PUBLIC, id, false, OUT), LAN);
            assert_eq!(s.dst, (host, want), "reply to {id} reaches {host}");
        }
    }

    #[test]
    fn egress_deny_rule_drops_new_flows() {
        let mut n = Net::new(
            "[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst = [\"198.51.100.0/24\"]\n",
        );
        n.dropped(LAN, udp((C1, 5000), (SERVER, 53), IN), EgressDenied);
        assert_eq!(n.drops(EgressDenied), 1);
        n.forwarded(LAN, udp((C1, 5000), (OTHER, 53), IN), WAN);
    }

    #[test]
    fn inside_packet_with_foreign_source_is_invalid() {
        let mut n = Net::new("");
        n.dropped(LAN, udp((OTHER, 5000), (SERVER, 53), IN), InvalidSource);
    }

    #[test]
    fn unknown_next_hop_is_resolved_and_counted() {
        let mut n = Net::new("");
        n.neighbours = Neighbours::with(2, [((LAN, C1), MAC_C1)]);
        n.dropped(LAN, udp((C1, 5000), (SERVER, 53), IN), NeighbourUnresolved);
        let mut notes = Vec::new();
        n.shards[0].take_notes(|x| notes.push(x));
        assert_eq!(notes, vec![Note::Resolve { port: WAN, ip: GW }]);
        // Once known, the session created by the first packet carries the next one.
        n.neighbours = Neighbours::with(3, [((LAN, C1), MAC_C1), ((WAN, GW), MAC_GW)]);
        n.forwarded(LAN, udp((C1, 5000), (SERVER, 53), IN), WAN);
    }

    #[test]
    fn ttl_expiring_here_gets_time_exceeded_from_the_port_address() {
        let mut n = Net::new("");
        let s = n.forwarded(LAN, with_ttl(udp((C1, 5000), (SERVER, 53), IN), 1), LAN);
        assert_eq!((s.src.0, s.dst.0), (LAN_IP, C1));
        assert_eq!((s.src_mac, s.dst_mac), (MAC_LAN, MAC_C1));
        assert_eq!(n.drops(TtlExpired), 1);
        assert_eq!(n.sessions(), 0, "no session for a packet that dies here");
    }

    #[test]
    fn ttl_expiring_on_an_open_session_quotes_the_packet_as_it_came() {
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        for ttl in [1, 0] {
            let f = with_ttl(udp((C1, 5000), (SERVER, 53), IN), ttl);
            let (a, out) = n.send(LAN, f.clone());
            assert_eq!(a, Disposition::Forward(LAN), "ttl {ttl}");
            let s = seen(&out);
            assert_eq!((s.src.0, s.dst.0), (LAN_IP, C1), "ttl {ttl}");
            // The quote: the IPv4 header and 8 bytes of the datagram, untranslated.
            let quote = &f[14..42];
            assert!(
                out.windows(quote.len()).any(|w| w == quote),
                "ttl {ttl}: the quote is the packet as it arrived"
            );
        }
        assert_eq!(n.drops(TtlExpired), 2);
        assert_eq!(n.sessions(), 1);
    }

    #[test]
    fn mss_is_clamped_on_syn() {
        let mut n = Net::new("[nat]\nmss_clamp = 1200\n");
        let (_, f) = n.send(LAN, tcp((C1, 40000), (SERVER, 443), SYN, IN));
        let _ = seen(&f); // checksums verify after the clamp
        let p = parse_frame(&f, &ChecksumCaps::NONE).unwrap();
        let L3::Ipv4(m) = p.l3 else { panic!() };
        let t = TcpPacket::new_checked(&f[m.l4_offset()..m.l3_end()]).unwrap();
        let r = TcpRepr::parse(&t, PUBLIC, SERVER, &ChecksumCaps::NONE).unwrap();
        assert_eq!(r.max_seg_size, Some(1200));
    }
}

// --- unsolicited ingress ------------------------------------------------------------------

mod ingress {
    use super::*;

    #[test]
    fn unsolicited_udp_tcp_icmp_are_dropped() {
        let mut n = Net::new("");
        for f in [
            udp((OTHER, 999), (PUBLIC, 5000), OUT),
            tcp((OTHER, 999), (PUBLIC, 22), SYN, OUT),
            tcp((OTHER, 999), (PUBLIC, 5000), ACK, OUT),
            echo(OTHER, C1, 1, true, OUT),
            udp((OTHER, 999), (C1, 5000), OUT),
        ] {
            let (a, _) = n.send(WAN, f);
            assert!(matches!(a, Disposition::Drop(_)), "{a:?}");
        }
        assert_eq!(n.sessions(), 0);
        assert!(n.drops(NoForward) >= 3);
    }

    #[test]
    fn reply_from_another_port_of_the_server_is_filtered() {
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        let (a, _) = n.send(WAN, udp((SERVER, 54), (PUBLIC, 5000), OUT));
        assert_eq!(a, drop_for(NoForward), "address-and-port-dependent");
    }

    #[test]
    fn endpoint_independent_filtering_admits_anyone_to_a_mapping() {
        let mut n = Net::new("[nat]\nfiltering = \"endpoint-independent\"\n");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        let s = n.forwarded(WAN, udp((OTHER, 9999), (PUBLIC, 5000), OUT), LAN);
        assert_eq!(s.dst, (C1, 5000));
    }

    #[test]
    fn address_dependent_filtering_admits_contacted_addresses() {
        let mut n = Net::new("[nat]\nfiltering = \"address-dependent\"\n");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        n.forwarded(WAN, udp((SERVER, 9999), (PUBLIC, 5000), OUT), LAN);
        n.dropped(WAN, udp((OTHER, 9999), (PUBLIC, 5000), OUT), NoForward);
    }

    #[test]
    fn the_inside_address_is_not_reachable_from_outside() {
        let mut n = Net::new("");
        let (a, _) = n.send(WAN, echo(OTHER, LAN_IP, 9, true, OUT));
        assert!(matches!(a, Disposition::Drop(_)), "{a:?}");
        let (a, _) = n.send(LAN, echo(C1, PUBLIC, 9, true, IN));
        assert_eq!(
            a,
            Disposition::Forward(LAN),
            "from inside, the public address answers"
        );
    }

    #[test]
    fn spoofed_inside_source_from_outside() {
        let mut n = Net::new("");
        n.dropped(WAN, udp((C2, 1), (PUBLIC, 5000), OUT), SpoofedSource);
        let martian = udp((Ipv4Addr::LOCALHOST, 1), (PUBLIC, 5000), OUT);
        n.dropped(WAN, martian, SpoofedSource);
    }

    #[test]
    fn ping_to_the_public_address_is_answered() {
        let mut n = Net::new("");
        let s = n.forwarded(WAN, echo(OTHER, PUBLIC, 9, true, OUT), WAN);
        assert_eq!((s.src.0, s.dst.0), (PUBLIC, OTHER));
        assert_eq!(n.sessions(), 0);
        let mut n = Net::new("[local]\nicmp_echo = false\n");
        let (a, _) = n.send(WAN, echo(OTHER, PUBLIC, 9, true, OUT));
        assert!(matches!(a, Disposition::Drop(_)));
    }
}

// --- port forwards and hairpinning --------------------------------------------------------

mod forward {
    use super::*;

    #[test]
    fn dnat_in_and_reply_out() {
        let mut n = Net::new("");
        let s = n.forwarded(WAN, to_the_forward(SYN), LAN);
        assert_eq!((s.src, s.dst), ((OTHER, 40000), (C2, 80)));
        assert_eq!(s.dst_mac, MAC_C2);
        let s = n.forwarded(LAN, from_the_forward(SYN_ACK), WAN);
        assert_eq!(s.src, (PUBLIC, 8080));
    }

    #[test]
    fn ingress_rule_denies_a_source() {
        let mut n = Net::new("[[ingress.rule]]\naction = \"deny\"\nsrc = [\"203.0.113.0/24\"]\n");
        // The allow rule in BASE comes first and matches: first match wins.
        n.forwarded(WAN, to_the_forward(SYN), LAN);
        let text = BASE.replace("dst_ports = [8080]", "dst_ports = [8081]");
        let config = Config::parse(&text, "t").unwrap();
        n.policy = Policy::compile(&config, 2).unwrap();
        let (a, _) = n.send(WAN, tcp((OTHER, 40001), (PUBLIC, 8080), SYN, OUT));
        assert_eq!(a, drop_for(IngressDenied), "default deny");
    }

    #[test]
    fn forward_needs_a_syn() {
        let mut n = Net::new("");
        n.dropped(WAN, to_the_forward(ACK), TcpNoSession);
    }

    #[test]
    fn hairpin_reaches_the_forwarded_host() {
        let mut n = Net::new("");
        let s = n.forwarded(LAN, hairpin_syn(), LAN);
        assert_eq!(s.dst, (C2, 80));
        assert_eq!(
            s.src.0, PUBLIC,
            "the target sees the client's public endpoint"
        );
        assert_eq!(s.dst_mac, MAC_C2);
        let client_public = s.src;
        let s = n.forwarded(LAN, tcp((C2, 80), client_public, SYN_ACK, IN2), LAN);
        assert_eq!((s.src, s.dst), ((PUBLIC, 8080), (C1, 41000)));
        // The same reply forged on the outside port (an inside source from outside) does not
        // use the hairpinned session, nor draws an ICMP error quoting inside addresses.
        for ttl in [64, 1, 0] {
            let forged = with_ttl(tcp((C2, 80), client_public, SYN_ACK, OUT), ttl);
            let (a, _) = n.send(WAN, forged);
            assert_eq!(a, drop_for(SpoofedSource), "ttl {ttl}");
        }
    }

    #[test]
    fn hairpin_to_itself_is_refused_by_name() {
        let mut n =
            Net::new("[[ingress.static]]\npublic = \"192.0.2.40\"\nprivate = \"10.0.1.11\"\n");
        let to_itself = udp((C2, 8080), (STATIC_PUBLIC, 8080), IN2);
        n.dropped(LAN, to_itself, HairpinToSelf);
        assert_eq!(n.sessions(), 0);
        assert_eq!(n.ports_in_use(), 0);
    }

    #[test]
    fn hairpin_can_be_turned_off() {
        let mut n = Net::new("[nat]\nhairpinning = false\n");
        n.dropped(LAN, hairpin_syn(), HairpinDisabled);
    }

    #[test]
    fn static_mapping_both_ways() {
        let mut n = Net::new(
            "[[ingress.static]]\npublic = \"192.0.2.40\"\nprivate = \"10.0.1.11\"\n\
             [[ingress.rule]]\naction = \"allow\"\ndst = [\"192.0.2.40\"]\n",
        );
        let s = n.forwarded(LAN, udp((C2, 5353), (SERVER, 53), IN2), WAN);
        assert_eq!(s.src, (STATIC_PUBLIC, 5353));
        let s = n.forwarded(WAN, udp((OTHER, 1234), (STATIC_PUBLIC, 7000), OUT), LAN);
        assert_eq!(s.dst, (C2, 7000));
    }
}

// --- TCP tracking -----------------------------------------------------------------------

mod tcp_states {
    use super::*;
    use crate::flow::TcpState;

    /// A segment of C1:40000's connection to SERVER:443, leaving, and coming back to the
    /// public endpoint (the port is kept).
    fn out(f: TcpFlags) -> Vec<u8> {
        tcp((C1, 40000), (SERVER, 443), f, IN)
    }

    fn back(f: TcpFlags) -> Vec<u8> {
        tcp((SERVER, 443), (PUBLIC, 40000), f, OUT)
    }

    /// SYN, SYN-ACK, ACK.
    fn handshake(n: &mut Net) {
        n.send(LAN, out(SYN));
        n.send(WAN, back(SYN_ACK));
        n.send(LAN, out(ACK));
    }

    fn state(n: &Net) -> TcpState {
        let t = n.shards[0].table();
        let key = crate::flow::FlowKey::new(C1, SERVER, 40000, 443, IpProtocol::TCP);
        let hit = t.lookup(&key).expect("session");
        t.get(hit.index).unwrap().tcp_state()
    }

    #[test]
    fn open_transfer_close() {
        let mut n = Net::new("");
        for (port, frame, want) in [
            (LAN, out(SYN), TcpState::SynSent),
            (WAN, back(SYN_ACK), TcpState::SynReceived),
            (LAN, out(ACK), TcpState::Established),
            (WAN, back(ACK | TcpFlags::PSH), TcpState::Established),
        ] {
            let (a, _) = n.send(port, frame);
            assert!(matches!(a, Disposition::Forward(_)), "{a:?}");
            assert_eq!(state(&n), want);
        }
        n.send(LAN, out(TcpFlags::FIN | ACK));
        assert!(matches!(state(&n), TcpState::FinWait { .. }));
        n.send(WAN, back(TcpFlags::FIN | ACK));
        n.send(LAN, out(ACK));
        assert_eq!(state(&n), TcpState::TimeWait);
    }

    #[test]
    fn rst_moves_to_transitory_and_the_session_expires_then() {
        let mut n = Net::new("");
        handshake(&mut n);
        n.send(WAN, back(TcpFlags::RST));
        assert_eq!(state(&n), TcpState::Closed);
        assert_eq!(n.idle(241), 0, "transitory timeout 240 s");
    }

    #[test]
    fn established_lives_two_hours_four_minutes() {
        let mut n = Net::new("");
        handshake(&mut n);
        assert_eq!(n.idle(7439), 1, "RFC 5382 REQ-5");
        assert_eq!(n.idle(2), 0);
    }

    #[test]
    fn mid_stream_packet_without_session() {
        let mut n = Net::new("");
        n.dropped(LAN, out(ACK), TcpNoSession);
        let mut n = Net::new("[nat]\ntcp_loose = true\n");
        n.forwarded(LAN, out(ACK), WAN);
    }
}

// --- ICMP errors, both ways ------------------------------------------------------------------

mod related {
    use super::*;

    #[test]
    fn errors_are_forwarded_one_hop_older_and_die_at_ttl_one() {
        let mut n = Net::new("");
        let (_, sent) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        let err = error_about(&sent, ROUTER, OUT, 0);
        let ttl = Ipv4Packet::new_checked(&err[14..]).unwrap().ttl();
        let s = n.forwarded(WAN, err.clone(), LAN);
        assert_eq!(s.ttl, ttl - 1, "the header checksum verified too");
        for last in [1, 0] {
            let (a, f) = n.send(WAN, with_ttl(err.clone(), last));
            // No ICMP error answers an ICMP error (RFC 1812 section 4.3.2.7).
            assert_eq!(a, drop_for(TtlExpired), "ttl {last}: {f:?}");
        }
        assert_eq!(n.drops(TtlExpired), 2);
    }

    #[test]
    fn errors_from_outside_reach_the_inside_host_translated() {
        for (kind, name) in [
            (0, "port unreachable"),
            (1, "time exceeded"),
            (2, "frag needed"),
        ] {
            for proto in ["udp", "tcp", "echo"] {
                let mut n = Net::new("");
                let frame = match proto {
                    "udp" => udp((C1, 5000), (SERVER, 53), IN),
                    "tcp" => tcp((C1, 5000), (SERVER, 443), SYN, IN),
                    _ => echo(C1, SERVER, 5000, true, IN),
                };
                let (_, sent) = n.send(LAN, frame);
                let err = error_about(&sent, ROUTER, OUT, kind);
                let (a, f) = n.send(WAN, err);
                assert_eq!(a, Disposition::Forward(LAN), "{name} {proto}");
                let s = seen(&f);
                assert_eq!((s.src.0, s.dst.0), (ROUTER, C1), "{name} {proto}");
                let (qs, qd) = quoted(&f);
                assert_eq!(qs.0, C1, "{name} {proto}: quoted source restored");
                assert_eq!(qs.1, 5000, "{name} {proto}");
                assert_eq!(qd.0, SERVER);
                // The quoted IPv4 header checksum is fixed too.
                let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
                let icmp = IcmpPacket::new_checked(ip.payload_slice()).unwrap();
                let q = Ipv4Packet::new_checked(icmp.data_slice()).unwrap();
                assert!(
                    q.verify_checksum(),
                    "{name} {proto}: quoted header checksum"
                );
            }
        }
    }

    #[test]
    fn errors_from_inside_reach_the_outside_host_translated() {
        let mut n = Net::new("");
        let (_, delivered) = n.send(WAN, to_the_forward(SYN));
        let err = error_about(&delivered, C2, IN2, 0);
        let (a, f) = n.send(LAN, err);
        assert_eq!(a, Disposition::Forward(WAN));
        let s = seen(&f);
        assert_eq!(
            (s.src.0, s.dst.0),
            (PUBLIC, OTHER),
            "reported from our public address"
        );
        let (qs, qd) = quoted(&f);
        assert_eq!(
            (qs, qd),
            ((OTHER, 40000), (PUBLIC, 8080)),
            "quote as the outside host sent it"
        );
    }

    #[test]
    fn errors_about_nothing_are_dropped() {
        let mut n = Net::new("");
        let stray = udp((PUBLIC, 5555), (SERVER, 53), OUT);
        let err = error_about(&stray, ROUTER, OUT, 0);
        n.dropped(WAN, err, IcmpErrorNoSession);
    }
}

// --- expiry, limits ---------------------------------------------------------------------

mod limits {
    use super::*;

    #[test]
    fn udp_session_expires_and_its_port_is_free_again() {
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        assert_eq!(n.idle(299), 1);
        assert_eq!(n.idle(2), 0);
        assert_eq!(n.ports_in_use(), 0);
        let (a, _) = n.send(WAN, udp((SERVER, 53), (PUBLIC, 5000), OUT));
        assert_eq!(
            a,
            drop_for(NoForward),
            "a reply after expiry is unsolicited"
        );
    }

    #[test]
    fn port_exhaustion_is_counted() {
        let mut n = Net::new("[nat]\nport_range = \"2000-2002\"\n");
        for p in 0..3 {
            n.forwarded(LAN, udp((C1, 3000 + p), (SERVER, 53), IN), WAN);
        }
        n.dropped(LAN, udp((C1, 4000), (SERVER, 53), IN), NatPortExhausted);
        assert_eq!(n.shards[0].snat().exhausted(), 1);
    }

    /// Paired pooling keeps a host on its address and refuses when it is full; arbitrary
    /// pooling moves the new mapping to another pool address, and its replies come back.
    #[test]
    fn arbitrary_pooling_takes_another_address_when_the_hosts_is_full() {
        let pool =
            "[nat]\naddresses = [\"192.0.2.2\", \"192.0.2.3\"]\nport_range = \"2000-2001\"\n";
        let mut paired = Net::new(pool);
        let mut arbitrary = Net::new(&format!("{pool}pooling = \"arbitrary\"\n"));
        for n in [&mut paired, &mut arbitrary] {
            let own: Vec<_> = (0..2)
                .map(|p| {
                    n.forwarded(LAN, udp((C1, 3000 + p), (SERVER, 53), IN), WAN)
                        .src
                        .0
                })
                .collect();
            assert_eq!(own[0], own[1], "paired: one address for the host");
        }
        paired.dropped(LAN, udp((C1, 3002), (SERVER, 53), IN), NatPortExhausted);
        let s = arbitrary.forwarded(LAN, udp((C1, 3002), (SERVER, 53), IN), WAN);
        let own = arbitrary
            .forwarded(LAN, udp((C1, 3000), (OTHER, 53), IN), WAN)
            .src
            .0;
        assert_ne!(s.src.0, own, "the other pool address");
        let back = arbitrary.forwarded(WAN, udp((SERVER, 53), s.src, OUT), LAN);
        assert_eq!(back.dst, (C1, 3002));
    }

    #[test]
    fn table_full_drops_new_flows_and_reuses_expired_sessions() {
        let mut n = Net::new("[nat]\nmax_sessions = 64\n");
        for p in 0..64 {
            let (a, _) = n.send(LAN, udp((C1, 10000 + p), (SERVER, 53), IN));
            assert_eq!(a, Disposition::Forward(WAN), "session {p}");
        }
        n.dropped(LAN, udp((C1, 20000), (SERVER, 53), IN), SessionTableFull);
        // An established TCP session is never evicted; expired UDP ones are reused.
        n.now += 301;
        let (a, _) = n.send(LAN, udp((C1, 20000), (SERVER, 53), IN));
        assert_eq!(a, Disposition::Forward(WAN), "an expired session is reused");
        assert_eq!(
            n.ports_in_use(),
            n.sessions() as usize,
            "the reclaimed session's port was freed"
        );
    }
}

// --- local services ---------------------------------------------------------------------

mod local {
    use super::*;
    use crate::packet::{ArpOperation, ArpRepr};

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let n = build::arp_request(&mut buf, MAC_C1, Vlans::None, C1, target).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn arp_for_our_address_is_answered_and_the_asker_learned() {
        let mut n = Net::new("");
        let (a, f) = n.send(LAN, arp_request(LAN_IP));
        assert_eq!(a, Disposition::Forward(LAN));
        let arp = crate::packet::ArpPacket::new_checked(&f[14..]).unwrap();
        let r = ArpRepr::parse(&arp).unwrap();
        assert_eq!(r.operation, ArpOperation::Reply);
        assert_eq!(
            (r.source_hardware_addr, r.source_protocol_addr),
            (MAC_LAN, LAN_IP)
        );
        assert_eq!(r.target_protocol_addr, C1);
        let mut notes = Vec::new();
        n.shards[0].take_notes(|x| notes.push(x));
        assert_eq!(
            notes,
            vec![Note::Learned {
                port: LAN,
                ip: C1,
                mac: MAC_C1
            }]
        );
        let (a, _) = n.send(LAN, arp_request(Ipv4Addr::new(10, 0, 1, 99)));
        assert_eq!(
            a,
            Disposition::Consumed,
            "not for us, but the asker is learned"
        );
    }

    #[test]
    fn ping_to_the_inside_address() {
        let mut n = Net::new("");
        let s = n.forwarded(LAN, echo(C1, LAN_IP, 3, true, IN), LAN);
        assert_eq!((s.src.0, s.dst.0, s.dst_mac), (LAN_IP, C1, MAC_C1));
    }

    #[test]
    fn health_probe_answers_allowed_sources() {
        let mut n =
            Net::new("[local.health_probe]\nport = 9999\nsources = [\"168.63.129.16/32\"]\n");
        let probe = Ipv4Addr::new(168, 63, 129, 16);
        let s = n.forwarded(WAN, tcp((probe, 5555), (PUBLIC, 9999), SYN, OUT), WAN);
        assert_eq!(s.l4, L4::Tcp(SYN_ACK));
        let s = n.forwarded(WAN, tcp((probe, 5555), (PUBLIC, 9999), ACK, OUT), WAN);
        assert!(matches!(s.l4, L4::Tcp(fl) if fl.rst()), "{s:?}");
        let stranger = tcp((OTHER, 5555), (PUBLIC, 9999), SYN, OUT);
        n.dropped(WAN, stranger, LocalDenied);
    }

    #[test]
    fn frames_for_another_mac_and_other_ethertypes() {
        let mut n = Net::new("");
        let mut f = udp((C1, 5000), (SERVER, 53), IN);
        f[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        n.dropped(LAN, f, NotForUs);
        // IPv4 received as a link-layer broadcast or multicast (RFC 1812 section 5.3.4).
        for group in [[0xff; 6], [0x01, 0x00, 0x5e, 0, 0, 1]] {
            let mut f = udp((C1, 5000), (SERVER, 53), IN);
            f[..6].copy_from_slice(&group);
            let (a, _) = n.send(LAN, f);
            assert_eq!(a, drop_for(NotForUs), "{group:02x?}");
        }
        assert_eq!(n.sessions(), 0);
        let mut f = udp((C1, 5000), (SERVER, 53), IN);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        n.dropped(LAN, f, NotIp);
    }
}

// --- the health probe --------------------------------------------------------------------

/// The HTTP probe, state by state: one short connection per check, answered without state
/// (RFC 9293 numbers checked against the SYN-ACK's keyed sequence number).
mod health_probe {
    use super::*;

    const HTTP: &str = "[local.health_probe]\nport = 80\nprotocol = \"http\"\npath = \"/healthz\"\nsources = [\"168.63.129.16/32\"]\n";
    const TCP: &str = "[local.health_probe]\nport = 9999\nsources = [\"168.63.129.16/32\"]\n";
    const LB: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);
    const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 192.0.2.2\r\nUser-Agent: lb\r\n\r\n";
    /// The client's ISN.
    const ISN: u32 = 0xffff_fff0;

    fn from_lb(flags: TcpFlags, numbers: (u32, u32), payload: &[u8]) -> Vec<u8> {
        tcp_segment((LB, 40000), (PUBLIC, 80), flags, numbers, payload, OUT)
    }

    /// Sends `frame` from the load balancer and reads the answer.
    #[track_caller]
    fn answer(n: &mut Net, frame: Vec<u8>) -> Segment {
        let (a, f) = n.send(WAN, frame);
        assert_eq!(a, Disposition::Forward(WAN), "{f:02x?}");
        let s = seen(&f);
        assert_eq!((s.src, s.dst), ((PUBLIC, 80), (LB, 40000)));
        assert_eq!((s.src_mac, s.dst_mac), (MAC_WAN, MAC_GW));
        segment(&f)
    }

    /// The handshake: our ISN.
    fn handshake(n: &mut Net) -> u32 {
        let syn_ack = answer(n, from_lb(SYN, (ISN, 0), b""));
        assert_eq!(syn_ack.flags, SYN_ACK);
        assert_eq!(syn_ack.ack, ISN.wrapping_add(1));
        let (a, _) = n.send(
            WAN,
            from_lb(ACK, (ISN.wrapping_add(1), syn_ack.seq.wrapping_add(1)), b""),
        );
        assert_eq!(
            a,
            Disposition::Consumed,
            "the handshake's ACK needs no answer"
        );
        syn_ack.seq
    }

    /// The request after the handshake, and the answer to it.
    fn ask(n: &mut Net, request: &[u8]) -> (Segment, String) {
        let ours = handshake(n);
        let seq = ISN.wrapping_add(1);
        let r = answer(
            n,
            from_lb(ACK | TcpFlags::PSH, (seq, ours.wrapping_add(1)), request),
        );
        assert_eq!(r.flags, ACK | TcpFlags::PSH | TcpFlags::FIN);
        assert_eq!(r.seq, ours.wrapping_add(1));
        assert_eq!(r.ack, seq.wrapping_add(request.len() as u32));
        let text = String::from_utf8(r.payload.clone()).expect("a text response");
        (r, text)
    }

    #[test]
    fn a_whole_check_while_serving() {
        let mut n = Net::new(HTTP);
        let ours = handshake(&mut n);
        // A retransmitted SYN gets the same numbers: nothing was kept.
        assert_eq!(answer(&mut n, from_lb(SYN, (ISN, 0), b"")).seq, ours);
        let (r, text) = ask(&mut n, GET);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 8\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nserving\n"), "{text}");
        // The client acknowledges the response and our FIN, then closes: its FIN gets an
        // ACK alone (ours went out with the response).
        let seq = r.ack;
        let fin_acked = r.seq.wrapping_add(r.payload.len() as u32 + 1);
        let (a, _) = n.send(WAN, from_lb(ACK, (seq, fin_acked), b""));
        assert_eq!(a, Disposition::Consumed);
        let last = answer(&mut n, from_lb(ACK | TcpFlags::FIN, (seq, fin_acked), b""));
        assert_eq!(
            (last.flags, last.seq, last.ack),
            (ACK, fin_acked, seq.wrapping_add(1))
        );
        // A reset (some balancers close that way) gets nothing.
        let (a, _) = n.send(WAN, from_lb(TcpFlags::RST, (seq, 0), b""));
        assert_eq!(a, Disposition::Consumed);
        assert_eq!(n.sessions(), 0, "the probe keeps no session");
        // Three SYN-ACKs (two handshakes and a retransmission), the response, the FIN's ACK.
        assert_eq!(n.shards[0].counters().local_replies(), 5);
    }

    #[test]
    fn draining_answers_503_and_traffic_still_flows() {
        let mut n = Net::new(HTTP);
        n.health = Health::Draining;
        let (_, text) = ask(&mut n, GET);
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.ends_with("draining\n"), "{text}");
        let (_, text) = ask(&mut n, b"HEAD /healthz HTTP/1.1\r\n\r\n");
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(
            text.ends_with("Content-Length: 9\r\n\r\n"),
            "HEAD: no body: {text}"
        );
        // New flows and their replies pass as ever.
        n.forwarded(LAN, udp((C1, 5000), (SERVER, 53), IN), WAN);
        n.forwarded(WAN, udp((SERVER, 53), (PUBLIC, 5000), OUT), LAN);
        n.health = Health::Serving;
        let (_, text) = ask(&mut n, GET);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    }

    #[test]
    fn other_paths_methods_and_garbage() {
        let mut n = Net::new(HTTP);
        for (request, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
            (b"GET /healthz/more HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"GET /healthz?probe=1 HTTP/1.0\r\n\r\n", "200 OK"),
            (
                b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                "405 Method Not Allowed",
            ),
            (
                b"GET /healthz HTTP/2.0\r\n\r\n",
                "505 HTTP Version Not Supported",
            ),
            (b"GET /healthz", "400 Bad Request"),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00", "400 Bad Request"),
        ] {
            let (_, text) = ask(&mut n, request);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{:?}: {text}",
                String::from_utf8_lossy(request)
            );
        }
    }

    #[test]
    fn segments_of_no_handshake_of_ours_are_reset() {
        let mut n = Net::new(HTTP);
        let ours = handshake(&mut n);
        let seq = ISN.wrapping_add(1);
        // A request that acknowledges another ISN, or starts elsewhere than after the SYN.
        for numbers in [
            (seq, ours.wrapping_add(2)),
            (seq.wrapping_add(1), ours.wrapping_add(1)),
        ] {
            let r = answer(&mut n, from_lb(ACK | TcpFlags::PSH, numbers, GET));
            assert_eq!((r.flags, r.seq), (TcpFlags::RST, numbers.1), "{numbers:?}");
            assert!(r.payload.is_empty());
        }
        // Data without ACK, a SYN-ACK.
        let r = answer(&mut n, from_lb(TcpFlags::PSH, (seq, 0), GET));
        assert!(r.flags.rst(), "{r:?}");
        let r = answer(&mut n, from_lb(SYN_ACK, (seq, 1), b""));
        assert!(r.flags.rst(), "{r:?}");
    }

    #[test]
    fn a_close_before_asking_gets_our_fin() {
        let mut n = Net::new(HTTP);
        let ours = handshake(&mut n);
        let seq = ISN.wrapping_add(1);
        let r = answer(
            &mut n,
            from_lb(ACK | TcpFlags::FIN, (seq, ours.wrapping_add(1)), b""),
        );
        assert_eq!(r.flags, ACK | TcpFlags::FIN);
        assert_eq!((r.seq, r.ack), (ours.wrapping_add(1), seq.wrapping_add(1)));
    }

    #[test]
    fn other_sources_are_dropped_and_counted() {
        let mut n = Net::new(HTTP);
        let stranger = |flags, payload: &[u8]| {
            tcp_segment((OTHER, 40000), (PUBLIC, 80), flags, (ISN, 1), payload, OUT)
        };
        n.dropped(WAN, stranger(SYN, b""), LocalDenied);
        n.dropped(WAN, stranger(ACK | TcpFlags::PSH, GET), LocalDenied);
        assert_eq!(n.drops(LocalDenied), 2);
        // And from inside, to the inside address: not a source the probe admits either.
        let inside = tcp_segment((C1, 40000), (LAN_IP, 80), SYN, (ISN, 0), b"", IN);
        n.dropped(LAN, inside, LocalDenied);
    }

    #[test]
    fn a_draining_tcp_probe_is_refused() {
        let mut n = Net::new(TCP);
        let s = n.forwarded(WAN, tcp((LB, 5555), (PUBLIC, 9999), SYN, OUT), WAN);
        assert_eq!(s.l4, L4::Tcp(SYN_ACK));
        n.health = Health::Draining;
        let r = segment(&n.send(WAN, tcp((LB, 5555), (PUBLIC, 9999), SYN, OUT)).1);
        assert_eq!(r.flags, TcpFlags::RST | ACK, "connection refused");
        let (a, _) = n.send(WAN, tcp((LB, 5555), (PUBLIC, 9999), TcpFlags::RST, OUT));
        assert_eq!(a, Disposition::Consumed, "a reset gets nothing");
    }
}

// --- policy reload ----------------------------------------------------------------------

mod reload {
    use super::*;

    const DENY: &str =
        "[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst = [\"198.51.100.10\"]\n";

    #[test]
    fn recheck_closes_sessions_a_new_rule_denies() {
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        n.send(LAN, udp((C1, 5001), (OTHER, 53), IN));
        n.reload(DENY);
        n.dropped(LAN, udp((C1, 5000), (SERVER, 53), IN), PolicyRecheckDeny);
        assert_eq!(n.sessions(), 1, "closed");
        let (a, _) = n.send(LAN, udp((C1, 5001), (OTHER, 53), IN));
        assert_eq!(a, Disposition::Forward(WAN), "still allowed: kept");
        let (a, _) = n.send(WAN, udp((SERVER, 53), (PUBLIC, 5000), OUT));
        assert_eq!(a, drop_for(NoForward), "its replies are gone too");
    }

    #[test]
    fn keep_mode_leaves_open_sessions_alone() {
        let mut n = Net::new("[nat]\non_reload = \"keep\"\n");
        let (_, before) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        n.reload(&format!("[nat]\non_reload = \"keep\"\n{DENY}"));
        let (a, after) = n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        assert_eq!(a, Disposition::Forward(WAN));
        assert_eq!(after, before, "translated as before the reload");
        let (_, s) = n.shards[0].table().iter().next().expect("the session");
        assert_eq!(s.packets(), 2, "counted once before and once after");
        let (a, _) = n.send(LAN, udp((C1, 5002), (SERVER, 53), IN));
        assert_eq!(a, drop_for(EgressDenied), "new flows follow the new rule");
    }

    #[test]
    fn filtering_turned_address_dependent_counts_the_open_sessions() {
        const ADF: &str = "[nat]\nfiltering = \"address-dependent\"\n";
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        n.reload(ADF);
        let (a, _) = n.send(WAN, udp((SERVER, 9999), (PUBLIC, 5000), OUT));
        assert_eq!(
            a,
            Disposition::Forward(LAN),
            "a remote the host sent to before"
        );
        n.dropped(WAN, udp((OTHER, 9999), (PUBLIC, 5000), OUT), NoForward);
        // Back and forth: sessions opened in between are counted at the next switch.
        n.reload("");
        n.send(LAN, udp((C1, 5000), (OTHER, 53), IN));
        n.reload(ADF);
        n.forwarded(WAN, udp((OTHER, 1234), (PUBLIC, 5000), OUT), LAN);
        let left = n.idle(100_000);
        let snat = n.shards[0].snat();
        assert_eq!((left, snat.mappings(), snat.contacts()), (0, 0, 0));
    }

    #[test]
    fn removed_forward_closes_its_sessions() {
        let mut n = Net::new("");
        n.send(WAN, to_the_forward(SYN));
        let text = BASE.replace("public_port = 8080", "public_port = 8081");
        n.policy = Policy::compile(&Config::parse(&text, "t").unwrap(), 2).unwrap();
        n.dropped(WAN, to_the_forward(ACK), PolicyRecheckDeny);
    }
}

// --- several shards -------------------------------------------------------------------------

mod shards {
    use super::*;

    #[test]
    fn every_packet_ends_at_its_sessions_owner() {
        for workers in [2, 3, 4] {
            let mut n = Net::with_workers("", workers);
            for i in 0..200u16 {
                let client = Ipv4Addr::new(10, 0, 1, 20 + (i % 50) as u8);
                let mac = EthernetAddress([2, 0, 0, 0, 1, (i % 50) as u8]);
                n.neighbours = {
                    let mut e: Vec<_> = n.neighbours.iter().collect();
                    e.push(((LAN, client), mac));
                    Neighbours::with(n.neighbours.generation() + 1, e)
                };
                let (a, f) = n.send(LAN, udp((client, 30000 + i), (SERVER, 53), (mac, MAC_LAN)));
                assert_eq!(a, Disposition::Forward(WAN), "workers {workers}, flow {i}");
                let public = seen(&f).src;
                let (a, f) = n.send(WAN, udp((SERVER, 53), public, OUT));
                assert_eq!(a, Disposition::Forward(LAN), "reply found its session");
                assert_eq!(seen(&f).dst, (client, 30000 + i));
            }
            // ICMP echo with several workers: the identifier is mapped into the owner's slice.
            let id = n
                .forwarded(LAN, echo(C1, SERVER, 27087, true, IN), WAN)
                .src
                .1;
            let (a, f) = n.send(WAN, echo(SERVER, PUBLIC, id, false, OUT));
            assert_eq!(
                a,
                Disposition::Forward(LAN),
                "echo reply finds its session (id {id})"
            );
            assert_eq!(seen(&f).dst, (C1, 27087));
            // Forwards and hairpin with several workers.
            n.forwarded(WAN, to_the_forward(SYN), LAN);
            let (a, _) = n.send(LAN, from_the_forward(SYN_ACK));
            assert_eq!(
                a,
                Disposition::Forward(WAN),
                "the forwarded host's reply finds the session"
            );
            let client_public = n.forwarded(LAN, hairpin_syn(), LAN).src;
            let (a, _) = n.send(LAN, tcp((C2, 80), client_public, SYN_ACK, IN2));
            assert_eq!(a, Disposition::Forward(LAN), "hairpin reply");
            let per: Vec<u32> = n.shards.iter().map(|s| s.table().len()).collect();
            assert!(per.iter().all(|&x| x > 0), "sessions spread: {per:?}");
            let handoffs: u64 = n.shards.iter().map(|s| s.counters().handoffs()).sum();
            assert!(handoffs > 0);
        }
    }
}

// --- properties -------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A reply to a translated packet is translated back to the original tuple, and after
        /// every session expires every port is free again.
        #[test]
        fn nat_is_reversible_and_leaks_nothing(
            flows in prop::collection::vec((1u8..250, 1024u16..65535, 1u8..250, 1u16..65535, 0u8..3), 1..60)
        ) {
            let mut n = Net::new("[nat]\nmapping = \"endpoint-dependent\"\n");
            n.neighbours = Neighbours::with(1, (1u8..=254).map(|h| ((LAN, Ipv4Addr::new(10, 0, 1, h)), MAC_C1)).chain([((WAN, GW), MAC_GW)]));
            let mut outside = std::collections::HashSet::new();
            for (host, sport, far, dport, proto) in flows {
                let src = (Ipv4Addr::new(10, 0, 1, host), sport);
                let dst = (Ipv4Addr::new(198, 51, 100, far), dport);
                let frame = match proto {
                    0 => udp(src, dst, IN),
                    1 => tcp(src, dst, SYN, IN),
                    _ => echo(src.0, dst.0, src.1, true, IN),
                };
                let (a, f) = n.send(LAN, frame);
                if src.0 == LAN_IP { continue; }
                prop_assert_eq!(a, Disposition::Forward(WAN));
                let s = seen(&f);
                prop_assert_eq!(s.src.0, PUBLIC);
                prop_assert!(outside.insert((proto, s.src, s.dst)) || proto == 2, "no two sessions share an outside tuple");
                let reply = match proto {
                    0 => udp(s.dst, s.src, OUT),
                    1 => tcp(s.dst, s.src, SYN_ACK, OUT),
                    _ => echo(s.dst.0, s.src.0, s.src.1, false, OUT),
                };
                let (a, f) = n.send(WAN, reply);
                prop_assert_eq!(a, Disposition::Forward(LAN));
                let r = seen(&f);
                prop_assert_eq!(r.dst, src);
                // For echo both "ports" are the identifier.
                let from = if proto == 2 { (dst.0, src.1) } else { dst };
                prop_assert_eq!(r.src, from);
            }
            prop_assert_eq!(n.idle(100_000), 0);
            prop_assert_eq!(n.ports_in_use(), 0);
            prop_assert_eq!(n.shards[0].snat().mappings(), 0);
        }

        /// Stage 1 reads a common frame (TCP or UDP over untagged IPv4, unicast to us) straight
        /// into its `Meta`; that is what the general parse and classification find in it, and
        /// no other frame takes that path.
        #[test]
        fn stage_one_common_path_is_the_general_one(
            tcp_frame: bool, flags: u8, sport: u16, dport: u16, host in 1u8..255,
            payload in 0usize..40, byte in 0usize..60, value: u8, mutate: bool, to_us: bool,
            group: bool,
        ) {
            let mut n = Net::new("");
            // A port whose MAC is a group address (no NIC has one) receives nothing.
            let lan = if group { EthernetAddress([0x03, 0, 0, 0, 0, 0xa0]) } else { MAC_LAN };
            let macs = [lan, MAC_WAN];
            let env = Env { policy: &n.policy, neighbours: &n.neighbours, macs: &macs, health: Health::Serving };
            let src = (Ipv4Addr::new(10, 0, 1, host), sport);
            let mut f = if tcp_frame {
                tcp(src, (SERVER, dport), TcpFlags(u16::from(flags)), IN)
            } else {
                udp(src, (SERVER, dport), IN)
            };
            f.resize(f.len() + payload, 0);
            f[..6].copy_from_slice(if to_us { &lan.0 } else { &MAC_C2.0 });
            if mutate && byte < f.len() {
                f[byte] = value;
            }
            let shard = &mut n.shards[0];
            match shard.common(Some(lan.0), &f) {
                Some(c) => {
                    let mut meta = super::meta::EMPTY_META;
                    meta.set_common(&c);
                    prop_assert_eq!(Ok(meta), shard.classify(&env, LAN, None, &f));
                }
                None => {
                    // Not common: changed where the fast path looks, or not for us.
                    prop_assert!(mutate || !to_us || group, "a plain TCP or UDP frame to us is common");
                }
            }
        }

        /// Arbitrary bytes from either port never panic and never create a session from
        /// outside.
        #[test]
        fn arbitrary_bytes_never_panic(
            frames in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..200), any::<bool>()), 1..20)
        ) {
            let mut n = Net::new("");
            for (mut f, from_lan) in frames {
                if f.len() >= 14 {
                    // Often make it look like IPv4 to us, to get past the first checks.
                    let mac = if from_lan { MAC_LAN } else { MAC_WAN };
                    f[..6].copy_from_slice(&mac.0);
                    f[12] = 0x08;
                    f[13] = 0x00;
                }
                let port = if from_lan { LAN } else { WAN };
                let before = n.sessions();
                let (a, _) = n.send(port, f);
                if !from_lan && n.sessions() > before {
                    prop_assert!(false, "outside garbage created a session: {a:?}");
                }
            }
        }
    }
}

// --- bursts -------------------------------------------------------------------------------

mod bursts {
    use super::*;
    use crate::packet::VlanTag;

    /// A session closed by an earlier packet of the same burst, its slot taken by a session
    /// created after it: the later packets of the closed flow must not use the new session
    /// (the fuzzer found them translated with its rewrite).
    #[test]
    fn a_slot_reused_within_a_burst_is_not_the_old_flow_s() {
        const DENY: &str =
            "[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst = [\"198.51.100.10\"]\n";
        let mut n = Net::new("");
        n.send(LAN, udp((C1, 5000), (SERVER, 53), IN));
        n.reload(DENY);
        let closed = udp((C1, 5000), (SERVER, 53), IN);
        let out = n.burst(LAN, &[&closed, &udp((C2, 6000), (OTHER, 53), IN2), &closed]);
        assert_eq!(out[0].0, drop_for(PolicyRecheckDeny));
        assert_eq!(out[1].0, Disposition::Forward(WAN));
        assert_eq!(
            out[2].0,
            drop_for(EgressDenied),
            "a new flow under the new policy, not the reused slot's session"
        );
        assert_eq!(n.sessions(), 1);
    }

    /// A burst does what the same packets do one at a time, when no packet of it depends on
    /// another (established flows both ways, new flows each seen once, replies the appliance
    /// builds, drops of every kind): same actions, same bytes out, same counters. (Packets of
    /// one new flow in one burst are not the same: all but the first miss the lookup.)
    #[test]
    fn a_burst_does_what_its_packets_do_one_by_one() {
        let extra = "[nat]\nfiltering = \"endpoint-independent\"\n";
        let mut burst = Net::new(extra);
        let mut single = Net::new(extra);
        let hosts: Vec<(Ipv4Addr, EthernetAddress)> = (20..60u8)
            .map(|h| {
                (
                    Ipv4Addr::new(10, 0, 1, h),
                    EthernetAddress([2, 0, 0, 0, 1, h]),
                )
            })
            .collect();
        for n in [&mut burst, &mut single] {
            let mut e: Vec<_> = n.neighbours.iter().collect();
            e.extend(hosts.iter().map(|&(ip, mac)| ((LAN, ip), mac)));
            n.neighbours = Neighbours::with(2, e);
        }
        // Established flows, created one at a time in both: (inside, remote, public).
        let mut flows = Vec::new();
        for (k, &(ip, mac)) in hosts.iter().enumerate() {
            let inside = (ip, 30000 + k as u16);
            let remote = (SERVER, 53 + (k % 3) as u16);
            let f = udp(inside, remote, (mac, MAC_LAN));
            let (a, out) = single.send(LAN, f.clone());
            assert_eq!(burst.send(LAN, f), (a, out.clone()));
            assert_eq!(a, Disposition::Forward(WAN));
            flows.push((inside, remote, seen(&out).src, mac));
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut new_port = 40000u16;
        for round in 0..40 {
            let from_lan = round % 2 == 0;
            let port = if from_lan { LAN } else { WAN };
            // Up to five chunks of BURST_MAX: the chunks' steps interleave.
            let len = 1 + (next() % 150) as usize;
            let frames: Vec<Vec<u8>> = (0..len)
                .map(|_| {
                    let (inside, remote, public, mac) =
                        flows[(next() % flows.len() as u64) as usize];
                    let pick = next() % 10;
                    if from_lan {
                        match pick {
                            0..=4 => udp(inside, remote, (mac, MAC_LAN)),
                            5 => {
                                new_port += 1;
                                udp((inside.0, new_port), (OTHER, 443), (mac, MAC_LAN))
                            }
                            6 => with_ttl(udp(inside, remote, (mac, MAC_LAN)), 1),
                            7 => echo(LAN_IP, inside.0, 3, false, (mac, MAC_LAN)),
                            8 => echo(inside.0, LAN_IP, 3, true, (mac, MAC_LAN)),
                            _ => {
                                let mut f = udp(inside, remote, (mac, MAC_LAN));
                                f[(next() % 60) as usize] ^= 0x5a;
                                f
                            }
                        }
                    } else {
                        match pick {
                            0..=5 => udp(remote, public, OUT),
                            6 => {
                                // A new flow from outside, admitted by the mapping.
                                new_port += 1;
                                udp((OTHER, new_port), public, OUT)
                            }
                            7 => udp(remote, (PUBLIC, 1), OUT),
                            8 => echo(OTHER, PUBLIC, 9, true, OUT),
                            _ => tcp((OTHER, 40000), (PUBLIC, 8081), SYN, OUT),
                        }
                    }
                })
                .collect();
            let got = burst.burst(port, &frames.iter().map(Vec::as_slice).collect::<Vec<_>>());
            for (f, g) in frames.into_iter().zip(got) {
                assert_eq!(single.send(port, f), g, "round {round}");
            }
            assert_eq!(
                burst.shards[0].counters().forwarded(),
                single.shards[0].counters().forwarded()
            );
        }
        assert_eq!(burst.sessions(), single.sessions());
        for r in (0..Reason::COUNT).filter_map(Reason::from_index) {
            assert_eq!(burst.drops(r), single.drops(r), "{r:?}");
        }
    }

    /// `frame` with an 802.1Q tag of VLAN `vid` after its MAC addresses.
    fn tagged(mut frame: Vec<u8>, vid: u8) -> Vec<u8> {
        frame.splice(12..12, [0x81, 0x00, 0x00, vid]);
        frame
    }

    /// Ports have no VLAN settings, so a tagged frame is never forwarded: its inside tag
    /// would leave on the outside port. Neither a new flow nor a packet of an open session
    /// (whose untagged packets pass) goes through, and no session is created.
    #[test]
    fn tagged_transit_frames_are_not_forwarded() {
        let mut n = Net::new("");
        let (a, _) = n.send(LAN, tagged(udp((C1, 5000), (SERVER, 53), IN), 42));
        assert_eq!(a, drop_for(VlanTransit), "a new flow");
        assert_eq!(n.sessions(), 0);
        n.forwarded(LAN, udp((C1, 5000), (SERVER, 53), IN), WAN);
        for (port, f) in [
            (LAN, tagged(udp((C1, 5000), (SERVER, 53), IN), 42)),
            (WAN, tagged(udp((SERVER, 53), (PUBLIC, 5000), OUT), 7)),
        ] {
            let (a, _) = n.send(port, f);
            assert_eq!(a, drop_for(VlanTransit), "an open session's");
        }
        assert_eq!(n.drops(VlanTransit), 3);
        assert_eq!(n.sessions(), 1);
    }

    /// A tagged frame gets no answer the same frame untagged would not get: one from outside
    /// with an inside (or martian) source and its TTL run out is dropped as spoofed, not
    /// answered with a time exceeded that would carry the inside address out in its quote;
    /// one from inside with a public source is dropped as invalid.
    #[test]
    fn tagged_frames_from_impossible_sources_are_not_answered() {
        let mut n = Net::new("");
        for src in [C1, Ipv4Addr::new(127, 0, 0, 1)] {
            let late = with_ttl(udp((src, 5000), (OTHER, 53), OUT), 1);
            let (a, _) = n.send(WAN, tagged(late, 100));
            assert_eq!(a, drop_for(SpoofedSource), "from {src}");
        }
        let late = with_ttl(udp((SERVER, 5000), (OTHER, 53), IN), 1);
        n.dropped(LAN, tagged(late, 42), InvalidSource);
    }

    /// A tagged frame in transit gets no time exceeded, whatever its TTL: it would not be
    /// forwarded, and the answer would quote its destination. Found by the pipeline fuzzer
    /// (regressions/pipeline/ttl_exceeded_quoting_inside_from_outside.bin): from outside, to
    /// an inside address, TTL 1, the answer left the outside port quoting the inside address;
    /// untagged, the same frame is dropped as `no_forward`.
    #[test]
    fn tagged_frames_in_transit_get_no_time_exceeded() {
        let mut n = Net::new("");
        let to_inside = with_ttl(udp((SERVER, 5000), (C1, 53), OUT), 1);
        n.dropped(WAN, to_inside.clone(), NoForward);
        n.dropped(WAN, tagged(to_inside, 100), VlanTransit);
        let to_outside = with_ttl(udp((C1, 5000), (SERVER, 53), IN), 1);
        n.dropped(LAN, tagged(to_outside, 44), VlanTransit);
        assert_eq!(n.sessions(), 0);
    }

    /// Replies the appliance builds go back with the VLAN tags of the frame they answer.
    #[test]
    fn replies_keep_the_vlan_tags() {
        let mut n = Net::new("");
        let mut buf = vec![0u8; 64];
        let len =
            build::arp_request(&mut buf, MAC_C1, Vlans::One(VlanTag::new(42)), C1, LAN_IP).unwrap();
        buf.truncate(len);
        let (a, f) = n.send(LAN, buf);
        assert_eq!(a, Disposition::Forward(LAN));
        assert_eq!(f[12..16], [0x81, 0x00, 0x00, 42], "ARP reply tagged");
        let mut ping = echo(C1, LAN_IP, 5, true, IN);
        ping.splice(12..12, [0x81, 0x00, 0x00, 43]);
        let (a, f) = n.send(LAN, ping);
        assert_eq!(a, Disposition::Forward(LAN));
        assert_eq!(f[12..16], [0x81, 0x00, 0x00, 43], "echo reply tagged");
    }
}

// --- one-arm (a single `both` port) -------------------------------------------------------

mod one_arm {
    use super::*;

    const ONE_ARM: &str = r#"
private_prefixes = ["10.0.0.0/16", "10.1.0.0/16"]
[eal]
lcores = "0-1"
huge_pages = false
[[port]]
name = "nic"
role = "both"
device = "net_null0"
address = "10.0.0.4/24"
gateway = "10.0.0.1"
[local.health_probe]
port = 9999
sources = ["168.63.129.16/32"]
"#;

    const NIC: u8 = 0;
    const MAC_NIC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb0]);
    const MAC_ROUTER: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb1]);
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 10);

    #[test]
    fn egress_and_reply_through_one_port() {
        let mut n = Net::with_policy(compile(ONE_ARM, 1), 1);
        n.macs = vec![MAC_NIC];
        n.neighbours = Neighbours::with(1, [((NIC, ROUTER), MAC_ROUTER)]);
        let to_me = (MAC_ROUTER, MAC_NIC);
        // The cloud routes the host's traffic to the appliance; it leaves by the same port,
        // translated to the port's address, towards the subnet's router.
        let s = n.forwarded(NIC, udp((HOST, 5000), (SERVER, 53), to_me), NIC);
        assert_eq!(
            (s.src, s.dst, s.dst_mac),
            ((ME, 5000), (SERVER, 53), MAC_ROUTER)
        );
        // The reply comes back to the port and goes to the host, through the router.
        let s = n.forwarded(NIC, udp((SERVER, 53), (ME, 5000), to_me), NIC);
        assert_eq!(
            (s.src, s.dst, s.dst_mac),
            ((SERVER, 53), (HOST, 5000), MAC_ROUTER)
        );
        // Unsolicited traffic from the internet is dropped; the load balancer's probe is
        // answered.
        let (a, _) = n.send(NIC, udp((OTHER, 1), (ME, 7000), to_me));
        assert!(matches!(a, Disposition::Drop(_)));
        let probe = Ipv4Addr::new(168, 63, 129, 16);
        n.forwarded(NIC, tcp((probe, 40000), (ME, 9999), SYN, to_me), NIC);
    }
}

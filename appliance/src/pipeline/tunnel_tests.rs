//! Scenario tests of a `gwlb` port ([`super::tunnel`]): the hosts of the two-arm topology
//! behind AWS's GENEVE and Azure's VXLAN tunnels ([`crate::testing::gwlb`]).

use super::*;
use crate::packet::build::Encap;
use crate::packet::{geneve, Error as Malformed, EtherType, GeneveRepr, Ipv4Packet, TcpFlags};
use crate::testing::gwlb::*;
use crate::testing::*;
use std::net::Ipv4Addr;
use Discard::*;

/// One shard behind AWS's load balancer.
fn aws() -> Net {
    Net::with_policy(compile(GENEVE, 1), 1)
}

/// One shard behind Azure's load balancer.
fn azure() -> Net {
    Net::with_policy(compile(VXLAN, 1), 1)
}

/// The inner frames come from the hosts themselves; the MACs do not matter inside a tunnel.
const HOSTS: (
    crate::packet::EthernetAddress,
    crate::packet::EthernetAddress,
) = (MAC_C1, MAC_GW);

/// Sends `frame` into the `gwlb` port and asserts it goes back to the load balancer in its
/// tunnel: the outer headers turned around, the payload as `expected` (the tunnel header and
/// inner packet). Returns what the inner packet says.
#[track_caller]
fn returned(n: &mut Net, frame: &[u8], expected: &[u8]) -> Seen {
    let (action, out) = n.send(GWLB, frame);
    assert_eq!(action, Disposition::Forward(GWLB), "{out:02x?}");
    let o = outer(&out);
    assert_eq!((o.seen.src_mac, o.seen.dst_mac), (MAC_LAN, MAC_LB));
    assert_eq!(o.seen.src.0, APPLIANCE);
    assert_eq!(o.seen.dst.0, LB);
    assert_eq!(o.seen.ttl, 64);
    assert_eq!(o.payload, expected, "tunnel header and inner packet");
    inner(&out)
}

/// The tunnel header and inner packet of a tunnel packet.
fn payload(frame: &[u8]) -> Vec<u8> {
    outer(frame).payload
}

/// The drops of `r` among the `gwlb` port's packets.
fn tunnel_drops(n: &Net, r: impl Into<Reason>) -> u64 {
    let r = r.into();
    n.shards
        .iter()
        .map(|s| s.counters().tunnel(GWLB).drops_of(r))
        .sum()
}

mod geneve_tunnel {
    use super::*;

    #[test]
    fn a_flow_from_inside_goes_back_unchanged_and_its_reply_too() {
        let mut n = aws();
        let out = geneve(&udp((C1, 5000), (SERVER, 53), HOSTS));
        let s = returned(&mut n, &out, &payload(&out));
        assert_eq!((s.src, s.dst, s.ttl), ((C1, 5000), (SERVER, 53), 64));
        let o = outer(&n.send(GWLB, &out).1);
        assert_eq!(
            (o.seen.src.1, o.seen.dst.1),
            (LB_PORT, 6081),
            "UDP ports kept"
        );
        assert_eq!(n.sessions(), 1);

        let back = geneve(&udp((SERVER, 53), (C1, 5000), HOSTS));
        returned(&mut n, &back, &payload(&back));
        assert_eq!(n.sessions(), 1, "the reply found the session");
        let c = n.shards[0].counters().tunnel(GWLB);
        assert_eq!(c.decapsulated(), (3, 3 * out.len() as u64));
        assert_eq!(c.encapsulated().0, 3);
    }

    #[test]
    fn the_inner_ttl_is_not_decremented_nor_checked() {
        let mut n = aws();
        let out = geneve(&with_ttl(udp((C1, 5000), (SERVER, 53), HOSTS), 1));
        assert_eq!(returned(&mut n, &out, &payload(&out)).ttl, 1);
    }

    #[test]
    fn the_rules_decide_new_flows_of_each_side() {
        let mut n = aws();
        // From inside: egress rules (SMTP denied).
        let smtp = geneve(&tcp((C1, 40000), (SERVER, 25), TcpFlags::SYN, HOSTS));
        n.dropped(GWLB, smtp, EgressDenied);
        // From outside: ingress rules, no forward needed (C2:80 only).
        let ssh = geneve(&tcp((OTHER, 40000), (C1, 22), TcpFlags::SYN, HOSTS));
        n.dropped(GWLB, ssh, IngressDenied);
        let web = geneve(&tcp((OTHER, 40000), (C2, 80), TcpFlags::SYN, HOSTS));
        let s = returned(&mut n, &web, &payload(&web));
        assert_eq!(s.dst, (C2, 80), "not translated");
        let answer = geneve(&tcp((C2, 80), (OTHER, 40000), TcpFlags(0x12), HOSTS));
        returned(&mut n, &answer, &payload(&answer));
        // Unsolicited, a segment that is no SYN opens nothing.
        let stray = geneve(&tcp((OTHER, 40001), (C2, 80), TcpFlags::ACK, HOSTS));
        n.dropped(GWLB, stray, TcpNoSession);
        assert_eq!(tunnel_drops(&n, EgressDenied), 1);
        assert_eq!(tunnel_drops(&n, IngressDenied), 1);
        assert_eq!(tunnel_drops(&n, TcpNoSession), 1);
    }

    #[test]
    fn malformed_tunnel_headers_are_dropped_and_counted() {
        let mut n = aws();
        let good = geneve(&udp((C1, 5000), (SERVER, 53), HOSTS));
        let geneve_at = 14 + 20 + 8;
        let fix_udp = |f: &mut Vec<u8>| {
            let mut u = crate::packet::UdpPacket::new_unchecked(&mut f[34..]);
            u.fill_checksum(LB, APPLIANCE, &crate::packet::ChecksumCaps::NONE);
        };
        let mut version = good.clone();
        version[geneve_at] |= 0x40;
        fix_udp(&mut version);
        let mut overrun = good.clone();
        overrun[geneve_at] = 0x3f; // 63 words of options announced
        fix_udp(&mut overrun);
        let mut ragged = good.clone();
        ragged[geneve_at + 8 + 3] = 0x1f; // the first option claims 31 words
        fix_udp(&mut ragged);
        let mut short = good.clone();
        short[38..40].copy_from_slice(&12u16.to_be_bytes()); // 4 bytes of GENEVE
        let mut bad_sum = good.clone();
        bad_sum[24] ^= 0xff;
        let cases = [
            (version, Reason::from(Malformed::GeneveBadVersion)),
            (overrun, Malformed::GeneveBadOptionsLen.into()),
            (ragged, Malformed::GeneveBadOption.into()),
            (short, Malformed::GeneveTruncated.into()),
            (bad_sum, Malformed::Ipv4BadChecksum.into()),
            (good[..60].to_vec(), Malformed::Ipv4Truncated.into()),
        ];
        for (f, r) in &cases {
            n.dropped(GWLB, f, *r);
            assert_eq!(tunnel_drops(&n, *r), 1, "{r:?}");
        }
        assert_eq!(n.sessions(), 0);
        let c = n.shards[0].counters().tunnel(GWLB);
        assert_eq!((c.decapsulated().0, c.encapsulated().0), (0, 0));
    }

    #[test]
    fn critical_options_and_control_packets_are_not_carried() {
        let mut n = aws();
        let inner = ip_packet(&udp((C1, 5000), (SERVER, 53), HOSTS)).to_vec();
        // An option of type 0x81: critical, and unknown to the appliance.
        let critical = [0x01, 0x08, 0x81, 0x00];
        let header = GeneveRepr {
            critical: true,
            options: &critical,
            ..aws_header()
        };
        let f = encapsulated(&Encap::Geneve(header), 6081, &inner);
        n.dropped(GWLB, f, TunnelCriticalOption);
        // The C bit alone (no option is critical) is no reason to drop.
        let header = GeneveRepr {
            critical: true,
            ..aws_header()
        };
        let f = encapsulated(&Encap::Geneve(header), 6081, &inner);
        returned(&mut n, &f, &payload(&f));
        let oam = GeneveRepr {
            oam: true,
            ..aws_header()
        };
        n.dropped(
            GWLB,
            encapsulated(&Encap::Geneve(oam), 6081, &inner),
            TunnelOam,
        );
        // Inside, IPv6 and anything but IP are not carried either.
        let v6 = GeneveRepr {
            protocol: EtherType::Ipv6,
            ..aws_header()
        };
        let f = encapsulated(&Encap::Geneve(v6), 6081, &[0x60; 48]);
        n.dropped(GWLB, f, Malformed::Ipv6Truncated);
    }

    #[test]
    fn each_network_has_its_own_sessions() {
        let mut n = aws();
        let inner = ip_packet(&udp((C1, 5000), (SERVER, 53), HOSTS)).to_vec();
        for vni in [0, 7] {
            let header = GeneveRepr {
                vni: crate::packet::Vni::new(vni).unwrap(),
                ..aws_header()
            };
            let f = encapsulated(&Encap::Geneve(header), geneve::UDP_PORT, &inner);
            returned(&mut n, &f, &payload(&f));
        }
        assert_eq!(n.sessions(), 2, "one flow in each of two VNIs");
        // The reply in a third network finds neither: from outside, it is a new flow.
        let reply = ip_packet(&udp((SERVER, 53), (C1, 5000), HOSTS)).to_vec();
        let header = GeneveRepr {
            vni: crate::packet::Vni::new(9).unwrap(),
            ..aws_header()
        };
        let f = encapsulated(&Encap::Geneve(header), geneve::UDP_PORT, &reply);
        n.dropped(GWLB, f, IngressDenied);
    }

    #[test]
    fn what_comes_in_no_tunnel_is_answered_or_dropped() {
        let mut n = aws();
        let to_us = (MAC_LB, MAC_LAN);
        // Echo to the port's address: answered.
        let (a, f) = n.send(GWLB, echo(LB, APPLIANCE, 9, true, to_us));
        assert_eq!(a, Disposition::Forward(GWLB));
        assert_eq!(seen(&f).dst.0, LB);
        // A flow through the appliance outside the tunnel: never forwarded.
        let plain = udp((C1, 5000), (SERVER, 53), to_us);
        n.dropped(GWLB, &plain, Malformed::TunnelNotEncapsulated);
        // GENEVE to another address, or to another port of ours: not the tunnel.
        let mut elsewhere = geneve(&plain);
        elsewhere[36..38].copy_from_slice(&6082u16.to_be_bytes());
        n.dropped(GWLB, elsewhere, LocalUnhandled);
        // An ICMP error outside the tunnel cannot be about its sessions.
        n.send(GWLB, geneve(&plain));
        let error = error_about(&plain, ROUTER, to_us, 3);
        n.dropped(GWLB, error, Malformed::TunnelNotEncapsulated);
        assert_eq!(n.sessions(), 1);
    }

    #[test]
    fn icmp_errors_about_a_session_go_back_in_the_tunnel() {
        let mut n = aws();
        let out = udp((C1, 5000), (SERVER, 53), HOSTS);
        n.send(GWLB, geneve(&out));
        let error = geneve(&error_about(&out, ROUTER, HOSTS, 3));
        returned(&mut n, &error, &payload(&error));
        // About no session: dropped.
        let other = udp((C1, 5001), (SERVER, 53), HOSTS);
        let error = geneve(&error_about(&other, ROUTER, HOSTS, 3));
        n.dropped(GWLB, error, IcmpErrorNoSession);
    }

    #[test]
    fn a_reload_keeps_the_flows_its_rules_still_allow() {
        let mut n = aws();
        let web = geneve(&tcp((OTHER, 40000), (C2, 80), TcpFlags::SYN, HOSTS));
        returned(&mut n, &web, &payload(&web));
        let out = geneve(&udp((C1, 5000), (SERVER, 53), HOSTS));
        returned(&mut n, &out, &payload(&out));
        // The same rules: both sessions live on.
        n.policy = compile(GENEVE, 2);
        let answer = geneve(&tcp((C2, 80), (OTHER, 40000), TcpFlags(0x12), HOSTS));
        returned(&mut n, &answer, &payload(&answer));
        // Egress of UDP denied from now on: the UDP session ends, the web one stays.
        n.policy = compile(
            &format!("{GENEVE}\n[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\n"),
            3,
        );
        let reply = geneve(&udp((SERVER, 53), (C1, 5000), HOSTS));
        n.dropped(GWLB, reply, PolicyRecheckDeny);
        returned(&mut n, &answer, &payload(&answer));
    }

    #[test]
    fn two_workers_own_both_directions_of_a_flow_alike() {
        let mut n = Net::with_policy(compile(GENEVE, 1), 2);
        for i in 0..40u16 {
            let out = geneve(&udp((C1, 5000 + i), (SERVER, 53), HOSTS));
            returned(&mut n, &out, &payload(&out));
            let back = geneve(&udp((SERVER, 53), (C1, 5000 + i), HOSTS));
            returned(&mut n, &back, &payload(&back));
        }
        assert_eq!(n.sessions(), 40);
        assert!(
            n.shards.iter().all(|s| !s.table().is_empty()),
            "flows on both workers"
        );
    }
}

mod vxlan_tunnel {
    use super::*;

    /// The payload `frame` would have on `tunnel`: the packet leaves on the other tunnel.
    fn on(frame: &[u8], tunnel: (u16, u32)) -> Vec<u8> {
        payload(&vxlan(frame, tunnel))
    }

    #[test]
    fn a_packet_goes_back_on_the_other_tunnel() {
        let mut n = azure();
        let web = tcp((OTHER, 40000), (C2, 80), TcpFlags::SYN, HOSTS);
        let (a, f) = n.send(GWLB, vxlan(&web, EXTERNAL));
        assert_eq!(a, Disposition::Forward(GWLB));
        let o = outer(&f);
        assert_eq!(
            o.seen.dst.1, INTERNAL.0,
            "from the external tunnel to the internal one"
        );
        assert_eq!(
            o.payload,
            on(&web, INTERNAL),
            "VNI 800, the inner frame untouched"
        );
        assert_eq!(inner(&f).dst, (C2, 80));

        let answer = tcp((C2, 80), (OTHER, 40000), TcpFlags(0x12), HOSTS);
        let (a, f) = n.send(GWLB, vxlan(&answer, INTERNAL));
        assert_eq!(a, Disposition::Forward(GWLB));
        assert_eq!(outer(&f).payload, on(&answer, EXTERNAL));
        assert_eq!(n.sessions(), 1);
    }

    #[test]
    fn the_tunnel_says_the_side() {
        let mut n = azure();
        // Public addresses on both sides: the internal tunnel's are the consumer's.
        let consumer = Ipv4Addr::new(20, 101, 109, 26);
        let out = udp((consumer, 5000), (SERVER, 53), HOSTS);
        let (a, _) = n.send(GWLB, vxlan(&out, INTERNAL));
        assert_eq!(a, Disposition::Forward(GWLB), "egress, allowed");
        let unsolicited = udp((SERVER, 53), (consumer, 5001), HOSTS);
        n.dropped(GWLB, vxlan(&unsolicited, EXTERNAL), IngressDenied);
        // The consumer's packet of the session on the external tunnel is forged.
        n.dropped(GWLB, vxlan(&out, EXTERNAL), SpoofedSource);
        let reply = udp((SERVER, 53), (consumer, 5000), HOSTS);
        n.dropped(GWLB, vxlan(&reply, INTERNAL), SpoofedSource);
        assert_eq!(
            n.send(GWLB, vxlan(&reply, EXTERNAL)).0,
            Disposition::Forward(GWLB)
        );
    }

    #[test]
    fn a_foreign_vni_or_a_bad_header_is_dropped_and_counted() {
        let mut n = azure();
        let out = udp((C1, 5000), (SERVER, 53), HOSTS);
        n.dropped(GWLB, vxlan(&out, (INTERNAL.0, 801)), TunnelUnknownVni);
        let mut no_i = vxlan(&out, INTERNAL);
        no_i[42] = 0;
        let mut u = crate::packet::UdpPacket::new_unchecked(&mut no_i[34..]);
        u.fill_checksum(LB, APPLIANCE, &crate::packet::ChecksumCaps::NONE);
        n.dropped(GWLB, no_i, Malformed::VxlanIFlagMissing);
        let mut short = vxlan(&out, INTERNAL);
        short[38..40].copy_from_slice(&15u16.to_be_bytes());
        n.dropped(GWLB, short, Malformed::VxlanTruncated);
        let mut bad_inner = vxlan(&out, INTERNAL);
        bad_inner[50 + 14 + 10] ^= 0xff; // the inner IPv4 header checksum
        let mut u = crate::packet::UdpPacket::new_unchecked(&mut bad_inner[34..]);
        u.fill_checksum(LB, APPLIANCE, &crate::packet::ChecksumCaps::NONE);
        n.dropped(GWLB, bad_inner, Malformed::Ipv4BadChecksum);
        for r in [
            Reason::from(TunnelUnknownVni),
            Malformed::VxlanIFlagMissing.into(),
            Malformed::VxlanTruncated.into(),
            Malformed::Ipv4BadChecksum.into(),
        ] {
            assert_eq!(tunnel_drops(&n, r), 1, "{r:?}");
        }
        assert_eq!(n.sessions(), 0);
    }

    #[test]
    fn the_outer_udp_checksum_follows_the_move() {
        let mut n = azure();
        let f = vxlan(&udp((C1, 5000), (SERVER, 53), HOSTS), INTERNAL);
        let (_, out) = n.send(GWLB, &f);
        // `outer` verifies the checksum the load balancer computed, moved to 10801/801.
        let o = outer(&out);
        assert_eq!(o.seen.dst.1, EXTERNAL.0);
        let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.dst_addr(), LB);
    }
}

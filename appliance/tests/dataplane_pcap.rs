//! net_pcap through `appliance run`: crafted frames in (`rx_pcap`), through the stateful
//! pipeline, out (`tx_pcap`): every good frame leaves source-NATed, in order, with valid
//! checksums; bad frames are counted by reason; ARP for the appliance is answered. A port of
//! role gwlb returns its GENEVE tunnel.

mod common;
use common::*;

use appliance::packet::{
    build, parse_frame, ArpOperation, ArpPacket, ArpRepr, ChecksumCaps, EthernetAddress,
    Ipv4Packet, TcpFlags, TcpPacket, UdpPacket, Vlans, L3, L4,
};
use appliance::testing;
use std::net::Ipv4Addr;
use std::path::Path;

const CLIENT_MAC: EthernetAddress = testing::MAC_C1;
const GATEWAY_MAC: &str = "02:00:00:00:00:01";
const PUBLIC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

fn config(dir: &Path, input: &str) -> std::path::PathBuf {
    config_with(dir, input, "")
}

/// [`config`] with `extra` (whole sections) appended.
fn config_with(dir: &Path, input: &str, extra: &str) -> std::path::PathBuf {
    let ports = format!(
        r#"
[[port]]
name = "lan"
role = "inside"
device = "net_pcap0,rx_pcap={d}/{input},tx_pcap={d}/back.pcap"
address = "10.0.1.1/24"

[[port]]
name = "wan"
role = "outside"
device = "net_pcap1,rx_pcap={d}/empty.pcap,tx_pcap={d}/out.pcap"
address = "192.0.2.2/24"
gateway = "192.0.2.1"
neighbours = [{{ ip = "192.0.2.1", mac = "{GATEWAY_MAC}" }}]
{extra}
"#,
        d = dir.display(),
    );
    config_file(dir, input, &ports)
}

/// A configuration of net_pcap ports for reading `input`: the EAL, buffer and control
/// settings of these tests, then `ports` (and whatever sections follow them).
fn config_file(dir: &Path, input: &str, ports: &str) -> std::path::PathBuf {
    write(
        dir,
        &format!("{input}.toml"),
        &format!(
            r#"
[eal]
lcores = "0-1"
huge_pages = false
memory_mb = 128
file_prefix = "t-pcap-{pid}"

[dataplane]
mbufs = 4095

[control]
socket = ""
{ports}"#,
            pid = std::process::id()
        ),
    )
}

/// The MAC of port `name`, which the frames must be addressed to: a first run of half a
/// second on an empty pcap (`config` writes the configuration that reads its input).
fn learn_mac(
    dir: &Path,
    config: impl Fn(&str) -> std::path::PathBuf,
    name: &str,
) -> EthernetAddress {
    pcap::write(&dir.join("empty.pcap"), &[]);
    let r = report(&run_appliance(
        &config("empty.pcap"),
        &["--duration", "0.5"],
    ));
    port(&r, name)["mac"].as_str().unwrap().parse().unwrap()
}

/// 100 UDP datagrams and 50 TCP SYNs from two inside hosts, then two frames with a broken
/// IPv4 header checksum, then an ARP request for the appliance's inside address.
fn frames(mac: EthernetAddress) -> (Vec<Vec<u8>>, Vec<(Ipv4Addr, u16)>) {
    let mut out = Vec::new();
    let mut sent = Vec::new();
    for i in 0..150u16 {
        let (src, port) = if i < 100 {
            (Ipv4Addr::new(10, 0, 1, 10), 4000 + i)
        } else {
            (Ipv4Addr::new(10, 0, 1, 11), 5000 + i)
        };
        let payload = vec![i as u8; 10 + usize::from(i) * 7];
        let macs = (CLIENT_MAC, mac);
        let frame = if i < 100 {
            testing::udp_sized((src, port), (SERVER, 53), macs, &payload, true)
        } else {
            testing::tcp((src, port), (SERVER, 443), TcpFlags::SYN, macs)
        };
        out.push(frame);
        sent.push((src, port));
    }
    for _ in 0..2 {
        let mut bad = out[0].clone();
        bad[24] ^= 0xff; // IPv4 header checksum
        out.push(bad);
    }
    let mut arp = vec![0u8; 64];
    let n = build::arp_request(
        &mut arp,
        CLIENT_MAC,
        Vlans::None,
        Ipv4Addr::new(10, 0, 1, 10),
        Ipv4Addr::new(10, 0, 1, 1),
    )
    .unwrap();
    arp.truncate(n);
    out.push(arp);
    (out, sent)
}

#[test]
fn frames_are_translated_in_order_through_pcap() {
    let dir = scratch("pcap");
    let mac = learn_mac(&dir, |input| config(&dir, input), "lan");

    let (input, sent) = frames(mac);
    pcap::write(&dir.join("in.pcap"), &input);
    let r = report(&run_appliance(
        &config(&dir, "in.pcap"),
        &["--duration", "1.5"],
    ));
    assert_eq!(count(port(&r, "lan"), "rx_packets"), input.len() as u64);
    let drops: Vec<(String, u64)> = r["drops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_str().unwrap().to_string(), d[1].as_u64().unwrap()))
        .collect();
    assert!(
        drops.contains(&("ipv4_bad_checksum".to_string(), 2)),
        "bad checksums counted: {drops:?}"
    );
    assert_eq!(r["sessions_created"].as_u64(), Some(150));

    let out = pcap::read(&dir.join("out.pcap"));
    let (arp, data): (Vec<_>, Vec<_>) = out.iter().partition(|f| f[12..14] == [0x08, 0x06]);
    assert!(
        arp.iter().any(|f| {
            let a = ArpRepr::parse(&ArpPacket::new_checked(&f[14..]).unwrap()).unwrap();
            a.source_protocol_addr == PUBLIC && a.target_protocol_addr == PUBLIC
        }),
        "gratuitous ARP for the public address at start"
    );
    assert_eq!(data.len(), sent.len(), "every good frame came out");
    for (i, (f, (src, sport))) in data.iter().zip(&sent).enumerate() {
        assert_eq!(
            f[..6],
            GATEWAY_MAC.parse::<EthernetAddress>().unwrap().0,
            "frame {i}: to the gateway"
        );
        let p = parse_frame(f, &ChecksumCaps::NONE).expect("valid IPv4");
        let L3::Ipv4(m) = p.l3 else {
            panic!("frame {i}: not IPv4")
        };
        assert_eq!(m.tuple.src_addr, PUBLIC, "frame {i}: source translated");
        assert_eq!(
            m.tuple.src_port, *sport,
            "frame {i}: port preserved ({src})"
        );
        assert_eq!(m.tuple.dst_addr, SERVER);
        let ip = Ipv4Packet::new_checked(&f[p.l3_offset()..]).unwrap();
        assert_eq!(ip.ttl(), 63);
        let ok = match m.l4 {
            L4::Udp => UdpPacket::new_checked(ip.payload_slice())
                .unwrap()
                .verify_checksum(PUBLIC, SERVER),
            L4::Tcp(_) => TcpPacket::new_checked(ip.payload_slice())
                .unwrap()
                .verify_checksum(PUBLIC, SERVER),
            _ => false,
        };
        assert!(ok, "frame {i}: transport checksum");
    }
    // The ARP request was answered on the inside.
    let back = pcap::read(&dir.join("back.pcap"));
    let replies: Vec<ArpRepr> = back
        .iter()
        .filter(|f| f[12..14] == [0x08, 0x06])
        .map(|f| ArpRepr::parse(&ArpPacket::new_checked(&f[14..]).unwrap()).unwrap())
        .filter(|a| a.operation == ArpOperation::Reply)
        .collect();
    assert_eq!(replies.len(), 1, "one ARP reply: {replies:?}");
    assert_eq!(replies[0].source_hardware_addr, mac);
    assert_eq!(replies[0].target_hardware_addr, CLIENT_MAC);
}

/// Port exhaustion is logged by the control thread with the address and protocol: four
/// ports, ten new UDP mappings, six refused, one line (rate-limited) saying so.
#[test]
fn port_exhaustion_is_logged_with_address_and_protocol() {
    let dir = scratch("pcap-exhausted");
    let nat = "[nat]\nport_range = \"2000-2003\"\n";
    let mac = learn_mac(&dir, |input| config_with(&dir, input, nat), "lan");
    let input: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            let src = (Ipv4Addr::new(10, 0, 1, 10), 4000 + i);
            testing::udp_sized(src, (SERVER, 53), (CLIENT_MAC, mac), b"x", true)
        })
        .collect();
    pcap::write(&dir.join("in.pcap"), &input);
    let out = run_appliance(&config_with(&dir, "in.pcap", nat), &["--duration", "2.5"]);
    let r = report(&out);
    assert_eq!(r["sessions_created"].as_u64(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("SNAT ports exhausted"))
        .collect();
    assert_eq!(lines.len(), 1, "one line, rate-limited:\n{stderr}");
    for field in [
        "address=192.0.2.2",
        "protocol=\"udp\"",
        "refused=6",
        "total=6",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
}

/// One `gwlb` port behind AWS's load balancer, reading `input` and writing `out.pcap`: the
/// GENEVE tunnel and the rules of `testing::gwlb` (SMTP out denied, in only to C2:80).
fn gwlb_config(dir: &Path, input: &str) -> std::path::PathBuf {
    let (config, rules) = testing::gwlb::GENEVE
        .split_once("[[egress.rule]]")
        .expect("the fixture has rules");
    let ports = config
        .split_once("[[port]]")
        .expect("the fixture has its port")
        .1
        .replace(
            "net_null0",
            &format!(
                "net_pcap0,rx_pcap={d}/{input},tx_pcap={d}/out.pcap",
                d = dir.display()
            ),
        );
    config_file(
        dir,
        input,
        &format!("[[port]]{ports}[[egress.rule]]{rules}"),
    )
}

/// The real binary on a DPDK port of role gwlb: GENEVE frames in (net_pcap), every allowed
/// one back out of the same port turned around (to the load balancer's MAC and address,
/// from ours, the UDP ports, the GENEVE header with its options and the inner packet byte
/// for byte), the denied and malformed ones dropped and counted for the tunnel.
#[test]
fn a_gwlb_port_returns_its_tunnel_through_pcap() {
    use testing::gwlb::{geneve, outer, APPLIANCE, LB, LB_PORT, MAC_LB};
    use testing::{C1, C2, OTHER};
    let dir = scratch("pcap-gwlb");
    let mac = learn_mac(&dir, |input| gwlb_config(&dir, input), "gwlb");

    let hosts = (CLIENT_MAC, testing::MAC_GW);
    let syn = TcpFlags::SYN;
    let mut passed: Vec<Vec<u8>> = Vec::new();
    for i in 0..20u16 {
        passed.push(geneve(&testing::udp((C1, 4000 + i), (SERVER, 53), hosts)));
    }
    for i in 0..10u16 {
        passed.push(geneve(&testing::udp((SERVER, 53), (C1, 4000 + i), hosts)));
    }
    passed.push(geneve(&testing::tcp((OTHER, 40000), (C2, 80), syn, hosts)));
    let smtp = geneve(&testing::tcp((C1, 40000), (SERVER, 25), syn, hosts));
    let ssh = geneve(&testing::tcp((OTHER, 40000), (C1, 22), syn, hosts));
    let mut bad_version = passed[0].clone();
    bad_version[42] |= 0x40;
    let mut input = passed.to_vec();
    input.extend([smtp, ssh, bad_version]);
    for f in &mut input {
        f[..6].copy_from_slice(&mac.0);
    }
    pcap::write(&dir.join("in.pcap"), &input);
    let r = report(&run_appliance(
        &gwlb_config(&dir, "in.pcap"),
        &["--duration", "1.5"],
    ));
    assert_eq!(count(port(&r, "gwlb"), "rx_packets"), input.len() as u64);
    let t = &r["tunnels"][0];
    assert_eq!(
        (t["port"].as_str(), t["kind"].as_str()),
        (Some("gwlb"), Some("geneve")),
        "{r}"
    );
    assert_eq!(t["decapsulated_packets"].as_u64(), Some(33), "{t}");
    assert_eq!(t["encapsulated_packets"].as_u64(), Some(31), "{t}");
    for reason in ["egress_denied", "ingress_denied", "geneve_bad_version"] {
        assert_eq!(t["drops"][reason].as_u64(), Some(1), "{reason}: {t}");
    }
    assert_eq!(r["sessions_created"].as_u64(), Some(21));

    let out = pcap::read(&dir.join("out.pcap"));
    let back: Vec<&Vec<u8>> = out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    assert_eq!(back.len(), passed.len(), "every allowed packet came back");
    for (i, (f, sent)) in back.iter().zip(&passed).enumerate() {
        let o = outer(f);
        assert_eq!(
            (o.seen.src_mac, o.seen.dst_mac),
            (mac, MAC_LB),
            "frame {i}: MACs"
        );
        assert_eq!(
            (o.seen.src, o.seen.dst),
            ((APPLIANCE, LB_PORT), (LB, 6081)),
            "frame {i}"
        );
        assert_eq!(
            o.payload,
            outer(sent).payload,
            "frame {i}: GENEVE and inner unchanged"
        );
    }
}

//! The gateway load balancer topology: one port, `gwlb` (port 0, 10.0.2.10/24, MAC
//! [`super::MAC_LAN`]), behind a load balancer at [`LB`] that sends the traffic of the
//! two-arm topology's hosts (C1..C3 inside, SERVER and OTHER outside) in its tunnel: AWS's
//! GENEVE ([`GENEVE`], with [`AWS_OPTIONS`]) or Azure's pair of VXLAN tunnels ([`VXLAN`]).
//! [`geneve`] and [`vxlan`] put a frame of [`super::frames`] in the tunnel; [`inner`] and
//! [`outer`] read what came back.

use super::{seen, Seen, MAC_LAN};
use crate::packet::build::{self, Encap, Link};
use crate::packet::{
    geneve, parse_frame, tunnel, vxlan, ChecksumCaps, EtherType, EthernetAddress, GeneveRepr,
    Ipv4Packet, UdpPacket, Vlans, Vni, VxlanRepr,
};
use std::net::Ipv4Addr;

/// The `gwlb` port's index.
pub const GWLB: u8 = 0;
/// The `gwlb` port's address: where the load balancer sends its tunnel.
pub const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 10);
/// The load balancer's address.
pub const LB: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 5);
/// The load balancer's MAC.
pub const MAC_LB: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xb1]);
/// The UDP source port the load balancer sends from.
pub const LB_PORT: u16 = 49153;
/// Azure's internal tunnel (the consumer's side): UDP port and VNI.
pub const INTERNAL: (u16, u32) = (10800, 800);
/// Azure's external tunnel (the internet's side): UDP port and VNI.
pub const EXTERNAL: (u16, u32) = (10801, 801);

/// The policy both tunnels share: egress allowed but SMTP, ingress only to C2's web server.
macro_rules! rules {
    () => {
        r#"
[[egress.rule]]
action = "deny"
proto = "tcp"
dst_ports = [25]

[[ingress.rule]]
action = "allow"
proto = "tcp"
dst = ["10.0.1.11/32"]
dst_ports = [80]
"#
    };
}

/// One `gwlb` port at 10.0.2.10/24 with tunnel `$tunnel`, and the rules both tunnels share.
macro_rules! gwlb_port {
    ($tunnel:literal) => {
        concat!(
            "\n[eal]\nlcores = \"0-1\"\nhuge_pages = false\n\n[[port]]\nname = \"gwlb\"\n\
             role = \"gwlb\"\ndevice = \"net_null0\"\naddress = \"10.0.2.10/24\"\ntunnel = ",
            $tunnel,
            "\n",
            rules!()
        )
    };
}

/// One `gwlb` port behind AWS's load balancer: GENEVE at 6081.
pub const GENEVE: &str = gwlb_port!(r#"{ kind = "geneve" }"#);

/// One `gwlb` port behind Azure's load balancer: VXLAN, internal 10800/800, external
/// 10801/801 (Azure's defaults, written out).
pub const VXLAN: &str = gwlb_port!(
    r#"{ kind = "vxlan", internal = { port = 10800, vni = 800 }, external = { port = 10801, vni = 801 } }"#
);

/// AWS's three options (class 0x0108): the endpoint's id, the attachment's id, the flow
/// cookie.
#[rustfmt::skip]
pub const AWS_OPTIONS: [u8; 32] = [
    0x01, 0x08, 0x01, 0x02, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71,
    0x01, 0x08, 0x02, 0x02, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8,
    0x01, 0x08, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef,
];

/// The GENEVE header AWS sends: VNI 0, [`AWS_OPTIONS`], an IPv4 packet inside.
pub fn aws_header() -> GeneveRepr<'static> {
    GeneveRepr {
        oam: false,
        critical: false,
        protocol: EtherType::Ipv4,
        vni: Vni::default(),
        options: &AWS_OPTIONS,
        reserved_flags: 0,
        reserved: 0,
    }
}

/// A tunnel packet from the load balancer to the appliance: `header` at UDP `port` around
/// `inner`, the UDP checksum computed.
pub fn encapsulated(header: &Encap<'_>, port: u16, inner: &[u8]) -> Vec<u8> {
    let link = Link {
        src: MAC_LB,
        dst: MAC_LAN,
        vlans: Vlans::None,
    };
    let mut f = vec![0u8; 14 + 20 + 8 + header.buffer_len() + inner.len() + 60];
    let n = build::encapsulated(
        &mut f,
        &link,
        (LB, LB_PORT),
        (APPLIANCE, port),
        header,
        inner,
    )
    .expect("buffer sized for the frame");
    f.truncate(n);
    f
}

/// `frame` (an untagged IPv4 frame of [`super::frames`]) as AWS's load balancer sends it:
/// its IP packet in GENEVE with [`aws_header`].
pub fn geneve(frame: &[u8]) -> Vec<u8> {
    encapsulated(
        &Encap::Geneve(aws_header()),
        geneve::UDP_PORT,
        ip_packet(frame),
    )
}

/// `frame` as Azure's load balancer sends it on `tunnel` ([`INTERNAL`] or [`EXTERNAL`]):
/// the whole Ethernet frame in VXLAN.
pub fn vxlan(frame: &[u8], tunnel: (u16, u32)) -> Vec<u8> {
    let vni = Vni::new(tunnel.1).expect("a 24-bit VNI");
    encapsulated(&Encap::Vxlan(VxlanRepr::new(vni)), tunnel.0, frame)
}

/// The IP packet of an untagged IPv4 frame: its Ethernet header and padding cut.
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    let ip = Ipv4Packet::new_checked(&frame[14..]).expect("an IPv4 frame");
    &frame[14..14 + ip.total_len()]
}

/// What the outer headers of a tunnel packet that left say: its MACs, addresses and ports
/// (outer UDP checksum verified, if there is one), and the tunnel header and everything
/// after it, as bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Outer {
    /// The outer headers, read as any frame is ([`seen`]).
    pub seen: Seen,
    /// The tunnel header and the inner packet.
    pub payload: Vec<u8>,
}

/// The outer headers of a tunnel packet.
///
/// # Panics
/// If the frame is not IPv4 UDP, or a checksum does not verify.
pub fn outer(frame: &[u8]) -> Outer {
    let parsed = parse_frame(frame, &ChecksumCaps::NONE).expect("parses");
    let o = tunnel::Outer::of(frame, &parsed).expect("IPv4 UDP");
    let ip = Ipv4Packet::new_checked(&frame[o.l3..]).expect("parsed");
    let udp = UdpPacket::new_checked(&frame[o.udp..o.end]).expect("parsed");
    if udp.checksum() != 0 {
        assert!(
            udp.verify_checksum(ip.src_addr(), ip.dst_addr()),
            "outer UDP checksum"
        );
    }
    Outer {
        seen: seen(frame),
        payload: o.udp_payload(frame).to_vec(),
    }
}

/// The inner packet of a tunnel packet that left, read as a frame ([`seen`]: every checksum
/// verified): GENEVE's IP packet given an Ethernet header, VXLAN's frame as it is.
///
/// # Panics
/// As [`seen`], or if it is no tunnel packet.
pub fn inner(frame: &[u8]) -> Seen {
    let parsed = parse_frame(frame, &ChecksumCaps::NONE).expect("parses");
    let o = tunnel::Outer::of(frame, &parsed).expect("IPv4 UDP");
    let port = UdpPacket::new_checked(&frame[o.udp..o.end])
        .expect("parsed")
        .dst_port();
    let d = if port == geneve::UDP_PORT {
        geneve::decap(frame, &o)
    } else {
        vxlan::decap(frame, &o)
    }
    .expect("GENEVE to 6081 or VXLAN");
    if d.inner_type == EtherType::TransparentBridging {
        return seen(&frame[d.inner..d.end]);
    }
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&frame[d.inner..d.end]);
    seen(&f)
}

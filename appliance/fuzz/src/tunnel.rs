//! The pipeline harness's tunnel mode (setup bit 7): one `gwlb` port behind a load
//! balancer, GENEVE (AWS) or VXLAN (Azure, setup bit 0), with the rules of
//! `appliance::testing::gwlb`. Frames are built as in the two-arm mode, then put in the
//! tunnel by [`encapsulate`] (with [`crate::wire`], not the appliance's builders), which
//! reads one more byte per frame; [`check`] holds what leaves to what a load balancer's
//! target must send back.
//!
//! The tunnel byte: bits 0-1 the mode (0, 1 in the tunnel; 2 in no tunnel, the inner frame
//! as it is; 3 in the tunnel, then a byte of the outer headers or the tunnel header
//! changed: two more bytes, offset and value, and bit 7 of the value says whether the
//! checksums are fixed after); GENEVE: bit 2 no options (else AWS's three), bit 3 one more
//! option, critical (and the C bit), bits 4-6 the VNI; VXLAN: bit 4 a VNI that is not the
//! tunnel's. Bit 7 (unless the mode is 3) sends no outer UDP checksum. The burst's port bit
//! picks Azure's tunnel: 0 internal, 1 external.

use crate::wire::{self, Ip, L2};
use appliance::testing::gwlb::{self, APPLIANCE, LB, LB_PORT, MAC_LB};
use std::net::Ipv4Addr;

/// The `gwlb` port's MAC (port 0 of the harness: the inside port's MAC).
const MAC_US: [u8; 6] = appliance::testing::MAC_LAN.0;
/// AWS's three options, as `testing::gwlb` has them.
const AWS_OPTIONS: [u8; 32] = gwlb::AWS_OPTIONS;

/// Which load balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// AWS: GENEVE at 6081.
    Geneve,
    /// Azure: VXLAN, internal and external tunnels.
    Vxlan,
}

/// The configuration of tunnel mode: `testing::gwlb`'s port and rules, the session limits of
/// the setup (`tiny`: 64 sessions), `tcp_loose`, the appliance's own services; and, the
/// reloaded policy, UDP to the servers' network denied.
pub fn config_text(encap: Encap, tiny: bool, loose: bool, alt: bool) -> String {
    let base = match encap {
        Encap::Geneve => gwlb::GENEVE,
        Encap::Vxlan => gwlb::VXLAN,
    };
    let max = if tiny { 64 } else { 4096 };
    let extra = if alt {
        "[[egress.rule]]\naction = \"deny\"\nproto = \"udp\"\ndst = [\"198.51.100.0/24\"]\n"
    } else {
        ""
    };
    format!(
        "{base}\n{extra}\n[nat]\nmax_sessions = {max}\ntcp_loose = {loose}\n\n[local]\n\
         icmp_echo = true\n\n[local.health_probe]\nport = 9999\nsources = [\"10.0.2.0/24\"]\n"
    )
}

/// Azure's tunnels: UDP port and VNI, internal then external.
const AZURE: [(u16, u32); 2] = [gwlb::INTERNAL, gwlb::EXTERNAL];

/// `inner` (a frame of the two-arm mode) put in the tunnel as `t` (the tunnel byte, with
/// `next` for the bytes mode 3 reads) says; `side` picks Azure's tunnel.
pub fn encapsulate(
    encap: Encap,
    inner: Vec<u8>,
    side: u8,
    t: u8,
    next: impl FnMut() -> u8,
) -> Vec<u8> {
    let mut next = next;
    if t & 3 == 2 {
        return inner;
    }
    let (header, port, payload) = match encap {
        Encap::Geneve => {
            let mut options = if t & 4 != 0 {
                Vec::new()
            } else {
                AWS_OPTIONS.to_vec()
            };
            let critical = t & 8 != 0;
            if critical {
                options.extend_from_slice(&[0x01, 0x08, 0x81, 0x00]);
            }
            let mut h = vec![
                (options.len() / 4) as u8,
                u8::from(critical) << 6,
                0x08,
                0x00,
            ];
            h.extend_from_slice(&[0, 0, (t >> 4) & 7, 0]);
            h.extend_from_slice(&options);
            // AWS sends the IP packet, without its Ethernet header.
            (h, 6081, inner.get(14..).unwrap_or_default().to_vec())
        }
        Encap::Vxlan => {
            let (port, vni) = AZURE[usize::from(side & 1)];
            let vni = if t & 0x10 != 0 { 802 } else { vni };
            let mut h = vec![0x08, 0, 0, 0];
            h.extend_from_slice(&vni.to_be_bytes()[1..]);
            h.push(0);
            (h, port, inner)
        }
    };
    let mut data = header;
    data.extend_from_slice(&payload);
    let udp = wire::udp(
        LB,
        APPLIANCE,
        LB_PORT,
        port,
        &data,
        t & 0x80 != 0 && t & 3 != 3,
    );
    let l2 = L2 {
        dst: MAC_US,
        src: MAC_LB.0,
        vlan: None,
    };
    let mut f = wire::ipv4_frame(&l2, &Ip::new(LB, APPLIANCE, 17, 64).packet(&udp));
    if t & 3 == 3 {
        let (at, v) = (usize::from(next()), next());
        let at = 14 + at % (f.len() - 14).min(28 + 48);
        f[at] ^= v | 1;
        if v & 0x80 != 0 {
            wire::fix_checksums(&mut f);
        }
    }
    f
}

/// What a frame to the appliance is, read independently of the appliance: where its tunnel
/// header and datagram end lie, and its UDP destination port, if it is IPv4 UDP to the
/// appliance's address, no fragment, and long enough for a tunnel header.
struct Parts {
    header: usize,
    end: usize,
    dport: u16,
    sport: u16,
}

fn parts(f: &[u8]) -> Option<Parts> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = f.get(14..)?;
    let hl = usize::from(*ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
    if ip[0] >> 4 != 4 || hl < 20 || total > ip.len() || ip[9] != 17 || frag & 0x3fff != 0 {
        return None;
    }
    if Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]) != APPLIANCE {
        return None;
    }
    let udp = ip.get(hl..total)?;
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    if len < 16 || len > udp.len() {
        return None;
    }
    Some(Parts {
        header: 14 + hl + 8,
        end: 14 + hl + len,
        dport: u16::from_be_bytes([udp[2], udp[3]]),
        sport: u16::from_be_bytes([udp[0], udp[1]]),
    })
}

/// Whether a tunnel header may be carried back: GENEVE version 0, its options within the
/// datagram and each within the options, none critical if the C bit says some are (RFC
/// 8926 section 3.4: without it an endpoint need not look), no OAM; VXLAN the I bit and the
/// tunnel's VNI.
fn carried(encap: Encap, h: &[u8], dport: u16) -> bool {
    match encap {
        Encap::Geneve => {
            let len = usize::from(h[0] & 0x3f) * 4;
            let Some(mut options) = h.get(8..8 + len) else {
                return false;
            };
            if h[0] >> 6 != 0 || h[1] & 0x80 != 0 {
                return false;
            }
            let c = h[1] & 0x40 != 0;
            while !options.is_empty() {
                let Some(o) = options.get(..4) else {
                    return false;
                };
                let end = 4 + usize::from(o[3] & 0x1f) * 4;
                if (c && o[2] & 0x80 != 0) || end > options.len() {
                    return false;
                }
                options = &options[end..];
            }
            true
        }
        Encap::Vxlan => {
            let vni = u32::from_be_bytes([0, h[4], h[5], h[6]]);
            h[0] & 0x08 != 0 && AZURE.iter().any(|&(p, v)| p == dport && v == vni)
        }
    }
}

/// Holds a frame that left the `gwlb` port (`out`) to what the load balancer's target sends
/// back for `input`, and returns the inner packet as an Ethernet frame (for replies built
/// from it), or `None` for an answer of the appliance's own.
///
/// A tunnel packet goes back turned around: to the sender's MAC from ours, from the
/// appliance's address to the load balancer's, UDP ports kept (Azure: the other tunnel's
/// destination port and VNI), outer TTL 64, its tunnel header (GENEVE: with every option)
/// and its inner packet byte for byte; the header was one that may be carried, and the
/// inner IPv4 header's checksum was right. Anything else that leaves is an answer to its
/// sender.
///
/// # Panics
/// On any of those broken, with `why()` saying which frames.
pub fn check(encap: Encap, input: &[u8], out: &[u8], why: &dyn Fn() -> String) -> Option<Vec<u8>> {
    assert!(
        out.len() >= 14 && out[6..12] == MAC_US,
        "not from our MAC: {}",
        why()
    );
    assert_eq!(out[..6], input[6..12], "not back to the sender: {}", why());
    let p = parts(input).filter(|p| match encap {
        Encap::Geneve => p.dport == 6081,
        Encap::Vxlan => AZURE.iter().any(|t| t.0 == p.dport),
    })?;
    let h = &input[p.header..p.end];
    assert!(
        carried(encap, h, p.dport),
        "a tunnel header that must be dropped was carried: {}",
        why()
    );
    assert!(out.len() >= p.end, "cut short: {}", why());
    let ip = &out[14..];
    assert_eq!(
        (
            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])
        ),
        (
            APPLIANCE,
            Ipv4Addr::new(input[26], input[27], input[28], input[29])
        ),
        "outer addresses not swapped: {}",
        why()
    );
    assert_eq!(ip[8], 64, "outer TTL: {}", why());
    let udp = &out[p.header - 8..];
    let (sport, dport) = (
        u16::from_be_bytes([udp[0], udp[1]]),
        u16::from_be_bytes([udp[2], udp[3]]),
    );
    let back_to = match encap {
        Encap::Geneve => p.dport,
        Encap::Vxlan => AZURE.iter().find(|t| t.0 != p.dport).map_or(0, |t| t.0),
    };
    assert_eq!(
        (sport, dport),
        (p.sport, back_to),
        "outer UDP ports: {}",
        why()
    );
    let (sent, back) = (&input[p.header..p.end], &out[p.header..p.end]);
    match encap {
        Encap::Geneve => assert_eq!(
            back,
            sent,
            "GENEVE header or inner packet changed: {}",
            why()
        ),
        Encap::Vxlan => {
            let vni = AZURE.iter().find(|t| t.0 == back_to).map_or(0, |t| t.1);
            assert_eq!(back[..4], sent[..4], "VXLAN flags changed: {}", why());
            assert_eq!(back[4..7], vni.to_be_bytes()[1..], "VXLAN VNI: {}", why());
            assert_eq!(
                back[7..],
                sent[7..],
                "VXLAN reserved byte or inner frame: {}",
                why()
            );
        }
    }
    let header_len = match encap {
        Encap::Geneve => 8 + usize::from(h[0] & 0x3f) * 4,
        Encap::Vxlan => 8,
    };
    let mut inner = match encap {
        Encap::Geneve => {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x08, 0x00]);
            f
        }
        Encap::Vxlan => Vec::new(),
    };
    inner.extend_from_slice(&back[header_len..]);
    assert!(
        wire::verify(&inner) != Err("IPv4 header checksum"),
        "an inner packet with a bad IPv4 header checksum was carried: {}",
        why()
    );
    Some(inner)
}

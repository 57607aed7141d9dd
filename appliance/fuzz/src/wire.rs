//! Frames for the fuzzer, built and checked here, independently of the appliance's packet
//! code: Ethernet (optionally 802.1Q), IPv4 with options and fragment fields, TCP, UDP, ICMP
//! and ARP, every checksum computed in full (RFC 1071), and a verifier that recomputes them
//! all on a frame the pipeline sent.

use std::net::Ipv4Addr;

/// One's-complement sum of `data` (odd length padded with a zero byte), folded, added to
/// `start`.
pub fn sum(start: u32, data: &[u8]) -> u32 {
    let mut s = start;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

/// The checksum to store for `data` summed onto `start`.
pub fn checksum(start: u32, data: &[u8]) -> u16 {
    !(sum(start, data) as u16)
}

/// Whether data whose checksum field is included sums to all ones.
pub fn verifies(start: u32, data: &[u8]) -> bool {
    sum(start, data) == 0xffff
}

/// The TCP/UDP pseudo-header sum.
pub fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[9] = proto;
    b[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    sum(0, &b)
}

/// The link layer of a frame.
#[derive(Debug, Clone, Copy)]
pub struct L2 {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// An 802.1Q tag with this VLAN id.
    pub vlan: Option<u16>,
}

impl L2 {
    fn emit(&self, ethertype: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        if let Some(vid) = self.vlan {
            out.extend_from_slice(&[0x81, 0x00]);
            out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        out.extend_from_slice(&ethertype.to_be_bytes());
    }
}

/// An IPv4 header to build.
#[derive(Debug, Clone, Copy)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In 8-byte units.
    pub frag_offset: u16,
    /// Add a router-alert option (IHL 6).
    pub options: bool,
}

impl Ip {
    /// A plain header: DF set, no options, not a fragment.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8) -> Ip {
        Ip {
            src,
            dst,
            proto,
            ttl,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: false,
        }
    }

    /// The IPv4 packet carrying `l4`, with its header checksum.
    pub fn packet(&self, l4: &[u8]) -> Vec<u8> {
        let hl = if self.options { 24 } else { 20 };
        let mut h = vec![0u8; hl];
        h[0] = 0x40 | (hl / 4) as u8;
        h[2..4].copy_from_slice(&((hl + l4.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        let flags = (u16::from(self.dont_frag) << 14)
            | (u16::from(self.more_frags) << 13)
            | (self.frag_offset & 0x1fff);
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        if self.options {
            h[20..24].copy_from_slice(&[0x94, 0x04, 0, 0]);
        }
        let c = checksum(0, &h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(l4);
        h
    }
}

/// An Ethernet frame carrying `ip` (an IPv4 packet), padded to 60 bytes.
pub fn ipv4_frame(l2: &L2, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + ip.len());
    l2.emit(0x0800, &mut f);
    f.extend_from_slice(ip);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// A TCP segment with its checksum (an MSS option when `mss` is given).
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    mss: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let hl = if mss.is_some() { 24 } else { 20 };
    let mut t = vec![0u8; hl];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    if let Some(m) = mss {
        t[20] = 2;
        t[21] = 4;
        t[22..24].copy_from_slice(&m.to_be_bytes());
    }
    t.extend_from_slice(payload);
    let c = checksum(pseudo(src, dst, 6, t.len()), &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// A UDP datagram with its checksum, or checksum 0 ("none", RFC 768) if `no_checksum`.
pub fn udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
    no_checksum: bool,
) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    if !no_checksum {
        let mut c = checksum(pseudo(src, dst, 17, u.len()), &u);
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
    u
}

/// An ICMP message: type, code, the 4 type-specific bytes, data; with its checksum.
pub fn icmp(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(0, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An Ethernet/IPv4 ARP frame (operation 1 request, 2 reply), padded to 60 bytes.
pub fn arp(l2: &L2, op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    l2.emit(0x0806, &mut f);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(60.max(f.len()), 0);
    f
}

/// Where a frame's layers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the layer-3 header.
    pub l3: usize,
    /// The ethertype after any VLAN tags.
    pub ethertype: u16,
}

/// Finds the layer-3 header (up to two VLAN tags).
pub fn layout(f: &[u8]) -> Option<Layout> {
    let mut at = 12;
    loop {
        let et = u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]);
        if (et == 0x8100 || et == 0x88a8) && at < 20 {
            at += 4;
            continue;
        }
        return Some(Layout {
            l3: at + 2,
            ethertype: et,
        });
    }
}

/// What the verifier learned of an IPv4 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    /// Offset of the transport header in the frame, and the end of the IP packet.
    pub l4: usize,
    pub end: usize,
    /// For a first fragment (or an unfragmented packet): the ports, or an echo's identifier
    /// and type.
    pub sport: u16,
    pub dport: u16,
    /// ICMP type, or TCP flags.
    pub kind: u8,
    /// The quoted packet's addresses of an ICMP error, when the quote holds them.
    pub quoted: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Whether the packet is a whole datagram (not a fragment).
    pub whole: bool,
}

/// Whether an ICMP type is an error (it quotes the packet it is about).
pub fn is_icmp_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// Checks every checksum of an IPv4 frame in full: the IPv4 header; for a whole datagram the
/// TCP, UDP (unless 0) or ICMP checksum; in an ICMP error, the quoted IPv4 header's checksum
/// when it is quoted whole. `Ok(None)`: not IPv4 or too malformed to say; `Err`: which
/// checksum is wrong.
pub fn verify(f: &[u8]) -> Result<Option<Ipv4Info>, &'static str> {
    let Some(lay) = layout(f) else {
        return Ok(None);
    };
    if lay.ethertype != 0x0800 {
        return Ok(None);
    }
    let ip = &f[lay.l3.min(f.len())..];
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return Ok(None);
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if hl < 20 || total < hl || total > ip.len() {
        return Ok(None);
    }
    if !verifies(0, &ip[..hl]) {
        return Err("IPv4 header checksum");
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let whole = frag & 0x3fff == 0;
    let l4 = &ip[hl..total];
    let mut info = Ipv4Info {
        src,
        dst,
        proto,
        ttl: ip[8],
        l4: lay.l3 + hl,
        end: lay.l3 + total,
        sport: 0,
        dport: 0,
        kind: 0,
        quoted: None,
        whole,
    };
    if frag & 0x1fff != 0 {
        return Ok(Some(info));
    }
    match proto {
        6 if l4.len() >= 20 => {
            info.sport = u16::from_be_bytes([l4[0], l4[1]]);
            info.dport = u16::from_be_bytes([l4[2], l4[3]]);
            info.kind = l4[13];
            if whole && !verifies(pseudo(src, dst, 6, l4.len()), l4) {
                return Err("TCP checksum");
            }
        }
        17 if l4.len() >= 8 => {
            info.sport = u16::from_be_bytes([l4[0], l4[1]]);
            info.dport = u16::from_be_bytes([l4[2], l4[3]]);
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            let c = u16::from_be_bytes([l4[6], l4[7]]);
            if whole
                && c != 0
                && ulen >= 8
                && ulen <= l4.len()
                && !verifies(pseudo(src, dst, 17, ulen), &l4[..ulen])
            {
                return Err("UDP checksum");
            }
        }
        1 if l4.len() >= 8 => {
            info.kind = l4[0];
            info.sport = u16::from_be_bytes([l4[4], l4[5]]);
            info.dport = info.sport;
            if whole && !verifies(0, l4) {
                return Err("ICMP checksum");
            }
            if is_icmp_error(l4[0]) {
                let q = &l4[8..];
                if q.len() >= 20 && q[0] >> 4 == 4 {
                    info.quoted = Some((
                        Ipv4Addr::new(q[12], q[13], q[14], q[15]),
                        Ipv4Addr::new(q[16], q[17], q[18], q[19]),
                    ));
                    let qhl = usize::from(q[0] & 0x0f) * 4;
                    if qhl >= 20 && qhl <= q.len() && !verifies(0, &q[..qhl]) {
                        return Err("quoted IPv4 header checksum");
                    }
                }
            }
        }
        _ => {}
    }
    Ok(Some(info))
}

/// Recomputes every checksum [`verify`] checks (after a mutation), where the frame still
/// has the shape to hold them.
pub fn fix_checksums(f: &mut [u8]) {
    let Some(lay) = layout(f) else { return };
    if lay.ethertype != 0x0800 || f.len() < lay.l3 + 20 {
        return;
    }
    let l3 = lay.l3;
    let hl = usize::from(f[l3] & 0x0f) * 4;
    if hl < 20 || f.len() < l3 + hl {
        return;
    }
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let c = checksum(0, &f[l3..l3 + hl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
    if total < hl || l3 + total > f.len() {
        return;
    }
    let frag = u16::from_be_bytes([f[l3 + 6], f[l3 + 7]]);
    if frag & 0x3fff != 0 {
        return;
    }
    let src = Ipv4Addr::new(f[l3 + 12], f[l3 + 13], f[l3 + 14], f[l3 + 15]);
    let dst = Ipv4Addr::new(f[l3 + 16], f[l3 + 17], f[l3 + 18], f[l3 + 19]);
    let proto = f[l3 + 9];
    let l4 = &mut f[l3 + hl..l3 + total];
    match proto {
        6 if l4.len() >= 20 => {
            l4[16] = 0;
            l4[17] = 0;
            let c = checksum(pseudo(src, dst, 6, l4.len()), l4);
            l4[16..18].copy_from_slice(&c.to_be_bytes());
        }
        17 if l4.len() >= 8 => {
            let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if ulen >= 8 && ulen <= l4.len() {
                l4[6] = 0;
                l4[7] = 0;
                let mut c = checksum(pseudo(src, dst, 17, ulen), &l4[..ulen]);
                if c == 0 {
                    c = 0xffff;
                }
                l4[6..8].copy_from_slice(&c.to_be_bytes());
            }
        }
        1 if l4.len() >= 8 => {
            if is_icmp_error(l4[0]) && l4.len() >= 28 && l4[8] >> 4 == 4 {
                let qhl = usize::from(l4[8] & 0x0f) * 4;
                if qhl >= 20 && 8 + qhl <= l4.len() {
                    l4[18] = 0;
                    l4[19] = 0;
                    let c = checksum(0, &l4[8..8 + qhl]);
                    l4[18..20].copy_from_slice(&c.to_be_bytes());
                }
            }
            l4[2] = 0;
            l4[3] = 0;
            let c = checksum(0, l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const L: L2 = L2 {
        dst: [2, 0, 0, 0, 0, 0xa0],
        src: [2, 0, 0, 0, 0, 0x10],
        vlan: None,
    };

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn built_frames_verify_and_a_flipped_bit_is_caught() {
        let frames = [
            ipv4_frame(
                &L,
                &Ip::new(A, B, 6, 64).packet(&tcp(A, B, 1, 2, 3, 0, 0x02, Some(1460), &[])),
            ),
            ipv4_frame(
                &L,
                &Ip::new(A, B, 17, 64).packet(&udp(A, B, 1, 2, b"abc", false)),
            ),
            ipv4_frame(
                &L,
                &Ip::new(A, B, 1, 64).packet(&icmp(8, 0, [0, 7, 0, 1], b"ping")),
            ),
        ];
        for f in frames {
            assert!(verify(&f).unwrap().is_some());
            let mut bad = f.clone();
            bad[40] ^= 0x10;
            assert!(verify(&bad).is_err(), "{bad:?}");
            fix_checksums(&mut bad);
            assert!(verify(&bad).is_ok());
        }
    }

    #[test]
    fn quoted_header_checksum_is_checked() {
        let inner = Ip::new(A, B, 17, 1).packet(&udp(A, B, 1, 2, b"abc", false));
        let mut f = ipv4_frame(
            &L,
            &Ip::new(B, A, 1, 64).packet(&icmp(11, 0, [0; 4], &inner[..28])),
        );
        assert_eq!(verify(&f).unwrap().unwrap().quoted, Some((A, B)));
        f[14 + 20 + 8 + 8] ^= 1; // quoted TTL
        fix_checksums(&mut f);
        assert!(verify(&f).is_ok(), "fixed again");
        // Break only the quoted header: fix the ICMP checksum around it.
        f[14 + 20 + 8 + 8] ^= 1;
        f[14 + 20 + 2] = 0;
        f[14 + 20 + 3] = 0;
        let end = 14 + 20 + 8 + 28;
        let c = checksum(0, &f[14 + 20..end]);
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(verify(&f), Err("quoted IPv4 header checksum"));
    }
}

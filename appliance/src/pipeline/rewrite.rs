//! In-place rewrites of the fast path: the session's tuple with its precomputed checksum
//! deltas (RFC 1624), the TTL, the MSS option. Offsets come from stage 1, which validated
//! the headers, so every index here is in bounds.

use super::shard::{Kind, Meta};
use crate::flow::{ChecksumDeltas, FlowKey};
use crate::packet::checksum::{add, fold};
use crate::packet::{EthernetAddress, IpProtocol, TcpPacket};
use std::net::Ipv4Addr;

/// Applies a checksum delta to a stored checksum.
#[inline(always)]
fn fix(sum: u16, delta: u16) -> u16 {
    !add(!sum, delta)
}

#[inline(always)]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The `N` bytes of `bytes` from `at` on, as an array: one bounds check for a whole header,
/// then fixed offsets. Stage 1 validated the headers, so it does not fail.
#[inline(always)]
fn header<const N: usize>(bytes: &mut [u8], at: usize) -> &mut [u8; N] {
    let h: &mut [u8] = &mut bytes[at..at + N];
    h.try_into().expect("N bytes")
}

/// The checksum delta of a TTL decrement: the word (TTL, protocol) loses 0x0100, and adding
/// `~0x0100` is subtracting it in ones' complement (RFC 1624).
const TTL_DELTA: u16 = !0x0100;

/// Translates a packet of a session and decrements its TTL: writes the reverse of `to`, the
/// session's key of the other side, as the new addresses and ports, and fixes the IPv4
/// header checksum once for both changes and the transport checksum with `deltas`, the
/// session's for the packet's direction
/// ([`Session::deltas_from`](crate::flow::Session::deltas_from)). Returns the new destination
/// address; `None`, with the packet unchanged, when its TTL is 1 or 0 (it must not be
/// forwarded).
///
/// The IPv4 header checksum comes out bit for bit as updating it for the addresses, then
/// for the TTL (RFC 1624 eqn. 3 both times): both sums are the same residue, and neither
/// can be the zero `0x0000` since they add a non-zero word last.
#[inline(always)]
pub(super) fn translate(
    bytes: &mut [u8],
    meta: &Meta,
    to: &FlowKey,
    deltas: ChecksumDeltas,
) -> Option<Ipv4Addr> {
    let (addrs, ports) = to.reverse_wire();
    let ip = header::<20>(bytes, usize::from(meta.l3));
    if ip[8] <= 1 {
        return None;
    }
    ip[8] -= 1;
    let c = get16(ip, 10);
    put16(ip, 10, fix(c, add(deltas.ip, TTL_DELTA)));
    ip[12..20].copy_from_slice(&addrs);
    let l4 = usize::from(meta.l4);
    match meta.kind {
        Kind::Udp => {
            let udp = header::<8>(bytes, l4);
            udp[..4].copy_from_slice(&ports);
            let c = get16(udp, 6);
            // 0 means "no checksum" (RFC 768): keep it; never produce 0 from a real one.
            if c != 0 {
                let n = fix(c, deltas.l4);
                put16(udp, 6, if n == 0 { 0xffff } else { n });
            }
        }
        Kind::Tcp => {
            let tcp = header::<20>(bytes, l4);
            tcp[..4].copy_from_slice(&ports);
            let c = get16(tcp, 16);
            put16(tcp, 16, fix(c, deltas.l4));
        }
        Kind::IcmpEcho => {
            // The echo identifier is both ports of the key.
            let c = {
                let icmp = header::<8>(bytes, l4);
                icmp[4..6].copy_from_slice(&ports[..2]);
                fix(get16(icmp, 2), deltas.l4)
            };
            let end = usize::from(meta.end);
            let n = crate::packet::icmp::fix_negative_zero(&bytes[l4..end], c);
            put16(bytes, l4 + 2, n);
        }
        _ => {}
    }
    Some(to.src_addr())
}

/// Addresses the frame: destination `dst` (the next hop), source `src` (our port).
#[inline(always)]
pub(super) fn set_macs(bytes: &mut [u8], dst: &EthernetAddress, src: &EthernetAddress) {
    let l2 = header::<12>(bytes, 0);
    l2[..6].copy_from_slice(&dst.0);
    l2[6..].copy_from_slice(&src.0);
}

/// Lowers the MSS option of a SYN to `mss` if it is larger.
pub(super) fn clamp_mss(bytes: &mut [u8], meta: &Meta, mss: u16) {
    let (l4, end) = (usize::from(meta.l4), usize::from(meta.end));
    if let Some(seg) = bytes.get_mut(l4..end) {
        if let Ok(mut tcp) = TcpPacket::new_checked(seg) {
            tcp.clamp_mss(mss);
        }
    }
}

/// The inside-to-outside checksum deltas of a session: from the tuple of its packets
/// arriving inside to the tuple they leave with (the reverse of the outside key).
///
/// Each changed field adds its old value's complement and its new value (RFC 1624), summed
/// as 32-bit words and folded once: the same 16 bits as adding word by word ([`add`] and
/// [`fold`] agree bit for bit), in a third of the instructions.
pub(super) fn deltas(inside: &FlowKey, outside: &FlowKey) -> ChecksumDeltas {
    let new = outside.reverse();
    let change = |old: u32, new: u32| u64::from(!old) + u64::from(new);
    let ports = |k: &FlowKey| (u32::from(k.src_port()) << 16) | u32::from(k.dst_port());
    let ip = fold(
        change(inside.src_addr_raw(), new.src_addr_raw())
            + change(inside.dst_addr_raw(), new.dst_addr_raw()),
    );
    let l4 = match inside.protocol() {
        IpProtocol::Tcp | IpProtocol::Udp => {
            fold(u64::from(ip) + change(ports(inside), ports(&new)))
        }
        // ICMP's checksum has no pseudo-header: only the echo identifier changes it.
        IpProtocol::Icmp => add(!inside.src_port(), new.src_port()),
        _ => ip,
    };
    ChecksumDeltas { ip, l4 }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::packet::ChecksumDelta;
    use proptest::prelude::*;

    /// The deltas as RFC 1624 writes them, one 16-bit word at a time: the packet layer's
    /// [`ChecksumDelta`].
    fn deltas_word_by_word(inside: &FlowKey, outside: &FlowKey) -> ChecksumDeltas {
        let new = outside.reverse();
        let ip = ChecksumDelta::ZERO
            .add32(inside.src_addr_raw(), new.src_addr_raw())
            .add32(inside.dst_addr_raw(), new.dst_addr_raw());
        let l4 = match inside.protocol() {
            IpProtocol::Tcp | IpProtocol::Udp => ip
                .add16(inside.src_port(), new.src_port())
                .add16(inside.dst_port(), new.dst_port()),
            IpProtocol::Icmp => ChecksumDelta::ZERO.add16(inside.src_port(), new.src_port()),
            _ => ip,
        };
        // A delta `d` applied to 0xffff gives `!d` (ones' complement addition to 0 is the
        // identity), so this reads a delta back bit for bit.
        let value = |d: ChecksumDelta| !d.apply(0xffff);
        ChecksumDeltas {
            ip: value(ip),
            l4: value(l4),
        }
    }

    /// Addresses and ports drawn so that all-zero and all-one words (where a ones'
    /// complement sum could come out as 0x0000 or 0xffff) are common.
    fn word32() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0),
            Just(u32::MAX),
            Just(0xffff),
            Just(0xffff_0000),
            any::<u32>()
        ]
    }

    fn word16() -> impl Strategy<Value = u16> {
        prop_oneof![Just(0), Just(u16::MAX), any::<u16>()]
    }

    proptest! {
        #[test]
        fn wide_deltas_are_the_word_by_word_ones(
            a in [word32(), word32(), word32(), word32()],
            p in [word16(), word16(), word16(), word16()],
            proto in prop_oneof![Just(IpProtocol::Tcp), Just(IpProtocol::Udp), Just(IpProtocol::Icmp), Just(IpProtocol::Gre)],
        ) {
            let inside = FlowKey::from_raw(a[0], a[1], p[0], p[1], proto);
            let outside = FlowKey::from_raw(a[2], a[3], p[2], p[3], proto);
            prop_assert_eq!(deltas(&inside, &outside), deltas_word_by_word(&inside, &outside));
        }
    }
}

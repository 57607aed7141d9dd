//! In-place rewrites of the fast path: the session's tuple with its precomputed checksum
//! deltas (RFC 1624), the TTL, the MSS option. Offsets come from stage 1, which validated
//! the headers, so every index here is in bounds.

use super::shard::{Kind, Meta};
use crate::flow::{ChecksumDeltas, FlowKey, Rewrite};
use crate::packet::checksum::{add, update16};
use crate::packet::TcpPacket;

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

/// Writes the session's new tuple into the packet and fixes the IPv4 header and transport
/// checksums with the session's deltas.
#[inline]
pub(super) fn apply(bytes: &mut [u8], meta: &Meta, rw: &Rewrite) {
    let l3 = usize::from(meta.l3);
    let l4 = usize::from(meta.l4);
    let t = &rw.tuple;
    bytes[l3 + 12..l3 + 16].copy_from_slice(&t.src_addr_raw().to_be_bytes());
    bytes[l3 + 16..l3 + 20].copy_from_slice(&t.dst_addr_raw().to_be_bytes());
    let c = get16(bytes, l3 + 10);
    put16(bytes, l3 + 10, fix(c, rw.deltas.ip));
    match meta.kind {
        Kind::Tcp => {
            put16(bytes, l4, t.src_port());
            put16(bytes, l4 + 2, t.dst_port());
            let c = get16(bytes, l4 + 16);
            put16(bytes, l4 + 16, fix(c, rw.deltas.l4));
        }
        Kind::Udp => {
            put16(bytes, l4, t.src_port());
            put16(bytes, l4 + 2, t.dst_port());
            let c = get16(bytes, l4 + 6);
            // 0 means "no checksum" (RFC 768): keep it; never produce 0 from a real one.
            if c != 0 {
                let n = fix(c, rw.deltas.l4);
                put16(bytes, l4 + 6, if n == 0 { 0xffff } else { n });
            }
        }
        Kind::IcmpEcho => {
            put16(bytes, l4 + 4, t.src_port());
            let c = get16(bytes, l4 + 2);
            let n = fix(c, rw.deltas.l4);
            let end = usize::from(meta.end);
            let n = crate::packet::icmp::fix_negative_zero(&bytes[l4..end], n);
            put16(bytes, l4 + 2, n);
        }
        _ => {}
    }
}

/// Decrements the TTL (the caller checked it is above 1) and fixes the header checksum.
#[inline]
pub(super) fn decrement_ttl(bytes: &mut [u8], l3: usize) {
    let old = get16(bytes, l3 + 8);
    let new = old.wrapping_sub(0x0100);
    put16(bytes, l3 + 8, new);
    let c = get16(bytes, l3 + 10);
    put16(bytes, l3 + 10, update16(c, old, new));
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
pub(super) fn deltas(inside: &FlowKey, outside: &FlowKey) -> ChecksumDeltas {
    let new = outside.reverse();
    let word = |d: u16, old: u16, new: u16| add(add(d, !old), new);
    let addr = |d: u16, old: u32, new: u32| {
        word(
            word(d, (old >> 16) as u16, (new >> 16) as u16),
            old as u16,
            new as u16,
        )
    };
    let ip = addr(
        addr(0, inside.src_addr_raw(), new.src_addr_raw()),
        inside.dst_addr_raw(),
        new.dst_addr_raw(),
    );
    let l4 = match inside.protocol() {
        6 | 17 => word(
            word(ip, inside.src_port(), new.src_port()),
            inside.dst_port(),
            new.dst_port(),
        ),
        // ICMP's checksum has no pseudo-header: only the echo identifier changes it.
        1 => word(0, inside.src_port(), new.src_port()),
        _ => ip,
    };
    ChecksumDeltas { ip, l4 }
}

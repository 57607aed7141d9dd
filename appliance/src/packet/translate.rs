//! The NAT rewrite: one packet of a session gets the addresses and ports its direction
//! leaves with, its checksums updated from deltas the session computed once (RFC 1624), and
//! its TTL decremented. The fast path runs it on every packet, so it works on the offsets
//! stage 1 validated, in one bounds check a header, at the headers' named field offsets.
//!
//! ICMP errors about a session are translated here too
//! ([`Packet::translate_icmp_error`](ipv4::Packet::translate_icmp_error)): their quote is a
//! packet of its own, rewritten by [`Quote::rewrite`]. This is the one file that rewrites
//! more than a header's own fields.

use super::checksum::{add, fold};
use super::ethernet::Address;
use super::ipv4::Endpoint;
use super::quote::Quote;
use super::tuple::FiveTuple;
use super::{ethernet, icmp, ipv4, tcp, udp, Error, IpProtocol};
use std::net::Ipv4Addr;

/// The checksum adjustments (RFC 1624) of one direction of a session: what its rewrite adds
/// to the complemented IPv4 header checksum and transport checksum. Computed once, when the
/// session is created ([`ChecksumDeltas::between`]); the reverse direction's are
/// [`ChecksumDeltas::reversed`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChecksumDeltas {
    /// Ones' complement sum of `~old + new` over the 16-bit words of the IPv4 addresses that
    /// change.
    pub ip: u16,
    /// The same over every word the transport checksum covers that changes: the
    /// pseudo-header addresses and the ports for TCP and UDP, the echo identifier for ICMP.
    pub l4: u16,
}

impl ChecksumDeltas {
    /// The deltas that turn a packet with the tuple `old` into one with the tuple `new` (same
    /// protocol). For ICMP echo the identifier is the source port.
    ///
    /// Each changed field adds its old value's complement and its new value (RFC 1624),
    /// summed as 32-bit words and folded once: the same 16 bits as adding word by word
    /// ([`add`] and [`fold`] agree bit for bit), in a third of the instructions.
    #[inline]
    pub fn between(old: &FiveTuple, new: &FiveTuple) -> ChecksumDeltas {
        let change = |old: u32, new: u32| u64::from(!old) + u64::from(new);
        let addr = |a: Ipv4Addr| u32::from(a);
        let ports = |t: &FiveTuple| (u32::from(t.src_port) << 16) | u32::from(t.dst_port);
        let ip = fold(
            change(addr(old.src_addr), addr(new.src_addr))
                + change(addr(old.dst_addr), addr(new.dst_addr)),
        );
        let l4 = match old.protocol {
            IpProtocol::TCP | IpProtocol::UDP => {
                fold(u64::from(ip) + change(ports(old), ports(new)))
            }
            // ICMP's checksum has no pseudo-header: only the echo identifier changes it.
            IpProtocol::ICMP => add(!old.src_port, new.src_port),
            _ => ip,
        };
        ChecksumDeltas { ip, l4 }
    }

    /// The deltas that undo these: the ones' complement negation (`~x`) of each, since the
    /// reverse rewrite swaps every `old` and `new`.
    #[inline]
    #[must_use]
    pub const fn reversed(self) -> Self {
        Self {
            ip: !self.ip,
            l4: !self.l4,
        }
    }
}

/// The transport of a packet a session translates: what its rewrite changes besides the
/// addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Transport {
    /// TCP: the ports and the checksum.
    Tcp,
    /// UDP: the ports and the checksum (unless it is 0, none).
    Udp,
    /// ICMP echo request or reply: the identifier and the checksum.
    IcmpEcho,
    /// Any other protocol: the addresses alone.
    Other,
}

impl Transport {
    /// The transport of packets of `protocol`, for ICMP an echo (the only ICMP a session
    /// has).
    pub const fn of(protocol: IpProtocol) -> Transport {
        match protocol {
            IpProtocol::TCP => Transport::Tcp,
            IpProtocol::UDP => Transport::Udp,
            IpProtocol::ICMP => Transport::IcmpEcho,
            _ => Transport::Other,
        }
    }
}

/// Where a packet's headers lie in its frame, as stage 1 found them: the IPv4 header at
/// `l3`, the transport header at `l4`, the datagram's end at `end`. Six bytes: a frame is
/// shorter than 64 KiB, and the fast path carries these in one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Offsets {
    /// The IPv4 header.
    pub l3: u16,
    /// The transport header.
    pub l4: u16,
    /// The end of the IPv4 datagram (Ethernet padding after it).
    pub end: u16,
}

impl Offsets {
    /// The IPv4 datagram's bytes in the frame.
    #[inline(always)]
    pub fn ip(&self) -> core::ops::Range<usize> {
        usize::from(self.l3)..usize::from(self.end)
    }

    /// The transport's bytes in the frame (its header and payload).
    #[inline(always)]
    pub fn transport(&self) -> core::ops::Range<usize> {
        usize::from(self.l4)..usize::from(self.end)
    }
}

impl<T: AsRef<[u8]>> ipv4::Packet<T> {
    /// Where this packet's headers lie, the packet at offset 0 of its buffer (for
    /// [`translate`]).
    pub fn offsets(&self) -> Offsets {
        Offsets {
            l3: 0,
            l4: self.header_len() as u16,
            end: self.total_len() as u16,
        }
    }
}

/// Applies a checksum delta to a stored checksum.
#[inline(always)]
fn fix(sum: u16, delta: u16) -> u16 {
    !add(!sum, delta)
}

#[inline(always)]
fn get16(h: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([h[at], h[at + 1]])
}

#[inline(always)]
fn put16(h: &mut [u8], at: usize, v: u16) {
    h[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The `N` bytes of `frame` from `at` on, as an array: one bounds check for a whole header,
/// then fixed offsets. The caller's offsets come from a validated header, so it does not
/// fail.
#[inline(always)]
fn header<const N: usize>(frame: &mut [u8], at: usize) -> &mut [u8; N] {
    let h: &mut [u8] = &mut frame[at..at + N];
    h.try_into().expect("N bytes")
}

/// The checksum delta of a TTL decrement: the word (TTL, protocol) loses 0x0100, and adding
/// `~0x0100` is subtracting it in ones' complement (RFC 1624).
const TTL_DELTA: u16 = !0x0100;

/// Translates a packet of a session and decrements its TTL: writes `addrs` (the new source
/// and destination address, in wire order) and `ports` (the new source and destination port,
/// or for ICMP echo the identifier in the first two bytes), and fixes the IPv4 header
/// checksum once for both changes and the transport checksum with `deltas`, as `transport`
/// needs. Returns false, with the packet unchanged, when its TTL is 1 or 0
/// (it must not be forwarded, RFC 1812 section 5.3.1).
///
/// The IPv4 header checksum comes out bit for bit as updating it for the addresses, then
/// for the TTL (RFC 1624 eqn. 3 both times): both sums are the same residue, and neither
/// can be the zero `0x0000` since they add a non-zero word last.
///
/// # Panics
/// If `at` does not hold the headers `transport` says (stage 1 checked them).
#[inline(always)]
pub fn translate(
    frame: &mut [u8],
    at: &Offsets,
    transport: Transport,
    addrs: [u8; 8],
    ports: [u8; 4],
    deltas: ChecksumDeltas,
) -> bool {
    use ipv4::field::{CHECKSUM, SRC_ADDR, TTL};
    let ip = header::<{ ipv4::HEADER_LEN }>(frame, usize::from(at.l3));
    if ip[TTL] <= 1 {
        return false;
    }
    ip[TTL] -= 1;
    let c = fix(get16(ip, CHECKSUM), add(deltas.ip, TTL_DELTA));
    put16(ip, CHECKSUM, c);
    ip[SRC_ADDR..SRC_ADDR + 8].copy_from_slice(&addrs);
    match transport {
        Transport::Udp => {
            let u = header::<{ udp::HEADER_LEN }>(frame, usize::from(at.l4));
            u[udp::field::SRC_PORT..udp::field::SRC_PORT + 4].copy_from_slice(&ports);
            let c = get16(u, udp::field::CHECKSUM);
            // 0 means "no checksum" (RFC 768): keep it; never produce 0 from a real one.
            if c != 0 {
                let n = fix(c, deltas.l4);
                put16(u, udp::field::CHECKSUM, if n == 0 { 0xffff } else { n });
            }
        }
        Transport::Tcp => {
            let t = header::<{ tcp::HEADER_LEN }>(frame, usize::from(at.l4));
            t[tcp::field::SRC_PORT..tcp::field::SRC_PORT + 4].copy_from_slice(&ports);
            let c = get16(t, tcp::field::CHECKSUM);
            put16(t, tcp::field::CHECKSUM, fix(c, deltas.l4));
        }
        Transport::IcmpEcho => {
            let c = {
                let m = header::<{ icmp::HEADER_LEN }>(frame, usize::from(at.l4));
                m[icmp::ECHO_IDENT..icmp::ECHO_IDENT + 2].copy_from_slice(&ports[..2]);
                fix(get16(m, icmp::CHECKSUM), deltas.l4)
            };
            let n = icmp::fix_negative_zero(&frame[at.transport()], c);
            put16(&mut frame[at.transport()], icmp::CHECKSUM, n);
        }
        Transport::Other => {}
    }
    true
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ipv4::Packet<T> {
    /// Translate an ICMP error's quoted packet (RFC 5508 section 4.2): rewrite the quoted
    /// header's `side` address and port (echo identifier for a quoted echo), fix the quoted
    /// header checksum, the quoted UDP/ICMP checksum (and the TCP one if quoted in full), and
    /// this packet's ICMP checksum. The outer header is not changed: rewrite it with
    /// [`Packet::rewrite_addr_only`](ipv4::Packet::rewrite_addr_only) (ICMP has no
    /// pseudo-header).
    ///
    /// For an error about a packet the NAT sent out after SNAT, `side` is [`Endpoint::Src`] and the
    /// address/port are the inside ones.
    ///
    /// # Errors
    /// [`Error::Ipv4Fragment`] for a non-first fragment, [`Error::IcmpTruncated`],
    /// [`Error::IcmpUnsupported`] if this is not ICMP or not an ICMP error (or quotes an ICMP
    /// message other than echo), [`Error::IcmpBadQuote`] if the quote is malformed. On error
    /// the packet is unchanged.
    pub fn translate_icmp_error(
        &mut self,
        side: Endpoint,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<(), Error> {
        if self.protocol() != IpProtocol::ICMP {
            return Err(Error::IcmpUnsupported);
        }
        if !self.is_first_fragment() {
            return Err(Error::Ipv4Fragment);
        }
        let icmp_bytes = self.payload_mut();
        let mut msg = icmp::Packet::new_checked(icmp_bytes)?;
        if !msg.msg_type().is_error() {
            return Err(Error::IcmpUnsupported);
        }
        let delta = {
            let mut quote = Quote::new_checked(msg.data_mut())?;
            quote.rewrite(side, addr, port)?
        };
        let c = msg.checksum();
        msg.set_checksum(delta.apply(c));
        Ok(())
    }
}

/// Addresses the frame: destination `dst` (the next hop), source `src` (our port).
#[inline(always)]
pub fn set_macs(frame: &mut [u8], dst: &Address, src: &Address) {
    let l2 = header::<12>(frame, 0);
    l2[ethernet::field::DESTINATION].copy_from_slice(&dst.0);
    l2[ethernet::field::SOURCE].copy_from_slice(&src.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ChecksumDelta;
    use proptest::prelude::*;

    fn tuple(a: [u32; 2], p: [u16; 2], protocol: IpProtocol) -> FiveTuple {
        FiveTuple {
            src_addr: a[0].into(),
            dst_addr: a[1].into(),
            protocol,
            src_port: p[0],
            dst_port: p[1],
        }
    }

    /// The deltas as RFC 1624 writes them, one 16-bit word at a time: the packet layer's
    /// [`ChecksumDelta`].
    fn deltas_word_by_word(old: &FiveTuple, new: &FiveTuple) -> ChecksumDeltas {
        let ip = ChecksumDelta::ZERO
            .add32(old.src_addr.into(), new.src_addr.into())
            .add32(old.dst_addr.into(), new.dst_addr.into());
        let l4 = match old.protocol {
            IpProtocol::TCP | IpProtocol::UDP => ip
                .add16(old.src_port, new.src_port)
                .add16(old.dst_port, new.dst_port),
            IpProtocol::ICMP => ChecksumDelta::ZERO.add16(old.src_port, new.src_port),
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

    /// Ones' complement sum of 16-bit words.
    fn csum_add(a: u16, b: u16) -> u16 {
        let s = u32::from(a) + u32::from(b);
        ((s & 0xffff) + (s >> 16)) as u16
    }

    /// Checksum of words, RFC 1071.
    fn checksum(words: &[u16]) -> u16 {
        !words.iter().fold(0, |acc, &w| csum_add(acc, w))
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + delta).
    fn apply(hc: u16, delta: u16) -> u16 {
        !csum_add(!hc, delta)
    }

    #[test]
    fn reversed_deltas_undo_the_rewrite() {
        // A pseudo header-ish set of words where an address and a port change.
        let before = [0x0a00u16, 0x0001, 0x0808, 0x0808, 5000, 53, 0x0011, 0x1c];
        let mut after = before;
        after[0] = 0xc633;
        after[1] = 0x6401;
        after[4] = 61000;
        let delta = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .fold(0, |acc, i| csum_add(csum_add(acc, !before[i]), after[i]));
        let d = ChecksumDeltas {
            ip: delta,
            l4: delta,
        };
        assert_eq!(apply(checksum(&before), d.l4), checksum(&after));
        assert_eq!(apply(checksum(&after), d.reversed().l4), checksum(&before));
    }

    proptest! {
        #[test]
        fn wide_deltas_are_the_word_by_word_ones(
            a in [word32(), word32(), word32(), word32()],
            p in [word16(), word16(), word16(), word16()],
            proto in prop_oneof![
                Just(IpProtocol::TCP),
                Just(IpProtocol::UDP),
                Just(IpProtocol::ICMP),
                Just(IpProtocol::GRE)
            ],
        ) {
            let old = tuple([a[0], a[1]], [p[0], p[1]], proto);
            let new = tuple([a[2], a[3]], [p[2], p[3]], proto);
            prop_assert_eq!(
                ChecksumDeltas::between(&old, &new),
                deltas_word_by_word(&old, &new)
            );
        }
    }
}

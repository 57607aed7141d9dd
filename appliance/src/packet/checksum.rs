//! Internet checksum (RFC 1071): full computation and incremental update (RFC 1624).
//!
//! Sums here are ones' complement sums folded to 16 bits and *not* inverted; a checksum field
//! holds the inverted sum. The fast path never recomputes a checksum over a whole packet: NAT
//! rewrites change a few 16-bit words, and [`update16`], [`update32`] or a precomputed
//! [`ChecksumDelta`] adjust the stored checksum in a handful of instructions.
//!
//! Incremental updates use RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, which (unlike
//! RFC 1141's) never turns a correct checksum into the negative zero `0xffff`, so an updated
//! checksum is bit-for-bit what a full recomputation yields.

use std::net::Ipv4Addr;

use super::IpProtocol;

/// Which checksums the NIC handles, so software can skip them.
///
/// One value describes one direction of one port, filled from the DPDK port's offload
/// capabilities (`RTE_ETH_RX_OFFLOAD_*_CKSUM` / `RTE_ETH_TX_OFFLOAD_*_CKSUM`):
/// - on receive, `true` means the NIC has already verified that checksum (the mbuf says
///   `*_CKSUM_GOOD`; bad ones are dropped by the caller), so parsing does not verify it again;
/// - on transmit, `true` means the NIC will compute it, so builders and emitters leave the
///   field as DPDK expects: 0 for the IPv4 header checksum, the non-inverted pseudo-header sum
///   for TCP/UDP (what `rte_ipv4_phdr_cksum` returns). ICMP is never offloaded.
///
/// Incremental NAT rewrites do not look at this: they keep a complete checksum complete, so a
/// rewritten packet needs no TX checksum offload request (and must not get one for L4, since
/// the NIC would expect a pseudo-header sum in the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCaps {
    /// The IPv4 header checksum is the NIC's job.
    pub ipv4: bool,
    /// The TCP and UDP checksums are the NIC's job.
    pub l4: bool,
}

impl ChecksumCaps {
    /// Software does every checksum (no offload, or a PMD such as `net_ring` without it).
    pub const NONE: ChecksumCaps = ChecksumCaps {
        ipv4: false,
        l4: false,
    };
    /// The NIC does the IPv4 header and TCP/UDP checksums.
    pub const ALL: ChecksumCaps = ChecksumCaps {
        ipv4: true,
        l4: true,
    };
}

/// Fold a wide ones' complement accumulator to 16 bits with end-around carry.
#[inline]
pub const fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Whether a wide sum of big-endian 16-bit (or 32-bit) words folds to 0xffff, the sum over a
/// valid checksum: whether it is a non-zero multiple of 0xffff. Folding keeps a value modulo
/// 0xffff (2^16 = 1 modulo 0xffff) and only 0 folds to 0.
///
/// The divisibility test is one multiplication by the inverse of 0xffff modulo 2^64
/// (Granlund and Montgomery, "Division by invariant integers using multiplication", 1994,
/// section 9): it maps the multiples of 0xffff, and only them, onto `0..=u64::MAX / 0xffff`;
/// subtracting one moves 0 out of that range. Three instructions where folding takes ten;
/// compilers find this for `acc % 0xffff == 0` alone, but not reliably beside `acc != 0`.
#[inline(always)]
pub const fn folds_to_ffff(acc: u64) -> bool {
    /// 0xffff * INVERSE = 1 (mod 2^64).
    const INVERSE: u64 = 0xfffe_fffe_fffe_ffff;
    acc.wrapping_mul(INVERSE).wrapping_sub(1) < u64::MAX / 0xffff
}

/// Ones' complement addition of two 16-bit values (end-around carry). Like [`fold`], it
/// yields 0 only when both are 0, so chains of it and a folded wide sum agree bit for bit.
#[inline(always)]
pub const fn add(a: u16, b: u16) -> u16 {
    let (sum, carry) = a.overflowing_add(b);
    sum.wrapping_add(carry as u16)
}

/// Ones' complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero, RFC 1071 section 4.1), folded but not inverted.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    // Sum 32-bit words: 2^16 = 1 (mod 2^16 - 1), so folding the wider sum gives the same
    // result as summing 16-bit words, in half the additions. A u64 accumulator cannot
    // overflow for any buffer shorter than 2^32 words.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc += u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    // 0 to 3 bytes left, starting on a 16-bit boundary; an odd last byte is padded with zero.
    match *rest {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    fold(acc)
}

/// Ones' complement sum of several partial sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header that TCP and UDP checksums cover (RFC 9293 section 3.1,
/// RFC 768): addresses, protocol, and the transport length.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u16) -> u16 {
    let acc = u64::from(u32::from(src))
        + u64::from(u32::from(dst))
        + u64::from(u8::from(protocol))
        + u64::from(length);
    fold(acc)
}

/// Sum of a TCP segment or UDP datagram, `segment` as long as its pseudo-header says, and of
/// that pseudo-header: 0xffff if the checksum in it verifies; summed with the checksum field
/// zero, the checksum's complement.
#[inline]
pub fn transport(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, segment: &[u8]) -> u16 {
    let phdr = pseudo_header(src, dst, protocol, segment.len() as u16);
    combine(&[phdr, data(segment)])
}

/// Replace 16-bit word `old` by `new` under `checksum` (RFC 1624 equation 3).
#[inline]
pub const fn update16(checksum: u16, old: u16, new: u16) -> u16 {
    !add(add(!checksum, !old), new)
}

/// Replace a 32-bit field (an IPv4 address, a sequence number) under `checksum`.
#[inline]
pub const fn update32(checksum: u16, old: u32, new: u32) -> u16 {
    let hi = add(!((old >> 16) as u16), (new >> 16) as u16);
    let lo = add(!(old as u16), new as u16);
    !add(add(!checksum, hi), lo)
}

/// The UDP flavour of an update: a zero checksum means "none" and stays zero, and a computed
/// zero is sent as `0xffff` (RFC 768).
#[inline]
pub const fn udp_finish(original: u16, updated: u16) -> u16 {
    if original == 0 {
        0
    } else if updated == 0 {
        0xffff
    } else {
        updated
    }
}

/// A precomputed checksum change: the folded sum of `~old + new` over every rewritten word.
///
/// A NAT session computes this once per direction (for example for
/// `(inside addr, inside port) -> (outside addr, outside port)`) and [`apply`](Self::apply)s it
/// to each packet with one addition and one fold, whatever the number of words changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ChecksumDelta(u16);

impl ChecksumDelta {
    /// No change.
    pub const ZERO: ChecksumDelta = ChecksumDelta(0);

    /// Add the change of one 16-bit word.
    #[inline]
    #[must_use]
    pub const fn add16(self, old: u16, new: u16) -> ChecksumDelta {
        ChecksumDelta(add(add(self.0, !old), new))
    }

    /// Add the change of one 32-bit field.
    #[inline]
    #[must_use]
    pub const fn add32(self, old: u32, new: u32) -> ChecksumDelta {
        self.add16((old >> 16) as u16, (new >> 16) as u16)
            .add16(old as u16, new as u16)
    }

    /// Add the change of an IPv4 address.
    #[inline]
    #[must_use]
    pub const fn add_addr(self, old: Ipv4Addr, new: Ipv4Addr) -> ChecksumDelta {
        self.add32(old.to_bits(), new.to_bits())
    }

    /// Add another delta (changes to disjoint words compose by addition).
    #[inline]
    #[must_use]
    pub const fn combine(self, other: ChecksumDelta) -> ChecksumDelta {
        ChecksumDelta(add(self.0, other.0))
    }

    /// The stored checksum after the change.
    #[inline]
    pub const fn apply(self, checksum: u16) -> u16 {
        !add(!checksum, self.0)
    }

    /// Like [`apply`](Self::apply) for a UDP checksum: keeps 0 ("no checksum") and never
    /// produces 0 (RFC 768).
    #[inline]
    pub const fn apply_udp(self, checksum: u16) -> u16 {
        udp_finish(checksum, self.apply(checksum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        // Odd length pads with zero.
        assert_eq!(data(&[0x00, 0x01, 0xf2]), 0xf201);
        assert_eq!(data(&[]), 0);
    }

    // A textbook IPv4 header (checksum field zeroed) whose checksum is 0xb861.
    #[test]
    fn ipv4_header_known_answer() {
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!data(&hdr), 0xb861);
    }

    // RFC 1624 section 4 example: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(
            ChecksumDelta::ZERO.add16(0x5555, 0x3285).apply(0xdd2f),
            0x0000
        );
    }

    #[test]
    fn every_length_matches_16_bit_words() {
        let bytes: Vec<u8> = (0u32..40).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..bytes.len() {
            let mut acc = 0u64;
            for w in bytes[..n].chunks(2) {
                acc += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            assert_eq!(data(&bytes[..n]), fold(acc), "length {n}");
        }
    }

    #[test]
    fn update32_matches_two_update16() {
        let (old, new) = (0xc0a8_0001u32, 0x0a00_0203u32);
        let a = update32(0x1234, old, new);
        let b = update16(
            update16(0x1234, (old >> 16) as u16, (new >> 16) as u16),
            1,
            0x0203,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn udp_zero_rule() {
        let d = ChecksumDelta::ZERO.add16(1, 2);
        assert_eq!(d.apply_udp(0), 0);
        // A change that brings the sum to zero gives 0xffff, never 0.
        assert_eq!(update16(0x0001, 0x0000, 0x0001), 0x0000);
        assert_eq!(udp_finish(0x0001, 0x0000), 0xffff);
    }

    #[test]
    fn folds_to_ffff_is_a_nonzero_multiple() {
        for acc in [
            0xffff,
            0x1_fffe,
            5 * 0xffff_ffff,
            u64::MAX,
            u64::MAX / 0xffff * 0xffff,
        ] {
            assert!(folds_to_ffff(acc), "{acc:#x}");
            assert_eq!(fold(acc), 0xffff);
        }
        for acc in [0, 1, 0xfffe, 0x1_0000, 0x1_ffff, u64::MAX - 1] {
            assert!(!folds_to_ffff(acc), "{acc:#x}");
        }
    }

    #[test]
    fn pseudo_header_sum() {
        // 10.0.0.1 -> 10.0.0.2, UDP, length 8: 0a00+0001+0a00+0002+0011+0008 = 0x141c
        let s = pseudo_header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            IpProtocol::UDP,
            8,
        );
        assert_eq!(s, 0x141c);
    }
}

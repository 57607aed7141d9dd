//! The IPv4 flow key and its keyed hash.

use crate::packet::{FiveTuple, IpProtocol, Vni};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;

/// An IPv4 5-tuple as seen on the wire by one side of the appliance.
///
/// 16 bytes, 8-aligned, held as the two 64-bit words that comparing and hashing read (and
/// that building a key stores: two stores, not one per field). For ICMP echo the identifier
/// stands in for both ports ([`FlowKey::icmp_echo`]), which is how RFC 5508 section 3.1 asks a
/// NAT to map echo queries.
///
/// Word 0 is `src_addr | dst_addr << 32`, word 1 is `src_port | dst_port << 16 | protocol << 32
/// | vni << 40` (addresses as host-order integers). The top 24 bits, the VNI, are zero but for
/// the inner packets of a gateway load balancer's tunnel ([`FlowKey::with_vni`]), so a
/// tunnel's flows are kept apart from the same tuples elsewhere at no cost to the others.
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
pub struct FlowKey {
    words: [u64; 2],
}

// The two words described above, checked by the compiler.
const _: () = assert!(size_of::<FlowKey>() == 16 && align_of::<FlowKey>() == 8);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowKey")
            .field("src_addr", &self.src_addr())
            .field("dst_addr", &self.dst_addr())
            .field("src_port", &self.src_port())
            .field("dst_port", &self.dst_port())
            .field("protocol", &self.protocol())
            .field("vni", &self.vni().value())
            .finish()
    }
}

impl FlowKey {
    /// A key from addresses, ports (host order) and the IP protocol.
    #[inline]
    pub fn new(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        protocol: IpProtocol,
    ) -> Self {
        Self::from_raw(u32::from(src), u32::from(dst), src_port, dst_port, protocol)
    }

    /// The key of a packet with the wire tuple `t` (for ICMP echo, the identifier in both
    /// ports, as the packet layer gives it).
    #[inline]
    pub fn of(t: &FiveTuple) -> Self {
        Self::new(t.src_addr, t.dst_addr, t.src_port, t.dst_port, t.protocol)
    }

    /// A key from addresses as host-order integers (what a parser gets from
    /// `u32::from_be_bytes`), ports in host order and the IP protocol.
    #[inline]
    pub const fn from_raw(
        src_addr: u32,
        dst_addr: u32,
        src_port: u16,
        dst_port: u16,
        protocol: IpProtocol,
    ) -> Self {
        let protocol = protocol.value();
        Self {
            words: [
                (src_addr as u64) | ((dst_addr as u64) << 32),
                (src_port as u64) | ((dst_port as u64) << 16) | ((protocol as u64) << 32),
            ],
        }
    }

    /// The key of an ICMP echo request or reply: the identifier is used as both ports, so that
    /// the query and its reply have reversed keys like any other flow (RFC 5508 section 3.1).
    #[inline]
    pub fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, identifier: u16) -> Self {
        Self::new(src, dst, identifier, identifier, IpProtocol::ICMP)
    }

    /// The key of packets from `src` to `dst`, endpoints as (address, port). For ICMP echo
    /// the identifier is the sender's: `src`'s port.
    #[inline]
    pub fn sent_by(protocol: IpProtocol, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Self {
        if protocol == IpProtocol::ICMP {
            Self::icmp_echo(src.0, dst.0, src.1)
        } else {
            Self::new(src.0, dst.0, src.1, dst.1, protocol)
        }
    }

    /// The key of packets from `src` to `dst` that carry `dst`'s port: for ICMP echo the
    /// identifier is the receiver's (replies to a public endpoint carry the identifier the
    /// NAT gave it).
    #[inline]
    pub fn sent_to(protocol: IpProtocol, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Self {
        if protocol == IpProtocol::ICMP {
            Self::icmp_echo(src.0, dst.0, dst.1)
        } else {
            Self::new(src.0, dst.0, src.1, dst.1, protocol)
        }
    }

    /// The key of the packets flowing the other way: addresses and ports swapped, the
    /// protocol and the VNI kept.
    #[inline]
    #[must_use]
    pub const fn reverse(&self) -> Self {
        let [a, b] = self.words;
        Self {
            words: [
                a.rotate_left(32),
                (b & !0xffff_ffff) | ((b & 0xffff) << 16) | ((b >> 16) & 0xffff),
            ],
        }
    }

    /// The same key in the virtual network `vni`: a tunnel's inner packets are keyed by
    /// their 5-tuple and the tunnel's VNI.
    #[inline]
    #[must_use]
    pub const fn with_vni(&self, vni: Vni) -> Self {
        let [a, b] = self.words;
        Self {
            words: [a, (b & 0xff_ffff_ffff) | (vni.value() as u64) << 40],
        }
    }

    /// The virtual network of the key (0: not in a tunnel, or a tunnel's VNI 0).
    #[inline]
    pub const fn vni(&self) -> Vni {
        match Vni::new((self.words[1] >> 40) as u32) {
            Some(v) => v,
            None => Vni::MAX,
        }
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_addr_raw())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_addr_raw())
    }

    /// Source address as a host-order integer.
    #[inline]
    pub const fn src_addr_raw(&self) -> u32 {
        self.words[0] as u32
    }

    /// Destination address as a host-order integer.
    #[inline]
    pub const fn dst_addr_raw(&self) -> u32 {
        (self.words[0] >> 32) as u32
    }

    /// Source port (the echo identifier for ICMP).
    #[inline]
    pub const fn src_port(&self) -> u16 {
        self.words[1] as u16
    }

    /// Destination port (the echo identifier for ICMP).
    #[inline]
    pub const fn dst_port(&self) -> u16 {
        (self.words[1] >> 16) as u16
    }

    /// IP protocol.
    #[inline]
    pub const fn protocol(&self) -> IpProtocol {
        IpProtocol::of((self.words[1] >> 32) as u8)
    }

    /// The wire tuple of the key's packets (for ICMP echo, the identifier in both ports).
    #[inline]
    pub fn tuple(&self) -> FiveTuple {
        FiveTuple {
            src_addr: self.src_addr(),
            dst_addr: self.dst_addr(),
            protocol: self.protocol(),
            src_port: self.src_port(),
            dst_port: self.dst_port(),
        }
    }

    /// The key's two words.
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        (self.words[0], self.words[1])
    }

    /// The addresses and ports of the reverse key ([`FlowKey::reverse`]) as they sit on the
    /// wire: the 8 bytes of an IPv4 header's source and destination address fields, and the 4
    /// bytes of a TCP or UDP header's port fields, network order. A NAT rewrite writes the
    /// reverse of the other side's key, so this is two stores into the packet, straight from
    /// the key's two words.
    #[inline(always)]
    pub fn reverse_wire(&self) -> ([u8; 8], [u8; 4]) {
        // words: a = src | dst << 32, so big-endian a = dst then src; the low half of b is
        // sport | dport << 16, so big-endian it is dport then sport.
        let (a, b) = self.words();
        (a.to_be_bytes(), (b as u32).to_be_bytes())
    }

    /// The keyed 64-bit hash the session table uses: bucket index from the low bits, signature
    /// from the high bits.
    ///
    /// Two rounds of a folded 64x64->128-bit multiply (the `mum` step of wyhash and foldhash):
    /// the key words are XORed with secret seed words, multiplied together, and the product's
    /// halves XORed; a second round with the third seed word and an odd constant spreads every
    /// input bit over the output. Why this resists hash flooding well enough here: the seed is
    /// 192 random bits drawn when the table is created and never leaves the process, so an
    /// attacker cannot compute offline which tuples share a bucket; the hash is not a
    /// cryptographic PRF (SipHash is), but the only feedback an attacker gets is timing, and the
    /// table bounds the damage anyway: a lookup reads exactly two buckets whatever the keys, so
    /// colliding keys can at worst make their own inserts fail, never slow lookups down.
    #[inline(always)]
    pub fn hash(&self, seed: &HashSeed) -> u64 {
        let (a, b) = self.words();
        let x = fold_mul(a ^ seed.k[0], b ^ seed.k[1]);
        fold_mul(x ^ seed.k[2], 0x9E37_79B9_7F4A_7C15)
    }
}

impl PartialEq for FlowKey {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        self.words() == other.words()
    }
}

impl Eq for FlowKey {}

impl Hash for FlowKey {
    /// Feeds the two key words, so `std`/`hashbrown` maps hash a key in two writes.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (a, b) = self.words();
        state.write_u64(a);
        state.write_u64(b);
    }
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The secret words of the table hash ([`FlowKey::hash`]).
///
/// Each table draws its own seed when it is created, which also keeps a table's bucket choice
/// independent of whatever hash picked the worker that owns the flow.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashSeed {
    k: [u64; 3],
}

impl HashSeed {
    /// A seed from the process's random source (`std`'s `RandomState`, itself seeded from the
    /// operating system's random numbers once per thread and varied per call).
    pub fn random() -> Self {
        let state = std::collections::hash_map::RandomState::new();
        Self {
            k: [
                state.hash_one(0x51u64),
                state.hash_one(0xA7u64),
                state.hash_one(0xC3u64),
            ],
        }
    }

    /// A fixed seed, for reproducible tests and benchmarks only: a known seed gives up the
    /// flooding resistance.
    pub const fn fixed(k0: u64, k1: u64, k2: u64) -> Self {
        Self { k: [k0, k1, k2] }
    }
}

impl std::fmt::Debug for HashSeed {
    /// Does not print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashSeed(..)")
    }
}

/// Which side of the appliance a tuple belongs to.
///
/// A session is indexed under two keys: the tuple of the packets arriving on the inside (private)
/// side and the tuple of the packets arriving on the outside (public) side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    /// Packets arriving from the private network.
    Inside = 0,
    /// Packets arriving from the public network.
    Outside = 1,
}

impl Side {
    /// The opposite side.
    #[inline]
    pub const fn other(self) -> Self {
        match self {
            Side::Inside => Side::Outside,
            Side::Outside => Side::Inside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FlowKey {
        FlowKey::new(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 0, 2, 7),
            40000,
            443,
            IpProtocol::TCP,
        )
    }

    #[test]
    fn reverse_wire_is_the_reverse_key_in_network_order() {
        let (addrs, ports) = key().reverse_wire();
        assert_eq!(addrs, [192, 0, 2, 7, 10, 0, 0, 1]);
        assert_eq!(ports, [0x01, 0xbb, 0x9c, 0x40]);
    }

    #[test]
    fn accessors_round_trip() {
        let k = key();
        assert_eq!(k.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(k.dst_addr(), Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(k.src_port(), 40000);
        assert_eq!(k.dst_port(), 443);
        assert_eq!(k.protocol(), IpProtocol::TCP);
        assert_eq!(k.src_addr_raw(), 0x0a00_0001);
    }

    #[test]
    fn reverse_swaps_and_is_an_involution() {
        let k = key();
        let r = k.reverse();
        assert_eq!(r.src_addr(), k.dst_addr());
        assert_eq!(r.dst_addr(), k.src_addr());
        assert_eq!(r.src_port(), 443);
        assert_eq!(r.dst_port(), 40000);
        assert_eq!(r.protocol(), IpProtocol::TCP);
        assert_ne!(r, k);
        assert_eq!(r.reverse(), k);
    }

    #[test]
    fn the_vni_keeps_tunnels_apart_and_survives_reverse() {
        let seed = HashSeed::fixed(1, 2, 3);
        let k = key();
        let vni = Vni::new(0x00ab_cdef).unwrap();
        let t = k.with_vni(vni);
        assert_eq!((t.vni(), k.vni().value()), (vni, 0));
        assert_ne!(t, k);
        assert_ne!(t.hash(&seed), k.hash(&seed));
        assert_eq!(t.tuple(), k.tuple());
        assert_eq!(t.reverse(), k.reverse().with_vni(vni));
        assert_eq!(t.reverse().reverse(), t);
        assert_eq!(t.reverse_wire(), k.reverse_wire());
        assert_eq!(t.with_vni(Vni::MAX).with_vni(vni), t);
        assert_eq!(t.with_vni(Vni::default()), k);
    }

    #[test]
    fn icmp_echo_uses_identifier_as_both_ports() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(8, 8, 8, 8);
        let q = FlowKey::icmp_echo(a, b, 0x1234);
        assert_eq!((q.src_port(), q.dst_port()), (0x1234, 0x1234));
        assert_eq!(q.reverse(), FlowKey::icmp_echo(b, a, 0x1234));
    }

    #[test]
    fn every_field_takes_part_in_equality_and_hash() {
        let seed = HashSeed::fixed(1, 2, 3);
        let k = key();
        let variants = [
            FlowKey::from_raw(
                k.src_addr_raw() ^ 1,
                k.dst_addr_raw(),
                40000,
                443,
                IpProtocol::TCP,
            ),
            FlowKey::from_raw(
                k.src_addr_raw(),
                k.dst_addr_raw() ^ 1,
                40000,
                443,
                IpProtocol::TCP,
            ),
            FlowKey::from_raw(
                k.src_addr_raw(),
                k.dst_addr_raw(),
                40001,
                443,
                IpProtocol::TCP,
            ),
            FlowKey::from_raw(
                k.src_addr_raw(),
                k.dst_addr_raw(),
                40000,
                444,
                IpProtocol::TCP,
            ),
            FlowKey::from_raw(
                k.src_addr_raw(),
                k.dst_addr_raw(),
                40000,
                443,
                IpProtocol::UDP,
            ),
        ];
        for v in variants {
            assert_ne!(v, k);
            assert_ne!(v.hash(&seed), k.hash(&seed));
        }
        assert_eq!(k, key());
        assert_eq!(k.hash(&seed), key().hash(&seed));
    }

    #[test]
    fn seed_changes_hash() {
        let k = key();
        assert_ne!(
            k.hash(&HashSeed::fixed(1, 2, 3)),
            k.hash(&HashSeed::fixed(1, 2, 4))
        );
        assert_ne!(HashSeed::random(), HashSeed::random());
    }

    #[test]
    fn low_bits_spread_over_sequential_ports() {
        // 4096 flows differing only in source port must spread over 256 buckets roughly evenly.
        let seed = HashSeed::random();
        let mut counts = [0u32; 256];
        for p in 0..4096u16 {
            let k = FlowKey::from_raw(0x0a00_0001, 0x0808_0808, p, 53, IpProtocol::UDP);
            counts[(k.hash(&seed) & 255) as usize] += 1;
        }
        let max = counts.iter().max().copied().unwrap_or(0);
        assert!(max < 40, "bucket skew: max {max} of mean 16");
    }
}

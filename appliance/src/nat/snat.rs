//! One worker's source-NAT state: its slice of ports on every public address, the
//! endpoint-independent mappings it owns, and what address-dependent filtering needs.
//!
//! Everything here is touched only on the slow path (a session being created or freed) and
//! by the worker that owns it. The map of endpoint-independent mappings is sized when that
//! mapping is in force ([`Snat::prepare`], at start or at the reload that turns it on) for
//! every mapping the worker can hold, so creating mappings never reallocates. A pool's port
//! state is allocated at its first port taken (one allocation per address and protocol that
//! carries traffic, in zeroed memory whose pages are touched only where ports are used).

use super::ports::{PortPool, Slices};
use crate::config::{Filtering, Mapping, Pooling};
use crate::packet::IpProtocol;
use hashbrown::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// IP protocols with ports (or echo identifiers) that the NAT maps.
const PROTOS: [IpProtocol; 3] = [IpProtocol::ICMP, IpProtocol::TCP, IpProtocol::UDP];

/// Random ports an endpoint-dependent session tries on an address after its own port, before
/// it looks for a port no session uses. A try fails when the port is held, or when a
/// session from it to the same remote endpoint exists: with a share `f` of the slice so
/// used, all fail with probability `f^32` (0.1 % at 80 %, 3 % at 90 %), and only then does
/// the address count as exhausted for that remote endpoint if no port is free at all.
const PROBES: usize = 32;

fn proto_index(proto: IpProtocol) -> Option<usize> {
    PROTOS.iter().position(|&p| p == proto)
}

/// Why no public endpoint could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnatError {
    /// The pool has no address (nothing configured and no outside port address).
    NoAddress,
    /// This worker's slice of ports on the chosen address is used up (for a new
    /// endpoint-independent mapping), or used towards this remote endpoint (for an
    /// endpoint-dependent session).
    Exhausted,
    /// A protocol the NAT does not map.
    Protocol,
}

/// An endpoint-independent mapping's key: the protocol, the inside address and port in one
/// word ([`inside_key`]), hashed and compared as one.
type Inside = u64;

/// The [`Inside`] key of `inside` for `proto`.
#[inline]
fn inside_key(proto: IpProtocol, inside: (Ipv4Addr, u16)) -> Inside {
    u64::from(proto.0) << 48 | u64::from(u32::from(inside.0)) << 16 | u64::from(inside.1)
}

/// An inside endpoint's mapping (eight bytes): the pool address's index, the public port,
/// and how many sessions use it. The port keeps the way back: the inside endpoint as its
/// holder's tag ([`PortPool::holder`], [`tag`]), so that it costs no map of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapped {
    address: u16,
    port: u16,
    refs: u32,
}

/// The tag a mapping's port keeps: its inside endpoint, and a bit that says it is one (a
/// port forward's reservation holds a port with tag 0).
fn tag(inside: (Ipv4Addr, u16)) -> u64 {
    1 << 48 | u64::from(u32::from(inside.0)) << 16 | u64::from(inside.1)
}

/// The inside endpoint a port's tag names, if it is a mapping's.
fn untag(tag: u64) -> Option<(Ipv4Addr, u16)> {
    (tag >> 48 == 1).then(|| (Ipv4Addr::from((tag >> 16) as u32), tag as u16))
}

/// Source-NAT state of one worker.
///
/// Endpoint-dependent mapping shares each port of the pool between sessions to different
/// remote endpoints ([`PortPool::share`]): a new session takes a port whose (public
/// endpoint, remote endpoint) no live session has, which the caller answers from the session
/// table (one lookup of the outside tuple the session would have). One public address then
/// holds up to the slice's ports per remote endpoint, as many sessions as the table holds
/// in all. Endpoint-independent mapping gives each inside endpoint a port of its own, held
/// while its sessions live: at most the slice's ports of inside endpoints per address and
/// protocol.
#[derive(Debug)]
pub struct Snat {
    worker: usize,
    slices: Slices,
    addresses: Vec<Ipv4Addr>,
    /// `pools[address index][protocol index]`.
    pools: Vec<[PortPool; 3]>,
    /// Endpoint-independent mappings: inside endpoint -> its public endpoint and sessions
    /// ([`Mapped`]). The way back is kept by the ports.
    mappings: HashMap<Inside, Mapped>,
    /// For address-dependent filtering: (proto, public addr, public port, remote addr) ->
    /// sessions counted there. Kept only while `counts_contacts` (see
    /// [`Snat::set_counts_contacts`]): two random accesses to a large map per session created
    /// and freed, which no other filtering reads.
    contacted: HashMap<(IpProtocol, u32, u16, u32), u32>,
    counts_contacts: bool,
    /// Ports held back because a port forward uses them, and whether the pool gave the port
    /// to the reservation (false while a mapping or sessions that had it first still use it).
    reserved: HashMap<(IpProtocol, u32, u16), bool>,
    /// Sessions this worker holds at most: what the mapping maps are sized for.
    sessions: usize,
    /// Refusals for lack of ports, `[address index][protocol index]`.
    exhausted: Vec<[u64; 3]>,
}

impl Snat {
    /// State for `worker` over the pool `addresses`, ports sliced by `slices`, for at most
    /// `sessions` sessions. The maps of endpoint-independent mapping stay empty until
    /// [`Snat::prepare`] sizes them.
    pub fn new(
        worker: usize,
        slices: Slices,
        addresses: &[Ipv4Addr],
        sessions: usize,
        seed: u64,
    ) -> Self {
        let (lo, hi) = slices.slice(worker);
        let pools = addresses
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let s = seed ^ ((i as u64) << 32) ^ worker as u64;
                [
                    PortPool::new(lo, hi, s ^ 1),
                    PortPool::new(lo, hi, s ^ 6),
                    PortPool::new(lo, hi, s ^ 17),
                ]
            })
            .collect();
        Snat {
            worker,
            slices,
            addresses: addresses.to_vec(),
            pools,
            mappings: HashMap::new(),
            contacted: HashMap::new(),
            counts_contacts: true,
            reserved: HashMap::new(),
            sessions,
            exhausted: vec![[0; 3]; addresses.len()],
        }
    }

    /// Makes room for `mapping`: endpoint-independent mapping sizes its maps for as many
    /// mappings as this worker can hold (its sessions, or its ports on every address and
    /// protocol if fewer), so that creating them never reallocates; endpoint-dependent
    /// mapping needs none. Once when the worker starts and at a reload that changes the
    /// mapping; a no-op when the maps are already big enough.
    pub fn prepare(&mut self, mapping: Mapping) {
        if mapping != Mapping::EndpointIndependent {
            return;
        }
        let ports = self.pools.first().map_or(0, |p| p[0].capacity());
        let want = self
            .sessions
            .min(ports * PROTOS.len() * self.addresses.len());
        if self.mappings.capacity() < want {
            self.mappings.reserve(want - self.mappings.len());
        }
    }

    /// The port slices of all workers.
    pub fn slices(&self) -> &Slices {
        &self.slices
    }

    /// The pool addresses.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    /// Whether `addr` is a pool address.
    pub fn is_pool_address(&self, addr: Ipv4Addr) -> bool {
        self.addresses.contains(&addr)
    }

    /// The pool address an inside host always gets (paired pooling, RFC 4787 REQ-2): a pure
    /// function of its address, the same on every worker.
    pub fn address_for(&self, inside: Ipv4Addr) -> Option<Ipv4Addr> {
        self.address_index_for(inside).map(|i| self.addresses[i])
    }

    fn address_index_for(&self, inside: Ipv4Addr) -> Option<usize> {
        if self.addresses.is_empty() {
            return None;
        }
        let h = u64::from(u32::from(inside)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        Some((h % self.addresses.len() as u64) as usize)
    }

    fn pool_ref(&self, public: Ipv4Addr, proto: IpProtocol) -> Option<&PortPool> {
        let a = self.addresses.iter().position(|&x| x == public)?;
        Some(&self.pools[a][proto_index(proto)?])
    }

    fn pool(&mut self, public: Ipv4Addr, proto: IpProtocol) -> Option<&mut PortPool> {
        let a = self.addresses.iter().position(|&x| x == public)?;
        let p = proto_index(proto)?;
        Some(&mut self.pools[a][p])
    }

    /// Whether [`Snat::map_independent`] and [`Snat::adopt`] count the remote address of each
    /// session on an endpoint-independent mapping, which address-dependent filtering reads
    /// ([`Snat::inbound`]). On when created.
    pub fn counts_contacts(&self) -> bool {
        self.counts_contacts
    }

    /// Turns the counting of contacts on or off: on only while the filtering is
    /// address-dependent, since no other filtering reads them. Sessions counted stay counted
    /// until released (each session remembers whether it was, and says so to
    /// [`Snat::release`]); turning counting on does not count the sessions already open: their
    /// owner does that with [`Snat::add_contact`] before the next packet is filtered.
    pub fn set_counts_contacts(&mut self, on: bool) {
        self.counts_contacts = on;
    }

    /// Endpoint-independent mapping (RFC 4787 REQ-1): the inside endpoint's mapping when it
    /// has one; otherwise a free port of this worker's slice, held for the new mapping: the
    /// inside port when free (port preservation), else a random one. The contact with
    /// `remote` is counted when [`Snat::counts_contacts`]. The host's own pool address first
    /// (paired pooling); with [`Pooling::Arbitrary`], a random free port of the others in
    /// turn when it has none left.
    ///
    /// # Errors
    /// [`SnatError::Exhausted`] (counted against the host's own address), `NoAddress`,
    /// `Protocol`.
    pub fn map_independent(
        &mut self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        pooling: Pooling,
    ) -> Result<(Ipv4Addr, u16), SnatError> {
        let p = proto_index(proto).ok_or(SnatError::Protocol)?;
        let key = inside_key(proto, inside);
        let (a, port) = match self.mappings.get_mut(&key) {
            Some(m) => {
                m.refs += 1;
                (usize::from(m.address), m.port)
            }
            None => self.new_mapping(p, inside, pooling)?,
        };
        let public = (self.addresses[a], port);
        if self.counts_contacts {
            self.add_contact(proto, public, remote);
        }
        Ok(public)
    }

    /// A new endpoint-independent mapping for `inside` of protocol index `p`:
    /// the address index and port it holds. Out of line: most sessions find their mapping.
    #[inline(never)]
    fn new_mapping(
        &mut self,
        p: usize,
        inside: (Ipv4Addr, u16),
        pooling: Pooling,
    ) -> Result<(usize, u16), SnatError> {
        let key = inside_key(PROTOS[p], inside);
        let own = self
            .address_index_for(inside.0)
            .ok_or(SnatError::NoAddress)?;
        let Some((a, port)) = self.hold_port(p, own, pooling, inside.1) else {
            self.exhausted[own][p] += 1;
            return Err(SnatError::Exhausted);
        };
        let m = Mapped {
            address: a as u16,
            port,
            refs: 1,
        };
        self.mappings.insert(key, m);
        if let Some((_, t)) = self.pools[a][p].holder_mut(port) {
            *t = tag(inside);
        }
        Ok((a, port))
    }

    /// Endpoint-dependent mapping: shares a port ([`PortPool::share`]) that `unused` says
    /// no session has towards the new session's remote endpoint (`unused(public)`: no live
    /// session's outside tuple is `remote -> public`): the inside port if it passes, else up
    /// to 32 random ones, else a port no session uses at all.
    /// The host's own pool address first (paired pooling); with [`Pooling::Arbitrary`], the
    /// others in turn.
    ///
    /// # Errors
    /// [`SnatError::Exhausted`] (counted against the host's own address), `NoAddress`,
    /// `Protocol`.
    pub fn share_dependent(
        &mut self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        pooling: Pooling,
        unused: impl FnMut((Ipv4Addr, u16)) -> bool,
    ) -> Result<(Ipv4Addr, u16), SnatError> {
        let p = proto_index(proto).ok_or(SnatError::Protocol)?;
        let own = self
            .address_index_for(inside.0)
            .ok_or(SnatError::NoAddress)?;
        self.share_port(p, own, pooling, inside.1, unused)
            .ok_or_else(|| {
                self.exhausted[own][p] += 1;
                SnatError::Exhausted
            })
    }

    /// The addresses a new mapping may take, the host's own (`own`) first.
    fn candidates(&self, own: usize, pooling: Pooling) -> impl Iterator<Item = usize> {
        let n = self.addresses.len();
        let tries = if pooling == Pooling::Arbitrary { n } else { 1 };
        (0..tries).map(move |k| (own + k) % n)
    }

    /// Holds a free port for a new endpoint-independent mapping: `want` if free, else a
    /// random free one; the address's index and the port.
    fn hold_port(
        &mut self,
        p: usize,
        own: usize,
        pooling: Pooling,
        want: u16,
    ) -> Option<(usize, u16)> {
        if let Some(port) = self.pools[own][p].alloc(want) {
            return Some((own, port));
        }
        for a in self.candidates(own, pooling).skip(1) {
            if let Some(port) = self.pools[a][p].alloc_random() {
                return Some((a, port));
            }
        }
        None
    }

    /// Shares a port for a new endpoint-dependent session: `want`, or a random port, that
    /// is not held, not waiting for a port forward, and `unused` towards the remote endpoint.
    fn share_port(
        &mut self,
        p: usize,
        own: usize,
        pooling: Pooling,
        want: u16,
        mut unused: impl FnMut((Ipv4Addr, u16)) -> bool,
    ) -> Option<(Ipv4Addr, u16)> {
        for a in self.candidates(own, pooling) {
            let public = self.addresses[a];
            let proto = PROTOS[p];
            let waiting = |reserved: &HashMap<_, _>, port| {
                !reserved.is_empty() && reserved.contains_key(&(proto, u32::from(public), port))
            };
            let mut port = want;
            for _ in 0..=PROBES {
                let pool = &self.pools[a][p];
                if pool.shareable(port) && !waiting(&self.reserved, port) && unused((public, port))
                {
                    self.pools[a][p].share(port);
                    return Some((public, port));
                }
                port = self.pools[a][p].random_port();
            }
            // Every try met a session to this remote endpoint: a port no session uses is
            // free towards every one.
            if let Some(port) = self.pools[a][p].random_free() {
                self.pools[a][p].share(port);
                return Some((public, port));
            }
        }
        None
    }

    /// The public endpoint [`Snat::map_independent`] or [`Snat::share_dependent`] will most likely
    /// give `inside` now, without taking it: its endpoint-independent mapping when it has one, else
    /// its own port on its pool address (port preservation). A guess for prefetching (the pipeline
    /// loads the index bucket of a new session's outside key ahead of creating it): when the port
    /// turns out taken, only the prefetch is wasted.
    #[inline]
    pub fn predict(
        &self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        mapping: Mapping,
    ) -> Option<(Ipv4Addr, u16)> {
        if mapping == Mapping::EndpointIndependent {
            if let Some(m) = self.mappings.get(&inside_key(proto, inside)) {
                return Some((self.addresses[usize::from(m.address)], m.port));
            }
        }
        Some((self.address_for(inside.0)?, inside.1))
    }

    /// Records one more session on an existing mapping admitted from outside (filtering
    /// allowed it), so the mapping lives as long as that session; counts the contact with
    /// `remote` when [`Snat::counts_contacts`].
    pub fn adopt(&mut self, proto: IpProtocol, public: (Ipv4Addr, u16), remote: Ipv4Addr) -> bool {
        let Some((_, tag)) = self
            .pool_ref(public.0, proto)
            .and_then(|p| p.holder(public.1))
        else {
            return false;
        };
        let Some(inside) = untag(tag) else {
            return false;
        };
        let Some(m) = self.mappings.get_mut(&inside_key(proto, inside)) else {
            return false;
        };
        m.refs += 1;
        if self.counts_contacts {
            self.add_contact(proto, public, remote);
        }
        true
    }

    /// Counts one more session between the mapping at `public` and a remote address (what
    /// address-dependent filtering asks). [`Snat::map_independent`] and [`Snat::adopt`] call it
    /// while counting is on; the owner calls it for the sessions already open when it turns
    /// counting on, and then releases them as counted.
    pub fn add_contact(&mut self, proto: IpProtocol, public: (Ipv4Addr, u16), remote: Ipv4Addr) {
        *self
            .contacted
            .entry((proto, u32::from(public.0), public.1, u32::from(remote)))
            .or_insert(0) += 1;
    }

    /// Gives back what [`Snat::map_independent`], [`Snat::share_dependent`] or [`Snat::adopt`] took
    /// for a session that is going; `contacted` says whether its contact was counted
    /// ([`Snat::counts_contacts`] when it was taken, or [`Snat::add_contact`] since).
    pub fn release(
        &mut self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        public: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        mapping: Mapping,
        contacted: bool,
    ) {
        if mapping == Mapping::EndpointIndependent && contacted {
            let k = (proto, u32::from(public.0), public.1, u32::from(remote));
            if let Some(c) = self.contacted.get_mut(&k) {
                *c -= 1;
                if *c == 0 {
                    self.contacted.remove(&k);
                }
            }
        }
        match mapping {
            Mapping::EndpointIndependent => {
                let key = inside_key(proto, inside);
                let Some(m) = self.mappings.get_mut(&key) else {
                    return;
                };
                if self.addresses.get(usize::from(m.address)) != Some(&public.0)
                    || m.port != public.1
                {
                    return;
                }
                m.refs -= 1;
                if m.refs > 0 {
                    return;
                }
                self.mappings.remove(&key);
                if let Some((_, t)) = self
                    .pool(public.0, proto)
                    .and_then(|p| p.holder_mut(public.1))
                {
                    *t = 0;
                }
            }
            Mapping::EndpointDependent => {
                let last = self.pool(public.0, proto).and_then(|p| p.unshare(public.1));
                if last != Some(true) {
                    return;
                }
            }
        }
        match self
            .reserved
            .get_mut(&(proto, u32::from(public.0), public.1))
        {
            // A forward wants this port: it passes to the reservation instead of the pool.
            Some(held) => *held = true,
            None => {
                if let Some(pool) = self.pool(public.0, proto) {
                    pool.free(public.1);
                }
            }
        }
    }

    /// The inside endpoint of an endpoint-independent mapping at `public`, if the filtering
    /// lets `remote` reach it (RFC 4787 section 5): endpoint-independent filtering admits
    /// anyone; address-dependent filtering admits addresses the inside endpoint has sent
    /// to; address-and-port-dependent filtering admits only existing sessions, so never here.
    pub fn inbound(
        &self,
        proto: IpProtocol,
        public: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        filtering: Filtering,
    ) -> Option<(Ipv4Addr, u16)> {
        let (_, tag) = self.pool_ref(public.0, proto)?.holder(public.1)?;
        let inside = untag(tag)?;
        debug_assert!(
            self.counts_contacts || filtering != Filtering::AddressDependent,
            "address-dependent filtering without counting contacts"
        );
        let admitted = match filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => self.contacted.contains_key(&(
                proto,
                u32::from(public.0),
                public.1,
                u32::from(remote),
            )),
            Filtering::AddressAndPortDependent => false,
        };
        admitted.then_some(inside)
    }

    /// Holds back the public ports of port forwards that fall in this worker's slice of a pool
    /// address, so SNAT never hands them out; releases ports of forwards that are gone. A port
    /// in use by a mapping when its forward appears is held back once the mapping ends.
    pub fn reserve(&mut self, forwards: impl IntoIterator<Item = (IpProtocol, Ipv4Addr, u16)>) {
        let wanted: HashSet<(IpProtocol, u32, u16)> = forwards
            .into_iter()
            .filter(|&(proto, addr, port)| {
                proto_index(proto).is_some()
                    && self.addresses.contains(&addr)
                    && self.slices.owner(port) == Some(self.worker)
            })
            .map(|(p, a, port)| (p, u32::from(a), port))
            .collect();
        let gone: Vec<_> = self
            .reserved
            .keys()
            .filter(|k| !wanted.contains(*k))
            .copied()
            .collect();
        for k in gone {
            let held = self.reserved.remove(&k) == Some(true);
            if held {
                if let Some(pool) = self.pool(Ipv4Addr::from(k.1), k.0) {
                    pool.free(k.2);
                }
            }
        }
        for k in wanted {
            if self.reserved.contains_key(&k) {
                continue;
            }
            // Taken now if free; if a mapping holds it, `release` hands it over later.
            let held = self
                .pool(Ipv4Addr::from(k.1), k.0)
                .is_some_and(|pool| pool.take(k.2));
            self.reserved.insert(k, held);
        }
    }

    /// Ports in use by sessions per (address, protocol); ports held back for port forwards
    /// are not counted.
    pub fn ports_in_use(&self) -> impl Iterator<Item = (Ipv4Addr, IpProtocol, usize)> + '_ {
        self.addresses
            .iter()
            .zip(&self.pools)
            .flat_map(move |(&a, pools)| {
                PROTOS.iter().zip(pools).map(move |(&proto, pool)| {
                    let held = self
                        .reserved
                        .iter()
                        .filter(|(k, held)| **held && k.0 == proto && k.1 == u32::from(a))
                        .count();
                    (a, proto, pool.in_use() - held)
                })
            })
    }

    /// Live endpoint-independent mappings.
    pub fn mappings(&self) -> usize {
        self.mappings.len()
    }

    /// Distinct (mapping, remote address) pairs counted for address-dependent filtering.
    pub fn contacts(&self) -> usize {
        self.contacted.len()
    }

    /// Public endpoints refused for lack of ports, in all.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.iter().flatten().sum()
    }

    /// Public endpoints refused for lack of ports per (pool address, protocol): the inside
    /// host's own address, whatever the pooling.
    pub fn exhaustion(&self) -> impl Iterator<Item = (Ipv4Addr, IpProtocol, u64)> + '_ {
        self.addresses
            .iter()
            .zip(&self.exhausted)
            .flat_map(|(&a, counts)| PROTOS.iter().zip(counts).map(move |(&p, &n)| (a, p, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet as Set;

    const UDP: IpProtocol = IpProtocol::UDP;
    const TCP: IpProtocol = IpProtocol::TCP;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);
    const R1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const R2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    const P: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const Q: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    const EIM: Mapping = Mapping::EndpointIndependent;
    const EDM: Mapping = Mapping::EndpointDependent;

    fn snat() -> Snat {
        let mut s = Snat::new(0, Slices::new(1024, 65535, 1).unwrap(), &[P], 1000, 1);
        s.prepare(EIM);
        s
    }

    /// The session table as far as the NAT asks it: the (public, remote) endpoint pairs of
    /// live sessions; and the pooling new sessions ask for.
    #[derive(Default)]
    struct Table(Set<(IpProtocol, Endpoint, Endpoint)>, Pooling);

    type Endpoint = (Ipv4Addr, u16);

    impl Table {
        /// A public endpoint under `mapping` (and the table's pooling), the session recorded
        /// when it succeeds.
        fn get(
            &mut self,
            s: &mut Snat,
            proto: IpProtocol,
            inside: Endpoint,
            remote: Endpoint,
            mapping: Mapping,
        ) -> Result<Endpoint, SnatError> {
            let used = &self.0;
            let unused = |p| !used.contains(&(proto, p, remote));
            let public = match mapping {
                Mapping::EndpointIndependent => s.map_independent(proto, inside, remote.0, self.1),
                Mapping::EndpointDependent => s.share_dependent(proto, inside, self.1, unused),
            }?;
            let new = self.0.insert((proto, public, remote));
            assert!(new, "two sessions on {public:?} -> {remote:?}");
            Ok(public)
        }

        /// [`Snat::release`] of a session [`Table::get`] made, which goes.
        fn put(
            &mut self,
            s: &mut Snat,
            proto: IpProtocol,
            inside: (Ipv4Addr, u16),
            public: (Ipv4Addr, u16),
            remote: (Ipv4Addr, u16),
            mapping: Mapping,
        ) {
            assert!(self.0.remove(&(proto, public, remote)));
            s.release(proto, inside, public, remote.0, mapping, true);
        }
    }

    #[test]
    fn eim_reuses_the_mapping_and_frees_after_last_session() {
        let mut s = snat();
        let mut t = Table::default();
        let f = Filtering::AddressAndPortDependent;
        let m1 = t.get(&mut s, UDP, (A, 5000), (R1, 53), EIM).unwrap();
        assert_eq!(m1, (P, 5000), "port preserved");
        let m2 = t.get(&mut s, UDP, (A, 5000), (R2, 53), EIM).unwrap();
        assert_eq!(m1, m2, "same mapping for another destination");
        assert_eq!(
            s.inbound(UDP, m1, R2, Filtering::EndpointIndependent),
            Some((A, 5000))
        );
        assert_eq!(
            s.inbound(UDP, m1, R2, f),
            None,
            "APDF never admits without a session"
        );
        s.release(UDP, (A, 5000), m1, R1, EIM, true);
        assert_eq!(s.mappings(), 1);
        s.release(UDP, (A, 5000), m1, R2, EIM, true);
        assert_eq!(s.mappings(), 0);
        assert_eq!(s.ports_in_use().map(|x| x.2).sum::<usize>(), 0);
    }

    #[test]
    fn predict_is_what_acquire_gives_when_the_port_is_free() {
        let mut s = snat();
        let mut t = Table::default();
        for mapping in [EIM, EDM] {
            let want = s.predict(UDP, (A, 6000), mapping);
            assert_eq!(want, Some((P, 6000)), "{mapping:?}: port preserved");
            assert_eq!(t.get(&mut s, UDP, (A, 6000), (R1, 53), mapping).ok(), want);
            s.release(UDP, (A, 6000), want.unwrap(), R1, mapping, false);
            t = Table::default();
        }
        // An existing endpoint-independent mapping on another port: predicted exactly.
        let taken = t.get(&mut s, UDP, (B, 6001), (R1, 53), EIM).unwrap();
        let m = t.get(&mut s, UDP, (A, 6001), (R1, 53), EIM).unwrap();
        assert_ne!(m.1, 6001, "port taken by another host, so another port");
        assert_eq!(s.predict(UDP, (A, 6001), EIM), Some(m));
        assert_eq!(t.get(&mut s, UDP, (A, 6001), (R2, 53), EIM).ok(), Some(m));
        // Endpoint-dependent: the guess is the inside port even when it is held (a wasted
        // prefetch, never a wrong translation: predict takes nothing).
        assert_eq!(s.predict(UDP, (B, 6001), EDM), Some(taken));
        assert_ne!(
            t.get(&mut s, UDP, (B, 6001), (R2, 53), EDM).ok(),
            Some(taken)
        );
    }

    #[test]
    fn edm_shares_a_port_between_remote_endpoints() {
        let mut s = snat();
        let mut t = Table::default();
        let m1 = t.get(&mut s, TCP, (A, 5000), (R1, 80), EDM).unwrap();
        let m2 = t.get(&mut s, TCP, (A, 5000), (R2, 80), EDM).unwrap();
        let m3 = t.get(&mut s, TCP, (A, 5000), (R1, 443), EDM).unwrap();
        assert_eq!(
            [m1, m2, m3],
            [(P, 5000); 3],
            "the inside port, to three endpoints"
        );
        // Another host, same inside port, same remote: the pair is taken, another port.
        let m4 = t.get(&mut s, TCP, (B, 5000), (R1, 80), EDM).unwrap();
        assert_ne!(m4, (P, 5000));
        let m5 = t.get(&mut s, TCP, (B, 5000), (R2, 443), EDM).unwrap();
        assert_eq!(m5, (P, 5000), "free towards this one");
        let used = |s: &Snat| s.ports_in_use().map(|x| x.2).sum::<usize>();
        assert_eq!(used(&s), 2);
        for (inside, m, r) in [(A, m1, R1), (A, m2, R2), (A, m3, R1), (B, m5, R2)] {
            s.release(TCP, (inside, 5000), m, r, EDM, false);
        }
        assert_eq!(used(&s), 1, "one session left on the other port");
        s.release(TCP, (B, 5000), m4, R1, EDM, false);
        assert_eq!(used(&s), 0);
    }

    #[test]
    fn edm_takes_no_port_held_by_a_mapping_or_a_forward() {
        let mut s = snat();
        let mut t = Table::default();
        s.reserve([(UDP, P, 7001)]);
        let held = t.get(&mut s, UDP, (A, 7000), (R1, 53), EIM).unwrap();
        assert_eq!(held, (P, 7000));
        let e = t.get(&mut s, UDP, (B, 7000), (R2, 53), EDM).unwrap();
        assert_ne!(e.1, 7000, "the mapping's port is its own");
        let f = t.get(&mut s, UDP, (B, 7001), (R2, 53), EDM).unwrap();
        assert_ne!(f.1, 7001, "the forward's port is held back");
        // And a mapping never takes a shared port.
        let g = t.get(&mut s, UDP, (A, e.1), (R1, 53), EIM).unwrap();
        assert_ne!(g.1, e.1);
    }

    #[test]
    fn a_forward_waits_for_the_last_sharer() {
        let mut s = snat();
        let mut t = Table::default();
        let m1 = t.get(&mut s, TCP, (A, 9000), (R1, 80), EDM).unwrap();
        let m2 = t.get(&mut s, TCP, (B, 9000), (R2, 80), EDM).unwrap();
        assert_eq!((m1, m2), ((P, 9000), (P, 9000)));
        s.reserve([(TCP, P, 9000)]);
        let m3 = t.get(&mut s, TCP, (A, 9000), (R2, 443), EDM).unwrap();
        assert_ne!(
            m3.1, 9000,
            "no new sharer while a forward waits for the port"
        );
        s.release(TCP, (A, 9000), m1, R1, EDM, false);
        s.release(TCP, (B, 9000), m2, R2, EDM, false);
        s.release(TCP, (A, 9000), m3, R2, EDM, false);
        assert_eq!(
            s.ports_in_use().map(|x| x.2).sum::<usize>(),
            0,
            "the port passed to the forward, which is not counted"
        );
        s.reserve([]);
        let t2 = &mut Table::default();
        assert_eq!(
            t2.get(&mut s, TCP, (A, 9000), (R1, 80), EIM).unwrap().1,
            9000
        );
    }

    #[test]
    fn edm_holds_a_slice_of_sessions_per_remote_endpoint() {
        // Ten ports: ten sessions to each remote endpoint, whatever the inside endpoints.
        let mut s = Snat::new(0, Slices::new(2000, 2009, 1).unwrap(), &[P], 100, 3);
        let mut t = Table::default();
        for r in [(R1, 53), (R2, 53), (R1, 54)] {
            for i in 0..10 {
                t.get(&mut s, UDP, (A, 3000 + i), r, EDM).unwrap();
            }
            assert_eq!(
                t.get(&mut s, UDP, (B, 3000), r, EDM),
                Err(SnatError::Exhausted)
            );
        }
        assert_eq!(t.0.len(), 30);
        assert_eq!(s.exhausted(), 3);
        assert_eq!(s.exhaustion().collect::<Vec<_>>()[2], (P, UDP, 3));
    }

    #[test]
    fn edm_finds_the_last_free_port_when_random_tries_fail() {
        // 1000 ports, 999 of them used towards R1: the last one is found, not refused.
        let mut s = Snat::new(0, Slices::new(3000, 3999, 1).unwrap(), &[P], 2000, 5);
        let mut t = Table::default();
        for i in 0..999 {
            t.get(&mut s, UDP, (A, 10_000 + i), (R1, 53), EDM).unwrap();
        }
        let last = t.get(&mut s, UDP, (B, 10_000), (R1, 53), EDM).unwrap();
        assert_eq!(s.ports_in_use().map(|x| x.2).sum::<usize>(), 1000);
        assert!((3000..=3999).contains(&last.1));
        assert_eq!(
            t.get(&mut s, UDP, (B, 10_001), (R1, 53), EDM),
            Err(SnatError::Exhausted)
        );
        assert!(t.get(&mut s, UDP, (B, 10_001), (R2, 53), EDM).is_ok());
    }

    #[test]
    fn arbitrary_pooling_takes_another_address_when_full() {
        let mut s = Snat::new(0, Slices::new(2000, 2001, 1).unwrap(), &[P, Q], 100, 3);
        s.prepare(EIM);
        let own = s.address_for(A).unwrap();
        let other = if own == P { Q } else { P };
        let mut t = Table::default();
        for mapping in [EIM, EDM] {
            let r = (R1, 53);
            let a = t.get(&mut s, UDP, (A, 1), r, mapping).unwrap();
            let b = t.get(&mut s, UDP, (A, 2), r, mapping).unwrap();
            assert_eq!((a.0, b.0), (own, own));
            assert_eq!(
                t.get(&mut s, UDP, (A, 3), r, mapping),
                Err(SnatError::Exhausted),
                "{mapping:?}: paired stays on its address"
            );
            t.1 = Pooling::Arbitrary;
            let c = t.get(&mut s, UDP, (A, 3), r, mapping).unwrap();
            assert_eq!(c.0, other, "{mapping:?}: arbitrary moves on");
            for (port, m) in [(1, a), (2, b), (3, c)] {
                s.release(UDP, (A, port), m, R1, mapping, false);
            }
            t = Table::default();
            assert_eq!(s.ports_in_use().map(|x| x.2).sum::<usize>(), 0);
        }
        let counted: Vec<_> = s.exhaustion().filter(|e| e.2 > 0).collect();
        assert_eq!(
            counted,
            [(own, UDP, 2)],
            "counted against the host's own address"
        );
    }

    #[test]
    fn address_dependent_filtering_admits_contacted_addresses() {
        let mut s = snat();
        let mut t = Table::default();
        let f = Filtering::AddressDependent;
        let m = t.get(&mut s, UDP, (A, 7000), (R1, 53), EIM).unwrap();
        assert_eq!(s.inbound(UDP, m, R1, f), Some((A, 7000)));
        assert_eq!(s.inbound(UDP, m, R2, f), None);
        s.release(UDP, (A, 7000), m, R1, EIM, true);
        assert_eq!(s.inbound(UDP, m, R1, f), None);
    }

    #[test]
    fn contacts_are_counted_only_when_asked() {
        let mut s = snat();
        let mut t = Table::default();
        let f = Filtering::AddressDependent;
        s.set_counts_contacts(false);
        let m = t.get(&mut s, UDP, (A, 7000), (R1, 53), EIM).unwrap();
        assert_eq!(s.contacts(), 0);
        // Turned on: the owner counts what is open, then new sessions count themselves.
        s.set_counts_contacts(true);
        s.add_contact(UDP, m, R1);
        assert_eq!(s.inbound(UDP, m, R1, f), Some((A, 7000)));
        assert_eq!(t.get(&mut s, UDP, (A, 7000), (R2, 53), EIM).unwrap(), m);
        assert_eq!(s.inbound(UDP, m, R2, f), Some((A, 7000)));
        s.release(UDP, (A, 7000), m, R1, EIM, true);
        // Turned off again: counted sessions still give their count back.
        s.set_counts_contacts(false);
        let m3 = t.get(&mut s, UDP, (A, 7000), (R1, 54), EIM).unwrap();
        assert_eq!(s.contacts(), 1);
        s.release(UDP, (A, 7000), m, R2, EIM, true);
        s.release(UDP, (A, 7000), m3, R1, EIM, false);
        assert_eq!((s.contacts(), s.mappings()), (0, 0));
    }

    #[test]
    fn forwards_are_never_handed_out() {
        let mut s = snat();
        let mut t = Table::default();
        s.reserve([(TCP, P, 8080)]);
        let m = t.get(&mut s, TCP, (A, 8080), (R1, 80), EIM).unwrap();
        assert_ne!(m.1, 8080, "a forward's port is not preserved");
        assert_eq!(
            t.get(&mut s, UDP, (A, 8080), (R1, 80), EIM).unwrap().1,
            8080,
            "other protocol is fine"
        );
        // The forward goes: its port comes back.
        s.reserve([]);
        assert_eq!(
            t.get(&mut s, TCP, (B, 8080), (R1, 80), EIM).unwrap().1,
            8080
        );
    }

    #[test]
    fn forward_added_over_a_live_mapping_then_removed() {
        let mut s = snat();
        let mut t = Table::default();
        let host = |n| (Ipv4Addr::new(10, 0, 1, n), 9000);
        let m = t.get(&mut s, TCP, (A, 9000), (R1, 80), EIM).unwrap();
        assert_eq!(m.1, 9000);
        s.reserve([(TCP, P, 9000)]); // the mapping still holds it
        s.reserve([]); // gone again before the mapping ended: the mapping keeps it
        let other = t.get(&mut s, TCP, host(12), (R1, 80), EIM).unwrap();
        assert_ne!(other.1, 9000, "still held by the first mapping");
        s.reserve([(TCP, P, 9000)]);
        t.put(&mut s, TCP, (A, 9000), m, (R1, 80), EIM); // passes to the reservation
        let third = t.get(&mut s, TCP, host(13), (R1, 80), EIM).unwrap();
        assert_ne!(third.1, 9000, "reserved for the forward");
        s.reserve([]);
        let fourth = t.get(&mut s, TCP, host(14), (R1, 80), EIM).unwrap();
        assert_eq!(fourth.1, 9000, "free again once the forward is gone");
    }

    #[test]
    fn exhaustion_is_counted() {
        let mut s = Snat::new(0, Slices::new(2000, 2001, 1).unwrap(), &[P], 10, 1);
        let mut t = Table::default();
        t.get(&mut s, UDP, (A, 1), (R1, 53), EIM).unwrap();
        t.get(&mut s, UDP, (A, 2), (R1, 53), EIM).unwrap();
        assert_eq!(
            t.get(&mut s, UDP, (A, 3), (R1, 53), EIM),
            Err(SnatError::Exhausted)
        );
        assert_eq!(s.exhausted(), 1);
        assert_eq!(
            t.get(&mut s, IpProtocol::GRE, (A, 3), (R1, 53), EIM),
            Err(SnatError::Protocol)
        );
        let mut none = Snat::new(0, Slices::new(2000, 2001, 1).unwrap(), &[], 10, 1);
        assert_eq!(
            t.get(&mut none, UDP, (A, 3), (R1, 53), EIM),
            Err(SnatError::NoAddress)
        );
    }

    #[test]
    fn the_maps_are_sized_for_mappings_only_when_they_are_used() {
        let mut s = Snat::new(0, Slices::new(1024, 65535, 1).unwrap(), &[P], 1 << 20, 1);
        s.prepare(EDM);
        assert_eq!(s.mappings.capacity(), 0, "endpoint-dependent needs no map");
        s.prepare(EIM);
        let ports = 64512 * 3;
        assert!(
            (ports..2 * ports).contains(&s.mappings.capacity()),
            "as many as the ports of one address, not a million: {}",
            s.mappings.capacity()
        );
    }
}

//! One worker's source-NAT state: its slice of ports on every public address, the
//! endpoint-independent mappings it owns, and what address-dependent filtering needs.
//!
//! Everything here is touched only on the slow path (a session being created or freed) and
//! by the worker that owns it. Maps are sized at creation so that creating sessions up to the
//! worker's share of `max_sessions` does not reallocate.

use super::ports::{PortPool, Slices};
use crate::config::{Filtering, Mapping};
use crate::packet::IpProtocol;
use hashbrown::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// IP protocols with ports (or echo identifiers) that the NAT maps.
const PROTOS: [IpProtocol; 3] = [IpProtocol::ICMP, IpProtocol::TCP, IpProtocol::UDP];

fn proto_index(proto: IpProtocol) -> Option<usize> {
    PROTOS.iter().position(|&p| p == proto)
}

/// Why no public endpoint could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnatError {
    /// The pool has no address (nothing configured and no outside port address).
    NoAddress,
    /// This worker's slice of ports on the chosen address is used up.
    Exhausted,
    /// A protocol the NAT does not map.
    Protocol,
}

/// An inside endpoint's public endpoint and how many sessions use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping1 {
    public: Ipv4Addr,
    port: u16,
    refs: u32,
}

/// Source-NAT state of one worker.
#[derive(Debug)]
pub struct Snat {
    worker: usize,
    slices: Slices,
    addresses: Vec<Ipv4Addr>,
    /// `pools[address index][protocol index]`.
    pools: Vec<[PortPool; 3]>,
    /// Endpoint-independent mappings: (proto, inside addr, inside port) -> public endpoint.
    mappings: HashMap<(IpProtocol, u32, u16), Mapping1>,
    /// The reverse: (proto, public addr, public port) -> inside endpoint.
    reverse: HashMap<(IpProtocol, u32, u16), (u32, u16)>,
    /// For address-dependent filtering: (proto, public addr, public port, remote addr) ->
    /// sessions counted there. Kept only while `counts_contacts` (see
    /// [`Snat::set_counts_contacts`]): two random accesses to a large map per session created
    /// and freed, which no other filtering reads.
    contacted: HashMap<(IpProtocol, u32, u16, u32), u32>,
    counts_contacts: bool,
    /// Ports held back because a port forward uses them, and whether the pool gave the port
    /// to the reservation (false while a mapping that had it first still holds it).
    reserved: HashMap<(IpProtocol, u32, u16), bool>,
    /// Allocations refused for lack of ports.
    pub exhausted: u64,
}

impl Snat {
    /// State for `worker` over the pool `addresses`, ports sliced by `slices`, with room for
    /// `sessions` sessions before any map grows.
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
            mappings: HashMap::with_capacity(sessions),
            reverse: HashMap::with_capacity(sessions),
            contacted: HashMap::new(),
            counts_contacts: true,
            reserved: HashMap::new(),
            exhausted: 0,
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
        if self.addresses.is_empty() {
            return None;
        }
        let h = u64::from(u32::from(inside)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        Some(self.addresses[(h % self.addresses.len() as u64) as usize])
    }

    fn pool(&mut self, public: Ipv4Addr, proto: IpProtocol) -> Option<&mut PortPool> {
        let a = self.addresses.iter().position(|&x| x == public)?;
        let p = proto_index(proto)?;
        Some(&mut self.pools[a][p])
    }

    /// Whether [`Snat::acquire`] and [`Snat::adopt`] count the remote address of each session
    /// on an endpoint-independent mapping, which address-dependent filtering reads
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

    /// A public endpoint for a new session from `inside` (proto, address, port) to `remote`.
    ///
    /// Endpoint-independent mapping reuses the inside endpoint's mapping when it has one (RFC
    /// 4787 REQ-1); otherwise, and always with endpoint-dependent mapping, a port of this
    /// worker's slice is taken: the inside port when free (port preservation), else a random
    /// one. With an endpoint-independent mapping the contact with `remote` is counted when
    /// [`Snat::counts_contacts`]. Every successful call must be paired with [`Snat::release`].
    pub fn acquire(
        &mut self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        remote: Ipv4Addr,
        mapping: Mapping,
    ) -> Result<(Ipv4Addr, u16), SnatError> {
        proto_index(proto).ok_or(SnatError::Protocol)?;
        let key = (proto, u32::from(inside.0), inside.1);
        let public = if mapping == Mapping::EndpointIndependent {
            if let Some(m) = self.mappings.get_mut(&key) {
                m.refs += 1;
                (m.public, m.port)
            } else {
                let public = self.take_port(proto, inside)?;
                self.mappings.insert(
                    key,
                    Mapping1 {
                        public: public.0,
                        port: public.1,
                        refs: 1,
                    },
                );
                self.reverse
                    .insert((proto, u32::from(public.0), public.1), (key.1, key.2));
                public
            }
        } else {
            return self.take_port(proto, inside);
        };
        if self.counts_contacts {
            self.add_contact(proto, public, remote);
        }
        Ok(public)
    }

    /// The public endpoint [`Snat::acquire`] will most likely give `inside` now, without
    /// taking it: its endpoint-independent mapping when it has one, else its own port on its
    /// pool address (port preservation). A guess for prefetching (the pipeline loads the
    /// index bucket of a new session's outside key ahead of creating it): when the port turns
    /// out taken, only the prefetch is wasted.
    #[inline]
    pub fn predict(
        &self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
        mapping: Mapping,
    ) -> Option<(Ipv4Addr, u16)> {
        if mapping == Mapping::EndpointIndependent {
            if let Some(m) = self.mappings.get(&(proto, u32::from(inside.0), inside.1)) {
                return Some((m.public, m.port));
            }
        }
        Some((self.address_for(inside.0)?, inside.1))
    }

    fn take_port(
        &mut self,
        proto: IpProtocol,
        inside: (Ipv4Addr, u16),
    ) -> Result<(Ipv4Addr, u16), SnatError> {
        let public = self.address_for(inside.0).ok_or(SnatError::NoAddress)?;
        let pool = self.pool(public, proto).ok_or(SnatError::Protocol)?;
        match pool.alloc(inside.1) {
            Some(port) => Ok((public, port)),
            None => {
                self.exhausted += 1;
                Err(SnatError::Exhausted)
            }
        }
    }

    /// Records one more session on an existing mapping admitted from outside (filtering
    /// allowed it), so the mapping lives as long as that session; counts the contact with
    /// `remote` when [`Snat::counts_contacts`].
    pub fn adopt(&mut self, proto: IpProtocol, public: (Ipv4Addr, u16), remote: Ipv4Addr) -> bool {
        let Some(&(ip, port)) = self.reverse.get(&(proto, u32::from(public.0), public.1)) else {
            return false;
        };
        if let Some(m) = self.mappings.get_mut(&(proto, ip, port)) {
            m.refs += 1;
        }
        if self.counts_contacts {
            self.add_contact(proto, public, remote);
        }
        true
    }

    /// Counts one more session between the mapping at `public` and a remote address (what
    /// address-dependent filtering asks). [`Snat::acquire`] and [`Snat::adopt`] call it while
    /// counting is on; the owner calls it for the sessions already open when it turns counting
    /// on, and then releases them as counted.
    pub fn add_contact(&mut self, proto: IpProtocol, public: (Ipv4Addr, u16), remote: Ipv4Addr) {
        *self
            .contacted
            .entry((proto, u32::from(public.0), public.1, u32::from(remote)))
            .or_insert(0) += 1;
    }

    /// Gives back what [`Snat::acquire`] or [`Snat::adopt`] took for a session that is going;
    /// `contacted` says whether its contact was counted ([`Snat::counts_contacts`] when it was
    /// taken, or [`Snat::add_contact`] since).
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
        let key = (proto, u32::from(inside.0), inside.1);
        if mapping == Mapping::EndpointIndependent {
            if let Some(m) = self.mappings.get_mut(&key) {
                if m.public == public.0 && m.port == public.1 {
                    m.refs -= 1;
                    if m.refs > 0 {
                        return;
                    }
                    self.mappings.remove(&key);
                    self.reverse.remove(&(proto, u32::from(public.0), public.1));
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
        let &(ip, port) = self.reverse.get(&(proto, u32::from(public.0), public.1))?;
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
        admitted.then_some((Ipv4Addr::from(ip), port))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: IpProtocol = IpProtocol::UDP;
    const TCP: IpProtocol = IpProtocol::TCP;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 10);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);
    const R1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const R2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    const P: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const EIM: Mapping = Mapping::EndpointIndependent;
    const EDM: Mapping = Mapping::EndpointDependent;

    fn snat() -> Snat {
        Snat::new(0, Slices::new(1024, 65535, 1).unwrap(), &[P], 1000, 1)
    }

    #[test]
    fn eim_reuses_the_mapping_and_frees_after_last_session() {
        let mut s = snat();
        let f = Filtering::AddressAndPortDependent;
        let m1 = s.acquire(UDP, (A, 5000), R1, EIM).unwrap();
        assert_eq!(m1, (P, 5000), "port preserved");
        let m2 = s.acquire(UDP, (A, 5000), R2, EIM).unwrap();
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
        for mapping in [EIM, EDM] {
            let want = s.predict(UDP, (A, 6000), mapping);
            assert_eq!(want, Some((P, 6000)), "{mapping:?}: port preserved");
            assert_eq!(s.acquire(UDP, (A, 6000), R1, mapping).ok(), want);
            s.release(UDP, (A, 6000), want.unwrap(), R1, mapping, false);
        }
        // An existing endpoint-independent mapping on another port: predicted exactly.
        let taken = s.acquire(UDP, (B, 6001), R1, EIM).unwrap();
        let m = s.acquire(UDP, (A, 6001), R1, EIM).unwrap();
        assert_ne!(m.1, 6001, "port taken by another host, so another port");
        assert_eq!(s.predict(UDP, (A, 6001), EIM), Some(m));
        assert_eq!(s.acquire(UDP, (A, 6001), R2, EIM).ok(), Some(m));
        // Endpoint-dependent: the guess is the inside port even when it is taken (a wasted
        // prefetch, never a wrong translation: predict takes nothing).
        assert_eq!(s.predict(UDP, (B, 6001), EDM), Some(taken));
        assert_ne!(s.acquire(UDP, (B, 6001), R2, EDM).ok(), Some(taken));
    }

    #[test]
    fn edm_takes_a_port_per_session() {
        let mut s = snat();
        let m1 = s.acquire(TCP, (A, 5000), R1, EDM).unwrap();
        let m2 = s.acquire(TCP, (A, 5000), R2, EDM).unwrap();
        assert_ne!(m1.1, m2.1);
        s.release(TCP, (A, 5000), m1, R1, EDM, false);
        s.release(TCP, (A, 5000), m2, R2, EDM, false);
        assert_eq!(s.ports_in_use().map(|x| x.2).sum::<usize>(), 0);
    }

    #[test]
    fn address_dependent_filtering_admits_contacted_addresses() {
        let mut s = snat();
        let f = Filtering::AddressDependent;
        let m = s.acquire(UDP, (A, 7000), R1, EIM).unwrap();
        assert_eq!(s.inbound(UDP, m, R1, f), Some((A, 7000)));
        assert_eq!(s.inbound(UDP, m, R2, f), None);
        s.release(UDP, (A, 7000), m, R1, EIM, true);
        assert_eq!(s.inbound(UDP, m, R1, f), None);
    }

    #[test]
    fn contacts_are_counted_only_when_asked() {
        let mut s = snat();
        let f = Filtering::AddressDependent;
        s.set_counts_contacts(false);
        let m = s.acquire(UDP, (A, 7000), R1, EIM).unwrap();
        assert_eq!(s.contacts(), 0);
        // Turned on: the owner counts what is open, then new sessions count themselves.
        s.set_counts_contacts(true);
        s.add_contact(UDP, m, R1);
        assert_eq!(s.inbound(UDP, m, R1, f), Some((A, 7000)));
        assert_eq!(s.acquire(UDP, (A, 7000), R2, EIM).unwrap(), m);
        assert_eq!(s.inbound(UDP, m, R2, f), Some((A, 7000)));
        s.release(UDP, (A, 7000), m, R1, EIM, true);
        // Turned off again: counted sessions still give their count back.
        s.set_counts_contacts(false);
        let m3 = s.acquire(UDP, (A, 7000), R1, EIM).unwrap();
        assert_eq!(s.contacts(), 1);
        s.release(UDP, (A, 7000), m, R2, EIM, true);
        s.release(UDP, (A, 7000), m3, R1, EIM, false);
        assert_eq!((s.contacts(), s.mappings()), (0, 0));
    }

    #[test]
    fn forwards_are_never_handed_out() {
        let mut s = snat();
        s.reserve([(TCP, P, 8080)]);
        let m = s.acquire(TCP, (A, 8080), R1, EIM).unwrap();
        assert_ne!(m.1, 8080, "a forward's port is not preserved");
        assert_eq!(
            s.acquire(UDP, (A, 8080), R1, EIM).unwrap().1,
            8080,
            "other protocol is fine"
        );
        // The forward goes: its port comes back.
        s.reserve([]);
        assert_eq!(
            s.acquire(TCP, (Ipv4Addr::new(10, 0, 1, 11), 8080), R1, EIM)
                .unwrap()
                .1,
            8080
        );
    }

    #[test]
    fn forward_added_over_a_live_mapping_then_removed() {
        let mut s = snat();
        let m = s.acquire(TCP, (A, 9000), R1, EIM).unwrap();
        assert_eq!(m.1, 9000);
        s.reserve([(TCP, P, 9000)]); // the mapping still holds it
        s.reserve([]); // gone again before the mapping ended: the mapping keeps it
        let other = s
            .acquire(TCP, (Ipv4Addr::new(10, 0, 1, 12), 9000), R1, EIM)
            .unwrap();
        assert_ne!(other.1, 9000, "still held by the first mapping");
        s.reserve([(TCP, P, 9000)]);
        s.release(TCP, (A, 9000), m, R1, EIM, true); // passes to the reservation
        let third = s
            .acquire(TCP, (Ipv4Addr::new(10, 0, 1, 13), 9000), R1, EIM)
            .unwrap();
        assert_ne!(third.1, 9000, "reserved for the forward");
        s.reserve([]);
        let fourth = s
            .acquire(TCP, (Ipv4Addr::new(10, 0, 1, 14), 9000), R1, EIM)
            .unwrap();
        assert_eq!(fourth.1, 9000, "free again once the forward is gone");
    }

    #[test]
    fn exhaustion_is_counted() {
        let mut s = Snat::new(0, Slices::new(2000, 2001, 1).unwrap(), &[P], 10, 1);
        s.acquire(UDP, (A, 1), R1, EIM).unwrap();
        s.acquire(UDP, (A, 2), R1, EIM).unwrap();
        assert_eq!(s.acquire(UDP, (A, 3), R1, EIM), Err(SnatError::Exhausted));
        assert_eq!(s.exhausted, 1);
        assert_eq!(
            s.acquire(IpProtocol::GRE, (A, 3), R1, EIM),
            Err(SnatError::Protocol)
        );
        let mut none = Snat::new(0, Slices::new(2000, 2001, 1).unwrap(), &[], 10, 1);
        assert_eq!(
            none.acquire(UDP, (A, 3), R1, EIM),
            Err(SnatError::NoAddress)
        );
    }
}

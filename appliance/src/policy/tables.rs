//! The lookup tables of a compiled policy besides the rule sets: port forwards, static 1:1
//! mappings, prefix sets, and port addressing.

use crate::config::Prefix;
use crate::config::{Role, TunnelConfig, VxlanTunnel};
use crate::packet::{EthernetAddress, IpProtocol, Vni};
use hashbrown::{HashMap, HashSet};
use ipnet::Ipv4Net;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where a port forward sends a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Forward {
    /// The inside endpoint the public one is rewritten to (DNAT).
    pub private: SocketAddrV4,
    /// Index of the `[[ingress.forward]]` that made it, for counters and `explain`.
    pub index: usize,
}

/// The port forward table: `(protocol, public address, public port)` to the inside endpoint,
/// and back.
///
/// Ranges are expanded to one entry per port, so a lookup is one hash probe. The reverse map
/// lets a packet from a forwarded inside endpoint find its public endpoint (the owner worker
/// of a DNAT flow is computed from it, DESIGN.md "Ownership"); when several public ports
/// forward to one inside endpoint, the first in the file is the reverse entry.
///
/// A forward's public address may be a SNAT pool address and its port inside
/// `nat.port_range`: the SNAT port allocator must then never hand out a
/// `(protocol, address, port)` that [`Forwards::lookup`] finds.
#[derive(Debug, Clone, Default)]
pub struct Forwards {
    by_public: HashMap<(IpProtocol, Ipv4Addr, u16), Forward>,
    by_private: HashMap<(IpProtocol, Ipv4Addr, u16), SocketAddrV4>,
    addresses: HashSet<Ipv4Addr>,
}

impl Forwards {
    /// Adds a forward of `public` to `private`; the first added for a key stays.
    pub(crate) fn insert(&mut self, proto: IpProtocol, public: SocketAddrV4, forward: Forward) {
        self.by_public
            .entry((proto, *public.ip(), public.port()))
            .or_insert(forward);
        self.by_private
            .entry((proto, *forward.private.ip(), forward.private.port()))
            .or_insert(public);
        self.addresses.insert(*public.ip());
    }

    /// The forward for a new flow to `public:port`, if any.
    #[inline]
    pub fn lookup(&self, proto: IpProtocol, public: Ipv4Addr, port: u16) -> Option<Forward> {
        // Most appliances forward nothing: then no key is hashed.
        if self.by_public.is_empty() {
            return None;
        }
        self.by_public.get(&(proto, public, port)).copied()
    }

    /// The public endpoint that forwards to `private:port`, if any.
    pub fn reverse(&self, proto: IpProtocol, private: Ipv4Addr, port: u16) -> Option<SocketAddrV4> {
        self.by_private.get(&(proto, private, port)).copied()
    }

    /// Every forwarded public endpoint: `(protocol, public address, public port)`.
    pub fn public_ports(&self) -> impl Iterator<Item = (IpProtocol, Ipv4Addr, u16)> + '_ {
        self.by_public.keys().copied()
    }

    /// Whether any forward uses `addr` as its public address.
    #[inline]
    pub fn has_address(&self, addr: Ipv4Addr) -> bool {
        !self.addresses.is_empty() && self.addresses.contains(&addr)
    }

    /// Number of public ports forwarded.
    pub fn len(&self) -> usize {
        self.by_public.len()
    }

    /// Whether there are no forwards.
    pub fn is_empty(&self) -> bool {
        self.by_public.is_empty()
    }
}

/// Static 1:1 NAT: each public address belongs to one inside host and the reverse.
#[derive(Debug, Clone, Default)]
pub struct StaticMaps {
    to_private: HashMap<Ipv4Addr, Ipv4Addr>,
    to_public: HashMap<Ipv4Addr, Ipv4Addr>,
}

impl StaticMaps {
    pub(crate) fn insert(&mut self, public: Ipv4Addr, private: Ipv4Addr) {
        self.to_private.entry(public).or_insert(private);
        self.to_public.entry(private).or_insert(public);
    }

    /// The inside host behind a public address (ingress DNAT).
    #[inline]
    pub fn private_of(&self, public: Ipv4Addr) -> Option<Ipv4Addr> {
        // Most appliances map nothing 1:1: then no key is hashed.
        if self.to_private.is_empty() {
            return None;
        }
        self.to_private.get(&public).copied()
    }

    /// The public address of an inside host (egress SNAT, ports kept).
    #[inline]
    pub fn public_of(&self, private: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.to_public.is_empty() {
            return None;
        }
        self.to_public.get(&private).copied()
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.to_private.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.to_private.is_empty()
    }
}

/// A set of prefixes, merged into sorted disjoint ranges for a binary-search lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixSet {
    prefixes: Vec<Prefix>,
    ranges: Box<[(u32, u32)]>,
}

impl PrefixSet {
    /// The set of addresses in any of `prefixes`.
    pub fn new(prefixes: Vec<Prefix>) -> PrefixSet {
        let mut spans: Vec<(u32, u32)> = prefixes.iter().map(|p| (p.first(), p.last())).collect();
        spans.sort_unstable();
        let mut ranges: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match ranges.last_mut() {
                Some(last) if u64::from(a) <= u64::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => ranges.push((a, b)),
            }
        }
        PrefixSet {
            prefixes,
            ranges: ranges.into_boxed_slice(),
        }
    }

    /// Whether `addr` is in the set. A few ranges (the private prefixes, which the fast path
    /// asks about) are each tested, without a branch; more are searched.
    #[inline]
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        if self.ranges.len() <= 4 {
            return self.ranges.iter().fold(false, |hit, &(first, last)| {
                hit | (a.wrapping_sub(first) <= last - first)
            });
        }
        let i = self.ranges.partition_point(|r| r.1 < a);
        self.ranges.get(i).is_some_and(|r| r.0 <= a)
    }

    /// The prefixes as given.
    pub fn prefixes(&self) -> &[Prefix] {
        &self.prefixes
    }

    /// Whether the set is empty (for a source list: see the owner's doc for what that means).
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// A static ARP entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaticNeighbour {
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Its MAC address.
    pub mac: EthernetAddress,
}

/// A port's layer-3 setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddressing {
    /// The load balancer's tunnel of a `gwlb` port.
    pub tunnel: Option<Tunnel>,
    /// The port's name from the file.
    pub name: String,
    /// The side it faces.
    pub role: Role,
    /// Its address and subnet (`None`: not configured; the port then only forwards).
    pub address: Option<Ipv4Net>,
    /// Next hop for off-link destinations.
    pub gateway: Option<Ipv4Addr>,
    /// Static ARP entries.
    pub neighbours: Vec<StaticNeighbour>,
    /// Every address the appliance answers ARP for on this port (RFC 826): its own, and the
    /// SNAT pool and static-mapping public addresses on its subnet unless `nat.routed`.
    pub arp_addresses: Vec<Ipv4Addr>,
}

/// A `gwlb` port's tunnel, as the pipeline reads it: where tunnel packets arrive, and which
/// tunnel a packet goes back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// GENEVE to UDP `port` (AWS): a packet goes back in the tunnel it came in.
    Geneve {
        /// The UDP port.
        port: u16,
    },
    /// VXLAN (Azure): two tunnels, each a UDP port and a VNI; the internal one carries the
    /// consumer's side (inside), the external one the internet's (outside). A packet goes
    /// back in the other one.
    Vxlan {
        /// The internal tunnel's UDP port and VNI.
        internal: (u16, Vni),
        /// The external tunnel's UDP port and VNI.
        external: (u16, Vni),
    },
}

impl std::fmt::Display for Tunnel {
    /// `geneve udp/6081`, or `vxlan internal udp/10800 vni 800, external udp/10801 vni 801`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tunnel::Geneve { port } => write!(f, "geneve udp/{port}"),
            Tunnel::Vxlan { internal, external } => write!(
                f,
                "vxlan internal udp/{} vni {}, external udp/{} vni {}",
                internal.0,
                internal.1.value(),
                external.0,
                external.1.value()
            ),
        }
    }
}

impl Tunnel {
    /// `geneve` or `vxlan`.
    pub fn kind(&self) -> &'static str {
        match self {
            Tunnel::Geneve { .. } => "geneve",
            Tunnel::Vxlan { .. } => "vxlan",
        }
    }

    /// The tunnel of a checked port's configuration.
    pub fn of(t: &TunnelConfig) -> Tunnel {
        match *t {
            TunnelConfig::Geneve { port } => Tunnel::Geneve { port },
            TunnelConfig::Vxlan { internal, external } => {
                let pair = |v: VxlanTunnel| (v.port, v.vni().unwrap_or(Vni::MAX));
                Tunnel::Vxlan {
                    internal: pair(internal),
                    external: pair(external),
                }
            }
        }
    }
}

impl PortAddressing {
    /// Whether `addr` is on this port's subnet.
    pub fn on_link(&self, addr: Ipv4Addr) -> bool {
        self.address.is_some_and(|n| n.contains(&addr))
    }
}

/// Where to send a packet next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Index of the port to send it out of.
    pub port: usize,
    /// The address whose MAC the frame goes to: the destination itself when on-link, else
    /// the port's gateway.
    pub ip: Ipv4Addr,
}

/// The forwarding decision of [`crate::policy::Policy::next_hop`], compiled with the policy:
/// the connected subnets as (network, mask, port) in port order, and the gateway that private
/// and public destinations leave through.
///
/// That decision is constant between a few boundaries (the first and one past the last address
/// of every subnet and every private range), so it is also compiled into a table of at most
/// [`ROUTE_SLOTS`] intervals: the per-packet route is then one load for a destination whose /8
/// lies in one interval, else a branch-free binary search of five compares. A policy with more
/// intervals (many private prefixes) is routed by the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    /// `(network, netmask, port)` of every port with an address, in port order.
    connected: Box<[(u32, u32, usize)]>,
    /// Off-link private destinations: the first inside or `both` port with a gateway.
    private_gateway: Option<NextHop>,
    /// Off-link public destinations: the first outside or `both` port with a gateway.
    public_gateway: Option<NextHop>,
    /// The private prefixes.
    private: PrefixSet,
    /// The intervals, if they fit.
    table: Option<Box<RouteTable>>,
}

/// Intervals a compiled route table holds at most.
pub const ROUTE_SLOTS: usize = 32;

/// The route of every address of an interval, in 8 bytes (one register): no route; on the
/// subnet of `port`, straight to the destination; or through gateway `ip` on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    ip: u32,
    port: u16,
    kind: u16,
}

impl Route {
    const NONE: u16 = 0;
    const DIRECT: u16 = 1;
    const VIA: u16 = 2;
    /// In [`RouteTable::first`] only: the /8 holds more than one interval, search them.
    const SEARCH: u16 = 3;

    const fn none() -> Route {
        Route {
            ip: 0,
            port: 0,
            kind: Route::NONE,
        }
    }
}

/// The compiled intervals: interval `i` is `starts[i]..starts[i + 1]` (the last one to the end
/// of the address space), `starts[0]` is 0, the starts rise, and unused slots repeat the last
/// interval (start `u32::MAX`), so a search of all the slots finds the right one.
///
/// In front of them, the route of each /8 that lies in one interval (most of the address
/// space: the subnets and private ranges fall in a few /8s), so that most destinations cost
/// one load instead of the search. 2 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RouteTable {
    starts: [u32; ROUTE_SLOTS],
    routes: [Route; ROUTE_SLOTS],
    /// Per /8: its route, or [`Route::SEARCH`].
    first: [Route; 256],
}

impl RouteTable {
    /// The route of `a`: its /8's, else the interval's.
    #[inline(always)]
    fn route(&self, a: u32) -> Route {
        let r = self.first[(a >> 24) as usize];
        if r.kind != Route::SEARCH {
            return r;
        }
        self.search(a)
    }

    /// Fills [`RouteTable::first`] from the intervals: a /8 whose slots, from its first
    /// address's to its last's, all hold one route has that route. (Neighbouring intervals
    /// have different routes; the padding repeats the last.)
    fn index_slash8s(&mut self) {
        for b in 0..self.first.len() {
            let (lo, hi) = ((b as u32) << 24, ((b as u32) << 24) | 0x00ff_ffff);
            let (i, j) = (self.slot(lo), self.slot(hi));
            let route = self.routes[i];
            self.first[b] = if self.routes[i..=j].iter().all(|r| *r == route) {
                route
            } else {
                Route {
                    ip: 0,
                    port: 0,
                    kind: Route::SEARCH,
                }
            };
        }
    }

    /// The route of the interval holding `a`.
    #[inline(always)]
    fn search(&self, a: u32) -> Route {
        self.routes[self.slot(a)]
    }

    /// The slot of the interval holding `a`: the last slot whose start is at most `a`.
    #[inline(always)]
    fn slot(&self, a: u32) -> usize {
        let mut i = 0;
        let mut half = ROUTE_SLOTS / 2;
        while half > 0 {
            // A conditional move, not a branch: destinations are as random as traffic. (The
            // index is below ROUTE_SLOTS; the modulo says so without a bounds check.)
            i += usize::from(self.starts[(i + half) % ROUTE_SLOTS] <= a) * half;
            half /= 2;
        }
        i
    }
}

impl Default for Routes {
    fn default() -> Routes {
        Routes::new(&[], &PrefixSet::default())
    }
}

impl Routes {
    /// The routes of `ports` (in DPDK port order), `private` being the policy's private
    /// prefixes.
    pub fn new(ports: &[PortAddressing], private: &PrefixSet) -> Routes {
        // A gwlb port sends back only what came in its tunnel: nothing is routed out of it.
        let connected = ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.role != Role::Gwlb)
            .filter_map(|(port, p)| {
                p.address
                    .map(|n| (u32::from(n.network()), u32::from(n.netmask()), port))
            })
            .collect();
        let gateway = |wanted: Role| {
            ports
                .iter()
                .enumerate()
                .filter(|(_, p)| p.role == wanted || p.role == Role::Both)
                .find_map(|(port, p)| p.gateway.map(|ip| NextHop { port, ip }))
        };
        let mut routes = Routes {
            connected,
            private_gateway: gateway(Role::Inside),
            public_gateway: gateway(Role::Outside),
            private: private.clone(),
            table: None,
        };
        routes.table = routes.compile();
        routes
    }

    /// The interval table, if the boundaries fit in [`ROUTE_SLOTS`].
    fn compile(&self) -> Option<Box<RouteTable>> {
        let spans = self
            .connected
            .iter()
            .map(|&(net, mask, _)| (net, net | !mask))
            .chain(self.private.ranges.iter().copied());
        let mut bounds = vec![0u32];
        for (first, last) in spans {
            bounds.push(first);
            if let Some(next) = last.checked_add(1) {
                bounds.push(next);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        // One interval per run of boundaries with the same route.
        let mut table = RouteTable {
            starts: [u32::MAX; ROUTE_SLOTS],
            routes: [Route::none(); ROUTE_SLOTS],
            first: [Route::none(); 256],
        };
        let mut n = 0;
        for b in bounds {
            let route = self.route_of(b);
            if n > 0 && table.routes[n - 1] == route {
                continue;
            }
            if n == ROUTE_SLOTS {
                return None;
            }
            table.starts[n] = b;
            table.routes[n] = route;
            n += 1;
        }
        let last = table.routes[n - 1];
        table.routes[n..].fill(last);
        table.index_slash8s();
        Some(Box::new(table))
    }

    /// The definition: the first port whose subnet holds `a`, else the gateway for private or
    /// public destinations. (Port indices are below 256, the configuration's limit.)
    fn route_of(&self, a: u32) -> Route {
        if let Some(&(_, _, port)) = self
            .connected
            .iter()
            .find(|&&(net, mask, _)| a & mask == net)
        {
            return Route {
                ip: 0,
                port: port as u16,
                kind: Route::DIRECT,
            };
        }
        // Most setups have one gateway for both: no need to ask which kind `a` is.
        let hop = if self.private_gateway == self.public_gateway
            || !self.private.contains(Ipv4Addr::from(a))
        {
            self.public_gateway
        } else {
            self.private_gateway
        };
        hop.map_or(Route::none(), |h| Route {
            ip: u32::from(h.ip),
            port: h.port as u16,
            kind: Route::VIA,
        })
    }

    /// Where to send a packet for `dst`: out of the first port whose subnet holds it, straight
    /// to it; else to the gateway for private or public destinations. `None`: no route.
    #[inline(always)]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let a = u32::from(dst);
        let route = match &self.table {
            Some(t) => t.route(a),
            None => self.route_of(a),
        };
        let port = usize::from(route.port);
        match route.kind {
            Route::DIRECT => Some(NextHop { port, ip: dst }),
            Route::VIA => Some(NextHop {
                port,
                ip: Ipv4Addr::from(route.ip),
            }),
            _ => None,
        }
    }

    /// Whether the routes were compiled into an interval table (else each packet is routed
    /// by the definition).
    pub fn compiled(&self) -> bool {
        self.table.is_some()
    }
}

/// A health probe the appliance answers (`[local.health_probe]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProbe {
    /// TCP port on the appliance's port addresses.
    pub port: u16,
    /// Who may probe; empty: anyone.
    pub sources: PrefixSet,
    /// `Some(path)`: an HTTP probe answering `GET path`; `None`: a TCP probe.
    pub http_path: Option<Box<[u8]>>,
    /// Seconds to drain before a stop asked by a signal.
    pub drain_on_stop: u32,
}

impl HealthProbe {
    /// Whether `src` may probe.
    pub fn admits(&self, src: Ipv4Addr) -> bool {
        self.sources.is_empty() || self.sources.contains(src)
    }
}

/// Services the appliance answers on its own addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalServices {
    /// Answer ICMP echo requests to the port addresses.
    pub icmp_echo: bool,
    /// The health probe, if configured.
    pub health_probe: Option<HealthProbe>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FromConfigText, Prefix};

    fn p(s: &str) -> Prefix {
        Prefix::from_config_text(s).unwrap()
    }

    #[test]
    fn prefix_set_merges_and_finds() {
        let set = PrefixSet::new(vec![
            p("10.0.0.0/8"),
            p("10.1.0.0/16"),
            p("11.0.0.0/8"),
            p("192.168.1.7"),
        ]);
        for (a, inside) in [
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("11.255.255.255", true),
            ("12.0.0.0", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("255.255.255.255", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(set.contains(a.parse().unwrap()), inside, "{a}");
        }
        assert_eq!(set.ranges.len(), 2);
        let all = PrefixSet::new(vec![Prefix::ANY]);
        assert!(all.contains(Ipv4Addr::BROADCAST));
        assert!(!PrefixSet::default().contains(Ipv4Addr::UNSPECIFIED));
    }
}

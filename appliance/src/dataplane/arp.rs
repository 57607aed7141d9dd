//! Neighbours, on the control thread: what workers learned from ARP, the static entries of
//! the configuration, ARP requests for next hops workers wait for, gratuitous ARP at start
//! and when addresses change. Every change is published to the workers as a new immutable
//! [`Neighbours`] table (DESIGN.md, "Neighbours").

use crate::packet::{build, EthernetAddress, Vlans};
use crate::pipeline::{Neighbours, Note};
use crate::policy::Policy;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use dpdk_sys::{Mbuf, Mempool};
use hashbrown::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Wait between ARP requests for one address.
const RETRY: Duration = Duration::from_secs(1);
/// Requests sent for an address before giving up until traffic asks again.
const TRIES: u32 = 5;
/// Gateways are re-resolved this often, so a replaced router is noticed.
const REFRESH: Duration = Duration::from_secs(60);

/// The control thread's neighbour manager.
pub struct NeighbourManager {
    published: Arc<ArcSwap<Neighbours>>,
    learned: HashMap<(u8, Ipv4Addr), EthernetAddress>,
    statics: HashMap<(u8, Ipv4Addr), EthernetAddress>,
    pending: HashMap<(u8, Ipv4Addr), (Instant, u32)>,
    generation: u64,
    policy_generation: Option<u64>,
    last_refresh: Instant,
    dirty: bool,
    /// ARP requests and announcements sent, and sends that failed (no mbuf, tx full).
    pub sent: u64,
    /// Sends that failed.
    pub send_failures: u64,
}

impl std::fmt::Debug for NeighbourManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (learned, generation) = (self.learned.len(), self.generation);
        write!(
            f,
            "NeighbourManager {{ learned: {learned}, generation: {generation}, .. }}"
        )
    }
}

impl NeighbourManager {
    /// A manager publishing into `published`, which gets the static entries of `policy` at
    /// once (before workers start, so their first packets find them).
    pub fn new(published: Arc<ArcSwap<Neighbours>>, policy: &Policy) -> Self {
        let mut m = NeighbourManager {
            published,
            learned: HashMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            generation: 0,
            policy_generation: None,
            last_refresh: Instant::now(),
            dirty: true,
            sent: 0,
            send_failures: 0,
        };
        m.statics = statics(policy);
        m.publish();
        m
    }

    fn publish(&mut self) {
        self.dirty = false;
        self.generation += 1;
        let entries = self
            .learned
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(self.statics.iter().map(|(k, v)| (*k, *v)));
        self.published
            .store(Arc::new(Neighbours::with(self.generation, entries)));
    }

    /// Takes a worker's note.
    pub fn note(&mut self, n: Note, now: Instant, out: &mut Sender<'_, '_>) {
        match n {
            Note::Learned { port, ip, mac } => {
                if self.learned.get(&(port, ip)) != Some(&mac) {
                    debug!(port, %ip, mac = %mac, "neighbour learned");
                    self.learned.insert((port, ip), mac);
                    self.pending.remove(&(port, ip));
                    self.dirty = true;
                }
            }
            Note::Resolve { port, ip } => {
                if !self.learned.contains_key(&(port, ip))
                    && !self.statics.contains_key(&(port, ip))
                {
                    self.request(port, ip, now, out);
                }
            }
        }
    }

    fn request(&mut self, port: u8, ip: Ipv4Addr, now: Instant, out: &mut Sender<'_, '_>) {
        let entry = self.pending.entry((port, ip)).or_insert((now - RETRY, 0));
        if now.duration_since(entry.0) < RETRY || entry.1 >= TRIES {
            return;
        }
        *entry = (now, entry.1 + 1);
        if out.arp_request(port, ip) {
            self.sent += 1;
        } else {
            self.send_failures += 1;
        }
    }

    /// Periodic work: follow policy changes (static entries, announcements, gateways),
    /// retry pending requests, refresh gateways, publish changes.
    pub fn tick(&mut self, policy: &Policy, now: Instant, out: &mut Sender<'_, '_>) {
        if self.policy_generation != Some(policy.generation) {
            self.policy_generation = Some(policy.generation);
            self.statics = statics(policy);
            self.dirty = true;
            for (i, p) in policy.ports.iter().enumerate() {
                let mut announce: Vec<Ipv4Addr> = p.address.map(|n| n.addr()).into_iter().collect();
                announce.extend(p.arp_addresses.iter().copied());
                announce.dedup();
                for ip in announce {
                    if out.gratuitous(i as u8, ip) {
                        self.sent += 1;
                        info!(port = %p.name, %ip, "gratuitous ARP sent");
                    } else {
                        self.send_failures += 1;
                    }
                }
            }
            self.resolve_gateways(policy, now, out);
        }
        if now.duration_since(self.last_refresh) >= REFRESH {
            self.last_refresh = now;
            for (port, ip) in self.gateways(policy) {
                self.pending.remove(&(port, ip));
            }
            self.resolve_gateways(policy, now, out);
        }
        let retry: Vec<(u8, Ipv4Addr)> = self
            .pending
            .iter()
            .filter(|(k, (at, tries))| {
                *tries < TRIES && now.duration_since(*at) >= RETRY && !self.learned.contains_key(*k)
            })
            .map(|(k, _)| *k)
            .collect();
        for (port, ip) in retry {
            self.request(port, ip, now, out);
        }
        self.pending
            .retain(|k, (_, tries)| *tries < TRIES && !self.learned.contains_key(k));
        if self.dirty {
            self.publish();
        }
    }

    fn gateways(&self, policy: &Policy) -> Vec<(u8, Ipv4Addr)> {
        policy
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.gateway.map(|g| (i as u8, g)))
            .collect()
    }

    fn resolve_gateways(&mut self, policy: &Policy, now: Instant, out: &mut Sender<'_, '_>) {
        for (port, ip) in self.gateways(policy) {
            if !self.statics.contains_key(&(port, ip)) {
                self.request(port, ip, now, out);
            }
        }
    }

    /// Entries known now (learned and static).
    pub fn len(&self) -> usize {
        self.learned.len() + self.statics.len()
    }

    /// Whether none are known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The static neighbours of the configuration, by (port, address).
fn statics(policy: &Policy) -> HashMap<(u8, Ipv4Addr), EthernetAddress> {
    policy
        .ports
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.neighbours
                .iter()
                .map(move |n| ((i as u8, n.ip), EthernetAddress(n.mac.0)))
        })
        .collect()
}

/// Sends the control thread's own frames. They go through worker 0, which owns a tx queue on
/// every port: devices with a single tx queue (AF_PACKET by default, pcap) need no extra one,
/// and no queue is ever shared between threads.
#[derive(Debug)]
pub struct Sender<'a, 'eal> {
    /// Frames for worker 0 to send: (port index, frame).
    pub outbox: &'a ArrayQueue<(u8, Mbuf<'eal>)>,
    /// Where frames come from.
    pub pool: &'a Mempool<'eal>,
    /// Each port's MAC.
    pub macs: &'a [EthernetAddress],
    /// Each port's own address, to send ARP from.
    pub addresses: Vec<Option<Ipv4Addr>>,
}

impl Sender<'_, '_> {
    fn send(
        &mut self,
        port: u8,
        build: impl FnOnce(&mut [u8]) -> Result<usize, crate::packet::Error>,
    ) -> bool {
        if usize::from(port) >= self.macs.len() {
            return false;
        }
        let Some(mut m) = self.pool.alloc() else {
            warn!("no mbuf for an ARP frame");
            return false;
        };
        let Some(buf) = m.append(64) else {
            return false;
        };
        match build(buf) {
            Ok(len) => {
                if !m.set_len(len as u16) {
                    return false;
                }
                self.outbox.push((port, m)).is_ok()
            }
            Err(_) => false,
        }
    }

    /// Broadcasts an ARP request for `ip` on `port`, from the port's address.
    pub fn arp_request(&mut self, port: u8, ip: Ipv4Addr) -> bool {
        let p = usize::from(port);
        let (Some(&mac), Some(Some(from))) = (self.macs.get(p), self.addresses.get(p)) else {
            return false;
        };
        let from = *from;
        self.send(port, |buf| {
            build::arp_request(buf, mac, Vlans::None, from, ip)
        })
    }

    /// Announces `ip` at the port's MAC (RFC 5227 ARP announcement).
    pub fn gratuitous(&mut self, port: u8, ip: Ipv4Addr) -> bool {
        let Some(&mac) = self.macs.get(usize::from(port)) else {
            return false;
        };
        self.send(port, |buf| build::gratuitous_arp(buf, mac, Vlans::None, ip))
    }
}

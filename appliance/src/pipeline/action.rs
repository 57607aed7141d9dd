//! What the pipeline decides for a packet ([`Disposition`]), and what it tells the control
//! thread ([`Note`]).

use super::reason::Reason;
use crate::packet::EthernetAddress;
use std::net::Ipv4Addr;

/// What the worker does with a packet once the shard has processed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Send it out of this port (rewritten in place, or turned into a reply).
    Forward(u8),
    /// Another worker owns its session: hand it over.
    Handoff(u16),
    /// Drop it; the shard has counted the reason.
    Drop(Reason),
    /// Used up here (an ARP reply that taught us a neighbour): free it, not a drop.
    Consumed,
}

/// Something the control thread should know: a neighbour learned from ARP, or a next hop
/// to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// `ip` is at `mac` on `port`.
    Learned {
        /// Port index.
        port: u8,
        /// The neighbour's address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// Traffic waits for the MAC of `ip` on `port`: send an ARP request.
    Resolve {
        /// Port index.
        port: u8,
        /// The next hop.
        ip: Ipv4Addr,
    },
}

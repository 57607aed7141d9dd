//! Per-burst packet processing: classify -> session -> policy -> NAT -> forward (DESIGN.md,
//! "What it decides for every packet", "Worker loop").
//!
//! A [`Shard`] is one worker's state and logic. It works on byte buffers ([`PacketBuf`]),
//! never on DPDK, so everything here is tested without EAL; the data path hands it mbufs.

pub mod buf;
pub mod counters;
mod dump;
pub mod env;
mod local;
pub mod owner;
pub mod reason;
mod related;
mod shard;
mod slow;

#[cfg(test)]
mod tests;

pub use buf::{PacketBuf, VecBuf};
pub use counters::ShardCounters;
pub use env::{Env, NeighbourCache, Neighbours};
pub use owner::Sharding;
pub use reason::{Discard, Reason};
pub use shard::{Disposition, Note, Shard, ShardConfig};

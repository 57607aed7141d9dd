//! Per-burst packet processing: classify -> session -> policy -> NAT -> forward (DESIGN.md,
//! "What it decides for every packet", "Worker loop").
//!
//! A [`Shard`] is one worker's state; each stage is a file of its own, an `impl` block of
//! the shard, and [`burst`] runs them over a burst:
//!
//! | stage | file | what it does |
//! |---|---|---|
//! | 1 | [`classify`] | parse and validate, check the frame is ours, decide the owner, build the key (a `Meta`, in [`meta`]); the side a new flow comes from |
//! | 2 | [`burst`] | the staged session lookup, overlapped with stage 1 |
//! | 3 | [`fast`] | a packet of a session: checks, count, TCP tracking, [`translate`](crate::packet::translate::translate) |
//! | 3 | [`slow`] | a packet without a session: class, policy, the NAT's decisions, a new session |
//! | 3 | [`local`] | what the appliance answers: ARP, echo, the health probe, time exceeded; tagged frames |
//! | 3 | [`related`] | ICMP errors about sessions |
//! | 3 | [`tunnel`] | a `gwlb` port: the tunnel packet taken apart (stage 1), a new flow in the tunnel judged, ICMP errors in it |
//! | end | [`forward`] | MSS clamp, route, next hop, MACs; or back into the tunnel |
//!
//! What comes out is a [`Disposition`] per packet (forward, hand off, drop with a
//! [`Reason`], consumed) and [`Note`]s for the control thread. The [`Class`] of each packet
//! is told to the shard's [`Trace`] as it is decided (`explain` shows it; the data path's
//! [`NoTrace`] compiles it away). [`sessions`] is what a shard shows the control thread.
//!
//! The files a stage shares: [`shard`] (the state, and what every stage uses of it),
//! [`meta`], [`class`] (the packet classes and the tracer), [`reason`] and [`counters`],
//! [`action`], [`env`](mod@env) (the world a burst reads), [`owner`] (which worker owns a flow). A
//! stage file imports these; between stages imports go one way only ([`slow`] and [`local`]
//! ask [`classify`] which side a packet comes from, [`related`] the fast path whether a
//! packet arrives on its session's side), and `appliance/tests/architecture.rs` checks they form no circle.
//!
//! Nothing here touches DPDK: a packet is a [`PacketBuf`], an mbuf in the data path and a
//! [`VecBuf`] in tests, fuzzing and `explain`.

pub mod action;
pub mod buf;
pub mod burst;
pub mod class;
pub mod classify;
pub mod counters;
pub mod env;
pub mod fast;
pub mod forward;
pub mod local;
pub mod meta;
pub mod owner;
pub mod reason;
pub mod related;
pub mod sessions;
pub mod shard;
pub mod slow;
pub mod tunnel;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;

pub use action::{Disposition, Note};
pub use buf::{PacketBuf, VecBuf};
pub use class::{Class, NoTrace, Rules, Trace, Translation};
pub use counters::{ShardCounters, TunnelCounters};
pub use env::{Ctx, Env, Health, NeighbourCache, Neighbours};
pub use owner::Sharding;
pub use reason::{Discard, Reason};
pub use sessions::{FilterError, SessionFilter, SessionInfo, SessionState};
pub use shard::{Shard, ShardConfig};

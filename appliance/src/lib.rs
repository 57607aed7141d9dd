//! The appliance: a DPDK stateful NAT firewall for the edge of a private cloud network.
//!
//! The modules are layers, each importing only those below it (`docs/architecture.md`, checked
//! by `tests/architecture.rs`): [`sys`] < [`packet`] < [`flow`] < [`config`] < [`policy`] <
//! [`nat`] < [`pipeline`] < [`explain`], [`control`] < [`dataplane`]. Only [`dataplane`] talks
//! to DPDK; everything below it works on byte buffers and is tested without EAL. `unsafe` is
//! denied everywhere but in [`sys`], the CPU primitives at the bottom. `testing` holds the
//! fixtures the tests share.

#![deny(unsafe_code)]

pub mod config;
pub mod control;
pub mod dataplane;
pub mod explain;
pub mod flow;
pub mod nat;
pub mod packet;
pub mod pipeline;
pub mod policy;
#[allow(unsafe_code)]
pub mod sys;
#[doc(hidden)]
pub mod testing;

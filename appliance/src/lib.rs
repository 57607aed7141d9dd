//! The appliance: a DPDK stateful NAT firewall for the edge of a private cloud network.
//!
//! The modules mirror `DESIGN.md`. Only [`dataplane`] talks to DPDK; `packet`, `flow`, `nat`,
//! `policy` and `pipeline` work on byte buffers and are tested without EAL. `unsafe` is denied
//! everywhere but in [`sys`], the CPU primitives at the bottom.

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

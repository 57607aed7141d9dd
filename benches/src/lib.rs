//! Shared helpers for the benches (traffic generators, memory accounting).

pub mod workload;

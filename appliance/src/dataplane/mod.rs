//! DPDK ports, worker loop, tx buffering: the only DPDK user, and with `dpdk-sys` the only
//! place `unsafe` is allowed.

pub mod mem;

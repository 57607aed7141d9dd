//! DPDK 22.11 bindings (bindgen + a C shim for `static inline` functions) and a thin safe layer.
//!
//! [`ffi`] is the raw surface. The rest is safe: [`Eal`] proves initialisation and is borrowed
//! by every DPDK object ([`Mempool`], [`Port`], [`Mbuf`]) so none outlives `rte_eal_cleanup`;
//! queues are owned handles used by one lcore at a time; failures are [`Error`]s carrying
//! DPDK's own message.

pub mod ffi {
    //! Raw bindgen output over the DPDK headers and the C shim.
    #![allow(
        non_upper_case_globals,
        unsafe_op_in_unsafe_fn,
        non_camel_case_types,
        non_snake_case,
        dead_code,
        missing_docs,
        missing_debug_implementations,
        clippy::all,
        clippy::pedantic,
        clippy::undocumented_unsafe_blocks,
        clippy::ptr_as_ptr,
        clippy::cast_lossless
    )]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

mod eal;
mod error;
mod mbuf;
mod port;
mod ring;
mod usage;

pub use eal::{tsc, Eal, LcoreId, Scope, Worker};
pub use error::{strerror, Error, Result};
pub use mbuf::{Burst, Mbuf, Mempool};
pub use port::{
    attach, stats, Link, Port, PortId, PortInfo, PortSettings, PortStats, QueueId, RxQueue, TxQueue,
};
pub use ring::{ring_port, Ring};

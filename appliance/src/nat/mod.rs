//! Network address translation: public port slices and allocation per worker, and the
//! per-worker SNAT state (mappings, filtering).

pub mod ports;
pub mod snat;

pub use ports::{PortPool, Slices};
pub use snat::{Snat, SnatError};

//! Network address translation: the public port slices and their allocation per worker
//! ([`ports`]), the per-worker SNAT state of mappings and filtering ([`snat`]), and the NAT's
//! decisions about flows and sessions ([`decide`]), which the pipeline asks and obeys.

pub mod decide;
pub mod ports;
pub mod snat;

pub use decide::{Behind, Endpoint, Hold, Taken, Way};
pub use ports::{PortPool, Slices};
pub use snat::{Snat, SnatError};

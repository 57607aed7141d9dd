//! The control thread's parts: the control socket and its protocol, reloads, the
//! Prometheus endpoint, and the types the data path hands them.
//!
//! - [`Control`]: the control thread's state; the data path calls [`Control::tick`] from
//!   its main-lcore loop with a [`DataplaneView`];
//! - [`Snapshot`]: every counter, as the data path reports it;
//! - [`reload`]: what a reload may change; [`metrics`]: the Prometheus names;
//! - [`protocol`], [`socket`]: the control socket; [`summary`]: a policy in words;
//!   [`render`]: the CLI's tables.

#![warn(missing_docs)]

mod controller;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod render;
pub mod snapshot;
pub mod socket;
pub mod summary;

pub use controller::{
    Control, ControlError, DataplaneView, ReloadReport, DEFAULT_SESSIONS_LIMIT, MAX_SESSIONS_LIMIT,
    PUBLISH_INTERVAL, WATCH_INTERVAL,
};
pub use metrics::{Exporter, MetricsError};
pub use reload::{restart_only_changes, ReloadError, RestartChange};
pub use snapshot::{
    NatPortUsage, NatSnapshot, PortSnapshot, ReloadCounts, SessionCounts, Snapshot, TunnelSnapshot,
    WorkerSnapshot,
};
pub use summary::PolicySummary;

#[cfg(test)]
mod tests;

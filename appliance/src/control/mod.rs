//! The control thread's parts: the control socket and its protocol.

pub mod protocol;
pub mod socket;

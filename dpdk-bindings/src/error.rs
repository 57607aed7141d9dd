//! Errors from DPDK calls: the call that failed and DPDK's own message for the error code.

use crate::ffi;
use std::ffi::CStr;

/// Why a DPDK operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A DPDK call returned an error; `message` is `rte_strerror` of `code`.
    #[error("{call}: {message} (DPDK error {code})")]
    Dpdk {
        /// What was attempted, e.g. `rte_eth_dev_configure(port 0)`.
        call: String,
        /// The positive errno-style code.
        code: i32,
        /// DPDK's description of the code.
        message: String,
    },
    /// `Eal::init` was called a second time: EAL initialises once per process.
    #[error("EAL is already initialised in this process (it can be initialised only once)")]
    AlreadyInitialised,
    /// An argument cannot be handed to DPDK (a NUL byte in a string, a value out of range).
    #[error("{0}")]
    InvalidArgument(String),
    /// A closure launched on a worker lcore panicked.
    #[error("the worker on lcore {0} panicked")]
    WorkerPanicked(u32),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for `call` with an explicit code (negative or positive).
    pub fn from_code(call: impl Into<String>, code: i32) -> Self {
        let code = code.unsigned_abs().min(i32::MAX as u32) as i32;
        Error::Dpdk {
            call: call.into(),
            code,
            message: strerror(code),
        }
    }

    /// An error for `call` from the calling thread's `rte_errno`.
    pub fn from_errno(call: impl Into<String>) -> Self {
        // SAFETY: reads the calling thread's rte_errno, always valid after EAL or before it
        // (a plain thread-local int).
        let code = unsafe { ffi::shim_rte_errno() };
        Self::from_code(call, code)
    }

    /// The errno-style code, when DPDK gave one.
    pub fn code(&self) -> Option<i32> {
        match self {
            Error::Dpdk { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// DPDK's message for an error code (`rte_strerror`), which also knows DPDK's own codes
/// beyond the C library's.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
    // string for any input; we copy it out before the next call can overwrite it.
    let ptr = unsafe { ffi::rte_strerror(code) };
    if ptr.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated, valid until the next rte_strerror on this thread.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Turns a DPDK return value (negative errno on failure) into a `Result`.
pub(crate) fn check(call: impl FnOnce() -> String, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(Error::from_code(call(), rc))
    } else {
        Ok(rc)
    }
}

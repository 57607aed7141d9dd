//! The Environment Abstraction Layer: process-wide DPDK initialisation, lcores, and launching
//! work on them.

use crate::error::{Error, Result};
use crate::ffi;
use std::cell::RefCell;
use std::ffi::{c_int, c_void, CString};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A DPDK logical core id (`rte_lcore_id()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LcoreId(pub u32);

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Set by the first `Eal::init`, successful or not: EAL cannot be initialised twice in a
/// process, and a failed init leaves state behind that a retry would trip over.
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that EAL is initialised. Ports, pools and mbufs borrow it, so none outlives
/// `rte_eal_cleanup`, which runs when it is dropped.
#[derive(Debug)]
pub struct Eal {
    /// EAL is per process and its cleanup must run on the thread that initialised it.
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL with `args` (EAL options, without the program name). Once per process:
    /// a second call returns [`Error::AlreadyInitialised`].
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("appliance").expect("static name has no NUL"));
        for a in args {
            owned.push(CString::new(a.as_ref()).map_err(|_| {
                Error::InvalidArgument(format!("EAL argument {:?} contains a NUL byte", a.as_ref()))
            })?);
        }
        // EAL keeps pointers into argv (it saves the arguments for telemetry and may permute
        // them), so the strings and the array live for the rest of the process.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            owned
                .into_iter()
                .map(|s| s.into_raw())
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as c_int;
        // EAL answers a refused argument with its whole usage text on stdout: left out.
        let rc = crate::usage::without_eal_usage(|| {
            // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all
            // leaked so they outlive EAL; this is the only rte_eal_init call of the process
            // (guarded above).
            unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) }
        });
        if rc < 0 {
            return Err(Error::from_errno("rte_eal_init"));
        }
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// The lcore the calling thread runs on, or `None` for a thread EAL does not know.
    pub fn current_lcore() -> Option<LcoreId> {
        // SAFETY: reads a thread-local; valid on any thread.
        let id = unsafe { ffi::shim_rte_lcore_id() };
        (id != u32::MAX).then_some(LcoreId(id))
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (we hold `Eal`).
        LcoreId(unsafe { ffi::rte_get_main_lcore() })
    }

    /// Every enabled lcore but the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts at the first lcore.
        loop {
            // SAFETY: EAL is initialised; any `i` is accepted and RTE_MAX_LCORE is returned
            // once past the last enabled lcore.
            i = unsafe { ffi::rte_get_next_lcore(i, 1, 0) };
            if i >= ffi::RTE_MAX_LCORE {
                return out;
            }
            out.push(LcoreId(i));
        }
    }

    /// The NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: LcoreId) -> u32 {
        // SAFETY: EAL is initialised; out-of-range ids return SOCKET_ID_ANY-like values.
        unsafe { ffi::rte_lcore_to_socket_id(lcore.0) }
    }

    /// Runs `f` with a [`Scope`] to launch closures on worker lcores; every launched closure
    /// has returned when `scope` returns (also when `f` panics), so they may borrow from the
    /// caller, as with `std::thread::scope`.
    pub fn scope<'env, F, T>(&'env self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        let scope = Scope {
            eal: self,
            running: RefCell::new(Vec::new()),
            _scope: PhantomData,
        };
        let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
        // Every launched job must end before what it borrows can, even when `f` panicked.
        for lcore in scope.running.borrow_mut().drain(..) {
            // SAFETY: waits for an lcore this scope launched; returns at once if joined.
            unsafe {
                ffi::rte_eal_wait_lcore(lcore.0);
            }
        }
        match result {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Eal {
    /// EAL's runtime folder for this process (`/var/run/dpdk/<file-prefix>` for root).
    pub fn runtime_dir(&self) -> Option<std::path::PathBuf> {
        // SAFETY: EAL is initialised; the result is a static NUL-terminated string or NULL.
        let p = unsafe { ffi::rte_eal_get_runtime_dir() };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-null NUL-terminated string owned by EAL, copied out at once.
        let s = unsafe { std::ffi::CStr::from_ptr(p) };
        Some(std::path::PathBuf::from(s.to_string_lossy().into_owned()))
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let runtime_dir = self.runtime_dir();
        // SAFETY: nothing borrows `Eal` any more (ports, pools, mbufs and scopes all hold
        // `&Eal`), so no DPDK object is used after cleanup.
        unsafe {
            ffi::rte_eal_cleanup();
        }
        // EAL creates its runtime folder even in in-memory mode and never removes it; take
        // it away when it is empty (a folder with files belongs to a shared-config run).
        if let Some(dir) = runtime_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Time-stamp counter reads, for cycle accounting on the fast path.
pub mod tsc {
    use crate::ffi;

    /// The CPU's time-stamp counter.
    #[inline]
    pub fn now() -> u64 {
        // The instruction inline (what rte_rdtsc is), not a call into the C shim: the worker
        // loop reads the clock every iteration.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: rdtsc has no preconditions; every x86-64 CPU has it.
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: rte_rdtsc has no preconditions.
        unsafe {
            ffi::shim_rte_rdtsc()
        }
    }

    /// TSC ticks per second, as EAL measured at init (0 before init).
    pub fn hz() -> u64 {
        // SAFETY: reads a value EAL computed at init; harmless before it.
        unsafe { ffi::rte_get_tsc_hz() }
    }

    /// A pause hint for spin loops.
    #[inline]
    pub fn pause() {
        // SAFETY: `pause` has no preconditions.
        unsafe { ffi::shim_rte_pause() }
    }
}

type Job<'scope> = Box<dyn FnOnce() -> i32 + Send + 'scope>;

struct Launch<'scope> {
    job: Option<Job<'scope>>,
    panicked: Arc<AtomicBool>,
}

/// Runs on the worker lcore: takes the job out of the launch record and runs it, turning a
/// panic into a flag instead of unwinding into C.
extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Launch>` leaked by `Scope::spawn` for this one call; we take
    // ownership back exactly once.
    let mut launch: Box<Launch<'static>> = unsafe { Box::from_raw(arg.cast::<Launch<'static>>()) };
    let Some(job) = launch.job.take() else {
        return -1;
    };
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(rc) => rc,
        Err(_) => {
            launch.panicked.store(true, Ordering::SeqCst);
            -1
        }
    }
}

/// Launches closures on worker lcores; see [`Eal::scope`].
#[derive(Debug)]
pub struct Scope<'scope, 'env: 'scope> {
    eal: &'env Eal,
    running: RefCell<Vec<LcoreId>>,
    _scope: PhantomData<&'scope mut &'scope ()>,
}

/// A closure running on a worker lcore; `join` waits for it.
#[derive(Debug)]
pub struct Worker<'scope> {
    lcore: LcoreId,
    panicked: Arc<AtomicBool>,
    _scope: PhantomData<&'scope ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Runs `job` on `lcore` (a worker lcore that is idle). Its return value is the lcore's
    /// exit status.
    pub fn spawn<F>(&'scope self, lcore: LcoreId, job: F) -> Result<Worker<'scope>>
    where
        F: FnOnce() -> i32 + Send + 'scope,
    {
        if lcore == self.eal.main_lcore() {
            return Err(Error::InvalidArgument(format!(
                "lcore {lcore} is the main lcore; launch work on a worker lcore"
            )));
        }
        let panicked = Arc::new(AtomicBool::new(false));
        let launch: Box<Launch<'scope>> = Box::new(Launch {
            job: Some(Box::new(job)),
            panicked: panicked.clone(),
        });
        let arg = Box::into_raw(launch).cast::<c_void>();
        // SAFETY: the trampoline takes `arg` back exactly once. The job may borrow data of
        // lifetime 'scope: `Scope`'s Drop waits for this lcore before 'scope ends, so the job
        // never outlives what it borrows even though the FFI erases the lifetime.
        let rc = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
        if rc < 0 {
            // SAFETY: launch failed, so the trampoline will not run: we still own `arg`.
            drop(unsafe { Box::from_raw(arg.cast::<Launch<'scope>>()) });
            return Err(Error::from_code(
                format!("rte_eal_remote_launch(lcore {lcore})"),
                rc,
            ));
        }
        self.running.borrow_mut().push(lcore);
        Ok(Worker {
            lcore,
            panicked,
            _scope: PhantomData,
        })
    }
}

impl Worker<'_> {
    /// The lcore it runs on.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits for the closure to return and gives its status.
    pub fn join(self) -> Result<i32> {
        // SAFETY: the lcore was launched by our scope; waiting on a finished lcore returns at
        // once, so a second wait from the scope's Drop is harmless.
        let rc = unsafe { ffi::rte_eal_wait_lcore(self.lcore.0) };
        if self.panicked.load(Ordering::SeqCst) {
            Err(Error::WorkerPanicked(self.lcore.0))
        } else {
            Ok(rc)
        }
    }
}

//! Lock-free rings of mbufs (`rte_ring`), and ethdev ports made of rings (`net_ring` with
//! rings we own): the links of the whole-data-path benchmark, where a generator lcore feeds a
//! port's rx ring and drains another's tx ring.

use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::ffi;
use crate::mbuf::{Burst, Mempool};
use crate::port::PortId;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A multi-producer, multi-consumer ring of mbufs. Freed when dropped; it must outlive any
/// port made of it (the borrow of a [`RingPort`] keeps it so).
#[derive(Debug)]
pub struct Ring<'eal> {
    raw: NonNull<ffi::rte_ring>,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: rings created without the SP/SC flags are safe for concurrent producers and
// consumers on any threads.
unsafe impl Send for Ring<'_> {}
// SAFETY: as above.
unsafe impl Sync for Ring<'_> {}

impl<'eal> Ring<'eal> {
    /// A ring of `size` slots (a power of two; it holds `size - 1` mbufs).
    pub fn new(_eal: &'eal Eal, name: &str, size: u32) -> Result<Self> {
        let c = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("ring name {name:?} contains NUL")))?;
        // SAFETY: EAL is initialised; the name is copied by DPDK.
        let raw = unsafe { ffi::rte_ring_create(c.as_ptr(), size, ffi::SOCKET_ID_ANY, 0) };
        NonNull::new(raw)
            .map(|raw| Ring {
                raw,
                _eal: PhantomData,
            })
            .ok_or_else(|| Error::from_errno(format!("rte_ring_create({name}, {size})")))
    }

    /// Moves as many mbufs of the burst as fit into the ring (front first); returns how many.
    #[inline]
    pub fn enqueue<const N: usize>(&self, burst: &mut Burst<'eal, N>) -> usize {
        let n = burst.len();
        if n == 0 {
            return 0;
        }
        // SAFETY: the first n slots of the burst hold owned mbufs; the ring takes ownership
        // of the first `done`, which `consume_front` forgets.
        let done = unsafe {
            ffi::shim_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                burst.raw_ptr().cast::<*mut std::ffi::c_void>(),
                n as u32,
            )
        } as usize;
        burst.consume_front(done);
        done
    }

    /// Moves up to `max` mbufs from the ring into the burst; returns how many.
    #[inline]
    pub fn dequeue<const N: usize>(&self, burst: &mut Burst<'eal, N>, max: usize) -> usize {
        let (ptr, room) = burst.spare_raw();
        let want = room.min(max) as u32;
        if want == 0 {
            return 0;
        }
        // SAFETY: `ptr` has `want` free slots; the ring hands over ownership of what it
        // writes there, which `commit` then owns.
        let got = unsafe {
            ffi::shim_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                ptr.cast::<*mut std::ffi::c_void>(),
                want,
            )
        } as usize;
        burst.commit(got);
        got
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        // SAFETY: valid ring.
        unsafe { ffi::shim_rte_ring_count(self.raw.as_ptr()) }
    }

    /// Frees every mbuf left in the ring.
    pub fn drain(&self) {
        let mut b: Burst<'eal, 64> = Burst::new();
        while self.dequeue(&mut b, 64) > 0 {
            b.free_all();
        }
    }
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        self.drain();
        // SAFETY: nothing else refers to the ring: ports made of it borrow it.
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// Creates an ethdev port `name` whose rx queues read `rx` and tx queues write `tx` (the
/// `net_ring` driver over rings we own). Its port id is returned.
pub fn ring_port(_eal: &Eal, name: &str, rx: &[&Ring<'_>], tx: &[&Ring<'_>]) -> Result<PortId> {
    let c = CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("port name {name:?} contains NUL")))?;
    let rxp: Vec<*mut ffi::rte_ring> = rx.iter().map(|r| r.raw.as_ptr()).collect();
    let txp: Vec<*mut ffi::rte_ring> = tx.iter().map(|r| r.raw.as_ptr()).collect();
    // SAFETY: arrays of valid rings of the given lengths; DPDK copies the pointers and the
    // name. The rings outlive the port as long as the caller keeps them (documented).
    let rc = unsafe {
        ffi::rte_eth_from_rings(
            c.as_ptr(),
            rxp.as_ptr(),
            rxp.len() as u32,
            txp.as_ptr(),
            txp.len() as u32,
            0,
        )
    };
    if rc < 0 {
        return Err(Error::from_errno(format!("rte_eth_from_rings({name})")));
    }
    Ok(PortId(rc as u16))
}

impl<'eal, const N: usize> Burst<'eal, N> {
    /// Fills the free room with up to `max` fresh mbufs from `pool` in one call; returns how
    /// many (0 when the pool cannot give them all).
    pub fn alloc_from(&mut self, pool: &Mempool<'eal>, max: usize) -> usize {
        let (ptr, room) = self.spare_raw();
        let n = room.min(max);
        if n == 0 {
            return 0;
        }
        // SAFETY: `ptr` has `n` free slots; on success every one holds an owned mbuf.
        let rc = unsafe { ffi::shim_rte_pktmbuf_alloc_bulk(pool.as_ptr(), ptr, n as u32) };
        if rc != 0 {
            return 0;
        }
        self.commit(n);
        n
    }
}

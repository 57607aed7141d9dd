//! Packet buffer pools and owned packet buffers.

use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::ffi;
use std::ffi::CString;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Pools live until EAL cleanup: DPDK
/// has no safe way to free a pool while a port's rx queue may still refer to it.
#[derive(Debug, Clone, Copy)]
pub struct Mempool<'eal> {
    raw: NonNull<ffi::rte_mempool>,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe: any thread may get from and
// put into them (lcores use their own cache, other threads go to the ring directly).
unsafe impl Send for Mempool<'_> {}
// SAFETY: as above; a `Mempool` exposes no unsynchronised interior state.
unsafe impl Sync for Mempool<'_> {}

impl<'eal> Mempool<'eal> {
    /// Creates a packet-buffer pool of `count` mbufs with a per-lcore cache of `cache` and
    /// `data_room` bytes of data room each (headroom included), on NUMA `socket` (`None`:
    /// any).
    pub fn new(
        _eal: &'eal Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("pool name {name:?} contains NUL")))?;
        let socket = socket.map_or(ffi::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: EAL is initialised (we borrow `Eal`); the name is a valid C string that
        // DPDK copies.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), count, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool {
                raw,
                _eal: PhantomData,
            })
            .ok_or_else(|| {
                Error::from_errno(format!(
                    "rte_pktmbuf_pool_create({name}, {count} mbufs of {data_room} bytes)"
                ))
            })
    }

    /// Takes one mbuf from the pool, reset and empty; `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf<'eal>> {
        // SAFETY: the pool is valid for 'eal.
        let m = unsafe { ffi::shim_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(|raw| Mbuf {
            raw,
            _eal: PhantomData,
        })
    }

    /// Mbufs currently in the pool (not handed out); approximate while other lcores work.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for 'eal.
        unsafe { ffi::shim_rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

/// One packet buffer, owned: dropping it returns it to its pool.
///
/// Only single-segment packets are given out by the ports (no scatter), so the bytes are one
/// contiguous slice.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf<'eal> {
    raw: NonNull<ffi::rte_mbuf>,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: an mbuf is owned by exactly one `Mbuf`; handing it to another lcore (a handoff
// ring) moves that ownership, and freeing from any thread is allowed by the mempool.
unsafe impl Send for Mbuf<'_> {}

impl<'eal> Mbuf<'eal> {
    /// The packet bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer, which we
        // own; the slice borrows self so the buffer outlives it.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr, m.data_off, m.data_len);
        // SAFETY: as in `data`, and we hold the only reference to the mbuf.
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Whether the packet is one segment (the only kind the data path handles).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The NIC's RSS hash, meaningful when the port hashes (see `rss_valid`).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reading a plain u32 of a union whose every bit pattern is valid.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }

    /// Whether the NIC filled the RSS hash.
    #[inline]
    pub fn rss_valid(&self) -> bool {
        self.raw().ol_flags & u64::from(ffi::RTE_MBUF_F_RX_RSS_HASH) != 0
    }

    /// Grows the packet by `len` bytes at the end and returns them; `None` if the buffer has
    /// no room.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the tailroom.
        let p = unsafe { ffi::shim_rte_pktmbuf_append(self.raw.as_ptr(), len) };
        // SAFETY: non-null means `len` bytes at `p` are inside our buffer.
        NonNull::new(p).map(|p| unsafe {
            std::slice::from_raw_parts_mut(p.as_ptr().cast::<u8>(), usize::from(len))
        })
    }

    /// Shortens the packet by `len` bytes at the end; false if it is shorter than that.
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_trim checks the length.
        unsafe { ffi::shim_rte_pktmbuf_trim(self.raw.as_ptr(), len) == 0 }
    }

    /// Sets the packet to `len` bytes (single segment), growing or shrinking it; false if
    /// the buffer cannot hold `len` bytes.
    pub fn set_len(&mut self, len: u16) -> bool {
        let cur = self.raw().data_len;
        if len >= cur {
            self.append(len - cur).is_some()
        } else {
            self.trim(cur - len)
        }
    }

    #[inline]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: we own a valid mbuf for 'eal.
        unsafe { self.raw.as_ref() }
    }
}

impl Drop for Mbuf<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { ffi::shim_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// A fixed-capacity array of mbufs for burst rx/tx without allocation: the storage is the
/// pointer array DPDK fills and drains. Dropping it frees the mbufs it still holds.
#[derive(Debug)]
pub struct Burst<'eal, const N: usize> {
    bufs: [MaybeUninit<Mbuf<'eal>>; N],
    len: usize,
}

impl<'eal, const N: usize> Default for Burst<'eal, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'eal, const N: usize> Burst<'eal, N> {
    /// An empty burst.
    pub const fn new() -> Self {
        Burst {
            bufs: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it is full.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Room left.
    #[inline]
    pub fn room(&self) -> usize {
        N - self.len
    }

    /// Adds an mbuf; gives it back when full.
    #[inline]
    pub fn push(&mut self, m: Mbuf<'eal>) -> std::result::Result<(), Mbuf<'eal>> {
        if self.len == N {
            return Err(m);
        }
        self.bufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf<'eal>> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside the live range, so it is
        // read exactly once.
        Some(unsafe { self.bufs[self.len].assume_init_read() })
    }

    /// The mbufs held.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf<'eal>] {
        // SAFETY: the first `len` slots are initialised; MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast::<Mbuf<'eal>>(), self.len) }
    }

    /// The mbufs held, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf<'eal>] {
        // SAFETY: as in `as_slice`, with exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast::<Mbuf<'eal>>(), self.len)
        }
    }

    /// Frees every mbuf held and returns how many.
    pub fn free_all(&mut self) -> usize {
        let n = self.len;
        if n > 0 {
            self.len = 0;
            // SAFETY: the first n slots hold owned mbufs (Mbuf is a transparent pointer),
            // marked dead above so each is freed exactly once.
            unsafe {
                ffi::rte_pktmbuf_free_bulk(
                    self.bufs.as_mut_ptr().cast::<*mut ffi::rte_mbuf>(),
                    n as u32,
                );
            }
        }
        n
    }

    /// Takes every mbuf out, in order, leaving the burst empty.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf<'eal>> + '_ {
        let n = std::mem::replace(&mut self.len, 0);
        // SAFETY: slots 0..n hold owned mbufs no longer counted by `len`; each is read once.
        self.bufs[..n]
            .iter()
            .map(|slot| unsafe { slot.assume_init_read() })
    }

    /// The raw pointer array to fill, with the number of free slots, for rx.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        // SAFETY: `len <= N`, so the offset stays inside the array.
        let p = unsafe { self.bufs.as_mut_ptr().add(self.len) };
        (p.cast::<*mut ffi::rte_mbuf>(), N - self.len)
    }

    /// Marks `n` more slots (just written by DPDK) as owned.
    pub(crate) fn commit(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// The raw pointer array of the held mbufs, for tx.
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut ffi::rte_mbuf {
        self.bufs.as_mut_ptr().cast::<*mut ffi::rte_mbuf>()
    }

    /// Forgets the first `n` mbufs (DPDK took them) and moves the rest to the front.
    pub(crate) fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        if n == 0 {
            return;
        }
        let rest = self.len - n;
        let base = self.bufs.as_mut_ptr();
        // SAFETY: slots n..len are initialised and inside the array; `ptr::copy` handles the
        // overlap. Afterwards slots 0..rest own them and the old tail is outside `len`.
        unsafe { std::ptr::copy(base.add(n), base, rest) };
        self.len = rest;
    }
}

impl<const N: usize> Drop for Burst<'_, N> {
    fn drop(&mut self) {
        self.free_all();
    }
}

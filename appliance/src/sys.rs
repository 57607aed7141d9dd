//! The CPU and operating-system primitives the layers above need and safe Rust does not give:
//! cache prefetch, a SIMD compare, transparent huge pages, the SIGPIPE action. The lowest
//! layer, and the one module of the crate where `unsafe` is allowed (DPDK's own unsafe code
//! lives in `dpdk-sys`); each block says why it is sound.

/// Hints the CPU to bring the cache line holding `value` into all cache levels.
///
/// A hint only: it never faults, whatever the address, and is a no-op on other architectures.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is part of SSE, which every x86-64 CPU has; a prefetch never faults
    // and does not dereference the pointer in the language's sense.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Bit `i` set when `lanes[i] == value`: eight 16-bit compares in one SSE2 compare and a
/// mask extraction (about six instructions), where the compiler's own vectorization of the
/// plain loop takes several times that. Plain code on other architectures.
#[inline(always)]
pub fn eq_mask_u16x8(lanes: &[u16; 8], value: u16) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of every x86-64 CPU; the load reads exactly the 16 bytes of
    // `lanes` (an unaligned load, so any alignment is fine).
    unsafe {
        use core::arch::x86_64::{
            __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
            _mm_set1_epi16,
        };
        let v = _mm_loadu_si128(lanes.as_ptr().cast::<__m128i>());
        let eq = _mm_cmpeq_epi16(v, _mm_set1_epi16(value as i16));
        // Saturating 16 -> 8 bit pack keeps 0 and -1; one mask bit per lane, twice.
        (_mm_movemask_epi8(_mm_packs_epi16(eq, eq)) as u32) & 0xff
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0u32;
        for (i, &l) in lanes.iter().enumerate() {
            m |= u32::from(l == value) << i;
        }
        m
    }
}

/// Asks the kernel to back `slice` with transparent huge pages (`madvise(MADV_HUGEPAGE)`), so
/// random accesses over a large table cost fewer TLB misses. Best effort: returns whether the
/// kernel accepted the advice (it refuses when THP is `never`); the memory works either way.
pub fn advise_huge_pages<T>(slice: &mut [T]) -> bool {
    let len = std::mem::size_of_val(slice);
    if len == 0 {
        return false;
    }
    // madvise needs a page-aligned start: advise the whole pages inside the slice.
    let page = 4096usize;
    let start = slice.as_mut_ptr() as usize;
    let aligned = (start + page - 1) & !(page - 1);
    let end = (start + len) & !(page - 1);
    if end <= aligned {
        return false;
    }
    // SAFETY: [aligned, end) lies inside `slice`, which we borrow mutably, and MADV_HUGEPAGE
    // changes only how the kernel backs those pages, never their contents.
    let rc = unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            end - aligned,
            libc::MADV_HUGEPAGE,
        )
    };
    rc == 0
}

/// Restores the default SIGPIPE action (terminate quietly), as command-line tools expect when
/// their output is piped into `head`. Rust ignores SIGPIPE, which turns a closed pipe into a
/// panic in `println!`. Only for the client commands: the long-running appliance keeps
/// ignoring it, so a control client that hangs up cannot kill it.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler code; it is done
    // at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_mask_matches_each_lane() {
        let lanes = [0u16, 1, 0x8000, 0xffff, 1, 0x7fff, 0, 0xffff];
        for v in [0u16, 1, 0x7fff, 0x8000, 0xffff, 2] {
            let want = (0..8).fold(0, |m, i| m | u32::from(lanes[i] == v) << i);
            assert_eq!(eq_mask_u16x8(&lanes, v), want, "{v:#x}");
        }
    }

    #[test]
    fn advise_large_and_tiny_slices() {
        let mut big = vec![0u64; 1 << 20];
        // THP may be off on a test machine: the call must not fail or corrupt anything.
        let _ = advise_huge_pages(&mut big);
        assert!(big.iter().all(|&x| x == 0));
        let mut tiny = [0u8; 8];
        assert!(!advise_huge_pages(&mut tiny));
        let mut empty: [u8; 0] = [];
        assert!(!advise_huge_pages(&mut empty));
    }
}

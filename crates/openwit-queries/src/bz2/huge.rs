//! The BWT vector's memory, on transparent huge pages where the system offers them.
//!
//! The inverse BWT jumps at random through a block's `tt` (up to 900k `u32`, 3.6 MB). With 4 KiB
//! pages a block spans ~900 pages, a few blocks chased together more than the second-level TLB
//! holds, so nearly every step of the chain also walks the page tables. On 2 MiB pages the same
//! blocks are a handful of TLB entries. Linux gives an anonymous mapping huge pages when asked
//! with `madvise(MADV_HUGEPAGE)` (the default `transparent_hugepage=madvise` setting) over a
//! 2 MiB-aligned range; elsewhere, or when the kernel refuses, the buffer is ordinary memory and
//! only slower.

/// Huge page size (x86-64 and aarch64 with 4 KiB base pages).
const HUGE: usize = 2 << 20;
/// `u32`s in one huge page.
const HUGE_U32: usize = HUGE / 4;

/// A reusable `u32` buffer whose used part starts on a huge page boundary.
#[derive(Default)]
pub(crate) struct TtBuf {
    buf: Vec<u32>,
    /// Index in `buf` where the aligned part starts.
    off: usize,
    /// Length of the aligned part.
    cap: usize,
}

impl TtBuf {
    /// The first `n` entries (contents unspecified: left from an earlier block, or zero).
    pub(crate) fn get_mut(&mut self, n: usize) -> &mut [u32] {
        if n > self.cap {
            self.grow(n);
        }
        &mut self.buf[self.off..self.off + n]
    }

    /// The first `n` entries (`n` at most what the last [`TtBuf::get_mut`] asked for).
    pub(crate) fn get(&self, n: usize) -> &[u32] {
        &self.buf[self.off..self.off + n]
    }

    fn grow(&mut self, n: usize) {
        let cap = n.div_ceil(HUGE_U32) * HUGE_U32;
        // Room to move the start to a 2 MiB boundary. The capacity is reserved before any page
        // is touched, so the advice can apply before the first fault.
        let mut buf: Vec<u32> = Vec::with_capacity(cap + HUGE_U32);
        let addr = buf.as_ptr() as usize;
        let off = (addr.next_multiple_of(HUGE) - addr) / 4;
        advise_huge(addr + off * 4, cap * 4);
        buf.resize(off + cap, 0);
        *self = TtBuf { buf, off, cap };
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(addr: usize, len: usize) {
    // SAFETY: `[addr, addr + len)` lies inside the capacity of a live `Vec` this module owns
    // (see `grow`); MADV_HUGEPAGE only changes how the kernel backs those pages, not their
    // contents or validity. A failure (no THP support) leaves ordinary pages.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    if rc != 0 {
        tracing::trace!("madvise(MADV_HUGEPAGE) refused; the BWT vector uses small pages");
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_addr: usize, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_reused() {
        let mut t = TtBuf::default();
        let s = t.get_mut(900_000);
        assert_eq!(s.len(), 900_000);
        assert_eq!(s.as_ptr() as usize % HUGE, 0);
        s[899_999] = 7;
        let p = s.as_ptr();
        // A smaller block reuses the buffer; a larger one than the capacity moves it.
        assert_eq!(t.get_mut(100).as_ptr(), p);
        assert_eq!(t.get(900_000)[899_999], 7);
        let big = t.get_mut(2 * HUGE_U32 + 1);
        assert_eq!(big.len(), 2 * HUGE_U32 + 1);
        assert_eq!(big.as_ptr() as usize % HUGE, 0);
    }
}

//! Buffers on transparent huge pages where the system offers them: the bzip2 decoder's BWT
//! vectors and the interning table (`crate::vocab`), both read at random.
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

/// A fixed-length buffer of `T` whose start lies on a huge page boundary (where `T`'s size
/// divides the huge page size; otherwise an ordinary buffer).
pub(crate) struct HugeVec<T> {
    buf: Vec<T>,
    /// Index in `buf` where the aligned part starts.
    off: usize,
    len: usize,
}

impl<T> Default for HugeVec<T> {
    fn default() -> Self {
        HugeVec {
            buf: Vec::new(),
            off: 0,
            len: 0,
        }
    }
}

impl<T: Copy + Default> HugeVec<T> {
    /// `n` elements, each `T::default()`.
    pub(crate) fn new(n: usize) -> Self {
        let size = std::mem::size_of::<T>().max(1);
        let per_page = HUGE / size;
        if n == 0 || !HUGE.is_multiple_of(size) {
            return HugeVec {
                buf: vec![T::default(); n],
                off: 0,
                len: n,
            };
        }
        // Room to move the start to a 2 MiB boundary. The capacity is reserved before any page
        // is touched, so the advice can apply before the first fault.
        let cap = n.div_ceil(per_page) * per_page;
        let mut buf: Vec<T> = Vec::with_capacity(cap + per_page);
        let addr = buf.as_ptr() as usize;
        let gap = addr.next_multiple_of(HUGE) - addr;
        let off = if gap.is_multiple_of(size) {
            gap / size
        } else {
            0
        };
        advise_huge(addr + off * size, cap * size);
        buf.resize(off + n, T::default());
        HugeVec { buf, off, len: n }
    }

    /// Bytes held.
    pub(crate) fn memory(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<T>()
    }
}

impl<T> std::ops::Deref for HugeVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl<T> std::ops::DerefMut for HugeVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// A reusable `u32` buffer on huge pages (a block's BWT vector).
#[derive(Default)]
pub(crate) struct TtBuf(HugeVec<u32>);

impl TtBuf {
    /// The first `n` entries (contents unspecified: left from an earlier block, or zero).
    pub(crate) fn get_mut(&mut self, n: usize) -> &mut [u32] {
        if n > self.0.len() {
            // Whole huge pages: a later, slightly larger block reuses the buffer.
            let per_page = HUGE / 4;
            self.0 = HugeVec::new(n.div_ceil(per_page) * per_page);
        }
        &mut self.0[..n]
    }

    /// The first `n` entries (`n` at most what the last [`TtBuf::get_mut`] asked for).
    pub(crate) fn get(&self, n: usize) -> &[u32] {
        &self.0[..n]
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
        tracing::trace!("madvise(MADV_HUGEPAGE) refused; the buffer uses small pages");
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
        let big = t.get_mut(HUGE / 2 + 1);
        assert_eq!(big.len(), HUGE / 2 + 1);
        assert_eq!(big.as_ptr() as usize % HUGE, 0);
        // Elements larger than a byte, and a length that is no whole number of pages.
        #[derive(Clone, Copy, Default)]
        #[repr(align(32))]
        struct Wide([u64; 4]);
        let w = HugeVec::<Wide>::new(100_000);
        assert_eq!(w.len(), 100_000);
        assert_eq!(w.as_ptr() as usize % HUGE, 0);
        assert!(w.iter().all(|x| x.0 == [0; 4]));
        assert!(HugeVec::<u8>::new(0).is_empty());
    }
}

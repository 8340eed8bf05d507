//! `openwit-mem`: memory for tables read at random, shared by the stages that have them (the
//! queries stage's interning table and bzip2 BWT vectors, curate's token trie).
//!
//! - [`HugeVec`]: a fixed-length buffer on transparent huge pages where the system offers them.
//!   A table read at random on 4 KiB pages misses the TLB on nearly every lookup; on 2 MiB pages
//!   the same table is a handful of TLB entries. Linux gives an anonymous mapping huge pages when
//!   asked with `madvise(MADV_HUGEPAGE)` (the default `transparent_hugepage=madvise` setting) over
//!   a 2 MiB-aligned range; elsewhere, or when the kernel refuses, the buffer is ordinary memory
//!   and only slower.
//! - [`huge_vec`]: an ordinary `Vec` advised the same way where whole huge pages lie inside it.
//! - [`prefetch`]: a hint to bring a cache line in before it is read, so that independent lookups
//!   overlap their misses.

/// Huge page size (x86-64 and aarch64 with 4 KiB base pages).
pub const HUGE: usize = 2 << 20;

/// A fixed-length buffer of `T` whose start lies on a huge page boundary (where `T`'s size
/// divides the huge page size; otherwise an ordinary buffer).
pub struct HugeVec<T> {
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
    pub fn new(n: usize) -> Self {
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
    pub fn memory(&self) -> usize {
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

/// A vector of `n` default values whose memory the kernel is asked to back with huge pages where
/// whole 2 MiB pages lie inside it (its start stays where the allocator put it, unlike
/// [`HugeVec`]): for tables that are a plain `Vec` (curate's token trie, whose two tables starting
/// on the same 2 MiB boundary would share cache sets).
pub fn huge_vec<T: Default + Clone>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    let start = v.as_ptr() as usize;
    let (a, b) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
    if bytes >= HUGE && a < b {
        // Before the first touch, so the advice applies to the first faults.
        advise_huge(a, b - a);
    }
    v.resize(n, T::default());
    v
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge(addr: usize, len: usize) {
    // SAFETY: `[addr, addr + len)` lies inside the capacity of a live `Vec` this module owns
    // (see `HugeVec::new` and `huge_vec`); MADV_HUGEPAGE only changes how the kernel backs those pages, not their
    // contents or validity. A failure (no THP support) leaves ordinary pages.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    if rc != 0 {
        tracing::trace!("madvise(MADV_HUGEPAGE) refused; the buffer uses small pages");
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_addr: usize, _len: usize) {}

/// A prefetch hint for the cache line of `p` (x86-64; elsewhere nothing).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(p: &T) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has; a prefetch does not read
    // or write memory as the program sees it (any address is allowed, and this one is valid).
    unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast()) }
}

/// A prefetch hint for the cache line of `p` (x86-64; elsewhere nothing).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn prefetch<T>(_p: &T) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_on_a_huge_page_and_zeroed() {
        let v = HugeVec::<u32>::new(900_000);
        assert_eq!(v.len(), 900_000);
        assert_eq!(v.as_ptr() as usize % HUGE, 0);
        assert!(v.memory() >= 900_000 * 4);
        // Elements larger than a byte, and a length that is no whole number of pages.
        #[derive(Clone, Copy, Default)]
        #[repr(align(32))]
        struct Wide([u64; 4]);
        let w = HugeVec::<Wide>::new(100_000);
        assert_eq!(w.len(), 100_000);
        assert_eq!(w.as_ptr() as usize % HUGE, 0);
        assert!(w.iter().all(|x| x.0 == [0; 4]));
        assert!(HugeVec::<u8>::new(0).is_empty());
        // Elements whose size does not divide the page: an ordinary buffer of the same length.
        let odd = HugeVec::<[u8; 3]>::new(10);
        assert_eq!(odd.len(), 10);
        prefetch(&odd[9]);
        let v = huge_vec::<u64>(1 << 20);
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&x| x == 0));
    }
}

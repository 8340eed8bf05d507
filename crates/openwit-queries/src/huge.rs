//! The bzip2 decoder's BWT vectors on transparent huge pages (`openwit_mem::HugeVec`), read at
//! random.
//!
//! The inverse BWT jumps at random through a block's `tt` (up to 900k `u32`, 3.6 MB). With 4 KiB
//! pages a block spans ~900 pages, a few blocks chased together more than the second-level TLB
//! holds, so nearly every step of the chain also walks the page tables. On 2 MiB pages the same
//! blocks are a handful of TLB entries. Linux gives an anonymous mapping huge pages when asked
//! with `madvise(MADV_HUGEPAGE)` (the default `transparent_hugepage=madvise` setting) over a
//! 2 MiB-aligned range; elsewhere, or when the kernel refuses, the buffer is ordinary memory and
//! only slower.

use openwit_mem::{HUGE, HugeVec};

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
    }
}

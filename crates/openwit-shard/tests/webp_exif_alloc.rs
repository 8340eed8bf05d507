//! The WebP that `openwit-fetch`'s fuzz target found (`openwit-fetch/tests/data/fuzz/`: a 309-byte
//! file whose `EXIF` chunks declare about 3 GiB, which image-webp allocates when asked for the
//! orientation) read by what the trainer, `eval` and the overlap analysis decode with: no
//! allocation more than a small multiple of the file.
#![allow(unsafe_code)] // a GlobalAlloc wrapper around the system allocator, for this one check

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards its arguments unchanged to the system allocator, which upholds
// GlobalAlloc's contract; the only addition is an atomic maximum of the requested sizes.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's guarantees for this method are those System needs.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's guarantees for this method are those System needs.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for this method are those System needs.
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's guarantees for this method are those System needs.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Largest = Largest;

#[test]
fn a_webp_exif_chunk_size_is_not_allocated_before_it_is_read() {
    let b = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../openwit-fetch/tests/data/fuzz/webp-exif-chunk-3gib.webp"),
    )
    .unwrap();
    assert_eq!(&b[8..12], b"WEBP");
    let reads: [(&str, &dyn Fn(&[u8]) -> bool); 4] = [
        ("decode", &|b| openwit_shard::rgb::decode(b).is_ok()),
        ("decode_oriented", &|b| {
            openwit_shard::rgb::decode_oriented(b).is_ok()
        }),
        ("decode_unoriented", &|b| {
            openwit_shard::rgb::decode_unoriented(b).is_ok()
        }),
        ("phash_of_bytes", &|b| {
            openwit_shard::overlap::phash_of_bytes(b).is_some()
        }),
    ];
    for (name, read) in reads {
        LARGEST.store(0, Ordering::Relaxed);
        let ok = read(&b);
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest < 64 << 20,
            "{name}: largest allocation {largest} bytes for a {}-byte file (decoded: {ok})",
            b.len()
        );
    }
}

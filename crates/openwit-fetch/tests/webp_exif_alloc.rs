//! Found by `fuzz/fuzz_targets/image_decode` (minimized input in `tests/data/fuzz/`): a 309-byte
//! WebP whose `EXIF` chunks declare about 3 GiB made image-webp allocate that much when the
//! orientation was asked of it. Processing it, and reading it with `openwit-shard`'s decoders
//! (the trainer's, `eval`'s and the perceptual hash's), must not allocate more than a small multiple
//! of the file: a counting allocator records the largest single allocation.
#![allow(unsafe_code)] // a GlobalAlloc wrapper around the system allocator, for this one check

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use openwit_fetch::imaging::{self, ImageOptions};

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
            .join("tests/data/fuzz/webp-exif-chunk-3gib.webp"),
    )
    .unwrap();
    assert_eq!(&b[8..12], b"WEBP");
    // the fuzz target's options
    let o = ImageOptions {
        image_size: 64,
        max_pixels: 4_000_000,
        max_dimension: 8_192,
        ..Default::default()
    };
    LARGEST.store(0, Ordering::Relaxed);
    let r = imaging::process(&b, &o);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 64 << 20,
        "largest allocation {largest} bytes for a {}-byte file ({:?})",
        b.len(),
        r.as_ref()
            .map(|p| (p.width, p.height))
            .map_err(|e| e.reason)
    );

    // The shared decoders the trainer, `eval` and the overlap analysis read pictures with.
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

//! `rgb::decode` and `rgb::decode_oriented` on arbitrary bytes as an image file: no panic, the
//! two agree, PIL's refusals hold, and the RGB picture has the decoded size (`picture_check.rs`,
//! also run on every seed by `tests/real_pictures.rs`). Seeds: the real images of
//! `crates/openwit-fetch/fuzz/seeds/image_decode`.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "picture_check.rs"]
mod picture_check;

fuzz_target!(|data: &[u8]| picture_check::check(data));

//! The checks of the `picture` fuzz target, also run by `tests/real_pictures.rs` on every seed
//! (stable toolchain, no libFuzzer): `rgb::decode` and `rgb::decode_oriented` (what the trainer,
//! `eval` and the perceptual hash read pictures with) on arbitrary bytes must not panic, must
//! agree on whether the bytes are a picture, must refuse what PIL refuses (a JPEG without its end
//! marker, more than PIL's pixel limit), and must give a picture whose RGB on white has its size.

use openwit_shard::rgb::{
    PIL_MAX_PIXELS, decode, decode_oriented, jpeg_is_truncated, rgb_on_white,
};

pub fn check(data: &[u8]) {
    let plain = decode(data);
    let oriented = decode_oriented(data);
    assert_eq!(
        plain.is_ok(),
        oriented.is_ok(),
        "decode and decode_oriented disagree: {:?} / {:?}",
        plain.as_ref().err(),
        oriented.as_ref().err()
    );
    let (Ok(plain), Ok(oriented)) = (plain, oriented) else {
        return;
    };
    if data.starts_with(&[0xFF, 0xD8]) {
        assert!(!jpeg_is_truncated(data), "a truncated JPEG decoded");
    }
    let (w, h) = (plain.width(), plain.height());
    assert!(w as u64 * h as u64 <= PIL_MAX_PIXELS, "{w}x{h} decoded");
    // An orientation turns the picture a quarter or not: the same pixels either way.
    let (ow, oh) = (oriented.width(), oriented.height());
    assert!(
        (ow, oh) == (w, h) || (ow, oh) == (h, w),
        "{w}x{h} oriented as {ow}x{oh}"
    );
    let rgb = rgb_on_white(plain);
    assert_eq!(rgb.dimensions(), (w, h));
    assert_eq!(rgb.as_raw().len(), w as usize * h as usize * 3);
}

//! The checks of the `picture` fuzz target, also run by `tests/real_pictures.rs` on every seed
//! (stable toolchain, no libFuzzer): `rgb::decode`, `rgb::decode_oriented` and
//! `rgb::decode_unoriented` (what the trainer, `eval` and the perceptual hash read pictures with)
//! and `overlap::phash_of_bytes` on arbitrary bytes must not panic, must agree on whether the
//! bytes are a picture, must refuse what PIL refuses (a JPEG without its end marker, more than
//! PIL's pixel limit), and must give a picture whose RGB on white has its size; the picture
//! `decode_unoriented` gives is `decode`'s, and its orientation applied gives
//! `decode_oriented`'s size.

use openwit_shard::overlap::phash_of_bytes;
use openwit_shard::rgb::{
    PIL_MAX_PIXELS, decode, decode_oriented, decode_unoriented, jpeg_is_truncated, rgb_on_white,
};

pub fn check(data: &[u8]) {
    let plain = decode(data);
    let oriented = decode_oriented(data);
    let unoriented = decode_unoriented(data);
    let hash = phash_of_bytes(data);
    assert_eq!(
        plain.is_ok(),
        oriented.is_ok(),
        "decode and decode_oriented disagree: {:?} / {:?}",
        plain.as_ref().err(),
        oriented.as_ref().err()
    );
    assert_eq!(
        plain.is_ok(),
        unoriented.is_ok(),
        "decode and decode_unoriented disagree: {:?} / {:?}",
        plain.as_ref().err(),
        unoriented.as_ref().err()
    );
    assert_eq!(
        plain.is_ok(),
        hash.is_some(),
        "a picture without a hash, or the reverse"
    );
    let (Ok(plain), Ok(oriented), Ok((mut turned, orientation))) = (plain, oriented, unoriented)
    else {
        return;
    };
    assert_eq!(
        (turned.width(), turned.height(), turned.color()),
        (plain.width(), plain.height(), plain.color()),
        "decode_unoriented's picture is not decode's"
    );
    turned.apply_orientation(orientation);
    assert_eq!(
        (turned.width(), turned.height()),
        (oriented.width(), oriented.height()),
        "the orientation decode_unoriented gives is not the one decode_oriented applies"
    );
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

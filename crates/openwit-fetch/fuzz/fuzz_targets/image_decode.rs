//! Image header sniffing and decoding on arbitrary bytes: `imaging::sniff`, `imaging::probe`
//! (also on prefixes), `imaging::decode_cost` and `imaging::process` (decode, orient, resize,
//! phash, encode) with a 4-megapixel bomb limit so that hostile headers are refused, not decoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use openwit_fetch::imaging::{self, ImageOptions, Sniffed};

fuzz_target!(|data: &[u8]| {
    let _ = imaging::sniff(data);
    let header = imaging::probe(data);
    // A prefix of the bytes is either not enough to read the header, or gives the same one.
    for n in [16usize, 64, 512] {
        if n < data.len()
            && let Some(h) = imaging::probe(&data[..n])
        {
            assert_eq!(Some(h), header, "the first {n} bytes");
        }
    }
    let mut o = ImageOptions::default();
    o.image_size = 64;
    o.max_pixels = 4_000_000;
    o.max_dimension = 8_192;
    let _ = imaging::decode_cost(data, &o);
    if let Ok(p) = imaging::process(data, &o) {
        assert!(p.width >= 1 && p.height >= 1 && !p.bytes.is_empty());
        // A decoded image has the size its header says (EXIF may swap the sides).
        if let Some(h) = header
            && matches!(h.format, Sniffed::Jpeg | Sniffed::Png | Sniffed::Webp)
        {
            let (w, ht) = (p.original_width, p.original_height);
            assert!(
                (w, ht) == (h.width, h.height) || (ht, w) == (h.width, h.height),
                "decoded {w}x{ht}, header {h:?}"
            );
        }
    }
});

//! Pictures as the trainer, `eval` and the overlap analysis read them: decoded as OpenCLIP's
//! PIL loader accepts them ([`decode`]), then as RGB the way the shards hold them, transparency
//! composited on white ([`rgb_on_white`]). `download` composites what it stores; the trainer and
//! `eval` do it to what they read (an evaluation image with alpha, such as a PNG drawing, then
//! looks like the training images did).

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, RgbImage};

/// PIL's decompression-bomb limit, which `Image.open` enforces: a picture of more than twice
/// `Image.MAX_IMAGE_PIXELS` (89,478,485) pixels is refused; between once and twice PIL warns and
/// decodes it, and so does [`decode`].
pub const PIL_MAX_PIXELS: u64 = 2 * 89_478_485;

/// The most memory one decode may take: the largest picture PIL accepts, at 8 bytes a pixel
/// (16-bit RGBA), with room for the decoder's own buffers. (The `image` crate's default, 512 MiB,
/// refuses RGBA pictures of more than 134M pixels that PIL decodes.)
const MAX_ALLOC: u64 = PIL_MAX_PIXELS * 8 + (64 << 20);

/// Whether JPEG bytes lack their end marker (FF D9, possibly followed by padding): a file cut
/// short. PIL refuses it ("image file is truncated"), `download` drops it as `truncated_image`;
/// the `image` crate would decode it with the missing part grey.
pub fn jpeg_is_truncated(b: &[u8]) -> bool {
    let mut end = b.len();
    while end > 0 && (b[end - 1] == 0 || b[end - 1].is_ascii_whitespace()) {
        end -= 1;
    }
    !(end >= 2 && b[end - 2] == 0xFF && b[end - 1] == 0xD9)
}

/// Decodes an image file's bytes (JPEG, PNG, WebP, GIF's first frame, BMP, TIFF) where PIL's
/// `Image.open(...).load()`, what OpenCLIP and clip_benchmark read pictures with, accepts them:
/// a JPEG cut short and a picture over [`PIL_MAX_PIXELS`] are refused as PIL refuses them. EXIF
/// orientation is not applied (PIL's loader does not; [`decode_oriented`] does). The error is
/// the reason, for a log line.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    decode_with(bytes, false).map(|(img, _)| img)
}

/// [`decode`], then the EXIF orientation applied as `download` applies it to what it stores
/// ([`crate::orient`]: JPEG, PNG and WebP EXIF, ImageMagick's and XMP's PNG orientations).
pub fn decode_oriented(bytes: &[u8]) -> Result<DynamicImage, String> {
    let (mut img, orientation) = decode_unoriented(bytes)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// [`decode`], with the EXIF orientation the file declares, not applied: one decode serves what
/// wants the picture as PIL loads it and what wants it as `download` stores it.
pub fn decode_unoriented(bytes: &[u8]) -> Result<(DynamicImage, Orientation), String> {
    decode_with(bytes, true)
}

/// The decoded picture, and with `orient` its EXIF orientation (else `NoTransforms`).
fn decode_with(bytes: &[u8], orient: bool) -> Result<(DynamicImage, Orientation), String> {
    if bytes.starts_with(&[0xFF, 0xD8]) && jpeg_is_truncated(bytes) {
        return Err("truncated: the JPEG data ends before its end marker (FF D9)".into());
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader.format();
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut dec = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = dec.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > PIL_MAX_PIXELS {
        return Err(format!(
            "{w}x{h} is {pixels} pixels, over PIL's decompression-bomb limit of {PIL_MAX_PIXELS}"
        ));
    }
    let orientation = if orient {
        crate::orient::of_decoder(format, &mut dec, bytes)
    } else {
        Orientation::NoTransforms
    };
    let img = DynamicImage::from_decoder(dec).map_err(|e| e.to_string())?;
    Ok((img, orientation))
}

/// `img` as RGB, each pixel's colour blended with white by its alpha (rounded). Dropping alpha
/// instead, as PIL's `convert("RGB")` does, shows whatever colour transparent pixels store,
/// often black.
pub fn rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for p in rgba.pixels() {
        let a = p[3] as u32;
        for c in 0..3 {
            out.push(((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("sizes match")
}

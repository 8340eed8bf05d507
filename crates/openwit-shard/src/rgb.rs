//! Pictures as RGB the way the shards hold them: transparency composited on white. `download`
//! does it to what it stores; the trainer and `eval` do it to what they read (an evaluation
//! image with alpha, such as a PNG drawing, then looks like the training images did).

use image::{DynamicImage, RgbImage};

/// `img` as RGB, each pixel's colour blended with white by its alpha (rounded). Dropping alpha
/// instead, as PIL's `convert("RGB")` does, shows whatever colour transparent pixels store,
/// often black.
pub fn rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for p in rgba.pixels() {
        let a = p[3] as u32;
        for c in 0..3 {
            out.push(((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("sizes match")
}

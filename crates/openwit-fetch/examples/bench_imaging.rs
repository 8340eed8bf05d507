//! Decode + resize + encode cost per image, by JPEG decoding path (the measurement behind
//! `imaging`'s choice of DCT-scaled decoding). `cargo run --release -p openwit-fetch --example
//! bench_imaging [N]`: N generated JPEGs of 0.3 to 2 megapixels, image_size 256, border, jpg 95.

use std::time::Instant;

use image::{Rgb, RgbImage};
use openwit_fetch::EncodeFormat;
use openwit_fetch::imaging::{ImageOptions, encode, process};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100);
    let mut corpus = Vec::new();
    let mut mp_total = 0.0;
    for i in 0..n {
        let mp = 0.3 + 1.7 * (i as f64 / n.max(2) as f64);
        let ar = 0.6 + (i % 7) as f64 * 0.2;
        let w = (mp * 1e6 * ar).sqrt() as u32;
        let h = (mp * 1e6 / ar).sqrt() as u32;
        mp_total += (w * h) as f64 / 1e6;
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * 3 / 7) ^ (y * 5 / 3)) & 0xff;
            Rgb([
                v as u8,
                ((x + y + i as u32) / 3 % 256) as u8,
                (255 - v) as u8,
            ])
        });
        corpus.push(encode(&img, EncodeFormat::Jpg, 85).unwrap());
    }
    println!("{n} JPEGs, mean {:.2} megapixels", mp_total / n as f64);
    for (name, scaled, zune) in [
        ("jpeg-decoder, DCT-scaled (default)", true, false),
        ("jpeg-decoder, full size", false, false),
        ("image/zune-jpeg, full size", false, true),
    ] {
        let o = ImageOptions {
            jpeg_dct_scaling: scaled,
            jpeg_zune: zune,
            ..ImageOptions::default()
        };
        // Warm-up, then measure.
        for b in corpus.iter().take(5) {
            process(b, &o).unwrap();
        }
        let t = Instant::now();
        for b in &corpus {
            process(b, &o).unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name:<38} {:>6.2} ms/image  {:>6.0} images/s on one core",
            s * 1e3 / n as f64,
            n as f64 / s
        );
    }
}

//! Decode + resize + encode cost per image, by JPEG decoding path (the measurement behind
//! `imaging`'s choice of DCT-scaled decoding). `cargo run --release -p openwit-fetch --example
//! bench_imaging [N [MODE [REPEAT]]]`: N generated JPEGs of 0.3 to 2 megapixels, image_size 256, border, jpg 95.

use std::time::Instant;

use image::{Rgb, RgbImage};
use openwit_fetch::EncodeFormat;
use openwit_fetch::imaging::{ImageOptions, encode_with, process};

/// CPU time of this thread in seconds (the machine is shared: wall time alone is noisy).
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

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
        corpus.push(encode_with(&img, EncodeFormat::Jpg, 85, false).unwrap());
    }
    println!("{n} JPEGs, mean {:.2} megapixels", mp_total / n as f64);
    // An optional second argument keeps only the modes whose name contains it (for `perf`).
    let only = std::env::args().nth(2).unwrap_or_default();
    // ... and an optional third one repeats the measured loop (for `perf`).
    let repeat: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    for (name, scaled, zune, turbo) in [
        ("libjpeg-turbo, DCT-scaled m/8 (default)", true, false, true),
        ("libjpeg-turbo, full size", false, false, true),
        ("jpeg-decoder, DCT-scaled, jpeg-encoder", true, false, false),
        ("jpeg-decoder, full size, jpeg-encoder", false, false, false),
        (
            "image/zune-jpeg, full size, jpeg-encoder",
            false,
            true,
            false,
        ),
    ] {
        if !name.contains(only.as_str()) {
            continue;
        }
        let o = ImageOptions {
            jpeg_dct_scaling: scaled,
            jpeg_zune: zune,
            jpeg_turbo: turbo,
            ..ImageOptions::default()
        };
        // Warm-up, then measure.
        for b in corpus.iter().take(5) {
            process(b, &o).unwrap();
        }
        let t = Instant::now();
        let c = thread_cpu_s();
        for b in std::iter::repeat_n(&corpus, repeat).flatten() {
            process(b, &o).unwrap();
        }
        let n = n * repeat;
        let s = t.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - c;
        println!(
            "{name:<42} {:>6.2} ms/image CPU ({:>5.0} images per CPU second), {:>6.2} ms wall",
            cpu * 1e3 / n as f64,
            n as f64 / cpu,
            s * 1e3 / n as f64,
        );
    }
}

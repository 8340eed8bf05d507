//! Generated labelled images for tests, demos and benchmarks: a shape (circle, square,
//! triangle) in a colour (red, green, blue, yellow) at a position, on a noisy background, with
//! a caption, written as webdataset shards in img2dataset's layout (`KEY.jpg`, `KEY.txt`,
//! `KEY.json`, and `KEY.cls` with the class index = colour x 3 + shape).

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ClipError, IoAt, Result};

pub const COLOURS: [(&str, [u8; 3]); 4] = [
    ("red", [220, 30, 30]),
    ("green", [30, 190, 40]),
    ("blue", [30, 60, 230]),
    ("yellow", [240, 220, 20]),
];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
const PLACES: [&str; 4] = ["on the left", "on the right", "at the top", "at the bottom"];

/// The 12 class names, `"<colour> <shape>"`, in class-index order.
pub fn class_names() -> Vec<String> {
    COLOURS
        .iter()
        .flat_map(|(c, _)| SHAPES.iter().map(move |s| format!("{c} {s}")))
        .collect()
}

/// One image (`size` x `size`) and its caption and class.
pub fn sample(rng: &mut ChaCha8Rng, size: u32) -> (RgbImage, String, i64) {
    let ci = rng.random_range(0..COLOURS.len());
    let si = rng.random_range(0..SHAPES.len());
    let pi = rng.random_range(0..PLACES.len());
    let bg: u8 = rng.random_range(90..170);
    let mut img = RgbImage::from_fn(size, size, |_, _| {
        let n: i16 = rng.random_range(-12..=12);
        let v = (bg as i16 + n).clamp(0, 255) as u8;
        Rgb([v, v, v])
    });
    let s = size as f32;
    let r = s * rng.random_range(0.16..0.24);
    let (cx, cy) = match pi {
        0 => (s * 0.28, s * rng.random_range(0.3..0.7)),
        1 => (s * 0.72, s * rng.random_range(0.3..0.7)),
        2 => (s * rng.random_range(0.3..0.7), s * 0.28),
        _ => (s * rng.random_range(0.3..0.7), s * 0.72),
    };
    let col = Rgb(COLOURS[ci].1);
    for y in 0..size {
        for x in 0..size {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = match si {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
                _ => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
            };
            if inside {
                img.put_pixel(x, y, col);
            }
        }
    }
    let templates = [
        "a {c} {s} {p}",
        "a photo of a {c} {s}",
        "{c} {s} {p} on a grey background",
        "there is a {c} {s} {p}",
        "a drawing of a {s} coloured {c}",
        "the {s} is {c}",
    ];
    let t = templates[rng.random_range(0..templates.len())];
    let caption = t
        .replace("{c}", COLOURS[ci].0)
        .replace("{s}", SHAPES[si])
        .replace("{p}", PLACES[pi]);
    (img, caption, (ci * SHAPES.len() + si) as i64)
}

fn append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, data)
}

/// Writes `shards` tars of `per_shard` samples (`{shard:05}.tar`, keys as img2dataset) into
/// `dir`, plus `sizes.json`; returns the tar paths.
pub fn write_shards(
    dir: &Path,
    shards: usize,
    per_shard: usize,
    size: u32,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).at(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut paths = Vec::new();
    let mut sizes = serde_json::Map::new();
    let digits = (per_shard.max(2) as f64).log10().ceil() as usize;
    for s in 0..shards {
        let path = dir.join(format!("{s:05}.tar"));
        let file = std::fs::File::create(&path).at(&path)?;
        let mut b = tar::Builder::new(file);
        for i in 0..per_shard {
            let (img, caption, class) = sample(&mut rng, size);
            let key = format!("{s:05}{i:0digits$}");
            let mut jpg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
                .encode_image(&img)
                .map_err(|e| ClipError::Data(format!("jpeg: {e}")))?;
            let meta = serde_json::json!({"key": key, "caption": caption, "status": "success", "width": size, "height": size});
            append(&mut b, &format!("{key}.jpg"), &jpg).at(&path)?;
            append(&mut b, &format!("{key}.txt"), caption.as_bytes()).at(&path)?;
            append(&mut b, &format!("{key}.json"), meta.to_string().as_bytes()).at(&path)?;
            append(&mut b, &format!("{key}.cls"), class.to_string().as_bytes()).at(&path)?;
        }
        let mut f = b.into_inner().at(&path)?;
        f.flush().at(&path)?;
        sizes.insert(format!("{s:05}.tar"), per_shard.into());
        paths.push(path);
    }
    let sp = dir.join("sizes.json");
    std::fs::write(&sp, serde_json::Value::Object(sizes).to_string()).at(&sp)?;
    Ok(paths)
}

//! The download stage on real photographs, clip art and broken files (`tests/data/images`, with
//! their sources and licences in the README there), served from a loopback server, checked
//! against Pillow's decode of the same files (`tests/real_images/pillow_reference.py`): every
//! decodable image becomes a sample of the size Pillow gives after EXIF orientation, with the
//! same mean colour overall and over a 4 x 4 grid (which tells rotations and flips apart), and
//! every undecodable one is a drop counted under its reason. Also header sniffing
//! ([`imaging::probe`]) on every file against the format and size Pillow reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use openwit_fetch::imaging::{self, Sniffed};
use openwit_fetch::{Config, DownloadStage, ResizeMode};
use openwit_shard::{ShardReader, Status, read_parquet, read_stats};
use openwit_testkit::TestServer;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images")
}

/// Every image file of the corpus, as `dir/name`, sorted.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["pillow", "go", "skimage"] {
        for e in std::fs::read_dir(data_dir().join(dir)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            out.push(format!("{dir}/{name}"));
        }
    }
    out.sort();
    assert_eq!(
        out.len(),
        56,
        "the corpus (README.md) is incomplete: {out:?}"
    );
    out
}

/// The files that must be dropped, with their reason. Every other file must become a sample.
const DROPS: &[(&str, &str)] = &[
    ("pillow/broken.png", "corrupt_image"),
    ("pillow/truncated_image.png", "truncated_image"),
    ("pillow/truncated_jpeg.jpg", "truncated_image"),
    ("pillow/decompression_bomb.gif", "bomb"),
    ("pillow/zero_width.gif", "corrupt_image"),
    ("skimage/truncated.jpg", "truncated_image"),
];

/// Pillow's view of one file.
#[derive(Debug, Clone, serde::Deserialize)]
struct Reference {
    file: String,
    ok: bool,
    format: Option<String>,
    stored: Option<(u32, u32)>,
    width: Option<u32>,
    height: Option<u32>,
    mean: Option<[f64; 3]>,
    #[serde(default)]
    grid: Vec<[f64; 3]>,
}

fn pillow(files: &[String]) -> BTreeMap<String, Reference> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real_images/pillow_reference.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(files)
        .current_dir(data_dir())
        .output()
        .expect("python3 runs (Pillow and numpy from .ci/requirements.txt)");
    assert!(
        out.status.success(),
        "the Pillow reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs: BTreeMap<String, Reference> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let r: Reference = serde_json::from_str(l).unwrap();
            (r.file.clone(), r)
        })
        .collect();
    assert_eq!(refs.len(), files.len());
    refs
}

/// Mean colour of an RGB image overall, and over Pillow's 4 x 4 grid (empty under 16 px).
fn means(img: &image::RgbImage) -> ([f64; 3], Vec<[f64; 3]>) {
    let (w, h) = img.dimensions();
    let mean = |x0: u32, x1: u32, y0: u32, y1: u32| {
        let mut s = [0f64; 3];
        for y in y0..y1 {
            for x in x0..x1 {
                let p = img.get_pixel(x, y);
                for c in 0..3 {
                    s[c] += p[c] as f64;
                }
            }
        }
        let n = ((x1 - x0) * (y1 - y0)) as f64;
        s.map(|v| v / n)
    };
    let grid = if w >= 16 && h >= 16 {
        (0..16)
            .map(|i| {
                let (cx, cy) = (i % 4, i / 4);
                mean(cx * w / 4, (cx + 1) * w / 4, cy * h / 4, (cy + 1) * h / 4)
            })
            .collect()
    } else {
        Vec::new()
    };
    (mean(0, w, 0, h), grid)
}

fn max_diff(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|c| (a[c] - b[c]).abs()).fold(0.0, f64::max)
}

struct Run {
    /// file -> (status, reason or "success", width, height, original size, image bytes).
    rows: BTreeMap<String, Row>,
    failures_by_reason: BTreeMap<String, u64>,
}

struct Row {
    status: Status,
    reason: String,
    size: (i64, i64),
    original: (i64, i64),
    image: Option<Vec<u8>>,
}

/// Serves the corpus, runs the download stage with `extra` config lines, reads the shards back.
fn run_stage(files: &[String], extra: &str) -> Run {
    let server = TestServer::start();
    server.serve_dir("/img/", data_dir());
    let tmp = tempfile::tempdir().unwrap();
    let mut w = csv::Writer::from_path(tmp.path().join("urls.csv")).unwrap();
    w.write_record(["url", "caption"]).unwrap();
    for f in files {
        w.write_record([server.url(&format!("/img/{f}")).as_str(), f.as_str()])
            .unwrap();
    }
    w.flush().unwrap();
    let cfg: Config = toml::from_str(&format!(
        "input = \"urls.csv\"\nshard_size = 25\nretries = 0\nrespect_robots = false\n\
         dedup_sha256 = false\n{extra}"
    ))
    .unwrap();
    let stage = DownloadStage::new(cfg, tmp.path(), true).unwrap();
    let work = tmp.path().join("work");
    openwit_testkit::run_stage(&work, 2, &stage).unwrap();

    let mut rows = BTreeMap::new();
    let mut failures_by_reason = BTreeMap::new();
    for tar in openwit_shard::list_shards(&work.join("download")).unwrap() {
        let stats = read_stats(&tar.with_file_name(format!(
            "{}_stats.json",
            tar.file_stem().unwrap().to_str().unwrap()
        )))
        .unwrap();
        for (k, v) in stats.failures_by_reason {
            *failures_by_reason.entry(k).or_insert(0) += v;
        }
        let mut images: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for s in ShardReader::open(&tar).unwrap().samples() {
            let s = s.unwrap();
            if let Some(m) = s.image() {
                images.insert(s.key.clone(), m.data.clone());
            }
        }
        for r in read_parquet(&tar.with_extension("parquet")).unwrap() {
            let file = r.caption.clone().unwrap();
            let reason = match &r.error_message {
                None => "success".to_string(),
                Some(m) => m.split(':').next().unwrap().to_string(),
            };
            rows.insert(
                file,
                Row {
                    status: r.status,
                    reason,
                    size: (r.width.unwrap_or(-1), r.height.unwrap_or(-1)),
                    original: (
                        r.original_width.unwrap_or(-1),
                        r.original_height.unwrap_or(-1),
                    ),
                    image: images.remove(&r.key),
                },
            );
        }
    }
    assert_eq!(rows.len(), files.len(), "one parquet row per input row");
    Run {
        rows,
        failures_by_reason,
    }
}

fn expected_drops() -> BTreeMap<&'static str, &'static str> {
    DROPS.iter().copied().collect()
}

fn check_drops(run: &Run) {
    let drops = expected_drops();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (file, reason) in &drops {
        let row = &run.rows[*file];
        assert_ne!(row.status, Status::Success, "{file} must be dropped");
        assert_eq!(row.reason, *reason, "{file}: drop reason");
        assert!(row.image.is_none(), "{file}: a drop has no image");
        *want.entry(reason.to_string()).or_insert(0) += 1;
    }
    assert_eq!(run.failures_by_reason, want, "drops counted by reason");
}

#[test]
fn real_images_become_samples_that_match_pillow_and_broken_ones_counted_drops() {
    let files = corpus();
    let refs = pillow(&files);
    let drops = expected_drops();

    // No resizing and lossless output: the samples are the decoded pictures themselves.
    let run = run_stage(&files, "resize_mode = \"no\"\nencode_format = \"png\"\n");
    check_drops(&run);
    let mut checked = 0;
    for f in files.iter().filter(|f| !drops.contains_key(f.as_str())) {
        let r = &refs[f];
        assert!(
            r.ok,
            "{f}: Pillow cannot decode it, yet it is not an expected drop"
        );
        let row = &run.rows[f];
        assert_eq!(row.reason, "success", "{f}");
        let (pw, ph) = (r.width.unwrap(), r.height.unwrap());
        assert_eq!(
            row.size,
            (pw as i64, ph as i64),
            "{f}: size after EXIF orientation"
        );
        assert_eq!(row.original, row.size, "{f}");
        let img = image::load_from_memory_with_format(
            row.image.as_ref().unwrap(),
            image::ImageFormat::Png,
        )
        .unwrap()
        .into_rgb8();
        assert_eq!(img.dimensions(), (pw, ph), "{f}");
        let (mean, grid) = means(&img);
        // Lossless formats decode to the same pixels up to rounding (16 to 8 bits, alpha on
        // white); JPEG and lossy WebP decoders differ in IDCT and chroma upsampling.
        let lossy = matches!(r.format.as_deref(), Some("JPEG") | Some("WEBP"));
        let (tol, cell_tol) = if lossy { (2.0, 6.0) } else { (1.0, 1.0) };
        let d = max_diff(&mean, r.mean.as_ref().unwrap());
        assert!(
            d <= tol,
            "{f}: mean colour {mean:?}, Pillow {:?} (off by {d:.2})",
            r.mean
        );
        assert_eq!(grid.len(), r.grid.len(), "{f}");
        for (i, (a, b)) in grid.iter().zip(&r.grid).enumerate() {
            let d = max_diff(a, b);
            assert!(
                d <= cell_tol,
                "{f}: grid cell {i} mean {a:?}, Pillow {b:?} (off by {d:.2}): wrong orientation?"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, files.len() - drops.len());
    assert!(checked >= 50);

    // The default settings (border to 256 x 256, JPEG): the same samples and drops, and the
    // original size recorded is the oriented one.
    let run = run_stage(&files, "");
    check_drops(&run);
    for f in files.iter().filter(|f| !drops.contains_key(f.as_str())) {
        let r = &refs[f];
        let row = &run.rows[f];
        assert_eq!(row.reason, "success", "{f}");
        assert_eq!(row.size, (256, 256), "{f}");
        assert_eq!(
            row.original,
            (r.width.unwrap() as i64, r.height.unwrap() as i64),
            "{f}"
        );
        let img = image::load_from_memory(row.image.as_ref().unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (256, 256), "{f}");
    }
}

#[test]
fn header_sniffing_reads_format_and_size_of_real_files() {
    let files = corpus();
    let refs = pillow(&files);
    let mut probed = 0;
    for f in &files {
        let bytes = std::fs::read(data_dir().join(f)).unwrap();
        let h = imaging::probe(&bytes);
        // A prefix never gives a different answer: the header is there, or it is None.
        for n in [16, 64, 512, 4096] {
            if let Some(p) = imaging::probe(&bytes[..n.min(bytes.len())]) {
                assert_eq!(Some(p), h, "{f}: the first {n} bytes");
            }
        }
        let r = &refs[f];
        let (Some(format), Some(stored)) = (r.format.as_deref(), r.stored) else {
            continue;
        };
        let h = h.unwrap_or_else(|| panic!("{f}: Pillow reads a {format} header, probe none"));
        let want = match format {
            "JPEG" => Sniffed::Jpeg,
            "PNG" => Sniffed::Png,
            "GIF" => Sniffed::Gif,
            "WEBP" => Sniffed::Webp,
            other => panic!("{f}: unexpected format {other}"),
        };
        assert_eq!(h.format, want, "{f}");
        assert_eq!((h.width, h.height), stored, "{f}: stored size");
        assert!((1..=4).contains(&h.channels), "{f}: {h:?}");
        let sixteen = f.ends_with("16.png") || f.ends_with("i_trns.png");
        assert_eq!(h.bytes_per_sample, if sixteen { 2 } else { 1 }, "{f}");
        if format == "JPEG" {
            let comps = if f.contains("cmyk") {
                4
            } else if f.contains("gray") {
                1
            } else {
                3
            };
            assert_eq!(h.channels, comps, "{f}: JPEG components");
        }
        probed += 1;
    }
    assert_eq!(
        probed,
        files.len() - 4,
        "all but the four Pillow cannot open"
    );
    // What Pillow cannot even open: the bomb is read as its huge header says, the rest is not
    // taken for an image of some size.
    let bomb = std::fs::read(data_dir().join("pillow/decompression_bomb.gif")).unwrap();
    let h = imaging::probe(&bomb).unwrap();
    assert!(h.width as u64 * h.height as u64 > 1 << 30, "{h:?}");
    let zero = std::fs::read(data_dir().join("pillow/zero_width.gif")).unwrap();
    assert_eq!(imaging::probe(&zero).map(|h| h.width), Some(0));
    let broken = std::fs::read(data_dir().join("pillow/broken.png")).unwrap();
    assert_eq!(imaging::probe(&broken), None);
}

#[test]
fn large_pngs_decoded_row_by_row_match_the_whole_decode() {
    // Real PNGs (RGB, RGBA clip art, an orientation in ImageMagick's EXIF text) at a target
    // small enough for the box reduction: the same size, orientation and picture as decoding them whole.
    for f in [
        "skimage/chelsea.png",
        "skimage/logo.png",
        "skimage/horse.png",
        "pillow/exif_imagemagick_orientation.png",
    ] {
        let bytes = std::fs::read(data_dir().join(f)).unwrap();
        let mut o = imaging::ImageOptions {
            image_size: 64,
            encode_format: openwit_fetch::EncodeFormat::Png,
            ..Default::default()
        };
        let scaled = imaging::process(&bytes, &o).unwrap();
        o.png_box_scaling = false;
        let whole = imaging::process(&bytes, &o).unwrap();
        assert_eq!(
            (
                scaled.width,
                scaled.height,
                scaled.original_width,
                scaled.original_height
            ),
            (
                whole.width,
                whole.height,
                whole.original_width,
                whole.original_height
            ),
            "{f}"
        );
        assert_eq!(scaled.orientation, whole.orientation, "{f}");
        let a = image::load_from_memory(&scaled.bytes).unwrap().into_rgb8();
        let b = image::load_from_memory(&whole.bytes).unwrap().into_rgb8();
        let diff: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (*x as f64 - *y as f64).abs())
            .sum::<f64>()
            / a.as_raw().len() as f64;
        assert!(diff < 3.0, "{f}: mean absolute difference {diff:.2}");
        assert!(
            (scaled.phash ^ whole.phash).count_ones() <= 6,
            "{f}: phash {:016x} vs {:016x}",
            scaled.phash,
            whole.phash
        );
        // The header cost of the row-by-row decode is a small fraction of the whole one's.
        let row_cost = imaging::decode_cost(&bytes, &o);
        o.png_box_scaling = true;
        assert!(imaging::decode_cost(&bytes, &o) * 4 < row_cost, "{f}");
    }
}

#[test]
fn cut_and_corrupted_real_images_are_drops_never_panics() {
    // A small deterministic stand-in for the fuzz target (`fuzz/`) on every real file: cut at
    // many lengths and with bytes flipped, sniffing, the header cost and the whole processing
    // must return (a sample or a reason), and a prefix never gives a different header.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let o = imaging::ImageOptions {
        image_size: 48,
        max_pixels: 4_000_000,
        max_dimension: 8_192,
        ..Default::default()
    };
    let mut reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (mut tried, mut ok) = (0, 0);
    for f in corpus() {
        let bytes = std::fs::read(data_dir().join(&f)).unwrap();
        let full = imaging::probe(&bytes);
        let mut variants: Vec<Vec<u8>> = (1..12)
            .map(|i| bytes[..bytes.len() * i / 12].to_vec())
            .collect();
        for _ in 0..8 {
            let mut v = bytes.clone();
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            variants.push(v);
        }
        for (n, v) in variants.iter().enumerate() {
            let got = std::panic::catch_unwind(|| {
                let h = imaging::probe(v);
                let _ = imaging::decode_cost(v, &o);
                (h, imaging::process(v, &o))
            });
            let (h, res) = got.unwrap_or_else(|_| panic!("{f}, variant {n}: panicked"));
            if n < 11
                && let Some(h) = h
            {
                assert_eq!(Some(h), full, "{f}: a prefix of {} bytes", v.len());
            }
            match res {
                Ok(p) => {
                    assert!(p.width > 0 && p.height > 0 && !p.bytes.is_empty(), "{f}");
                    ok += 1;
                }
                Err(e) => *reasons.entry(e.reason).or_insert(0) += 1,
            }
            tried += 1;
        }
    }
    assert_eq!(tried, 56 * 19);
    // Cut files are mostly dropped as truncated; some decode (a flipped byte in a comment).
    assert!(
        reasons.get("truncated_image").copied().unwrap_or(0) > 100,
        "{reasons:?}"
    );
    assert!(ok > 50, "{ok} {reasons:?}");
}

#[test]
fn an_evaluation_picture_and_its_downloaded_copy_have_the_same_perceptual_hash() {
    // The overlap analysis (`eval`) and decontamination (`download`'s `exclude_eval`) hash an
    // evaluation picture with `phash_of_bytes` and compare it with the hash `download` recorded
    // for each picture it stored. A picture the web also serves must then hash alike on both
    // sides: drawings with transparency included (download composites them on white), on the
    // real corpus and on Open Clip Art drawings (most of whose transparent pixels hide black).
    let mut files: Vec<PathBuf> = corpus().iter().map(|f| data_dir().join(f)).collect();
    let clipart =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../openwit-sources/tests/data/openclipart/png");
    let mut stack = vec![clipart];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                files.push(p);
            }
        }
    }
    // Kept at their size, the pictures hash alike up to the JPEG decoders' IDCT (libjpeg-turbo
    // in `download`, zune-jpeg in `image`): within 2 bits. Made 256 px (the default), `download`
    // hashes the smaller picture, a few bits away.
    for (resize_mode, within) in [(ResizeMode::No, 2), (ResizeMode::Border, 8)] {
        let o = imaging::ImageOptions {
            resize_mode,
            ..Default::default()
        };
        let (mut compared, mut transparent, mut rotated) = (0, 0, 0);
        let mut worst = (0, String::new());
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let Ok(p) = imaging::process(&bytes, &o) else {
                continue;
            };
            let Some(eval) = openwit_shard::overlap::phash_of_bytes(&bytes) else {
                continue;
            };
            compared += 1;
            let alpha = openwit_shard::rgb::decode(&bytes).is_ok_and(|i| i.color().has_alpha());
            transparent += usize::from(alpha);
            rotated += usize::from(p.orientation.is_some());
            let d = (eval ^ p.phash).count_ones();
            if d > worst.0 {
                worst = (d, f.display().to_string());
            }
        }
        assert!(
            compared >= 60 && transparent >= 10 && rotated >= 8,
            "{compared} {transparent} {rotated}"
        );
        assert!(worst.0 <= within, "{resize_mode:?}: {worst:?}");
    }
}

//! The trainer's and `eval`'s picture reading (`openwit_clip::data::transform`: decode, transparency
//! on white, OpenCLIP's eval resize and center crop) against OpenCLIP's own (PIL and torchvision,
//! `tests/py/preprocess_ref.py`), on real files that nobody here made: the photographs, clip art
//! and odd files of `openwit-fetch/tests/data/images` (Pillow's, Go's and scikit-image's test
//! images: CMYK and progressive JPEGs, 16-bit and palette PNGs with transparency, animated GIFs,
//! WebP, truncated and broken files, a decompression bomb), the Open Clip Art drawings of
//! `openwit-sources/tests/data/openclipart`, and, where `scripts/setup.sh` has extracted the Open
//! Clip Art packages, two very large drawings on either side of PIL's pixel limit.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// OpenCLIP's ViT-B/32 input size.
const SIZE: u32 = 224;

/// The largest difference of one channel of one pixel allowed. PNG, GIF and WebP pictures differ
/// by at most 2 (PIL's and `fast_image_resize`'s fixed-point rounding); JPEGs by up to 4 more
/// (libjpeg-turbo's and zune-jpeg's IDCT and chroma upsampling).
const MAX_DIFF: i32 = 4;
/// The largest mean difference over a picture's channels and pixels.
const MAX_MEAN: f64 = 0.5;

/// PIL modes whose `convert("RGB")` clips 16-bit grey values to 255 (so a 16-bit grey photograph
/// comes out nearly white), where the `image` crate scales them to 8 bits: the pictures are
/// compared for decoding only.
const PIL_CLIPS: &[&str] = &["I;16", "I;16B", "I;16L", "I"];

fn files() -> BTreeMap<String, PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = BTreeMap::new();
    let mut add_dir = |prefix: &str, dir: &Path| {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x != "md") {
                    let rel = p
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('/', "__");
                    out.insert(format!("{prefix}__{rel}"), p);
                }
            }
        }
    };
    add_dir("fetch", &crates.join("openwit-fetch/tests/data/images"));
    add_dir(
        "clipart",
        &crates.join("openwit-sources/tests/data/openclipart/png"),
    );
    // Two drawings of the packages: 10,561 x 16,000 (169M pixels, which PIL decodes with a
    // warning, and the `image` crate's default limits refuse) and 20,990 x 29,700 (623M pixels,
    // over PIL's limit of 178,956,970).
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let packages = home.join(".cache/openwit/openclipart/usr/share/openclipart/png");
    let big = [
        "food/fruit/banana_mateya_01.png",
        "transportation/roadsigns/stop_sign_right_font_mig_.png",
    ];
    if big.iter().all(|b| packages.join(b).is_file()) {
        for b in big {
            out.insert(format!("large__{}", b.replace('/', "__")), packages.join(b));
        }
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the Open Clip Art drawings in {}: scripts/setup.sh",
            packages.display()
        );
        eprintln!(
            "{}: not here, the two very large drawings are not compared (scripts/setup.sh extracts them)",
            packages.display()
        );
    }
    out
}

fn pixels(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().into_rgb8()
}

#[test]
fn pictures_are_read_and_transformed_as_open_clip_does() {
    let Some(py) = common::python_path() else {
        return;
    };
    let files = files();
    assert!(files.len() >= 70, "{} files", files.len());
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&files).unwrap()).unwrap();
    let theirs_dir = dir.path().join("theirs");
    std::fs::create_dir(&theirs_dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/preprocess_ref.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .arg(&manifest)
        .arg(&theirs_dir)
        .arg(SIZE.to_string())
        .env("PYTHONPATH", &py)
        .output()
        .expect("cannot run python3");
    assert!(
        out.status.success(),
        "the reference failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(theirs_dir.join("result.json")).unwrap()).unwrap();

    let mut failures = Vec::new();
    let (mut compared, mut refused) = (0, 0);
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let ours = openwit_clip::data::transform(&bytes, SIZE, None);
        let theirs = &result[name];
        let pil_error = theirs["error"].as_str();
        match (&ours, pil_error) {
            (None, Some(e)) => {
                refused += 1;
                let why = openwit_clip::data::decode(&bytes).err().unwrap_or_default();
                eprintln!("{name:70} both refuse: PIL {e:.60} | ours {why:.60}");
                continue;
            }
            (Some(_), Some(e)) => {
                failures.push(format!("{name}: PIL refuses it ({e}), openwit reads it"));
                continue;
            }
            (None, None) => {
                let why = openwit_clip::data::decode(&bytes).err().unwrap_or_default();
                failures.push(format!("{name}: PIL reads it, openwit refuses it ({why})"));
                continue;
            }
            (Some(_), None) => {}
        }
        let mode = theirs["mode"].as_str().unwrap_or_default();
        if PIL_CLIPS.contains(&mode) {
            eprintln!("{name:70} {mode:5} both decode (PIL clips 16-bit grey: not compared)");
            continue;
        }
        let ours = ours.unwrap();
        let theirs = pixels(&theirs_dir.join(format!("{name}.png")));
        assert_eq!(ours.dimensions(), (SIZE, SIZE), "{name}");
        assert_eq!(theirs.dimensions(), (SIZE, SIZE), "{name}");
        let diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let max = diffs.iter().copied().max().unwrap_or(0);
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        eprintln!("{name:70} {mode:5} max {max:3} mean {mean:.3}");
        compared += 1;
        if max > MAX_DIFF || mean > MAX_MEAN {
            failures.push(format!(
                "{name} ({mode}): differs from OpenCLIP's by up to {max} (mean {mean:.3})"
            ));
        }
    }
    eprintln!("{compared} pictures compared, {refused} refused by both");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        compared >= 55 && refused >= 6,
        "{compared} compared, {refused} refused"
    );
}

/// PIL's pixel limit on headers alone: a PNG whose header says 13,000 x 13,000 (169M pixels, under
/// the limit) gets as far as its empty image data; one of 14,000 x 14,000 (196M) is refused for
/// its size, before any allocation.
#[test]
fn the_pixel_limit_is_pils() {
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        // IHDR, then an empty IDAT (the decoder reads up to the image data before it knows the
        // size).
        for (len, chunk) in [(13u32, ihdr), (0, b"IDAT".to_vec())] {
            b.extend(len.to_be_bytes());
            b.extend(&chunk);
            b.extend(crc32(&chunk).to_be_bytes());
        }
        b
    }
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let under = openwit_clip::data::decode(&png_header(13_000, 13_000)).unwrap_err();
    eprintln!("13,000 x 13,000: {under}");
    assert!(!under.contains("limit"), "{under}");
    let over = openwit_clip::data::decode(&png_header(14_000, 14_000)).unwrap_err();
    assert!(
        over.contains("196000000 pixels") && over.contains("PIL's decompression-bomb limit"),
        "{over}"
    );
}

#[test]
fn a_set_decoded_once_measures_as_a_set_read_again() {
    // The held-out sets a training run measures every `eval_every` steps are decoded once and
    // kept (`encode_and_keep`): encoding what was kept must give exactly what reading the set
    // again gives, and one decode per picture must give the fingerprints (sha256, perceptual
    // hash as `download` computes it: on white, EXIF orientation applied) that the overlap
    // analysis got from a separate decode. On the real files: rotated and mirrored JPEGs,
    // transparent PNGs and WebPs, clip art, broken and truncated files (left out, counted).
    use openwit_clip::bench::EvalSet;
    use openwit_clip::eval::{SetRead, encode_and_keep};
    use openwit_clip::model::{Clip, ModelConfig};
    use openwit_clip::tokenizer::Tokenizer;
    let Ok(tok) = Tokenizer::from_default() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the vocabulary"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("set");
    let mut tsv = String::new();
    let mut names = Vec::new();
    for (name, path) in files() {
        if name.starts_with("large__") {
            continue;
        }
        let ext = path.extension().unwrap().to_string_lossy().to_lowercase();
        if !["jpg", "jpeg", "png", "webp"].contains(&ext.as_str()) {
            continue;
        }
        let class = if name.starts_with("clipart") {
            "drawing"
        } else {
            "photo"
        };
        let rel = format!("{class}/{name}");
        std::fs::create_dir_all(root.join(class)).unwrap();
        std::fs::copy(&path, root.join(&rel)).unwrap();
        tsv.push_str(&format!("{rel}\tthe file {name}\n"));
        names.push(rel);
    }
    std::fs::write(root.join("captions.tsv"), tsv).unwrap();
    let set = EvalSet::image_folder(&root).unwrap();
    let model = Clip::new_seeded(
        &ModelConfig::preset("tiny-vit").unwrap(),
        tch::Device::Cpu,
        5,
    );
    let read = SetRead {
        classified: true,
        captions: true,
        prints: true,
    };
    let (first, kept) = encode_and_keep(&model, &tok, &set, read, 16, 2, usize::MAX).unwrap();
    let kept = kept.expect("the set fits");
    assert!(first.undecodable >= 3, "{}", first.undecodable);
    assert_eq!(
        first.images.size()[0] as usize + first.undecodable as usize,
        names.len()
    );
    let again = kept.encode(&model, &tok, 16).unwrap();
    let streamed = encode_and_keep(&model, &tok, &set, read, 16, 1, 0).unwrap();
    assert!(streamed.1.is_none(), "keep_bytes 0 keeps nothing");
    for f in [&again, &streamed.0] {
        assert!(f.images.equal(&first.images));
        assert!(
            f.texts
                .as_ref()
                .unwrap()
                .equal(first.texts.as_ref().unwrap())
        );
        assert_eq!(f.labels, first.labels);
        assert_eq!(f.text_image, first.text_image);
        assert_eq!(f.undecodable, first.undecodable);
        assert_eq!(f.prints, first.prints);
    }
    // The fingerprints of the pictures that decoded, in order, as a separate decode gives them.
    let mut expected = Vec::new();
    set.for_each_batch(1000, true, |batch| {
        for s in batch {
            if openwit_clip::data::transform(&s.image, 32, None).is_some() {
                expected.push(openwit_shard::overlap::EvalPrint::of(&s.image, s.captions));
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(first.prints.len(), expected.len());
    assert_eq!(first.prints, expected);
    // Too small a budget keeps nothing, and measures all the same.
    let (small, none) = encode_and_keep(&model, &tok, &set, read, 16, 2, 10_000).unwrap();
    assert!(none.is_none());
    assert!(small.images.equal(&first.images));
}

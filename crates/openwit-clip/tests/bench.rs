//! Evaluation sets in the formats users have (clip_benchmark's webdataset layout, ImageFolder,
//! OpenWIT shards with captions), written here as tiny sets of generated PNG/JPEG pictures, and
//! the three measures on them: zero-shot classification and retrieval agree with clip_benchmark's
//! own code, and the linear probe with scikit-learn's `LogisticRegression(solver="lbfgs")`, on the
//! same (seeded, untrained) `tiny-vit` weights and the same features.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::codecs::pnm::{PnmEncoder, PnmSubtype, SampleEncoding};
use image::{ImageFormat, RgbImage};
use openwit_clip::bench::{EvalSet, SetKind};
use openwit_clip::eval::{Labels, encode_set, retrieval_set, templates_for, zero_shot_set};
use openwit_clip::probe::{FitOptions, SweepConfig, fit_logistic, linear_probe_fit};
use openwit_clip::{Clip, ModelConfig, Tokenizer};
use tch::{Device, Kind, Tensor};

const CLASSES: [&str; 6] = ["red", "green", "blue", "yellow", "purple", "grey"];
const TEMPLATES: [&str; 3] = ["a photo of a {c} thing.", "a {c} picture.", "art in {c}."];
const COLOURS: [[u8; 3]; 6] = [
    [200, 40, 40],
    [40, 180, 60],
    [50, 60, 210],
    [220, 210, 40],
    [150, 50, 170],
    [128, 128, 128],
];

/// A 32x32 picture of `class` (its colour, a brighter square at a place that depends on `i`,
/// pixel noise): the model's own size, so no resize touches it on either side.
fn picture(class: usize, i: u64, size: u32) -> RgbImage {
    let mut state = ((class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (i + 7).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 61) as i32 - 30
    };
    let (ox, oy) = ((i * 5 % 20) as u32, (i * 11 % 20) as u32);
    RgbImage::from_fn(size, size, |x, y| {
        let inside = x >= ox && x < ox + 10 && y >= oy && y < oy + 10;
        let c = COLOURS[class];
        image::Rgb(
            c.map(|v| (v as i32 + noise() + if inside { 40 } else { 0 }).clamp(0, 255) as u8),
        )
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// One sample of a tiny set: image bytes (with their extension), class, captions.
struct Sample {
    ext: &'static str,
    image: Vec<u8>,
    class: usize,
    captions: Vec<String>,
}

#[allow(clippy::needless_range_loop)] // the class index is the label
fn samples(per_class: u64, first: u64) -> Vec<Sample> {
    let mut out = Vec::new();
    for i in first..first + per_class {
        for class in 0..CLASSES.len() {
            let captions = (0..1 + (i as usize + class) % 3)
                .map(|k| match k {
                    0 => format!("a {} picture number {i}", CLASSES[class]),
                    1 => format!("the colour {}", CLASSES[class]),
                    _ => format!("{} square at {}", CLASSES[class], i * 5 % 20),
                })
                .collect();
            out.push(Sample {
                ext: "png",
                image: encode(&picture(class, i, 32), ImageFormat::Png),
                class,
                captions,
            });
        }
    }
    out
}

/// clip_benchmark's webdataset layout: `classnames.txt`, `zeroshot_classification_templates.txt`,
/// `dataset_type.txt` for retrieval, `SPLIT/nshards.txt`, `SPLIT/{0..N-1}.tar` with `KEY.cls` or
/// `KEY.txt` (captions, one a line) next to `KEY.png`, every third sample with a `KEY.jpg` of
/// another picture before it.
fn write_clip_benchmark(root: &Path, split: &str, set: &[Sample], shards: usize, retrieval: bool) {
    std::fs::create_dir_all(root.join(split)).unwrap();
    if retrieval {
        std::fs::write(root.join("dataset_type.txt"), "retrieval\n").unwrap();
    } else {
        std::fs::write(root.join("classnames.txt"), CLASSES.join("\n") + "\n").unwrap();
        std::fs::write(
            root.join("zeroshot_classification_templates.txt"),
            TEMPLATES.join("\n") + "\n",
        )
        .unwrap();
    }
    std::fs::write(root.join(split).join("nshards.txt"), format!("{shards}\n")).unwrap();
    let per = set.len().div_ceil(shards);
    for (s, chunk) in set.chunks(per).enumerate() {
        let file = std::fs::File::create(root.join(split).join(format!("{s}.tar"))).unwrap();
        let mut b = tar::Builder::new(file);
        for (k, sample) in chunk.iter().enumerate() {
            let key = format!("s{s:02}k{k:04}");
            if k % 3 == 0 {
                // A second picture, of another class, ahead of the sample's own: clip_benchmark
                // takes the first of webp, png, jpg, jpeg the sample has, not the first member.
                let other = picture((sample.class + 1) % CLASSES.len(), k as u64, 32);
                append(
                    &mut b,
                    &format!("{key}.jpg"),
                    &encode(&other, ImageFormat::Jpeg),
                );
            }
            append(&mut b, &format!("{key}.{}", sample.ext), &sample.image);
            if retrieval {
                append(
                    &mut b,
                    &format!("{key}.txt"),
                    sample.captions.join("\n").as_bytes(),
                );
            } else {
                append(
                    &mut b,
                    &format!("{key}.cls"),
                    sample.class.to_string().as_bytes(),
                );
            }
        }
        b.finish().unwrap();
    }
}

/// ImageFolder: `ROOT/<class>/<n>.<ext>`.
fn write_image_folder(root: &Path, set: &[Sample]) {
    for (n, s) in set.iter().enumerate() {
        let dir = root.join(format!("{}_{}", s.class, CLASSES[s.class]));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{n:04}.{}", s.ext)), &s.image).unwrap();
    }
}

/// OpenWIT shards (`openwit download`'s webdataset): `KEY.png`, `KEY.txt` (one caption) and
/// `KEY.cls`.
fn write_openwit_shards(dir: &Path, set: &[Sample]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut paths = Vec::new();
    for (s, chunk) in set.chunks(20).enumerate() {
        let path = dir.join(format!("{s:05}.tar"));
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (k, sample) in chunk.iter().enumerate() {
            let key = format!("{s:05}{k:04}");
            append(&mut b, &format!("{key}.{}", sample.ext), &sample.image);
            append(&mut b, &format!("{key}.txt"), sample.captions[0].as_bytes());
            append(
                &mut b,
                &format!("{key}.cls"),
                sample.class.to_string().as_bytes(),
            );
        }
        b.finish().unwrap();
        paths.push(path);
    }
    paths
}

fn tokenizer() -> Option<Tokenizer> {
    match Tokenizer::from_default() {
        Ok(t) => Some(t),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have the vocabulary: {e}"
            );
            eprintln!("no CLIP vocabulary ({e}): skipping");
            None
        }
    }
}

fn model() -> Clip {
    Clip::new_seeded(&ModelConfig::preset("tiny-vit").unwrap(), Device::Cpu, 11)
}

/// Runs `tests/py/bench_ref.py ARGS` with the reference environment.
fn reference(py: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/bench_ref.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .args(args)
        .env("PYTHONPATH", py)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("cannot run python3");
    assert!(
        out.status.success(),
        "the clip_benchmark / scikit-learn reference failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn close(what: &str, ours: f64, theirs: &serde_json::Value) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {theirs}"));
    assert!(
        (ours - theirs).abs() <= 1e-4,
        "{what}: ours {ours}, clip_benchmark {theirs}"
    );
}

#[test]
fn the_three_formats_read_the_same_pictures_and_give_the_same_results() {
    let Some(tok) = tokenizer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let set = samples(4, 0);
    write_clip_benchmark(&dir.path().join("wds"), "test", &set, 2, false);
    write_image_folder(&dir.path().join("folder"), &set);
    let shards = write_openwit_shards(&dir.path().join("shards"), &set);
    let m = model();
    let names: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();

    let wds = EvalSet::clip_benchmark(&dir.path().join("wds"), "test").unwrap();
    assert_eq!(wds.kind, SetKind::Classification);
    assert_eq!(wds.classes, names);
    let templates = templates_for(&wds, None);
    assert_eq!(templates, TEMPLATES.map(String::from));
    let mut folder = EvalSet::image_folder(&dir.path().join("folder")).unwrap();
    // The folder names, underscores read as spaces, in sorted order.
    assert_eq!(folder.classes[0], "0 red");
    folder.classes = names.clone();
    let ours = EvalSet::shards(shards.clone(), names.clone(), Labels::Cls);

    let a = zero_shot_set(&m, &tok, &wds, &templates, 5, 2).unwrap();
    let b = zero_shot_set(&m, &tok, &folder, &templates, 64, 1).unwrap();
    let c = zero_shot_set(&m, &tok, &ours, &templates, 7, 2).unwrap();
    assert_eq!(a.images, 24);
    assert_eq!(a.templates, 3);
    assert_eq!(a.per_class.iter().map(|p| p.images).sum::<u64>(), 24);
    assert!(
        a.per_class.iter().all(|p| p.images == 4),
        "{:?}",
        a.per_class
    );
    for z in [&b, &c] {
        assert_eq!((z.images, z.top1, z.top5), (a.images, a.top1, a.top5));
        assert_eq!(z.per_class, a.per_class);
        assert_eq!(z.mean_per_class_recall, a.mean_per_class_recall);
    }
    // Balanced classes: mean per-class recall is top-1.
    assert!((a.mean_per_class_recall - a.top1).abs() < 1e-12);

    // Retrieval on OpenWIT shards (one caption each) and on the same pairs in clip_benchmark's
    // retrieval layout.
    let single: Vec<Sample> = set
        .iter()
        .map(|s| Sample {
            ext: s.ext,
            image: s.image.clone(),
            class: s.class,
            captions: vec![s.captions[0].clone()],
        })
        .collect();
    write_clip_benchmark(&dir.path().join("ret"), "test", &single, 3, true);
    let ret = EvalSet::clip_benchmark(&dir.path().join("ret"), "test").unwrap();
    assert_eq!(ret.kind, SetKind::Retrieval);
    let r1 = retrieval_set(&m, &tok, &ret, 5, 2).unwrap();
    let r2 = retrieval_set(
        &m,
        &tok,
        &EvalSet::shards(shards, Vec::new(), Labels::Cls),
        64,
        1,
    )
    .unwrap();
    assert_eq!((r1.pairs, r1.images), (24, 24));
    assert_eq!(r1.image_to_text, r2.image_to_text);
    assert_eq!(r1.text_to_image, r2.text_to_image);
    // An image folder has no captions...
    assert!(retrieval_set(&m, &tok, &folder, 8, 1).is_err());
    // ... unless its captions.tsv gives every image one: then it is the same retrieval set.
    let mut tsv = String::from("file\tclass\tcaption\n");
    for (n, s) in single.iter().enumerate() {
        let dir = format!("{}_{}", s.class, CLASSES[s.class]);
        tsv.push_str(&format!(
            "{dir}/{n:04}.png\t{}\t{}\n",
            CLASSES[s.class], s.captions[0]
        ));
    }
    std::fs::write(dir.path().join("folder/captions.tsv"), &tsv).unwrap();
    let captioned = EvalSet::image_folder(&dir.path().join("folder")).unwrap();
    assert!(captioned.has_captions());
    let r3 = retrieval_set(&m, &tok, &captioned, 9, 2).unwrap();
    assert_eq!((r3.pairs, r3.images), (24, 24));
    // (the folder lists the pairs in another order: the recalls are the same up to rounding)
    for (x, y) in r3
        .image_to_text
        .iter()
        .chain(&r3.text_to_image)
        .zip(r1.image_to_text.iter().chain(&r1.text_to_image))
    {
        assert!((x - y).abs() < 1e-9, "{r3:?} vs {r1:?}");
    }
    // one image without a caption: not a retrieval set
    let partial: String = tsv.lines().take(10).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("folder/captions.tsv"), partial).unwrap();
    assert!(
        !EvalSet::image_folder(&dir.path().join("folder"))
            .unwrap()
            .has_captions()
    );
    std::fs::write(
        dir.path().join("folder/captions.tsv"),
        "file\tclass\tcaption\nno-tab-here\n",
    )
    .unwrap();
    let err = EvalSet::image_folder(&dir.path().join("folder"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("captions.tsv:2"), "{err}");

    // JPEG in an image folder decodes too (lossy, so only the count is compared).
    let jpeg: Vec<Sample> = (0..6)
        .map(|class| Sample {
            ext: "jpg",
            image: encode(&picture(class, 1, 48), ImageFormat::Jpeg),
            class,
            captions: Vec::new(),
        })
        .collect();
    write_image_folder(&dir.path().join("jpeg"), &jpeg);
    let j = EvalSet::image_folder(&dir.path().join("jpeg")).unwrap();
    assert_eq!(
        zero_shot_set(&m, &tok, &j, &templates, 4, 1)
            .unwrap()
            .images,
        6
    );

    // A picture that does not decode is skipped, counted, and named with the decoder's reason.
    let class_dir = dir.path().join("jpeg").join(format!("0_{}", CLASSES[0]));
    std::fs::write(
        class_dir.join("broken.png"),
        b"\x89PNG\r\n\x1a\nnot a picture",
    )
    .unwrap();
    let j = EvalSet::image_folder(&dir.path().join("jpeg")).unwrap();
    let f = encode_set(&m, &tok, &j, true, false, 4, 1).unwrap();
    assert_eq!((f.labels.len(), f.undecodable), (6, 1));
    assert_eq!(f.undecodable_named.len(), 1, "{:?}", f.undecodable_named);
    let named = &f.undecodable_named[0];
    assert!(
        named.contains("broken.png: ") && named.len() > named.find(": ").unwrap() + 2,
        "{named}"
    );
}

/// An image folder as users have them: nested sub-folders, upper-case extensions (ImageNet's
/// `.JPEG`), every format torchvision's `ImageFolder` lists (BMP, TIFF, PPM and PGM too), files
/// that are not pictures, a linked folder, and `sub-x` beside `sub/deeper` (Python's string order
/// puts it before, a path's component order after). The same classes, files, order and decodable files as torchvision's
/// `ImageFolder` and PIL; a class folder without pictures is an error, as torchvision's.
#[test]
fn image_folders_are_read_as_torchvision_reads_them() {
    let Some(py) = common::python_path() else {
        return;
    };
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openwit-fetch/tests/data/images");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("set");
    let put = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let read = |rel: &str| std::fs::read(real.join(rel)).unwrap();
    let hopper = image::load_from_memory(&read("pillow/hopper.png")).unwrap();
    let as_format = |img: &image::DynamicImage, f: ImageFormat| {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, f).unwrap();
        out.into_inner()
    };
    put("cat/a.JPEG", &read("pillow/hopper.jpg"));
    put("cat/b.png", &read("skimage/chelsea.png"));
    put("cat/notes.txt", b"not a picture");
    put("cat/sub/c.webp", &read("pillow/flower.webp"));
    put("cat/sub/deeper/f.png", &read("go/basn2c16.png"));
    put("cat/sub-x/d.gif", &read("pillow/hopper.gif")); // .gif: not an ImageFolder extension
    put("cat/sub-x/e.bmp", &as_format(&hopper, ImageFormat::Bmp));
    put("cat/zz.Tif", &as_format(&hopper, ImageFormat::Tiff));
    // Binary PPM (P6) and PGM (P5), as .ppm/.pgm files are (the encoder's default is PAM, P7,
    // which PIL does not read).
    let pnm = |img: &image::DynamicImage, sub: PnmSubtype| {
        let mut out = Vec::new();
        img.write_with_encoder(PnmEncoder::new(&mut out).with_subtype(sub))
            .unwrap();
        out
    };
    put(
        "dog_house/p.ppm",
        &pnm(&hopper, PnmSubtype::Pixmap(SampleEncoding::Binary)),
    );
    put(
        "dog_house/g.pgm",
        &pnm(
            &hopper.grayscale(),
            PnmSubtype::Graymap(SampleEncoding::Binary),
        ),
    );
    put("dog_house/broken.jpg", &read("pillow/truncated_jpeg.jpg"));
    put("elk/x.jpeg", &read("skimage/rocket.jpg"));
    std::os::unix::fs::symlink(root.join("elk"), root.join("cat/linked")).unwrap();
    put("captions.tsv", b"");

    let (names, samples) = openwit_clip::eval::read_image_folder(&root).unwrap();
    let out = dir.path().join("folder.json");
    reference(
        &py,
        &["imagefolder", root.to_str().unwrap(), out.to_str().unwrap()],
    );
    let theirs = json(&out);
    let classes: Vec<String> = theirs["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().replace('_', " "))
        .collect();
    assert_eq!(names, classes);
    let theirs_samples: Vec<(String, i64)> = theirs["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_str().unwrap().to_string(), s[1].as_i64().unwrap()))
        .collect();
    let ours: Vec<(String, i64)> = samples
        .iter()
        .map(|s| (s.key.clone(), s.class.unwrap()))
        .collect();
    assert_eq!(ours, theirs_samples);
    assert_eq!(ours.len(), 11, "{ours:?}");
    for (s, d) in samples.iter().zip(theirs["decodes"].as_array().unwrap()) {
        let ok = openwit_clip::data::transform(&s.image, 32, None).is_some();
        assert_eq!(ok, d.as_bool().unwrap(), "{}: ours {ok}, PIL {d}", s.key);
    }
    // The same classes through the evaluation set reader.
    let set = EvalSet::image_folder(&root).unwrap();
    assert_eq!(set.classes, names);

    std::fs::create_dir(root.join("fox")).unwrap();
    std::fs::write(root.join("fox/readme.md"), "no pictures").unwrap();
    let err = openwit_clip::eval::read_image_folder(&root)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fox") && err.contains(".ppm"), "{err}");
    assert!(EvalSet::image_folder(&root).is_err());
}

#[test]
fn zero_shot_and_retrieval_match_clip_benchmark() {
    let Some(tok) = tokenizer() else { return };
    let Some(py) = common::python_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = model();
    let weights = dir.path().join("tiny.safetensors");
    m.save(&weights).unwrap();
    let cls_root = dir.path().join("cls");
    write_clip_benchmark(&cls_root, "test", &samples(8, 0), 3, false);
    let ret_root = dir.path().join("ret");
    write_clip_benchmark(&ret_root, "test", &samples(4, 100), 2, true);

    let set = EvalSet::clip_benchmark(&cls_root, "test").unwrap();
    let z = zero_shot_set(&m, &tok, &set, &templates_for(&set, None), 16, 2).unwrap();
    let out = dir.path().join("zs.json");
    let w = weights.to_str().unwrap();
    reference(
        &py,
        &[
            "zeroshot",
            w,
            cls_root.to_str().unwrap(),
            "test",
            out.to_str().unwrap(),
        ],
    );
    let theirs = json(&out);
    eprintln!(
        "ours: top-1 {} top-5 {} mpcr {}; clip_benchmark: {theirs}",
        z.top1, z.top5, z.mean_per_class_recall
    );
    assert_eq!(z.images, 48);
    close("top-1", z.top1, &theirs["acc1"]);
    close("top-5", z.top5, &theirs["acc5"]);
    close(
        "mean per-class recall",
        z.mean_per_class_recall,
        &theirs["mean_per_class_recall"],
    );

    let set = EvalSet::clip_benchmark(&ret_root, "test").unwrap();
    let r = retrieval_set(&m, &tok, &set, 16, 2).unwrap();
    let out = dir.path().join("ret.json");
    reference(
        &py,
        &[
            "retrieval",
            w,
            ret_root.to_str().unwrap(),
            "test",
            out.to_str().unwrap(),
        ],
    );
    let theirs = json(&out);
    eprintln!("ours: {r:?}; clip_benchmark: {theirs}");
    assert_eq!(r.images, 24);
    assert!(r.pairs > r.images, "several captions per image");
    for (i, k) in [1, 5, 10].iter().enumerate() {
        // clip_benchmark's "image retrieval" finds images for a text.
        close(
            &format!("text->image R@{k}"),
            r.text_to_image[i],
            &theirs[format!("image_retrieval_recall@{k}")],
        );
        close(
            &format!("image->text R@{k}"),
            r.image_to_text[i],
            &theirs[format!("text_retrieval_recall@{k}")],
        );
    }
}

#[test]
fn linear_probe_matches_scikit_learn() {
    let Some(tok) = tokenizer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cls");
    write_clip_benchmark(&root, "train", &samples(10, 0), 2, false);
    write_clip_benchmark(&root, "test", &samples(5, 50), 1, false);
    let m = model();
    let train = EvalSet::clip_benchmark(&root, "train").unwrap();
    let test = EvalSet::clip_benchmark(&root, "test").unwrap();
    let tr = encode_set(&m, &tok, &train, true, false, 16, 2).unwrap();
    let te = encode_set(&m, &tok, &test, true, false, 16, 2).unwrap();
    assert_eq!((tr.labels.len(), te.labels.len()), (60, 30));

    // The sweep picks C on every 5th training image of each class and refits on all of them.
    let cfg = SweepConfig {
        c_min: 1e-2,
        c_max: 1e3,
        c_steps: 6,
        ..SweepConfig::default()
    };
    let (p, _) = linear_probe_fit(
        &tr.images,
        &tr.labels,
        &te.images,
        &te.labels,
        &train.classes,
        &cfg,
        "train",
        "test",
    )
    .unwrap();
    assert_eq!(
        (p.train_images, p.validation_images, p.test_images),
        (48, 12, 30)
    );
    assert_eq!(p.c_grid.len(), 6);
    assert!(p.c_grid.contains(&p.c));
    assert!(p.converged, "{} iterations", p.iterations);
    eprintln!(
        "linear probe: C {} validation {:?} test top-1 {}",
        p.c, p.validation_top1, p.test.top1
    );

    let Some(py) = common::python_path() else {
        return;
    };
    for c in [0.1, 10.0] {
        let ours = fit_logistic(&tr.images, &tr.labels, 6, c, None, FitOptions::default());
        assert!(ours.converged, "C {c}: {} iterations", ours.iterations);
        let inp = dir.path().join("probe_in.safetensors");
        Tensor::write_safetensors(
            &[
                ("train_x", tr.images.to_kind(Kind::Double)),
                ("train_y", Tensor::from_slice(&tr.labels)),
                ("test_x", te.images.to_kind(Kind::Double)),
                ("c", Tensor::from_slice(&[c])),
            ],
            &inp,
        )
        .unwrap();
        let out = dir.path().join("probe_out.safetensors");
        reference(
            &py,
            &["probe", inp.to_str().unwrap(), out.to_str().unwrap()],
        );
        let r = common::read(&out);
        // scikit-learn's coef_ is (classes, features); ours (features, classes). The intercept of
        // a multinomial model is fixed up to a constant: compare both centered.
        let coef = r["coef"].tr();
        let scale = coef.abs().max().double_value(&[]);
        let dw = common::max_diff(&ours.weight, &coef) / scale;
        let center = |t: &Tensor| t - t.mean(Kind::Double);
        let db = common::max_diff(&center(&ours.bias), &center(&r["intercept"])) / scale;
        let pred = ours.logits(&te.images).argmax(1, false);
        let agree = pred
            .eq_tensor(&r["test_pred"])
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let acc = |p: &Tensor| {
            p.eq_tensor(&Tensor::from_slice(&te.labels))
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        };
        eprintln!(
            "C {c}: coefficients differ by {dw:.2e} (relative), intercepts {db:.2e}; accuracy ours {} sklearn {}; {} vs {} iterations",
            acc(&pred),
            acc(&r["test_pred"]),
            ours.iterations,
            r["iterations"].int64_value(&[0])
        );
        assert_eq!(acc(&pred), acc(&r["test_pred"]), "C {c}: test accuracy");
        assert_eq!(agree, 1.0, "C {c}: the predictions differ");
        assert!(dw < 1e-4, "C {c}: coefficients differ by {dw}");
        assert!(db < 1e-4, "C {c}: intercepts differ by {db}");
    }
}

#[test]
fn the_eval_stage_reports_the_three_measures_on_a_benchmark_set() {
    use openwit_clip::stage::{EvalConfig, EvalStage};
    use openwit_core::PipelineSettings;
    use openwit_exec::StageOutcome;
    if tokenizer().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_clip_benchmark(&dir.path().join("cls"), "train", &samples(5, 0), 2, false);
    write_clip_benchmark(&dir.path().join("cls"), "test", &samples(2, 50), 1, false);
    write_openwit_shards(&dir.path().join("heldout"), &samples(2, 80));
    model().save(&dir.path().join("tiny.safetensors")).unwrap();
    let cfg: EvalConfig = serde_json::from_value(serde_json::json!({
        "model": "tiny-vit",
        "weights": "tiny.safetensors",
        "benchmark": "cls",
        "retrieval_shards": ["heldout"],
        "linear_probe": {
            "train": { "benchmark": "cls", "split": "train" },
            "test": { "benchmark": "cls", "split": "test" },
            "c_min": 0.01, "c_max": 100.0, "c_steps": 3,
        },
        "device": "cpu",
        "workers": 2,
        "batch_size": 16,
    }))
    .unwrap();
    let settings = PipelineSettings::default();
    let stage = EvalStage::new(cfg, &settings, dir.path()).unwrap();
    let work = dir.path().join("work");
    assert!(matches!(
        openwit_testkit::run_stage(&work, 1, &stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    let r = json(&work.join("eval/results.json"));
    assert_eq!(r["zero_shot"]["images"], 12, "{r}");
    assert_eq!(r["zero_shot"]["templates"], 3, "{r}");
    assert_eq!(r["zero_shot"]["per_class"].as_array().unwrap().len(), 6);
    assert_eq!(r["retrieval"]["pairs"], 12, "{r}");
    assert_eq!(r["linear_probe"]["test_images"], 12, "{r}");
    assert_eq!(r["linear_probe"]["validation_images"], 6, "{r}");
    assert_eq!(r["linear_probe"]["c_grid"].as_array().unwrap().len(), 3);
    let table = std::fs::read_to_string(work.join("eval/results.txt")).unwrap();
    eprintln!("{table}");
    for want in [
        "top-1",
        "mean per-class recall",
        "R@10",
        "linear probe",
        "C = ",
    ] {
        assert!(table.contains(want), "{want}: {table}");
    }
}

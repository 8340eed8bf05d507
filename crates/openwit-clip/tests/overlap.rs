//! The overlap analysis of `openwit eval` (the CLIP paper's): a tiny ImageFolder evaluation set,
//! a retrieval set with captions, and training shards holding exact copies (in a tar without
//! parquet, and as a parquet row with the downloaded bytes' sha256), re-encoded and 1-pixel
//! changed copies (perceptual hash within the distance), a caption equal to an evaluation text
//! (up to case and spacing), and unrelated samples. The counts per kind and the measures on the
//! set without the overlaps are checked.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use openwit_clip::stage::{EvalConfig, EvalStage};
use openwit_clip::{Clip, ModelConfig, Tokenizer};
use openwit_core::PipelineSettings;
use openwit_exec::StageOutcome;
use openwit_shard::overlap::{phash_of_bytes, sha256};
use openwit_shard::{SampleMeta, write_parquet};
use tch::Device;

/// A smooth picture: a seed-dependent random 8x8 grid of grey levels, bilinearly upscaled to
/// 64x64. Its low frequencies are all strong and spread out (phash compares the 8x8 lowest DCT
/// coefficients with their median), so small changes (a JPEG re-encoding, one pixel) keep the
/// hash within a few bits while two seeds differ in about half of them.
fn picture(seed: u64) -> RgbImage {
    let mut st = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st % 1000) as f64 / 1000.0
    };
    let grid: Vec<f64> = (0..81).map(|_| 40.0 + 175.0 * next()).collect();
    let at = |gx: usize, gy: usize| grid[gy * 9 + gx];
    RgbImage::from_fn(64, 64, |x, y| {
        let (fx, fy) = (x as f64 / 8.0, y as f64 / 8.0);
        let (gx, gy) = (fx.floor() as usize, fy.floor() as usize);
        let (tx, ty) = (fx - gx as f64, fy - gy as f64);
        let top = at(gx, gy) * (1.0 - tx) + at(gx + 1, gy) * tx;
        let bottom = at(gx, gy + 1) * (1.0 - tx) + at(gx + 1, gy + 1) * tx;
        let g = (top * (1.0 - ty) + bottom * ty).round().clamp(0.0, 255.0) as u8;
        Rgb([g, g, g])
    })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png(seed: u64) -> Vec<u8> {
    encode(&picture(seed), ImageFormat::Png)
}

fn append(b: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// An OpenWIT shard: `KEY.<ext>` and `KEY.txt` per sample.
fn write_tar(path: &Path, samples: &[(&str, Vec<u8>, String)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (k, (ext, img, caption)) in samples.iter().enumerate() {
        let key = format!("{k:09}");
        append(&mut b, &format!("{key}.{ext}"), img);
        append(&mut b, &format!("{key}.txt"), caption.as_bytes());
    }
    b.finish().unwrap();
}

const CLASSES: [&str; 3] = ["wave", "ripple", "stripe"];

/// ImageFolder `root/<class>/<n>.png` with the pictures of `seeds` (class = position % 3).
fn write_folder(root: &Path, seeds: &[u64]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (n, &s) in seeds.iter().enumerate() {
        let dir = root.join(CLASSES[n % 3]);
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = png(s);
        std::fs::write(dir.join(format!("{n:03}.png")), &bytes).unwrap();
        out.push(bytes);
    }
    out
}

fn tokenizer_present() -> bool {
    match Tokenizer::from_default() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have the vocabulary: {e}"
            );
            eprintln!("no CLIP vocabulary ({e}): skipping");
            false
        }
    }
}

#[test]
fn eval_reports_overlaps_per_kind_and_the_measures_without_them() {
    if !tokenizer_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The evaluation pictures (seeds 0..12) differ well beyond the distance from each other
    // and from the unrelated training pictures (seeds 100..): the fixture is meaningful.
    let eval_seeds: Vec<u64> = (0..12).collect();
    let other_seeds: Vec<u64> = (100..106).collect();
    let hashes: Vec<u64> = eval_seeds
        .iter()
        .chain(&other_seeds)
        .map(|&s| phash_of_bytes(&png(s)).unwrap())
        .collect();
    for i in 0..hashes.len() {
        for j in 0..i {
            let dist = (hashes[i] ^ hashes[j]).count_ones();
            assert!(
                dist > 8,
                "fixture pictures {i} and {j} are {dist} bits apart"
            );
        }
    }
    let eval = write_folder(&d.join("eval"), &eval_seeds);
    // The probe learns from other pictures of the same classes.
    write_folder(&d.join("probe_train"), &(200..224).collect::<Vec<_>>());
    // The retrieval set: 6 pictures with captions.
    let retrieval: Vec<(&str, Vec<u8>, String)> = (300..306)
        .map(|s| ("png", png(s), format!("A wavy picture number {s}")))
        .collect();
    write_tar(&d.join("retrieval/00000.tar"), &retrieval);

    // Training shards. 00000: no parquet (read from the tar).
    let mut changed = picture(2);
    changed.put_pixel(10, 10, Rgb([0, 0, 0]));
    let mut train0: Vec<(&str, Vec<u8>, String)> = vec![
        // eval 0, the very bytes: sha256 and phash
        ("png", eval[0].clone(), "some caption".into()),
        // eval 1, re-encoded as JPEG: phash only
        (
            "jpg",
            encode(&picture(1), ImageFormat::Jpeg),
            "another caption".into(),
        ),
        // eval 2 with one pixel changed: phash only
        (
            "png",
            encode(&changed, ImageFormat::Png),
            "third caption".into(),
        ),
        // a caption equal to retrieval item 3's, up to case and spacing
        ("png", png(100), "a  WAVY picture number 303 ".into()),
    ];
    for &s in &other_seeds[1..] {
        train0.push(("png", png(s), format!("unrelated {s}")));
    }
    write_tar(&d.join("train/00000.tar"), &train0);
    // 00001: its parquet says what `download` fetched: row 0 had eval 3's bytes (stored
    // re-encoded in the tar, which is not read), row 1 failed (not a training sample).
    write_tar(
        &d.join("train/00001.tar"),
        &[("jpg", encode(&picture(3), ImageFormat::Jpeg), "x".into())],
    );
    let mut ok = SampleMeta::new("http://a/3.png", Some("x".into()), "000010000".into());
    ok.set_success(64, 64, 64, 64, hex(&sha256(&eval[3])));
    ok.phash = Some(format!("{:016x}", phash_of_bytes(&eval[3]).unwrap()));
    let mut failed = SampleMeta::new("http://a/4.png", None, "000010001".into());
    failed.sha256 = Some(hex(&sha256(&eval[4])));
    failed.error_message = Some("too_small: tiny".into());
    write_parquet(&d.join("train/00001.parquet"), &[ok, failed], &[]).unwrap();

    Clip::new_seeded(&ModelConfig::preset("tiny-vit").unwrap(), Device::Cpu, 3)
        .save(&d.join("tiny.safetensors"))
        .unwrap();
    let cfg: EvalConfig = serde_json::from_value(serde_json::json!({
        "model": "tiny-vit",
        "weights": "tiny.safetensors",
        "folder": "eval",
        "retrieval_shards": ["retrieval"],
        "overlap_shards": ["train"],
        "linear_probe": {
            "train": { "folder": "probe_train" },
            "test": { "folder": "eval" },
            "c_min": 0.1, "c_max": 10.0, "c_steps": 2,
        },
        "device": "cpu",
        "workers": 2,
        "batch_size": 8,
    }))
    .unwrap();
    let stage = EvalStage::new(cfg, &PipelineSettings::default(), d).unwrap();
    let work = d.join("work");
    assert!(matches!(
        openwit_testkit::run_stage(&work, 1, &stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("eval/results.json")).unwrap()).unwrap();
    let o = &r["overlap"];
    // 9 samples in 00000.tar + the one success of 00001.parquet.
    assert_eq!(o["training_samples"], 10, "{o}");
    assert_eq!(o["phash_distance"], 4, "{o}");
    let z = &o["zero_shot"];
    assert_eq!(z["items"], 12, "{z}");
    assert_eq!(z["sha256"], 2, "eval 0 (tar) and 3 (parquet): {z}");
    assert_eq!(z["phash"], 4, "eval 0..=3: {z}");
    assert_eq!(z["caption"], 0, "{z}");
    assert_eq!(z["overlapping"], 4, "{z}");
    assert_eq!(z["training_sha256"], 2, "{z}");
    assert_eq!(z["training_phash"], 4, "{z}");
    assert_eq!(r["zero_shot"]["images"], 12);
    assert_eq!(z["clean"]["images"], 8, "{z}");
    assert_eq!(z["clean"]["classes"], 3, "{z}");
    let t = &o["retrieval"];
    assert_eq!(t["items"], 6, "{t}");
    assert_eq!(t["caption"], 1, "{t}");
    assert_eq!(t["sha256"], 0, "{t}");
    assert_eq!(t["phash"], 0, "{t}");
    assert_eq!(t["overlapping"], 1, "{t}");
    assert_eq!(r["retrieval"]["pairs"], 6);
    assert_eq!(t["clean"]["pairs"], 5, "{t}");
    assert_eq!(t["clean"]["images"], 5, "{t}");
    let p = &o["linear_probe"];
    assert_eq!(p["items"], 12, "{p}");
    assert_eq!(p["overlapping"], 4, "{p}");
    assert_eq!(r["linear_probe"]["test_images"], 12);
    let clean_images: u64 = p["clean"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["images"].as_u64().unwrap())
        .sum();
    assert_eq!(clean_images, 8, "{p}");
    let table = std::fs::read_to_string(work.join("eval/results.txt")).unwrap();
    eprintln!("{table}");
    assert!(
        table.contains("4 of 12 items overlap (33.33%): sha256 2, phash 4, caption 0"),
        "{table}"
    );
    assert!(table.contains("without overlaps: 8 images"), "{table}");
    assert!(table.contains("without overlaps: 5 pairs"), "{table}");

    // Every overlap, listed: the set, the item, the kind, the training sample.
    let listed = std::fs::read_to_string(work.join("eval/overlap.jsonl")).unwrap();
    let pairs: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_set = |set: &str| -> Vec<(String, String, String, String, Option<u64>)> {
        let mut v: Vec<_> = pairs
            .iter()
            .filter(|p| p["set"] == set)
            .map(|p| {
                let item = p["item"].as_str().unwrap();
                let shard = Path::new(p["shard"].as_str().unwrap());
                (
                    // the item's path below the set's folder, or `SHARD.tar:KEY`
                    item.rsplit(['/', '\\'])
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("<"),
                    p["kind"].as_str().unwrap().to_string(),
                    shard.file_name().unwrap().to_string_lossy().into_owned(),
                    p["key"].as_str().unwrap().to_string(),
                    p["distance"].as_u64(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let zs = of_set("zero_shot");
    let kinds: Vec<(&str, &str, &str, &str)> = zs
        .iter()
        .map(|(i, k, s, key, _)| (i.as_str(), k.as_str(), s.as_str(), key.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("000.png<wave", "phash", "00000.tar", "000000000"),
            ("000.png<wave", "sha256", "00000.tar", "000000000"),
            ("001.png<ripple", "phash", "00000.tar", "000000001"),
            ("002.png<stripe", "phash", "00000.tar", "000000002"),
            ("003.png<wave", "phash", "00001.tar", "000010000"),
            ("003.png<wave", "sha256", "00001.tar", "000010000"),
        ],
        "{listed}"
    );
    for (item, kind, _, _, distance) in &zs {
        match kind.as_str() {
            "phash" => assert!(distance.is_some_and(|d| d <= 4), "{item}: {distance:?}"),
            _ => assert_eq!(*distance, None, "{item}"),
        }
    }
    assert_eq!(zs[0].4, Some(0), "the very bytes: {listed}");
    // The parquet's row gives the URL; the tar-only shard has none.
    let url_of = |key: &str| {
        pairs
            .iter()
            .find(|p| p["set"] == "zero_shot" && p["key"] == key)
            .map(|p| p["url"].clone())
            .unwrap()
    };
    assert_eq!(url_of("000010000"), "http://a/3.png");
    assert!(url_of("000000001").is_null());
    // The probe's test set is the same folder: the same overlaps.
    assert_eq!(of_set("linear_probe"), zs);
    let rt: Vec<&serde_json::Value> = pairs.iter().filter(|p| p["set"] == "retrieval").collect();
    assert_eq!(rt.len(), 1, "{listed}");
    assert_eq!(rt[0]["kind"], "caption");
    assert!(
        rt[0]["item"]
            .as_str()
            .unwrap()
            .ends_with("00000.tar:000000003"),
        "{listed}"
    );
    assert_eq!(rt[0]["key"], "000000003");
    assert_eq!(rt[0]["caption"], "a  WAVY picture number 303 ");
    assert_eq!(pairs.len(), 13, "{listed}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A run that held part of its shards out (`[train] held_out_percent`) trained on the rest only:
/// the overlap analysis of its held-out part against its training data leaves the held-out
/// samples out of the training side (they would match themselves), from the tar and from the
/// parquet alike, and still finds a near-copy of a held-out picture that training did read.
#[test]
fn the_held_out_part_is_compared_with_the_training_part_only() {
    use openwit_clip::data::held_out;
    use openwit_clip::overlap::{Training, find_overlaps, for_each_training_sample};
    use openwit_shard::overlap::EvalPrint;
    let percent = 30;
    let pictures: Vec<Vec<u8>> = (0..40).map(png).collect();
    let held: Vec<usize> = (0..pictures.len())
        .filter(|&i| held_out(&pictures[i], percent))
        .collect();
    assert!(
        held.len() >= 4 && held.len() <= 24,
        "the fixture holds out {} of 40",
        held.len()
    );
    // A JPEG copy of a held-out picture that lands on the training side.
    let (copy_of, copy) = held
        .iter()
        .map(|&i| (i, encode(&picture(i as u64), ImageFormat::Jpeg)))
        .find(|(_, bytes)| !held_out(bytes, percent))
        .expect("a held-out picture whose JPEG copy is trained on");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut samples: Vec<(&str, Vec<u8>, String)> = pictures
        .iter()
        .enumerate()
        .map(|(i, p)| ("png", p.clone(), format!("picture {i}")))
        .collect();
    samples.push(("jpg", copy.clone(), "a copy".into()));
    // 00000: tar only; 00001: the same samples with the parquet `download` writes.
    write_tar(&d.join("00000.tar"), &samples);
    write_tar(&d.join("00001.tar"), &samples);
    let metas: Vec<SampleMeta> = samples
        .iter()
        .enumerate()
        .map(|(k, (_, bytes, caption))| {
            let mut m = SampleMeta::new(
                format!("http://a/{k}"),
                Some(caption.clone()),
                format!("{k:09}"),
            );
            m.set_success(64, 64, 64, 64, hex(&sha256(bytes)));
            m.phash = Some(format!("{:016x}", phash_of_bytes(bytes).unwrap()));
            m
        })
        .collect();
    write_parquet(&d.join("00001.parquet"), &metas, &[]).unwrap();
    let training = Training {
        shards: vec![d.join("00000.tar"), d.join("00001.tar")],
        held_out_percent: percent,
    };
    let trained = samples.len() - held.len();
    let mut captions = Vec::new();
    let n =
        for_each_training_sample(&training, |t| captions.push(t.caption.clone().unwrap())).unwrap();
    assert_eq!(n as usize, 2 * trained);
    for &i in &held {
        assert!(
            !captions.contains(&format!("picture {i}")),
            "held-out picture {i} read as training data"
        );
    }
    // The held-out part as the evaluation set: only the copy's original overlaps.
    let prints: Vec<EvalPrint> = held
        .iter()
        .map(|&i| EvalPrint::of(&pictures[i], Vec::new()))
        .collect();
    let (flags, total) = find_overlaps(&[&prints], &training, 4).unwrap();
    assert_eq!(total as usize, 2 * trained);
    let c = &flags[0].counts;
    assert_eq!(c.items as usize, held.len());
    assert_eq!(c.sha256, 0, "{c:?}");
    assert_eq!(c.overlapping, 1, "only picture {copy_of}'s copy: {c:?}");
    let at = held.iter().position(|&i| i == copy_of).unwrap();
    assert!(flags[0].overlapping[at]);
    // Without the split every held-out picture matches itself.
    let all = Training {
        held_out_percent: 0,
        ..training
    };
    let (flags, _) = find_overlaps(&[&prints], &all, 4).unwrap();
    assert_eq!(flags[0].counts.sha256 as usize, held.len());
}

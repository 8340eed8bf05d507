//! The report's HTML, byte for byte: three gathered `ReportData` (every section filled, with text
//! that needs escaping; another shape of every section; nothing at all) rendered at a fixed time
//! and compared with the pages committed in `tests/golden/`.
//!
//! A deliberate change of the page: run with `OPENWIT_BLESS=1` to rewrite the committed pages,
//! then review their diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openwit_index::report::{EntryCount, FunnelRow, ReportData, render_at};
use serde_json::{Value, json};

/// 2026-11-27 10:49 UTC.
const MADE: i64 = 1_795_776_578;

/// A small deterministic sequence (no randomness crate needed for a fixed page).
fn seq(n: usize, seed: u64, modulo: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % modulo
        })
        .collect()
}

fn funnel_row(stage: &str, state: &str, n: u64, drops: &[(&str, u64)]) -> FunnelRow {
    FunnelRow {
        stage: stage.into(),
        state: state.into(),
        tasks_done: n % 7,
        tasks_total: 7,
        items_in: n,
        items_out: n - drops.iter().map(|d| d.1).sum::<u64>(),
        drops: drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        elapsed_s: n as f64 / 3.0,
    }
}

fn train_rows() -> Vec<BTreeMap<String, f64>> {
    (0..40)
        .map(|i| {
            let s = i as f64;
            let mut r = BTreeMap::new();
            r.insert("step".into(), s * 10.0);
            r.insert("epoch".into(), (s / 10.0).floor());
            r.insert("time".into(), 1000.0 + s);
            r.insert("elapsed_s".into(), s * 1.5);
            r.insert("samples".into(), s * 256.0);
            r.insert("loss".into(), 5.0 / (1.0 + s));
            r.insert("val_loss".into(), 5.5 / (1.0 + s));
            if i % 10 == 9 {
                r.insert("held-out top1".into(), s / 100.0);
                r.insert("held-out R@5".into(), s / 80.0);
            }
            r.insert("lr".into(), 1e-4 * (1.0 - s / 40.0));
            r.insert("temperature".into(), 0.07 + s / 1000.0);
            r.insert("grad_norm".into(), 1.0 + (s / 3.0).sin());
            r.insert("tokens/s".into(), 1e5 + s);
            r.insert("z<&>".into(), s);
            r
        })
        .collect()
}

fn per_class(names: &[&str], seed: u64) -> Vec<Value> {
    let v = seq(names.len() * 3, seed, 1000);
    names
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "class": c,
                "images": 10 + v[3 * i] % 40,
                "top1": v[3 * i + 1] as f64 / 1000.0,
                "confused_with": [
                    {"class": names[(i + 1) % names.len()], "images": v[3 * i + 2] % 9},
                    {"class": names[(i + 2) % names.len()], "images": 1}
                ]
            })
        })
        .collect()
}

/// Every section filled; text with markup characters everywhere it is shown.
fn rich() -> ReportData {
    let classes = [
        "cat",
        "dog & co",
        "<b>bird</b>",
        "fish \"salmon\"",
        "l'arbre",
    ];
    let entries: Vec<EntryCount> = (0..620)
        .map(|i| {
            let m = if i % 9 == 0 { 0 } else { 5000 / (i as u64 + 1) };
            EntryCount {
                entry: if i % 50 == 0 {
                    format!("entry <{i}> & 'q'")
                } else {
                    format!("entry {i}")
                },
                matches: m,
                kept: m.min(40),
            }
        })
        .collect();
    let reasons: Vec<(String, u64)> = (0..25).map(|i| (format!("reason_{i}"), 30 - i)).collect();
    let drops: Vec<(&str, u64)> = reasons.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    ReportData {
        workdir: PathBuf::from("/runs/a <b> & \"c\" 'd'"),
        funnel: vec![
            funnel_row("queries", "done", 120, &[]),
            funnel_row(
                "crawl",
                "done",
                5000,
                &[("robots", 12), ("opt-out <tdm>", 3)],
            ),
            funnel_row("download", "running & 'late'", 4000, &drops),
            funnel_row("index", "pending", 0, &[]),
        ],
        funnel_note: Some("ignored when the funnel has rows".into()),
        entries,
        entries_source: Some("curate/entry_counts.parquet".into()),
        shards: 3,
        rows: 4000,
        successes: 3172,
        caption_lengths: seq(500, 1, 400),
        widths: seq(400, 2, 5000),
        heights: seq(400, 3, 3000),
        failures_by_reason: reasons
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .chain([("<script>".to_string(), 7)])
            .collect(),
        failures_by_host: (0..30)
            .map(|i| (format!("host{i}.example"), (i * 7 % 13) as u64 + 1))
            .collect(),
        indexed: Some((3172, 3)),
        train: train_rows(),
        eval: vec![
            (
                "results.json".into(),
                json!({
                    "model": "train/model <final>.safetensors",
                    "zero_shot": {
                        "classes": 5, "set": "pets & birds", "images": 120,
                        "top1": 0.4321, "top5": 0.9, "mean_per_class_recall": 0.41,
                        "chance": 0.2, "per_class": per_class(&classes, 4)
                    },
                    "retrieval": {
                        "pairs": 500, "set": "coco 'val'", "images": 500,
                        "image_to_text": [0.1, 0.3, 0.45], "text_to_image": [0.12, 0.33, 0.5]
                    },
                    "linear_probe": {
                        "classes": 5, "c": 0.031622, "test_set": "pets <test>",
                        "test_images": 60, "top1": 0.7, "top5": 0.99,
                        "mean_per_class_recall": 0.69,
                        "per_class": per_class(&classes[..4], 5)
                    },
                    "overlap": {
                        "training_samples": 3172, "training": "download/ & more",
                        "held_out_percent": 5, "phash_distance": 4,
                        "zero_shot": {"items": 120, "overlapping": 3, "sha256": 1, "phash": 2, "caption": 0,
                                      "clean": {"top1": 0.43, "top5": 0.89, "mean_per_class_recall": 0.4}},
                        "retrieval": {"items": 500, "overlapping": 10, "sha256": 4, "phash": 5, "caption": 1,
                                      "clean": {"pairs": 490, "image_to_text": [0.1, 0.29], "text_to_image": [0.11, 0.32]}},
                        "linear_probe": {"items": 60, "overlapping": 60, "sha256": 60, "phash": 0, "caption": 0}
                    }
                }),
            ),
            (
                "other <eval>.json".into(),
                json!({
                    "score": 0.5, "name": "x & y", "ok": true, "none": null,
                    "nested": {"a": 1, "b": [1, 2.5, "three"], "c": {"d": -4}},
                    "long": "z".repeat(250),
                    "big": (0..60).collect::<Vec<_>>(),
                    "many": (0..230).map(|i| json!({"k": i})).collect::<Vec<_>>().into_iter().take(45).collect::<Vec<_>>()
                }),
            ),
        ],
        overlap_pairs: vec![
            json!({"set": "zero_shot", "item": "/data/pets <val>/cat/001.png", "kind": "sha256",
                   "shard": "download/00000.tar", "key": "000000007", "url": "http://a.example/c?x=1&y=2",
                   "caption": "a cat & a \"dog\""}),
            json!({"set": "zero_shot", "item": "/data/pets <val>/dog/002.png", "kind": "phash", "distance": 3,
                   "shard": "download/00001.tar", "key": "000010002", "url": null, "caption": null}),
            json!({"set": "retrieval", "item": "coco/00000.tar:000000004", "kind": "caption",
                   "shard": "download/00002.tar", "key": "000020011", "caption": "x".repeat(200)}),
        ],
        overlap_pairs_total: 14,
        problems: vec![
            (
                PathBuf::from("eval/broken <1>.json"),
                "EOF while parsing & 'more'".into(),
            ),
            (
                PathBuf::from("download/00001.parquet"),
                "not a parquet file".into(),
            ),
        ],
    }
}

/// The other shape of every section: entries counted from the shards, an evaluation with only a
/// probe (its per-class table alone), only some training curves, an overlap without `clean`.
fn other() -> ReportData {
    let mut train = train_rows();
    for r in &mut train {
        r.retain(|k, _| k == "step" || k == "lr" || k == "loss");
    }
    ReportData {
        workdir: PathBuf::from("work/demo"),
        funnel: vec![funnel_row("download", "done", 10, &[("http_404", 2)])],
        funnel_note: None,
        entries: (0..30)
            .map(|i| EntryCount {
                entry: format!("e{i}"),
                matches: i % 4,
                kept: i % 3,
            })
            .collect(),
        entries_source: Some("download/*.parquet".into()),
        shards: 1,
        rows: 0,
        successes: 0,
        caption_lengths: vec![],
        widths: vec![5000],
        heights: vec![0, 1],
        failures_by_reason: BTreeMap::new(),
        failures_by_host: BTreeMap::new(),
        indexed: None,
        train,
        eval: vec![
            (
                "probe.json".into(),
                json!({
                    "linear_probe": {"classes": 0, "test_set": "t", "test_images": 3,
                                     "per_class": per_class(&["a", "b", "c"], 6)},
                    "overlap": {"training_samples": 1, "training": "x", "phash_distance": 0,
                                "zero_shot": {"items": 0, "overlapping": 0}, "retrieval": 3}
                }),
            ),
            ("list.json".into(), json!([1, "a", false])),
            ("scalar.json".into(), json!(3)),
        ],
        // Pairs without a `results.json` to show them under.
        overlap_pairs: vec![json!({"item": "a.png", "kind": "sha256", "key": "1"})],
        overlap_pairs_total: 1,
        problems: vec![],
    }
}

/// Nothing ran: every section says what is missing.
fn empty() -> ReportData {
    ReportData {
        workdir: PathBuf::from("/tmp/empty"),
        funnel_note: Some("no <code>openwit.sqlite</code> & no runs".into()),
        ..Default::default()
    }
}

fn check(name: &str, d: &ReportData) {
    let html = render_at(d, MADE);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("report_{name}.html"));
    if std::env::var_os("OPENWIT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &html).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (OPENWIT_BLESS=1 writes it)", path.display()));
    if html != want {
        let at = html
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(html.len().min(want.len()));
        let lo = at.saturating_sub(120);
        panic!(
            "report_{name}.html differs at byte {at} (lengths {} and {}):\n got: {:?}\nwant: {:?}",
            html.len(),
            want.len(),
            String::from_utf8_lossy(
                &html.as_bytes()[lo.min(html.len())..(at + 120).min(html.len())]
            ),
            String::from_utf8_lossy(
                &want.as_bytes()[lo.min(want.len())..(at + 120).min(want.len())]
            )
        );
    }
}

#[test]
fn a_full_report_is_byte_identical_to_the_committed_page() {
    check("rich", &rich());
}

#[test]
fn the_other_shape_of_every_section_is_byte_identical() {
    check("other", &other());
}

#[test]
fn an_empty_report_is_byte_identical() {
    check("empty", &empty());
}

#[test]
fn the_template_escapes_with_the_one_escape_function() {
    let text = "a/b <c> & \"d\" 'e'";
    let d = ReportData {
        workdir: PathBuf::from(text),
        funnel_note: Some(text.into()),
        ..Default::default()
    };
    let html = render_at(&d, MADE);
    let escaped = openwit_core::escape::html(text);
    assert_eq!(html.matches(&escaped).count(), 3, "{html}");
    assert!(!html.contains(text));
    // minijinja's own escaper would write these two.
    assert!(!html.contains("&#x27;") && !html.contains("&#x2f;"));
}

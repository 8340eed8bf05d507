//! The curate and balance stages end to end through the real executor, on generated candidate
//! parquet files and a generated query list; outputs checked against a brute-force reference.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use openwit_core::NoProgress;
use openwit_curate::balance::{candidate_key, keep, probabilities};
use openwit_curate::{CurateConfig, CurateStage, DedupMode, quality};
use openwit_exec::{LocalExecutor, RunOptions, StageOutcome};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ENTRIES: &[&str] = &[
    "dog", "cat", "hot dog", "New York", "beach", "red car", "bridge", "sunset", "York", "tree",
];

/// Writes a candidate parquet file (contract schema) with small row groups.
fn write_candidates(path: &Path, rows: &[(String, Option<String>)]) {
    // The contract's columns (`openwit_core::artifact::candidates`), `caption` nullable: rows
    // without one, as another tool may write them, test the filters.
    let schema = Arc::new(Schema::new(
        openwit_core::artifact::candidates::COLUMNS
            .iter()
            .map(|(n, t, null)| Field::new(*n, t.clone(), *null || *n == "caption"))
            .collect::<Vec<_>>(),
    ));
    let n = rows.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.as_str()),
        )),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.as_deref()))),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| "alt"))),
        Arc::new(StringArray::from_iter(
            (0..n).map(|i| Some(format!("http://site/{i}.html"))),
        )),
        Arc::new(StringArray::from_iter((0..n).map(|_| None::<&str>))),
        Arc::new(Int32Array::from_iter((0..n).map(|i| Some(i as i32 % 500)))),
        Arc::new(Int32Array::from_iter((0..n).map(|_| None))),
        Arc::new(StringArray::from_iter_values((0..n).map(|_| "test"))),
        Arc::new(Int64Array::from_iter((0..n).map(|i| Some(i as i64)))),
        Arc::new(StringArray::from_iter((0..n).map(|_| None::<&str>))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(250))
        .build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// A pool with every kind of row: matching English captions (a heavy head on "dog"),
/// non-English, boilerplate, camera names, URLs, HTML entities, nulls, and duplicates.
fn generate(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let english = [
        "A happy dog running on the beach",
        "My cat sleeping under a tree",
        "Eating a hot dog in New York",
        "An old red car near the bridge",
        "Sunset over the beach, with a dog.",
        "The dog and the cat",
        "Walking the dog at sunset",
        "A tall tree next to a stone bridge",
    ];
    let bad = [
        "IMG_1234.JPG",
        "DSC00042",
        "20160716_113957.JPG",
        "Canon EOS 5D f/2.8 1/200s ISO100",
        "image",
        "click here",
        "https://example.com/dog.jpg",
        "dog",
        "",
        "Ein Hund läuft am Strand entlang",
        "Un chien court sur la plage",
        "Собака бежит по пляжу",
        "A picture of nothing in particular",
    ];
    let mut files = Vec::new();
    let mut dup_pool: Vec<(String, Option<String>)> = Vec::new();
    for f in 0..2 {
        let mut rows = Vec::new();
        for i in 0..2000 {
            let url = format!("http://img.example/{f}/{i}.jpg");
            let r: f64 = rng.random();
            let caption = if r < 0.45 {
                Some(format!(
                    "{} #{i}",
                    english[rng.random_range(0..english.len())]
                ))
            } else if r < 0.55 {
                Some(format!("Tom &amp;amp; a dog&nbsp;in   New York {i}"))
            } else if r < 0.9 {
                Some(bad[rng.random_range(0..bad.len())].to_string())
            } else if r < 0.92 {
                None
            } else if !dup_pool.is_empty() {
                // A duplicate: same URL, same or other caption.
                let (u, c) = dup_pool[rng.random_range(0..dup_pool.len())].clone();
                rows.push((
                    u,
                    if rng.random_bool(0.5) {
                        c
                    } else {
                        Some(format!("Another dog caption {i}"))
                    },
                ));
                continue;
            } else {
                Some(format!("Yet another dog photo caption {i}"))
            };
            if rng.random_bool(0.1) {
                dup_pool.push((url.clone(), caption.clone()));
            }
            rows.push((url, caption));
        }
        let p = dir.join(format!("cand-{f}.parquet"));
        write_candidates(&p, &rows);
        files.push(p);
    }
    let q = dir.join("metadata.json");
    std::fs::write(&q, serde_json::to_string(ENTRIES).unwrap()).unwrap();
    (files, q)
}

#[derive(Debug, Clone, PartialEq, PartialOrd, Eq, Ord)]
struct Row {
    url: String,
    caption: String,
    language: String,
    ids: Vec<i32>,
    kept: bool,
}

fn read_rows(files: &[PathBuf]) -> Vec<Row> {
    let mut out = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let s = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (u, c, l) = (s("url"), s("caption"), s("language"));
            let ids = b
                .column_by_name("entry_ids")
                .unwrap()
                .as_any()
                .downcast_ref::<ListArray>()
                .unwrap()
                .clone();
            let kept = b
                .column_by_name("kept")
                .unwrap()
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                let v = ids.value(i);
                let v = v.as_any().downcast_ref::<Int32Array>().unwrap();
                out.push(Row {
                    url: u.value(i).into(),
                    caption: c.value(i).into(),
                    language: l.value(i).into(),
                    ids: v.values().to_vec(),
                    kept: kept.value(i),
                });
            }
        }
    }
    out
}

/// Every row of `curate/dropped/*.parquet`: (url, caption, reason, seq).
fn dropped_rows(workdir: &Path) -> Vec<(Option<String>, Option<String>, String, u64)> {
    let dir = workdir.join("curate/dropped");
    let mut out = Vec::new();
    let Ok(files) = std::fs::read_dir(&dir) else {
        return out;
    };
    for f in files {
        let f = std::fs::File::open(f.unwrap().path()).unwrap();
        for b in ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let s = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (url, cap, reason) = (s("url"), s("caption"), s("reason"));
            let seq = b
                .column_by_name("seq")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
                out.push((
                    opt(&url),
                    opt(&cap),
                    reason.value(i).to_string(),
                    seq.value(i),
                ));
            }
        }
    }
    out
}

fn parts(workdir: &Path, stage: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(workdir.join(stage))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".parquet") && n != "entry_counts.parquet"
        })
        .collect();
    v.sort();
    v
}

fn run(workdir: &Path, cfg: CurateConfig, seed: u64) -> (Vec<Row>, serde_json::Value) {
    let listing = cfg.dropped_rows;
    let stage = CurateStage::new(cfg, seed, Path::new("/"), &[]).unwrap();
    let mut ex = openwit_testkit::executor(workdir, 2);
    assert!(matches!(
        ex.run_stage(&stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    assert_eq!(ex.run_stage(&stage).unwrap(), StageOutcome::UpToDate);
    // What a downstream stage sees: every committed `.parquet` output except entry_counts is a
    // part of the curated table (the intermediate files have another extension).
    let outs: Vec<String> = ex
        .state()
        .tasks("curate")
        .unwrap()
        .into_iter()
        .flat_map(|t| t.outputs)
        .filter(|o| {
            o.ends_with(".parquet")
                && !o.ends_with("entry_counts.parquet")
                && !o.starts_with("curate/dropped/")
        })
        .collect();
    assert!(!outs.is_empty());
    for o in &outs {
        assert!(o.starts_with("curate/part-"), "{o}");
    }
    // The dropped rows' listing holds exactly what the map tasks counted, reason by reason.
    let tasks = ex.state().tasks("curate").unwrap();
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.task != openwit_core::REDUCE_TASK) {
        for (k, v) in &t.drops {
            *counted.entry(k.clone()).or_default() += v;
        }
    }
    let listed = dropped_rows(workdir);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, reason, _) in &listed {
        *by_reason.entry(reason.clone()).or_default() += 1;
    }
    if listing {
        assert!(!counted.is_empty(), "the generated input has drops");
        assert_eq!(by_reason, counted, "dropped listing vs drop counts");
    } else {
        assert!(!workdir.join("curate/dropped").exists());
    }
    let seqs: HashSet<u64> = listed.iter().map(|r| r.3).collect();
    assert_eq!(seqs.len(), listed.len(), "each dropped row listed once");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workdir.join("curate/stats.json")).unwrap()).unwrap();
    let mut rows = read_rows(&parts(workdir, "curate"));
    rows.sort();
    (rows, stats)
}

fn config(files: &[PathBuf], q: &Path, t: u64) -> CurateConfig {
    let mut cfg = CurateConfig {
        candidates: files.to_vec(),
        queries: Some(q.to_path_buf()),
        ..Default::default()
    };
    cfg.balance.t = t;
    cfg
}

/// The reference: read the inputs in order, clean, filter, match by brute force, dedup by first
/// occurrence, count, draw.
fn reference(files: &[PathBuf], cfg: &CurateConfig, seed: u64) -> Vec<Row> {
    let q = quality::Quality::new(&cfg.quality);
    let mut cands = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let u = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let c = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                let caption = quality::clean(if c.is_null(i) { "" } else { c.value(i) });
                if q.check(&caption).is_some() {
                    continue;
                }
                let (lang, _) = openwit_curate::lang::detect(cfg.language.engine, &caption);
                if lang != "en" {
                    continue;
                }
                let ids: Vec<i32> = openwit_curate::matcher::brute_force(ENTRIES, &caption)
                    .into_iter()
                    .map(|e| e as i32)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                cands.push((u.value(i).to_string(), caption, ids));
            }
        }
    }
    let mut seen = HashSet::new();
    let cands: Vec<_> = cands
        .into_iter()
        .filter(|(u, c, _)| match cfg.dedup {
            DedupMode::Url => seen.insert((u.clone(), String::new())),
            DedupMode::UrlCaption => seen.insert((u.clone(), c.clone())),
            DedupMode::None => true,
        })
        .collect();
    let mut counts = vec![0u64; ENTRIES.len()];
    for (_, _, ids) in &cands {
        for &e in ids {
            counts[e as usize] += 1;
        }
    }
    let p = probabilities(&counts, cfg.balance.t, cfg.balance.oversample);
    let mut rows: Vec<Row> = cands
        .into_iter()
        .map(|(url, caption, ids)| Row {
            kept: keep(seed, candidate_key(&url, &caption), &ids, &p),
            url,
            caption,
            language: "en".into(),
            ids,
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn curate_matches_the_reference_and_is_split_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let (files, q) = generate(dir.path());
    let cfg = config(&files, &q, 150);
    let (rows, stats) = run(&dir.path().join("w1"), cfg.clone(), 7);
    let expect = reference(&files, &cfg, 7);
    assert_eq!(rows.len(), expect.len());
    assert_eq!(rows, expect);

    // The head entry was balanced: far more matches than t, about t kept by its own draws.
    let dog_before = expect.iter().filter(|r| r.ids.contains(&0)).count();
    let dog_kept = rows.iter().filter(|r| r.kept && r.ids.contains(&0)).count();
    assert!(dog_before > 600, "{dog_before}");
    // (Candidates matching a rarer entry too are kept by that entry's draw.)
    assert!(dog_kept < dog_before * 3 / 5, "{dog_kept} of {dog_before}");
    // HTML entities decoded before matching and storing.
    assert!(
        rows.iter()
            .any(|r| r.caption.starts_with("Tom & a dog in New York"))
    );

    // Drops by reason, and the totals add up.
    let d = &stats["drops"];
    for reason in [
        "caption_camera_name",
        "caption_boilerplate",
        "caption_url_or_path",
        "caption_too_short",
        "caption_empty",
        "language_not_kept",
        "no_match",
        "duplicate_url_caption",
    ] {
        assert!(
            d[reason].as_u64().unwrap_or(0) > 0,
            "no drop `{reason}`: {stats}"
        );
    }
    let dropped: u64 = d
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(stats["candidates"], 4000);
    assert_eq!(dropped + stats["unique"].as_u64().unwrap(), 4000, "{stats}");
    assert_eq!(
        stats["kept"].as_u64().unwrap(),
        rows.iter().filter(|r| r.kept).count() as u64
    );

    // Other task splits and partition counts: the same table.
    let mut cfg2 = cfg.clone();
    cfg2.rows_per_task = 300;
    cfg2.partitions = 3;
    let (rows2, _) = run(&dir.path().join("w2"), cfg2, 7);
    assert_eq!(rows2, rows);

    // Another seed: the same candidates, other draws.
    let (rows3, _) = run(&dir.path().join("w3"), cfg.clone(), 8);
    assert_eq!(rows3.len(), rows.len());
    assert_ne!(rows3, rows);

    // entry_counts.parquet and the plot.
    let ec = ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(dir.path().join("w1/curate/entry_counts.parquet")).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    assert_eq!(ec.num_rows(), ENTRIES.len());
    let matches = ec
        .column_by_name("matches")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    let kept = ec
        .column_by_name("kept")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(matches.value(0) as usize, dog_before);
    assert_eq!(kept.value(0) as usize, dog_kept);
    let svg = std::fs::read_to_string(dir.path().join("w1/curate/matches_per_entry.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}

#[test]
fn one_caption_per_url_and_no_balance() {
    let dir = tempfile::tempdir().unwrap();
    let (files, q) = generate(dir.path());
    let mut cfg = config(&files, &q, 20_000);
    cfg.dedup = DedupMode::Url;
    cfg.dropped_rows = false;
    let (rows, stats) = run(&dir.path().join("w"), cfg.clone(), 0);
    assert_eq!(rows, reference(&files, &cfg, 0));
    let urls: BTreeSet<&str> = rows.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls.len(), rows.len());
    assert!(stats["drops"]["duplicate_url"].as_u64().unwrap() > 0);
    // t above every count keeps everything.
    assert!(rows.iter().all(|r| r.kept));
}

#[test]
fn oversampling_keeps_a_superset() {
    let dir = tempfile::tempdir().unwrap();
    let (files, q) = generate(dir.path());
    let cfg = config(&files, &q, 100);
    let (a, _) = run(&dir.path().join("a"), cfg.clone(), 3);
    let mut cfg2 = cfg.clone();
    cfg2.balance.oversample = 2.0;
    let (b, _) = run(&dir.path().join("b"), cfg2, 3);
    let kept_a: BTreeSet<_> = a
        .iter()
        .filter(|r| r.kept)
        .map(|r| (&r.url, &r.caption))
        .collect();
    let kept_b: BTreeSet<_> = b
        .iter()
        .filter(|r| r.kept)
        .map(|r| (&r.url, &r.caption))
        .collect();
    assert!(kept_a.is_subset(&kept_b));
    assert!(kept_b.len() > kept_a.len());
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = generate(dir.path());
    let q = dir.path().join("bad.json");
    std::fs::write(&q, "[\"dog\",\n  3]").unwrap();
    let stage = CurateStage::new(config(&files, &q, 10), 0, Path::new("/"), &[]).unwrap();
    let mut ex =
        LocalExecutor::new(&dir.path().join("w"), RunOptions::default(), &NoProgress).unwrap();
    let err = ex.run_stage(&stage).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("line 2"), "{err}");

    // No input at all is a configuration error with a fix.
    let err = CurateStage::new(CurateConfig::default(), 0, Path::new("/"), &[])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fix:"), "{err}");

    // A parquet file without a caption column.
    let p = dir.path().join("nocap.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("url", DataType::Utf8, false)]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["http://x/y.jpg"])) as ArrayRef],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let good_q = dir.path().join("metadata.json");
    let stage = CurateStage::new(config(&[p], &good_q, 10), 0, Path::new("/"), &[]).unwrap();
    let err = openwit_testkit::run_stage(&dir.path().join("w2"), 1, &stage)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nocap.parquet") && err.contains("caption"),
        "{err}"
    );
}

/// Curate with over-sampling, fake a download (img2dataset parquet: some failures), balance
/// again: the balanced set is a subset of the downloaded successes, and no entry keeps more
/// than it would under the reference draws.
#[test]
fn balance_after_download() {
    let dir = tempfile::tempdir().unwrap();
    let (files, q) = generate(dir.path());
    let mut cfg = config(&files, &q, 100);
    cfg.balance.oversample = 2.0;
    let w = dir.path().join("w");
    let (rows, _) = run(&w, cfg, 5);
    let kept: Vec<&Row> = rows.iter().filter(|r| r.kept).collect();
    // A fake download stage: two shards, every 5th sample failed.
    let mut ok = BTreeMap::new();
    for (s, chunk) in kept.chunks(kept.len() / 2 + 1).enumerate() {
        let n = chunk.len();
        let status: Vec<&str> = (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    "failed_to_download"
                } else {
                    "success"
                }
            })
            .collect();
        for (i, r) in chunk.iter().enumerate() {
            if status[i] == "success" {
                ok.insert(format!("{s:05}{i:04}"), (*r).clone());
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("caption", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|r| r.caption.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|r| r.url.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("{s:05}{i:04}")),
            )),
            Arc::new(StringArray::from(status)),
        ];
        let dl = w.join("download");
        std::fs::create_dir_all(&dl).unwrap();
        let p = dl.join(format!("{s:05}.parquet"));
        let b = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let mut wr =
            ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, None).unwrap();
        wr.write(&b).unwrap();
        wr.close().unwrap();
    }
    // Record the fake download as a done stage, through the executor.
    struct FakeDownload;
    impl openwit_core::Stage for FakeDownload {
        fn name(&self) -> &str {
            "download"
        }
        fn config(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn plan(
            &self,
            _: &openwit_core::StageContext<'_>,
        ) -> openwit_core::Result<Vec<openwit_core::TaskSpec>> {
            Ok((0..2)
                .map(|s| openwit_core::TaskSpec::new(format!("{s:05}"), s.into()))
                .collect())
        }
        fn run_task(
            &self,
            ctx: &openwit_core::TaskContext<'_>,
            t: &openwit_core::TaskSpec,
        ) -> openwit_core::Result<openwit_core::TaskReport> {
            // Re-commit the shard written above through the executor.
            let name = format!("{}.parquet", t.id);
            let src = ctx.stage_dir().join(&name);
            let tmp = ctx.output_path(&name)?;
            std::fs::copy(&src, &tmp).unwrap();
            Ok(Default::default())
        }
    }
    let mut cfgb = openwit_curate::RebalanceConfig {
        queries: Some(q.clone()),
        ..Default::default()
    };
    cfgb.t = 60;
    let stage = openwit_curate::BalanceStage::new(cfgb, 5, Path::new("/")).unwrap();
    let mut ex = LocalExecutor::new(&w, RunOptions::default(), &NoProgress).unwrap();
    ex.run_stage(&FakeDownload).unwrap();
    ex.run_stage(&stage).unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("balance/stats.json")).unwrap()).unwrap();
    assert_eq!(
        stats["downloaded_matched"].as_u64().unwrap() as usize,
        ok.len()
    );
    assert!(stats["drops"]["not_downloaded"].as_u64().unwrap() > 0);

    // The reference: count over successes, draw with the same seed and key.
    let mut counts = vec![0u64; ENTRIES.len()];
    for r in ok.values() {
        for &e in &r.ids {
            counts[e as usize] += 1;
        }
    }
    let p = probabilities(&counts, 60, 1.0);
    let mut out = BTreeMap::new();
    for f in parts(&w, "balance") {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let key = b
                .column_by_name("key")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            let kept = b
                .column_by_name("kept")
                .unwrap()
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                out.insert(key.value(i).to_string(), kept.value(i));
            }
        }
    }
    assert_eq!(out.len(), ok.len());
    let mut n_kept = 0;
    for (k, r) in &ok {
        let want = keep(5, candidate_key(&r.url, &r.caption), &r.ids, &p);
        assert_eq!(out[k], want, "{k}");
        n_kept += want as usize;
    }
    assert!(n_kept < ok.len());
}

/// A webdataset tar of an evaluation set: `KEY.png` (a few bytes stand in) and `KEY.txt`
/// (its captions, one a line).
fn write_eval_tar(path: &Path, captions: &[&str]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (k, c) in captions.iter().enumerate() {
        for (ext, data) in [("png", &b"not a picture"[..]), ("txt", c.as_bytes())] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{k:04}.{ext}"), data)
                .unwrap();
        }
    }
    b.finish().unwrap();
}

#[test]
fn captions_equal_to_evaluation_texts_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(String, Option<String>)> = [
        "A happy dog running on the beach",
        "a HAPPY dog   running on the beach",
        "My cat sleeping under a tree",
        "An old red car near the bridge",
        "An old red car near the bridge!",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| (format!("http://img.example/{i}.jpg"), Some(c.to_string())))
    .collect();
    let cands = dir.path().join("c.parquet");
    write_candidates(&cands, &rows);
    let q = dir.path().join("metadata.json");
    std::fs::write(&q, serde_json::to_vec(&ENTRIES).unwrap()).unwrap();
    std::fs::create_dir_all(dir.path().join("eval/test")).unwrap();
    write_eval_tar(
        &dir.path().join("eval/test/0.tar"),
        &[
            "a happy dog running on the beach\nA dog on sand",
            "An old red car near the bridge",
        ],
    );
    let mut cfg = config(&[cands], &q, 20_000);
    cfg.exclude_eval = vec![dir.path().join("eval")];
    let (kept, stats) = run(&dir.path().join("w"), cfg.clone(), 0);
    assert_eq!(stats["drops"]["eval_overlap"], 3, "{stats}");
    let caps: BTreeSet<&str> = kept.iter().map(|r| r.caption.as_str()).collect();
    assert_eq!(
        caps,
        BTreeSet::from([
            "My cat sleeping under a tree",
            "An old red car near the bridge!"
        ])
    );
    let listed = dropped_rows(&dir.path().join("w"));
    assert_eq!(
        listed.iter().filter(|r| r.2 == "eval_overlap").count(),
        3,
        "{listed:?}"
    );
    // A set that is not there is a configuration error naming the key.
    cfg.exclude_eval = vec![dir.path().join("nowhere")];
    let err = CurateStage::new(cfg, 0, Path::new("/"), &[]).err().unwrap();
    assert!(err.to_string().contains("exclude_eval"), "{err}");
}

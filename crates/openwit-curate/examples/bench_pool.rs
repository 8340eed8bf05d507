//! The curate stage on a generated pool (default 10M candidates, 500,000 entries), through the
//! real executor: wall and CPU time per phase, peak memory, and the rates that
//! `docs/BENCHMARKS.md` extrapolates to MetaCLIP's 1.6B pool.
//!
//! `cargo run --release -p openwit-curate --example bench_pool -- DIR [CANDIDATES] [JOBS]`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use openwit_curate::{CurateConfig, CurateStage};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of the whole process.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

const BAD: &[&str] = &[
    "IMG_1234.JPG",
    "DSC00042",
    "image",
    "click here",
    "https://example.com/a.jpg",
    "logo",
    "Ein Hund läuft am Strand entlang",
    "Un chien court sur la plage",
];

fn generate(
    dir: &Path,
    n: usize,
    entries: &[String],
    vocab: &common::Vocab,
) -> Vec<std::path::PathBuf> {
    let per_file = 1_000_000usize;
    let schema = Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, true),
        Field::new("caption_source", DataType::Utf8, false),
        Field::new("page_url", DataType::Utf8, true),
        Field::new("page_lang", DataType::Utf8, true),
        Field::new("width", DataType::Int32, true),
        Field::new("height", DataType::Int32, true),
        Field::new("source_id", DataType::Utf8, false),
        Field::new("fetch_time", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ]));
    let _ = entries;
    let mut files = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut row = 0usize;
    let mut f = 0;
    while row < n {
        let path = dir.join(format!("cand-{f:03}.parquet"));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            Some(props),
        )
        .unwrap();
        let end = (row + per_file).min(n);
        while row < end {
            let m = (end - row).min(65536);
            let mut urls = Vec::with_capacity(m);
            let mut caps = Vec::with_capacity(m);
            for i in row..row + m {
                // 5% repeat an earlier URL (same caption half the time).
                let (u, dup) = if i > 1000 && rng.random_bool(0.05) {
                    (rng.random_range(0..i), true)
                } else {
                    (i, false)
                };
                urls.push(format!(
                    "https://img{}.example.com/{}/{u}.jpg",
                    u % 97,
                    u % 1013
                ));
                caps.push(if rng.random_bool(0.1) {
                    BAD[rng.random_range(0..BAD.len())].to_string()
                } else if dup && rng.random_bool(0.5) {
                    let mut r = ChaCha8Rng::seed_from_u64(u as u64);
                    vocab.caption(&mut r)
                } else {
                    let mut r = ChaCha8Rng::seed_from_u64(i as u64);
                    vocab.caption(&mut r)
                });
            }
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(urls)),
                Arc::new(StringArray::from(caps)),
                Arc::new(StringArray::from_iter_values((0..m).map(|_| "alt"))),
                Arc::new(StringArray::from_iter(
                    (row..row + m).map(|i| Some(format!("https://site.example.com/p/{}", i / 20))),
                )),
                Arc::new(StringArray::from_iter((0..m).map(|_| None::<&str>))),
                Arc::new(Int32Array::from_iter((0..m).map(|_| Some(640)))),
                Arc::new(Int32Array::from_iter((0..m).map(|_| Some(480)))),
                Arc::new(StringArray::from_iter_values((0..m).map(|_| "bench"))),
                Arc::new(Int64Array::from_iter(
                    (0..m).map(|_| Some(1_700_000_000_000i64)),
                )),
                Arc::new(StringArray::from_iter((0..m).map(|_| None::<&str>))),
            ];
            w.write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
                .unwrap();
            row += m;
        }
        w.close().unwrap();
        files.push(path);
        f += 1;
    }
    files
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: bench_pool DIR [CANDIDATES] [JOBS]"),
    );
    let n: usize = args
        .get(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(10_000_000);
    let jobs: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(2);
    std::fs::create_dir_all(&dir).unwrap();
    let vocab = common::Vocab::new(200_000);
    let entries = vocab.entries(500_000);
    let q = dir.join("metadata.json");
    std::fs::write(&q, serde_json::to_vec(&entries).unwrap()).unwrap();
    let t0 = Instant::now();
    let files = generate(&dir, n, &entries, &vocab);
    let gen_s = t0.elapsed().as_secs_f64();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();

    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    let cfg = CurateConfig {
        candidates: files.clone(),
        queries: Some(q),
        ..Default::default()
    };
    let stage = CurateStage::new(cfg, 0, Path::new("/"), &[]).unwrap();
    let rss0 = status_kb("VmHWM:");
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let mut ex = openwit_testkit::executor(&work, jobs);
    let out = ex.run_stage(&stage).unwrap();
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let tasks = ex.state().tasks("curate").unwrap();
    let map_s: f64 = tasks
        .iter()
        .filter(|t| t.task != "_reduce")
        .map(|t| t.elapsed_s)
        .sum();
    let reduce_s: f64 = tasks
        .iter()
        .filter(|t| t.task == "_reduce")
        .map(|t| t.elapsed_s)
        .sum();
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("curate/stats.json")).unwrap()).unwrap();
    println!(
        "{}",
        serde_json::json!({
            "candidates": n,
            "input_mib": bytes as f64 / (1u64 << 20) as f64,
            "generate_seconds": gen_s,
            "jobs": jobs,
            "wall_seconds": total,
            "cpu_seconds": cpu,
            "map_task_seconds_sum": map_s,
            "reduce_seconds": reduce_s,
            "candidates_per_cpu_second": n as f64 / cpu,
            "peak_rss_mib_before": rss0 as f64 / 1024.0,
            "peak_rss_mib": status_kb("VmHWM:") as f64 / 1024.0,
            "outcome": format!("{out:?}"),
            "stats": stats,
        })
    );
}

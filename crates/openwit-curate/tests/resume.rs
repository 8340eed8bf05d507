//! Kill -9 and resume: the stage run in a child process (this test binary re-executed in
//! "child mode") is killed after some tasks, twice, then finished; its outputs must be
//! byte-identical to an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use openwit_curate::{CurateConfig, CurateStage};
use openwit_testkit::harness::{digest_outputs, kill_after_tasks, run_to_end};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const CHILD_CONFIG: &str = "curate-child.json";

fn inputs(dir: &Path) -> (Vec<PathBuf>, PathBuf) {
    let words = ["dog", "cat", "beach", "tree", "river", "house"];
    let mut files = Vec::new();
    for f in 0..3 {
        let mut urls = Vec::new();
        let mut caps = Vec::new();
        for i in 0..3000usize {
            let a = words[i % words.len()];
            let b = words[(i / 7) % words.len()];
            // Every 11th row repeats a URL of the previous file.
            let u = if i % 11 == 0 && f > 0 {
                (f - 1, i)
            } else {
                (f, i)
            };
            urls.push(format!("http://img.example/{}/{}.jpg", u.0, u.1));
            caps.push(format!(
                "A photo of the {a} near the {b} number {}",
                i % 300
            ));
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("url", DataType::Utf8, false),
            Field::new("caption", DataType::Utf8, false),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(urls)) as ArrayRef,
                Arc::new(StringArray::from(caps)),
            ],
        )
        .unwrap();
        let p = dir.join(format!("c{f}.parquet"));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        files.push(p);
    }
    let q = dir.join("metadata.json");
    std::fs::write(&q, serde_json::to_string(&words).unwrap()).unwrap();
    (files, q)
}

fn config(files: &[PathBuf], q: &Path) -> CurateConfig {
    let mut cfg = CurateConfig {
        candidates: files.to_vec(),
        queries: Some(q.to_path_buf()),
        rows_per_task: 500,
        partitions: 4,
        ..Default::default()
    };
    cfg.balance.t = 400;
    cfg
}

fn run_stage(workdir: &Path, cfg: CurateConfig, jobs: usize) {
    let stage = CurateStage::new(cfg, 42, Path::new("/"), &[]).unwrap();
    openwit_testkit::run_stage(workdir, jobs, &stage).unwrap();
}

/// Child mode: runs the stage described by `curate-child.json` in the current folder. Ignored
/// unless the parent test starts it.
#[test]
#[ignore]
fn child_run() {
    let Ok(text) = std::fs::read_to_string(CHILD_CONFIG) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cfg: CurateConfig = serde_json::from_value(v["config"].clone()).unwrap();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    run_stage(Path::new(v["workdir"].as_str().unwrap()), cfg, 1);
}

#[test]
fn kill_and_resume_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (files, q) = inputs(dir.path());
    let cfg = config(&files, &q);

    let clean = dir.path().join("clean");
    run_stage(&clean, cfg.clone(), 2);
    let want = digest_outputs(&clean);
    assert!(
        want.keys().any(|k| k == "curate/part-00003.parquet"),
        "{want:?}"
    );
    assert!(want.contains_key("curate/entry_counts.parquet"));

    let work = dir.path().join("killed");
    std::fs::write(
        dir.path().join(CHILD_CONFIG),
        serde_json::to_string(&serde_json::json!({"config": cfg, "workdir": work})).unwrap(),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        "child_run",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    // 18 map tasks: kill after 3, then after 5 more, then finish.
    let first = kill_after_tasks(&exe, &args, Some(dir.path()), 3);
    assert!(first.killed, "not killed: {}", first.stderr);
    let second = kill_after_tasks(&exe, &args, Some(dir.path()), 5);
    assert!(second.killed, "not killed: {}", second.stderr);
    let last = run_to_end(&exe, &args, Some(dir.path()));
    last.assert_success();
    // Each run did only what was left.
    assert!(last.tasks_done < 18, "{}", last.tasks_done);
    assert_eq!(digest_outputs(&work), want);
}

//! Test fixtures: a workdir whose `download` stage (a small stand-in written here) writes real
//! shards with openwit-shard's writer through the executor, with real JPEG images.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_shard::{SampleMeta, ShardLayout, ShardStats, ShardWriter};
use serde_json::{Value, json};

/// The query entries of the fixture (`queries/metadata.json`).
pub const ENTRIES: &[&str] = &[
    "golden retriever",
    "red car",
    "lighthouse",
    "teapot",
    "sunflower",
];

/// (caption, entry ids, ok) per sample; 4 shards of 6 rows.
pub fn rows() -> Vec<(String, Vec<i32>, bool)> {
    let base: [(&str, &[i32]); 12] = [
        ("A golden retriever running on the beach", &[0]),
        ("Two dogs playing with a ball", &[]),
        ("The red car parked near the old lighthouse", &[1, 2]),
        ("A car painted red and blue", &[]),
        ("White lighthouse on a rocky coast at sunset", &[2]),
        ("Porcelain teapot with blue flowers", &[3]),
        ("A field of sunflowers under a clear sky", &[4]),
        ("Golden retriever puppy asleep on a sofa", &[0]),
        ("Vintage red car at a classic car show", &[1]),
        ("A teapot and two cups on a wooden table", &[3]),
        ("Sunflower close-up with a bee", &[4]),
        ("Old map of the harbour", &[]),
    ];
    let mut v = Vec::new();
    for i in 0..24 {
        let (c, ids) = base[i % base.len()];
        let caption = if i < 12 {
            c.to_string()
        } else {
            format!("{c}, photo {i}")
        };
        // Every sixth row failed to download.
        v.push((caption, ids.to_vec(), i % 6 != 5));
    }
    v
}

/// A real JPEG of `w` x `h` whose colour depends on `seed`.
pub fn jpeg(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let mut px = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h {
        for x in 0..w {
            px.push(seed.wrapping_mul(37).wrapping_add(x as u8));
            px.push((y as u8).wrapping_add(seed));
            px.push(200u8.wrapping_sub(seed));
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// A stand-in for the download stage: writes shard `n` of [`rows`] as `download/0000n.{tar,parquet}`.
pub struct FakeDownload {
    pub shards: u64,
}

impl Stage for FakeDownload {
    fn name(&self) -> &str {
        "download"
    }
    fn config(&self) -> Value {
        json!({ "shards": self.shards })
    }
    fn plan(&self, _: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok((0..self.shards)
            .map(|i| TaskSpec::new(format!("{i:05}"), json!(i)))
            .collect())
    }
    fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let shard = t.payload.as_u64().unwrap();
        let layout = ShardLayout::new(10);
        let name = layout.shard_name(shard);
        let tar = ctx.output_path(&format!("{name}.tar"))?;
        let pq = ctx.output_path(&format!("{name}.parquet"))?;
        let st = ctx.output_path(&format!("{name}_stats.json"))?;
        let mut w = ShardWriter::create(&tar, vec!["language".into()])?;
        let all = rows();
        let per = all.len() as u64 / self.shards;
        let mut report = TaskReport::default();
        let mut base = ShardStats::default();
        for i in 0..per {
            let (caption, ids, ok) = &all[(shard * per + i) as usize];
            let key = layout.key(shard, i);
            let url = format!("http://img{}.example.org/{key}.jpg", shard % 2);
            let mut m = SampleMeta::new(&url, Some(caption.clone()), key);
            m.entry_ids = Some(ids.clone());
            report.items_in += 1;
            if *ok {
                let (iw, ih) = (48 + 8 * i as u16, 32 + 4 * shard as u16);
                m.set_success(
                    iw as u32,
                    ih as u32,
                    iw as u32 * 4,
                    ih as u32 * 4,
                    "ab".repeat(32),
                );
                m.extra.insert("language".into(), json!("en"));
                w.add_success(m, "jpg", &jpeg(iw, ih, (shard * 10 + i) as u8))?;
                report.items_out += 1;
            } else {
                w.add_failure(m.failed_to_download("HTTP 404"));
                base.failures_by_reason.insert("http_404".into(), 1);
                report.drops.inc("http_404");
            }
        }
        w.finish(&pq, &st, base)?;
        Ok(report)
    }
}

/// A workdir with `queries/metadata.json` and 4 downloaded shards (20 successful samples).
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queries");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::write(
        q.join("metadata.json"),
        serde_json::to_vec(ENTRIES).unwrap(),
    )
    .unwrap();
    run(dir.path(), &FakeDownload { shards: 4 });
    dir
}

/// Runs `stage` in `workdir` to completion.
pub fn run(workdir: &Path, stage: &dyn Stage) -> openwit_exec::StageOutcome {
    openwit_testkit::run_stage(workdir, 2, stage).unwrap()
}

/// The index stage with the default config.
pub fn index_stage() -> openwit_index::IndexStage {
    openwit_index::IndexStage::new(Default::default(), Path::new("."))
}

/// The shard tars of a workdir.
pub fn tars(workdir: &Path) -> Vec<PathBuf> {
    openwit_shard::list_shards(&workdir.join("download")).unwrap()
}

/// GET `path` from `addr` over plain HTTP/1.1; returns (status, headers, body).
pub fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// Starts the web UI of `workdir` on 127.0.0.1 (a free port) in a background thread.
pub fn start_server(workdir: &Path) -> std::net::SocketAddr {
    let app = openwit_index::router(workdir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        rt.block_on(async move { axum::serve(listener, app).await.unwrap() });
    });
    addr
}

/// Writes `curate/entry_counts.parquet` (300 entries, a long tail capped at 50 by balancing),
/// `train/metrics.jsonl` (50 steps, a bad line) and `eval/zeroshot.json`.
pub fn add_curation_and_training(w: &Path) {
    write_entry_counts(&w.join("curate/entry_counts.parquet"));
    std::fs::create_dir_all(w.join("train")).unwrap();
    let metrics: String = (0..50)
        .map(|s| {
            format!(
                "{{\"step\":{s},\"loss\":{},\"lr\":0.001}}\n",
                5.0 / (1.0 + s as f64)
            )
        })
        .collect();
    std::fs::write(w.join("train/metrics.jsonl"), metrics + "not json\n").unwrap();
    std::fs::create_dir_all(w.join("eval")).unwrap();
    std::fs::write(
        w.join("eval/zeroshot.json"),
        r#"{"dataset":"cifar10","top1":0.4321,"top5":0.81}"#,
    )
    .unwrap();
}

pub fn write_entry_counts(path: &std::path::Path) {
    // 300 entries with a long tail; balancing caps matches at 50.
    let n = 300usize;
    let rows: Vec<(String, i64, i64)> = (0..n)
        .map(|i| {
            let m = (20_000 / (i + 1)) as i64;
            (format!("entry {i}"), m, m.min(50))
        })
        .collect();
    write_entry_counts_of(path, &rows);
}

/// Writes an `entry_counts.parquet` as the curate stage does, of (entry, matches, kept) rows.
pub fn write_entry_counts_of(path: &std::path::Path, rows: &[(String, i64, i64)]) {
    let n = rows.len();
    let entries: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let matches: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let kept: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("entry", DataType::Utf8, false),
        Field::new("id", DataType::Int32, false),
        Field::new("matches", DataType::Int64, false),
        Field::new("expected_kept", DataType::Float64, false),
        Field::new("kept", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(entries)),
        Arc::new(Int32Array::from_iter_values(0..n as i32)),
        Arc::new(Int64Array::from(matches.clone())),
        Arc::new(Float64Array::from_iter_values(
            kept.iter().map(|&k| k as f64),
        )),
        Arc::new(Int64Array::from(kept)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

//! The `download` stage: one task per shard (a fixed slice of input rows, so keys are
//! deterministic); the shard's tar, parquet and stats are written under temporary names and
//! renamed into place by the executor only when the whole shard is done. The reduce step writes
//! `sizes.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures::StreamExt;
use openwit_core::{Error, Result, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_shard::{SampleMeta, ShardLayout, ShardStats, ShardWriter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::budget::MemoryBudget;
use crate::config::Config;
use crate::fetch::Fetcher;
use crate::imaging::{ImageOptions, decode_cost, process};
use crate::input::{InputFile, InputRow, Segment, list_url_files, plan_segments, read_segment};

/// What a shard task carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShardTask {
    shard: u64,
    shard_digits: usize,
    segments: Vec<Segment>,
}

/// Run-wide duplicate detection: sha256 of the downloaded bytes and perceptual hashes, each
/// mapped to the key that owns it (so a retried shard does not see its own images as copies).
#[derive(Default)]
struct Dedup {
    sha: HashMap<[u8; 32], String>,
    /// (phash, key), with four 16-bit band indexes: two hashes within Hamming distance 3 share
    /// at least one band exactly.
    phashes: Vec<(u64, String)>,
    bands: [HashMap<u16, Vec<u32>>; 4],
}

impl Dedup {
    fn sha_owner(&self, sha: &[u8; 32], key: &str) -> Option<String> {
        self.sha.get(sha).filter(|k| k.as_str() != key).cloned()
    }

    fn near(&self, h: u64, key: &str, max: u32) -> Option<String> {
        let hit = |i: usize| {
            let (p, k) = &self.phashes[i];
            ((p ^ h).count_ones() <= max && k != key).then(|| k.clone())
        };
        if max <= 3 {
            for b in 0..4 {
                let band = (h >> (b * 16)) as u16;
                if let Some(ix) = self.bands[b].get(&band)
                    && let Some(k) = ix.iter().find_map(|&i| hit(i as usize))
                {
                    return Some(k);
                }
            }
            None
        } else {
            (0..self.phashes.len()).find_map(hit)
        }
    }

    fn add_phash(&mut self, h: u64, key: String) {
        let i = self.phashes.len() as u32;
        self.phashes.push((h, key));
        for b in 0..4 {
            self.bands[b]
                .entry((h >> (b * 16)) as u16)
                .or_default()
                .push(i);
        }
    }
}

/// The download stage.
pub struct DownloadStage {
    cfg: Arc<Config>,
    base_dir: PathBuf,
    allow_private: bool,
    fetcher: OnceLock<Result<Arc<Fetcher>, String>>,
    dedup: Arc<Mutex<Dedup>>,
    seeded: OnceLock<()>,
    /// The image work (decode, resize, encode, hashes): one thread per core, fed by a queue the
    /// fetches push into as soon as a body is complete, so a core never waits for the network
    /// side to hand it the next image (a semaphore + `spawn_blocking` needed three thread
    /// wake-ups per image and left ~20% of two cores idle).
    pool: Arc<rayon::ThreadPool>,
    /// What the image threads may decode into at once (`image_memory_budget_mb`).
    budget: Arc<MemoryBudget>,
}

impl DownloadStage {
    /// `base_dir` resolves a relative `input`; `allow_private` is the pipeline's
    /// `allow_private_networks`.
    pub fn new(cfg: Config, base_dir: &Path, allow_private: bool) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let budget = Arc::new(MemoryBudget::new(
            cfg.image_memory_budget_mb.saturating_mul(1 << 20),
        ));
        Ok(DownloadStage {
            budget,
            cfg: Arc::new(cfg),
            base_dir: base_dir.to_path_buf(),
            allow_private,
            fetcher: OnceLock::new(),
            dedup: Default::default(),
            seeded: OnceLock::new(),
            pool: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(cores)
                    .thread_name(|i| format!("openwit-image-{i}"))
                    .build()
                    .map_err(|e| Error::Stage(format!("cannot start the image threads: {e}")))?,
            ),
        })
    }

    fn curated(&self) -> bool {
        self.cfg.input == "curate"
    }

    fn layout(&self, t: &ShardTask) -> ShardLayout {
        let mut l = ShardLayout::new(self.cfg.shard_size);
        l.shard_digits = t.shard_digits;
        l
    }

    fn fetcher(&self) -> Result<Arc<Fetcher>> {
        self.fetcher
            .get_or_init(|| Fetcher::new(self.cfg.clone(), self.allow_private).map(Arc::new))
            .clone()
            .map_err(Error::Stage)
    }

    /// Loads the hashes of shards committed by earlier runs, once per process.
    fn seed_dedup(&self, stage_dir: &Path) {
        self.seeded.get_or_init(|| {
            if !self.cfg.dedup_sha256 && self.cfg.near_dup_distance.is_none() {
                return;
            }
            let Ok(rd) = std::fs::read_dir(stage_dir) else {
                return;
            };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".parquet"))
                        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                })
                .collect();
            files.sort();
            let mut d = self.dedup.lock().unwrap();
            for f in files {
                let Ok(rows) =
                    openwit_shard::read_parquet_columns(&f, &["key", "status", "sha256", "phash"])
                else {
                    continue;
                };
                for r in rows {
                    if r[1].as_deref() != Some("success") {
                        continue;
                    }
                    let Some(key) = r[0].clone() else { continue };
                    if let Some(Ok(sha)) = r[2].as_deref().map(hex::decode)
                        && let Ok(sha) = <[u8; 32]>::try_from(sha.as_slice())
                    {
                        d.sha.entry(sha).or_insert_with(|| key.clone());
                    }
                    if let Some(Ok(h)) = r[3].as_deref().map(|h| u64::from_str_radix(h, 16)) {
                        d.add_phash(h, key);
                    }
                }
            }
        });
    }

    fn extra_columns(&self) -> Vec<String> {
        self.cfg.save_additional_columns.clone()
    }
}

/// The outcome of one row.
enum RowOutcome {
    Ok {
        meta: SampleMeta,
        ext: &'static str,
        bytes: Vec<u8>,
    },
    Failed {
        meta: SampleMeta,
        reason: &'static str,
    },
}

impl Stage for DownloadStage {
    fn name(&self) -> &str {
        "download"
    }

    fn upstream(&self) -> Vec<String> {
        if self.curated() {
            vec!["curate".into()]
        } else {
            Vec::new()
        }
    }

    fn config(&self) -> serde_json::Value {
        self.cfg.output_config()
    }

    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        let files: Vec<InputFile> = if self.curated() {
            ctx.upstream_outputs("curate")
                .into_iter()
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "parquet")
                        && p.file_name().is_some_and(|n| n != "entry_counts.parquet")
                })
                .map(|p| InputFile {
                    path: p,
                    format: crate::config::InputFormat::Parquet,
                    gzip: false,
                    curated: true,
                })
                .collect()
        } else {
            let input = self.base_dir.join(&self.cfg.input);
            list_url_files(&input, &self.cfg).map_err(|e| Error::Config(e.to_string()))?
        };
        let shards = plan_segments(&files, self.cfg.shard_size)
            .map_err(|e| Error::Stage(format!("reading the input to plan shards: {e}")))?;
        let layout = ShardLayout::new(self.cfg.shard_size).with_shard_count(shards.len() as u64);
        Ok(shards
            .into_iter()
            .enumerate()
            .map(|(i, segments)| {
                let t = ShardTask {
                    shard: i as u64,
                    shard_digits: layout.shard_digits,
                    segments,
                };
                TaskSpec::new(
                    layout.shard_name(i as u64),
                    serde_json::to_value(&t).expect("task serializes"),
                )
            })
            .collect())
    }

    fn max_parallel(&self, jobs: usize) -> usize {
        // Each shard already downloads with `concurrency` requests in flight and decodes on
        // every core; two shards at once keep the pipe full across shard boundaries.
        jobs.clamp(1, 2)
    }

    fn run_task(&self, ctx: &TaskContext<'_>, spec: &TaskSpec) -> Result<TaskReport> {
        let t: ShardTask = serde_json::from_value(spec.payload.clone())
            .map_err(|e| Error::Stage(format!("bad task payload: {e}")))?;
        let layout = self.layout(&t);
        let name = layout.shard_name(t.shard);
        let start = Instant::now();
        let start_time = openwit_core::clock::output_time_s();

        let mut rows: Vec<InputRow> = Vec::new();
        for seg in &t.segments {
            rows.extend(read_segment(seg, &self.cfg).map_err(|e| Error::Stage(e.to_string()))?);
        }
        let fetcher = self.fetcher()?;
        self.seed_dedup(&ctx.stage_dir());

        let tar_path = ctx.output_path(&format!("{name}.tar"))?;
        let parquet_path = ctx.output_path(&format!("{name}.parquet"))?;
        let stats_path = ctx.output_path(&format!("{name}_stats.json"))?;
        let mut writer = ShardWriter::create(&tar_path, self.extra_columns())?;

        let opts = Arc::new(ImageOptions::from_config(&self.cfg));
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut bytes_downloaded = 0u64;
        let n_rows = rows.len() as u64;
        let in_flight = self.cfg.concurrency.max(1);

        let outcome: Result<()> = ctx.runtime().block_on(async {
            let mut stream = futures::stream::iter(rows.into_iter().enumerate())
                .map(|(i, row)| {
                    let key = layout.key(t.shard, i as u64);
                    self.one(fetcher.clone(), opts.clone(), row, key)
                })
                .buffer_unordered(in_flight);
            while let Some((outcome, nbytes)) = stream.next().await {
                bytes_downloaded += nbytes;
                match outcome {
                    RowOutcome::Ok { meta, ext, bytes } => {
                        writer.add_success(meta, ext, &bytes)?;
                    }
                    RowOutcome::Failed { meta, reason } => {
                        *reasons.entry(reason.to_string()).or_default() += 1;
                        writer.add_failure(meta);
                    }
                }
                ctx.progress(1);
                if ctx.cancelled() {
                    return Err(Error::Interrupted);
                }
            }
            Ok(())
        });
        outcome?;

        let base = ShardStats {
            duration: start.elapsed().as_secs_f64(),
            start_time,
            end_time: openwit_core::clock::output_time_s(),
            failures_by_reason: reasons.clone(),
            bytes_downloaded,
            ..Default::default()
        };
        let stats = writer.finish(&parquet_path, &stats_path, base)?;
        let mut drops = openwit_core::Drops::default();
        for (r, n) in &reasons {
            drops.add(r, *n);
        }
        tracing::info!(
            shard = %name,
            rows = n_rows,
            successes = stats.successes,
            seconds = stats.duration,
            "shard written"
        );
        Ok(TaskReport {
            items_in: n_rows,
            items_out: stats.successes,
            drops,
            extra: serde_json::json!({
                "tar": format!("{name}.tar"),
                "successes": stats.successes,
                "bytes_downloaded": bytes_downloaded,
            }),
        })
    }

    fn reduce(
        &self,
        ctx: &TaskContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Result<Option<TaskReport>> {
        let mut sizes = BTreeMap::new();
        let mut total = 0;
        for t in tasks {
            if let (Some(tar), Some(n)) = (
                t.extra.get("tar").and_then(|v| v.as_str()),
                t.extra.get("successes").and_then(|v| v.as_u64()),
            ) {
                sizes.insert(tar.to_string(), n);
                total += n;
            }
        }
        let p = ctx.output_path("sizes.json")?;
        openwit_shard::write_sizes(&p, &sizes)?;
        Ok(Some(TaskReport {
            items_in: tasks.len() as u64,
            items_out: total,
            ..Default::default()
        }))
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        let (mut rows, mut ok) = (0u64, 0u64);
        let mut drops: BTreeMap<String, u64> = BTreeMap::new();
        for t in tasks.iter().filter(|t| t.task != openwit_core::REDUCE_TASK) {
            rows += t.items_in;
            ok += t.items_out;
            for (k, v) in &t.drops {
                *drops.entry(k.clone()).or_default() += v;
            }
        }
        let mut top: Vec<(String, u64)> = drops.into_iter().collect();
        top.sort_by_key(|t| std::cmp::Reverse(t.1));
        let top: Vec<String> = top
            .iter()
            .take(6)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        Some(format!(
            "{ok} of {rows} images downloaded ({:.1}%); dropped: {}",
            if rows > 0 {
                ok as f64 * 100.0 / rows as f64
            } else {
                0.0
            },
            if top.is_empty() {
                "none".into()
            } else {
                top.join(", ")
            }
        ))
    }
}

impl DownloadStage {
    /// Downloads, checks and processes one row. Returns the outcome and the bytes downloaded.
    async fn one(
        &self,
        fetcher: Arc<Fetcher>,
        opts: Arc<ImageOptions>,
        row: InputRow,
        key: String,
    ) -> (RowOutcome, u64) {
        let mut meta = SampleMeta::new(row.url.clone(), row.caption.clone(), key.clone());
        meta.entry_ids = row.entry_ids;
        meta.extra = row.extra;
        if row.url.is_empty() {
            return (failed(meta, "bad_url", "no URL in the input row", false), 0);
        }
        let fetched = match fetcher.fetch(&row.url).await {
            Ok(f) => f,
            Err(f) => {
                return (failed(meta, f.reason, f.message, false), 0);
            }
        };
        let nbytes = fetched.bytes.len() as u64;
        let dedup = self.dedup.clone();
        let cfg = self.cfg.clone();
        let budget = self.budget.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            // A panic must not reach rayon (it aborts the process): it becomes this row's drop.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                process_row(meta, fetched.bytes, &opts, &cfg, &dedup, &budget)
            }));
            let _ = tx.send(out.map_err(|p| openwit_core::panic_message(p.as_ref())));
        });
        let res = match rx.await {
            Ok(r) => r,
            Err(_) => Err("the image thread stopped".to_string()),
        };
        match res {
            Ok(o) => (o, nbytes),
            Err(e) => (
                failed(
                    SampleMeta::new(row.url, row.caption, key),
                    "decode_panic",
                    format!("image processing panicked: {e}"),
                    true,
                ),
                nbytes,
            ),
        }
    }
}

fn process_row(
    mut meta: SampleMeta,
    bytes: Vec<u8>,
    opts: &ImageOptions,
    cfg: &Config,
    dedup: &Mutex<Dedup>,
    budget: &MemoryBudget,
) -> RowOutcome {
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    if cfg.dedup_sha256
        && let Some(owner) = dedup.lock().unwrap().sha_owner(&sha, &meta.key)
    {
        return failed(
            meta,
            "duplicate",
            format!("duplicate of {owner} (same sha256)"),
            false,
        );
    }
    // Decode only once the image's memory (from its header) fits in the budget.
    let processed = {
        let _share = budget.admit(decode_cost(&bytes, opts));
        process(&bytes, opts)
    };
    let p = match processed {
        Ok(p) => p,
        Err(f) => {
            meta.sha256 = Some(hex::encode(sha));
            let resize = !matches!(f.reason, "empty_body" | "html_body");
            return failed(meta, f.reason, f.message, resize);
        }
    };
    let phash = format!("{:016x}", p.phash);
    {
        let mut d = dedup.lock().unwrap();
        if cfg.dedup_sha256
            && let Some(owner) = d.sha_owner(&sha, &meta.key)
        {
            return failed(
                meta,
                "duplicate",
                format!("duplicate of {owner} (same sha256)"),
                false,
            );
        }
        if let Some(max) = cfg.near_dup_distance
            && let Some(owner) = d.near(p.phash, &meta.key, max)
        {
            meta.phash = Some(phash);
            return failed(
                meta,
                "near_duplicate",
                format!("near-duplicate of {owner} (perceptual hash within {max} bits)"),
                true,
            );
        }
        if cfg.dedup_sha256 {
            d.sha.insert(sha, meta.key.clone());
        }
        if cfg.near_dup_distance.is_some() {
            d.add_phash(p.phash, meta.key.clone());
        }
    }
    meta.set_success(
        p.width,
        p.height,
        p.original_width,
        p.original_height,
        hex::encode(sha),
    );
    meta.phash = Some(phash);
    if let Some(o) = p.orientation {
        meta.exif = Some(serde_json::json!({ "Image Orientation": o }).to_string());
    }
    RowOutcome::Ok {
        meta,
        ext: p.ext,
        bytes: p.bytes,
    }
}

/// A failed row; its error message starts with the reason token (`http_404: HTTP 404`).
fn failed(
    meta: SampleMeta,
    reason: &'static str,
    message: impl AsRef<str>,
    resize: bool,
) -> RowOutcome {
    let msg = format!("{reason}: {}", message.as_ref());
    RowOutcome::Failed {
        meta: if resize {
            meta.failed_to_resize(msg)
        } else {
            meta.failed_to_download(msg)
        },
        reason,
    }
}

//! The `download` stage: one task per shard (a fixed slice of input rows, so keys are
//! deterministic); the shard's tar, parquet and stats are written under temporary names and
//! renamed into place by the executor only when the whole shard is done. The reduce step writes
//! `sizes.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures::StreamExt;
use openwit_core::artifact::{self, Artifact, Curated};
use openwit_core::{Error, Result, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_shard::overlap::{OverlapIndex, read_eval_paths};
use openwit_shard::{SampleMeta, ShardFiles, ShardLayout, ShardStats, ShardWriter, Status};
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

/// Perceptual hashes with ids added in increasing order; finds the lowest id within a
/// Hamming distance. Four 16-bit band indexes: two hashes within distance 3 share at least one
/// band exactly, and each band's list is in id order, so its first hit is its lowest.
struct Near {
    max: u32,
    hashes: Vec<(u64, usize)>,
    bands: [HashMap<u16, Vec<u32>>; 4],
}

impl Near {
    fn new(max: u32) -> Self {
        Near {
            max,
            hashes: Vec::new(),
            bands: Default::default(),
        }
    }

    /// The lowest id whose hash is within `max` bits of `h`.
    fn lowest(&self, h: u64) -> Option<usize> {
        let within = |i: &u32| {
            let (p, id) = self.hashes[*i as usize];
            ((p ^ h).count_ones() <= self.max).then_some(id)
        };
        if self.max <= 3 {
            (0..4)
                .filter_map(|b| {
                    self.bands[b]
                        .get(&((h >> (b * 16)) as u16))
                        .and_then(|ix| ix.iter().find_map(within))
                })
                .min()
        } else {
            (0..self.hashes.len() as u32).find_map(|i| within(&i))
        }
    }

    fn add(&mut self, h: u64, id: usize) {
        let i = self.hashes.len() as u32;
        self.hashes.push((h, id));
        for b in 0..4 {
            self.bands[b]
                .entry((h >> (b * 16)) as u16)
                .or_default()
                .push(i);
        }
    }
}

/// The drop reason of an image that duplicates an `exclude_eval` evaluation image.
pub const EVAL_OVERLAP: &str = "eval_overlap";

/// A task's sha256 claims: the lowest row index that processed each content successfully
/// (rows with a lower claimant are skipped without decoding; the end of the task decides).
type Claims = Mutex<HashMap<[u8; 32], usize>>;

/// The download stage.
pub struct DownloadStage {
    cfg: Arc<Config>,
    base_dir: PathBuf,
    allow_private: bool,
    fetcher: OnceLock<Result<Arc<Fetcher>, String>>,
    /// The image work (decode, resize, encode, hashes): one thread per core, fed by a queue the
    /// fetches push into as soon as a body is complete, so a core never waits for the network
    /// side to hand it the next image (a semaphore + `spawn_blocking` needed three thread
    /// wake-ups per image and left ~20% of two cores idle).
    pool: Arc<rayon::ThreadPool>,
    /// What the image threads may decode into at once (`image_memory_budget_mb`).
    budget: Arc<MemoryBudget>,
    /// The fingerprints of the `exclude_eval` sets (read once, at the first shard).
    exclude: OnceLock<Result<Option<Arc<OverlapIndex>>, String>>,
}

impl DownloadStage {
    /// `base_dir` resolves a relative `input`; `allow_private` is the pipeline's
    /// `allow_private_networks`.
    pub fn new(cfg: Config, base_dir: &Path, allow_private: bool) -> Result<Self> {
        cfg.validate().map_err(Error::Config)?;
        for p in &cfg.exclude_eval {
            if !base_dir.join(p).exists() {
                return Err(Error::Config(format!(
                    "[download] exclude_eval: {} does not exist\n  fix: give evaluation sets as image files, folders of them or webdataset tars (relative to the pipeline file)",
                    base_dir.join(p).display()
                )));
            }
        }
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
            exclude: OnceLock::new(),
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
        self.cfg.input == Curated::PRODUCER
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
        sha: [u8; 32],
        phash: u64,
    },
    /// The same bytes as a lower row of the shard that processed successfully (not decoded).
    SameAs { meta: SampleMeta, sha: [u8; 32] },
    /// `error_message` starts with the reason token.
    Failed { meta: SampleMeta },
}

/// A finished row waiting for the shard's dedup decisions; a processed image waits in the
/// spool file at `at`.
enum Slot {
    Processed {
        meta: SampleMeta,
        ext: &'static str,
        at: (u64, usize),
        sha: [u8; 32],
        phash: u64,
    },
    SameAs {
        meta: SampleMeta,
        sha: [u8; 32],
    },
    Failed {
        meta: SampleMeta,
    },
}

impl openwit_core::FromConfig for DownloadStage {
    const TABLE: &'static str = "download";
    type Config = Config;
    fn from_config(cfg: Config, doc: &openwit_core::PipelineDoc) -> openwit_core::Result<Self> {
        let mut cfg = cfg;
        cfg.proxy = doc.pipeline().proxy.clone();
        Self::new(cfg, &doc.base_dir(), doc.pipeline().allow_private_networks)
    }
}

impl Stage for DownloadStage {
    fn name(&self) -> &str {
        "download"
    }

    fn upstream(&self) -> Vec<String> {
        if self.curated() {
            vec![Curated::PRODUCER.into()]
        } else {
            Vec::new()
        }
    }

    fn config(&self) -> serde_json::Value {
        self.cfg.output_config()
    }

    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        let files: Vec<InputFile> = if self.curated() {
            // the curated table only (not entry counts, nor the dropped rows' listing)
            artifact::files::<Curated>(ctx)?
                .into_iter()
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
        let shards = plan_segments(&files, self.cfg.shard_size, &self.cfg)
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
        let exclude = self.exclude()?;

        let tar_path = ctx.output_path(&format!("{name}.tar"))?;
        let parquet_path = ctx.output_path(&format!("{name}.parquet"))?;
        let stats_path = ctx.output_path(&format!("{name}_stats.json"))?;
        let mut writer = ShardWriter::create(&tar_path, self.extra_columns())?;

        // Processed images wait in a spool file until the shard's rows are all done: the tar is
        // written in key order and duplicates are decided by row order, not by finishing order.
        let spool_path = ctx.scratch_dir()?.join("images.spool");
        let mut spool = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&spool_path)
                .map_err(|e| Error::io(&spool_path, e))?,
        );
        let mut spooled = 0u64;
        let claims: Arc<Claims> = Arc::default();

        let opts = Arc::new(ImageOptions::from_config(&self.cfg));
        let mut bytes_downloaded = 0u64;
        let n_rows = rows.len();
        let mut slots: Vec<Option<Slot>> = (0..n_rows).map(|_| None).collect();
        let in_flight = self.cfg.concurrency.max(1);

        let outcome: Result<()> = ctx.runtime().block_on(async {
            let mut stream = futures::stream::iter(rows.into_iter().enumerate())
                .map(|(i, row)| {
                    let key = layout.key(t.shard, i as u64);
                    let fut = self.one(
                        fetcher.clone(),
                        opts.clone(),
                        claims.clone(),
                        exclude.clone(),
                        row,
                        i,
                        key,
                    );
                    async move { (i, fut.await) }
                })
                .buffer_unordered(in_flight);
            while let Some((i, (outcome, nbytes))) = stream.next().await {
                bytes_downloaded += nbytes;
                slots[i] = Some(match outcome {
                    RowOutcome::Ok {
                        meta,
                        ext,
                        bytes,
                        sha,
                        phash,
                    } => {
                        std::io::Write::write_all(&mut spool, &bytes)
                            .map_err(|e| Error::io(&spool_path, e))?;
                        let at = (spooled, bytes.len());
                        spooled += bytes.len() as u64;
                        Slot::Processed {
                            meta,
                            ext,
                            at,
                            sha,
                            phash,
                        }
                    }
                    RowOutcome::SameAs { meta, sha } => Slot::SameAs { meta, sha },
                    RowOutcome::Failed { meta } => Slot::Failed { meta },
                });
                ctx.progress(1);
                if ctx.cancelled() {
                    return Err(Error::Interrupted);
                }
            }
            Ok(())
        });
        outcome?;
        let spool = spool
            .into_inner()
            .map_err(|e| Error::io(&spool_path, e.into_error()))?;

        // The shard's dedup, in row order: a row is a duplicate when a lower row of the shard
        // has the same bytes, a near-duplicate when a lower row's perceptual hash is within the
        // distance. Lower shards are the reduce step's (`resolve_across_shards`).
        // The first row of each sha256, with its perceptual hash: a duplicate caught before
        // decoding (`SameAs`) gets the hash of the bytes it shares, as one caught here after
        // decoding keeps its own, so the parquet does not depend on which came first.
        let mut first: HashMap<[u8; 32], (usize, u64)> = HashMap::new();
        let mut near = self.cfg.near_dup_distance.map(Near::new);
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for (i, slot) in slots.into_iter().enumerate() {
            let slot =
                slot.ok_or_else(|| Error::Stage(format!("row {i} of {name} has no outcome")))?;
            let meta = match slot {
                Slot::Processed {
                    mut meta,
                    ext,
                    at,
                    sha,
                    phash,
                } => {
                    let verdict = if let Some(&(j, _)) =
                        first.get(&sha).filter(|_| self.cfg.dedup_sha256)
                    {
                        Some(dup_message(&layout.key(t.shard, j as u64)))
                    } else {
                        near.as_ref().and_then(|n| n.lowest(phash)).map(|j| {
                            near_message(&layout.key(t.shard, j as u64), self.cfg.near_dup_distance)
                        })
                    };
                    first.entry(sha).or_insert((i, phash));
                    if let Some(n) = near.as_mut() {
                        n.add(phash, i);
                    }
                    match verdict {
                        Some((st, msg)) => demoted(meta, st, msg),
                        None => {
                            let mut img = vec![0u8; at.1];
                            std::os::unix::fs::FileExt::read_exact_at(&spool, &mut img, at.0)
                                .map_err(|e| Error::io(&spool_path, e))?;
                            meta.status = openwit_shard::Status::Success;
                            writer.add_success(meta, ext, &img)?;
                            continue;
                        }
                    }
                }
                Slot::SameAs { mut meta, sha } => {
                    let (j, phash) = match first.get(&sha) {
                        Some(&(j, phash)) => (j, Some(phash)),
                        None => (i, None),
                    };
                    meta.phash = phash.map(|h| format!("{h:016x}"));
                    let (st, msg) = dup_message(&layout.key(t.shard, j as u64));
                    demoted(meta, st, msg)
                }
                Slot::Failed { meta } => meta,
            };
            let reason = meta
                .error_message
                .as_deref()
                .map(openwit_shard::reason_of)
                .unwrap_or("unknown");
            *reasons.entry(reason.to_string()).or_default() += 1;
            writer.add_failure(meta);
        }
        drop(spool);
        let _ = std::fs::remove_file(&spool_path);

        let end_time = openwit_core::clock::output_time_s();
        let base = ShardStats {
            // With SOURCE_DATE_EPOCH the times are fixed, and so is the duration (0).
            duration: if fixed_clock() {
                end_time - start_time
            } else {
                start.elapsed().as_secs_f64()
            },
            start_time,
            end_time,
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
            rows = n_rows as u64,
            successes = stats.successes,
            seconds = stats.duration,
            "shard written"
        );
        Ok(TaskReport {
            items_in: n_rows as u64,
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
        let names: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.extra.get("tar").and_then(|v| v.as_str()))
            .filter_map(|t| t.strip_suffix(".tar"))
            .map(str::to_string)
            .collect();
        let (sizes, drops) = self.resolve_across_shards(ctx, &names)?;
        let total = sizes.values().sum();
        let p = ctx.output_path("sizes.json")?;
        openwit_shard::write_sizes(&p, &sizes)?;
        Ok(Some(TaskReport {
            items_in: tasks.len() as u64,
            items_out: total,
            drops,
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
        for t in tasks {
            // The reduce step's drops are the duplicates across shards, which were successes
            // in their task's count.
            if t.task == openwit_core::REDUCE_TASK {
                ok = ok.saturating_sub(t.drops.values().sum());
            } else {
                rows += t.items_in;
                ok += t.items_out;
            }
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
    /// The `exclude_eval` sets' fingerprints, read once (None without `exclude_eval`).
    fn exclude(&self) -> Result<Option<Arc<OverlapIndex>>> {
        self.exclude
            .get_or_init(|| {
                if self.cfg.exclude_eval.is_empty() {
                    return Ok(None);
                }
                let paths: Vec<PathBuf> = self
                    .cfg
                    .exclude_eval
                    .iter()
                    .map(|p| self.base_dir.join(p))
                    .collect();
                let prints = read_eval_paths(&paths)
                    .map_err(|e| format!("[download] exclude_eval: {e}"))?;
                if prints.is_empty() {
                    return Err(format!(
                        "[download] exclude_eval: no images under {}; give image files, folders of them or webdataset tars",
                        self.cfg.exclude_eval.join(", ")
                    ));
                }
                tracing::info!(
                    images = prints.len(),
                    "evaluation images to keep out of the shards (exclude_eval)"
                );
                Ok(Some(Arc::new(OverlapIndex::new(
                    &prints,
                    self.cfg.exclude_eval_phash_distance,
                ))))
            })
            .clone()
            .map_err(Error::Config)
    }

    /// Downloads, checks and processes one row. Returns the outcome and the bytes downloaded.
    async fn one(
        &self,
        fetcher: Arc<Fetcher>,
        opts: Arc<ImageOptions>,
        claims: Arc<Claims>,
        exclude: Option<Arc<OverlapIndex>>,
        row: InputRow,
        index: usize,
        key: String,
    ) -> (RowOutcome, u64) {
        let mut meta = SampleMeta::new(row.url.clone(), row.caption.clone(), key.clone());
        meta.entry_ids = row.entry_ids;
        meta.language = row.language;
        meta.extra = row.extra;
        if let Some((reason, message)) = row.dropped {
            // The URL-list reader dropped this row (not UTF-8, malformed CSV/JSON, no URL).
            return (failed(meta, reason, message, false), 0);
        }
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
        let cfg = self.cfg.clone();
        let fallback = meta.clone();
        let budget = self.budget.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            // A panic must not reach rayon (it aborts the process): it becomes this row's drop.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                process_row(
                    meta,
                    fetched.bytes,
                    &opts,
                    &cfg,
                    &claims,
                    index,
                    &budget,
                    exclude.as_deref(),
                )
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
                    fallback,
                    "decode_panic",
                    format!("image processing panicked: {e}"),
                    true,
                ),
                nbytes,
            ),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn process_row(
    mut meta: SampleMeta,
    bytes: Vec<u8>,
    opts: &ImageOptions,
    cfg: &Config,
    claims: &Claims,
    index: usize,
    budget: &MemoryBudget,
    exclude: Option<&OverlapIndex>,
) -> RowOutcome {
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    meta.sha256 = Some(hex::encode(sha));
    if let Some(ix) = exclude
        && !ix.by_sha256(&sha).is_empty()
    {
        return failed(
            meta,
            EVAL_OVERLAP,
            "the image has the bytes of an `exclude_eval` evaluation image (same sha256)",
            false,
        );
    }
    if cfg.dedup_sha256 && claims.lock().unwrap().get(&sha).is_some_and(|&j| j < index) {
        return RowOutcome::SameAs { meta, sha };
    }
    // Decode only once the image's memory (from its header) fits in the budget.
    let processed = {
        let _share = budget.admit(decode_cost(&bytes, opts));
        process(&bytes, opts)
    };
    let p = match processed {
        Ok(p) => p,
        Err(f) => {
            let resize = !matches!(f.reason, "empty_body" | "html_body");
            return failed(meta, f.reason, f.message, resize);
        }
    };
    if cfg.dedup_sha256 {
        let mut c = claims.lock().unwrap();
        let j = c.entry(sha).or_insert(index);
        *j = (*j).min(index);
    }
    meta.set_success(
        p.width,
        p.height,
        p.original_width,
        p.original_height,
        hex::encode(sha),
    );
    if let Some(ix) = exclude
        && !ix.by_phash(p.phash).is_empty()
    {
        return failed(
            meta,
            EVAL_OVERLAP,
            format!(
                "the image is near an `exclude_eval` evaluation image (perceptual hash within {} bits)",
                cfg.exclude_eval_phash_distance
            ),
            true,
        );
    }
    meta.phash = Some(format!("{:016x}", p.phash));
    if let Some(o) = p.orientation {
        meta.exif = Some(serde_json::json!({ "Image Orientation": o }).to_string());
    }
    RowOutcome::Ok {
        meta,
        ext: p.ext,
        bytes: p.bytes,
        sha,
        phash: p.phash,
    }
}

/// Whether output times are fixed by `SOURCE_DATE_EPOCH` (see `openwit_core::clock`).
fn fixed_clock() -> bool {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .is_some_and(|s| s.trim().parse::<i64>().is_ok())
}

/// The status and message of a row whose bytes equal those of the row `owner`.
fn dup_message(owner: &str) -> (Status, String) {
    (
        Status::FailedToDownload,
        format!("duplicate: duplicate of {owner} (same sha256)"),
    )
}

/// The status and message of a row whose perceptual hash is near that of the row `owner`.
fn near_message(owner: &str, max: Option<u32>) -> (Status, String) {
    (
        Status::FailedToResize,
        format!(
            "near_duplicate: near-duplicate of {owner} (perceptual hash within {} bits)",
            max.unwrap_or(0)
        ),
    )
}

/// The key a duplicate's message names (`... duplicate of KEY ...`).
fn owner_of(message: &str) -> Option<&str> {
    let rest = message.split_once("duplicate of ")?.1;
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end).filter(|k| !k.is_empty())
}

/// A processed row turned into a drop by the dedup: sizes and EXIF go, hashes stay (the reduce
/// step reads them).
fn demoted(mut meta: SampleMeta, status: Status, message: String) -> SampleMeta {
    meta.status = status;
    meta.error_message = Some(message);
    meta.width = None;
    meta.height = None;
    meta.original_width = None;
    meta.original_height = None;
    meta.exif = None;
    meta
}

impl DownloadStage {
    /// The run-wide dedup across shards, once every shard is written: every row that processed
    /// (a success, or a drop as a duplicate or near-duplicate; their hashes are in the parquet)
    /// is evidence, in key order (= input row order). A success whose bytes equal a lower row's,
    /// or whose perceptual hash is near a lower row's, is demoted in its shard
    /// ([`openwit_shard::demote_rows`]). A task's own decisions only looked at lower rows of its
    /// shard, so the decisions here only add drops, never undo one; running it again after a
    /// kill finds the same answers. A shard with demoted rows is written as the reduce step's
    /// own output (its tar, parquet and `_stats.json`), which the executor commits: renamed over
    /// the task's files locally, uploaded as the reduce's files on a shared workdir, whose
    /// readers take the reduce's copy. Returns `sizes.json` and the drops across shards (counted
    /// from the final state: drops whose owner is in another shard).
    fn resolve_across_shards(
        &self,
        ctx: &TaskContext<'_>,
        names: &[String],
    ) -> Result<(BTreeMap<String, u64>, openwit_core::Drops)> {
        let dir = &ctx.stage_dir();
        struct Cand {
            shard: usize,
            key: String,
            sha: Option<[u8; 32]>,
            phash: Option<u64>,
            /// A success, or a drop made by an earlier reduce (its owner is in another shard).
            open: bool,
            success: bool,
        }
        let dedup = self.cfg.dedup_sha256 || self.cfg.near_dup_distance.is_some();
        let mut sizes = BTreeMap::new();
        let mut drops = openwit_core::Drops::default();
        let mut cands: Vec<Cand> = Vec::new();
        let mut successes = vec![0u64; names.len()];
        for (si, name) in names.iter().enumerate() {
            let pq = dir.join(format!("{name}.parquet"));
            let rows = openwit_shard::read_parquet_columns(
                &pq,
                &["key", "status", "error_message", "sha256", "phash"],
            )?;
            let keys: std::collections::HashSet<&str> =
                rows.iter().filter_map(|r| r[0].as_deref()).collect();
            for r in &rows {
                let success = r[1].as_deref() == Some("success");
                successes[si] += success as u64;
                if !dedup {
                    continue;
                }
                let msg = r[2].as_deref().unwrap_or("");
                let reason = openwit_shard::reason_of(msg);
                let is_dup = !success && matches!(reason, "duplicate" | "near_duplicate");
                if !(success || is_dup) {
                    continue;
                }
                let foreign = is_dup && owner_of(msg).is_some_and(|o| !keys.contains(o));
                let sha = r[3]
                    .as_deref()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok());
                let phash = r[4]
                    .as_deref()
                    .and_then(|h| u64::from_str_radix(h, 16).ok());
                cands.push(Cand {
                    shard: si,
                    key: r[0].clone().unwrap_or_default(),
                    sha,
                    phash,
                    open: success || foreign,
                    success,
                });
            }
        }
        cands.sort_by(|a, b| a.key.cmp(&b.key));
        let mut first: HashMap<[u8; 32], usize> = HashMap::new();
        let mut near = self.cfg.near_dup_distance.map(Near::new);
        let mut demote: Vec<BTreeMap<String, (Status, String)>> =
            vec![BTreeMap::new(); names.len()];
        for (i, c) in cands.iter().enumerate() {
            if c.open {
                let by_sha = c
                    .sha
                    .as_ref()
                    .and_then(|s| first.get(s))
                    .filter(|_| self.cfg.dedup_sha256);
                let verdict = if let Some(&j) = by_sha {
                    Some(dup_message(&cands[j].key))
                } else {
                    match (near.as_ref(), c.phash) {
                        (Some(n), Some(h)) => n
                            .lowest(h)
                            .map(|j| near_message(&cands[j].key, self.cfg.near_dup_distance)),
                        _ => None,
                    }
                };
                if let Some((st, msg)) = verdict {
                    drops.inc(openwit_shard::reason_of(&msg));
                    if c.success {
                        successes[c.shard] -= 1;
                        demote[c.shard].insert(c.key.clone(), (st, msg));
                    }
                }
            }
            if let Some(s) = c.sha {
                first.entry(s).or_insert(i);
            }
            if let (Some(n), Some(h)) = (near.as_mut(), c.phash) {
                n.add(h, i);
            }
        }
        for (si, name) in names.iter().enumerate() {
            if !demote[si].is_empty() {
                tracing::info!(shard = %name, rows = demote[si].len(), "duplicates of lower shards removed");
                let files = [
                    format!("{name}.tar"),
                    format!("{name}.parquet"),
                    format!("{name}_stats.json"),
                ];
                let from = files.clone().map(|f| dir.join(f));
                let to = [
                    ctx.output_path(&files[0])?,
                    ctx.output_path(&files[1])?,
                    ctx.output_path(&files[2])?,
                ];
                fn paths(p: &[PathBuf; 3]) -> ShardFiles<'_> {
                    ShardFiles {
                        tar: &p[0],
                        parquet: &p[1],
                        stats: &p[2],
                    }
                }
                openwit_shard::demote_rows(
                    paths(&from),
                    paths(&to),
                    &self.extra_columns(),
                    &demote[si],
                )?;
            }
            sizes.insert(format!("{name}.tar"), successes[si]);
        }
        Ok((sizes, drops))
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
    }
}

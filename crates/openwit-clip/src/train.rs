//! The training loop: batches from [`crate::data::Loader`], CLIP's loss, AdamW with a cosine
//! schedule, contrastive accumulation ([`crate::accum`]) and gradient clipping, bf16 on CUDA, checkpoints that resume, a JSONL
//! log per step and an SVG of the curves.
//!
//! Layout of the output folder:
//! - `checkpoints/step-NNNNNNNN/{model.safetensors, optimizer.safetensors, state.json}`; a
//!   checkpoint is written under `*.partial` and renamed when complete, so `kill -9` leaves
//!   either a whole checkpoint or a `.partial` that the next run removes;
//! - `metrics.jsonl`: one line per step; on resume the lines after the checkpoint are dropped,
//!   so the curve continues without duplicates;
//! - `curves.svg`: loss, learning rate, logit scale and data-wait fraction, redrawn at each checkpoint.
//!
//! Randomness after initialization is derived from (seed, epoch, batch) — the shard order, the
//! shuffle buffer and the crops — so the checkpoint's data position and the seed are the whole
//! RNG state.
//!
//! Data parallel ([`crate::dist`]): each rank reads its own shards ([`crate::data::Share`]:
//! disjoint, or drawn with replacement when there are fewer shards than ranks). At every
//! checkpoint the ranks all-gather their positions and sample counts; rank 0 writes them all
//! (`state.json`: `world`, `positions` in rank order, `samples_seen` of all ranks together). A
//! job resumed with as many ranks continues each rank from its own position; with another
//! number of ranks, positions count in samples ([`ResumeRule::Samples`]). Every rank logs which
//! rule applied.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::accum::accumulated_backward;
use crate::data::{Loader, LoaderConfig, Normalizer, Position};
use crate::error::{ClipError, IoAt, Result};
use crate::loss::clamp_logit_scale;
use crate::model::{Clip, Fwd, ModelConfig, Precision};
use crate::optim::{AdamW, AdamWConfig, Moments, cosine_lr};
use crate::plot::{Point, curves_svg};
use crate::tokenizer::Tokenizer;

fn default_batch() -> usize {
    256
}
fn default_accum() -> usize {
    1
}
fn default_lr() -> f64 {
    5e-4
}
fn default_clip() -> f64 {
    1.0
}
fn default_every() -> u64 {
    500
}
fn default_buffer() -> usize {
    1000
}
fn default_prefetch() -> usize {
    4
}
fn default_device() -> String {
    "auto".into()
}
fn default_precision() -> String {
    "auto".into()
}
fn default_moments() -> String {
    "fp32".into()
}
fn is_default_moments(m: &str) -> bool {
    m == "fp32"
}
fn default_dist_timeout() -> f64 {
    120.0
}
fn is_default_dist_timeout(t: &f64) -> bool {
    *t == default_dist_timeout()
}

/// The `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// A model preset (`ViT-B-32`, `RN50`, `tiny-vit`, ...; `-quickgelu` for OpenAI's activation).
    pub model: String,
    /// Shard files, folders or brace patterns, relative to the pipeline file. Default: the
    /// `download` stage's shards.
    #[serde(default)]
    pub shards: Vec<String>,
    /// Optimizer steps in total.
    pub steps: u64,
    /// Samples per micro-batch (the contrastive batch).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Contrastive accumulation (OpenCLIP's `accum_freq`, [`crate::accum`]): micro-batches of
    /// `batch_size` per optimizer step, the loss over all of them at once, so the contrastive
    /// batch is `accum_freq x batch_size` (times the ranks) with one micro-batch's graph in memory.
    // Not serialized at its default: the stage's fingerprint keeps the `accum_steps = 1` that
    // workdirs made before this key hold (see `stage.rs`).
    #[serde(default = "default_accum", skip_serializing_if = "is_one")]
    pub accum_freq: usize,
    /// Removed: `accum_steps` summed independent micro-batch losses (each micro-batch its own
    /// contrastive batch). Read only to refuse it with a message naming `accum_freq`.
    #[serde(default, skip_serializing)]
    pub accum_steps: Option<serde_json::Value>,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Linear warmup steps (default: 5% of `steps`).
    #[serde(default)]
    pub warmup: Option<u64>,
    /// Clip the global gradient norm to this (0 = off).
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    #[serde(default)]
    pub adamw: AdamWConfig,
    /// How AdamW stores its moments: `fp32` or `bf16` (half the optimizer state, fp32
    /// arithmetic; [`crate::optim::Moments`]).
    // Not serialized at its default: the stage's fingerprint, and so the workdirs made before
    // this key existed, stay as they were.
    #[serde(
        default = "default_moments",
        skip_serializing_if = "is_default_moments"
    )]
    pub adam_moments: String,
    /// `fp32`, `bf16` or `auto` (bf16 on CUDA, fp32 on CPU).
    #[serde(default = "default_precision")]
    pub precision: String,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Checkpoint every N steps (and at the end).
    #[serde(default = "default_every")]
    pub checkpoint_every: u64,
    /// Decode/augment threads (default: the number of cores).
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(default = "default_buffer")]
    pub shuffle_buffer: usize,
    /// Finished batches kept ready ahead of the device.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[serde(default)]
    pub threads: Option<usize>,
    /// CLIP's BPE merges file (default: `$OPENWIT_CLIP_VOCAB` or the setup script's copy).
    #[serde(default)]
    pub vocab: Option<PathBuf>,
    /// Start from these weights (safetensors with OpenCLIP names) instead of CLIP's init.
    #[serde(default)]
    pub init_weights: Option<PathBuf>,
    /// Activation checkpointing of the transformer blocks (ViT image tower and text tower):
    /// keep only each block's input and run the block again during the backward pass. Less
    /// memory for one more forward pass of the blocks; the gradients are the same.
    #[serde(default)]
    pub grad_checkpointing: bool,
    /// Data-parallel runs (one process per rank under torchrun or srun, `crate::dist`): each
    /// rank's loss over its own rows against the whole batch's columns (OpenCLIP's `local_loss`)
    /// instead of over the whole global batch.
    // Not serialized at their defaults: the stage's fingerprint, and so the workdirs made before
    // these keys existed, stay as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_loss: bool,
    /// Data-parallel runs: seconds after which a rank without heartbeat is lost (the others end
    /// with exit code 1) and a collective that does not finish fails.
    #[serde(
        default = "default_dist_timeout",
        skip_serializing_if = "is_default_dist_timeout"
    )]
    pub dist_timeout: f64,
    /// Evaluate the model every this many steps (and after the last) on the held-out sets of
    /// the pipeline's `[eval]` table: zero-shot top-1/top-5 and retrieval R@1/5/10, written to
    /// `metrics.jsonl` (the `eval` field of that step's line) and plotted in `curves.svg`. 0: never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_every: u64,
    /// Hold this percentage of the samples out of training, chosen by image
    /// ([`crate::data::held_out`]): the train stage records the split in `train/split.tsv`, and
    /// `[eval]` measures shard sets on the held-out part (`part`). 0: train on everything.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub held_out_percent: u32,
    /// `openwit submit --slurm`: the data-parallel ranks of the training job step (Slurm's
    /// `--ntasks`, started with `srun`). 1: one process. How the run is launched, not what it
    /// trains: not fingerprinted.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub ntasks: usize,
    /// `openwit submit --slurm`: GPUs for each rank (Slurm's `--gpus-per-task`); 0 asks for none.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub gpus_per_task: u32,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TrainConfig {
    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<ModelConfig> {
        let m = ModelConfig::preset_or_err(&self.model)?;
        if let Some(v) = &self.accum_steps {
            return Err(ClipError::Config(format!(
                "[train] accum_steps = {v} was removed (it averaged independent micro-batch losses, each micro-batch its own contrastive batch): write `accum_freq = {v}` instead, contrastive accumulation over all {v} micro-batches at once (OpenCLIP's --accum-freq; see pipelines/README.md)"
            )));
        }
        if self.steps == 0
            || self.batch_size < 2
            || self.accum_freq == 0
            || self.held_out_percent > 90
            || self.checkpoint_every == 0
        {
            return Err(ClipError::Config(
                "[train] needs steps >= 1, batch_size >= 2 (a contrastive batch needs negatives), accum_freq >= 1, checkpoint_every >= 1 and held_out_percent <= 90"
                    .into(),
            ));
        }
        if self.ntasks == 0 || self.ntasks > 65_536 || self.gpus_per_task > 1024 {
            return Err(ClipError::Config(format!(
                "[train] ntasks = {}, gpus_per_task = {}: give 1 to 65536 ranks and at most 1024 GPUs per rank",
                self.ntasks, self.gpus_per_task
            )));
        }
        if !(self.dist_timeout > 0.0 && self.dist_timeout.is_finite()) {
            return Err(ClipError::Config(format!(
                "[train] dist_timeout = {}: give a positive number of seconds",
                self.dist_timeout
            )));
        }
        if !matches!(self.precision.as_str(), "auto" | "fp32" | "bf16") {
            return Err(ClipError::Config(format!(
                "[train] precision `{}`: use `auto`, `fp32` or `bf16`",
                self.precision
            )));
        }
        self.moments()?;
        Ok(m)
    }

    /// `adam_moments` as a [`Moments`]; a configuration error naming the allowed values.
    pub fn moments(&self) -> Result<Moments> {
        Moments::parse(&self.adam_moments).ok_or_else(|| {
            ClipError::Config(format!(
                "[train] adam_moments `{}`: use `fp32` or `bf16` (how AdamW stores its two moments; bf16 halves the optimizer state)",
                self.adam_moments
            ))
        })
    }

    fn precision_on(&self, device: Device) -> Precision {
        match (self.precision.as_str(), device) {
            ("bf16", _) => Precision::Bf16,
            ("auto", Device::Cuda(_)) => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }

    pub fn warmup_steps(&self) -> u64 {
        self.warmup.unwrap_or(self.steps / 20)
    }
}

fn one_rank() -> usize {
    1
}

/// Where a checkpoint leaves the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: u64,
    /// Rank 0's data position (the only one checkpoints recorded before `positions`).
    pub position: Position,
    pub seed: u64,
    pub model: ModelConfig,
    /// Samples trained on so far by all the ranks together.
    pub samples_seen: u64,
    /// The number of ranks that wrote the checkpoint (1 for checkpoints from before it was
    /// recorded).
    #[serde(default = "one_rank")]
    pub world: usize,
    /// Every rank's data position, in rank order (empty in checkpoints from before they were
    /// recorded: then `position` is taken as the one rank's).
    #[serde(default)]
    pub positions: Vec<Position>,
}

/// How a resumed run places each rank's data stream ([`CheckpointState::resume_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeRule {
    /// As many ranks as wrote the checkpoint: each rank continues from its own position, so the
    /// run reads exactly what the uninterrupted run would have.
    SameRanks,
    /// Another number of ranks: positions in samples. Each rank starts in the oldest recorded
    /// epoch `e`, after `S / N` samples of its new share (the first `S mod N` ranks one more),
    /// where `S` is the samples of epoch `e` the ranks had read in all (ranks already in a later
    /// epoch count none) and `N` the new number of ranks. Deterministic; the job skips as many
    /// samples of epoch `e` as it had read, but its shares differ from the old ones, so for the
    /// rest of epoch `e` some samples may be read a second time and others not at all. From
    /// epoch `e + 1` on, every epoch reads every sample once (disjoint shares) as usual.
    Samples,
}

impl CheckpointState {
    /// Every rank's recorded position and their number (a checkpoint without `positions`:
    /// `position`, as one rank's).
    pub fn recorded_positions(&self) -> (usize, Vec<Position>) {
        if self.positions.is_empty() {
            (1, vec![self.position])
        } else {
            (self.positions.len(), self.positions.clone())
        }
    }

    /// Where rank `rank` of `world` resumes its data stream, and by which rule.
    pub fn resume_position(&self, rank: usize, world: usize) -> (Position, ResumeRule) {
        let (was, positions) = self.recorded_positions();
        if was == world && self.world == world {
            return (positions[rank], ResumeRule::SameRanks);
        }
        let epoch = positions.iter().map(|p| p.epoch).min().unwrap_or(0);
        let total: u64 = positions
            .iter()
            .filter(|p| p.epoch == epoch)
            .map(|p| p.sample)
            .sum();
        let n = world.max(1) as u64;
        let sample = total / n + u64::from((rank as u64) < total % n);
        (Position { epoch, sample }, ResumeRule::Samples)
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub lr: f64,
    pub logit_scale: f64,
    pub grad_norm: f64,
    pub samples_per_s: f64,
    /// Fraction of the step's wall time spent waiting for the next batch.
    pub data_wait: f64,
    /// Resident memory of the process (bytes).
    pub rss_bytes: u64,
    /// The held-out evaluation run after this step (`eval_every`), as [`Hooks::evaluate`]
    /// returned it: `{"zero_shot": {"top1", "top5", ...}, "retrieval": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<serde_json::Value>,
}

/// What a finished training run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub model: String,
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub samples_seen: u64,
    /// Where this rank's data stream resumed, and by which rule (a resumed run only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<(Position, ResumeRule)>,
    pub final_loss: f64,
    pub mean_data_wait: f64,
    pub samples_per_s: f64,
    pub device: String,
    pub precision: Precision,
    pub drops: openwit_core::Drops,
    /// The final weights (OpenCLIP names).
    pub weights: PathBuf,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn ckpt_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// The newest complete checkpoint in `dir/checkpoints`, removing `.partial` leftovers.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(PathBuf, CheckpointState)>> {
    let cdir = dir.join("checkpoints");
    let rd = match std::fs::read_dir(&cdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClipError::io(&cdir, e)),
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for e in rd {
        let p = e.at(&cdir)?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".partial") {
            // Every rank of a data-parallel job looks here at once: another may have removed it.
            match std::fs::remove_dir_all(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.at(&p)?,
            }
            continue;
        }
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
            && p.join("state.json").exists()
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, p));
        }
    }
    let Some((_, p)) = best else { return Ok(None) };
    let sp = p.join("state.json");
    let state: CheckpointState = serde_json::from_slice(&std::fs::read(&sp).at(&sp)?)
        .map_err(|e| ClipError::Checkpoint(format!("{}: {e}", sp.display())))?;
    Ok(Some((p, state)))
}

fn write_checkpoint(
    dir: &Path,
    model: &Clip,
    opt: &AdamW,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf> {
    let cdir = dir.join("checkpoints");
    let fin = cdir.join(ckpt_name(state.step));
    let tmp = cdir.join(format!("{}.partial", ckpt_name(state.step)));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).at(&tmp)?;
    model.save(&tmp.join("model.safetensors"))?;
    let op = tmp.join("optimizer.safetensors");
    Tensor::write_safetensors(&opt.state(), &op).map_err(|e| ClipError::torch(&op, e))?;
    let sp = tmp.join("state.json");
    std::fs::write(&sp, serde_json::to_vec_pretty(state).unwrap()).at(&sp)?;
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        let p = tmp.join(f);
        std::fs::File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
    }
    if fin.exists() {
        std::fs::remove_dir_all(&fin).at(&fin)?;
    }
    std::fs::rename(&tmp, &fin).at(&fin)?;
    std::fs::File::open(&cdir)
        .and_then(|f| f.sync_all())
        .at(&cdir)?;
    // Keep the newest `keep` checkpoints.
    let mut steps: Vec<PathBuf> = std::fs::read_dir(&cdir)
        .at(&cdir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("step-")
                    && !n.to_string_lossy().ends_with(".partial")
            })
        })
        .collect();
    steps.sort();
    while steps.len() > keep {
        let old = steps.remove(0);
        std::fs::remove_dir_all(&old).at(&old)?;
    }
    Ok(fin)
}

/// Keeps the lines of `metrics.jsonl` up to `step` (a resumed run rewrites what followed).
fn truncate_metrics(path: &Path, upto: Option<u64>) -> Result<Vec<StepMetrics>> {
    let mut kept = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            let Ok(m) = serde_json::from_str::<StepMetrics>(&line) else {
                break;
            };
            if upto.is_some_and(|u| m.step < u) {
                kept.push(m);
            }
        }
    }
    let mut f = std::fs::File::create(path).at(path)?;
    for m in &kept {
        writeln!(f, "{}", serde_json::to_string(m).unwrap()).at(path)?;
    }
    f.sync_all().at(path)?;
    Ok(kept)
}

/// The mean of `keys` in `m.eval[group]` (NaN when absent): what the plot draws.
fn eval_figure(m: &StepMetrics, group: &str, keys: &[&str]) -> f64 {
    let Some(g) = m.eval.as_ref().and_then(|e| e.get(group)) else {
        return f64::NAN;
    };
    let v: Vec<f64> = keys.iter().filter_map(|k| g.get(*k)?.as_f64()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn write_plot(dir: &Path, title: &str, hist: &[StepMetrics]) -> Result<()> {
    let pts: Vec<Point> = hist
        .iter()
        .map(|m| Point {
            step: m.step as f64,
            loss: m.loss,
            lr: m.lr,
            logit_scale: m.logit_scale,
            data_wait: m.data_wait,
            eval_top1: eval_figure(m, "zero_shot", &["top1"]),
            eval_r5: eval_figure(m, "retrieval", &["image_to_text_r5", "text_to_image_r5"]),
        })
        .collect();
    let p = dir.join("curves.svg");
    let tmp = dir.join(".curves.svg.partial");
    std::fs::write(&tmp, curves_svg(title, &pts)).at(&tmp)?;
    std::fs::rename(&tmp, &p).at(&p)
}

/// Hooks the caller gives the loop.
pub struct Hooks<'a> {
    /// Checked between steps; true stops the run with [`ClipError::Interrupted`] (after no checkpoint).
    pub cancelled: &'a dyn Fn() -> bool,
    /// Called with the samples of each step.
    pub progress: &'a dyn Fn(u64),
    /// Called after each step with (steps done, steps in all, the step's figures in words).
    pub status: &'a dyn Fn(u64, u64, &str),
    /// Stop (as if killed) after this many steps of this run: for tests.
    pub stop_after: Option<u64>,
    /// Evaluates the model on held-out data every `eval_every` steps (rank 0 only); its JSON
    /// goes into that step's metrics line.
    pub evaluate: Option<&'a dyn Fn(&Clip) -> Result<serde_json::Value>>,
}

impl Default for Hooks<'_> {
    fn default() -> Self {
        Hooks {
            cancelled: &|| false,
            progress: &|_| {},
            status: &|_, _, _| {},
            stop_after: None,
            evaluate: None,
        }
    }
}

/// Trains on `shards`, writing checkpoints, metrics and the plot into `out`; resumes from the
/// newest checkpoint there.
pub fn train(
    cfg: &TrainConfig,
    shards: Vec<PathBuf>,
    out: &Path,
    seed: u64,
    hooks: &Hooks<'_>,
) -> Result<TrainSummary> {
    let mcfg = cfg.validate()?;
    let device = crate::parse_device(&cfg.device)?;
    // Data parallel (torchrun / Slurm variables with a world above 1): join the process group.
    let (dist, device) = match crate::dist::join_from_env(
        device,
        &cfg.device,
        crate::dist::DistConfig {
            timeout: std::time::Duration::from_secs_f64(cfg.dist_timeout),
            local_loss: cfg.local_loss,
            ..Default::default()
        },
    )? {
        Some((d, dev)) => (Some(d), dev),
        None => (None, device),
    };
    // This rank's shards: its own every N-th, or drawn with replacement when there are fewer
    // shards than ranks (`crate::data::Share`).
    let share = dist.as_ref().map(|d| d.share()).unwrap_or_default();
    // Rank 0 writes the checkpoints and the plot; every rank its own metrics.
    let writer = dist.as_ref().is_none_or(|d| d.rank() == 0);
    let precision = cfg.precision_on(device);
    if let Some(t) = cfg.threads {
        tch::set_num_threads(t as i32);
    }
    std::fs::create_dir_all(out).at(out)?;
    let tokenizer = Arc::new(match &cfg.vocab {
        Some(p) => Tokenizer::from_file(p)?,
        None => Tokenizer::from_default()?,
    });

    let mut model = Clip::new_seeded(&mcfg, device, seed);
    if let Some(w) = &cfg.init_weights {
        model.load(w)?;
    }
    let mut opt = AdamW::with_moments(model.named_parameters(), cfg.adamw.clone(), cfg.moments()?);
    let mut step = 0u64;
    let mut position = Position::default();
    let mut samples_seen = 0u64;
    let mut resumed_from = None;
    let mut resumed_at = None;
    if let Some((dir, state)) = latest_checkpoint(out)? {
        if state.model != mcfg || state.seed != seed {
            return Err(ClipError::Checkpoint(format!(
                "{}: the checkpoint is of model `{}` with seed {}, the config asks for `{}` with seed {}; remove {} or restore the config",
                dir.display(),
                state.model.name,
                state.seed,
                mcfg.name,
                seed,
                out.join("checkpoints").display()
            )));
        }
        model.load(&dir.join("model.safetensors"))?;
        let op = dir.join("optimizer.safetensors");
        let t = Tensor::read_safetensors(&op).map_err(|e| ClipError::torch(&op, e))?;
        let t: Vec<(String, Tensor)> = t
            .into_iter()
            .map(|(n, x)| (n, x.to_device(device)))
            .collect();
        opt.load_state(&t, &op)?;
        step = state.step;
        let (at, rule) = state.resume_position(share.rank, share.world);
        position = at;
        samples_seen = state.samples_seen;
        resumed_from = Some(step);
        resumed_at = Some((at, rule));
        let how = match rule {
            ResumeRule::SameRanks => "the ranks that wrote it: each rank from its own position",
            ResumeRule::Samples => {
                "another number of ranks than wrote it: positions in samples (the recorded epoch's samples read in all, divided among the ranks)"
            }
        };
        tracing::info!(
            step,
            rank = share.rank,
            ranks = share.world,
            checkpoint_ranks = state.recorded_positions().0,
            epoch = position.epoch,
            sample = position.sample,
            "resuming from {} with {how}",
            dir.display()
        );
    }
    if let Some(d) = &dist {
        d.check_same("the checkpoint to resume from", step as i64)?;
        d.broadcast_params(&model.named_parameters());
    }
    let metrics_path = match &dist {
        Some(d) if d.rank() > 0 => {
            let dir = out.join(format!("rank-{}", d.rank()));
            std::fs::create_dir_all(&dir).at(&dir)?;
            dir.join("metrics.jsonl")
        }
        _ => out.join("metrics.jsonl"),
    };
    let mut history = truncate_metrics(&metrics_path, resumed_from.or(Some(0)))?;
    let mut metrics = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&metrics_path)
        .at(&metrics_path)?;

    let workers = cfg.workers.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // On a GPU this thread only launches kernels, but it must never wait for a core, or
        // the GPU idles: leave it one. On the CPU it is the one computing, next to the workers.
        if device.is_cuda() {
            cores.saturating_sub(1).max(1)
        } else {
            cores
        }
    });
    let mut loader = Loader::start_share(
        LoaderConfig {
            shards,
            batch_size: cfg.batch_size,
            image_size: mcfg.vision.image_size() as u32,
            context_length: mcfg.text.context_length as usize,
            workers,
            prefetch: cfg.prefetch,
            shuffle_buffer: cfg.shuffle_buffer,
            seed,
            train: true,
            pin_memory: device.is_cuda().then_some(device),
            held_out_percent: cfg.held_out_percent,
        },
        share,
        tokenizer,
        position,
    );
    let normalizer = Normalizer::new(device);
    let fwd = Fwd {
        precision,
        train: true,
    };
    let warmup = cfg.warmup_steps();
    let started = Instant::now();
    let start_step = step;
    let mut wait_total = 0.0;
    let mut last_loss = f64::NAN;
    let mut ran = 0u64;
    // Samples this rank trained on in this run; the checkpoints add up every rank's.
    let base_seen = samples_seen;
    let mut local_seen = 0u64;
    // The gradients' all-reduce during the backward pass (data parallel only).
    let params = model.named_parameters();
    let sync = match &dist {
        Some(d) => Some(d.grad_sync(&params)?),
        None => None,
    };
    while step < cfg.steps {
        if (hooks.cancelled)() {
            return Err(ClipError::Interrupted);
        }
        if hooks.stop_after.is_some_and(|n| ran >= n) {
            return Err(ClipError::Interrupted);
        }
        let t0 = Instant::now();
        let lr = cosine_lr(cfg.lr, warmup, cfg.steps, step);
        let mut wait = 0.0;
        let mut n_samples = 0u64;
        // The step's micro-batches as the loader gives them (uint8 images in host memory),
        // taken from the loader as the first pass reaches them: with contrastive accumulation
        // each is put on the device twice (crate::accum).
        let mut micro: Vec<(Tensor, Tensor)> = Vec::with_capacity(cfg.accum_freq);
        let loss = accumulated_backward(
            &model,
            cfg.accum_freq,
            &mut |j| {
                if j == micro.len() {
                    let tw = Instant::now();
                    let batch = loader.next_batch().ok_or_else(|| {
                        ClipError::Data("the shards hold no usable sample (see the drops)".into())
                    })?;
                    wait += tw.elapsed().as_secs_f64();
                    position = batch.position;
                    n_samples += batch.texts.len() as u64;
                    micro.push((batch.images, batch.tokens));
                }
                let (images, tokens) = &micro[j];
                Ok((normalizer.apply(images), tokens.to_device(device)))
            },
            fwd,
            cfg.grad_checkpointing,
            sync.as_ref(),
        )?;
        drop(micro);
        let grad_norm = opt.step(lr, cfg.grad_clip, 1.0);
        clamp_logit_scale(&model.logit_scale);
        opt.zero_grad();
        // The step's one wait for the device: loss, gradient norm and temperature read together.
        let figures = Tensor::stack(
            &[
                loss.to_kind(Kind::Float),
                grad_norm,
                tch::no_grad(|| model.logit_scale.exp()).to_kind(Kind::Float),
            ],
            0,
        );
        let figures = Vec::<f64>::try_from(figures.to_kind(Kind::Double).to_device(Device::Cpu))
            .map_err(|e| ClipError::Data(format!("reading the step's loss: {e}")))?;
        let dt = t0.elapsed().as_secs_f64();
        wait_total += wait;
        local_seen += n_samples;
        last_loss = figures[0];
        let mut m = StepMetrics {
            step,
            epoch: position.epoch,
            loss: last_loss,
            lr,
            logit_scale: figures[2],
            grad_norm: figures[1],
            samples_per_s: n_samples as f64 / dt.max(1e-9),
            data_wait: wait / dt.max(1e-9),
            rss_bytes: rss_bytes(),
            eval: None,
        };
        let eval_step = cfg.eval_every > 0
            && ((step + 1).is_multiple_of(cfg.eval_every) || step + 1 == cfg.steps);
        if let Some(evaluate) = hooks.evaluate
            && writer
            && eval_step
        {
            let te = Instant::now();
            let v = tch::no_grad(|| evaluate(&model))?;
            tracing::info!(step = step + 1, seconds = te.elapsed().as_secs_f64(), eval = %v, "held-out evaluation");
            m.eval = Some(v);
        }
        // The other ranks wait for rank 0's evaluation here, on the store: at the next step's
        // collective they would give up after `dist_timeout`, which a large held-out set exceeds.
        if let Some(d) = &dist
            && eval_step
        {
            d.after_rank0(&format!("eval/{}", step + 1));
        }
        writeln!(metrics, "{}", serde_json::to_string(&m).unwrap()).at(&metrics_path)?;
        if !last_loss.is_finite() {
            return Err(ClipError::Data(format!(
                "the loss is {last_loss} at step {step}; lower `lr` or use `precision = \"fp32\"`"
            )));
        }
        (hooks.progress)(n_samples);
        (hooks.status)(
            step + 1,
            cfg.steps,
            &format!(
                "loss {:.4}, {:.0} samples/s, data wait {:.1}%",
                m.loss,
                m.samples_per_s,
                100.0 * m.data_wait
            ),
        );
        history.push(m);
        step += 1;
        ran += 1;
        if step.is_multiple_of(cfg.checkpoint_every) || step == cfg.steps {
            // Every rank's position (and samples) for the checkpoint: a collective, on every rank.
            let (positions, seen) = match &dist {
                Some(d) => {
                    let all = d.all_gather_i64(&[
                        position.epoch as i64,
                        position.sample as i64,
                        local_seen as i64,
                    ]);
                    let positions: Vec<Position> = all
                        .iter()
                        .map(|v| Position {
                            epoch: v[0] as u64,
                            sample: v[1] as u64,
                        })
                        .collect();
                    (positions, all.iter().map(|v| v[2] as u64).sum::<u64>())
                }
                None => (vec![position], local_seen),
            };
            samples_seen = base_seen + seen;
            if writer {
                metrics.sync_all().at(&metrics_path)?;
                let state = CheckpointState {
                    step,
                    position: positions[0],
                    seed,
                    model: mcfg.clone(),
                    samples_seen,
                    world: share.world,
                    positions,
                };
                write_checkpoint(out, &model, &opt, &state, 2)?;
                write_plot(out, &format!("{} training", mcfg.name), &history)?;
                tracing::info!(step, loss = last_loss, "checkpoint");
            }
            // Writing a large model's checkpoint can outlast `dist_timeout` too.
            if let Some(d) = &dist {
                d.after_rank0(&format!("checkpoint/{step}"));
            }
        }
    }
    drop(sync);
    if let Some(d) = dist {
        d.finish();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ran_steps = step - start_step;
    let weights = out
        .join("checkpoints")
        .join(ckpt_name(cfg.steps))
        .join("model.safetensors");
    Ok(TrainSummary {
        model: mcfg.name.clone(),
        steps: step,
        resumed_from,
        samples_seen,
        resumed_at,
        final_loss: if ran_steps > 0 {
            last_loss
        } else {
            history.last().map(|m| m.loss).unwrap_or(f64::NAN)
        },
        mean_data_wait: if elapsed > 0.0 {
            wait_total / elapsed
        } else {
            0.0
        },
        samples_per_s: if elapsed > 0.0 {
            (ran_steps * (cfg.batch_size * cfg.accum_freq) as u64) as f64 / elapsed
        } else {
            0.0
        },
        device: format!("{device:?}"),
        precision,
        drops: loader.drops(),
        weights,
    })
}

/// Loads the final weights of a run in `out` (or a given checkpoint folder) for evaluation.
pub fn load_trained(out_or_ckpt: &Path, device: Device) -> Result<Clip> {
    let (dir, state) = if out_or_ckpt.join("state.json").exists() {
        let sp = out_or_ckpt.join("state.json");
        let s: CheckpointState = serde_json::from_slice(&std::fs::read(&sp).at(&sp)?)
            .map_err(|e| ClipError::Checkpoint(format!("{}: {e}", sp.display())))?;
        (out_or_ckpt.to_path_buf(), s)
    } else {
        latest_checkpoint(out_or_ckpt)?.ok_or_else(|| {
            ClipError::Checkpoint(format!("{}: no checkpoint found", out_or_ckpt.display()))
        })?
    };
    let mut m = Clip::new(&state.model, device);
    m.load(&dir.join("model.safetensors"))?;
    Ok(m)
}

/// Mean of a slice of the metric history.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>> {
    let f = std::fs::File::open(path).at(path)?;
    let mut v = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.at(path)?;
        v.push(
            serde_json::from_str(&line)
                .map_err(|e| ClipError::Data(format!("{}: {e}", path.display())))?,
        );
    }
    Ok(v)
}

/// A uint8 tensor image batch of random pixels and random tokens: for throughput benchmarks
/// that leave the data pipeline out.
pub fn synthetic_batch(n: i64, size: i64, ctx: i64, device: Device) -> (Tensor, Tensor) {
    let images = Tensor::randint(256, [n, 3, size, size], (Kind::Uint8, device));
    let tokens = Tensor::randint(49000, [n, ctx], (Kind::Int64, device));
    let _ = tokens.select(1, ctx - 1).fill_(crate::tokenizer::EOT);
    (images, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(world: usize, positions: Vec<Position>) -> CheckpointState {
        CheckpointState {
            step: 10,
            position: positions.first().copied().unwrap_or_default(),
            seed: 1,
            model: ModelConfig::preset("tiny-vit").unwrap(),
            samples_seen: 0,
            world,
            positions,
        }
    }

    fn at(epoch: u64, sample: u64) -> Position {
        Position { epoch, sample }
    }

    #[test]
    fn resuming_with_the_same_or_another_number_of_ranks() {
        let s = state(2, vec![at(1, 40), at(1, 44)]);
        // The same ranks: each its own position.
        assert_eq!(s.resume_position(0, 2), (at(1, 40), ResumeRule::SameRanks));
        assert_eq!(s.resume_position(1, 2), (at(1, 44), ResumeRule::SameRanks));
        // One rank: the 84 samples of epoch 1 read in all.
        assert_eq!(s.resume_position(0, 1), (at(1, 84), ResumeRule::Samples));
        // Four ranks: 84 / 4 each; 5 ranks: 17, 17, 17, 17, 16 (84 in all).
        for r in 0..4 {
            assert_eq!(s.resume_position(r, 4), (at(1, 21), ResumeRule::Samples));
        }
        let five: Vec<u64> = (0..5).map(|r| s.resume_position(r, 5).0.sample).collect();
        assert_eq!(five, vec![17, 17, 17, 17, 16]);
        // Ranks in different epochs: the oldest epoch, counting only the ranks still in it.
        let s = state(3, vec![at(2, 3), at(1, 50), at(1, 30)]);
        assert_eq!(s.resume_position(0, 2), (at(1, 40), ResumeRule::Samples));
        // A checkpoint from before positions were recorded: rank 0's position, as one rank's.
        let mut old: CheckpointState = serde_json::from_value(serde_json::json!({
            "step": 10, "position": {"epoch": 0, "sample": 64}, "seed": 1,
            "model": ModelConfig::preset("tiny-vit").unwrap(), "samples_seen": 64,
        }))
        .unwrap();
        assert_eq!((old.world, old.positions.len()), (1, 0));
        assert_eq!(
            old.resume_position(0, 1),
            (at(0, 64), ResumeRule::SameRanks)
        );
        assert_eq!(old.resume_position(1, 2), (at(0, 32), ResumeRule::Samples));
        old.positions = vec![at(0, 64)];
        assert_eq!(
            old.resume_position(0, 1),
            (at(0, 64), ResumeRule::SameRanks)
        );
    }
}

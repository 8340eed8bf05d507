//! The `train` and `eval` stages.
//!
//! `train` is one task: it trains into `WORKDIR/train/` (checkpoints, `metrics.jsonl`,
//! `curves.svg` are written there as training goes, so a killed run resumes from its newest
//! checkpoint) and commits `model.safetensors` (OpenCLIP names) and `train.json` when done.
//! `eval` loads those weights (or any safetensors given with a model preset) and writes
//! `results.json` and `results.txt`.

use std::path::{Path, PathBuf};

use openwit_core::{
    Error, PipelineSettings, Result, Stage, StageContext, TaskContext, TaskReport, TaskSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bench::{EvalSet, SetKind, SetSpec};
use crate::data::resolve_shards;
use crate::eval::{
    DEFAULT_TEMPLATES, EvalReport, Labels, OverlapReport, SetFeatures, SetOverlap,
    class_embeddings, classification_metrics, encode_set, encode_set_with, retrieval_multi,
    retrieval_set, templates_for, zero_shot_named, zero_shot_set as zero_shot_set_eval,
};
use crate::model::{Clip, ModelConfig};
use crate::overlap::{find_overlaps, retrieval_subset, rows, zero_shot_subset};
use crate::probe::SweepConfig;
use crate::probe::{LogReg, linear_probe_fit};
use crate::tokenizer::Tokenizer;
use crate::train::{Hooks, TrainConfig, TrainSummary, train};
use tch::Tensor;

/// The `train` stage.
pub struct TrainStage {
    cfg: TrainConfig,
    seed: u64,
    base: PathBuf,
}

impl TrainStage {
    /// `base`: the pipeline file's folder (relative shard paths are resolved against it).
    pub fn new(cfg: TrainConfig, pipeline: &PipelineSettings, base: &Path) -> Result<TrainStage> {
        cfg.validate()?;
        Ok(TrainStage {
            cfg,
            seed: pipeline.seed,
            base: base.to_path_buf(),
        })
    }
}

/// The shards of `patterns`, or when there are none the `download` stage's (`upstream`).
fn shard_list(
    table: &str,
    patterns: &[String],
    base: &Path,
    upstream: Vec<PathBuf>,
) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        let tars: Vec<PathBuf> = upstream
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        if tars.is_empty() {
            return Err(Error::Config(format!(
                "[{table}] has no `shards` and the `download` stage has no shards; run `openwit download` first or set `shards = [\"path/{{00000..00009}}.tar\"]`"
            )));
        }
        return Ok(tars);
    }
    Ok(resolve_shards(patterns, base)?)
}

impl Stage for TrainStage {
    fn name(&self) -> &str {
        "train"
    }

    fn upstream(&self) -> Vec<String> {
        if self.cfg.shards.is_empty() {
            vec!["download".into()]
        } else {
            Vec::new()
        }
    }

    fn config(&self) -> Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap();
        if let Some(o) = v.as_object_mut() {
            // Speed and memory settings do not change what is trained.
            for k in [
                "workers",
                "prefetch",
                "threads",
                "device",
                "vocab",
                "grad_checkpointing",
            ] {
                o.remove(k);
            }
            o.insert("seed".into(), json!(self.seed));
        }
        v
    }

    fn plan(&self, _ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        Ok(vec![TaskSpec::new("train", Value::Null)])
    }

    fn max_parallel(&self, _jobs: usize) -> usize {
        1
    }

    fn run_task(&self, ctx: &TaskContext<'_>, _task: &TaskSpec) -> Result<TaskReport> {
        let shards = shard_list(
            "train",
            &self.cfg.shards,
            &self.base,
            ctx.upstream_outputs("download"),
        )?;
        let out = ctx.stage_dir();
        let cancelled = || ctx.cancelled();
        let progress = |n| ctx.progress(n);
        let status = |done, total, msg: &str| ctx.steps(done, total, msg);
        let hooks = Hooks {
            cancelled: &cancelled,
            progress: &progress,
            status: &status,
            stop_after: None,
        };
        let summary = train(&self.cfg, shards, &out, self.seed, &hooks)?;
        let model_out = ctx.output_path("model.safetensors")?;
        std::fs::copy(&summary.weights, &model_out).map_err(|e| Error::io(&model_out, e))?;
        let mcfg = ModelConfig::preset_or_err(&self.cfg.model)?;
        let mut f = ctx.create_output("train.json")?;
        serde_json::to_writer_pretty(&mut f, &json!({"model": mcfg, "summary": summary}))
            .map_err(|e| Error::Stage(e.to_string()))?;
        use std::io::Write;
        f.flush()
            .map_err(|e| Error::io(out.join("train.json"), e))?;
        tracing::info!(
            steps = summary.steps,
            loss = summary.final_loss,
            samples_per_s = summary.samples_per_s,
            data_wait = summary.mean_data_wait,
            "training done"
        );
        Ok(TaskReport {
            items_in: summary.samples_seen,
            items_out: summary.steps,
            drops: summary.drops.clone(),
            extra: serde_json::to_value(&summary).unwrap(),
        })
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        let t = tasks.first()?;
        let s: TrainSummary = serde_json::from_value(t.extra.clone()).ok()?;
        Some(format!(
            "trained {} for {} steps ({} samples): final loss {:.4}, {:.1} samples/s, data wait {:.1}%",
            s.model,
            s.steps,
            s.samples_seen,
            s.final_loss,
            s.samples_per_s,
            100.0 * s.mean_data_wait
        ))
    }
}

fn default_templates() -> Vec<String> {
    DEFAULT_TEMPLATES.iter().map(|s| s.to_string()).collect()
}
fn default_eval_batch() -> usize {
    256
}
fn default_device() -> String {
    "auto".into()
}

/// The `[eval]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Weights to evaluate (safetensors, OpenCLIP names). Default: the `train` stage's model.
    #[serde(default)]
    pub weights: Option<String>,
    /// The model preset of `weights` (default: the one `train` used).
    #[serde(default)]
    pub model: Option<String>,
    /// Class names, in class-index order (needed with `shards`; a `folder` names its classes).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Prompt templates, `{}` (or clip_benchmark's `{c}`) = the class name. Default: a
    /// `benchmark`'s own templates file, else [`DEFAULT_TEMPLATES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<String>>,
    /// A clip_benchmark webdataset set (`classnames.txt`,
    /// `zeroshot_classification_templates.txt`, `SPLIT/nshards.txt`, `SPLIT/*.tar`): zero-shot
    /// classification, or retrieval when its `dataset_type.txt` says `retrieval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
    /// The split of `benchmark` (default `test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// A labelled image folder: one sub-folder per class.
    #[serde(default)]
    pub folder: Option<String>,
    /// Shards for zero-shot classification. Left out with `classes` given (and no `folder`):
    /// the `download` stage's shards.
    #[serde(default)]
    pub shards: Vec<String>,
    /// The class of a sample in `shards`: `"cls"` (its `.cls` entry) or `"caption"` (the one
    /// class its caption names; captions naming none or several are left out and counted).
    #[serde(default, skip_serializing_if = "Labels::is_cls")]
    pub labels: Labels,
    /// Held-out shards for image-text retrieval.
    #[serde(default)]
    pub retrieval_shards: Vec<String>,
    /// The linear probe (`[eval.linear_probe]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_probe: Option<ProbeConfig>,
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default)]
    pub workers: Option<usize>,
    #[serde(default)]
    pub vocab: Option<PathBuf>,
    /// The overlap analysis (the CLIP paper's): every measure also on the evaluation set
    /// without the items the training data duplicates. Default true; `false` turns it off.
    #[serde(default = "d_true", skip_serializing_if = "is_true")]
    pub overlap: bool,
    /// The training shards to compare with (files, folders, brace patterns; their `.parquet`
    /// metadata is read when present). Default: the workdir's `download` shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlap_shards: Vec<String>,
    /// Perceptual hashes within this many bits (of 64) count as near-duplicates. Default 4.
    #[serde(
        default = "d_overlap_distance",
        skip_serializing_if = "is_overlap_distance"
    )]
    pub overlap_phash_distance: u32,
}

fn d_true() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
/// The default near-duplicate distance of the overlap analysis.
pub const OVERLAP_PHASH_DISTANCE: u32 = 4;
fn d_overlap_distance() -> u32 {
    OVERLAP_PHASH_DISTANCE
}
fn is_overlap_distance(d: &u32) -> bool {
    *d == OVERLAP_PHASH_DISTANCE
}

/// The `[eval.linear_probe]` table: logistic regression on the frozen image features of
/// `train`, the L2 strength chosen on a validation split carved from `train`, measured on `test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The images the probe learns from (any supported format).
    pub train: SetSpec,
    /// The images it is measured on.
    pub test: SetSpec,
    #[serde(default = "d_c_min")]
    pub c_min: f64,
    #[serde(default = "d_c_max")]
    pub c_max: f64,
    #[serde(default = "d_c_steps")]
    pub c_steps: usize,
    #[serde(default = "d_max_iter")]
    pub max_iter: usize,
    #[serde(default = "d_validation_every")]
    pub validation_every: usize,
}

fn d_c_min() -> f64 {
    SweepConfig::default().c_min
}
fn d_c_max() -> f64 {
    SweepConfig::default().c_max
}
fn d_c_steps() -> usize {
    SweepConfig::default().c_steps
}
fn d_max_iter() -> usize {
    SweepConfig::default().max_iter
}
fn d_validation_every() -> usize {
    SweepConfig::default().validation_every
}

impl ProbeConfig {
    fn sweep(&self) -> SweepConfig {
        SweepConfig {
            c_min: self.c_min,
            c_max: self.c_max,
            c_steps: self.c_steps,
            max_iter: self.max_iter,
            validation_every: self.validation_every,
        }
    }
}

/// The `eval` stage.
pub struct EvalStage {
    cfg: EvalConfig,
    base: PathBuf,
}

impl EvalStage {
    pub fn new(cfg: EvalConfig, _pipeline: &PipelineSettings, base: &Path) -> Result<EvalStage> {
        if cfg.folder.is_none()
            && cfg.shards.is_empty()
            && cfg.classes.is_empty()
            && cfg.retrieval_shards.is_empty()
            && cfg.benchmark.is_none()
            && cfg.linear_probe.is_none()
        {
            return Err(Error::Config(
                "[eval] needs something to evaluate: `benchmark` (a clip_benchmark webdataset folder), `folder` (a labelled image folder), `classes` (zero-shot on `shards`, default the download stage's, labelled by `.cls` or by `labels = \"caption\"`), `retrieval_shards`, or `[eval.linear_probe]`".into(),
            ));
        }
        if cfg.benchmark.is_some() && (cfg.folder.is_some() || !cfg.shards.is_empty()) {
            return Err(Error::Config(
                "[eval] takes one zero-shot set: `benchmark`, `folder` or `shards`".into(),
            ));
        }
        if cfg.split.is_some() && cfg.benchmark.is_none() {
            return Err(Error::Config("[eval] `split` goes with `benchmark`".into()));
        }
        if let Some(p) = &cfg.linear_probe {
            p.train.validate("[eval.linear_probe] train")?;
            p.test.validate("[eval.linear_probe] test")?;
            p.sweep().validate()?;
            for (what, spec) in [("train", &p.train), ("test", &p.test)] {
                if !spec.shards.is_empty() && spec.classes.is_empty() && cfg.classes.is_empty() {
                    return Err(Error::Config(format!(
                        "[eval.linear_probe] {what}: `shards` needs `classes` (here or in [eval]) in class-index order"
                    )));
                }
            }
        }
        if !cfg.shards.is_empty() && cfg.classes.is_empty() {
            return Err(Error::Config(
                "[eval] `shards` needs `classes = [\"name of class 0\", ...]` in class-index order"
                    .into(),
            ));
        }
        if cfg.weights.is_some() && cfg.model.is_none() {
            return Err(Error::Config(
                "[eval] `weights` needs `model` (its preset, e.g. \"ViT-B-32\")".into(),
            ));
        }
        if let Some(m) = &cfg.model {
            ModelConfig::preset_or_err(m)?;
        }
        if cfg.overlap_phash_distance > 32 {
            return Err(Error::Config(format!(
                "[eval] overlap_phash_distance = {}: must be 0..=32 bits of the 64-bit hash (default {OVERLAP_PHASH_DISTANCE}; 0 = identical hashes only)",
                cfg.overlap_phash_distance
            )));
        }
        Ok(EvalStage {
            cfg,
            base: base.to_path_buf(),
        })
    }

    /// Whether zero-shot runs on the `download` stage's shards.
    fn on_download_shards(&self) -> bool {
        self.cfg.folder.is_none()
            && self.cfg.shards.is_empty()
            && self.cfg.benchmark.is_none()
            && !self.cfg.classes.is_empty()
    }

    /// The training shards the overlap analysis compares with: `overlap_shards`, else the
    /// workdir's `download` shards; None when it is off or there are none.
    fn overlap_training(&self, ctx: &TaskContext<'_>) -> Result<Option<Vec<PathBuf>>> {
        if !self.cfg.overlap {
            return Ok(None);
        }
        let shards = if self.cfg.overlap_shards.is_empty() {
            crate::overlap::workdir_shards(ctx.workdir)
        } else {
            resolve_shards(&self.cfg.overlap_shards, &self.base)?
        };
        if shards.is_empty() {
            tracing::info!(
                "no training shards to compare the evaluation sets with (the workdir has no `download` shards and [eval] has no `overlap_shards`): no overlap analysis"
            );
            return Ok(None);
        }
        Ok(Some(shards))
    }

    /// A probe set, `[eval] classes` standing in for OpenWIT shards without their own.
    fn probe_set(&self, spec: &SetSpec) -> Result<EvalSet> {
        let mut spec = spec.clone();
        if !spec.shards.is_empty() && spec.classes.is_empty() {
            spec.classes = self.cfg.classes.clone();
        }
        Ok(EvalSet::open(&spec, &self.base)?)
    }
}

impl Stage for EvalStage {
    fn name(&self) -> &str {
        "eval"
    }

    fn upstream(&self) -> Vec<String> {
        let mut up = Vec::new();
        if self.cfg.weights.is_none() {
            up.push("train".into());
        }
        if self.on_download_shards() {
            up.push("download".into());
        }
        up
    }

    fn config(&self) -> Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap();
        if let Some(o) = v.as_object_mut() {
            for k in ["workers", "device", "vocab", "batch_size"] {
                o.remove(k);
            }
            // As before `templates` became optional: the same fingerprint for the same table.
            if !o.contains_key("templates") {
                o.insert("templates".into(), json!(default_templates()));
            }
        }
        v
    }

    fn plan(&self, _ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        Ok(vec![TaskSpec::new("eval", Value::Null)])
    }

    fn max_parallel(&self, _jobs: usize) -> usize {
        1
    }

    fn run_task(&self, ctx: &TaskContext<'_>, _task: &TaskSpec) -> Result<TaskReport> {
        let device = crate::parse_device(&self.cfg.device)?;
        let (weights, mcfg) = match &self.cfg.weights {
            Some(w) => (
                self.base.join(w),
                ModelConfig::preset_or_err(self.cfg.model.as_deref().unwrap_or(""))?,
            ),
            None => {
                let tdir = ctx.workdir.join("train");
                let tj = tdir.join("train.json");
                let v: Value =
                    serde_json::from_slice(&std::fs::read(&tj).map_err(|e| Error::io(&tj, e))?)
                        .map_err(|e| Error::Stage(format!("{}: {e}", tj.display())))?;
                let m: ModelConfig = match &self.cfg.model {
                    Some(p) => ModelConfig::preset_or_err(p)?,
                    None => serde_json::from_value(v["model"].clone())
                        .map_err(|e| Error::Stage(format!("{}: {e}", tj.display())))?,
                };
                (tdir.join("model.safetensors"), m)
            }
        };
        let mut model = Clip::new(&mcfg, device);
        model.load(&weights)?;
        let tok = match &self.cfg.vocab {
            Some(p) => Tokenizer::from_file(p)?,
            None => Tokenizer::from_default()?,
        };
        let workers = self.cfg.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let mut report = EvalReport {
            model: mcfg.name.clone(),
            weights: weights.display().to_string(),
            ..Default::default()
        };
        let batch = self.cfg.batch_size;
        let templates = self.cfg.templates.as_deref();
        let zero_shot_set = if let Some(root) = &self.cfg.benchmark {
            let mut set = EvalSet::clip_benchmark(
                &self.base.join(root),
                self.cfg.split.as_deref().unwrap_or("test"),
            )?;
            if !self.cfg.classes.is_empty() {
                set.classes = self.cfg.classes.clone();
            }
            Some(set)
        } else if let Some(folder) = &self.cfg.folder {
            let mut set = EvalSet::image_folder(&self.base.join(folder))?;
            if !self.cfg.classes.is_empty() {
                set.classes = self.cfg.classes.clone();
            }
            Some(set)
        } else if !self.cfg.classes.is_empty() {
            let shards = shard_list(
                "eval",
                &self.cfg.shards,
                &self.base,
                ctx.upstream_outputs("download"),
            )?;
            Some(EvalSet::shards(
                shards,
                self.cfg.classes.clone(),
                self.cfg.labels,
            ))
        } else {
            None
        };
        // The overlap analysis: the training shards, and per measure the features kept to
        // measure again without the overlapping items.
        let training = self.overlap_training(ctx)?;
        let mut zs_kept: Option<(SetFeatures, Tensor, Vec<String>)> = None;
        let mut rt_kept: Option<SetFeatures> = None;
        let mut probe_kept: Option<(SetFeatures, LogReg)> = None;
        // A set read from the training shards themselves is not compared with them.
        let zs_in_training = training.as_ref().is_some_and(|t| {
            self.on_download_shards()
                || shares_files(
                    &resolve_shards(&self.cfg.shards, &self.base).unwrap_or_default(),
                    t,
                )
        });
        if let Some(set) = &zero_shot_set {
            match (set.kind, training.is_some() && !zs_in_training) {
                (SetKind::Classification, false) => {
                    let t = templates_for(set, templates);
                    report.zero_shot =
                        Some(zero_shot_set_eval(&model, &tok, set, &t, batch, workers)?);
                }
                (SetKind::Retrieval, false) => {
                    report.retrieval = Some(retrieval_set(&model, &tok, set, batch, workers)?);
                }
                (SetKind::Classification, true) => {
                    if set.classes.is_empty() {
                        return Err(Error::Config(format!(
                            "{}: zero-shot classification needs class names",
                            set.name
                        )));
                    }
                    let t = templates_for(set, templates);
                    let emb = class_embeddings(&model, &tok, &set.classes, &t);
                    let f = encode_set_with(&model, &tok, set, true, false, batch, workers, true)?;
                    let mut z = zero_shot_named(&f.images, &f.labels, &emb, &set.classes);
                    z.left_out = f.left_out;
                    z.templates = t.len();
                    z.set = set.name.clone();
                    report.zero_shot = Some(z);
                    zs_kept = Some((f, emb, set.classes.clone()));
                }
                (SetKind::Retrieval, true) => {
                    let (r, f) = retrieval_with_prints(&model, &tok, set, batch, workers)?;
                    report.retrieval = Some(r);
                    rt_kept = Some(f);
                }
            }
        }
        if !self.cfg.retrieval_shards.is_empty() {
            if report.retrieval.is_some() {
                return Err(Error::Config(
                    "[eval] has two retrieval sets: a retrieval `benchmark` and `retrieval_shards`"
                        .into(),
                ));
            }
            let shards = resolve_shards(&self.cfg.retrieval_shards, &self.base)?;
            let in_training = training.as_ref().is_none_or(|t| shares_files(&shards, t));
            let set = EvalSet::shards(shards, Vec::new(), Labels::Cls);
            if in_training {
                report.retrieval = Some(retrieval_set(&model, &tok, &set, batch, workers)?);
            } else {
                let (r, f) = retrieval_with_prints(&model, &tok, &set, batch, workers)?;
                report.retrieval = Some(r);
                rt_kept = Some(f);
            }
        }
        if let Some(p) = &self.cfg.linear_probe {
            let train_set = self.probe_set(&p.train)?;
            let test_set = self.probe_set(&p.test)?;
            if train_set.classes.len() != test_set.classes.len() {
                return Err(Error::Config(format!(
                    "[eval.linear_probe] the train set has {} classes and the test set {}",
                    train_set.classes.len(),
                    test_set.classes.len()
                )));
            }
            let tr = encode_set(&model, &tok, &train_set, true, false, batch, workers)?;
            let in_training = training.as_ref().is_none_or(|t| {
                shares_files(
                    &resolve_shards(&p.test.shards, &self.base).unwrap_or_default(),
                    t,
                )
            });
            let te = encode_set_with(
                &model,
                &tok,
                &test_set,
                true,
                false,
                batch,
                workers,
                !in_training,
            )?;
            let (probe, fitted) = linear_probe_fit(
                &tr.images,
                &tr.labels,
                &te.images,
                &te.labels,
                &train_set.classes,
                &p.sweep(),
                &train_set.name,
                &test_set.name,
            )?;
            report.linear_probe = Some(probe);
            if !in_training {
                probe_kept = Some((te, fitted));
            }
        }
        if let Some(shards) = &training {
            report.overlap = Some(overlap_report(
                shards,
                self.cfg.overlap_phash_distance,
                zs_kept.as_ref(),
                rt_kept.as_ref(),
                probe_kept.as_ref(),
                report.linear_probe.as_ref(),
            )?);
        }
        let mut f = ctx.create_output("results.json")?;
        serde_json::to_writer_pretty(&mut f, &report).map_err(|e| Error::Stage(e.to_string()))?;
        drop(f);
        let table = report.table();
        let tp = ctx.output_path("results.txt")?;
        std::fs::write(&tp, &table).map_err(|e| Error::io(&tp, e))?;
        let n = report.zero_shot.as_ref().map(|z| z.images).unwrap_or(0)
            + report.retrieval.as_ref().map(|r| r.pairs).unwrap_or(0)
            + report
                .linear_probe
                .as_ref()
                .map(|p| p.train_images + p.validation_images + p.test_images)
                .unwrap_or(0);
        let mut drops = openwit_core::Drops::default();
        let left_out = report.zero_shot.as_ref().map(|z| z.left_out).unwrap_or(0);
        if left_out > 0 {
            drops.add("no_single_class_in_caption", left_out);
        }
        Ok(TaskReport {
            items_in: n + left_out,
            items_out: n,
            drops,
            extra: serde_json::to_value(&report).unwrap(),
        })
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        let r: EvalReport = serde_json::from_value(tasks.first()?.extra.clone()).ok()?;
        Some(r.table())
    }
}

/// Whether two lists of files share one (compared as canonical paths).
fn shares_files(a: &[PathBuf], b: &[PathBuf]) -> bool {
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let b: std::collections::HashSet<PathBuf> = b.iter().map(canon).collect();
    a.iter().any(|p| b.contains(&canon(p)))
}

/// Retrieval on a set with captions, keeping the features and fingerprints.
fn retrieval_with_prints(
    model: &Clip,
    tok: &Tokenizer,
    set: &EvalSet,
    batch: usize,
    workers: usize,
) -> Result<(crate::eval::Retrieval, SetFeatures)> {
    if !set.has_captions() {
        return Err(Error::Config(format!(
            "{}: retrieval needs captions (OpenWIT shards, or a clip_benchmark set whose dataset_type.txt says retrieval)",
            set.name
        )));
    }
    let f = encode_set_with(model, tok, set, false, true, batch, workers, true)?;
    let texts = f
        .texts
        .as_ref()
        .ok_or_else(|| Error::Stage(format!("{}: no captions", set.name)))?;
    let mut r = retrieval_multi(&f.images, texts, &f.text_image);
    r.set = set.name.clone();
    Ok((r, f))
}

/// The overlap analysis of the measured sets against `shards` (one pass over them) and every
/// measure again on the items that do not overlap.
fn overlap_report(
    shards: &[PathBuf],
    distance: u32,
    zs: Option<&(SetFeatures, Tensor, Vec<String>)>,
    rt: Option<&SetFeatures>,
    probe: Option<&(SetFeatures, LogReg)>,
    probe_report: Option<&crate::probe::LinearProbe>,
) -> Result<OverlapReport> {
    let empty: &[openwit_shard::overlap::EvalPrint] = &[];
    let sets = [
        zs.map(|(f, _, _)| f.prints.as_slice()).unwrap_or(empty),
        rt.map(|f| f.prints.as_slice()).unwrap_or(empty),
        probe.map(|(f, _)| f.prints.as_slice()).unwrap_or(empty),
    ];
    let (flags, total) = find_overlaps(&sets, shards, distance)?;
    let mut out = OverlapReport {
        training: if shards.len() == 1 {
            shards[0].display().to_string()
        } else {
            format!(
                "{} shards ({} ... {})",
                shards.len(),
                shards[0].display(),
                shards[shards.len() - 1].display()
            )
        },
        training_samples: total,
        phash_distance: distance,
        ..Default::default()
    };
    if let Some((f, emb, names)) = zs {
        let keep = flags[0].clean();
        out.zero_shot = Some(SetOverlap {
            counts: flags[0].counts.clone(),
            clean: zero_shot_subset(&f.images, &f.labels, emb, names, &keep),
        });
    }
    if let Some(f) = rt {
        let keep = flags[1].clean();
        out.retrieval = Some(SetOverlap {
            counts: flags[1].counts.clone(),
            clean: f
                .texts
                .as_ref()
                .and_then(|t| retrieval_subset(&f.images, t, &f.text_image, &keep)),
        });
    }
    if let (Some((f, m)), Some(p)) = (probe, probe_report) {
        let keep = flags[2].clean();
        let names: Vec<String> = p.test.per_class.iter().map(|c| c.class.clone()).collect();
        out.linear_probe = Some(SetOverlap {
            counts: flags[2].counts.clone(),
            clean: (!keep.is_empty()).then(|| {
                let labels: Vec<i64> = keep.iter().map(|&i| f.labels[i as usize]).collect();
                classification_metrics(&m.logits(&rows(&f.images, &keep)), &labels, &names)
            }),
        });
    }
    Ok(out)
}

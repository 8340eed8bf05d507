//! The `train` and `eval` stages.
//!
//! `train` is one task: it trains into `WORKDIR/train/` (checkpoints, `metrics.jsonl`,
//! `curves.svg` are written there as training goes, so a killed run resumes from its newest
//! checkpoint) and commits `model.safetensors` (OpenCLIP names) and `train.json` when done.
//! `eval` loads those weights (or any safetensors given with a model preset) and writes
//! `results.json` and `results.txt`, and with the overlap analysis `overlap.jsonl`.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use openwit_core::artifact::{self, Artifact, Model, ShardTars};
use openwit_core::{
    Error, PipelineSettings, Result, Stage, StageContext, TaskContext, TaskReport, TaskSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bench::{EvalSet, Part, SetKind, SetSpec};
use crate::data::resolve_shards;
use crate::eval::{
    DEFAULT_TEMPLATES, EvalReport, Labels, OverlapReport, SetFeatures, SetOverlap, SetRead,
    can_classify, can_retrieve, class_embeddings, classification_metrics, encode_and_keep,
    encode_set, encode_set_with, retrieval_of, templates_for, zero_shot_of,
};
use crate::model::{Clip, ModelConfig};
use crate::overlap::{Training, find_overlaps, retrieval_subset, rows, zero_shot_subset};
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
    /// The pipeline's `[eval]` table, whose held-out sets `eval_every` measures.
    eval: Option<EvalConfig>,
}

impl TrainStage {
    /// `base`: the pipeline file's folder (relative shard paths are resolved against it).
    pub fn new(cfg: TrainConfig, pipeline: &PipelineSettings, base: &Path) -> Result<TrainStage> {
        cfg.validate()?;
        Ok(TrainStage {
            cfg,
            seed: pipeline.seed,
            base: base.to_path_buf(),
            eval: None,
        })
    }

    /// The pipeline's `[eval]` table: with `eval_every`, the run measures its held-out sets
    /// (a `benchmark`, a `folder`, `shards`, `retrieval_shards`; not the download stage's
    /// own shards, which it trains on) as it goes.
    pub fn with_eval(
        mut self,
        eval: EvalConfig,
        pipeline: &PipelineSettings,
    ) -> Result<TrainStage> {
        if self.cfg.eval_every > 0 {
            EvalStage::new(eval.clone(), pipeline, &self.base)?;
            if eval.benchmark.is_none()
                && eval.folder.is_none()
                && eval.shards.is_empty()
                && eval.retrieval_shards.is_empty()
                && self.cfg.held_out_percent == 0
            {
                return Err(Error::Config(NOTHING_HELD_OUT.into()));
            }
        }
        self.eval = Some(eval);
        Ok(self)
    }

    /// What `eval_every` measures: (zero-shot set and its prompts, retrieval set).
    fn held_out_sets(&self, download: Vec<PathBuf>) -> Result<Option<HeldOutSets>> {
        let Some(e) = self.eval.as_ref().filter(|_| self.cfg.eval_every > 0) else {
            return Ok(None);
        };
        // The download stage's shards only with a held-out split, and then only its held-out
        // part; other shard sets likewise.
        let percent = self.cfg.held_out_percent;
        let (zs, rt) = open_eval_sets(
            e,
            &self.base,
            (percent > 0).then_some(download),
            Some((percent, Part::HeldOut)),
        )?;
        if zs.is_none() && rt.is_none() {
            return Err(Error::Config(NOTHING_HELD_OUT.into()));
        }
        let templates = zs
            .as_ref()
            .map(|s| templates_for(s, e.templates.as_deref()))
            .unwrap_or_default();
        Ok(Some(HeldOutSets {
            zero_shot: zs,
            templates,
            retrieval: rt,
            batch: e.batch_size,
            keep_bytes: usize::try_from(e.keep_decoded_mib << 20).unwrap_or(usize::MAX),
            kept: std::sync::Mutex::new([Kept::NotYet, Kept::NotYet]),
        }))
    }
}

/// Records the held-out split of `shards` in `dir`: `split.tsv` (every sample's part) and
/// `split.json` (the rule, the percentage, the counts), which `eval` reads.
fn record_split(shards: &[PathBuf], percent: u32, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (train, held_out) = crate::data::write_split(shards, percent, &dir.join("split.tsv"))?;
    let info = json!({
        "held_out_percent": percent,
        "by": "image: FNV-1a 64 of the image bytes as stored, modulo 100, below the percentage",
        "train": train,
        "held_out": held_out,
    });
    openwit_core::atomic::write_atomic(
        &dir.join("split.json"),
        serde_json::to_string_pretty(&info).unwrap().as_bytes(),
    )
    .map_err(|e| Error::Stage(e.to_string()))?;
    tracing::info!(
        train,
        held_out,
        percent,
        "held-out split recorded in split.tsv"
    );
    Ok(())
}

/// The held-out percentage of the training run whose folder is `dir`, if it held some out.
fn read_split(dir: &Path) -> Result<Option<u32>> {
    let p = dir.join("split.json");
    match std::fs::read(&p) {
        Ok(b) => {
            let v: Value = serde_json::from_slice(&b)
                .map_err(|e| Error::Stage(format!("{}: {e}", p.display())))?;
            Ok(v["held_out_percent"]
                .as_u64()
                .map(|n| n as u32)
                .filter(|&n| n > 0))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&p, e)),
    }
}

const NOTHING_HELD_OUT: &str = "[train] eval_every measures the held-out sets of [eval] (`benchmark`, `folder`, `shards` or `retrieval_shards`), and [eval] has none of them (the download stage's shards are what it trains on): name one, or leave eval_every out";

/// The held-out sets a training run measures every `eval_every` steps.
struct HeldOutSets {
    zero_shot: Option<EvalSet>,
    templates: Vec<String>,
    retrieval: Option<EvalSet>,
    batch: usize,
    /// The memory for keeping the sets decoded between evaluations.
    keep_bytes: usize,
    /// What the first evaluation decoded of the zero-shot set and of the retrieval set, for
    /// the next ones.
    kept: std::sync::Mutex<[Kept; 2]>,
}

/// A held-out set between evaluations.
enum Kept {
    /// Not read yet.
    NotYet,
    Decoded(crate::eval::DecodedSet),
    /// Larger than the memory for it: read and decoded at each evaluation.
    TooLarge,
}

impl Kept {
    /// The memory it holds, about.
    fn bytes(&self) -> usize {
        match self {
            Kept::Decoded(d) => d.bytes(),
            _ => 0,
        }
    }

    /// The features of `set` under `model`: from what was kept, else read (and kept when it
    /// fits `keep_bytes`).
    #[allow(clippy::too_many_arguments)]
    fn features(
        &mut self,
        set: &EvalSet,
        read: SetRead,
        model: &Clip,
        tok: &Tokenizer,
        batch: usize,
        workers: usize,
        keep_bytes: usize,
    ) -> crate::Result<SetFeatures> {
        match self {
            Kept::Decoded(d) => d.encode(model, tok, batch),
            Kept::TooLarge => {
                encode_and_keep(model, tok, set, read, batch, workers, 0).map(|r| r.0)
            }
            Kept::NotYet => {
                let (f, d) = encode_and_keep(model, tok, set, read, batch, workers, keep_bytes)?;
                *self = match d {
                    Some(d) => {
                        tracing::debug!(set = %set.name, mib = d.bytes() >> 20, "held-out set kept decoded");
                        Kept::Decoded(d)
                    }
                    None => {
                        if keep_bytes > 0 {
                            tracing::info!(
                                set = %set.name,
                                keep_decoded_mib = keep_bytes >> 20,
                                "the held-out set is larger than [eval] keep_decoded_mib: it is decoded again at each evaluation"
                            );
                        }
                        Kept::TooLarge
                    }
                };
                Ok(f)
            }
        }
    }
}

impl HeldOutSets {
    /// Zero-shot top-1/top-5 and retrieval R@1/5/10 of `model`, as one JSON object. A set is
    /// read and decoded at the first evaluation and kept for the next ones where it fits; an
    /// image folder with captions, both the zero-shot and the retrieval set, is encoded once
    /// for both.
    fn measure(&self, model: &Clip, tok: &Tokenizer, workers: usize) -> crate::Result<Value> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let [zs_kept, rt_kept] = &mut *kept;
        let mut v = serde_json::Map::new();
        let shared = self.zero_shot.is_some() && self.zero_shot == self.retrieval;
        let mut retrieval = None;
        if let Some(set) = &self.zero_shot {
            can_classify(set)?;
            let read = SetRead {
                classified: true,
                captions: shared,
                prints: false,
            };
            let f =
                zs_kept.features(set, read, model, tok, self.batch, workers, self.keep_bytes)?;
            let emb = class_embeddings(model, tok, &set.classes, &self.templates);
            let z = zero_shot_of(&f, &emb, set, self.templates.len());
            v.insert(
                "zero_shot".into(),
                json!({"top1": z.top1, "top5": z.top5, "mean_per_class_recall": z.mean_per_class_recall, "chance": z.chance, "images": z.images}),
            );
            // Every picture of an image folder has its class: the features are the retrieval
            // set's too.
            if shared && f.left_out == 0 {
                retrieval = Some(retrieval_of(&f, set)?);
            }
        }
        if let (None, Some(set)) = (&retrieval, &self.retrieval) {
            can_retrieve(set)?;
            let read = SetRead {
                classified: false,
                captions: true,
                prints: false,
            };
            // The memory is for both sets together.
            let left = self.keep_bytes.saturating_sub(zs_kept.bytes());
            let f = rt_kept.features(set, read, model, tok, self.batch, workers, left)?;
            retrieval = Some(retrieval_of(&f, set)?);
        }
        if let Some(r) = retrieval {
            let mut o = serde_json::Map::new();
            for (dir, rs) in [
                ("image_to_text", r.image_to_text),
                ("text_to_image", r.text_to_image),
            ] {
                for (k, x) in [1, 5, 10].iter().zip(rs) {
                    o.insert(format!("{dir}_r{k}"), json!(x));
                }
            }
            o.insert("pairs".into(), json!(r.pairs));
            v.insert("retrieval".into(), Value::Object(o));
        }
        Ok(Value::Object(v))
    }
}

/// The zero-shot set and the retrieval set of an `[eval]` table (`download`: the download
/// stage's shards, for zero-shot with `classes` alone; None leaves that case out).
/// `split`: the training run's held-out percentage and the part of OpenWIT shards to read.
fn open_eval_sets(
    cfg: &EvalConfig,
    base: &Path,
    download: Option<Vec<PathBuf>>,
    split: Option<(u32, Part)>,
) -> Result<(Option<EvalSet>, Option<EvalSet>)> {
    let split_of = |set: EvalSet| match split {
        Some((percent, part)) => set.with_split(percent, part),
        None => set,
    };
    let zero_shot = if let Some(root) = &cfg.benchmark {
        let mut set =
            EvalSet::clip_benchmark(&base.join(root), cfg.split.as_deref().unwrap_or("test"))?;
        if !cfg.classes.is_empty() {
            set.classes = cfg.classes.clone();
        }
        Some(set)
    } else if let Some(folder) = &cfg.folder {
        let mut set = EvalSet::image_folder(&base.join(folder))?;
        if !cfg.classes.is_empty() {
            set.classes = cfg.classes.clone();
        }
        Some(set)
    } else if !cfg.classes.is_empty() {
        let shards = if !cfg.shards.is_empty() {
            Some(resolve_shards(&cfg.shards, base)?)
        } else {
            download
                .map(|up| shard_list("eval", &cfg.shards, base, up))
                .transpose()?
        };
        shards.map(|s| split_of(EvalSet::shards(s, cfg.classes.clone(), cfg.labels)))
    } else {
        None
    };
    let retrieval = if !cfg.retrieval_shards.is_empty() {
        if zero_shot
            .as_ref()
            .is_some_and(|s| s.kind == SetKind::Retrieval)
        {
            return Err(Error::Config(
                "[eval] has two retrieval sets: a retrieval `benchmark` and `retrieval_shards`"
                    .into(),
            ));
        }
        let shards = resolve_shards(&cfg.retrieval_shards, base)?;
        Some(split_of(EvalSet::shards(shards, Vec::new(), Labels::Cls)))
    } else {
        match &zero_shot {
            Some(s) if s.kind == SetKind::Retrieval => Some(s.clone()),
            // An image folder whose `captions.tsv` captions every image is a retrieval set too.
            Some(s) if cfg.folder.is_some() && s.has_captions() => Some(s.clone()),
            _ => None,
        }
    };
    let zero_shot = zero_shot.filter(|s| s.kind == SetKind::Classification);
    Ok((zero_shot, retrieval))
}

impl TrainStage {
    /// A rank other than 0 of a data-parallel job (`openwit train --nproc N`, `srun`): trains
    /// beside rank 0 in `WORKDIR/train` without the executor. Rank 0 alone owns the workdir (its
    /// lock, the run state, the checkpoints, the stage's outputs and summary); this rank takes
    /// no lock, records nothing and writes only its `rank-N/metrics.jsonl`. `ctx`: the stage's
    /// context as rank 0's task sees it (its upstream stages' records, from the run state or the
    /// store), which gives the `download` stage's shards.
    pub fn follow(&self, ctx: &StageContext<'_>) -> Result<TrainSummary> {
        let shards = self.training_shards(ctx)?;
        Ok(train(
            &self.cfg,
            shards,
            &Model::dir(ctx.workdir),
            self.seed,
            &Hooks::default(),
        )?)
    }
}

impl TrainStage {
    /// The shards it trains on: `shards`, else the `download` stage's (declared upstream when
    /// `shards` is empty), read through the context.
    fn training_shards(&self, ctx: &impl artifact::Upstream) -> Result<Vec<PathBuf>> {
        let upstream = if self.cfg.shards.is_empty() {
            artifact::files::<ShardTars>(ctx)?
        } else {
            Vec::new()
        };
        shard_list("train", &self.cfg.shards, &self.base, upstream)
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

impl openwit_core::FromConfig for TrainStage {
    const TABLE: &'static str = "train";
    type Config = TrainConfig;
    fn from_config(
        cfg: TrainConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        let stage = Self::new(cfg, doc.pipeline(), &doc.base_dir())?;
        // With an `[eval]` table, the held-out evaluation every `eval_every` steps uses its sets.
        match doc.section::<EvalConfig>(EvalStage::TABLE)? {
            Some(eval) => stage.with_eval(eval, doc.pipeline()),
            None => Ok(stage),
        }
    }
}

impl Stage for TrainStage {
    fn name(&self) -> &str {
        "train"
    }

    fn task_processes(&self) -> openwit_core::stage::TaskProcesses {
        openwit_core::stage::TaskProcesses {
            processes: self.cfg.ntasks,
            gpus_each: self.cfg.gpus_per_task,
        }
    }

    fn upstream(&self) -> Vec<String> {
        if self.cfg.shards.is_empty() {
            vec![ShardTars::PRODUCER.into()]
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
                "ntasks",
                "gpus_per_task",
            ] {
                o.remove(k);
            }
            o.insert("seed".into(), json!(self.seed));
            // What `eval_every` measures is part of what the run writes.
            if let Some(e) = self.eval.as_ref().filter(|_| self.cfg.eval_every > 0) {
                o.insert(
                    "eval_sets".into(),
                    json!({
                        "benchmark": e.benchmark, "split": e.split, "folder": e.folder,
                        "shards": e.shards, "classes": e.classes, "labels": e.labels,
                        "templates": e.templates, "retrieval_shards": e.retrieval_shards,
                    }),
                );
            }
            // Without contrastive accumulation, the table fingerprinted as before `accum_freq`
            // replaced `accum_steps` (whose default 1 trained the same way): workdirs made
            // before stay up to date.
            if !o.contains_key("accum_freq") {
                o.insert("accum_steps".into(), json!(1));
            }
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
        let shards = self.training_shards(ctx)?;
        let out = ctx.stage_dir();
        if self.cfg.held_out_percent > 0 {
            record_split(&shards, self.cfg.held_out_percent, &out)?;
        }
        let cancelled = || ctx.cancelled();
        let progress = |n| ctx.progress(n);
        let status = |done, total, msg: &str| ctx.steps(done, total, msg);
        let held_out = self.held_out_sets(shards.clone())?;
        let eval_tok = match (&held_out, &self.cfg.vocab) {
            (None, _) => None,
            (Some(_), Some(p)) => Some(Tokenizer::from_file(p)?),
            (Some(_), None) => Some(Tokenizer::from_default()?),
        };
        let eval_workers = self
            .eval
            .as_ref()
            .and_then(|e| e.workers)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
        let measure = |model: &Clip| match (&held_out, &eval_tok) {
            (Some(h), Some(tok)) => h.measure(model, tok, eval_workers),
            _ => Ok(Value::Null),
        };
        let hooks = Hooks {
            cancelled: &cancelled,
            progress: &progress,
            status: &status,
            stop_after: None,
            evaluate: held_out
                .is_some()
                .then_some(&measure as &dyn Fn(&Clip) -> crate::Result<Value>),
        };
        let summary = train(&self.cfg, shards, &out, self.seed, &hooks)?;
        let model_out = ctx.output_path(Model::WEIGHTS)?;
        std::fs::copy(&summary.weights, &model_out).map_err(|e| Error::io(&model_out, e))?;
        let mcfg = ModelConfig::preset_or_err(&self.cfg.model)?;
        let mut f = ctx.create_output(Model::CONFIG)?;
        serde_json::to_writer_pretty(&mut f, &json!({"model": mcfg, "summary": summary}))
            .map_err(|e| Error::Stage(e.to_string()))?;
        use std::io::Write;
        f.flush()
            .map_err(|e| Error::io(out.join(Model::CONFIG), e))?;
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
    /// When the training run held samples out (`[train] held_out_percent`), which part of OpenWIT
    /// shard sets is measured: `held_out` (default), `train` or `all`.
    #[serde(default, skip_serializing_if = "Part::is_held_out")]
    pub part: Part,
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
    /// Memory (MiB) for keeping the held-out sets decoded between a training run's
    /// evaluations (`[train] eval_every`): a set that fits is read and decoded once, a larger
    /// one again at each evaluation. Default 1024; 0 keeps none.
    #[serde(default = "d_keep_decoded", skip_serializing_if = "is_keep_decoded")]
    pub keep_decoded_mib: u64,
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
/// `[eval] keep_decoded_mib`'s default: about 7,000 pictures at 224 px.
const KEEP_DECODED_MIB: u64 = 1024;
fn d_keep_decoded() -> u64 {
    KEEP_DECODED_MIB
}
fn is_keep_decoded(m: &u64) -> bool {
    *m == KEEP_DECODED_MIB
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

    /// The training data the overlap analysis compares with: `overlap_shards`, else the
    /// workdir's `download` shards less the held-out part of its training run; None when it is
    /// off or there are none.
    fn overlap_training(&self, ctx: &TaskContext<'_>) -> Result<Option<Training>> {
        if !self.cfg.overlap {
            return Ok(None);
        }
        let training = if self.cfg.overlap_shards.is_empty() {
            Training {
                // The `download` stage's shards when it ran (declared upstream or not).
                shards: artifact::find_files::<ShardTars>(ctx)?,
                // The split of the run trained here (weights from elsewhere: every sample).
                held_out_percent: match self.cfg.weights {
                    None => read_split(&Model::dir(ctx.workdir))?.unwrap_or(0),
                    Some(_) => 0,
                },
            }
        } else {
            Training {
                shards: resolve_shards(&self.cfg.overlap_shards, &self.base)?,
                held_out_percent: 0,
            }
        };
        if training.shards.is_empty() {
            tracing::info!(
                "no training shards to compare the evaluation sets with (the workdir has no `download` shards and [eval] has no `overlap_shards`): no overlap analysis"
            );
            return Ok(None);
        }
        Ok(Some(training))
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

impl openwit_core::FromConfig for EvalStage {
    const TABLE: &'static str = "eval";
    type Config = EvalConfig;
    fn from_config(cfg: EvalConfig, doc: &openwit_core::PipelineDoc) -> openwit_core::Result<Self> {
        Self::new(cfg, doc.pipeline(), &doc.base_dir())
    }
}

impl Stage for EvalStage {
    fn name(&self) -> &str {
        "eval"
    }

    fn upstream(&self) -> Vec<String> {
        let mut up = Vec::new();
        if self.cfg.weights.is_none() {
            up.push(Model::PRODUCER.into());
        }
        if self.on_download_shards() {
            up.push(ShardTars::PRODUCER.into());
        }
        up
    }

    fn config(&self) -> Value {
        let mut v = serde_json::to_value(&self.cfg).unwrap();
        if let Some(o) = v.as_object_mut() {
            for k in [
                "workers",
                "device",
                "vocab",
                "batch_size",
                "keep_decoded_mib",
            ] {
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
                let weights = artifact::file::<Model>(ctx)?;
                let tj = Model::config_file(ctx)?;
                let v: Value =
                    serde_json::from_slice(&std::fs::read(&tj).map_err(|e| Error::io(&tj, e))?)
                        .map_err(|e| Error::Stage(format!("{}: {e}", tj.display())))?;
                let m: ModelConfig = match &self.cfg.model {
                    Some(p) => ModelConfig::preset_or_err(p)?,
                    None => serde_json::from_value(v["model"].clone())
                        .map_err(|e| Error::Stage(format!("{}: {e}", tj.display())))?,
                };
                (weights, m)
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
        let split = read_split(&Model::dir(ctx.workdir))?.map(|p| (p, self.cfg.part));
        let (zero_shot_set, retrieval_set_) = open_eval_sets(
            &self.cfg,
            &self.base,
            if self.on_download_shards() {
                Some(artifact::files::<ShardTars>(ctx)?)
            } else {
                None
            },
            split,
        )?;
        // The overlap analysis: the training samples, and per measure the features kept to
        // measure again without the overlapping items. A set that is (part of) the training
        // data itself is not compared with it; the held-out part of the training shards is.
        let training = self.overlap_training(ctx)?;
        let compare = |set: &EvalSet| {
            training
                .as_ref()
                .is_some_and(|t| !set_is_training_data(set, &t.shards))
        };
        let mut zs_kept: Option<(Rc<SetFeatures>, Tensor, Vec<String>)> = None;
        let mut rt_kept: Option<Rc<SetFeatures>> = None;
        let mut probe_kept: Option<(Rc<SetFeatures>, LogReg)> = None;
        // The zero-shot set's features, which serve the retrieval set and the probe's test set
        // when they are the same pictures (the demo's held-out folder is all three): each
        // picture read, decoded and encoded once.
        let mut zs_features: Option<Rc<SetFeatures>> = None;
        let same_retrieval = zero_shot_set.is_some() && zero_shot_set == retrieval_set_;
        if let Some(set) = &zero_shot_set {
            can_classify(set)?;
            let t = templates_for(set, templates);
            let prints = compare(set);
            let emb = class_embeddings(&model, &tok, &set.classes, &t);
            let read = SetRead {
                classified: true,
                captions: same_retrieval,
                prints,
            };
            let f = Rc::new(encode_and_keep(&model, &tok, set, read, batch, workers, 0)?.0);
            report.zero_shot = Some(zero_shot_of(&f, &emb, set, t.len()));
            if prints {
                zs_kept = Some((f.clone(), emb, set.classes.clone()));
            }
            zs_features = Some(f);
        }
        if let Some(set) = &retrieval_set_ {
            can_retrieve(set)?;
            let prints = compare(set);
            let f = match &zs_features {
                // Every sample of the set has its class (an image folder): the same features.
                Some(f) if same_retrieval && f.left_out == 0 => f.clone(),
                _ => Rc::new(encode_set_with(
                    &model, &tok, set, false, true, batch, workers, prints,
                )?),
            };
            report.retrieval = Some(retrieval_of(&f, set)?);
            if prints {
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
            let prints = compare(&test_set);
            let te = match (&zero_shot_set, &zs_features) {
                (Some(zs), Some(f)) if zs.same_samples(&test_set) => f.clone(),
                _ => Rc::new(encode_set_with(
                    &model, &tok, &test_set, true, false, batch, workers, prints,
                )?),
            };
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
            if prints {
                probe_kept = Some((te, fitted));
            }
        }
        if let Some(training) = &training {
            let (overlap, pairs) = overlap_report(
                training,
                self.cfg.overlap_phash_distance,
                zs_kept.as_ref(),
                rt_kept.as_ref(),
                probe_kept.as_ref(),
                report.linear_probe.as_ref(),
            )?;
            report.overlap = Some(overlap);
            let mut f = ctx.create_output(artifact::OVERLAP_PAIRS)?;
            for line in pairs {
                serde_json::to_writer(&mut f, &line).map_err(|e| Error::Stage(e.to_string()))?;
                std::io::Write::write_all(&mut f, b"\n")
                    .map_err(|e| Error::Stage(e.to_string()))?;
            }
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

/// Whether an evaluation set is training data: it reads one of the training shards, other than
/// their held-out part (which training never read, and which is compared with the rest).
fn set_is_training_data(set: &EvalSet, training: &[PathBuf]) -> bool {
    if set.split.is_some_and(|(_, part)| part.is_held_out()) {
        return false;
    }
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let training: std::collections::HashSet<PathBuf> = training.iter().map(canon).collect();
    set.shard_files()
        .iter()
        .any(|p| training.contains(&canon(p)))
}

/// The overlap analysis of the measured sets against `shards` (one pass over them) and every
/// measure again on the items that do not overlap; with it, every overlap found as a line of
/// [`artifact::OVERLAP_PAIRS`]: the set, its item, the kind (and the hashes' distance), the training
/// sample.
fn overlap_report(
    training: &Training,
    distance: u32,
    zs: Option<&(Rc<SetFeatures>, Tensor, Vec<String>)>,
    rt: Option<&Rc<SetFeatures>>,
    probe: Option<&(Rc<SetFeatures>, LogReg)>,
    probe_report: Option<&crate::probe::LinearProbe>,
) -> Result<(OverlapReport, Vec<Value>)> {
    let features = [
        zs.map(|(f, _, _)| f.as_ref()),
        rt.map(|f| f.as_ref()),
        probe.map(|(f, _)| f.as_ref()),
    ];
    let sets = features.map(|f| f.map(|f| f.prints.as_slice()).unwrap_or_default());
    let (flags, total) = find_overlaps(&sets, training, distance)?;
    let shards = &training.shards;
    let mut pairs = Vec::new();
    for ((set, f), fl) in ["zero_shot", "retrieval", "linear_probe"]
        .into_iter()
        .zip(features)
        .zip(&flags)
    {
        let Some(f) = f else { continue };
        for p in &fl.pairs {
            let mut line = json!({
                "set": set,
                "item": f.names[p.item as usize],
                "kind": p.kind,
                "shard": shards[p.shard].display().to_string(),
                "key": p.key,
                "url": p.url,
                "caption": p.caption,
            });
            if let Some(d) = p.distance {
                line["distance"] = json!(d);
            }
            pairs.push(line);
        }
    }
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
        held_out_percent: training.held_out_percent,
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
    Ok((out, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(table: Value) -> Result<TrainStage> {
        let cfg: TrainConfig = serde_json::from_value(table).unwrap();
        TrainStage::new(cfg, &PipelineSettings::default(), Path::new("."))
    }

    /// A table without `accum_freq` fingerprints as it did with the removed `accum_steps = 1`
    /// (workdirs made before stay up to date); with it, `accum_freq` is part of the fingerprint.
    #[test]
    fn accum_freq_and_the_fingerprint_of_older_workdirs() {
        let plain = stage(json!({"model": "tiny-vit", "steps": 10}))
            .unwrap()
            .config();
        assert_eq!(plain["accum_steps"], json!(1));
        assert!(plain.get("accum_freq").is_none());
        let acc = stage(json!({"model": "tiny-vit", "steps": 10, "accum_freq": 4}))
            .unwrap()
            .config();
        assert_eq!(acc["accum_freq"], json!(4));
        assert!(acc.get("accum_steps").is_none());
        assert_ne!(
            openwit_core::config::fingerprint(&plain),
            openwit_core::config::fingerprint(&acc)
        );
    }

    #[test]
    fn the_removed_accum_steps_names_accum_freq() {
        let err = stage(json!({"model": "tiny-vit", "steps": 10, "accum_steps": 4}))
            .err()
            .expect("accum_steps is refused")
            .to_string();
        assert!(err.contains("accum_freq = 4"), "{err}");
        assert!(
            stage(json!({"model": "tiny-vit", "steps": 10, "accum_freq": 0})).is_err(),
            "accum_freq = 0 is refused"
        );
    }

    /// `adam_moments` is fingerprinted only when it is not the default (workdirs made before it
    /// stay up to date), and a value other than fp32 or bf16 is a configuration error naming them.
    #[test]
    fn adam_moments_and_the_fingerprint() {
        let fp = |t: Value| openwit_core::config::fingerprint(&stage(t).unwrap().config());
        let plain = stage(json!({"model": "tiny-vit", "steps": 10}))
            .unwrap()
            .config();
        assert!(plain.get("adam_moments").is_none());
        assert_eq!(
            fp(json!({"model": "tiny-vit", "steps": 10})),
            fp(json!({"model": "tiny-vit", "steps": 10, "adam_moments": "fp32"}))
        );
        let bf16 = stage(json!({"model": "tiny-vit", "steps": 10, "adam_moments": "bf16"}))
            .unwrap()
            .config();
        assert_eq!(bf16["adam_moments"], json!("bf16"));
        assert_ne!(
            openwit_core::config::fingerprint(&plain),
            openwit_core::config::fingerprint(&bf16)
        );
        let err = stage(json!({"model": "tiny-vit", "steps": 10, "adam_moments": "fp16"}))
            .err()
            .expect("fp16 is refused")
            .to_string();
        assert!(
            err.contains("adam_moments `fp16`") && err.contains("`fp32` or `bf16`"),
            "{err}"
        );
    }
}

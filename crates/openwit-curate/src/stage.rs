//! The `curate` stage.
//!
//! Map tasks (one per run of row groups of a candidate file, resumable one by one): clean each
//! caption, drop it by quality, language or no match, and write the survivors to
//! `curate/map/TASK.bNNN.pq` (parquet files; another extension so that readers of
//! `curate/*.parquet` never mistake them for the curated table), hash-partitioned by URL (so that every copy of a URL lands in
//! the same partition). The reduce step (once all tasks are done) runs two streaming passes over
//! the partitions: pass 1 removes duplicates (the first occurrence in input order wins) and
//! counts matches per entry; pass 2 repeats the same dedup, draws the balance and writes
//! `curate/part-NNNNN.parquet` (the curated table), then `entry_counts.parquet`, `stats.json`
//! and `matches_per_entry.svg`.
//!
//! Downstream stages read `curate/part-*.parquet` (the `map/*.pq` files are intermediate).
//! With `dropped_rows` (the default) each map task also lists the rows its filters dropped in
//! `curate/dropped/TASK.parquet` (`url`, the caption as read, `reason`, `seq`), so that a user can
//! see what a drop reason covers; rows that balancing leaves out are in the curated table with
//! `kept = false`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{
    Array, ArrayRef, Float32Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_select::take::take;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use openwit_core::artifact::{self, Artifact, Candidates, OneFile, QueryList, Upstream};
use openwit_core::stage::{StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_core::{Drops, Error, Result, Stage, TaskRecord};
use openwit_shard::overlap::normalize_text;

use crate::balance::{self, Group};
use crate::config::CurateConfig;
use crate::error::{CurateError, PqCtx};
use crate::lang;
use crate::matcher::Matcher;
use crate::quality::{self, Quality};
use crate::table;

/// Source stages whose outputs are candidate tables.
pub const SOURCE_STAGES: &[&str] = Candidates::PRODUCERS;

/// Drop reasons of the map tasks (besides the quality reasons in [`quality`]).
pub const NO_URL: &str = "url_missing";
pub const LANGUAGE: &str = "language_not_kept";
pub const NO_MATCH: &str = "no_match";
/// A caption equal to a text of an `exclude_eval` evaluation set.
pub const EVAL_OVERLAP: &str = "eval_overlap";

/// A query list and its automaton, loaded once per process.
pub struct Queries {
    pub entries: Vec<String>,
    pub matcher: Matcher,
    /// The one-word entries, lower-cased: the English vocabulary that
    /// [`crate::lang::english_share`] counts.
    pub words: std::collections::HashSet<String>,
}

/// Reads a flat JSON list of entries (MetaCLIP's `metadata.json`).
pub fn load_queries(path: &Path) -> std::result::Result<Vec<String>, CurateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CurateError::Queries {
        path: path.to_path_buf(),
        msg: e.to_string(),
        fix: "run `openwit queries PIPELINE.toml` first, or set `queries = \"path/metadata.json\"` in [curate]".into(),
    })?;
    serde_json::from_str::<Vec<String>>(&text).map_err(|e| CurateError::Queries {
        path: path.to_path_buf(),
        msg: format!("line {}, column {}: {e}", e.line(), e.column()),
        fix: "the query list is a flat JSON list of strings: [\"dog\", \"hot dog\", ...]".into(),
    })
}

/// Loads the query list at `path` and builds its automaton.
pub fn build_queries(path: &Path) -> std::result::Result<Queries, CurateError> {
    let t0 = std::time::Instant::now();
    let entries = load_queries(path)?;
    let matcher = Matcher::new(&entries)?;
    tracing::info!(
        entries = entries.len(),
        automaton_mb = matcher.memory_usage() / (1 << 20),
        seconds = t0.elapsed().as_secs_f64(),
        "query automaton built"
    );
    let words = entries
        .iter()
        .filter(|e| !e.contains(' '))
        .map(|e| e.to_lowercase())
        .collect();
    Ok(Queries {
        entries,
        matcher,
        words,
    })
}

/// The `curate` stage.
pub struct CurateStage {
    cfg: CurateConfig,
    seed: u64,
    sources: Vec<String>,
    candidates: Vec<PathBuf>,
    queries_path: Option<PathBuf>,
    quality: Quality,
    queries: Mutex<Option<Arc<Queries>>>,
    /// `exclude_eval`, resolved.
    exclude_eval: Vec<PathBuf>,
    excluded: OnceLock<std::result::Result<Option<Arc<HashSet<String>>>, String>>,
}

impl CurateStage {
    /// `seed` is the pipeline's; `base_dir` resolves relative paths (the pipeline file's folder);
    /// `present` lists the stages of the pipeline, to default `from` to the source stages in it.
    pub fn new(cfg: CurateConfig, seed: u64, base_dir: &Path, present: &[&str]) -> Result<Self> {
        let sources: Vec<String> = match &cfg.from {
            Some(list) => list.clone(),
            None => SOURCE_STAGES
                .iter()
                .filter(|s| present.contains(s))
                .map(|s| s.to_string())
                .collect(),
        };
        if sources.is_empty() && cfg.candidates.is_empty() {
            return Err(Error::Config(
                "[curate] has no input: the pipeline has no source stage (crawl, warc, import) \
                 and `candidates` is empty\n  fix: add a source stage, or set `from = [\"import\"]` \
                 or `candidates = [\"path/to/candidates.parquet\"]` in [curate]"
                    .into(),
            ));
        }
        if cfg.partitions == 0 || cfg.partitions > 4096 {
            return Err(Error::Config(format!(
                "[curate] partitions = {}: must be 1..=4096\n  fix: use the default 16, or more for pools over 1e9 candidates",
                cfg.partitions
            )));
        }
        if cfg.rows_per_task == 0 {
            return Err(Error::Config(
                "[curate] rows_per_task = 0\n  fix: remove the key (default 1000000)".into(),
            ));
        }
        if cfg.balance.oversample.is_nan() || cfg.balance.oversample <= 0.0 {
            return Err(Error::Config(format!(
                "[curate.balance] oversample = {}: must be > 0\n  fix: use 1.0 (no over-sampling) or e.g. 1.5",
                cfg.balance.oversample
            )));
        }
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            }
        };
        let cfg_exclude: Vec<PathBuf> = cfg.exclude_eval.iter().map(resolve).collect();
        for p in &cfg_exclude {
            if !p.exists() {
                return Err(Error::Config(format!(
                    "[curate] exclude_eval: {} does not exist\n  fix: give evaluation sets as webdataset tars or folders of them (relative to the pipeline file)",
                    p.display()
                )));
            }
        }
        Ok(CurateStage {
            candidates: cfg.candidates.iter().map(resolve).collect(),
            queries_path: cfg.queries.as_ref().map(resolve),
            quality: Quality::new(&cfg.quality),
            sources,
            seed,
            cfg,
            queries: Mutex::new(None),
            exclude_eval: cfg_exclude,
            excluded: OnceLock::new(),
        })
    }

    /// The normalised texts of the `exclude_eval` sets, read once (None without any).
    fn excluded(&self) -> Result<Option<Arc<HashSet<String>>>> {
        self.excluded
            .get_or_init(|| {
                if self.exclude_eval.is_empty() {
                    return Ok(None);
                }
                let prints = openwit_shard::overlap::read_eval_paths_with(&self.exclude_eval, false)
                    .map_err(|e| format!("[curate] exclude_eval: {e}"))?;
                let texts: HashSet<String> = prints
                    .iter()
                    .flat_map(|p| p.captions.iter())
                    .map(|c| normalize_text(c))
                    .filter(|c| !c.is_empty())
                    .collect();
                if texts.is_empty() {
                    return Err(format!(
                        "[curate] exclude_eval: no texts in {}; give webdataset tars whose samples have `.txt` captions (a retrieval set)",
                        self.exclude_eval
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                tracing::info!(texts = texts.len(), "evaluation texts to keep out (exclude_eval)");
                Ok(Some(Arc::new(texts)))
            })
            .clone()
            .map_err(Error::Config)
    }

    /// The query list: `[curate] queries`, else the `queries` stage's, through the context.
    fn queries_path(&self, ctx: &impl Upstream) -> Result<PathBuf> {
        match &self.queries_path {
            Some(p) => Ok(p.clone()),
            None => artifact::file::<QueryList>(ctx),
        }
    }

    fn queries(&self, ctx: &impl Upstream) -> Result<Arc<Queries>> {
        let mut q = self.queries.lock().unwrap();
        if let Some(q) = &*q {
            return Ok(q.clone());
        }
        let built = Arc::new(build_queries(&self.queries_path(ctx)?)?);
        *q = Some(built.clone());
        Ok(built)
    }

    fn inputs(&self, ctx: &StageContext<'_>) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for s in &self.sources {
            // the source stage's parquet outputs, less its `dropped/` listings (which have
            // `url` and `caption` columns too, never candidates)
            for p in artifact::files_from::<Candidates>(ctx, s)? {
                if table::is_candidate_file(&p)? {
                    files.push(p);
                } else {
                    tracing::debug!(file = %p.display(), "not a candidate table; skipped");
                }
            }
        }
        for p in &self.candidates {
            if !p.is_file() {
                return Err(Error::Config(format!(
                    "[curate] candidates: {} does not exist\n  fix: give the path of a candidate parquet file (relative to the pipeline file)",
                    p.display()
                )));
            }
            files.push(p.clone());
        }
        Ok(files)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Chunk {
    path: PathBuf,
    file: u64,
    rg_start: usize,
    rg_end: usize,
    first_row: u64,
}

impl openwit_core::FromConfig for CurateStage {
    const TABLE: &'static str = "curate";
    type Config = CurateConfig;
    fn from_config(
        cfg: CurateConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        // The source stages of the file feed it (their candidate tables).
        let present: Vec<&str> = SOURCE_STAGES
            .iter()
            .copied()
            .filter(|n| doc.has(n))
            .collect();
        Self::new(cfg, doc.pipeline().seed, &doc.base_dir(), &present)
    }
}

impl Stage for CurateStage {
    fn name(&self) -> &str {
        "curate"
    }

    fn upstream(&self) -> Vec<String> {
        let mut u = self.sources.clone();
        if self.queries_path.is_none() {
            u.insert(0, QueryList::PRODUCER.into());
        }
        u
    }

    fn config(&self) -> Value {
        let mut v = json!({
            "version": 1,
            "seed": self.seed,
            "sources": self.sources,
            "candidates": self.candidates,
            "queries": self.queries_path,
            "quality": self.cfg.quality,
            "language": self.cfg.language,
            "dedup": self.cfg.dedup,
            "balance": self.cfg.balance,
            "partitions": self.cfg.partitions,
            // The outputs do not depend on it, but the task split does: a change in the middle
            // of a run would mix two splits.
            "rows_per_task": self.cfg.rows_per_task,
            "dropped_rows": self.cfg.dropped_rows,
        });
        // Keyed only when used: workdirs made before it stay up to date.
        if !self.exclude_eval.is_empty() {
            v["exclude_eval"] = json!(self.exclude_eval);
        }
        v
    }

    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        // Load the query list now, so that a bad one stops the stage before any task runs.
        self.queries(ctx)?;
        let mut tasks = Vec::new();
        for (fi, path) in self.inputs(ctx)?.into_iter().enumerate() {
            let groups = table::row_groups(&path)?;
            let (mut start, mut rows, mut first_row, mut row) = (0usize, 0u64, 0u64, 0u64);
            for (i, n) in groups.iter().enumerate() {
                rows += n;
                row += n;
                if rows >= self.cfg.rows_per_task as u64 || i + 1 == groups.len() {
                    let chunk = Chunk {
                        path: path.clone(),
                        file: fi as u64,
                        rg_start: start,
                        rg_end: i + 1,
                        first_row,
                    };
                    tasks.push(TaskSpec::new(
                        format!("{fi:05}-{start:05}"),
                        serde_json::to_value(&chunk).expect("chunk serializes"),
                    ));
                    start = i + 1;
                    rows = 0;
                    first_row = row;
                }
            }
        }
        Ok(tasks)
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> Result<TaskReport> {
        let chunk: Chunk = serde_json::from_value(task.payload.clone())
            .map_err(|e| Error::Stage(format!("bad task payload: {e}")))?;
        let q = self.queries(ctx)?;
        let excluded = self.excluded()?;
        let path = &chunk.path;
        let f = std::fs::File::open(path).pq(path)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .pq(path)?
            .with_row_groups((chunk.rg_start..chunk.rg_end).collect())
            .with_batch_size(8192)
            .build()
            .pq(path)?;
        let parts = self.cfg.partitions;
        let mut writers: Vec<Option<ArrowWriter<std::fs::File>>> =
            (0..parts).map(|_| None).collect();
        let mut report = TaskReport::default();
        let mut drops = Drops::default();
        let mut row = chunk.first_row;
        let (mut buf, mut ids, mut ends) =
            (crate::matcher::Scratch::default(), Vec::new(), Vec::new());
        let engine = self.cfg.language.engine;
        let keep_langs = &self.cfg.language.keep;
        let keep_en = keep_langs.iter().any(|k| k == "en");
        let english_words = self.cfg.language.english_words;
        let mut by_vocabulary = 0u64;
        let mut dropped_out: Option<ArrowWriter<std::fs::File>> = None;
        let mut dropped: Vec<(u32, u64, &'static str)> = Vec::new();
        for batch in reader {
            if ctx.cancelled() {
                return Err(Error::Interrupted);
            }
            let batch = table::normalize(&batch.pq(path)?, path)?;
            let urls = table::str_col(&batch, "url", path)?;
            let caps = table::str_col(&batch, "caption", path)?;
            let n = batch.num_rows();
            // The rows that pass the filters (row index, seq, cleaned caption, language,
            // confidence), then matched all together: the matcher overlaps the lookups of many
            // captions (`Matcher::find_many`).
            let mut rows: Vec<(usize, u64, &'static str, f32)> = Vec::new();
            let mut captions: Vec<String> = Vec::new();
            for i in 0..n {
                let seq = (chunk.file << 40) | row;
                row += 1;
                if urls.is_null(i) || urls.value(i).is_empty() {
                    drops.inc(NO_URL);
                    dropped.push((i as u32, seq, NO_URL));
                    continue;
                }
                let raw = if caps.is_null(i) { "" } else { caps.value(i) };
                let caption = quality::clean(raw);
                if let Some(reason) = self.quality.check(&caption) {
                    drops.inc(reason);
                    dropped.push((i as u32, seq, reason));
                    continue;
                }
                if let Some(ex) = &excluded
                    && ex.contains(&normalize_text(&caption))
                {
                    drops.inc(EVAL_OVERLAP);
                    dropped.push((i as u32, seq, EVAL_OVERLAP));
                    continue;
                }
                let (mut code, mut conf) = lang::detect(engine, &caption);
                // Short captions fool the identifiers ("British Flag" is Swedish to whichlang):
                // one whose words are English vocabulary is kept as English.
                if english_words > 0.0
                    && code != "en"
                    && keep_en
                    && let Some(share) = lang::english_share(&caption, &q.words)
                    && share >= english_words
                {
                    code = "en";
                    conf = share;
                    by_vocabulary += 1;
                }
                if !keep_langs.is_empty()
                    && (!keep_langs.iter().any(|k| k == code)
                        || conf < self.cfg.language.min_confidence)
                {
                    drops.inc(LANGUAGE);
                    dropped.push((i as u32, seq, LANGUAGE));
                    continue;
                }
                rows.push((i, seq, code, conf));
                captions.push(caption);
            }
            q.matcher
                .find_many(&captions, &mut buf, &mut ids, &mut ends);
            // Survivors per partition: row index, cleaned caption, language, confidence, ids, seq.
            let mut by_part: Vec<Survivors> = (0..parts).map(|_| Survivors::default()).collect();
            let mut start = 0;
            for ((&(i, seq, code, conf), caption), &end) in
                rows.iter().zip(captions).zip(ends.iter())
            {
                let matched = &ids[start..end];
                start = end;
                if matched.is_empty() {
                    drops.inc(NO_MATCH);
                    dropped.push((i as u32, seq, NO_MATCH));
                    continue;
                }
                let url = urls.value(i);
                let b = (xxhash_rust::xxh3::xxh3_64(url.as_bytes()) % parts as u64) as usize;
                let s = &mut by_part[b];
                s.rows.push(i as u32);
                s.captions.push(caption);
                s.langs.push(code);
                s.confs.push(conf);
                s.ids.push(matched.iter().map(|&e| e as i32).collect());
                s.seqs.push(seq);
            }
            if self.cfg.dropped_rows && !dropped.is_empty() {
                dropped.sort_unstable_by_key(|d| d.1);
                let out = dropped_batch(&urls, &caps, &dropped, path)?;
                let w = match &mut dropped_out {
                    Some(w) => w,
                    None => {
                        let p = ctx.output_path(&format!(
                            "{}/{}.parquet",
                            artifact::DROPPED_DIR,
                            task.id
                        ))?;
                        dropped_out.insert(table::writer(&p, table::dropped_schema(), true)?)
                    }
                };
                w.write(&out).pq(path)?;
            }
            dropped.clear();
            report.items_in += n as u64;
            for (b, s) in by_part.into_iter().enumerate() {
                if s.rows.is_empty() {
                    continue;
                }
                report.items_out += s.rows.len() as u64;
                let out = s.into_batch(&batch, path)?;
                let w = match &mut writers[b] {
                    Some(w) => w,
                    None => {
                        let p = ctx.output_path(&format!("map/{}.b{b:03}.pq", task.id))?;
                        writers[b].insert(table::writer(&p, table::map_schema(), false)?)
                    }
                };
                w.write(&out).pq(path)?;
            }
            ctx.progress(n as u64);
        }
        for w in writers.into_iter().flatten().chain(dropped_out) {
            w.close().pq(path)?;
        }
        report.drops = drops;
        // Not a drop: captions kept as English by their words (`language.english_words`).
        report.extra = json!({ "english_by_vocabulary": by_vocabulary });
        Ok(report)
    }

    fn reduce(&self, ctx: &TaskContext<'_>, tasks: &[TaskRecord]) -> Result<Option<TaskReport>> {
        let q = self.queries(ctx)?;
        let parts = self.cfg.partitions;
        // Map outputs by partition, in input order (task ids are zero-padded file/row-group).
        let mut files: Vec<(String, PathBuf)> = tasks
            .iter()
            .flat_map(|t| t.outputs.iter())
            .filter(|o| o.contains("/map/") && o.ends_with(".pq"))
            .map(|o| {
                let name = Path::new(o)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, ctx.workdir.join(o))
            })
            .collect();
        files.sort();
        let mut groups: Vec<Group> = Vec::with_capacity(parts);
        for b in 0..parts {
            let suffix = format!(".b{b:03}.pq");
            groups.push(Group {
                output: ctx.output_path(&format!("part-{b:05}.parquet"))?,
                files: files
                    .iter()
                    .filter(|(n, _)| n.ends_with(&suffix))
                    .map(|(_, p)| p.clone())
                    .collect(),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.jobs().max(1))
            .build()
            .map_err(|e| Error::Stage(format!("cannot start threads: {e}")))?;
        let n = q.entries.len();
        let cancelled = || ctx.cancelled();
        let t0 = std::time::Instant::now();
        let counted =
            pool.install(|| balance::count_pass(&groups, n, self.cfg.dedup, &cancelled))?;
        let bal = &self.cfg.balance;
        let p = if bal.enabled {
            balance::probabilities(&counted.counts, bal.t, bal.oversample)
        } else {
            vec![1.0; n]
        };
        let drawn = pool.install(|| {
            balance::draw_pass(
                &groups,
                n,
                self.cfg.dedup,
                self.seed,
                bal.enabled.then_some(p.as_slice()),
                &cancelled,
            )
        })?;
        tracing::info!(
            unique = counted.unique,
            kept = drawn.kept,
            seconds = t0.elapsed().as_secs_f64(),
            "curate: dedup and balance done"
        );
        let ec = ctx.output_path(artifact::EntryCounts::FILE)?;
        balance::write_entry_counts(&ec, &q.entries, &counted.counts, &p, &drawn.kept_per_entry)?;
        let svg = balance::plot_svg(
            &counted.counts,
            &drawn.kept_per_entry,
            if bal.enabled { bal.t } else { 0 },
            "curate: matched pairs per entry, before and after balancing",
        );
        let sp = ctx.output_path("matches_per_entry.svg")?;
        std::fs::write(&sp, svg).pq(&sp)?;

        // Stats: every drop by reason over the map tasks and the dedup.
        let mut drops = Drops::default();
        let mut input = 0u64;
        let mut by_vocabulary = 0u64;
        for t in tasks {
            input += t.items_in;
            by_vocabulary += t.extra["english_by_vocabulary"].as_u64().unwrap_or(0);
            for (k, v) in &t.drops {
                drops.add(k, *v);
            }
        }
        drops.merge(&counted.drops);
        let over = counted.counts.iter().filter(|&&c| c > bal.t).count();
        let stats = json!({
            "candidates": input,
            "matched": counted.rows,
            "unique": counted.unique,
            "kept": drawn.kept,
            "drops": drops.0,
            "entries": n,
            "entries_matched": counted.counts.iter().filter(|&&c| c > 0).count(),
            "entries_over_t": over,
            "matches_in_entries_over_t": counted.counts.iter().filter(|&&c| c > bal.t).sum::<u64>(),
            "matches_total": counted.counts.iter().sum::<u64>(),
            "t": bal.t,
            "oversample": bal.oversample,
            "balanced": bal.enabled,
            "seed": self.seed,
            "dedup": self.cfg.dedup,
            "language_engine": self.cfg.language.engine.name(),
            "english_by_vocabulary": by_vocabulary,
            "partitions": parts,
        });
        let stp = ctx.output_path("stats.json")?;
        std::fs::write(&stp, serde_json::to_vec_pretty(&stats).expect("json")).pq(&stp)?;
        Ok(Some(TaskReport {
            items_in: counted.rows,
            items_out: drawn.kept,
            drops: counted.drops,
            extra: json!({"unique": counted.unique, "kept": drawn.kept}),
        }))
    }

    fn summary(&self, ctx: &StageContext<'_>, _tasks: &[TaskRecord]) -> Option<String> {
        let s: Value =
            serde_json::from_slice(&std::fs::read(ctx.stage_dir().join("stats.json")).ok()?)
                .ok()?;
        let by_words = match s["english_by_vocabulary"].as_u64() {
            Some(n) if n > 0 => format!(
                "; {n} captions kept as English by their words where the language identifier guessed another language"
            ),
            _ => String::new(),
        };
        Some(format!(
            "{} candidates -> {} matched -> {} unique -> {} kept ({} of {} entries matched, {} over t = {}){by_words}",
            s["candidates"],
            s["matched"],
            s["unique"],
            s["kept"],
            s["entries_matched"],
            s["entries"],
            s["entries_over_t"],
            s["t"]
        ))
    }
}

#[derive(Default)]
struct Survivors {
    rows: Vec<u32>,
    captions: Vec<String>,
    langs: Vec<&'static str>,
    confs: Vec<f32>,
    ids: Vec<Vec<i32>>,
    seqs: Vec<u64>,
}

impl Survivors {
    fn into_batch(
        self,
        batch: &RecordBatch,
        path: &Path,
    ) -> std::result::Result<RecordBatch, CurateError> {
        let idx = UInt32Array::from(self.rows);
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(14);
        for (name, _, _) in openwit_core::artifact::candidates::COLUMNS {
            if *name == "caption" {
                cols.push(Arc::new(StringArray::from_iter_values(
                    self.captions.iter(),
                )));
            } else {
                let c = batch.column_by_name(name).expect("normalized batch");
                cols.push(take(c.as_ref(), &idx, None).pq(path)?);
            }
        }
        cols.push(Arc::new(StringArray::from_iter_values(self.langs.iter())));
        cols.push(Arc::new(Float32Array::from(self.confs)));
        let mut lb = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(
            arrow_schema::Field::new("item", arrow_schema::DataType::Int32, false),
        ));
        for ids in &self.ids {
            lb.values().append_slice(ids);
            lb.append(true);
        }
        cols.push(Arc::new(lb.finish()));
        cols.push(Arc::new(UInt64Array::from(self.seqs)));
        // `url` is non-null here (null urls were dropped); the map schema says so.
        RecordBatch::try_new(table::map_schema(), cols).pq(path)
    }
}

/// The dropped rows of one batch (row index, seq, reason; in input order) as a batch of
/// [`table::dropped_schema`].
fn dropped_batch(
    urls: &StringArray,
    caps: &StringArray,
    rows: &[(u32, u64, &'static str)],
    path: &Path,
) -> std::result::Result<RecordBatch, CurateError> {
    let idx = UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
    let cols: Vec<ArrayRef> = vec![
        take(urls, &idx, None).pq(path)?,
        take(caps, &idx, None).pq(path)?,
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
    ];
    RecordBatch::try_new(table::dropped_schema(), cols).pq(path)
}

//! The `balance` stage: balance again on the successfully downloaded samples.
//!
//! MetaCLIP advises balancing last, since downloads fail: curate with over-sampling
//! (`[curate.balance] oversample = 1.5`), download, then run this stage with the final `t`.
//! It reads the download stage's shard parquet files (img2dataset layout: one row per input
//! row, `status == "success"` for the samples in the tar), takes each sample's matched entries
//! from its `entry_ids` column when the download carried it, or matches its caption again, and
//! writes per shard `balance/NNNNN.parquet` (`key`, `url`, `caption`, `entry_ids`, `kept`),
//! plus `entry_counts.parquet`, `stats.json` and `matches_per_entry.svg`. The draws are the
//! curate stage's (same seed, same candidate key), so a sample dropped here would also have been
//! dropped by a curate run with this `t`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use openwit_core::artifact::{self, Artifact, OneFile, QueryList, ShardTables, Upstream};
use openwit_core::stage::{StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_core::{Drops, Error, Result, Stage, TaskRecord};

use crate::balance::{self, Group};
use crate::config::{DedupMode, RebalanceConfig};
use crate::error::PqCtx;
use crate::stage::{NO_MATCH, Queries, build_queries};
use crate::table;

/// Drop reason for rows whose download failed.
pub const NOT_DOWNLOADED: &str = "not_downloaded";

/// The `balance` stage.
pub struct BalanceStage {
    cfg: RebalanceConfig,
    seed: u64,
    queries_path: Option<PathBuf>,
    queries: Mutex<Option<Arc<Queries>>>,
}

impl BalanceStage {
    /// `seed` must be the pipeline seed the curate stage used, for consistent draws.
    pub fn new(cfg: RebalanceConfig, seed: u64, base_dir: &Path) -> Result<Self> {
        if cfg.t == 0 {
            return Err(Error::Config(
                "[balance] t = 0 keeps nothing\n  fix: remove the key (default 20000)".into(),
            ));
        }
        let queries_path = cfg.queries.as_ref().map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            }
        });
        Ok(BalanceStage {
            cfg,
            seed,
            queries_path,
            queries: Mutex::new(None),
        })
    }

    fn queries(&self, ctx: &impl Upstream) -> Result<Arc<Queries>> {
        let mut q = self.queries.lock().unwrap();
        if let Some(q) = &*q {
            return Ok(q.clone());
        }
        let path = match &self.queries_path {
            Some(p) => p.clone(),
            None => artifact::file::<QueryList>(ctx)?,
        };
        let built = Arc::new(build_queries(&path)?);
        *q = Some(built.clone());
        Ok(built)
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn map_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, false),
        Field::new("entry_ids", table::entry_ids_type(), false),
    ]))
}

impl openwit_core::FromConfig for BalanceStage {
    const TABLE: &'static str = "balance";
    type Config = RebalanceConfig;
    fn from_config(
        cfg: RebalanceConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        Self::new(cfg, doc.pipeline().seed, &doc.base_dir())
    }
}

impl Stage for BalanceStage {
    fn name(&self) -> &str {
        "balance"
    }

    fn upstream(&self) -> Vec<String> {
        let mut u = vec![self.cfg.from.clone()];
        if self.queries_path.is_none() {
            u.insert(0, QueryList::PRODUCER.into());
        }
        u
    }

    fn config(&self) -> Value {
        json!({
            "version": 1,
            "seed": self.seed,
            "from": self.cfg.from,
            "queries": self.queries_path,
            "t": self.cfg.t,
        })
    }

    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        self.queries(ctx)?;
        let mut tasks = Vec::new();
        // the shards' tables of `from` (not the records it dropped, in `dropped/`)
        for p in artifact::files_from::<ShardTables>(ctx, &self.cfg.from)? {
            if table::is_candidate_file(&p)? {
                tasks.push(TaskSpec::new(stem(&p), json!({ "path": p })));
            }
        }
        Ok(tasks)
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> Result<TaskReport> {
        let path = PathBuf::from(task.payload["path"].as_str().unwrap_or_default());
        let q = self.queries(ctx)?;
        let f = std::fs::File::open(&path).pq(&path)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .pq(&path)?
            .with_batch_size(8192)
            .build()
            .pq(&path)?;
        let out = ctx.output_path(&format!("map/{}.pq", task.id))?;
        let mut w = table::writer(&out, map_schema(), false)?;
        let mut report = TaskReport::default();
        let mut drops = Drops::default();
        let (mut buf, mut ids) = (crate::matcher::Scratch::default(), Vec::new());
        for batch in reader {
            if ctx.cancelled() {
                return Err(Error::Interrupted);
            }
            let batch = batch.pq(&path)?;
            let urls = table::str_col(&batch, "url", &path)?;
            let caps = table::str_col(&batch, "caption", &path)?;
            let status = table::str_col(&batch, "status", &path).ok();
            let keys = table::str_col(&batch, "key", &path).ok();
            let carried = table::entry_ids_col(&batch);
            let (mut k, mut u, mut c) = (Vec::new(), Vec::new(), Vec::new());
            let mut lb = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Int32,
                false,
            )));
            for i in 0..batch.num_rows() {
                report.items_in += 1;
                if status
                    .as_ref()
                    .is_some_and(|s| s.is_null(i) || s.value(i) != "success")
                {
                    drops.inc(NOT_DOWNLOADED);
                    continue;
                }
                if urls.is_null(i) || caps.is_null(i) {
                    drops.inc(NOT_DOWNLOADED);
                    continue;
                }
                match &carried {
                    Some(list) => {
                        ids.clear();
                        ids.extend(table::ids_of(list, i).iter().map(|&e| e as u32));
                    }
                    None => q.matcher.find(caps.value(i), &mut buf, &mut ids),
                }
                if ids.is_empty() {
                    drops.inc(NO_MATCH);
                    continue;
                }
                k.push(
                    keys.as_ref()
                        .and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_string())),
                );
                u.push(urls.value(i));
                c.push(caps.value(i));
                for &e in &ids {
                    lb.values().append_value(e as i32);
                }
                lb.append(true);
            }
            report.items_out += u.len() as u64;
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(k)),
                Arc::new(StringArray::from(u)),
                Arc::new(StringArray::from(c)),
                Arc::new(lb.finish()),
            ];
            w.write(&RecordBatch::try_new(map_schema(), cols).pq(&path)?)
                .pq(&out)?;
            ctx.progress(batch.num_rows() as u64);
        }
        w.close().pq(&out)?;
        report.drops = drops;
        Ok(report)
    }

    fn reduce(&self, ctx: &TaskContext<'_>, tasks: &[TaskRecord]) -> Result<Option<TaskReport>> {
        let q = self.queries(ctx)?;
        let mut groups = Vec::new();
        for t in tasks {
            for o in &t.outputs {
                let p = ctx.workdir.join(o);
                groups.push(Group {
                    output: ctx.output_path(&format!("{}.parquet", stem(&p)))?,
                    files: vec![p],
                });
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.jobs().max(1))
            .build()
            .map_err(|e| Error::Stage(format!("cannot start threads: {e}")))?;
        let n = q.entries.len();
        let cancelled = || ctx.cancelled();
        let counted =
            pool.install(|| balance::count_pass(&groups, n, DedupMode::None, &cancelled))?;
        let p = balance::probabilities(&counted.counts, self.cfg.t, 1.0);
        let drawn = pool.install(|| {
            balance::draw_pass(&groups, n, DedupMode::None, self.seed, Some(&p), &cancelled)
        })?;
        let ec = ctx.output_path(artifact::EntryCounts::FILE)?;
        balance::write_entry_counts(&ec, &q.entries, &counted.counts, &p, &drawn.kept_per_entry)?;
        let sp = ctx.output_path("matches_per_entry.svg")?;
        let svg = balance::plot_svg(
            &counted.counts,
            &drawn.kept_per_entry,
            self.cfg.t,
            "balance: downloaded pairs per entry, before and after balancing",
        );
        std::fs::write(&sp, svg).pq(&sp)?;
        let mut drops = Drops::default();
        let mut input = 0;
        for t in tasks {
            input += t.items_in;
            for (k, v) in &t.drops {
                drops.add(k, *v);
            }
        }
        let stats = json!({
            "rows": input,
            "downloaded_matched": counted.rows,
            "kept": drawn.kept,
            "drops": drops.0,
            "entries": n,
            "entries_matched": counted.counts.iter().filter(|&&c| c > 0).count(),
            "entries_over_t": counted.counts.iter().filter(|&&c| c > self.cfg.t).count(),
            "t": self.cfg.t,
            "seed": self.seed,
        });
        let stp = ctx.output_path("stats.json")?;
        std::fs::write(&stp, serde_json::to_vec_pretty(&stats).expect("json")).pq(&stp)?;
        Ok(Some(TaskReport {
            items_in: counted.rows,
            items_out: drawn.kept,
            drops: Drops::default(),
            extra: Value::Null,
        }))
    }

    fn summary(&self, ctx: &StageContext<'_>, _tasks: &[TaskRecord]) -> Option<String> {
        let s: Value =
            serde_json::from_slice(&std::fs::read(ctx.stage_dir().join("stats.json")).ok()?)
                .ok()?;
        Some(format!(
            "{} downloaded and matched -> {} kept ({} entries over t = {})",
            s["downloaded_matched"], s["kept"], s["entries_over_t"], s["t"]
        ))
    }
}

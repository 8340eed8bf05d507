//! The `index` stage: one tantivy index per shard, built by one task each.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use openwit_core::artifact::{self, Artifact, QueryList, ShardTars, Upstream};
use openwit_core::{Drops, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_shard::{Sample, ShardReader};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tantivy::{Index, IndexWriter, TantivyDocument};

use crate::error::{IndexError, Result};
use crate::schema::{Fields, domain_of, register_tokenizers, schema};

/// Name of the file in each shard index folder that says which tar it indexes.
pub const SOURCE_FILE: &str = "openwit-shard.json";

// tantivy takes 15 MiB to 4 GiB per indexing thread.
openwit_core::config_ranges! {
    fn index_mib = openwit_core::config::Range::new(16.0, 4000.0, "MiB");
}

/// The `[index]` table of a pipeline file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Index the shards in this folder (an img2dataset output) instead of the `download` stage's.
    #[serde(default)]
    pub shards: Option<PathBuf>,
    /// The query entries (`metadata.json`, a JSON list) that `entry_ids` point into; default:
    /// `WORKDIR/queries/metadata.json` when it exists.
    #[serde(default)]
    pub metadata: Option<PathBuf>,
    /// Indexing memory per task in MiB (default 64; does not change outputs).
    #[serde(default, deserialize_with = "index_mib")]
    pub memory_mb: Option<usize>,
}

/// The `index` stage.
pub struct IndexStage {
    cfg: IndexConfig,
    entries: OnceLock<Arc<Vec<String>>>,
}

impl IndexStage {
    /// The stage; relative paths in `cfg` are resolved against `base_dir` (the pipeline file's folder).
    pub fn new(mut cfg: IndexConfig, base_dir: &Path) -> Self {
        cfg.shards = cfg.shards.map(|p| base_dir.join(p));
        cfg.metadata = cfg.metadata.map(|p| base_dir.join(p));
        IndexStage {
            cfg,
            entries: OnceLock::new(),
        }
    }

    /// The entries' names: `[index] metadata`, else the `queries` stage's query list when
    /// that stage ran (the index does not wait for it: without one, entries show by id).
    fn entries(&self, ctx: &impl Upstream) -> Arc<Vec<String>> {
        self.entries
            .get_or_init(|| {
                let path = self
                    .cfg
                    .metadata
                    .clone()
                    .or_else(|| artifact::find::<QueryList>(ctx));
                Arc::new(path.map(|p| load_entries(&p)).unwrap_or_default())
            })
            .clone()
    }
}

/// Reads a `metadata.json` entry list; empty (with a warning) when absent or unreadable.
pub fn load_entries(path: &Path) -> Vec<String> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Vec<String>>(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "entry list unreadable; entries are shown by id");
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    }
}

impl openwit_core::FromConfig for IndexStage {
    const TABLE: &'static str = "index";
    type Config = IndexConfig;
    fn from_config(
        cfg: IndexConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        Ok(Self::new(cfg, &doc.base_dir()))
    }
}

impl Stage for IndexStage {
    fn name(&self) -> &str {
        "index"
    }

    fn upstream(&self) -> Vec<String> {
        if self.cfg.shards.is_some() {
            Vec::new()
        } else {
            vec![ShardTars::PRODUCER.into()]
        }
    }

    fn config(&self) -> Value {
        json!({
            "schema": 1,
            "shards": self.cfg.shards,
            "metadata": self.cfg.metadata,
        })
    }

    fn plan(&self, ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        let tars: Vec<PathBuf> = match &self.cfg.shards {
            Some(dir) => openwit_shard::list_shards(dir).map_err(|e| {
                openwit_core::Error::Config(format!(
                    "[index] shards = {}: {e}; point it at a folder of NNNNN.tar shards",
                    dir.display()
                ))
            })?,
            None => artifact::files::<ShardTars>(ctx)?,
        };
        Ok(tars
            .iter()
            .map(|t| {
                let stem = t
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                TaskSpec::new(stem, json!({ "tar": t }))
            })
            .collect())
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let tar = PathBuf::from(task.payload["tar"].as_str().unwrap_or_default());
        let out = ctx.output_path(&task.id)?;
        let entries = self.entries(ctx);
        let mem = self.cfg.memory_mb.unwrap_or(64).max(16) << 20;
        let report = index_shard(&tar, &task.id, &out, &entries, mem, &|n| ctx.progress(n))?;
        let rel = tar
            .strip_prefix(ctx.workdir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| tar.clone());
        let src = out.join(SOURCE_FILE);
        std::fs::write(&src, serde_json::to_vec(&json!({ "tar": rel })).unwrap())
            .map_err(|e| IndexError::io(&src, e))?;
        Ok(report)
    }

    fn max_parallel(&self, jobs: usize) -> usize {
        jobs
    }

    fn summary(
        &self,
        ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        let docs: u64 = tasks.iter().map(|t| t.items_out).sum();
        let shards = tasks
            .iter()
            .filter(|t| t.task != openwit_core::REDUCE_TASK)
            .count();
        Some(format!(
            "indexed {docs} samples of {shards} shard(s) in {}; try `openwit search {} \"a query\"` or `openwit serve {}`",
            ctx.stage_dir().display(),
            ctx.workdir.display(),
            ctx.workdir.display()
        ))
    }
}

/// Indexes the successful samples of the shard `tar` into a new index in `out` (a folder).
/// A damaged tar is reported with its path and the rest of it skipped (counted as the drop
/// `damaged_shard`); the samples read before the damage are kept.
pub fn index_shard(
    tar: &Path,
    shard: &str,
    out: &Path,
    entries: &[String],
    memory: usize,
    progress: &dyn Fn(u64),
) -> Result<TaskReport> {
    std::fs::create_dir_all(out).map_err(|e| IndexError::io(out, e))?;
    let index = Index::create_in_dir(out, schema()).map_err(|e| IndexError::tantivy(out, e))?;
    register_tokenizers(&index);
    let f = Fields::of(&index.schema()).expect("our schema");
    let mut writer: IndexWriter = index
        .writer_with_num_threads(1, memory)
        .map_err(|e| IndexError::tantivy(out, e))?;
    let mut report = TaskReport::default();
    let mut drops = Drops::default();
    let mut pending = 0u64;
    match ShardReader::open(tar) {
        Err(e) => {
            tracing::warn!(path = %tar.display(), error = %e, "shard unreadable; skipped");
            drops.inc("damaged_shard");
        }
        Ok(reader) => {
            for sample in reader.samples() {
                let sample = match sample {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(path = %tar.display(), error = %e,
                            "damaged shard: indexed the samples before the damage, skipped the rest");
                        drops.inc("damaged_shard");
                        break;
                    }
                };
                report.items_in += 1;
                match sample_doc(&sample, shard, &f, entries) {
                    Ok(doc) => {
                        writer
                            .add_document(doc)
                            .map_err(|e| IndexError::tantivy(out, e))?;
                        report.items_out += 1;
                    }
                    Err(reason) => drops.inc(reason),
                }
                pending += 1;
                if pending == 1000 {
                    progress(pending);
                    pending = 0;
                }
            }
        }
    }
    progress(pending);
    writer.commit().map_err(|e| IndexError::tantivy(out, e))?;
    writer
        .wait_merging_threads()
        .map_err(|e| IndexError::tantivy(out, e))?;
    report.drops = drops;
    report.extra = json!({ "tar": tar });
    Ok(report)
}

fn sample_doc(
    s: &Sample,
    shard: &str,
    f: &Fields,
    entries: &[String],
) -> std::result::Result<TantivyDocument, &'static str> {
    let image = s.image().ok_or("no_image")?;
    let meta = s.json().unwrap_or(Value::Null);
    if meta
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|st| st != "success")
    {
        return Err("not_success");
    }
    let caption = s
        .text()
        .or_else(|| {
            meta.get("caption")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|c| !c.trim().is_empty())
        .ok_or("no_caption")?;
    let url = meta.get("url").and_then(Value::as_str).unwrap_or("");
    let mut doc = TantivyDocument::default();
    doc.add_text(f.caption, &caption);
    doc.add_text(f.shard, shard);
    doc.add_text(f.key, &s.key);
    doc.add_text(f.url, url);
    doc.add_text(f.domain, domain_of(url));
    let lang = meta
        .get("language")
        .or_else(|| meta.get("page_lang"))
        .and_then(Value::as_str)
        .unwrap_or("");
    doc.add_text(f.language, lang.to_ascii_lowercase());
    for (field, name) in [(f.width, "width"), (f.height, "height")] {
        if let Some(v) = meta.get(name).and_then(Value::as_u64) {
            doc.add_u64(field, v);
        }
    }
    if let Some(ids) = meta.get("entry_ids").and_then(Value::as_array) {
        for id in ids.iter().filter_map(Value::as_u64) {
            doc.add_u64(f.entry_id, id);
            match entries.get(id as usize) {
                Some(e) => doc.add_text(f.entry, e),
                None => doc.add_text(f.entry, format!("#{id}")),
            }
        }
    }
    doc.add_text(f.image_ext, &image.ext);
    doc.add_u64(f.image_offset, image.offset);
    doc.add_u64(f.image_size, image.size);
    if let Some(j) = s.get("json") {
        doc.add_u64(f.json_offset, j.offset);
        doc.add_u64(f.json_size, j.size);
    }
    Ok(doc)
}

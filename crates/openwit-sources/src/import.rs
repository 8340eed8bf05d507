//! `openwit import`: URL lists (parquet, csv, tsv, jsonl, json, each optionally `.gz`) into the
//! candidate table. One task per input file, streamed (parquet row group by row group, text
//! formats record by record), so memory stays bounded whatever the input's size.
//!
//! ```toml
//! [import]
//! inputs = ["lists/urls.parquet", "lists/more.csv.gz"]  # files or folders (every supported file in them)
//! url_col = "url"            # default "url" (as img2dataset)
//! caption_col = "caption"    # default "caption"
//! extra_columns = ["license"] # carried into `extra` as JSON; ["*"] carries every other column
//! dropped_rows = true        # list every dropped row in import/dropped/TASK.parquet (default)
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openwit_core::{Drops, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::candidate::{Candidate, CandidateWriter, CaptionSource};
use crate::dropped::{DroppedRow, Listing, clip, clip_caption, clip_url};
use crate::error::SourcesError;

/// The `[import]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// Input files or folders (relative paths are relative to the pipeline file).
    pub inputs: Vec<PathBuf>,
    /// The URL column. Default `url`.
    #[serde(default = "default_url_col")]
    pub url_col: String,
    /// The caption column. Default `caption`.
    #[serde(default = "default_caption_col")]
    pub caption_col: String,
    /// Columns carried into `extra` as a JSON object; `["*"]` carries every other column.
    #[serde(default)]
    pub extra_columns: Vec<String>,
    /// Input format: `auto` (by file extension, default), `parquet`, `csv`, `tsv`, `jsonl`, `json`.
    #[serde(default = "default_format")]
    pub format: String,
    /// List every dropped row (file, row number, line, reason) in `import/dropped/TASK.parquet`.
    /// Default true.
    #[serde(default = "yes")]
    pub dropped_rows: bool,
}

fn yes() -> bool {
    true
}

fn default_url_col() -> String {
    "url".into()
}
fn default_caption_col() -> String {
    "caption".into()
}
fn default_format() -> String {
    "auto".into()
}

/// An input format (the shared URL-list reader's).
pub use openwit_urllist::Format;

/// The `[import]` keys, named in the reader's messages.
pub const KEYS: openwit_urllist::Keys = openwit_urllist::Keys {
    table: "[import]",
    format: "format",
    url: "url_col",
    caption: "caption_col",
};

/// The import stage.
pub struct ImportStage {
    cfg: ImportConfig,
    base: PathBuf,
}

impl ImportStage {
    /// `base`: the folder relative input paths are resolved against (the pipeline file's).
    pub fn new(cfg: ImportConfig, base: impl Into<PathBuf>) -> Result<Self, SourcesError> {
        if cfg.inputs.is_empty() {
            return Err(SourcesError::Config(
                "[import] inputs is empty; fix: list at least one file or folder, e.g. inputs = [\"urls.parquet\"]".into(),
            ));
        }
        if cfg.format != "auto" && Format::parse(&cfg.format).is_none() {
            return Err(SourcesError::Config(format!(
                "[import] format = \"{}\" is not known; fix: use one of auto, parquet, csv, tsv, jsonl, json",
                cfg.format
            )));
        }
        Ok(ImportStage {
            cfg,
            base: base.into(),
        })
    }

    fn files(&self) -> Result<Vec<(PathBuf, Format, bool)>, SourcesError> {
        let forced = Format::parse(&self.cfg.format);
        let mut out = Vec::new();
        for inp in &self.cfg.inputs {
            let p = if inp.is_absolute() {
                inp.clone()
            } else {
                self.base.join(inp)
            };
            std::fs::metadata(&p).map_err(|e| {
                SourcesError::Config(format!(
                    "[import] input {}: {e}; fix: give an existing file or folder (relative to the pipeline file)",
                    p.display()
                ))
            })?;
            for f in openwit_urllist::list(&p, forced, &KEYS)
                .map_err(|e| SourcesError::Config(e.to_string()))?
            {
                out.push((f.path, f.format, f.gzip));
            }
        }
        Ok(out)
    }
}

impl openwit_core::FromConfig for ImportStage {
    const TABLE: &'static str = "import";
    type Config = ImportConfig;
    fn from_config(
        cfg: ImportConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        Ok(Self::new(cfg, doc.base_dir())?)
    }
}

impl Stage for ImportStage {
    fn name(&self) -> &str {
        "import"
    }

    fn config(&self) -> Value {
        json!({
            "inputs": self.cfg.inputs,
            "url_col": self.cfg.url_col,
            "caption_col": self.cfg.caption_col,
            "extra_columns": self.cfg.extra_columns,
            "format": self.cfg.format,
            "dropped_rows": self.cfg.dropped_rows,
        })
    }

    fn plan(&self, _ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        let files = self.files()?;
        Ok(files
            .into_iter()
            .enumerate()
            .map(|(i, (p, fmt, gz))| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stem = name.split('.').next().unwrap_or("");
                TaskSpec::new(
                    format!("{i:05}-{}", openwit_core::stage::sanitize(stem)),
                    json!({"path": p, "format": fmt, "gz": gz}),
                )
            })
            .collect())
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let path: PathBuf = serde_json::from_value(task.payload["path"].clone())
            .map_err(|e| openwit_core::Error::Stage(e.to_string()))?;
        let fmt: Format = serde_json::from_value(task.payload["format"].clone())
            .map_err(|e| openwit_core::Error::Stage(e.to_string()))?;
        let gz = task.payload["gz"].as_bool().unwrap_or(false);
        let out = ctx.create_output(&format!("{}.parquet", task.id))?;
        let mut w = CandidateWriter::new(out)?;
        let mut listing = Listing::new(ctx, &task.id, self.cfg.dropped_rows);
        let cols = Columns::new(&self.cfg);
        let mut stats = Stats::default();
        let source_id = path.display().to_string();
        let mut sink = |c: Candidate| -> Result<(), SourcesError> {
            w.push(c)?;
            if w.count() % 65_536 == 0 {
                ctx.progress(65_536);
                if ctx.cancelled() {
                    return Err(SourcesError::Input("interrupted".into()));
                }
            }
            Ok(())
        };
        let mut list = |row: DroppedRow| listing.push(row);
        let dropped: Option<&mut dyn FnMut(DroppedRow) -> Result<(), SourcesError>> =
            if self.cfg.dropped_rows {
                Some(&mut list)
            } else {
                None
            };
        read_file_listed(
            &path, fmt, gz, &cols, &source_id, &mut stats, &mut sink, dropped,
        )?;
        let (n, mut f) = w.finish()?;
        use std::io::Write;
        f.flush().map_err(|e| openwit_core::Error::io(&path, e))?;
        listing.finish()?;
        Ok(TaskReport {
            items_in: stats.rows,
            items_out: n,
            drops: stats.drops,
            extra: json!({"source": source_id, "error": stats.error, "empty": stats.empty}),
        })
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        Some(crate::summary_line("import", tasks))
    }
}

/// Which columns to read and carry.
pub struct Columns {
    pub url: String,
    pub caption: String,
    /// `None`: carry every other column.
    pub extra: Option<BTreeSet<String>>,
}

impl Columns {
    pub fn new(cfg: &ImportConfig) -> Self {
        let extra = if cfg.extra_columns.iter().any(|c| c == "*") {
            None
        } else {
            Some(cfg.extra_columns.iter().cloned().collect())
        };
        Columns {
            url: cfg.url_col.clone(),
            caption: cfg.caption_col.clone(),
            extra,
        }
    }

    fn reader_columns(&self) -> openwit_urllist::Columns {
        openwit_urllist::Columns {
            url: self.url.clone(),
            caption: Some(self.caption.clone()),
            caption_required: true,
            extra: match &self.extra {
                None => openwit_urllist::Extra::All,
                Some(s) => openwit_urllist::Extra::Named(s.iter().cloned().collect()),
            },
            keys: KEYS,
        }
    }
}

/// Rows read, drops, the error that stopped a file early (a truncated or malformed file), and
/// why a file gave no rows at all.
#[derive(Debug, Default)]
pub struct Stats {
    pub rows: u64,
    pub drops: Drops,
    pub error: Option<String>,
    pub empty: Option<String>,
}

/// The checks on a row the reader gave, shared with `download`'s URL-list input
/// ([`openwit_urllist::check_url`], [`openwit_urllist::clean_caption`]): a caption that is not
/// empty once cleaned (else `missing_caption`), an http(s) URL with a host, normalized (else
/// `bad_url`, as `download` counts it).
fn check_row(
    url: &str,
    caption: Option<&str>,
    stats: &mut Stats,
) -> Result<(String, String), (&'static str, Option<String>)> {
    let Some(caption) = caption.and_then(openwit_urllist::clean_caption) else {
        stats.drops.inc("missing_caption");
        return Err((
            "missing_caption",
            Some("no caption once whitespace is removed".into()),
        ));
    };
    match openwit_urllist::check_url(url) {
        Ok(u) => Ok((u, caption)),
        Err(e) => {
            stats.drops.inc(openwit_urllist::BAD_URL);
            Err((openwit_urllist::BAD_URL, Some(e)))
        }
    }
}

/// Longest `detail` kept in a listing row (characters).
const MAX_DETAIL_CHARS: usize = 500;

/// The listing row of the entry at `at` of `source_id`, dropped for `reason`.
fn listed_row(
    source_id: &str,
    at: openwit_urllist::Position,
    fmt: Format,
    reason: &str,
    detail: Option<String>,
) -> DroppedRow {
    DroppedRow {
        input: Some(source_id.to_string()),
        row: Some(at.index),
        line: (fmt != Format::Parquet && at.line > 0).then_some(at.line),
        offset: at.offset,
        detail: detail.map(|d| clip(&d, MAX_DETAIL_CHARS).to_string()),
        ..DroppedRow::new(reason)
    }
}

fn row(url: String, caption: String, source_id: &str, extra: Option<String>) -> Candidate {
    Candidate {
        url,
        caption,
        caption_source: CaptionSource::List,
        page_url: None,
        page_lang: None,
        width: None,
        height: None,
        source_id: source_id.to_string(),
        fetch_time: None,
        extra,
    }
}

/// Reads one input file with the shared URL-list reader, calling `sink` for each good row and
/// counting the bad ones (the reader's drop reasons, then `missing_caption` and `bad_url`). A file that breaks midway keeps the rows before the break and records the
/// error in `stats.error`; a file without rows says so in `stats.empty`.
pub fn read_file(
    path: &Path,
    fmt: Format,
    gz: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    read_file_listed(path, fmt, gz, cols, source_id, stats, sink, None)
}

/// [`read_file`] that also hands every drop it counts to `dropped`, when given: one
/// [`DroppedRow`] per counted drop, with the file (`source_id`), the row's index, line and byte
/// offset, the URL and caption as read when the row had them, and the reader's message.
pub fn read_file_listed(
    path: &Path,
    fmt: Format,
    gz: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
    mut dropped: Option<&mut dyn FnMut(DroppedRow) -> Result<(), SourcesError>>,
) -> Result<(), SourcesError> {
    let file = openwit_urllist::ListFile {
        path: path.to_path_buf(),
        format: fmt,
        gzip: gz,
    };
    if gz && fmt == Format::Parquet {
        return Err(SourcesError::Input(format!(
            "{}: gzip-compressed parquet is not supported (parquet compresses its pages itself); decompress it first",
            path.display()
        )));
    }
    let mut reader =
        openwit_urllist::Reader::open(&file, &cols.reader_columns()).map_err(|e| match e {
            openwit_urllist::ListError::Config(m) => SourcesError::Config(m),
            openwit_urllist::ListError::Input(m) => SourcesError::Input(m),
        })?;
    let mut logged = 0;
    while let Some(e) = reader.next_entry() {
        stats.rows += 1;
        let r = match e.row {
            Ok(r) => r,
            Err(d) => {
                stats.drops.inc(d.reason.reason());
                if let Some(list) = dropped.as_deref_mut() {
                    list(listed_row(
                        source_id,
                        e.at,
                        fmt,
                        d.reason.reason(),
                        Some(d.message.clone()),
                    ))?;
                }
                if matches!(
                    d.reason,
                    openwit_urllist::Drop::TruncatedFile
                        | openwit_urllist::Drop::UnreadableRowGroup
                ) && stats.error.is_none()
                {
                    stats.error = Some(d.message.clone());
                }
                if logged < 5 {
                    logged += 1;
                    tracing::debug!("dropped: {}", d.message);
                }
                continue;
            }
        };
        let (u, c) = match check_row(&r.url, r.caption.as_deref(), stats) {
            Ok(ok) => ok,
            Err((reason, detail)) => {
                if let Some(list) = dropped.as_deref_mut() {
                    let (url, cut) = clip_url(&r.url);
                    list(DroppedRow {
                        url: Some(url),
                        caption: r.caption.as_deref().map(clip_caption),
                        ..listed_row(source_id, e.at, fmt, reason, detail.or(cut))
                    })?;
                }
                continue;
            }
        };
        sink(row(u, c, source_id, openwit_urllist::extra_json(&r.extra)))?;
    }
    stats.empty = reader.empty();
    if let Some(why) = &stats.empty {
        tracing::warn!(file = %path.display(), "{why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[allow(unused)]
fn _assert_send(_: Arc<ImportStage>) {}

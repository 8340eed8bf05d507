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
//! ```

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use openwit_core::{Drops, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::candidate::{Candidate, CandidateWriter, CaptionSource};
use crate::error::{IoAt, SourcesError};

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

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Tsv,
    Jsonl,
    Json,
}

impl Format {
    /// The format of `path` from its extension (a trailing `.gz` is looked through).
    pub fn from_path(path: &Path) -> Option<(Format, bool)> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let (name, gz) = match name.strip_suffix(".gz") {
            Some(n) => (n.to_string(), true),
            None => (name, false),
        };
        let ext = name.rsplit('.').next()?;
        let f = match ext {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            _ => return None,
        };
        Some((f, gz))
    }
    fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "tsv" => Format::Tsv,
            "jsonl" => Format::Jsonl,
            "json" => Format::Json,
            _ => return None,
        })
    }
}

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
            let meta = std::fs::metadata(&p).map_err(|e| {
                SourcesError::Config(format!(
                    "[import] input {}: {e}; fix: give an existing file or folder (relative to the pipeline file)",
                    p.display()
                ))
            })?;
            let mut add = |f: PathBuf, explicit: bool| -> Result<(), SourcesError> {
                let gz = f.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
                match (forced, Format::from_path(&f)) {
                    (Some(fmt), _) => out.push((f, fmt, gz)),
                    (None, Some((fmt, gz))) => out.push((f, fmt, gz)),
                    (None, None) if explicit => {
                        return Err(SourcesError::Config(format!(
                            "[import] cannot tell the format of {}; fix: name it *.parquet, *.csv, *.tsv, *.jsonl or *.json (optionally .gz) or set format",
                            f.display()
                        )));
                    }
                    _ => {}
                }
                Ok(())
            };
            if meta.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                    .at(p.display())?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|e| e.is_file())
                    .collect();
                entries.sort();
                for e in entries {
                    add(e, false)?;
                }
            } else {
                add(p, true)?;
            }
        }
        Ok(out)
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
        read_file(&path, fmt, gz, &cols, &source_id, &mut stats, &mut sink)?;
        let (n, mut f) = w.finish()?;
        use std::io::Write;
        f.flush().map_err(|e| openwit_core::Error::io(&path, e))?;
        Ok(TaskReport {
            items_in: stats.rows,
            items_out: n,
            drops: stats.drops,
            extra: json!({"source": source_id, "error": stats.error}),
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
    fn carries(&self, name: &str) -> bool {
        name != self.url
            && name != self.caption
            && self.extra.as_ref().is_none_or(|s| s.contains(name))
    }
}

/// Rows read, drops, and the error that stopped a file early (a truncated or malformed file).
#[derive(Debug, Default)]
pub struct Stats {
    pub rows: u64,
    pub drops: Drops,
    pub error: Option<String>,
}

fn check_row(
    url: Option<&str>,
    caption: Option<&str>,
    stats: &mut Stats,
) -> Option<(String, String)> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        stats.drops.inc("missing_url");
        return None;
    };
    let Some(caption) = caption.and_then(crate::extract::clean_text) else {
        stats.drops.inc("missing_caption");
        return None;
    };
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Some((u.to_string(), caption))
        }
        Ok(_) => {
            stats.drops.inc("non_http_url");
            None
        }
        Err(_) => {
            stats.drops.inc("invalid_url");
            None
        }
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

fn open_text(path: &Path, gz: bool) -> Result<Box<dyn BufRead>, SourcesError> {
    let f = File::open(path).at(path.display())?;
    let r: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            f,
        )))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, r)))
}

/// Reads one input file, calling `sink` for each good row and counting the bad ones.
/// A file that breaks midway (truncated gzip, malformed JSON) keeps the rows before the break
/// and records the error in `stats.error`.
pub fn read_file(
    path: &Path,
    fmt: Format,
    gz: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    match fmt {
        Format::Parquet => {
            if gz {
                return Err(SourcesError::Input(format!(
                    "{}: gzip-compressed parquet is not supported (parquet compresses its pages itself); decompress it first",
                    path.display()
                )));
            }
            read_parquet(path, cols, source_id, stats, sink)
        }
        Format::Csv | Format::Tsv => {
            read_csv(path, gz, fmt == Format::Tsv, cols, source_id, stats, sink)
        }
        Format::Jsonl => read_jsonl(path, gz, cols, source_id, stats, sink),
        Format::Json => read_json(path, gz, cols, source_id, stats, sink),
    }
}

fn string_col(a: &ArrayRef) -> Result<ArrayRef, SourcesError> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.clone(),
        _ => arrow::compute::cast(a, &DataType::Utf8)?,
    })
}

fn json_value(a: &ArrayRef, fmt: &ArrayFormatter<'_>, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => fmt
            .value(i)
            .to_string()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(Value::Null),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => fmt
            .value(i)
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => Value::String(fmt.value(i).to_string()),
    }
}

/// Where column `name` is among `names`; else a config error at `at` (the file, or its header
/// line) naming the columns there are and the `[import]` key that chooses the column.
fn column_index(names: &[String], name: &str, key: &str, at: &str) -> Result<usize, SourcesError> {
    names.iter().position(|x| x == name).ok_or_else(|| {
        SourcesError::Config(format!(
            "{at}: no column `{name}` (columns: {}); fix: set [import] {key}",
            names.join(", ")
        ))
    })
}

fn read_parquet(
    path: &Path,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    let f = File::open(path).at(path.display())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
        SourcesError::Input(format!(
            "{}: not a readable parquet file: {e}",
            path.display()
        ))
    })?;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let at = path.display().to_string();
    let url_i = column_index(&names, &cols.url, "url_col", &at)?;
    let cap_i = column_index(&names, &cols.caption, "caption_col", &at)?;
    // Only top-level leaf columns are projected; nested extras are carried as their text form.
    let mut keep: Vec<usize> = vec![url_i, cap_i];
    keep.extend((0..names.len()).filter(|&i| cols.carries(&names[i])));
    keep.sort();
    let mask = ProjectionMask::roots(builder.parquet_schema(), keep.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()?;
    for batch in reader {
        let batch: RecordBatch = match batch {
            Ok(b) => b,
            Err(e) => {
                stats.error = Some(format!("{}: {e}", path.display()));
                stats.drops.inc("unreadable_row_group");
                break;
            }
        };
        let bs = batch.schema();
        let col = |n: &str| bs.index_of(n).ok().map(|i| batch.column(i).clone());
        let urls = string_col(&col(&cols.url).unwrap())?;
        let caps = string_col(&col(&cols.caption).unwrap())?;
        let urls = urls.as_string::<i32>();
        let caps = caps.as_string::<i32>();
        let extras: Vec<(String, ArrayRef)> = bs
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| cols.carries(f.name()))
            .map(|(i, f)| (f.name().clone(), batch.column(i).clone()))
            .collect();
        let opts = FormatOptions::default();
        let fmts: Vec<ArrayFormatter<'_>> = extras
            .iter()
            .map(|(_, a)| ArrayFormatter::try_new(a.as_ref(), &opts))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            stats.rows += 1;
            let u = (!urls.is_null(i)).then(|| urls.value(i));
            let c = (!caps.is_null(i)).then(|| caps.value(i));
            let Some((u, c)) = check_row(u, c, stats) else {
                continue;
            };
            let extra = (!extras.is_empty()).then(|| {
                let mut m = Map::new();
                for ((name, a), f) in extras.iter().zip(&fmts) {
                    m.insert(name.clone(), json_value(a, f, i));
                }
                Value::Object(m).to_string()
            });
            sink(row(u, c, source_id, extra))?;
        }
    }
    Ok(())
}

fn read_csv(
    path: &Path,
    gz: bool,
    tsv: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(if tsv { b'\t' } else { b',' })
        .quoting(!tsv)
        .flexible(true)
        .from_reader(open_text(path, gz)?);
    let headers = rdr
        .byte_headers()
        .map_err(|e| {
            SourcesError::Input(format!(
                "{}: cannot read the header line: {e}",
                path.display()
            ))
        })?
        .clone();
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    // the header is line 1
    let at = format!("{}:1", path.display());
    let url_i = column_index(&names, &cols.url, "url_col", &at)?;
    let cap_i = column_index(&names, &cols.caption, "caption_col", &at)?;
    let extra_i: Vec<usize> = (0..names.len())
        .filter(|&i| cols.carries(&names[i]))
        .collect();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    stats.error = Some(format!("{}: {e}", path.display()));
                    stats.drops.inc("truncated_file");
                    break;
                }
                stats.rows += 1;
                stats.drops.inc("malformed_row");
                continue;
            }
        }
        stats.rows += 1;
        let get = |i: usize| rec.get(i).and_then(|b| std::str::from_utf8(b).ok());
        if rec.get(url_i).is_some() && get(url_i).is_none()
            || rec.get(cap_i).is_some() && get(cap_i).is_none()
        {
            stats.drops.inc("invalid_utf8");
            continue;
        }
        let Some((u, c)) = check_row(get(url_i), get(cap_i), stats) else {
            continue;
        };
        let extra = (!extra_i.is_empty()).then(|| {
            let mut m = Map::new();
            for &i in &extra_i {
                let v = rec
                    .get(i)
                    .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                    .unwrap_or(Value::Null);
                m.insert(names[i].clone(), v);
            }
            Value::Object(m).to_string()
        });
        sink(row(u, c, source_id, extra))?;
    }
    Ok(())
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_row(
    obj: &Map<String, Value>,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
) -> Option<Candidate> {
    let u = text_of(obj.get(&cols.url));
    let c = text_of(obj.get(&cols.caption));
    let (u, c) = check_row(u.as_deref(), c.as_deref(), stats)?;
    let mut m = Map::new();
    for (k, v) in obj {
        if cols.carries(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    let extra = match &cols.extra {
        Some(s) if s.is_empty() => None,
        _ if m.is_empty() => None,
        _ => Some(Value::Object(m).to_string()),
    };
    Some(row(u, c, source_id, extra))
}

/// Longest JSONL line read; longer lines are dropped (`line_too_long`).
pub const MAX_LINE_BYTES: usize = 16 << 20;

fn read_jsonl(
    path: &Path,
    gz: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    let mut r = open_text(path, gz)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(e) => {
                stats.error = Some(format!("{}: {e}", path.display()));
                stats.drops.inc("truncated_file");
                break;
            }
        };
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") {
            stats.rows += 1;
            stats.drops.inc("line_too_long");
            // skip the rest of the line
            let mut sink_buf = Vec::new();
            loop {
                sink_buf.clear();
                let k = (&mut r)
                    .take(1 << 20)
                    .read_until(b'\n', &mut sink_buf)
                    .unwrap_or(0);
                if k == 0 || sink_buf.ends_with(b"\n") {
                    break;
                }
            }
            continue;
        }
        let t = line.trim_ascii();
        if t.is_empty() {
            continue;
        }
        stats.rows += 1;
        match serde_json::from_slice::<Map<String, Value>>(t) {
            Ok(obj) => {
                if let Some(c) = json_row(&obj, cols, source_id, stats) {
                    sink(c)?;
                }
            }
            Err(_) => stats.drops.inc("malformed_json"),
        }
    }
    Ok(())
}

fn read_json(
    path: &Path,
    gz: bool,
    cols: &Columns,
    source_id: &str,
    stats: &mut Stats,
    sink: &mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
) -> Result<(), SourcesError> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};
    struct Rows<'a> {
        cols: &'a Columns,
        source_id: &'a str,
        stats: &'a mut Stats,
        sink: &'a mut dyn FnMut(Candidate) -> Result<(), SourcesError>,
        failed: Option<SourcesError>,
    }
    impl<'de> Visitor<'de> for &mut Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<Value>()? {
                self.stats.rows += 1;
                let Value::Object(obj) = v else {
                    self.stats.drops.inc("not_an_object");
                    continue;
                };
                if let Some(c) = json_row(&obj, self.cols, self.source_id, self.stats)
                    && let Err(e) = (self.sink)(c)
                {
                    self.failed = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for &mut Rows<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let r = open_text(path, gz)?;
    let mut de = serde_json::Deserializer::from_reader(r);
    let mut rows = Rows {
        cols,
        source_id,
        stats,
        sink,
        failed: None,
    };
    let res = (&mut rows).deserialize(&mut de);
    if let Some(e) = rows.failed {
        return Err(e);
    }
    if let Err(e) = res {
        if stats.rows == 0 && e.is_data() {
            return Err(SourcesError::Input(format!(
                "{}:{}:{}: {e}; fix: a .json input holds one array of objects (use .jsonl for one object per line)",
                path.display(),
                e.line(),
                e.column()
            )));
        }
        stats.drops.inc("truncated_file");
        stats.error = Some(format!(
            "{}:{}:{}: {e}",
            path.display(),
            e.line(),
            e.column()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
#[allow(unused)]
fn _assert_send(_: Arc<ImportStage>) {}

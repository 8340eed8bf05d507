//! Inputs: the curated table (kept rows) or a URL list (parquet, csv, tsv, jsonl; each may be
//! gzipped). Planning streams every file once and cuts the rows into shards of `shard_size`
//! (a shard may span files); a shard task then reads only its own slice — parquet by row offset,
//! plain csv/tsv/jsonl by the byte offset recorded at planning — so memory stays flat whatever the
//! input size.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, BooleanArray, RecordBatch};
use openwit_core::artifact::curated;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, InputFormat};

/// One row to download.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    pub url: String,
    pub caption: Option<String>,
    pub entry_ids: Option<Vec<i32>>,
    /// The caption's language (the curated table's `language`; `None` for URL lists).
    pub language: Option<String>,
    pub extra: BTreeMap<String, Value>,
    /// A URL-list row the reader dropped (not UTF-8, malformed CSV/JSON, no URL, ...): its
    /// reason and message. The row keeps its place (and key) and is recorded as a failure.
    pub dropped: Option<(&'static str, String)>,
}

/// An input file and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: InputFormat,
    pub gzip: bool,
    /// The curated table: only rows with `kept = true` count.
    pub curated: bool,
}

/// A slice of one file: rows `skip .. skip + take` (counting only kept rows for the curated
/// table); `byte_offset` is where row `skip` starts in a plain text file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub file: InputFile,
    pub skip: u64,
    pub take: u64,
    #[serde(default)]
    pub byte_offset: Option<u64>,
    /// The line row `skip` starts on (text files), for messages.
    #[serde(default)]
    pub line: u64,
}

/// An input error, with the file (and row when known) and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InputError {
    pub path: PathBuf,
    pub message: String,
}

fn ie(path: &Path, message: impl Into<String>) -> InputError {
    InputError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Resolves the format of `path` (`auto` looks at the extension, after `.gz`).
pub fn file_format(
    path: &Path,
    configured: InputFormat,
) -> Result<(InputFormat, bool), InputError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(s) => (s.to_string(), true),
        None => (name.clone(), false),
    };
    if configured != InputFormat::Auto {
        return Ok((configured, gzip));
    }
    let f = if stem.ends_with(".parquet") {
        InputFormat::Parquet
    } else if stem.ends_with(".csv") {
        InputFormat::Csv
    } else if stem.ends_with(".tsv") || stem.ends_with(".tab") {
        InputFormat::Tsv
    } else if stem.ends_with(".jsonl") || stem.ends_with(".json") || stem.ends_with(".ndjson") {
        InputFormat::Jsonl
    } else {
        return Err(ie(
            path,
            "cannot tell the format from the extension; set [download] input_format to parquet, csv, tsv or jsonl",
        ));
    };
    if gzip && f == InputFormat::Parquet {
        return Err(ie(
            path,
            "gzipped parquet is not supported; parquet compresses itself",
        ));
    }
    Ok((f, gzip))
}

/// The `[download]` keys, named in the URL-list reader's messages.
pub const KEYS: openwit_urllist::Keys = openwit_urllist::Keys {
    table: "[download]",
    format: "input_format",
    url: "url_col",
    caption: "caption_col",
};

fn forced_format(cfg: &Config) -> Option<openwit_urllist::Format> {
    use openwit_urllist::Format as F;
    match cfg.input_format {
        InputFormat::Auto => None,
        InputFormat::Parquet => Some(F::Parquet),
        InputFormat::Csv => Some(F::Csv),
        InputFormat::Tsv => Some(F::Tsv),
        InputFormat::Jsonl => Some(F::Jsonl),
    }
}

/// The URL-list files at `input` (a file, or a folder read in sorted order; hidden files and
/// files whose format the name does not tell are skipped).
pub fn list_url_files(input: &Path, cfg: &Config) -> Result<Vec<InputFile>, InputError> {
    if !input.exists() {
        return Err(ie(
            input,
            "no such file or folder; fix [download] input (a URL-list file or folder, relative to the pipeline file, or \"curate\")",
        ));
    }
    let files = openwit_urllist::list(input, forced_format(cfg), &KEYS)
        .map_err(|e| ie(input, e.to_string()))?;
    Ok(files
        .into_iter()
        .map(|f| InputFile {
            path: f.path,
            format: match f.format {
                openwit_urllist::Format::Parquet => InputFormat::Parquet,
                openwit_urllist::Format::Csv => InputFormat::Csv,
                openwit_urllist::Format::Tsv => InputFormat::Tsv,
                openwit_urllist::Format::Jsonl | openwit_urllist::Format::Json => {
                    InputFormat::Jsonl
                }
            },
            gzip: f.gzip,
            curated: false,
        })
        .collect())
}

/// How the shared reader reads `f`: a `.json` file read with `input_format = "auto"` may be an
/// array of objects or JSON Lines.
fn list_file(f: &InputFile, cfg: &Config) -> openwit_urllist::ListFile {
    use openwit_urllist::Format as F;
    let format = match (cfg.input_format, f.format) {
        (InputFormat::Auto, _) => F::from_path(&f.path).map_or(F::Jsonl, |(x, _)| x),
        (_, InputFormat::Parquet) => F::Parquet,
        (_, InputFormat::Csv) => F::Csv,
        (_, InputFormat::Tsv) => F::Tsv,
        _ => F::Jsonl,
    };
    openwit_urllist::ListFile {
        path: f.path.clone(),
        format,
        gzip: f.gzip,
    }
}

fn reader_columns(cfg: &Config) -> openwit_urllist::Columns {
    openwit_urllist::Columns {
        url: cfg.url_col.clone(),
        caption: cfg.caption_col.clone(),
        caption_required: false,
        extra: openwit_urllist::Extra::Named(cfg.save_additional_columns.clone()),
        keys: KEYS,
    }
}

/// Calls `on_row(position)` for every (kept) row of `f`, in order: for a URL list, every row
/// the shared reader gives, dropped ones included (they keep their place and key). Offsets are
/// `None` for parquet and gzipped files.
pub fn scan_rows(
    f: &InputFile,
    cfg: &Config,
    mut on_row: impl FnMut(openwit_urllist::Position),
) -> Result<u64, InputError> {
    let mut n = 0u64;
    if !f.curated {
        let mut r = openwit_urllist::Reader::open(&list_file(f, cfg), &reader_columns(cfg))
            .map_err(|e| ie(&f.path, e.to_string()))?;
        while let Some(p) = r.next_position() {
            on_row(p);
            n += 1;
        }
        if let Some(why) = r.empty() {
            tracing::warn!(file = %f.path.display(), "{why}: it adds no rows");
        }
        return Ok(n);
    }
    let file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| ie(&f.path, format!("not a readable parquet file: {e}")))?;
    let mask = projection(&b, &[curated::KEPT]);
    let r = b
        .with_projection(mask)
        .build()
        .map_err(|e| ie(&f.path, e.to_string()))?;
    for batch in r {
        let batch = batch.map_err(|e| ie(&f.path, e.to_string()))?;
        let kept = kept_column(&batch, &f.path)?;
        for i in 0..batch.num_rows() {
            if kept.is_valid(i) && kept.value(i) {
                on_row(openwit_urllist::Position {
                    index: n,
                    line: 0,
                    offset: None,
                });
                n += 1;
            }
        }
    }
    Ok(n)
}

fn projection(b: &ParquetRecordBatchReaderBuilder<File>, names: &[&str]) -> ProjectionMask {
    let schema = b.parquet_schema();
    let roots: Vec<usize> = b
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| names.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    ProjectionMask::roots(schema, roots)
}

fn kept_column<'a>(batch: &'a RecordBatch, path: &Path) -> Result<&'a BooleanArray, InputError> {
    batch
        .column_by_name(curated::KEPT)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .ok_or_else(|| ie(path, "the curated table has no boolean `kept` column"))
}

/// Cuts the rows of `files` into shards of `shard_size` rows.
pub fn plan_segments(
    files: &[InputFile],
    shard_size: u64,
    cfg: &Config,
) -> Result<Vec<Vec<Segment>>, InputError> {
    let mut shards: Vec<Vec<Segment>> = Vec::new();
    let mut in_shard = 0u64;
    for f in files {
        let mut local = 0u64;
        scan_rows(f, cfg, |pos| {
            if in_shard == 0 {
                shards.push(Vec::new());
            }
            let cur = shards.last_mut().expect("pushed above");
            match cur.last_mut() {
                Some(seg) if seg.file.path == f.path => seg.take += 1,
                _ => cur.push(Segment {
                    file: f.clone(),
                    skip: local,
                    take: 1,
                    byte_offset: pos.offset,
                    line: pos.line,
                }),
            }
            local += 1;
            in_shard += 1;
            if in_shard == shard_size {
                in_shard = 0;
            }
        })?;
    }
    Ok(shards)
}

/// Converts one arrow value to JSON (strings, numbers, booleans, lists of them; others as text).
fn arrow_value(col: &dyn Array, i: usize) -> Value {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as D;
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        D::Utf8 => Value::String(col.as_string::<i32>().value(i).to_string()),
        D::LargeUtf8 => Value::String(col.as_string::<i64>().value(i).to_string()),
        D::Utf8View => Value::String(col.as_string_view().value(i).to_string()),
        D::Boolean => Value::Bool(col.as_boolean().value(i)),
        D::Int8 => col.as_primitive::<Int8Type>().value(i).into(),
        D::Int16 => col.as_primitive::<Int16Type>().value(i).into(),
        D::Int32 => col.as_primitive::<Int32Type>().value(i).into(),
        D::Int64 => col.as_primitive::<Int64Type>().value(i).into(),
        D::UInt8 => col.as_primitive::<UInt8Type>().value(i).into(),
        D::UInt16 => col.as_primitive::<UInt16Type>().value(i).into(),
        D::UInt32 => col.as_primitive::<UInt32Type>().value(i).into(),
        D::UInt64 => col.as_primitive::<UInt64Type>().value(i).into(),
        D::Float32 => serde_json::json!(col.as_primitive::<Float32Type>().value(i)),
        D::Float64 => serde_json::json!(col.as_primitive::<Float64Type>().value(i)),
        D::List(_) => {
            let v = col.as_list::<i32>().value(i);
            Value::Array((0..v.len()).map(|j| arrow_value(v.as_ref(), j)).collect())
        }
        D::LargeList(_) => {
            let v = col.as_list::<i64>().value(i);
            Value::Array((0..v.len()).map(|j| arrow_value(v.as_ref(), j)).collect())
        }
        _ => openwit_urllist::values::text(col, i)
            .map(|t| Value::String(t.into_owned()))
            .unwrap_or(Value::Null),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn entry_ids_of(v: &Value) -> Option<Vec<i32>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_i64())
                .map(|x| x as i32)
                .collect(),
        ),
        _ => None,
    }
}

/// Maps a record (column -> value) into an [`InputRow`]; `None` when the URL is missing.
fn to_row(get: &dyn Fn(&str) -> Option<Value>, cfg: &Config, curated: bool) -> Option<InputRow> {
    let url_col = if curated { "url" } else { cfg.url_col.as_str() };
    let url = get(url_col).as_ref().and_then(text_of)?.trim().to_string();
    let caption = if curated {
        get("caption").as_ref().and_then(text_of)
    } else {
        cfg.caption_col
            .as_deref()
            .and_then(|c| get(c).as_ref().and_then(text_of))
    };
    let entry_ids = get(curated::ENTRY_IDS).as_ref().and_then(entry_ids_of);
    let language = if curated {
        get(curated::LANGUAGE).as_ref().and_then(text_of)
    } else {
        None
    };
    let mut extra = BTreeMap::new();
    for c in &cfg.save_additional_columns {
        extra.insert(c.clone(), get(c).unwrap_or(Value::Null));
    }
    Some(InputRow {
        url,
        caption,
        entry_ids,
        language,
        extra,
        dropped: None,
    })
}

/// A URL list's slice, through the shared reader: a dropped row stays in place with an empty
/// URL and its reason.
fn read_list_segment(seg: &Segment, cfg: &Config) -> Result<Vec<InputRow>, InputError> {
    let f = &seg.file;
    let at = openwit_urllist::Position {
        index: seg.skip,
        line: seg.line,
        offset: seg.byte_offset,
    };
    let r = openwit_urllist::Reader::open_at(&list_file(f, cfg), &reader_columns(cfg), at)
        .map_err(|e| ie(&f.path, e.to_string()))?;
    let rows: Vec<InputRow> = r
        .take(seg.take as usize)
        .map(|e| match e.row {
            // The URL and caption as `import` keeps them (one check for both stages): a URL that
            // is not http(s) stays in its row, a `bad_url` failure before any request.
            Ok(row) => {
                let caption = row
                    .caption
                    .as_deref()
                    .and_then(openwit_urllist::clean_caption);
                let (url, dropped) = match openwit_urllist::check_url(&row.url) {
                    Ok(u) => (u, None),
                    Err(m) => (row.url, Some((openwit_urllist::BAD_URL, m))),
                };
                InputRow {
                    url,
                    caption,
                    entry_ids: None,
                    language: None,
                    extra: row.extra,
                    dropped,
                }
            }
            Err(d) => InputRow {
                dropped: Some((d.reason.reason(), d.message)),
                ..empty_row(cfg)
            },
        })
        .collect();
    if (rows.len() as u64) < seg.take {
        return Err(ie(
            &f.path,
            format!(
                "{} rows from row {} were planned but only {} are there now; the file changed since planning (fix: restore it, or start a fresh workdir)",
                seg.take,
                seg.skip + 1,
                rows.len()
            ),
        ));
    }
    Ok(rows)
}

/// A row with no URL, caption or entries, and every saved column null (a dropped or URL-less row
/// keeps its key so keys stay aligned with input rows).
fn empty_row(cfg: &Config) -> InputRow {
    InputRow {
        url: String::new(),
        caption: None,
        entry_ids: None,
        language: None,
        extra: cfg
            .save_additional_columns
            .iter()
            .map(|c| (c.clone(), Value::Null))
            .collect(),
        dropped: None,
    }
}

/// Reads a segment's rows. A row without a URL is kept as an empty URL (it fails as `bad_url`),
/// so keys stay aligned with input rows.
pub fn read_segment(seg: &Segment, cfg: &Config) -> Result<Vec<InputRow>, InputError> {
    let f = &seg.file;
    if !f.curated {
        return read_list_segment(seg, cfg);
    }
    let mut rows = Vec::with_capacity(seg.take as usize);
    match f.format {
        InputFormat::Parquet => {
            let file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| ie(&f.path, format!("not a readable parquet file: {e}")))?;
            let mut names: Vec<&str> = if f.curated {
                vec![
                    "url",
                    "caption",
                    curated::ENTRY_IDS,
                    curated::LANGUAGE,
                    curated::KEPT,
                ]
            } else {
                let mut v = vec![cfg.url_col.as_str()];
                if let Some(c) = &cfg.caption_col {
                    v.push(c);
                }
                v.push(curated::ENTRY_IDS);
                v
            };
            names.extend(cfg.save_additional_columns.iter().map(String::as_str));
            let url_col = if f.curated {
                "url"
            } else {
                cfg.url_col.as_str()
            };
            if !b.schema().fields().iter().any(|x| x.name() == url_col) {
                return Err(ie(
                    &f.path,
                    format!("no column `{url_col}`; set [download] url_col to the URL column"),
                ));
            }
            let mask = projection(&b, &names);
            let mut b = b.with_projection(mask).with_batch_size(4096);
            if !f.curated {
                b = b
                    .with_offset(seg.skip as usize)
                    .with_limit(seg.take as usize);
            }
            let r = b.build().map_err(|e| ie(&f.path, e.to_string()))?;
            let mut seen = 0u64;
            for batch in r {
                let batch = batch.map_err(|e| ie(&f.path, e.to_string()))?;
                let kept = if f.curated {
                    Some(kept_column(&batch, &f.path)?)
                } else {
                    None
                };
                for i in 0..batch.num_rows() {
                    if let Some(k) = kept {
                        if !(k.is_valid(i) && k.value(i)) {
                            continue;
                        }
                        seen += 1;
                        if seen <= seg.skip {
                            continue;
                        }
                    }
                    if rows.len() as u64 >= seg.take {
                        break;
                    }
                    let get = |name: &str| {
                        batch
                            .column_by_name(name)
                            .map(|c| arrow_value(c.as_ref(), i))
                    };
                    rows.push(to_row(&get, cfg, f.curated).unwrap_or_else(|| empty_row(cfg)));
                }
                if rows.len() as u64 >= seg.take {
                    break;
                }
            }
        }
        _ => {
            return Err(ie(&f.path, "the curated table is read as parquet only"));
        }
    }
    Ok(rows)
}

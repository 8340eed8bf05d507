//! Inputs: the curated table (kept rows) or a URL list (parquet, csv, tsv, jsonl; each may be
//! gzipped). Planning streams every file once and cuts the rows into shards of `shard_size`
//! (a shard may span files); a shard task then reads only its own slice — parquet by row offset,
//! plain csv/tsv/jsonl by the byte offset recorded at planning — so memory stays flat whatever the
//! input size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow_array::{Array, BooleanArray, RecordBatch};
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

/// The URL-list files at `input` (a file, or a folder read in sorted order, hidden files skipped).
pub fn list_url_files(input: &Path, cfg: &Config) -> Result<Vec<InputFile>, InputError> {
    let mut paths = Vec::new();
    if input.is_dir() {
        let rd = std::fs::read_dir(input).map_err(|e| ie(input, e.to_string()))?;
        for e in rd {
            let e = e.map_err(|e| ie(input, e.to_string()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().is_file() {
                paths.push(e.path());
            }
        }
        paths.sort();
    } else if input.is_file() {
        paths.push(input.to_path_buf());
    } else {
        return Err(ie(
            input,
            "no such file or folder; fix [download] input (a URL-list file or folder, relative to the pipeline file, or \"curate\")",
        ));
    }
    paths
        .into_iter()
        .map(|p| {
            let (format, gzip) = file_format(&p, cfg.input_format)?;
            Ok(InputFile {
                path: p,
                format,
                gzip,
                curated: false,
            })
        })
        .collect()
}

fn open_text(f: &InputFile) -> Result<Box<dyn BufRead>, InputError> {
    let file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
    Ok(if f.gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

fn delimiter(f: &InputFile) -> u8 {
    if f.format == InputFormat::Tsv {
        b'\t'
    } else {
        b','
    }
}

/// Calls `on_row(byte_offset)` for every (kept) row of `f`, in order. Offsets are `None` for
/// parquet and gzipped files.
pub fn scan_rows(f: &InputFile, mut on_row: impl FnMut(Option<u64>)) -> Result<u64, InputError> {
    let mut n = 0u64;
    match f.format {
        InputFormat::Parquet => {
            let file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| ie(&f.path, format!("not a readable parquet file: {e}")))?;
            if !f.curated {
                let rows = b.metadata().file_metadata().num_rows().max(0) as u64;
                for _ in 0..rows {
                    on_row(None);
                }
                return Ok(rows);
            }
            let mask = projection(&b, &["kept"]);
            let r = b
                .with_projection(mask)
                .build()
                .map_err(|e| ie(&f.path, e.to_string()))?;
            for batch in r {
                let batch = batch.map_err(|e| ie(&f.path, e.to_string()))?;
                let kept = kept_column(&batch, &f.path)?;
                for i in 0..batch.num_rows() {
                    if kept.is_valid(i) && kept.value(i) {
                        on_row(None);
                        n += 1;
                    }
                }
            }
        }
        InputFormat::Csv | InputFormat::Tsv => {
            let rd = open_text(f)?;
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter(f))
                .flexible(true)
                .from_reader(rd);
            r.byte_headers()
                .map_err(|e| ie(&f.path, format!("line 1 (header): {e}")))?;
            let mut rec = csv::ByteRecord::new();
            loop {
                let pos = r.position().byte();
                match r.read_byte_record(&mut rec) {
                    Ok(true) => {
                        on_row((!f.gzip).then_some(pos));
                        n += 1;
                    }
                    Ok(false) => break,
                    Err(e) => return Err(ie(&f.path, format!("row {}: {e}", n + 2))),
                }
            }
        }
        InputFormat::Jsonl => {
            let mut rd = open_text(f)?;
            let mut pos = 0u64;
            let mut line = Vec::new();
            loop {
                line.clear();
                let got = rd
                    .read_until(b'\n', &mut line)
                    .map_err(|e| ie(&f.path, e.to_string()))?;
                if got == 0 {
                    break;
                }
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    on_row((!f.gzip).then_some(pos));
                    n += 1;
                }
                pos += got as u64;
            }
        }
        InputFormat::Auto => unreachable!("formats are resolved when listing"),
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
        .column_by_name("kept")
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .ok_or_else(|| ie(path, "the curated table has no boolean `kept` column"))
}

/// Cuts the rows of `files` into shards of `shard_size` rows.
pub fn plan_segments(
    files: &[InputFile],
    shard_size: u64,
) -> Result<Vec<Vec<Segment>>, InputError> {
    let mut shards: Vec<Vec<Segment>> = Vec::new();
    let mut in_shard = 0u64;
    for f in files {
        let mut local = 0u64;
        scan_rows(f, |off| {
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
                    byte_offset: off,
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
        _ => Value::String(arrow::util::display::array_value_to_string(col, i).unwrap_or_default()),
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
    let entry_ids = get("entry_ids").as_ref().and_then(entry_ids_of);
    let language = if curated {
        get("language").as_ref().and_then(text_of)
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
    })
}

/// Reads a segment's rows. A row without a URL is kept as an empty URL (it fails as `bad_url`),
/// so keys stay aligned with input rows.
pub fn read_segment(seg: &Segment, cfg: &Config) -> Result<Vec<InputRow>, InputError> {
    let f = &seg.file;
    let mut rows = Vec::with_capacity(seg.take as usize);
    let empty = |cfg: &Config| InputRow {
        url: String::new(),
        caption: None,
        entry_ids: None,
        language: None,
        extra: cfg
            .save_additional_columns
            .iter()
            .map(|c| (c.clone(), Value::Null))
            .collect(),
    };
    match f.format {
        InputFormat::Parquet => {
            let file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| ie(&f.path, format!("not a readable parquet file: {e}")))?;
            let mut names: Vec<&str> = if f.curated {
                vec!["url", "caption", "entry_ids", "language", "kept"]
            } else {
                let mut v = vec![cfg.url_col.as_str()];
                if let Some(c) = &cfg.caption_col {
                    v.push(c);
                }
                v.push("entry_ids");
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
                    rows.push(to_row(&get, cfg, f.curated).unwrap_or_else(|| empty(cfg)));
                }
                if rows.len() as u64 >= seg.take {
                    break;
                }
            }
        }
        InputFormat::Csv | InputFormat::Tsv => {
            let header = {
                let mut r = csv::ReaderBuilder::new()
                    .delimiter(delimiter(f))
                    .flexible(true)
                    .from_reader(open_text(f)?);
                r.headers()
                    .map_err(|e| ie(&f.path, format!("header: {e}")))?
                    .clone()
            };
            let col = |name: &str| header.iter().position(|h| h == name);
            if col(&cfg.url_col).is_none() {
                return Err(ie(
                    &f.path,
                    format!(
                        "line 1: no column `{}` in the header ({}); set [download] url_col",
                        cfg.url_col,
                        header.iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let (rd, skip): (Box<dyn Read>, u64) = match seg.byte_offset {
                Some(off) => {
                    let mut file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
                    file.seek(SeekFrom::Start(off))
                        .map_err(|e| ie(&f.path, e.to_string()))?;
                    (Box::new(BufReader::with_capacity(1 << 16, file)), 0)
                }
                None => {
                    let mut t = open_text(f)?;
                    // Skip the header line through the csv reader below instead.
                    let mut first = Vec::new();
                    let _ = t.read_until(b'\n', &mut first);
                    (Box::new(t), seg.skip)
                }
            };
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delimiter(f))
                .flexible(true)
                .has_headers(false)
                .from_reader(rd);
            let mut rec = csv::StringRecord::new();
            let mut i = 0u64;
            while (rows.len() as u64) < seg.take {
                match r.read_record(&mut rec) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        return Err(ie(&f.path, format!("row {}: {e}", seg.skip + i + 2)));
                    }
                }
                i += 1;
                if i <= skip {
                    continue;
                }
                let get = |name: &str| {
                    col(name)
                        .and_then(|c| rec.get(c))
                        .map(|s| Value::String(s.to_string()))
                };
                rows.push(to_row(&get, cfg, false).unwrap_or_else(|| empty(cfg)));
            }
        }
        InputFormat::Jsonl => {
            let (mut rd, skip): (Box<dyn BufRead>, u64) = match seg.byte_offset {
                Some(off) => {
                    let mut file = File::open(&f.path).map_err(|e| ie(&f.path, e.to_string()))?;
                    file.seek(SeekFrom::Start(off))
                        .map_err(|e| ie(&f.path, e.to_string()))?;
                    (Box::new(BufReader::with_capacity(1 << 16, file)), 0)
                }
                None => (open_text(f)?, seg.skip),
            };
            let mut line = String::new();
            let mut i = 0u64;
            while (rows.len() as u64) < seg.take {
                line.clear();
                let got = rd
                    .read_line(&mut line)
                    .map_err(|e| ie(&f.path, e.to_string()))?;
                if got == 0 {
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                i += 1;
                if i <= skip {
                    continue;
                }
                let v: Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(_) => {
                        // A broken line is a row that fails as bad_url (counted), not a crash.
                        rows.push(empty(cfg));
                        continue;
                    }
                };
                let get = |name: &str| v.get(name).cloned();
                rows.push(to_row(&get, cfg, false).unwrap_or_else(|| empty(cfg)));
            }
        }
        InputFormat::Auto => unreachable!("formats are resolved when listing"),
    }
    Ok(rows)
}

//! One reader for URL lists, shared by the `import` stage (openwit-sources) and the `download`
//! stage's URL-list input (openwit-fetch).
//!
//! Formats: CSV (RFC 4180), TSV (tab-separated, no quoting), JSON Lines, JSON (an array of
//! objects; a `.json` file whose first byte is not `[` is read as JSON Lines), each optionally
//! gzipped (`.gz`, several members allowed), and parquet. Columns are chosen by name
//! (img2dataset's `url_col` / `caption_col`); other columns can be carried as JSON values.
//!
//! Every row of a file is one [`Entry`] in order: either a [`Row`] or a counted [`Drop`] with
//! its reason and location, so a consumer that numbers rows (the download stage's sample keys)
//! stays aligned whatever breaks. A row that is not UTF-8, not valid CSV/JSON, or lacks its URL
//! (or a required caption) is a drop, never an error. Errors ([`ListError`]) are reserved for a
//! file that cannot be read at all or lacks a configured column altogether; they name the file,
//! the line and the key to change. What a text file yields after an I/O error (a truncated gzip
//! member) is one final `truncated_file` drop. [`Reader::empty`] says why a file gave no rows.
//!
//! What both stages then keep of a good row is decided here too: [`check_url`] (http(s) with a
//! host, normalized; else a `bad_url` drop) and [`clean_caption`] (whitespace collapsed).
//!
//! Each entry carries its [`Position`] (row index, line, byte offset in a plain text file), and
//! [`Reader::open_at`] resumes at one, so a large list can be cut into slices that are read
//! independently (the download stage's shards) without re-reading what comes before.
//!
//! Which entry a malformed row becomes, in order of precedence:
//! - CSV/TSV: `truncated_file`, `unterminated_quote`, `bad_quote`, `record_too_long`,
//!   `field_count` (a record with more or fewer fields than the header), `invalid_utf8` (any
//!   field), `missing_url`, `missing_caption`.
//! - JSON Lines / JSON array: `truncated_file`, `record_too_long`, `invalid_utf8`,
//!   `malformed_json`, `not_an_object`, `not_text` (the URL or caption is an array or object),
//!   `missing_url`, `missing_caption`.
//! - parquet: `unreadable_row_group` (each row of a row group that cannot be decoded),
//!   `invalid_utf8` (a binary URL or caption column), `missing_url`, `missing_caption`.

mod delimited;
mod json;
mod pq;
mod text;
pub mod values;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use values::json as arrow_json;

/// Longest row (CSV record, JSON line or array element) kept; longer ones are dropped
/// (`record_too_long`, or `unterminated_quote` for a quoted CSV field that runs past it).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// A URL-list format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Csv,
    Tsv,
    Jsonl,
    /// An array of objects, or JSON Lines when the file does not start with `[`.
    Json,
}

impl Format {
    /// The names `parse` accepts, for messages.
    pub const NAMES: &'static str = "parquet, csv, tsv, jsonl, json";

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "parquet" => Format::Parquet,
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::Json => "json",
        }
    }

    /// The format of `path` from its extension (a trailing `.gz` is looked through) and whether
    /// it is gzipped.
    pub fn from_path(path: &Path) -> Option<(Format, bool)> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let (name, gz) = match name.strip_suffix(".gz") {
            Some(n) => (n.to_string(), true),
            None => (name, false),
        };
        let (_, ext) = name.rsplit_once('.')?;
        Some((Format::parse(ext)?, gz))
    }
}

/// The pipeline keys that choose what a reader reads, named in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The pipeline table, e.g. `[import]`.
    pub table: &'static str,
    /// The key that forces a format, e.g. `format`.
    pub format: &'static str,
    pub url: &'static str,
    pub caption: &'static str,
}

/// A URL-list file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFile {
    pub path: PathBuf,
    pub format: Format,
    pub gzip: bool,
}

/// The format of one named file: `forced`, or from its extension (an error naming the fix when
/// neither tells).
pub fn resolve(path: &Path, forced: Option<Format>, keys: &Keys) -> Result<ListFile, ListError> {
    let by_name = Format::from_path(path);
    let gzip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let format = match (forced, by_name) {
        (Some(f), _) => f,
        (None, Some((f, _))) => f,
        (None, None) => {
            return Err(ListError::Config(format!(
                "{}: cannot tell the format from the name; fix: name it *.parquet, *.csv, *.tsv, *.jsonl or *.json (optionally .gz), or set {} {} to one of {}",
                path.display(),
                keys.table,
                keys.format,
                Format::NAMES
            )));
        }
    };
    if gzip && format == Format::Parquet {
        return Err(ListError::Config(format!(
            "{}: gzipped parquet is not supported (parquet compresses its pages itself); fix: decompress it",
            path.display()
        )));
    }
    Ok(ListFile {
        path: path.to_path_buf(),
        format,
        gzip,
    })
}

/// The URL lists at `input`: the file itself, or a folder's files in sorted order (hidden files
/// and files whose format the name does not tell are skipped, with a warning, unless a format
/// is forced).
pub fn list(input: &Path, forced: Option<Format>, keys: &Keys) -> Result<Vec<ListFile>, ListError> {
    if !input.is_dir() {
        return Ok(vec![resolve(input, forced, keys)?]);
    }
    let rd = std::fs::read_dir(input)
        .map_err(|e| ListError::Input(format!("{}: {e}", input.display())))?;
    let mut paths = Vec::new();
    for e in rd {
        let e = e.map_err(|e| ListError::Input(format!("{}: {e}", input.display())))?;
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if !hidden && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        if forced.is_none() && Format::from_path(&p).is_none() {
            tracing::warn!(file = %p.display(), "not a URL list by its name (skipped)");
            continue;
        }
        out.push(resolve(&p, forced, keys)?);
    }
    Ok(out)
}

/// Columns carried besides the URL and caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// These (each present in every row's map, null where the row lacks it).
    Named(Vec<String>),
    /// Every other column of the file (JSON: every other key of the row).
    All,
}

/// Which columns to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub url: String,
    /// `None`: no captions.
    pub caption: Option<String>,
    /// A row without a caption is dropped (`missing_caption`), and a file without the caption
    /// column is an error; otherwise such rows have no caption.
    pub caption_required: bool,
    pub extra: Extra,
    pub keys: Keys,
}

impl Columns {
    fn carries_all(&self, name: &str) -> bool {
        name != self.url && Some(name) != self.caption.as_deref()
    }
}

/// A good row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// Trimmed, never empty.
    pub url: String,
    /// As in the file (for JSON: numbers and booleans as their JSON text).
    pub caption: Option<String>,
    pub extra: BTreeMap<String, Value>,
}

/// Why a row was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Drop {
    /// The file breaks off (an I/O or gzip error, a JSON array never closed): one per file.
    TruncatedFile,
    /// CSV: a quoted field never closed (or longer than [`MAX_RECORD_BYTES`]).
    UnterminatedQuote,
    /// CSV: text after a closing quote.
    BadQuote,
    /// Longer than [`MAX_RECORD_BYTES`].
    RecordTooLong,
    /// CSV/TSV: not as many fields as the header.
    FieldCount,
    InvalidUtf8,
    MalformedJson,
    /// JSON: a row that is not an object.
    NotAnObject,
    /// JSON: the URL or caption is an array or object.
    NotText,
    MissingUrl,
    MissingCaption,
    /// Parquet: a row of a row group that cannot be decoded.
    UnreadableRowGroup,
}

impl Drop {
    pub const ALL: [Drop; 12] = [
        Drop::TruncatedFile,
        Drop::UnterminatedQuote,
        Drop::BadQuote,
        Drop::RecordTooLong,
        Drop::FieldCount,
        Drop::InvalidUtf8,
        Drop::MalformedJson,
        Drop::NotAnObject,
        Drop::NotText,
        Drop::MissingUrl,
        Drop::MissingCaption,
        Drop::UnreadableRowGroup,
    ];

    /// The reason as counted in stage reports.
    pub fn reason(self) -> &'static str {
        match self {
            Drop::TruncatedFile => "truncated_file",
            Drop::UnterminatedQuote => "unterminated_quote",
            Drop::BadQuote => "bad_quote",
            Drop::RecordTooLong => "record_too_long",
            Drop::FieldCount => "field_count",
            Drop::InvalidUtf8 => "invalid_utf8",
            Drop::MalformedJson => "malformed_json",
            Drop::NotAnObject => "not_an_object",
            Drop::NotText => "not_text",
            Drop::MissingUrl => "missing_url",
            Drop::MissingCaption => "missing_caption",
            Drop::UnreadableRowGroup => "unreadable_row_group",
        }
    }
}

/// A dropped row: why, and a message naming the file and line.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub reason: Drop,
    pub message: String,
}

/// Where an entry starts: its index among the file's entries, its line (text formats; 0 for
/// parquet) and its byte offset (plain text files; `None` for gzip and parquet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    pub index: u64,
    #[serde(default)]
    pub line: u64,
    #[serde(default)]
    pub offset: Option<u64>,
}

/// One row of the file, good or dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: Position,
    pub row: Result<Row, Dropped>,
}

/// A file that cannot be read as configured.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// A key must change (a column the file lacks, a format the name does not tell).
    #[error("{0}")]
    Config(String),
    /// The file cannot be read at all.
    #[error("{0}")]
    Input(String),
}

enum Origin {
    Path(PathBuf),
    Bytes(Bytes),
}

impl Origin {
    /// The text from `offset` (decompressed when `gzip`; offsets then count from the start).
    fn stream(
        &self,
        name: &str,
        gzip: bool,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, ListError> {
        let raw: Box<dyn Read + Send> = match self {
            Origin::Path(p) => {
                let mut f = File::open(p).map_err(|e| ListError::Input(format!("{name}: {e}")))?;
                if !gzip && offset > 0 {
                    f.seek(SeekFrom::Start(offset))
                        .map_err(|e| ListError::Input(format!("{name}: {e}")))?;
                }
                Box::new(f)
            }
            Origin::Bytes(b) => {
                let start = if gzip {
                    0
                } else {
                    (offset as usize).min(b.len())
                };
                Box::new(std::io::Cursor::new(b.slice(start..)))
            }
        };
        Ok(if gzip {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, raw)),
            ))
        } else {
            raw
        })
    }
}

enum Body {
    Delimited {
        p: delimited::Delimited,
        ncols: usize,
        url_i: usize,
        cap_i: Option<usize>,
        extra: Vec<(String, Option<usize>)>,
    },
    Lines(json::Lines),
    Array(json::Array),
    Parquet {
        p: pq::Parquet,
        next: u64,
        cache: Option<(u64, Result<(pq::TextCol, Option<pq::TextCol>), String>)>,
        has_caption: bool,
        extra: Vec<(String, bool)>,
    },
    /// A CSV/TSV file without even a header line.
    NoHeader,
}

/// Reads one URL list: [`Entry`]s in order.
pub struct Reader {
    name: String,
    cols: Columns,
    body: Body,
    seekable: bool,
    next_index: u64,
    header: Vec<String>,
    rows: u64,
    drops: BTreeMap<Drop, u64>,
}

/// The header's field names, or an error at its line.
fn header_names(p: &delimited::Delimited, name: &str, line: u64) -> Result<Vec<String>, ListError> {
    (0..p.ends.len())
        .map(|i| {
            let f = p.field(i).unwrap_or_default();
            std::str::from_utf8(f)
                .map(|s| s.trim().to_string())
                .map_err(|_| {
                    ListError::Input(format!(
                        "{name}:{line}: the header line is not UTF-8; fix: save the file as UTF-8"
                    ))
                })
        })
        .collect()
}

fn missing_column(
    name: &str,
    at: &str,
    col: &str,
    have: &[String],
    keys: &Keys,
    key: &str,
) -> ListError {
    ListError::Config(format!(
        "{name}{at}: no column `{col}` (columns: {}); fix: set {} {key}",
        have.join(", "),
        keys.table
    ))
}

impl Reader {
    /// Opens `file` at its first row. Checks the header (CSV/TSV) or schema (parquet) for the
    /// configured columns.
    pub fn open(file: &ListFile, cols: &Columns) -> Result<Reader, ListError> {
        Self::open_at(file, cols, Position::default())
    }

    /// Opens `file` at the entry `at` (as an earlier reader's entry gave it).
    pub fn open_at(file: &ListFile, cols: &Columns, at: Position) -> Result<Reader, ListError> {
        let name = file.path.display().to_string();
        Self::build(
            name,
            Origin::Path(file.path.clone()),
            file.format,
            file.gzip,
            cols,
            at,
        )
    }

    /// A reader over bytes in memory (`name` is used in messages).
    pub fn from_bytes(
        name: &str,
        data: Vec<u8>,
        format: Format,
        gzip: bool,
        cols: &Columns,
        at: Position,
    ) -> Result<Reader, ListError> {
        Self::build(
            name.to_string(),
            Origin::Bytes(Bytes::from(data)),
            format,
            gzip,
            cols,
            at,
        )
    }

    fn build(
        name: String,
        origin: Origin,
        format: Format,
        gzip: bool,
        cols: &Columns,
        at: Position,
    ) -> Result<Reader, ListError> {
        let seekable = !gzip && format != Format::Parquet;
        let mut r = Reader {
            name: name.clone(),
            cols: cols.clone(),
            body: Body::NoHeader,
            seekable,
            next_index: 0,
            header: Vec::new(),
            rows: 0,
            drops: BTreeMap::new(),
        };
        let first = || -> Result<text::ByteSource, ListError> {
            let s = origin.stream(&name, gzip, 0)?;
            let mut src =
                text::ByteSource::new(s, 0, 1, matches!(format, Format::Csv | Format::Tsv));
            src.skip_bom();
            // A file that is not gzip (or not readable) fails here, not as a dropped row.
            if src.peek().is_none()
                && let Some(e) = &src.error
                && src.offset == 0
            {
                return Err(ListError::Input(format!("{name}: cannot read: {e}")));
            }
            Ok(src)
        };
        let resume = |cr: bool| -> Result<Option<text::ByteSource>, ListError> {
            match at.offset {
                Some(off) if seekable && at.index > 0 => Ok(Some(text::ByteSource::new(
                    origin.stream(&name, gzip, off)?,
                    off,
                    at.line.max(1),
                    cr,
                ))),
                _ => Ok(None),
            }
        };
        let mut skip = at.index;
        match format {
            Format::Csv | Format::Tsv => {
                let tsv = format == Format::Tsv;
                let mut p = delimited::Delimited::new(first()?, tsv);
                let Some(rec) = p.next_record() else {
                    r.next_index = at.index;
                    return Ok(r);
                };
                if let Some((_, msg)) = rec.problem {
                    return Err(ListError::Input(format!(
                        "{name}:{}: the header line: {msg}; fix: the first line must name the columns",
                        rec.line
                    )));
                }
                let header = header_names(&p, &name, rec.line)?;
                let at_line = format!(":{}", rec.line);
                let find = |c: &str| header.iter().position(|h| h == c);
                let url_i = find(&cols.url).ok_or_else(|| {
                    missing_column(
                        &name,
                        &at_line,
                        &cols.url,
                        &header,
                        &cols.keys,
                        cols.keys.url,
                    )
                })?;
                let cap_i = match &cols.caption {
                    None => None,
                    Some(c) => match find(c) {
                        Some(i) => Some(i),
                        None if cols.caption_required => {
                            return Err(missing_column(
                                &name,
                                &at_line,
                                c,
                                &header,
                                &cols.keys,
                                cols.keys.caption,
                            ));
                        }
                        None => {
                            tracing::warn!(file = %name, column = %c, "no caption column: rows have no caption");
                            None
                        }
                    },
                };
                let extra = match &cols.extra {
                    Extra::Named(v) => v.iter().map(|c| (c.clone(), find(c))).collect(),
                    Extra::All => {
                        let mut seen = std::collections::BTreeSet::new();
                        header
                            .iter()
                            .enumerate()
                            .filter(|(_, h)| cols.carries_all(h) && seen.insert(h.as_str()))
                            .map(|(i, h)| (h.clone(), Some(i)))
                            .collect()
                    }
                };
                if let Some(src) = resume(true)? {
                    p = delimited::Delimited::new(src, tsv);
                    skip = 0;
                }
                r.body = Body::Delimited {
                    p,
                    ncols: header.len(),
                    url_i,
                    cap_i,
                    extra,
                };
                r.header = header;
            }
            Format::Jsonl | Format::Json => {
                let mut src = first()?;
                let mut array = false;
                if format == Format::Json {
                    while let Some(b) = src.peek() {
                        if !json::is_ws(b) {
                            break;
                        }
                        src.bump();
                    }
                    if src.peek() == Some(b'[') {
                        src.bump();
                        array = true;
                    }
                }
                if let Some(s) = resume(false)? {
                    src = s;
                    skip = 0;
                }
                r.body = if array {
                    Body::Array(json::Array::new(src))
                } else {
                    Body::Lines(json::Lines::new(src))
                };
            }
            Format::Parquet => {
                let src = match &origin {
                    Origin::Path(p) => pq::Source::File(
                        File::open(p).map_err(|e| ListError::Input(format!("{name}: {e}")))?,
                    ),
                    Origin::Bytes(b) => pq::Source::Bytes(b.clone()),
                };
                let mut p = pq::Parquet::open(&name, src)?;
                let schema = p.schema().clone();
                let header: Vec<String> =
                    schema.fields().iter().map(|f| f.name().clone()).collect();
                let find = |c: &str| header.iter().position(|h| h == c);
                let check_text = |i: usize, key: &str| -> Result<(), ListError> {
                    let t = schema.field(i).data_type();
                    if pq::textual(t) {
                        Ok(())
                    } else {
                        Err(ListError::Config(format!(
                            "{name}: column `{}` holds {t}, not text; fix: set {} {key} to a text column",
                            header[i], cols.keys.table
                        )))
                    }
                };
                let url_i = find(&cols.url).ok_or_else(|| {
                    missing_column(&name, "", &cols.url, &header, &cols.keys, cols.keys.url)
                })?;
                check_text(url_i, cols.keys.url)?;
                let mut roots = vec![url_i];
                let mut has_caption = false;
                if let Some(c) = &cols.caption {
                    match find(c) {
                        Some(i) => {
                            check_text(i, cols.keys.caption)?;
                            roots.push(i);
                            has_caption = true;
                        }
                        None if cols.caption_required => {
                            return Err(missing_column(
                                &name,
                                "",
                                c,
                                &header,
                                &cols.keys,
                                cols.keys.caption,
                            ));
                        }
                        None => {
                            tracing::warn!(file = %name, column = %c, "no caption column: rows have no caption");
                        }
                    }
                }
                let extra: Vec<(String, bool)> = match &cols.extra {
                    Extra::Named(v) => v.iter().map(|c| (c.clone(), find(c).is_some())).collect(),
                    Extra::All => header
                        .iter()
                        .filter(|h| cols.carries_all(h))
                        .map(|h| (h.clone(), true))
                        .collect(),
                };
                for (c, present) in &extra {
                    if *present && let Some(i) = find(c) {
                        roots.push(i);
                    }
                }
                roots.sort_unstable();
                roots.dedup();
                p.project(&roots);
                p.seek(at.index);
                skip = 0;
                r.body = Body::Parquet {
                    p,
                    next: at.index,
                    cache: None,
                    has_caption,
                    extra,
                };
                r.header = header;
            }
        }
        r.next_index = if skip > 0 { 0 } else { at.index };
        for _ in 0..skip {
            if r.next_position().is_none() {
                break;
            }
        }
        Ok(r)
    }

    /// The CSV/TSV header or the parquet schema's column names (empty for JSON).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Good rows returned so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Drops returned so far, by reason.
    pub fn drops(&self) -> &BTreeMap<Drop, u64> {
        &self.drops
    }

    /// Entries returned so far (rows and drops), counting from the position opened at.
    pub fn entries(&self) -> u64 {
        self.next_index
    }

    /// After a whole file was read and it gave no entry: why, in words.
    pub fn empty(&self) -> Option<String> {
        if self.next_index > 0 {
            return None;
        }
        Some(match &self.body {
            Body::NoHeader => "the file is empty (not even a header line)".into(),
            Body::Delimited { .. } => "the file has a header line and no rows".into(),
            Body::Lines(_) => "the file holds no JSON lines".into(),
            Body::Array(_) => "the file holds an empty JSON array".into(),
            Body::Parquet { .. } => "the parquet file has no rows".into(),
        })
    }

    /// The next entry's position, without building its row (planning: where rows start).
    pub fn next_position(&mut self) -> Option<Position> {
        let (line, offset) = match &mut self.body {
            Body::NoHeader => return None,
            Body::Delimited { p, .. } => {
                let r = p.next_record()?;
                (r.line, r.offset)
            }
            Body::Lines(l) => {
                let s = l.next_slice()?;
                (s.line, s.offset)
            }
            Body::Array(a) => {
                let s = a.next_slice()?;
                (s.line, s.offset)
            }
            Body::Parquet { p, next, .. } => {
                if *next >= p.total {
                    return None;
                }
                *next += 1;
                (0, 0)
            }
        };
        let at = self.pos_at(line, offset);
        self.next_index += 1;
        Some(at)
    }

    fn pos_at(&self, line: u64, offset: u64) -> Position {
        Position {
            index: self.next_index,
            line,
            offset: self.seekable.then_some(offset),
        }
    }

    /// The next entry; `None` after the last.
    pub fn next_entry(&mut self) -> Option<Entry> {
        let name = &self.name;
        let cols = &self.cols;
        let (line, offset, row) = match &mut self.body {
            Body::NoHeader => return None,
            Body::Delimited {
                p,
                ncols,
                url_i,
                cap_i,
                extra,
            } => {
                let rec = p.next_record()?;
                let row = match rec.problem {
                    Some((reason, msg)) => Err((reason, msg)),
                    None => delimited_row(p, *ncols, *url_i, *cap_i, extra, cols),
                };
                (rec.line, rec.offset, row)
            }
            Body::Lines(l) => {
                let s = l.next_slice()?;
                let row = match s.problem {
                    Some(p) => Err(p),
                    None => json_row(&l.text, cols),
                };
                (s.line, s.offset, row)
            }
            Body::Array(a) => {
                let s = a.next_slice()?;
                let row = match s.problem {
                    Some(p) => Err(p),
                    None => json_row(&a.text, cols),
                };
                (s.line, s.offset, row)
            }
            Body::Parquet {
                p,
                next,
                cache,
                has_caption,
                extra,
            } => {
                let n = p.next()?;
                let index = *next;
                *next += 1;
                let row = match n {
                    pq::Next::Dropped(reason, msg) => Err((reason, msg)),
                    pq::Next::Row => parquet_row(p, cache, *has_caption, extra, cols, index),
                };
                (0, 0, row)
            }
        };
        let at = self.pos_at(line, offset);
        self.next_index += 1;
        let row = match row {
            Ok(r) => {
                self.rows += 1;
                Ok(r)
            }
            Err((reason, msg)) => {
                *self.drops.entry(reason).or_default() += 1;
                let message = if line > 0 {
                    format!("{name}:{line}: {msg}")
                } else if msg.starts_with(name.as_str()) {
                    msg
                } else {
                    format!("{name}: row {}: {msg}", at.index + 1)
                };
                Err(Dropped { reason, message })
            }
        };
        Some(Entry { at, row })
    }
}

impl Iterator for Reader {
    type Item = Entry;
    fn next(&mut self) -> Option<Entry> {
        self.next_entry()
    }
}

type RowResult = Result<Row, (Drop, String)>;

fn check_url_caption(
    url: Option<&str>,
    caption: Option<&str>,
    cols: &Columns,
) -> Result<(String, Option<String>), (Drop, String)> {
    let url = url.map(str::trim).unwrap_or("");
    if url.is_empty() {
        return Err((
            Drop::MissingUrl,
            format!("no URL (column `{}` is empty or absent)", cols.url),
        ));
    }
    if cols.caption_required && caption.is_none_or(|c| c.trim().is_empty()) {
        return Err((
            Drop::MissingCaption,
            format!(
                "no caption (column `{}` is empty or absent)",
                cols.caption.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok((url.to_string(), caption.map(str::to_string)))
}

fn delimited_row(
    p: &delimited::Delimited,
    ncols: usize,
    url_i: usize,
    cap_i: Option<usize>,
    extra: &[(String, Option<usize>)],
    cols: &Columns,
) -> RowResult {
    let n = p.ends.len();
    if n != ncols {
        return Err((
            Drop::FieldCount,
            format!("{n} fields where the header has {ncols}"),
        ));
    }
    let mut fields = Vec::with_capacity(n);
    for i in 0..n {
        let f = p.field(i).unwrap_or_default();
        match std::str::from_utf8(f) {
            Ok(s) => fields.push(s),
            Err(e) => {
                return Err((
                    Drop::InvalidUtf8,
                    format!(
                        "field {} is not UTF-8 (at its byte {})",
                        i + 1,
                        e.valid_up_to()
                    ),
                ));
            }
        }
    }
    let (url, caption) = check_url_caption(Some(fields[url_i]), cap_i.map(|i| fields[i]), cols)?;
    let extra = extra
        .iter()
        .map(|(name, i)| {
            let v = i.map_or(Value::Null, |i| Value::String(fields[i].to_string()));
            (name.clone(), v)
        })
        .collect();
    Ok(Row {
        url,
        caption,
        extra,
    })
}

/// A JSON value as text: strings as they are, numbers and booleans as their JSON text; `Ok(None)`
/// for null or absent, `Err` for arrays and objects.
fn json_text(v: Option<&Value>) -> Result<Option<String>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Array(_)) => Err("an array"),
        Some(Value::Object(_)) => Err("an object"),
    }
}

fn json_row(text: &[u8], cols: &Columns) -> RowResult {
    let text = json::trim_ws(text);
    let s = std::str::from_utf8(text).map_err(|e| {
        (
            Drop::InvalidUtf8,
            format!("not UTF-8 (at byte {} of the row)", e.valid_up_to()),
        )
    })?;
    let v: Value = serde_json::from_str(s)
        .map_err(|e| (Drop::MalformedJson, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err((
            Drop::NotAnObject,
            "a JSON value that is not an object".into(),
        ));
    };
    let text_of = |c: &str| {
        json_text(obj.get(c)).map_err(|what| {
            (
                Drop::NotText,
                format!("column `{c}` holds {what}, not text"),
            )
        })
    };
    let url = text_of(&cols.url)?;
    let caption = match &cols.caption {
        Some(c) => text_of(c)?,
        None => None,
    };
    let (url, caption) = check_url_caption(url.as_deref(), caption.as_deref(), cols)?;
    let extra = match &cols.extra {
        Extra::Named(v) => v
            .iter()
            .map(|c| (c.clone(), obj.get(c).cloned().unwrap_or(Value::Null)))
            .collect(),
        Extra::All => obj
            .iter()
            .filter(|(k, _)| cols.carries_all(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok(Row {
        url,
        caption,
        extra,
    })
}

fn parquet_row(
    p: &pq::Parquet,
    cache: &mut Option<(u64, Result<(pq::TextCol, Option<pq::TextCol>), String>)>,
    has_caption: bool,
    extra: &[(String, bool)],
    cols: &Columns,
    index: u64,
) -> RowResult {
    if cache.as_ref().is_none_or(|(seq, _)| *seq != p.batch_seq) {
        let built = (|| {
            let url = p
                .text_col(&cols.url)
                .ok_or_else(|| format!("column `{}` missing from a batch", cols.url))??;
            let cap = if has_caption {
                let c = cols.caption.as_deref().unwrap_or_default();
                Some(
                    p.text_col(c)
                        .ok_or_else(|| format!("column `{c}` missing from a batch"))??,
                )
            } else {
                None
            };
            Ok((url, cap))
        })();
        *cache = Some((p.batch_seq, built));
    }
    let Some((_, cols_res)) = cache.as_ref() else {
        unreachable!("filled above")
    };
    let (url_col, cap_col) = cols_res
        .as_ref()
        .map_err(|e| (Drop::UnreadableRowGroup, format!("row {}: {e}", index + 1)))?;
    let i = p.batch_row;
    let bad = |c: &str| (Drop::InvalidUtf8, format!("column `{c}` is not UTF-8"));
    let url = url_col.get(i).map_err(|_| bad(&cols.url))?;
    let caption = match cap_col {
        Some(c) => c
            .get(i)
            .map_err(|_| bad(cols.caption.as_deref().unwrap_or_default()))?,
        None => None,
    };
    let (url, caption) = check_url_caption(url.as_deref(), caption.as_deref(), cols)?;
    let extra = extra
        .iter()
        .map(|(name, present)| {
            let v = if *present {
                p.column(name)
                    .map_or(Value::Null, |c| arrow_json(c.as_ref(), i))
            } else {
                Value::Null
            };
            (name.clone(), v)
        })
        .collect();
    Ok(Row {
        url,
        caption,
        extra,
    })
}

/// The drop reason of a row whose URL [`check_url`] refuses, in `import`'s counts and in
/// `download`'s failures alike.
pub const BAD_URL: &str = "bad_url";

/// The URL of a good row as both stages keep it: parsed as the HTTP client parses it (WHATWG URL
/// Standard, crate `url`) and written back in that normalized form (`https://Example.com` becomes
/// `https://example.com/`), so `import`'s candidates and `download`'s shard rows name a row's
/// URL alike. Anything but http(s) with a host is refused with a message ([`BAD_URL`]).
///
/// ```
/// use openwit_urllist::check_url;
/// assert_eq!(check_url("https://Example.com").unwrap(), "https://example.com/");
/// assert_eq!(check_url("http://a.example/x y.jpg").unwrap(), "http://a.example/x%20y.jpg");
/// assert!(check_url("ftp://a.example/x.jpg").unwrap_err().starts_with("not an http(s) URL"));
/// assert!(check_url("00M").is_err());
/// ```
pub fn check_url(url: &str) -> Result<String, String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(u.to_string())
        }
        Ok(_) => Err(format!("not an http(s) URL: {url}")),
        Err(e) => Err(format!("bad URL: {e}: {url}")),
    }
}

/// The caption of a good row as both stages keep it: runs of whitespace (line breaks, tabs,
/// several spaces) become one space, none at either end; `None` when nothing is left.
///
/// ```
/// use openwit_urllist::clean_caption;
/// assert_eq!(clean_caption("  Moton  Municipal\n").as_deref(), Some("Moton Municipal"));
/// assert_eq!(clean_caption(" \t "), None);
/// ```
pub fn clean_caption(caption: &str) -> Option<String> {
    let mut out = String::with_capacity(caption.len());
    for w in caption.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    (!out.is_empty()).then_some(out)
}

/// The extra columns of a row as one JSON object (`None` when there are none).
pub fn extra_json(extra: &BTreeMap<String, Value>) -> Option<String> {
    (!extra.is_empty()).then(|| {
        Value::Object(
            extra
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<_, _>>(),
        )
        .to_string()
    })
}

//! The listing of what a source stage dropped: `<stage>/dropped/<task id>.parquet`, one row per
//! counted drop (the `reason` token is the one counted in the task's drops), so that a user can
//! look at what a drop reason covers. Written only when the task dropped something, and only with
//! `dropped_rows = true` (the default) in the stage's table.
//!
//! Columns (every one nullable but `reason` and `count`; each stage fills what it knows):
//! - `url`: the image URL (resolved, or as written when it could not be resolved; a `data:` URI
//!   or an over-long URL is cut, `detail` gives its length);
//! - `page_url`: the page the image was on, or the page (crawl) / WARC record (warc) dropped;
//! - `caption`: the caption as read (cut to [`MAX_CAPTION_CHARS`] characters);
//! - `input`: where the record was read: the WARC/WAT file (warc), the URL-list file (import),
//!   the seed the page was reached from (crawl);
//! - `offset`: the byte offset of the WARC record in its file (of the record's gzip member in a
//!   `.gz` file; warc), or of the row in a plain-text URL list (import);
//! - `row`: the row's index in a URL list, from 0 (import);
//! - `line`: the row's first line in a text URL list, from 1 (import);
//! - `reason`: the drop reason token;
//! - `detail`: a short explanation (the reader's message, the HTTP error, the length cut);
//! - `count`: how many counted drops the row stands for: 1, except for drops counted in bulk
//!   where the single records are unknowable (a crawl frontier that an earlier version of
//!   openwit filled without listing its drops gives one row per reason with the rest).
//!
//! So the drops per reason the stage counted equal the sum of `count` per reason here (and the
//! number of rows per reason, whenever every `count` is 1).
//!
//! Downstream stages never read these files as data: they lie in a `dropped/` folder, which
//! curate skips when it looks for candidate tables.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use openwit_core::TaskContext;

use crate::error::SourcesError;

/// The folder of the listings, in the stage's folder.
pub const DIR: &str = openwit_core::artifact::DROPPED_DIR;

/// Longest caption kept in a listing row (characters); a longer one is cut.
pub const MAX_CAPTION_CHARS: usize = 1000;
/// Longest URL kept in a listing row (characters); a longer one is cut.
pub const MAX_URL_CHARS: usize = 2048;

/// Rows buffered before a write.
const BATCH_ROWS: usize = 8192;

/// The listing's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, true),
        Field::new("page_url", DataType::Utf8, true),
        Field::new("caption", DataType::Utf8, true),
        Field::new("input", DataType::Utf8, true),
        Field::new("offset", DataType::UInt64, true),
        Field::new("row", DataType::UInt64, true),
        Field::new("line", DataType::UInt64, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("count", DataType::UInt64, false),
    ]))
}

/// One dropped record (or, with `count > 1`, a bulk of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedRow {
    pub url: Option<String>,
    pub page_url: Option<String>,
    pub caption: Option<String>,
    pub input: Option<String>,
    pub offset: Option<u64>,
    pub row: Option<u64>,
    pub line: Option<u64>,
    pub reason: String,
    pub detail: Option<String>,
    pub count: u64,
}

impl DroppedRow {
    /// A row for one drop of `reason`, every other column empty.
    pub fn new(reason: impl Into<String>) -> Self {
        DroppedRow {
            url: None,
            page_url: None,
            caption: None,
            input: None,
            offset: None,
            row: None,
            line: None,
            reason: reason.into(),
            detail: None,
            count: 1,
        }
    }
}

/// An image the extractor dropped (with the reason counted in the extraction's drops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedImage {
    pub reason: &'static str,
    pub url: Option<String>,
    pub caption: Option<String>,
    pub detail: Option<String>,
}

impl DroppedImage {
    /// The listing row of this image on `page_url`.
    pub fn into_row(self, page_url: &str) -> DroppedRow {
        DroppedRow {
            url: self.url,
            page_url: Some(page_url.to_string()),
            caption: self.caption,
            detail: self.detail,
            ..DroppedRow::new(self.reason)
        }
    }
}

/// `s` cut to `max` characters (on a character boundary).
pub fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A URL for a listing row: as is, or cut (then `detail` says how long it was).
pub(crate) fn clip_url(url: &str) -> (String, Option<String>) {
    if url.len() <= MAX_URL_CHARS {
        (url.to_string(), None)
    } else {
        (
            clip(url, MAX_URL_CHARS).to_string(),
            Some(format!("{} bytes; cut here", url.len())),
        )
    }
}

/// A caption for a listing row, cut to [`MAX_CAPTION_CHARS`].
pub(crate) fn clip_caption(caption: &str) -> String {
    clip(caption, MAX_CAPTION_CHARS).to_string()
}

/// Writes a task's listing through its [`TaskContext`]: the file is declared as a task output
/// (written under a temporary name, fsynced and renamed by the executor when the task succeeds)
/// at the first row, so a task that dropped nothing writes no file. With `enabled = false`
/// nothing is written.
pub struct Listing<'c, 'a> {
    ctx: &'c TaskContext<'a>,
    rel: String,
    enabled: bool,
    rows: Vec<DroppedRow>,
    writer: Option<ArrowWriter<std::io::BufWriter<std::fs::File>>>,
}

impl<'c, 'a> Listing<'c, 'a> {
    /// The listing of task `task` (at `<stage>/dropped/<task>.parquet`).
    pub fn new(ctx: &'c TaskContext<'a>, task: &str, enabled: bool) -> Self {
        Listing {
            ctx,
            rel: format!("{DIR}/{}.parquet", openwit_core::stage::sanitize(task)),
            enabled,
            rows: Vec::new(),
            writer: None,
        }
    }

    /// Whether rows are written at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Adds a row.
    pub fn push(&mut self, row: DroppedRow) -> Result<(), SourcesError> {
        if !self.enabled {
            return Ok(());
        }
        self.rows.push(row);
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SourcesError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.rows)?;
        self.rows.clear();
        let w = match &mut self.writer {
            Some(w) => w,
            None => {
                let out = self.ctx.create_output(&self.rel)?;
                self.writer
                    .insert(ArrowWriter::try_new(out, schema(), Some(props()))?)
            }
        };
        w.write(&batch)?;
        Ok(())
    }

    /// Writes the rest and the footer.
    pub fn finish(mut self) -> Result<(), SourcesError> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            let mut f = w.into_inner()?;
            f.flush()
                .map_err(|e| SourcesError::Io(self.rel.clone(), e))?;
        }
        Ok(())
    }
}

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(64 * 1024))
        .build()
}

fn to_batch(rows: &[DroppedRow]) -> Result<RecordBatch, SourcesError> {
    let n = rows.len();
    let mut url = StringBuilder::with_capacity(n, n * 64);
    let mut page = StringBuilder::with_capacity(n, n * 64);
    let mut caption = StringBuilder::with_capacity(n, n * 32);
    let mut input = StringBuilder::with_capacity(n, n * 32);
    let mut offset = UInt64Builder::with_capacity(n);
    let mut row = UInt64Builder::with_capacity(n);
    let mut line = UInt64Builder::with_capacity(n);
    let mut reason = StringBuilder::with_capacity(n, n * 12);
    let mut detail = StringBuilder::with_capacity(n, n * 16);
    let mut count = UInt64Builder::with_capacity(n);
    for r in rows {
        url.append_option(r.url.as_deref());
        page.append_option(r.page_url.as_deref());
        caption.append_option(r.caption.as_deref());
        input.append_option(r.input.as_deref());
        offset.append_option(r.offset);
        row.append_option(r.row);
        line.append_option(r.line);
        reason.append_value(&r.reason);
        detail.append_option(r.detail.as_deref());
        count.append_value(r.count);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(url.finish()),
        Arc::new(page.finish()),
        Arc::new(caption.finish()),
        Arc::new(input.finish()),
        Arc::new(offset.finish()),
        Arc::new(row.finish()),
        Arc::new(line.finish()),
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(count.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), cols)?)
}

/// Reads a listing back (tests, tools).
pub fn read_listing(path: &std::path::Path) -> Result<Vec<DroppedRow>, SourcesError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    let f =
        std::fs::File::open(path).map_err(|e| SourcesError::Io(path.display().to_string(), e))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch?;
        let s = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>().cloned())
        };
        let u = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>().cloned())
        };
        let missing = |name: &str| {
            SourcesError::Input(format!(
                "{}: no `{name}` column of the listing type",
                path.display()
            ))
        };
        let (url, page, caption, input, reason, detail) = (
            s("url").ok_or_else(|| missing("url"))?,
            s("page_url").ok_or_else(|| missing("page_url"))?,
            s("caption").ok_or_else(|| missing("caption"))?,
            s("input").ok_or_else(|| missing("input"))?,
            s("reason").ok_or_else(|| missing("reason"))?,
            s("detail").ok_or_else(|| missing("detail"))?,
        );
        let (offset, row, line, count) = (
            u("offset").ok_or_else(|| missing("offset"))?,
            u("row").ok_or_else(|| missing("row"))?,
            u("line").ok_or_else(|| missing("line"))?,
            u("count").ok_or_else(|| missing("count"))?,
        );
        let os = |a: &arrow_array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        let ou = |a: &arrow_array::UInt64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
        for i in 0..b.num_rows() {
            out.push(DroppedRow {
                url: os(&url, i),
                page_url: os(&page, i),
                caption: os(&caption, i),
                input: os(&input, i),
                offset: ou(&offset, i),
                row: ou(&row, i),
                line: ou(&line, i),
                reason: reason.value(i).to_string(),
                detail: os(&detail, i),
                count: count.value(i),
            });
        }
    }
    Ok(out)
}

/// The drops per reason a listing stands for (the sum of `count` per reason).
pub fn counts(rows: &[DroppedRow]) -> openwit_core::Drops {
    let mut d = openwit_core::Drops::default();
    for r in rows {
        d.add(&r.reason, r.count);
    }
    d
}

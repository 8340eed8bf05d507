//! The candidate table every source writes (see ARCHITECTURE.md): one row per (image URL, text)
//! pair, written as parquet with bounded memory (a row group every `ROW_GROUP_ROWS` rows).

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::SourcesError;

/// Where a caption came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaptionSource {
    Alt,
    Title,
    Figcaption,
    List,
}

impl CaptionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptionSource::Alt => "alt",
            CaptionSource::Title => "title",
            CaptionSource::Figcaption => "figcaption",
            CaptionSource::List => "list",
        }
    }
}

/// One row of the candidate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub url: String,
    pub caption: String,
    pub caption_source: CaptionSource,
    pub page_url: Option<String>,
    pub page_lang: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub source_id: String,
    pub fetch_time: Option<i64>,
    pub extra: Option<String>,
}

/// The arrow schema of the candidate table (declared in `openwit_core::artifact::candidates`).
pub use openwit_core::artifact::candidates::schema;

/// Rows per parquet row group (and per in-memory batch).
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Streams candidates into a parquet file.
pub struct CandidateWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    rows: Vec<Candidate>,
    written: u64,
}

impl<W: Write + Send> CandidateWriter<W> {
    pub fn new(out: W) -> Result<Self, SourcesError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(out, schema(), Some(props))?;
        Ok(CandidateWriter {
            writer,
            rows: Vec::new(),
            written: 0,
        })
    }

    pub fn push(&mut self, c: Candidate) -> Result<(), SourcesError> {
        self.rows.push(c);
        if self.rows.len() >= ROW_GROUP_ROWS {
            self.flush_rows()?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn count(&self) -> u64 {
        self.written + self.rows.len() as u64
    }

    fn flush_rows(&mut self) -> Result<(), SourcesError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.rows)?;
        self.written += self.rows.len() as u64;
        self.rows.clear();
        self.writer.write(&batch)?;
        self.writer.flush()?;
        Ok(())
    }

    /// Writes the remaining rows and the footer; returns the number of rows and the inner writer.
    pub fn finish(mut self) -> Result<(u64, W), SourcesError> {
        self.flush_rows()?;
        let w = self.writer.into_inner()?;
        Ok((self.written, w))
    }
}

fn to_batch(rows: &[Candidate]) -> Result<RecordBatch, SourcesError> {
    let n = rows.len();
    let mut url = StringBuilder::with_capacity(n, n * 64);
    let mut caption = StringBuilder::with_capacity(n, n * 48);
    let mut source = StringBuilder::with_capacity(n, n * 4);
    let mut page = StringBuilder::with_capacity(n, n * 64);
    let mut lang = StringBuilder::with_capacity(n, n * 2);
    let mut width = Int32Builder::with_capacity(n);
    let mut height = Int32Builder::with_capacity(n);
    let mut sid = StringBuilder::with_capacity(n, n * 32);
    let mut time = Int64Builder::with_capacity(n);
    let mut extra = StringBuilder::with_capacity(n, 0);
    for r in rows {
        url.append_value(&r.url);
        caption.append_value(&r.caption);
        source.append_value(r.caption_source.as_str());
        page.append_option(r.page_url.as_deref());
        lang.append_option(r.page_lang.as_deref());
        width.append_option(r.width);
        height.append_option(r.height);
        sid.append_value(&r.source_id);
        time.append_option(r.fetch_time);
        extra.append_option(r.extra.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(url.finish()),
        Arc::new(caption.finish()),
        Arc::new(source.finish()),
        Arc::new(page.finish()),
        Arc::new(lang.finish()),
        Arc::new(width.finish()),
        Arc::new(height.finish()),
        Arc::new(sid.finish()),
        Arc::new(time.finish()),
        Arc::new(extra.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), cols)?)
}

/// Reads a candidate parquet file back (tests, tools).
pub fn read_candidates(path: &std::path::Path) -> Result<Vec<Candidate>, SourcesError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    let f =
        std::fs::File::open(path).map_err(|e| SourcesError::Io(path.display().to_string(), e))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let b = batch?;
        let s = |i: usize| b.column(i).as_string::<i32>().clone();
        let (url, cap, src, page, lang, sid, extra) = (s(0), s(1), s(2), s(3), s(4), s(7), s(9));
        let w = b.column(5).as_primitive::<Int32Type>().clone();
        let h = b.column(6).as_primitive::<Int32Type>().clone();
        let t = b.column(8).as_primitive::<Int64Type>().clone();
        use arrow_array::Array;
        let opt_s = |a: &arrow_array::StringArray, i: usize| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        };
        for i in 0..b.num_rows() {
            out.push(Candidate {
                url: url.value(i).to_string(),
                caption: cap.value(i).to_string(),
                caption_source: match src.value(i) {
                    "alt" => CaptionSource::Alt,
                    "title" => CaptionSource::Title,
                    "figcaption" => CaptionSource::Figcaption,
                    _ => CaptionSource::List,
                },
                page_url: opt_s(&page, i),
                page_lang: opt_s(&lang, i),
                width: (!w.is_null(i)).then(|| w.value(i)),
                height: (!h.is_null(i)).then(|| h.value(i)),
                source_id: sid.value(i).to_string(),
                fetch_time: (!t.is_null(i)).then(|| t.value(i)),
                extra: opt_s(&extra, i),
            });
        }
    }
    Ok(out)
}

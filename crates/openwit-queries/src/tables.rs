//! Parquet tables: the raw count tables (`unigram.parquet`: `token`, `count`;
//! `bigram.parquet`: `bigram`, `count`) and the query table (`queries.parquet`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, UInt64Builder,
};
use arrow_array::{Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{QueriesError, Result};
use crate::select::Entry;

const BATCH: usize = 64 * 1024;

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

/// The count tables' properties. Their keys are all distinct (a dictionary only costs time)
/// and sorted, so they are written as `DELTA_BYTE_ARRAY` (each key stores the length of the
/// prefix it shares with the one before and the rest): a bigram repeats its first word, and
/// zstd (level 1: the tables are large and rewritten by every rerun that recounts) gets a
/// third of the bytes. No min/max statistics on the key column: they cost a byte comparison
/// per row. On the 26M-row benchmark table: 2.7 -> 1.9 CPU s, 134 -> 81 MB.
fn count_props(key_name: &str) -> WriterProperties {
    let key = parquet::schema::types::ColumnPath::from(key_name);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_column_dictionary_enabled(key.clone(), false)
        .set_column_encoding(key.clone(), Encoding::DELTA_BYTE_ARRAY)
        .set_column_statistics_enabled(key, EnabledStatistics::None)
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> QueriesError + '_ {
    move |e| QueriesError::Parquet {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Streams `(key, count)` rows into a parquet file with columns `key_name` (utf8) and `count`
/// (uint64).
pub struct CountTableWriter {
    w: ArrowWriter<File>,
    schema: Arc<Schema>,
    keys: StringBuilder,
    counts: UInt64Builder,
    path: std::path::PathBuf,
    pub rows: u64,
}

impl CountTableWriter {
    pub fn create(path: &Path, key_name: &str) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new(key_name, DataType::Utf8, false),
            Field::new("count", DataType::UInt64, false),
        ]));
        let f = File::create(path).map_err(|e| QueriesError::io(path, e))?;
        let w = ArrowWriter::try_new(f, schema.clone(), Some(count_props(key_name)))
            .map_err(pq(path))?;
        Ok(CountTableWriter {
            w,
            schema,
            keys: StringBuilder::new(),
            counts: UInt64Builder::new(),
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    pub fn push(&mut self, key: &str, count: u64) -> Result<()> {
        self.keys.append_value(key);
        self.counts.append_value(count);
        self.rows += 1;
        if self.counts.values_slice().len() >= BATCH {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.counts.values_slice().is_empty() {
            return Ok(());
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![Arc::new(self.keys.finish()), Arc::new(self.counts.finish())],
        )
        .map_err(|e| pq(&self.path)(e.into()))?;
        self.w.write(&batch).map_err(pq(&self.path))
    }

    /// Writes the footer and fsyncs.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_batch()?;
        let f = self.w.into_inner().map_err(pq(&self.path))?;
        f.sync_all().map_err(|e| QueriesError::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// Calls `f` on every `(key, count)` row of a count table, in file order.
pub fn read_counts(path: &Path, mut f: impl FnMut(&str, u64) -> Result<()>) -> Result<()> {
    let file = File::open(path).map_err(|e| QueriesError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(pq(path))?
        .with_batch_size(BATCH)
        .build()
        .map_err(pq(path))?;
    for batch in reader {
        let batch = batch.map_err(|e| pq(path)(e.into()))?;
        let keys = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| bad_table(path))?;
        let counts = batch
            .column(1)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| bad_table(path))?;
        for i in 0..batch.num_rows() {
            f(keys.value(i), counts.value(i))?;
        }
    }
    Ok(())
}

fn bad_table(path: &Path) -> QueriesError {
    QueriesError::Input {
        path: path.to_path_buf(),
        line: 0,
        msg: "not a count table (utf8 key, uint64 count)".into(),
        fix: "rerun with --restart queries to recount".into(),
    }
}

/// Writes `queries.parquet`: `entry` (utf8), `id` (int32, the index), `source` (utf8), `count`
/// (int64, null), `pmi` (float64, null), `views` (int64, null).
pub fn write_queries(path: &Path, entries: &[Entry]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("entry", DataType::Utf8, false),
        Field::new("id", DataType::Int32, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("count", DataType::Int64, true),
        Field::new("pmi", DataType::Float64, true),
        Field::new("views", DataType::Int64, true),
    ]));
    let f = File::create(path).map_err(|e| QueriesError::io(path, e))?;
    let mut w = ArrowWriter::try_new(f, schema.clone(), Some(props())).map_err(pq(path))?;
    for (chunk_no, chunk) in entries.chunks(BATCH).enumerate() {
        let mut entry = StringBuilder::new();
        let mut id = Int32Builder::new();
        let mut source = StringBuilder::new();
        let mut count = Int64Builder::new();
        let mut pmi = Float64Builder::new();
        let mut views = Int64Builder::new();
        for (i, e) in chunk.iter().enumerate() {
            entry.append_value(&e.entry);
            id.append_value((chunk_no * BATCH + i) as i32);
            source.append_value(e.source.as_str());
            count.append_option(e.count.map(|c| c as i64));
            pmi.append_option(e.pmi);
            views.append_option(e.views.map(|c| c as i64));
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(entry.finish()),
                Arc::new(id.finish()),
                Arc::new(source.finish()),
                Arc::new(count.finish()),
                Arc::new(pmi.finish()),
                Arc::new(views.finish()),
            ],
        )
        .map_err(|e| pq(path)(e.into()))?;
        w.write(&batch).map_err(pq(path))?;
    }
    let f = w.into_inner().map_err(pq(path))?;
    f.sync_all().map_err(|e| QueriesError::io(path, e))?;
    Ok(())
}

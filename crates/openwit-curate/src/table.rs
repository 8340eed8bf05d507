//! The candidate table and the curated table (ARCHITECTURE.md, "Data contracts"): schemas,
//! reading candidate parquet files of any source stage, writing parquet.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use openwit_urllist::values;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{CurateError, PqCtx};

/// The candidate table's columns, as declared once in `openwit_core::artifact::candidates`.
use openwit_core::artifact::candidates::COLUMNS as CANDIDATE_COLUMNS;
use openwit_core::artifact::curated;

/// The candidate table's schema as curate reads it (every column nullable except `url` and
/// `caption`: a file written by another tool may lack the others).
pub fn candidate_schema() -> SchemaRef {
    Arc::new(Schema::new(candidate_fields()))
}

fn candidate_fields() -> Vec<Field> {
    openwit_core::artifact::candidates::reading_fields()
}

/// The type of `entry_ids` (declared with the curated table in `openwit_core::artifact::curated`).
pub use openwit_core::artifact::curated::entry_ids_type;

/// The schema of the intermediate files of the curate map tasks: the candidate columns (with
/// the cleaned caption), `language`, `language_confidence`, `entry_ids`, and `seq` (the row's
/// place in the input, for first-occurrence dedup).
pub fn map_schema() -> SchemaRef {
    let mut f = candidate_fields();
    f.extend(
        curated::added_fields()
            .into_iter()
            .filter(|f| f.name() != curated::KEPT),
    );
    f.push(Field::new("seq", DataType::UInt64, false));
    Arc::new(Schema::new(f))
}

/// The curated table's schema: the candidate columns plus `language`, `language_confidence`,
/// `entry_ids` and `kept` (declared in `openwit_core::artifact::curated`).
pub fn curated_schema() -> SchemaRef {
    curated::schema()
}

/// The schema of `curate/dropped/TASK.parquet`: the rows the map filters dropped, with the
/// URL and the caption as read (either may be null in a foreign candidate file), the reason
/// token, and `seq` (the row's place in the input).
pub fn dropped_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, true),
        Field::new("caption", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("seq", DataType::UInt64, false),
    ]))
}

/// Whether a parquet file has the two columns curation needs.
pub fn is_candidate_file(path: &Path) -> Result<bool, CurateError> {
    let f = File::open(path).pq(path)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).pq(path)?;
    let s = b.schema();
    Ok(s.field_with_name("url").is_ok() && s.field_with_name("caption").is_ok())
}

/// Rows per row group of a parquet file.
pub fn row_groups(path: &Path) -> Result<Vec<u64>, CurateError> {
    let f = File::open(path).pq(path)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).pq(path)?;
    Ok(b.metadata()
        .row_groups()
        .iter()
        .map(|r| r.num_rows() as u64)
        .collect())
}

/// Turns a batch read from a candidate file into the candidate schema: columns in order, cast
/// to the contract's types (`LargeUtf8`, `Utf8View`, `Int64` widths...), absent optional
/// columns filled with nulls.
pub fn normalize(batch: &RecordBatch, path: &Path) -> Result<RecordBatch, CurateError> {
    let schema = candidate_schema();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(CANDIDATE_COLUMNS.len());
    for (name, ty, _) in CANDIDATE_COLUMNS {
        match batch.column_by_name(name) {
            Some(c) if c.data_type() == ty => cols.push(c.clone()),
            Some(c) => cols.push(convert(c, ty).map_err(|e| CurateError::Candidates {
                path: path.to_path_buf(),
                msg: format!("column `{name}` has type {} ({e})", c.data_type()),
                fix: format!(
                    "write `{name}` as {ty} (ARCHITECTURE.md lists the candidate table's columns)"
                ),
            })?),
            None if matches!(*name, "url" | "caption") => {
                return Err(CurateError::Candidates {
                    path: path.to_path_buf(),
                    msg: format!("no `{name}` column"),
                    fix: "a candidate table needs `url` and `caption` columns (ARCHITECTURE.md)"
                        .into(),
                });
            }
            None => cols.push(new_null_array(ty, batch.num_rows())),
        }
    }
    // `url` and `caption` may hold nulls in a foreign file; the schema says non-null, so relax
    // it for the batch and let the stage count null rows as drops.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&cols)
        .map(|(f, c)| {
            f.as_ref()
                .clone()
                .with_nullable(f.is_nullable() || c.null_count() > 0)
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).pq(path)
}

/// Writer properties: zstd for results, snappy (faster) for intermediate files.
pub fn writer_props(final_output: bool) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(if final_output {
            Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level"))
        } else {
            Compression::SNAPPY
        })
        .set_max_row_group_row_count(Some(64 * 1024))
        .build()
}

/// Opens a parquet writer at `path`.
pub fn writer(
    path: &Path,
    schema: SchemaRef,
    final_output: bool,
) -> Result<ArrowWriter<File>, CurateError> {
    let f = File::create(path).pq(path)?;
    ArrowWriter::try_new(f, schema, Some(writer_props(final_output))).pq(path)
}

/// A column in one of the candidate table's types: `Utf8` from any column (each value as its
/// text), `Int32`/`Int64` from integers, floats, booleans or integer strings (a value that does
/// not fit is null, as arrow's safe cast).
fn convert(c: &ArrayRef, ty: &DataType) -> Result<ArrayRef, String> {
    let t = c.data_type();
    match ty {
        DataType::Utf8 => Ok(Arc::new(values::to_utf8(c.as_ref()))),
        DataType::Int32 | DataType::Int64
            if t.is_numeric()
                || matches!(
                    t,
                    DataType::Boolean
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Dictionary(..)
                ) =>
        {
            Ok(values::to_int(c.as_ref(), ty == &DataType::Int64))
        }
        _ => Err(format!("cannot be read as {ty}")),
    }
}

/// A string column of a batch (converted if needed).
pub fn str_col(batch: &RecordBatch, name: &str, path: &Path) -> Result<StringArray, CurateError> {
    let c = batch
        .column_by_name(name)
        .ok_or_else(|| CurateError::Candidates {
            path: path.to_path_buf(),
            msg: format!("no `{name}` column"),
            fix: format!("write a `{name}` column"),
        })?;
    Ok(values::to_utf8(c.as_ref()))
}

/// The `entry_ids` column of a batch as a list array, if it is one.
pub fn entry_ids_col(batch: &RecordBatch) -> Option<ListArray> {
    let c = batch.column_by_name("entry_ids")?;
    if c.data_type() == &entry_ids_type() {
        return c.as_any().downcast_ref::<ListArray>().cloned();
    }
    values::to_int32_list(c.as_ref())
}

/// The entry ids of row `i` of a list<int32> column.
pub fn ids_of(list: &ListArray, i: usize) -> &[i32] {
    if list.is_null(i) {
        return &[];
    }
    let offs = list.value_offsets();
    let values = list
        .values()
        .as_any()
        .downcast_ref::<arrow_array::Int32Array>()
        .expect("entry_ids values are int32");
    &values.values()[offs[i] as usize..offs[i + 1] as usize]
}

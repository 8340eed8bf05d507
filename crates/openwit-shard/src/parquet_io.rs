//! The shard parquet: one row per input row.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder, StringBuilder};
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{Result, SampleMeta, ShardError, Status};

const STRINGS: [&str; 5] = ["caption", "url", "key", "status", "error_message"];
const INTS: [&str; 4] = ["width", "height", "original_width", "original_height"];

/// The parquet schema of a shard with carried columns `extra` (all utf8).
pub fn schema(extra: &[String]) -> Schema {
    let mut fields: Vec<Field> = Vec::new();
    for n in STRINGS {
        fields.push(Field::new(
            n,
            DataType::Utf8,
            n != "url" && n != "key" && n != "status",
        ));
    }
    // int32, as img2dataset (pyarrow) writes them.
    for n in INTS {
        fields.push(Field::new(n, DataType::Int32, true));
    }
    fields.push(Field::new("exif", DataType::Utf8, true));
    fields.push(Field::new("sha256", DataType::Utf8, true));
    fields.push(Field::new("phash", DataType::Utf8, true));
    fields.push(Field::new(
        "entry_ids",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
        true,
    ));
    fields.push(Field::new("language", DataType::Utf8, true));
    for e in carried(extra) {
        fields.push(Field::new(e, DataType::Utf8, true));
    }
    Schema::new(fields)
}

/// The fixed columns, in order.
const FIXED: [&str; 14] = [
    "caption",
    "url",
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "exif",
    "sha256",
    "phash",
    "entry_ids",
    "language",
];

/// The carried columns that do not shadow a fixed one (a carried `language` would duplicate
/// the column curation fills).
fn carried(extra: &[String]) -> impl Iterator<Item = &String> {
    extra.iter().filter(|e| !FIXED.contains(&e.as_str()))
}

fn extra_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Writes `rows` (in the given order) to `path`, snappy-compressed, as pyarrow writes them.
pub fn write_parquet(path: &Path, rows: &[SampleMeta], extra: &[String]) -> Result<()> {
    let schema = Arc::new(schema(extra));
    let mut cols: Vec<ArrayRef> = Vec::new();
    let s = |f: &dyn Fn(&SampleMeta) -> Option<String>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    cols.push(s(&|r| r.caption.clone()));
    cols.push(s(&|r| Some(r.url.clone())));
    cols.push(s(&|r| Some(r.key.clone())));
    cols.push(s(&|r| Some(r.status.as_str().to_string())));
    cols.push(s(&|r| r.error_message.clone()));
    let i = |f: &dyn Fn(&SampleMeta) -> Option<i64>| -> ArrayRef {
        let mut b = Int32Builder::new();
        for r in rows {
            b.append_option(f(r).map(|v| v.clamp(0, i32::MAX as i64) as i32));
        }
        Arc::new(b.finish())
    };
    cols.push(i(&|r| r.width));
    cols.push(i(&|r| r.height));
    cols.push(i(&|r| r.original_width));
    cols.push(i(&|r| r.original_height));
    cols.push(s(&|r| r.exif.clone()));
    cols.push(s(&|r| r.sha256.clone()));
    cols.push(s(&|r| r.phash.clone()));
    let mut lb = ListBuilder::new(Int32Builder::new());
    for r in rows {
        match &r.entry_ids {
            Some(ids) => {
                for id in ids {
                    lb.values().append_value(*id);
                }
                lb.append(true);
            }
            None => lb.append(false),
        }
    }
    let list = lb.finish();
    // Match the schema's item field (nullable "item").
    let list = ListArray::new(
        Arc::new(Field::new("item", DataType::Int32, true)),
        list.offsets().clone(),
        list.values().clone(),
        list.nulls().cloned(),
    );
    cols.push(Arc::new(list));
    cols.push(s(&|r| {
        r.language
            .clone()
            .or_else(|| extra_text(r.extra.get("language")))
    }));
    for e in carried(extra) {
        cols.push(s(&|r| extra_text(r.extra.get(e))));
    }
    let batch =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| ShardError::parquet(path, e))?;
    let f = File::create(path).map_err(|e| ShardError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w =
        ArrowWriter::try_new(f, schema, Some(props)).map_err(|e| ShardError::parquet(path, e))?;
    w.write(&batch).map_err(|e| ShardError::parquet(path, e))?;
    w.close().map_err(|e| ShardError::parquet(path, e))?;
    Ok(())
}

fn col<'a, T: 'static>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            ShardError::format(
                path,
                format!("column `{name}` missing or of the wrong type"),
            )
        })
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

fn opt_int(a: &dyn Array, i: usize) -> Option<i64> {
    if a.is_null(i) {
        return None;
    }
    if let Some(a) = a.as_any().downcast_ref::<Int32Array>() {
        return Some(a.value(i) as i64);
    }
    a.as_any().downcast_ref::<Int64Array>().map(|a| a.value(i))
}

fn int_col<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .filter(|c| matches!(c.data_type(), DataType::Int32 | DataType::Int64))
        .ok_or_else(|| {
            ShardError::format(path, format!("column `{name}` missing or not an integer"))
        })
}

/// Reads every row of a shard parquet.
pub fn read_parquet(path: &Path) -> Result<Vec<SampleMeta>> {
    let f = File::open(path).map_err(|e| ShardError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| ShardError::parquet(path, e))?
        .build()
        .map_err(|e| ShardError::parquet(path, e))?;
    let fixed = FIXED;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ShardError::parquet(path, e))?;
        let caption = col::<StringArray>(&batch, "caption", path)?;
        let url = col::<StringArray>(&batch, "url", path)?;
        let key = col::<StringArray>(&batch, "key", path)?;
        let status = col::<StringArray>(&batch, "status", path)?;
        let err = col::<StringArray>(&batch, "error_message", path)?;
        let w = int_col(&batch, "width", path)?;
        let h = int_col(&batch, "height", path)?;
        let ow = int_col(&batch, "original_width", path)?;
        let oh = int_col(&batch, "original_height", path)?;
        let exif = col::<StringArray>(&batch, "exif", path)?;
        let sha = col::<StringArray>(&batch, "sha256", path)?;
        let phash = col::<StringArray>(&batch, "phash", path)?;
        let ids = col::<ListArray>(&batch, "entry_ids", path)?;
        // Shards written before the column existed have no `language`.
        let language = batch
            .column_by_name("language")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let schema = batch.schema();
        let extras: Vec<(String, &StringArray)> = schema
            .fields()
            .iter()
            .filter(|f| !fixed.contains(&f.name().as_str()))
            .filter_map(|f| {
                batch
                    .column_by_name(f.name())
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .map(|a| (f.name().clone(), a))
            })
            .collect();
        for i in 0..batch.num_rows() {
            let st = Status::parse(status.value(i)).ok_or_else(|| {
                ShardError::format(
                    path,
                    format!("row {i}: unknown status `{}`", status.value(i)),
                )
            })?;
            let entry_ids = (!ids.is_null(i)).then(|| {
                let v = ids.value(i);
                let a = v.as_any().downcast_ref::<Int32Array>().expect("int32 list");
                a.iter().flatten().collect::<Vec<i32>>()
            });
            let mut m =
                SampleMeta::new(url.value(i), opt_str(caption, i), key.value(i).to_string());
            m.status = st;
            m.error_message = opt_str(err, i);
            m.width = opt_int(w, i);
            m.height = opt_int(h, i);
            m.original_width = opt_int(ow, i);
            m.original_height = opt_int(oh, i);
            m.exif = opt_str(exif, i);
            m.sha256 = opt_str(sha, i);
            m.phash = opt_str(phash, i);
            m.entry_ids = entry_ids;
            m.language = language.and_then(|a| opt_str(a, i));
            for (name, a) in &extras {
                if let Some(v) = opt_str(a, i) {
                    m.extra.insert(name.clone(), serde_json::Value::String(v));
                }
            }
            out.push(m);
        }
    }
    Ok(out)
}

/// Reads only the named utf8 columns of a parquet (e.g. `key`, `sha256`, `phash`), row-major.
/// Missing columns read as nulls.
pub fn read_parquet_columns(path: &Path, names: &[&str]) -> Result<Vec<Vec<Option<String>>>> {
    let f = File::open(path).map_err(|e| ShardError::io(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| ShardError::parquet(path, e))?;
    let pschema = builder.parquet_schema();
    let idx: Vec<usize> = pschema
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| names.contains(&c.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = parquet::arrow::ProjectionMask::leaves(pschema, idx);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| ShardError::parquet(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ShardError::parquet(path, e))?;
        let arrays: Vec<Option<&StringArray>> = names
            .iter()
            .map(|n| {
                batch
                    .column_by_name(n)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            })
            .collect();
        for i in 0..batch.num_rows() {
            out.push(
                arrays
                    .iter()
                    .map(|a| a.and_then(|a| opt_str(a, i)))
                    .collect(),
            );
        }
    }
    Ok(out)
}

//! The tables one stage writes and another reads, declared once (ARCHITECTURE.md, "Data
//! contracts"). Today: the candidate table that the source stages (`crawl`, `warc`, `import`)
//! write and `curate` reads.

/// The candidate table: one (image URL, caption) pair per row, `<stage>/*.parquet` of the source
/// stages.
pub mod candidates {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema, SchemaRef};

    /// The columns in order: name, type, and whether the source stages may leave it null.
    pub const COLUMNS: &[(&str, DataType, bool)] = &[
        ("url", DataType::Utf8, false),
        ("caption", DataType::Utf8, false),
        ("caption_source", DataType::Utf8, false),
        ("page_url", DataType::Utf8, true),
        ("page_lang", DataType::Utf8, true),
        ("width", DataType::Int32, true),
        ("height", DataType::Int32, true),
        ("source_id", DataType::Utf8, false),
        ("fetch_time", DataType::Int64, true),
        ("extra", DataType::Utf8, true),
    ];

    /// The columns a candidate file from any tool must have: the rest may be absent (read as
    /// nulls).
    pub const REQUIRED: &[&str] = &["url", "caption"];

    /// The schema the source stages write (`COLUMNS` with their nullability).
    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(
            COLUMNS
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        ))
    }

    /// The schema `curate` reads any candidate file into: the same columns, nullable except
    /// [`REQUIRED`] (a file written by another tool may lack `caption_source` or `source_id`).
    pub fn reading_fields() -> Vec<Field> {
        COLUMNS
            .iter()
            .map(|(n, t, _)| Field::new(*n, t.clone(), !REQUIRED.contains(n)))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_reading_schema_relaxes_only_nullability() {
            let w = super::schema();
            let r = super::reading_fields();
            assert_eq!(w.fields().len(), r.len());
            for (a, b) in w.fields().iter().zip(&r) {
                assert_eq!((a.name(), a.data_type()), (b.name(), b.data_type()));
                assert!(b.is_nullable() || !a.is_nullable());
            }
        }
    }
}

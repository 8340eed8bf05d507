//! Parquet rows, one row group at a time (a row group that cannot be decoded is a counted drop
//! of each of its rows not yet read, and the next row group is read).

use std::borrow::Cow;
use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};

use crate::{Drop, ListError};

pub(crate) enum Source {
    File(File),
    Bytes(Bytes),
}

/// A text column of one batch: text (strings, dictionaries, numbers... as
/// [`crate::values::text`]), or bytes checked per row.
pub(crate) enum TextCol {
    Str(ArrayRef),
    Bin(ArrayRef),
}

impl TextCol {
    fn of(a: &ArrayRef) -> TextCol {
        match a.data_type() {
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => TextCol::Bin(a.clone()),
            _ => TextCol::Str(a.clone()),
        }
    }

    /// `Ok(None)`: null; `Err(())`: not UTF-8.
    pub fn get(&self, i: usize) -> Result<Option<Cow<'_, str>>, ()> {
        match self {
            TextCol::Str(a) => Ok(crate::values::text(a.as_ref(), i)),
            TextCol::Bin(a) => {
                if a.is_null(i) {
                    return Ok(None);
                }
                let b = match a.data_type() {
                    DataType::Binary => a.as_binary::<i32>().value(i),
                    DataType::LargeBinary => a.as_binary::<i64>().value(i),
                    DataType::BinaryView => a.as_binary_view().value(i),
                    _ => a.as_fixed_size_binary().value(i),
                };
                std::str::from_utf8(b)
                    .map(|s| Some(Cow::Borrowed(s)))
                    .map_err(|_| ())
            }
        }
    }
}

/// Whether a column of type `t` can be read as text (the URL or caption column).
pub(crate) fn textual(t: &DataType) -> bool {
    !t.is_nested()
}

pub(crate) struct Parquet {
    name: String,
    src: Source,
    meta: ArrowReaderMetadata,
    mask: ProjectionMask,
    /// Rows before each row group.
    starts: Vec<u64>,
    pub total: u64,
    /// The next row group to open.
    next_group: usize,
    reader: Option<ParquetRecordBatchReader>,
    /// Rows of the open row group not yet returned.
    left_in_group: u64,
    pub batch: Option<RecordBatch>,
    pub batch_row: usize,
    /// Rows still to be returned as `unreadable_row_group` drops, and why.
    broken: u64,
    broken_msg: String,
    /// Rows to skip in the first row group opened (a reader resumed mid-group).
    skip_first: u64,
    cur_group: usize,
    /// Counts the batches read (a new value: a new batch).
    pub batch_seq: u64,
}

pub(crate) enum Next {
    /// Row `batch_row` of `batch`.
    Row,
    Dropped(Drop, String),
}

impl Parquet {
    pub fn open(name: &str, src: Source) -> Result<Parquet, ListError> {
        let opts = ArrowReaderOptions::new();
        let meta = match &src {
            Source::File(f) => ArrowReaderMetadata::load(f, opts),
            Source::Bytes(b) => ArrowReaderMetadata::load(b, opts),
        }
        .map_err(|e| {
            ListError::Input(format!(
                "{name}: not a readable parquet file: {e}; fix: check the file (a partial download?) or convert it again"
            ))
        })?;
        let mut starts = Vec::new();
        let mut total = 0u64;
        for rg in meta.metadata().row_groups() {
            starts.push(total);
            total += rg.num_rows().max(0) as u64;
        }
        let mask = ProjectionMask::all();
        Ok(Parquet {
            name: name.to_string(),
            src,
            meta,
            mask,
            starts,
            total,
            next_group: 0,
            reader: None,
            left_in_group: 0,
            batch: None,
            batch_row: 0,
            broken: 0,
            broken_msg: String::new(),
            skip_first: 0,
            cur_group: 0,
            batch_seq: 0,
        })
    }

    pub fn schema(&self) -> &arrow_schema::SchemaRef {
        self.meta.schema()
    }

    /// Reads only the top-level columns `roots` (indexes into the schema).
    pub fn project(&mut self, roots: &[usize]) {
        self.mask = ProjectionMask::roots(self.meta.parquet_schema(), roots.iter().copied());
    }

    /// Starts at row `index`.
    pub fn seek(&mut self, index: u64) {
        let g = self
            .starts
            .partition_point(|&s| s <= index)
            .saturating_sub(1);
        self.next_group = g;
        self.skip_first = index.saturating_sub(self.starts.get(g).copied().unwrap_or(0));
    }

    fn group_rows(&self, g: usize) -> u64 {
        self.meta.metadata().row_group(g).num_rows().max(0) as u64
    }

    fn open_group(&mut self, g: usize, skip: u64) -> Result<ParquetRecordBatchReader, String> {
        let b = match &self.src {
            Source::File(f) => {
                let f = f.try_clone().map_err(|e| e.to_string())?;
                ParquetRecordBatchReaderBuilder::new_with_metadata(f, self.meta.clone())
                    .with_row_groups(vec![g])
                    .with_projection(self.mask.clone())
                    .with_batch_size(8192)
                    .with_offset(skip as usize)
                    .build()
            }
            Source::Bytes(b) => {
                ParquetRecordBatchReaderBuilder::new_with_metadata(b.clone(), self.meta.clone())
                    .with_row_groups(vec![g])
                    .with_projection(self.mask.clone())
                    .with_batch_size(8192)
                    .with_offset(skip as usize)
                    .build()
            }
        };
        b.map_err(|e| e.to_string())
    }

    /// Advances to the next row; `None` after the last.
    pub fn next(&mut self) -> Option<Next> {
        loop {
            if self.broken > 0 {
                self.broken -= 1;
                return Some(Next::Dropped(
                    Drop::UnreadableRowGroup,
                    self.broken_msg.clone(),
                ));
            }
            if let Some(b) = &self.batch {
                self.batch_row += 1;
                if self.batch_row < b.num_rows() {
                    self.left_in_group = self.left_in_group.saturating_sub(1);
                    return Some(Next::Row);
                }
                self.batch = None;
            }
            if let Some(r) = &mut self.reader {
                match r.next() {
                    Some(Ok(b)) if b.num_rows() > 0 => {
                        self.batch = Some(b);
                        self.batch_seq += 1;
                        self.batch_row = 0;
                        self.left_in_group = self.left_in_group.saturating_sub(1);
                        return Some(Next::Row);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        self.reader = None;
                        self.fail_group(e.to_string());
                        continue;
                    }
                    None => {
                        self.reader = None;
                        if self.left_in_group > 0 {
                            self.fail_group(
                                "the row group holds fewer rows than its metadata says".into(),
                            );
                        }
                        continue;
                    }
                }
            }
            let g = self.next_group;
            if g >= self.starts.len() {
                return None;
            }
            self.next_group += 1;
            let skip = std::mem::take(&mut self.skip_first);
            let n = self.group_rows(g).saturating_sub(skip);
            if n == 0 {
                continue;
            }
            self.left_in_group = n;
            self.cur_group = g;
            match self.open_group(g, skip) {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    self.fail_group(e);
                }
            }
        }
    }

    fn fail_group(&mut self, e: String) {
        tracing::warn!(file = %self.name, group = self.cur_group, rows = self.left_in_group, "unreadable parquet row group: {e}");
        self.broken = self.left_in_group;
        self.broken_msg = format!(
            "{}: row group {} cannot be decoded: {e}",
            self.name, self.cur_group
        );
        self.left_in_group = 0;
    }

    pub fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.batch.as_ref()?.column_by_name(name)
    }

    pub fn text_col(&self, name: &str) -> Option<Result<TextCol, String>> {
        self.column(name).map(|c| Ok(TextCol::of(c)))
    }
}

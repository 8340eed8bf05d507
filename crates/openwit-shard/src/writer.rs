//! The shard writer: streams successful samples into the tar, keeps the (small) rows for the
//! parquet and the stats, writes both at `finish`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Result, SampleMeta, ShardError, ShardStats, Status};

/// Writes one shard. Paths are the caller's (the download stage passes the executor's temporary
/// names, which are renamed into place only when the whole shard is done).
pub struct ShardWriter {
    tar: tar::Builder<BufWriter<File>>,
    tar_path: PathBuf,
    rows: Vec<SampleMeta>,
    extra_columns: Vec<String>,
}

impl ShardWriter {
    /// Creates the tar at `tar_path`. `extra_columns` are the carried input columns, in the order
    /// they appear in the parquet (after the fixed ones).
    pub fn create(tar_path: &Path, extra_columns: Vec<String>) -> Result<Self> {
        let f = File::create(tar_path).map_err(|e| ShardError::io(tar_path, e))?;
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(ShardWriter {
            tar,
            tar_path: tar_path.to_path_buf(),
            rows: Vec::new(),
            extra_columns,
        })
    }

    fn append(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut h, name, data)
            .map_err(|e| ShardError::io(&self.tar_path, e))
    }

    /// Adds a successful sample: `KEY.{ext}` (the image bytes), `KEY.json`, and `KEY.txt` when
    /// it has a caption (img2dataset's member order: image, json, txt).
    pub fn add_success(&mut self, meta: SampleMeta, ext: &str, image: &[u8]) -> Result<()> {
        debug_assert_eq!(meta.status, Status::Success);
        let key = meta.key.clone();
        self.append(&format!("{key}.{ext}"), image)?;
        let json = serde_json::to_vec(&meta.to_json()).expect("json values serialize");
        self.append(&format!("{key}.json"), &json)?;
        if let Some(c) = &meta.caption {
            self.append(&format!("{key}.txt"), c.as_bytes())?;
        }
        self.rows.push(meta);
        Ok(())
    }

    /// Records a failed row (parquet only).
    pub fn add_failure(&mut self, meta: SampleMeta) {
        self.rows.push(meta);
    }

    /// Rows recorded so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Closes the tar (fsync is the caller's, or the executor's), writes the parquet (rows sorted
    /// by key) and the stats. `base` supplies duration, times, reasons and byte counts; counts are
    /// computed from the rows. Returns the stats written.
    pub fn finish(
        self,
        parquet_path: &Path,
        stats_path: &Path,
        base: ShardStats,
    ) -> Result<ShardStats> {
        let ShardWriter {
            tar,
            tar_path,
            mut rows,
            extra_columns,
        } = self;
        let mut inner = tar.into_inner().map_err(|e| ShardError::io(&tar_path, e))?;
        inner.flush().map_err(|e| ShardError::io(&tar_path, e))?;
        drop(inner);

        rows.sort_by(|a, b| a.key.cmp(&b.key));
        write_parquet_rows(parquet_path, &rows, &extra_columns)?;

        let mut stats = base;
        stats.count = rows.len() as u64;
        stats.successes = 0;
        stats.failed_to_download = 0;
        stats.failed_to_resize = 0;
        stats.status_dict.clear();
        for r in &rows {
            match r.status {
                Status::Success => {
                    stats.successes += 1;
                    *stats.status_dict.entry("success".into()).or_default() += 1;
                }
                Status::FailedToDownload => stats.failed_to_download += 1,
                Status::FailedToResize => stats.failed_to_resize += 1,
            }
            if let Some(m) = &r.error_message {
                *stats.status_dict.entry(m.clone()).or_default() += 1;
            }
        }
        let text = serde_json::to_string_pretty(&stats).expect("stats serialize");
        std::fs::write(stats_path, text).map_err(|e| ShardError::io(stats_path, e))?;
        Ok(stats)
    }
}

fn write_parquet_rows(path: &Path, rows: &[SampleMeta], extra: &[String]) -> Result<()> {
    crate::parquet_io::write_parquet(path, rows, extra)
}

//! The shard writer: streams successful samples into the tar, keeps the (small) rows for the
//! parquet and the stats, writes both at `finish`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
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

        let stats = counted(&rows, base);
        let text = serde_json::to_string_pretty(&stats).expect("stats serialize");
        std::fs::write(stats_path, text).map_err(|e| ShardError::io(stats_path, e))?;
        Ok(stats)
    }
}

/// `base` with the counts and `status_dict` of `rows`.
fn counted(rows: &[SampleMeta], base: ShardStats) -> ShardStats {
    let mut stats = base;
    stats.count = rows.len() as u64;
    stats.successes = 0;
    stats.failed_to_download = 0;
    stats.failed_to_resize = 0;
    stats.status_dict.clear();
    for r in rows {
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
    stats
}

/// The reason token of an error message written as `reason: details` (`http_404: HTTP 404`);
/// the whole message when it has no such token.
pub fn reason_of(message: &str) -> &str {
    match message.split_once(": ") {
        Some((r, _))
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            r
        }
        _ => message,
    }
}

/// The three files of one shard.
#[derive(Debug, Clone, Copy)]
pub struct ShardFiles<'a> {
    pub tar: &'a Path,
    pub parquet: &'a Path,
    pub stats: &'a Path,
}

/// Turns successful rows of a committed shard into failures after the fact (the download
/// stage's run-wide dedup, which can only decide once every shard is written): `demote` maps a
/// key to its new status and `reason: details` message. The samples leave the tar (the other
/// regular-file members are copied unchanged, in order, read through [`crate::ShardReader`];
/// members that are not regular files, which the writer never writes, are not carried over); the parquet rows take the status and message, keep
/// `sha256` and `phash` and lose their sizes and EXIF; `_stats.json` is recounted, its
/// `failures_by_reason` from the rows' messages, its times kept. Keys in `demote` that are not
/// successes are left alone, so running it twice changes nothing the second time. The shard is
/// read from `from` and written to `to`: the same files (each replaced atomically, the tar first
/// and the parquet last), or a stage's declared outputs, which its executor commits (so the
/// distributed executor uploads the demoted shard as the reduce step's output). Returns the new
/// stats.
pub fn demote_rows(
    from: ShardFiles<'_>,
    to: ShardFiles<'_>,
    extra_columns: &[String],
    demote: &BTreeMap<String, (Status, String)>,
) -> Result<ShardStats> {
    let tar_path = from.tar;
    let core = |e: openwit_core::Error| ShardError::format(tar_path, e.to_string());
    let mut rows = crate::read_parquet(from.parquet)?;
    for r in rows.iter_mut() {
        if r.status != Status::Success {
            continue;
        }
        if let Some((st, msg)) = demote.get(&r.key) {
            r.status = *st;
            r.error_message = Some(msg.clone());
            r.width = None;
            r.height = None;
            r.original_width = None;
            r.original_height = None;
            r.exif = None;
        }
    }
    rows.sort_by(|a, b| a.key.cmp(&b.key));

    // The tar, without the demoted samples: the other members' blocks copied as they stand
    // (headers, extension headers and data; the padding written as zeros), then the end of
    // archive (two zero blocks), as the writer ends a tar.
    {
        let out = openwit_core::atomic::AtomicFile::create(to.tar).map_err(core)?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut headers = File::open(tar_path).map_err(|e| ShardError::io(tar_path, e))?;
        let write = |out: &mut BufWriter<_>, bytes: &[u8]| {
            out.write_all(bytes).map_err(|e| ShardError::io(to.tar, e))
        };
        for m in crate::ShardReader::open(tar_path)?.members() {
            let m = m?;
            if !m.complete {
                continue; // the error follows
            }
            let key = m.name.split('.').next().unwrap_or("");
            if demote.contains_key(key) {
                continue;
            }
            let mut h = vec![0u8; (m.member.offset - m.header_offset) as usize];
            headers
                .seek(SeekFrom::Start(m.header_offset))
                .and_then(|_| headers.read_exact(&mut h))
                .map_err(|e| ShardError::io(tar_path, e))?;
            write(&mut out, &h)?;
            write(&mut out, &m.member.data)?;
            let pad = (512 - m.member.size % 512) % 512;
            write(&mut out, &[0u8; 512][..pad as usize])?;
        }
        write(&mut out, &[0u8; 1024])?;
        let out = out
            .into_inner()
            .map_err(|e| ShardError::io(to.tar, e.into_error()))?;
        out.commit().map_err(core)?;
    }

    let old = crate::read_stats(from.stats)?;
    let mut stats = counted(&rows, old);
    stats.failures_by_reason.clear();
    for r in rows.iter().filter(|r| r.status != Status::Success) {
        let reason = r
            .error_message
            .as_deref()
            .map(reason_of)
            .unwrap_or("unknown");
        *stats
            .failures_by_reason
            .entry(reason.to_string())
            .or_default() += 1;
    }
    let text = serde_json::to_string_pretty(&stats).expect("stats serialize");
    openwit_core::atomic::write_atomic(to.stats, text.as_bytes()).map_err(core)?;

    let parquet_path = to.parquet;
    let tmp = openwit_core::atomic::temp_path_for(parquet_path);
    crate::parquet_io::write_parquet(&tmp, &rows, extra_columns)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| ShardError::io(&tmp, e))?;
    std::fs::rename(&tmp, parquet_path).map_err(|e| ShardError::io(parquet_path, e))?;
    if let Some(dir) = parquet_path.parent() {
        openwit_core::atomic::sync_dir(dir).map_err(core)?;
    }
    Ok(stats)
}

fn write_parquet_rows(path: &Path, rows: &[SampleMeta], extra: &[String]) -> Result<()> {
    crate::parquet_io::write_parquet(path, rows, extra)
}

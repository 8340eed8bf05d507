//! `openwit-shard`: webdataset `.tar` + parquet shards in img2dataset's layout, written and read.
//!
//! A shard `NNNNN` is three files in one folder:
//! - `NNNNN.tar`: for each successful sample, `KEY.jpg` (or `.webp`/`.png`), `KEY.txt` (the
//!   caption) and `KEY.json` (the sample's metadata); webdataset and OpenCLIP read it unchanged;
//! - `NNNNN.parquet`: one row per *input* row, failures included (`url, caption, key, status,
//!   error_message, width, height, original_width, original_height, exif, sha256`, then ours:
//!   `phash, entry_ids, language`, then the carried columns);
//! - `NNNNN_stats.json`: counts, duration, failures by message (`status_dict`) and by reason.
//!
//! A folder of shards also has `sizes.json` (`{"00000.tar": count, ...}`), which OpenCLIP reads
//! instead of `--train-num-samples` ([`write_sizes`]).
//!
//! Keys are img2dataset's: shard number and index in the shard, zero-padded ([`ShardLayout`]).
//!
//! ```
//! use openwit_shard::{SampleMeta, ShardLayout, ShardReader, ShardWriter, ShardStats};
//! let dir = tempfile::tempdir().unwrap();
//! let layout = ShardLayout::new(10_000);
//! let tar = dir.path().join("00001.tar");
//! let mut w = ShardWriter::create(&tar, vec!["page_url".into()]).unwrap();
//! let mut ok = SampleMeta::new("http://a/x.jpg", Some("a cat".into()), layout.key(1, 5));
//! ok.set_success(256, 256, 640, 480, "ab".repeat(32));
//! ok.extra.insert("page_url".into(), "http://a/".into());
//! w.add_success(ok, "jpg", b"\xff\xd8 not really a jpeg").unwrap();
//! let bad = SampleMeta::new("http://a/y.jpg", None, layout.key(1, 6))
//!     .failed_to_download("HTTP 404");
//! w.add_failure(bad);
//! let stats = w.finish(&dir.path().join("00001.parquet"), &dir.path().join("00001_stats.json"),
//!     ShardStats::default()).unwrap();
//! assert_eq!((stats.count, stats.successes, stats.failed_to_download), (2, 1, 1));
//!
//! let samples: Vec<_> = ShardReader::open(&tar).unwrap().samples().collect::<Result<_, _>>().unwrap();
//! assert_eq!(samples.len(), 1);
//! assert_eq!(samples[0].key, "000010005");
//! assert_eq!(samples[0].text().as_deref(), Some("a cat"));
//! let rows = openwit_shard::read_parquet(&dir.path().join("00001.parquet")).unwrap();
//! assert_eq!(rows[1].status, openwit_shard::Status::FailedToDownload);
//! ```

pub mod orient;
pub mod overlap;
mod parquet_io;
mod reader;
pub mod rgb;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use parquet_io::{read_parquet, read_parquet_columns, write_parquet};
pub use reader::{Member, Members, READ_BUFFER, Sample, Samples, ShardReader, Skipped, TarMember};
pub use writer::{ShardFiles, ShardWriter, demote_rows, reason_of};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

impl ShardError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ShardError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn parquet(path: &Path, e: impl std::fmt::Display) -> Self {
        ShardError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        ShardError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl From<ShardError> for openwit_core::Error {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::Io { path, source } => openwit_core::Error::Io { path, source },
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

/// `Result` with [`ShardError`].
pub type Result<T, E = ShardError> = std::result::Result<T, E>;

/// How keys and shard names are formed (img2dataset's scheme).
///
/// A key is `shard * 10^d + index`, zero-padded to `shard_digits + d` digits, where `d` is the
/// number of digits of the shard size (`ceil(log10(shard_size))`, so 4 for 10,000) and shard names
/// have `shard_digits` (5) digits: at 10,000 per shard, sample 5 of shard 1 is `000010005`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    pub shard_size: u64,
    pub shard_digits: usize,
    pub sample_digits: usize,
}

impl ShardLayout {
    /// The layout for `shard_size` samples per shard (at least 1) and 5-digit shard names.
    pub fn new(shard_size: u64) -> Self {
        let shard_size = shard_size.max(1);
        // ceil(log10(n)) without floating point: the digits of n - 1 (0 for n = 1).
        let sample_digits = if shard_size <= 1 {
            0
        } else {
            (shard_size - 1).to_string().len()
        };
        ShardLayout {
            shard_size,
            shard_digits: 5,
            sample_digits,
        }
    }

    /// Widens shard names for runs of more than 100,000 shards.
    pub fn with_shard_count(mut self, shards: u64) -> Self {
        let need = shards.saturating_sub(1).to_string().len();
        self.shard_digits = self.shard_digits.max(need);
        self
    }

    /// The key of sample `index` (0-based) of shard `shard`.
    pub fn key(&self, shard: u64, index: u64) -> String {
        let n = shard * 10u64.pow(self.sample_digits as u32) + index;
        format!("{n:0w$}", w = self.shard_digits + self.sample_digits)
    }

    /// `NNNNN`, the shard's base name.
    pub fn shard_name(&self, shard: u64) -> String {
        format!("{shard:0w$}", w = self.shard_digits)
    }
}

/// A sample's outcome, as img2dataset writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    FailedToDownload,
    FailedToResize,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::FailedToDownload => "failed_to_download",
            Status::FailedToResize => "failed_to_resize",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "success" => Some(Status::Success),
            "failed_to_download" => Some(Status::FailedToDownload),
            "failed_to_resize" => Some(Status::FailedToResize),
            _ => None,
        }
    }
}

/// One input row's outcome: a parquet row, and for successes the sample's `.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleMeta {
    pub url: String,
    pub caption: Option<String>,
    pub key: String,
    pub status: Status,
    pub error_message: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub original_width: Option<i64>,
    pub original_height: Option<i64>,
    /// EXIF tags as a JSON object string (img2dataset's `exif`), when extracted.
    pub exif: Option<String>,
    /// Hex sha256 of the downloaded (original) bytes.
    pub sha256: Option<String>,
    /// 64-bit DCT perceptual hash of the image, 16 hex digits.
    pub phash: Option<String>,
    /// Query entries the caption matched (from curation).
    pub entry_ids: Option<Vec<i32>>,
    /// The caption's language (from curation's language id), e.g. `en`.
    pub language: Option<String>,
    /// Carried input columns (name -> value), written as top-level json fields and parquet columns.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl SampleMeta {
    /// A row that has not succeeded yet (status `failed_to_download`, no error message).
    pub fn new(url: impl Into<String>, caption: Option<String>, key: String) -> Self {
        SampleMeta {
            url: url.into(),
            caption,
            key,
            status: Status::FailedToDownload,
            error_message: None,
            width: None,
            height: None,
            original_width: None,
            original_height: None,
            exif: None,
            sha256: None,
            phash: None,
            entry_ids: None,
            language: None,
            extra: BTreeMap::new(),
        }
    }

    /// Marks the row a success with its output and original sizes and the sha256 of the bytes.
    pub fn set_success(&mut self, width: u32, height: u32, ow: u32, oh: u32, sha256: String) {
        self.status = Status::Success;
        self.error_message = None;
        self.width = Some(width.into());
        self.height = Some(height.into());
        self.original_width = Some(ow.into());
        self.original_height = Some(oh.into());
        self.sha256 = Some(sha256);
        if self.exif.is_none() {
            // img2dataset writes an empty EXIF object for images without tags.
            self.exif = Some("{}".into());
        }
    }

    /// The row, failed while downloading with `message`.
    pub fn failed_to_download(mut self, message: impl Into<String>) -> Self {
        self.status = Status::FailedToDownload;
        self.error_message = Some(message.into());
        self
    }

    /// The row, failed while decoding or resizing with `message`.
    pub fn failed_to_resize(mut self, message: impl Into<String>) -> Self {
        self.status = Status::FailedToResize;
        self.error_message = Some(message.into());
        self
    }

    /// The sample's `.json` (img2dataset's fields, ours, then the carried columns).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let mut m = Map::new();
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        let fields = [
            ("url", json!(self.url)),
            ("caption", json!(self.caption)),
            ("key", json!(self.key)),
            ("status", json!(self.status.as_str())),
            ("error_message", json!(self.error_message)),
            ("width", json!(self.width)),
            ("height", json!(self.height)),
            ("original_width", json!(self.original_width)),
            ("original_height", json!(self.original_height)),
            ("exif", json!(self.exif)),
            ("sha256", json!(self.sha256)),
            ("phash", json!(self.phash)),
            ("entry_ids", json!(self.entry_ids)),
        ];
        for (k, v) in fields {
            m.insert(k.to_string(), v);
        }
        // A carried `language` column stands in when curation's is absent.
        if self.language.is_some() || !m.contains_key("language") {
            m.insert("language".into(), json!(self.language));
        }
        Value::Object(m)
    }
}

/// A shard's `_stats.json` (img2dataset's fields plus `failures_by_reason` and `duplicates`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub count: u64,
    pub successes: u64,
    pub failed_to_download: u64,
    pub failed_to_resize: u64,
    /// Seconds from the shard's start to its end.
    pub duration: f64,
    /// Unix seconds.
    pub start_time: f64,
    pub end_time: f64,
    /// Error message -> count, and `success` -> successes (img2dataset's).
    pub status_dict: BTreeMap<String, u64>,
    /// Failure reason (a short stable token like `http_404`, `timeout`, `bomb`) -> count.
    #[serde(default)]
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Bytes downloaded.
    #[serde(default)]
    pub bytes_downloaded: u64,
}

/// Writes `sizes.json` (`{"NNNNN.tar": samples}`) into `path`, replacing it atomically.
pub fn write_sizes(path: &Path, sizes: &BTreeMap<String, u64>) -> Result<()> {
    let text = serde_json::to_string_pretty(sizes).expect("a map of numbers serializes");
    std::fs::write(path, text).map_err(|e| ShardError::io(path, e))
}

/// Reads a `sizes.json`.
pub fn read_sizes(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path).map_err(|e| ShardError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ShardError::format(path, e.to_string()))
}

/// Reads a `_stats.json`.
pub fn read_stats(path: &Path) -> Result<ShardStats> {
    let text = std::fs::read_to_string(path).map_err(|e| ShardError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ShardError::format(path, e.to_string()))
}

/// The shard tars in `dir` (`NNNNN.tar`, committed names only), sorted.
pub fn list_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| ShardError::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| ShardError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".tar")
            && !stem.is_empty()
            && stem.bytes().all(|b| b.is_ascii_digit())
        {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_img2dataset() {
        let l = ShardLayout::new(10_000);
        assert_eq!(l.sample_digits, 4);
        assert_eq!(l.key(1, 5), "000010005");
        assert_eq!(l.key(0, 0), "000000000");
        assert_eq!(l.shard_name(12), "00012");
        let l = ShardLayout::new(100);
        assert_eq!(l.key(3, 99), "0000399");
        let l = ShardLayout::new(1000).with_shard_count(200_000);
        assert_eq!(l.key(123_456, 7), "123456007");
        assert_eq!(ShardLayout::new(1).key(4, 0), "00004");
    }
}

//! The `[download]` table. Names follow img2dataset's options where one exists.

use openwit_core::config::{Range, range};
use serde::{Deserialize, Serialize};

/// How images are resized (img2dataset's `resize_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Keep the image as it is.
    No,
    /// Fit inside `image_size` x `image_size` keeping the aspect ratio, pad with white (default).
    Border,
    /// Smaller side = `image_size`, aspect ratio kept.
    KeepRatio,
    /// Larger side = `image_size`, aspect ratio kept.
    KeepRatioLargest,
    /// Smaller side = `image_size`, then the centre `image_size` x `image_size` square.
    CenterCrop,
}

/// The encoded output format (img2dataset's `encode_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodeFormat {
    Jpg,
    /// Lossless WebP (the pure-Rust encoder writes lossless only).
    Webp,
    Png,
}

impl EncodeFormat {
    pub fn ext(self) -> &'static str {
        match self {
            EncodeFormat::Jpg => "jpg",
            EncodeFormat::Webp => "webp",
            EncodeFormat::Png => "png",
        }
    }
}

/// The format of a URL-list input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// From the extension (`.parquet`, `.csv`, `.tsv`, `.jsonl`, `.json`, each optionally `.gz`).
    Auto,
    Parquet,
    Csv,
    Tsv,
    Jsonl,
}

fn d_input() -> String {
    use openwit_core::artifact::{Artifact, Curated};
    Curated::PRODUCER.into()
}
fn d_format() -> InputFormat {
    InputFormat::Auto
}
fn d_url() -> String {
    "url".into()
}
fn d_caption() -> Option<String> {
    Some("caption".into())
}
fn d_shard() -> u64 {
    10_000
}
fn d_size() -> u32 {
    256
}
fn d_mode() -> ResizeMode {
    ResizeMode::Border
}
fn d_enc() -> EncodeFormat {
    EncodeFormat::Jpg
}
fn d_quality() -> u8 {
    95
}
fn d_max_pixels() -> u64 {
    89_478_485
}
fn d_max_dim() -> u32 {
    32_768
}
fn d_image_budget() -> u64 {
    1024
}
fn d_body() -> u64 {
    32 << 20
}
fn d_conc() -> usize {
    64
}
fn d_host_conc() -> usize {
    16
}
fn d_connect() -> f64 {
    10.0
}
fn d_timeout() -> f64 {
    30.0
}
fn d_read() -> f64 {
    10.0
}
fn d_retries() -> u32 {
    2
}
fn d_backoff() -> f64 {
    0.5
}
fn d_retry_after() -> f64 {
    30.0
}
fn t() -> bool {
    true
}
fn d_ua() -> String {
    openwit_http::DEFAULT_USER_AGENT.into()
}
fn d_token() -> String {
    openwit_http::DEFAULT_PRODUCT_TOKEN.into()
}
fn d_exclude_distance() -> u32 {
    4
}
fn d_directives() -> Vec<String> {
    ["noai", "noimageai", "noindex", "noimageindex"]
        .map(String::from)
        .to_vec()
}

// The ranges of this table's own numeric keys (shared ones are in `openwit_core::config::range`;
// pipelines/README.md lists them all).
openwit_core::config_ranges! {
    fn shard_rows = Range::new(1.0, 10_000_000.0, "input rows per shard");
    fn jpeg_quality = Range::new(1.0, 100.0, "a JPEG quality");
    fn aspect_ratio = Range::new(1.0, 1e6, "a long side / short side ratio");
    fn image_pixels = Range::new(1.0, 65_535.0 * 65_535.0, "pixels");
    fn image_side = Range::new(1.0, 1_048_576.0, "pixels");
    fn hamming = Range::new(0.0, 64.0, "bits of a 64-bit hash");
    fn body_bytes = Range::new(1.0, 4_294_967_296.0, "bytes");
    fn image_budget_mib = Range::new(1.0, 1_048_576.0, "MiB");
}

/// The `[download]` table of a pipeline file. Every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `"curate"` (default): the kept rows of the curated table. Otherwise a URL-list file or
    /// folder (relative to the pipeline file), read in sorted order.
    #[serde(default = "d_input")]
    pub input: String,
    /// URL-list format. Default `auto` (from the extension).
    #[serde(default = "d_format")]
    pub input_format: InputFormat,
    /// URL column. Default `url`.
    #[serde(default = "d_url")]
    pub url_col: String,
    /// Caption column (none: no `.txt`). Default `caption`.
    #[serde(default = "d_caption")]
    pub caption_col: Option<String>,
    /// Input columns carried into each sample's json and the shard parquet. Default none.
    #[serde(default)]
    pub save_additional_columns: Vec<String>,
    /// Input rows per shard. Default 10,000.
    #[serde(default = "d_shard", deserialize_with = "shard_rows")]
    pub shard_size: u64,

    /// Output side in pixels. Default 256.
    #[serde(default = "d_size", deserialize_with = "range::pixels")]
    pub image_size: u32,
    /// `no`, `border` (default), `keep_ratio`, `keep_ratio_largest`, `center_crop`.
    #[serde(default = "d_mode")]
    pub resize_mode: ResizeMode,
    /// Only shrink, never enlarge. Default false.
    #[serde(default)]
    pub resize_only_if_bigger: bool,
    /// `jpg` (default), `webp` (lossless), `png`.
    #[serde(default = "d_enc")]
    pub encode_format: EncodeFormat,
    /// JPEG quality. Default 95.
    #[serde(default = "d_quality", deserialize_with = "jpeg_quality")]
    pub encode_quality: u8,
    /// Keep the downloaded bytes when nothing would change (same format, no resize, no rotation,
    /// RGB). Default false.
    #[serde(default)]
    pub skip_reencode: bool,
    /// Drop images whose smaller side is below this. Default 0.
    #[serde(default, deserialize_with = "range::pixels")]
    pub min_image_size: u32,
    /// Drop images whose long/short side ratio exceeds this. Default: no limit.
    #[serde(default, deserialize_with = "aspect_ratio")]
    pub max_aspect_ratio: Option<f64>,
    /// Decompression-bomb guard: most pixels (width x height, from the header). Default 89,478,485.
    #[serde(default = "d_max_pixels", deserialize_with = "image_pixels")]
    pub max_pixels: u64,
    /// Decompression-bomb guard: largest width or height. Default 32,768.
    #[serde(default = "d_max_dim", deserialize_with = "image_side")]
    pub max_dimension: u32,
    /// Memory the image threads may decode into at once, in MiB, all threads together: each image
    /// is admitted against it with its cost from the header (width x height x channels x bytes per
    /// sample at the decode size, plus working copies), in arrival order; one larger than the
    /// whole budget is decoded alone. Independent of the core count. Default 1024.
    #[serde(default = "d_image_budget", deserialize_with = "image_budget_mib")]
    pub image_memory_budget_mb: u64,

    /// Drop exact duplicates (same sha256 of the downloaded bytes) across the run. Default true.
    #[serde(default = "t")]
    pub dedup_sha256: bool,
    /// Drop near-duplicates: perceptual hashes within this Hamming distance of an earlier
    /// image. Default: keep them (the hash is stored either way).
    #[serde(default, deserialize_with = "hamming")]
    pub near_dup_distance: Option<u32>,
    /// Evaluation sets to keep out of the shards (decontamination): image files, folders of
    /// them (an ImageFolder), webdataset tars or folders of tars (a clip_benchmark set, OpenWIT
    /// shards), relative to the pipeline file. A fetched image with the bytes of one of their
    /// images (sha256) or a perceptual hash within `exclude_eval_phash_distance` is dropped as
    /// `eval_overlap`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_eval: Vec<String>,
    /// The perceptual-hash distance of `exclude_eval`, in bits of 64. Default 4.
    #[serde(default = "d_exclude_distance", deserialize_with = "hamming")]
    pub exclude_eval_phash_distance: u32,

    /// Requests in flight at once, all hosts together. Default 64.
    #[serde(default = "d_conc", deserialize_with = "range::concurrency")]
    pub concurrency: usize,
    /// Requests in flight at once per host. Default 16.
    #[serde(default = "d_host_conc", deserialize_with = "range::concurrency")]
    pub per_host_concurrency: usize,
    /// Minimum seconds between two requests to one host. Default 0.
    #[serde(default, deserialize_with = "range::delay")]
    pub per_host_delay: f64,
    /// Connect timeout, seconds. Default 10.
    #[serde(default = "d_connect", deserialize_with = "range::timeout")]
    pub connect_timeout: f64,
    /// Whole-request timeout (headers and body), seconds. Default 30.
    #[serde(default = "d_timeout", deserialize_with = "range::timeout")]
    pub timeout: f64,
    /// Longest wait for the next body bytes (a stalled server), seconds. Default 10.
    #[serde(default = "d_read", deserialize_with = "range::timeout")]
    pub read_timeout: f64,
    /// Most body bytes read; larger images are dropped while streaming. Default 32 MiB.
    #[serde(default = "d_body", deserialize_with = "body_bytes")]
    pub max_body_bytes: u64,
    /// Retries after timeouts, resets, 5xx and 429. Default 2.
    #[serde(default = "d_retries", deserialize_with = "range::retries")]
    pub retries: u32,
    /// First backoff, seconds (doubled per retry, with jitter). Default 0.5.
    #[serde(default = "d_backoff", deserialize_with = "range::delay")]
    pub backoff: f64,
    /// Longest `Retry-After` honoured, seconds; longer ones drop the sample. Default 30.
    #[serde(default = "d_retry_after", deserialize_with = "range::delay")]
    pub max_retry_after: f64,
    /// Check robots.txt per host before requesting images. Default true.
    #[serde(default = "t")]
    pub respect_robots: bool,
    /// The User-Agent header. Default `openwit_http::DEFAULT_USER_AGENT`, the one of
    /// every openwit client.
    #[serde(default = "d_ua")]
    pub user_agent: String,
    /// The product token matched against robots.txt groups and `X-Robots-Tag: token: ...`.
    /// Default `openwit`.
    #[serde(default = "d_token")]
    pub user_agent_token: String,
    /// `X-Robots-Tag` directives that drop a sample. Default noai, noimageai, noindex, noimageindex
    /// (with `noindex` in the list, `none` and a past `unavailable_after: <date>` drop it too).
    #[serde(default = "d_directives")]
    pub disallowed_header_directives: Vec<String>,
    /// The pipeline's proxy (`[pipeline] proxy`, set by the CLI; not a `[download]` key).
    #[serde(skip)]
    pub proxy: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl Config {
    /// Checks values serde cannot; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |k: &str, why: &str| Err(format!("[download] {k}: {why}"));
        if self.shard_size == 0 {
            return bad("shard_size", "must be at least 1");
        }
        if self.image_size == 0 && self.resize_mode != ResizeMode::No {
            return bad(
                "image_size",
                "must be at least 1 (or set resize_mode = \"no\")",
            );
        }
        if !(1..=100).contains(&self.encode_quality) {
            return bad("encode_quality", "must be between 1 and 100");
        }
        if self.concurrency == 0 || self.per_host_concurrency == 0 {
            return bad(
                "concurrency",
                "concurrency and per_host_concurrency must be at least 1",
            );
        }
        if !(self.timeout > 0.0 && self.connect_timeout > 0.0 && self.read_timeout > 0.0) {
            return bad("timeout", "timeouts must be positive numbers of seconds");
        }
        if self.per_host_delay < 0.0 || self.backoff < 0.0 {
            return bad("per_host_delay", "delays must be zero or positive");
        }
        if let Some(r) = self.max_aspect_ratio
            && r < 1.0
        {
            return bad(
                "max_aspect_ratio",
                "must be at least 1.0 (long side / short side)",
            );
        }
        if self.user_agent_token.trim().is_empty() {
            return bad("user_agent_token", "must not be empty");
        }
        Ok(())
    }

    /// The settings the outputs depend on (fingerprinted): not concurrency, timeouts or retries.
    pub fn output_config(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "input": self.input,
            "input_format": self.input_format,
            "url_col": self.url_col,
            "caption_col": self.caption_col,
            "save_additional_columns": self.save_additional_columns,
            "shard_size": self.shard_size,
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "resize_only_if_bigger": self.resize_only_if_bigger,
            "encode_format": self.encode_format,
            "encode_quality": self.encode_quality,
            "skip_reencode": self.skip_reencode,
            "min_image_size": self.min_image_size,
            "max_aspect_ratio": self.max_aspect_ratio,
            "max_pixels": self.max_pixels,
            "max_dimension": self.max_dimension,
            "dedup_sha256": self.dedup_sha256,
            "near_dup_distance": self.near_dup_distance,
            "max_body_bytes": self.max_body_bytes,
            "respect_robots": self.respect_robots,
            "user_agent_token": self.user_agent_token,
            "disallowed_header_directives": self.disallowed_header_directives,
        });
        // Decontamination, keyed only when used: workdirs made before it stay up to date.
        if !self.exclude_eval.is_empty() {
            v["exclude_eval"] = serde_json::json!(self.exclude_eval);
            v["exclude_eval_phash_distance"] = serde_json::json!(self.exclude_eval_phash_distance);
        }
        v
    }
}

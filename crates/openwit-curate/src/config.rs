//! The `[curate]` and `[balance]` tables of a pipeline file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How duplicates are removed (the first occurrence in input order wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DedupMode {
    /// Keep nothing twice: drop a candidate whose exact (URL, caption) pair was seen before.
    #[default]
    UrlCaption,
    /// One caption per URL: drop a candidate whose exact URL was seen before.
    Url,
    /// Keep duplicates.
    None,
}

fn d_min_chars() -> usize {
    5
}
fn d_min_words() -> usize {
    2
}
fn d_max_chars() -> usize {
    1000
}
fn d_true() -> bool {
    true
}
fn d_min_conf() -> f32 {
    0.0
}
fn d_languages() -> Vec<String> {
    vec!["en".into()]
}
fn d_t() -> u64 {
    20_000
}
fn d_factor() -> f64 {
    1.0
}
fn d_partitions() -> usize {
    16
}
fn d_rows_per_task() -> usize {
    1_000_000
}

// The ranges of these tables' own numeric keys (shared ones are in `openwit_core::config::range`;
// pipelines/README.md lists them all).
openwit_core::config_ranges! {
    fn text_chars = openwit_core::config::Range::new(0.0, 1_000_000.0, "characters");
    fn max_text_chars = openwit_core::config::Range::new(1.0, 1_000_000.0, "characters");
    fn text_words = openwit_core::config::Range::new(0.0, 100_000.0, "words");
    fn oversample = openwit_core::config::Range::new(0.001, 1000.0, "a factor");
    fn partitions = openwit_core::config::Range::new(1.0, 65_536.0, "partitions");
}

/// Caption quality rules (all checks run on the cleaned caption: HTML entities decoded twice,
/// whitespace collapsed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Shortest caption kept, in characters. Default 5.
    #[serde(default = "d_min_chars", deserialize_with = "text_chars")]
    pub min_chars: usize,
    /// Fewest words kept. Default 2.
    #[serde(default = "d_min_words", deserialize_with = "text_words")]
    pub min_words: usize,
    /// Longest caption kept, in characters. Default 1000.
    #[serde(default = "d_max_chars", deserialize_with = "max_text_chars")]
    pub max_chars: usize,
    /// Use the built-in boilerplate list (`image`, `photo`, `logo`, `icon`, `spacer`,
    /// `thumbnail`, `click here`, ...). Default true.
    #[serde(default = "d_true")]
    pub default_boilerplate: bool,
    /// More boilerplate captions (compared lower-cased, without digits and punctuation).
    #[serde(default)]
    pub boilerplate: Vec<String>,
    /// Drop captions that are only a URL or a file path. Default true.
    #[serde(default = "d_true")]
    pub drop_url_or_path: bool,
    /// Drop automatically generated names and camera data (`IMG_1234.JPG`, `DSC00042`,
    /// `20160716_113957.JPG`, `Canon EOS 5D f/2.8 1/200s ISO100`). Default true.
    #[serde(default = "d_true")]
    pub drop_camera_names: bool,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            min_chars: d_min_chars(),
            min_words: d_min_words(),
            max_chars: d_max_chars(),
            default_boilerplate: true,
            boilerplate: Vec::new(),
            drop_url_or_path: true,
            drop_camera_names: true,
        }
    }
}

/// Language identification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageConfig {
    /// The identifier: `whichlang` (default, chosen by measurement) or `whatlang`.
    #[serde(default)]
    pub engine: crate::lang::Engine,
    /// Languages kept (ISO 639-1 codes, as stored in the `language` column). Default `["en"]`.
    /// An empty list keeps every language (the language is still stored).
    #[serde(default = "d_languages")]
    pub keep: Vec<String>,
    /// The lowest confidence (0..1) at which a caption counts as being in a kept language.
    /// Default 0.0 (the identifier's best guess decides).
    #[serde(
        default = "d_min_conf",
        deserialize_with = "openwit_core::config::range::fraction"
    )]
    pub min_confidence: f32,
    /// With English kept: a caption the identifier gives another language is kept as English
    /// when at least this share of its words (two or more) are one-word entries of the query
    /// list. 0 turns the check off. Default 0.9 (at 0.7 short phrases of other languages made of
    /// words that are also English lemmas pass: "das blaue Boot am See").
    // Not serialized at its default: the stage's fingerprint, and so the workdirs made before
    // this key existed, stay as they were.
    #[serde(
        default = "d_english_words",
        deserialize_with = "openwit_core::config::range::fraction",
        skip_serializing_if = "is_d_english_words"
    )]
    pub english_words: f32,
}

fn d_english_words() -> f32 {
    0.9
}

fn is_d_english_words(v: &f32) -> bool {
    *v == d_english_words()
}

impl Default for LanguageConfig {
    fn default() -> Self {
        LanguageConfig {
            engine: Default::default(),
            keep: d_languages(),
            min_confidence: d_min_conf(),
            english_words: d_english_words(),
        }
    }
}

/// The per-entry balance (MetaCLIP): p = min(1, factor * t / matches), and a candidate is kept
/// when any of its matched entries passes a Bernoulli(p) draw hashed from (seed, key, entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceConfig {
    /// Whether to balance at all; false keeps every matched candidate. Default true.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Matches kept per entry (CLIP: 20,000). Default 20000.
    #[serde(
        default = "d_t",
        deserialize_with = "openwit_core::config::range::count"
    )]
    pub t: u64,
    /// Over-sampling factor on p (e.g. 1.5 keeps more, for a second balance after download,
    /// when downloads fail). Default 1.0.
    #[serde(default = "d_factor", deserialize_with = "oversample")]
    pub oversample: f64,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            enabled: true,
            t: d_t(),
            oversample: d_factor(),
        }
    }
}

/// The `[curate]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurateConfig {
    /// Source stages whose candidate tables are read (any of `crawl`, `warc`, `import`).
    /// Default: the source stages present in the pipeline.
    #[serde(default)]
    pub from: Option<Vec<String>>,
    /// Candidate parquet files read in addition to (or instead of) source stages; relative
    /// paths are resolved against the pipeline file's folder.
    #[serde(default)]
    pub candidates: Vec<PathBuf>,
    /// The query list (a flat JSON list of entries). Default: `WORKDIR/queries/metadata.json`
    /// from the `queries` stage.
    #[serde(default)]
    pub queries: Option<PathBuf>,
    /// Caption quality rules.
    #[serde(default)]
    pub quality: QualityConfig,
    /// Language identification.
    #[serde(default)]
    pub language: LanguageConfig,
    /// Duplicate removal: `url_caption` (default), `url` (one caption per URL) or `none`.
    #[serde(default)]
    pub dedup: DedupMode,
    /// Balancing.
    #[serde(default)]
    pub balance: BalanceConfig,
    /// Hash partitions of the output (by URL), i.e. the number of `part-NNNNN.parquet` files.
    /// Default 16.
    #[serde(default = "d_partitions", deserialize_with = "partitions")]
    pub partitions: usize,
    /// Candidate rows per task (a task reads whole row groups of one file). Default 1,000,000.
    #[serde(
        default = "d_rows_per_task",
        deserialize_with = "openwit_core::config::range::count"
    )]
    pub rows_per_task: usize,
    /// Write the rows the filters drop (no URL, caption quality, language, no match) to
    /// `curate/dropped/TASK.parquet` with their reason. Default true; off saves the disk of the
    /// dropped part of a large pool.
    #[serde(default = "d_true")]
    pub dropped_rows: bool,
    /// Evaluation sets whose texts are kept out (decontamination): webdataset tars or folders
    /// of them (a clip_benchmark retrieval set, OpenWIT shards), relative to the pipeline file;
    /// each sample's `.txt` lines are its texts. A candidate whose cleaned caption equals one
    /// (ignoring case and whitespace) is dropped as `eval_overlap`. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_eval: Vec<PathBuf>,
}

impl Default for CurateConfig {
    fn default() -> Self {
        CurateConfig {
            from: None,
            candidates: Vec::new(),
            queries: None,
            quality: QualityConfig::default(),
            language: LanguageConfig::default(),
            dedup: DedupMode::default(),
            balance: BalanceConfig::default(),
            partitions: d_partitions(),
            rows_per_task: d_rows_per_task(),
            dropped_rows: true,
            exclude_eval: Vec::new(),
        }
    }
}

/// The `[balance]` table: balance again on the downloaded samples (MetaCLIP balances last,
/// since downloads fail). Reads the download stage's parquet files (`status == "success"` rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceConfig {
    /// The stage whose shard parquet files are read. Default `download`.
    #[serde(default = "d_download")]
    pub from: String,
    /// The query list. Default: `WORKDIR/queries/metadata.json`.
    #[serde(default)]
    pub queries: Option<PathBuf>,
    /// Matches kept per entry. Default 20000.
    #[serde(
        default = "d_t",
        deserialize_with = "openwit_core::config::range::count"
    )]
    pub t: u64,
}

fn d_download() -> String {
    use openwit_core::artifact::{Artifact, ShardTables};
    ShardTables::PRODUCER.into()
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            from: d_download(),
            queries: None,
            t: d_t(),
        }
    }
}

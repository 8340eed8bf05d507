//! The `[queries]` table of a pipeline file.

use openwit_core::config::{Range, range};
use serde::{Deserialize, Serialize};

/// How bigrams are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BigramMode {
    /// Keep bigrams with PMI >= `bigram_min_pmi` (MetaCLIP).
    Threshold,
    /// Keep the `bigram_top_k` bigrams with the highest PMI (the threshold's yield depends on N).
    TopK,
}

// The ranges of this table's own numeric keys (shared ones are in `openwit_core::config::range`;
// pipelines/README.md lists them all).
openwit_core::config_ranges! {
    fn pmi = Range::new(-1000.0, 1000.0, "a PMI (log2)");
    fn task_mib = Range::new(0.0001, 1_048_576.0, "MiB");
    fn page_mib = Range::new(1.0, 4096.0, "MiB");
    fn budget_mib = Range::new(0.001, 16_777_216.0, "MiB");
}

/// Settings of the `queries` stage. Every key has a default; relative paths are resolved against
/// the pipeline file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueriesConfig {
    /// English Wikipedia `pages-articles` dumps: `.xml`, `.xml.bz2`, `-multistream.xml.bz2` (its
    /// `-multistream-index.txt.bz2` beside it is found and used to count streams in parallel),
    /// folders of such files, or http(s) URLs (downloaded with resume into
    /// `WORKDIR/downloads/`). Default: none.
    pub wikipedia: Vec<String>,
    /// WordNet 3.0 database folders (`data.noun`, `data.verb`, `data.adj`, `data.adv`, e.g.
    /// Debian's `/usr/share/wordnet`) or Open English WordNet WN-LMF files (`.xml`, `.xml.gz`).
    /// Default: none.
    pub wordnet: Vec<String>,
    /// Wikimedia hourly pageview files (`pageviews-YYYYMMDD-HH0000.gz`), folders of them, or
    /// URLs. Default: none (no title entries).
    pub pageviews: Vec<String>,
    /// Keep Wikipedia tokens counted at least this often. Default: 100 (MetaCLIP).
    #[serde(deserialize_with = "range::min_count")]
    pub unigram_min_count: u64,
    /// `threshold` (PMI >= `bigram_min_pmi`) or `top_k`. Default: `threshold`.
    pub bigram_mode: BigramMode,
    /// The PMI threshold of `threshold` mode. Default: 30.0 (MetaCLIP).
    #[serde(deserialize_with = "pmi")]
    pub bigram_min_pmi: f64,
    /// How many bigrams `top_k` mode keeps. Default: 100000.
    #[serde(deserialize_with = "range::count")]
    pub bigram_top_k: u64,
    /// Both words of a bigram must be counted at least this often; unset means
    /// `unigram_min_count` (the bigram's words are in the unigram list). MetaCLIP's script used
    /// every counted word: set 1 to reproduce that. Default: unset.
    #[serde(deserialize_with = "range::min_count")]
    pub bigram_word_min_count: Option<u64>,
    /// Ignore bigrams counted fewer times than this (NLTK's `apply_freq_filter`). Default: 1.
    #[serde(deserialize_with = "range::min_count")]
    pub bigram_min_count: u64,
    /// Pageviews: skip hourly counts below this. Default: 50 (MetaCLIP).
    #[serde(deserialize_with = "range::min_count")]
    pub title_min_hourly_views: u64,
    /// Pageviews: keep titles with at least this many summed views. Default: 70 (MetaCLIP).
    #[serde(deserialize_with = "range::min_count")]
    pub title_min_views: u64,
    /// Cap on the number of entries. Default: 500000 (CLIP).
    #[serde(deserialize_with = "range::count")]
    pub max_entries: u64,
    /// Wikipedia namespaces whose pages are counted. Default: `[0]` (articles).
    pub namespaces: Vec<i64>,
    /// Compressed bytes of a multistream dump per task (also the plain-XML split size), in MiB.
    /// Default: 256.
    #[serde(deserialize_with = "task_mib")]
    pub task_size_mb: f64,
    /// Pages larger than this (MiB of XML) are skipped and counted. Default: 64.
    #[serde(deserialize_with = "page_mib")]
    pub max_page_mb: u64,
    /// Memory budget of the stage in MiB, shared by the tasks that run at once; bigram counts
    /// spill to disk above it (each running task gets an equal share, three quarters of it for
    /// counts). Does not change outputs. Default: 8192.
    #[serde(deserialize_with = "budget_mib")]
    pub memory_budget_mb: f64,
}

impl Default for QueriesConfig {
    fn default() -> Self {
        QueriesConfig {
            wikipedia: Vec::new(),
            wordnet: Vec::new(),
            pageviews: Vec::new(),
            unigram_min_count: 100,
            bigram_mode: BigramMode::Threshold,
            bigram_min_pmi: 30.0,
            bigram_top_k: 100_000,
            bigram_word_min_count: None,
            bigram_min_count: 1,
            title_min_hourly_views: 50,
            title_min_views: 70,
            max_entries: 500_000,
            namespaces: vec![0],
            task_size_mb: 256.0,
            max_page_mb: 64,
            memory_budget_mb: 8192.0,
        }
    }
}

impl QueriesConfig {
    /// The minimum count of each word of a bigram.
    pub fn bigram_word_min(&self) -> u64 {
        self.bigram_word_min_count.unwrap_or(self.unigram_min_count)
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.wikipedia.is_empty() && self.wordnet.is_empty() && self.pageviews.is_empty() {
            return Err(
                "[queries] has no inputs: set `wikipedia`, `wordnet` and/or `pageviews` \
                        (see queries/README.md)"
                    .into(),
            );
        }
        if !self.bigram_min_pmi.is_finite() {
            return Err("[queries] bigram_min_pmi must be a finite number".into());
        }
        if !(self.task_size_mb > 0.0 && self.memory_budget_mb > 0.0) || self.max_page_mb == 0 {
            return Err(
                "[queries] task_size_mb and memory_budget_mb must be above 0 and max_page_mb at least 1"
                    .into(),
            );
        }
        if self.namespaces.is_empty() {
            return Err("[queries] namespaces is empty: nothing would be counted (use [0])".into());
        }
        Ok(())
    }
}

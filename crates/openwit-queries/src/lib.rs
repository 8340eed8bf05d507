//! `openwit-queries`: the `queries` stage — CLIP's 500,000-entry query list rebuilt with
//! MetaCLIP's published recipe from English Wikipedia, WordNet and (optionally) pageviews.
//!
//! The recipe, in the order entries are added (duplicates dropped, case-sensitive; an entry's id
//! is its position; capped at `max_entries`):
//! 1. the strings `"0"` to `"99"`;
//! 2. WordNet: every synset's name as NLTK gives it, up to the first `.`, `_` -> space
//!    ([`wordnet`]);
//! 3. Wikipedia unigrams counted at least `unigram_min_count` (100) times, most frequent first;
//! 4. Wikipedia bigrams with PMI `log2(n_ab * N / (n_a * n_b))` >= `bigram_min_pmi` (30) — or the
//!    `bigram_top_k` best — over bigrams whose words both pass the word minimum, best first;
//! 5. Wikipedia titles with at least `title_min_views` (70) views summed over hourly pageview
//!    files, counting only hourly counts >= 50, titles without `:` ([`pageviews`]), most viewed
//!    first.
//!
//! Empty and single-punctuation entries are dropped.
//!
//! **Counting rule.** Each article's wikitext is cleaned to plain text ([`wikitext::clean`]), one
//! line per paragraph, heading or list item. Each line is spaced with MetaCLIP's rule and split
//! into tokens by [`openwit_core::text::tokens`] (surrounding brackets and quotes stripped), so a
//! counted token is what the curation matcher looks for. Every token counts towards its unigram
//! and N. Bigrams are adjacent tokens in the same line; the punctuation marks the spacing isolates
//! (`,` `.` `;` `:` `?` `!` and the backquote) are tokens but end a bigram chain (`dog, cat`
//! gives no `dog ,` nor `, cat`).
//!
//! **Scale.** Multistream dumps are split into stream ranges (one task each, run in parallel);
//! single-stream dumps are streamed. Unigrams are counted in memory, bigram counts spill to sorted
//! runs on disk above the memory budget ([`counts`]); the reduce step merges sorted files.
//!
//! ```no_run
//! use openwit_queries::{QueriesConfig, QueriesStage};
//! let cfg = QueriesConfig {
//!     wikipedia: vec!["enwiki-latest-pages-articles-multistream.xml.bz2".into()],
//!     wordnet: vec!["/usr/share/wordnet".into()],
//!     ..Default::default()
//! };
//! let stage = QueriesStage::new(cfg, std::path::Path::new(".")).unwrap();
//! let mut ex = openwit_exec::LocalExecutor::new(
//!     std::path::Path::new("work"),
//!     Default::default(),
//!     &openwit_core::NoProgress,
//! )
//! .unwrap();
//! ex.run_stage(&stage).unwrap();
//! ```

mod binfile;
pub mod bz2;
pub mod config;
pub mod counts;
pub mod download;
pub mod dump;
pub mod error;
mod huge;
pub mod lines;
pub mod pageviews;
pub mod pairs;
pub mod select;
pub mod stage;
pub mod tables;
pub mod testdata;
mod vocab;
pub mod wikitext;
pub mod wordnet;

pub use config::{BigramMode, QueriesConfig};
pub use error::QueriesError;
pub use stage::QueriesStage;

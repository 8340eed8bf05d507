//! `openwit-sources`: candidate (image URL, text) pairs from the web.
pub mod candidate;
pub mod clipart;
pub mod crawl;
pub mod demo_site;
pub mod dropped;
pub mod error;
pub mod extract;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod extract_reference;
pub mod fixtures;
pub mod html;
pub mod http;
pub mod http_body;
pub mod import;
pub mod warc;
pub mod warc_stage;
pub mod wat;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod wat_reference;

pub use candidate::{Candidate, CandidateWriter, CaptionSource};
pub use crawl::{CrawlConfig, CrawlStage};
pub use error::SourcesError;
pub use import::{ImportConfig, ImportStage};
pub use warc_stage::{WarcConfig, WarcStage};

/// One line for people: rows written and drops by reason over all tasks.
pub(crate) fn summary_line(stage: &str, tasks: &[openwit_core::TaskRecord]) -> String {
    let mut drops = openwit_core::Drops::default();
    let mut out = 0u64;
    let mut inp = 0u64;
    for t in tasks {
        out += t.items_out;
        inp += t.items_in;
        for (k, v) in &t.drops {
            drops.add(k, *v);
        }
    }
    let d: Vec<String> = drops.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "{stage}: {out} candidates from {inp} items; dropped: {}",
        if d.is_empty() {
            "none".into()
        } else {
            d.join(", ")
        }
    )
}

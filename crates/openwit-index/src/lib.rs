//! `openwit-index`: find, see and browse what a run built.
//!
//! - [`IndexStage`] (`openwit index`): a tantivy index over the successful samples of the shards,
//!   one index folder per shard (`WORKDIR/index/NNNNN/`), so the build is resumable per shard and an
//!   interrupted build leaves a usable index of the shards it finished. Fields: the caption (English
//!   analyzer with stemming, positions for phrase queries), the matched query entries, the source
//!   domain, shard and key, width and height, language, and where the image and json members lie
//!   in the tar.
//! - [`search()`] (`openwit search WORKDIR "QUERY"`): ranked matches over every shard index at once
//!   (BM25 with statistics summed over all shards, so scores compare across shards).
//! - [`report`] (`openwit report WORKDIR`, and the [`ReportStage`] at the end of `openwit run`): a
//!   self-contained HTML page with inline SVG charts.
//! - [`serve`] (`openwit serve WORKDIR`): a local web UI (axum) with search, thumbnails read from
//!   the tars by member offset, a detail view and the report.

pub mod build;
pub mod error;
pub mod report;
pub mod schema;
pub mod search;
pub mod serve;

pub use build::{IndexConfig, IndexStage};
pub use error::{IndexError, Result};
pub use report::{Funnel, ReportConfig, ReportStage, render_report, write_report};
pub use search::{Filters, Hit, IndexSet, SearchOptions, SearchResults, format_results, search};
pub use serve::{RunSummarySource, ServeOptions, router, serve, serve_on};

/// The index stage's folder name in the workdir.
pub const INDEX_DIR: &str =
    <openwit_core::artifact::Index as openwit_core::artifact::Artifact>::PRODUCER;
/// The report stage's folder name, and the report's file name in it.
pub const REPORT_DIR: &str = "report";
pub const REPORT_FILE: &str = "report.html";

//! The stage registry: every stage the `openwit` binary knows, in pipeline order.
//!
//! HOW TO REGISTER A STAGE (one entry per stage, in `registry()` below):
//! 1. add your crate to this crate's `Cargo.toml` (`openwit-foo.workspace = true`);
//! 2. build the stage from its table the way every stage is built: implement
//!    [`openwit_core::FromConfig`] for it (`TABLE` is the CLI subcommand, the pipeline table and the
//!    stage's folder; `from_config` gets the typed table and the whole file);
//! 3. add `StageEntry::of::<YourStage>("one-line help")` at its place in pipeline order:
//!    ```
//!    use openwit_cli::StageEntry;
//!    use openwit_core::{FromConfig, PipelineDoc, Result, Stage, StageContext};
//!    use openwit_core::{TaskContext, TaskReport, TaskSpec};
//!
//!    #[derive(serde::Deserialize)]
//!    #[serde(deny_unknown_fields)]
//!    struct HelloConfig {
//!        greeting: String,
//!    }
//!
//!    struct Hello {
//!        greeting: String,
//!        seed: u64,
//!    }
//!
//!    impl FromConfig for Hello {
//!        const TABLE: &'static str = "hello";
//!        type Config = HelloConfig;
//!        fn from_config(cfg: HelloConfig, doc: &PipelineDoc) -> Result<Self> {
//!            Ok(Hello { greeting: cfg.greeting, seed: doc.pipeline().seed })
//!        }
//!    }
//!
//!    impl Stage for Hello {
//!        fn name(&self) -> &str { Self::TABLE }
//!        fn config(&self) -> serde_json::Value {
//!            serde_json::json!({ "greeting": self.greeting, "seed": self.seed })
//!        }
//!        fn plan(&self, _: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
//!            Ok(vec![TaskSpec::new("all", serde_json::Value::Null)])
//!        }
//!        fn run_task(&self, _: &TaskContext<'_>, _: &TaskSpec) -> Result<TaskReport> {
//!            Ok(TaskReport::default())
//!        }
//!    }
//!
//!    let entry = StageEntry::of::<Hello>("Say hello");
//!    let text = "[pipeline]\nseed = 7\n\n[hello]\ngreeting = \"hi\"\n";
//!    let doc = PipelineDoc::parse("p.toml".as_ref(), text.into(), &[entry.name]).unwrap();
//!    let stage = (entry.build)(&doc).unwrap().expect("the file has [hello]");
//!    assert_eq!(stage.config()["seed"], 7);
//!    // A typo in the table is an error that names the file, the line and the valid keys.
//!    let bad = PipelineDoc::parse("p.toml".as_ref(), "[hello]\ngreting = 1\n".into(), &["hello"]);
//!    let err = (entry.build)(&bad.unwrap()).err().unwrap().to_string();
//!    assert!(err.starts_with("p.toml:2:1: unknown field `greting`"), "{err}");
//!    ```
//!    `doc.section` reports unknown keys and wrong types with file:line:column; `doc.pipeline()` gives
//!    the `[pipeline]` table (seed, allow_private_networks, proxy, ...); `doc.base_dir()` the folder
//!    of the pipeline file (resolve relative input paths against it); `doc.stages()` the file's
//!    stage tables in pipeline order. A stage that makes HTTP requests uses
//!    `openwit_http::HttpClient` with the pipeline's `allow_private_networks`
//!    and `proxy`;
//! 4. document the table's keys in `pipelines/README.md` and add it to `pipelines/demo.toml`.

use std::sync::Arc;

use openwit_core::stage::build_stage;
use openwit_core::{FromConfig, PipelineDoc, Result, Stage};

/// Builds a stage from the pipeline document, or `None` when the file has no table for it.
pub type BuildFn = fn(&PipelineDoc) -> Result<Option<Arc<dyn Stage>>>;

/// A stage the binary knows.
#[derive(Clone)]
pub struct StageEntry {
    pub name: &'static str,
    pub about: &'static str,
    pub build: BuildFn,
}

impl StageEntry {
    /// The entry of stage `S`, built from its table like every other ([`FromConfig`]).
    pub fn of<S: FromConfig>(about: &'static str) -> Self {
        StageEntry {
            name: S::TABLE,
            about,
            build: build_stage::<S>,
        }
    }
}

/// The cargo feature that compiles the `train` and `eval` stages (crate openwit-clip, libtorch).
pub const TRAIN_FEATURE: &str = "train";

#[cfg(feature = "train")]
const TRAIN_ABOUT: &str = "Train a CLIP model on the shards (tch/libtorch): checkpoints, metrics.jsonl, curves.svg, model.safetensors";
#[cfg(not(feature = "train"))]
const TRAIN_ABOUT: &str =
    "Train a CLIP model on the shards (not in this build: rebuild with `--features train`)";
#[cfg(feature = "train")]
const EVAL_ABOUT: &str = "Evaluate the trained model: zero-shot top-1/top-5 and per class, image-text retrieval R@1/5/10, linear probe";
#[cfg(not(feature = "train"))]
const EVAL_ABOUT: &str =
    "Evaluate the trained model zero-shot (not in this build: rebuild with `--features train`)";

/// The `train` and `eval` stages of a binary built without the `train` feature: absent tables
/// are skipped as usual; a present one is a configuration error that says how to get the stage.
#[cfg(not(feature = "train"))]
fn without_train_feature(doc: &PipelineDoc, table: &str) -> Result<Option<Arc<dyn Stage>>> {
    if doc.has(table) {
        Err(doc.needs_feature(table, TRAIN_FEATURE))
    } else {
        Ok(None)
    }
}

/// The stages of the `openwit` binary, in pipeline order.
pub fn registry() -> Vec<StageEntry> {
    vec![
        StageEntry::of::<openwit_queries::QueriesStage>(
            "Build the query list (metadata.json) from Wikipedia, WordNet and pageviews",
        ),
        StageEntry::of::<openwit_sources::CrawlStage>(
            "Crawl the web politely from seed URLs (robots.txt, per-host delays) into candidate pairs",
        ),
        StageEntry::of::<openwit_sources::WarcStage>(
            "Extract candidate pairs from Common Crawl WARC/WAT files, URLs or *.paths.gz listings",
        ),
        StageEntry::of::<openwit_sources::ImportStage>(
            "Import URL lists (parquet, csv, tsv, jsonl, json; optionally .gz) as candidate pairs",
        ),
        StageEntry::of::<openwit_curate::CurateStage>(
            "Keep clean English captions that match a query entry, dedup, balance to at most t pairs per entry",
        ),
        StageEntry::of::<openwit_fetch::DownloadStage>(
            "Download, validate and resize the images into webdataset + parquet shards (img2dataset layout)",
        ),
        StageEntry::of::<openwit_curate::BalanceStage>(
            "Balance again on the downloaded samples (MetaCLIP balances last): balance/NNNNN.parquet with a kept flag per sample",
        ),
        StageEntry::of::<openwit_index::IndexStage>(
            "Build the tantivy caption index over the shards (one index per shard; search it with `openwit search WORKDIR QUERY`)",
        ),
        #[cfg(feature = "train")]
        StageEntry::of::<openwit_clip::stage::TrainStage>(TRAIN_ABOUT),
        #[cfg(not(feature = "train"))]
        StageEntry {
            name: "train",
            about: TRAIN_ABOUT,
            build: |doc| without_train_feature(doc, "train"),
        },
        #[cfg(feature = "train")]
        StageEntry::of::<openwit_clip::stage::EvalStage>(EVAL_ABOUT),
        #[cfg(not(feature = "train"))]
        StageEntry {
            name: "eval",
            about: EVAL_ABOUT,
            build: |doc| without_train_feature(doc, "eval"),
        },
        StageEntry::of::<openwit_index::ReportStage>(
            "Write the HTML report of a run (`openwit report WORKDIR` also works on any workdir)",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report comes after every other stage of the file, `balance` included (a hand-written
    /// list once left it out, so a rerun of `balance` did not rewrite the report).
    #[test]
    fn the_report_follows_every_other_stage_of_the_file() {
        let names: Vec<&str> = registry().iter().map(|e| e.name).collect();
        let text = "[pipeline]\nworkdir = \"w\"\n\n[download]\ninput = \"u.csv\"\n\n[balance]\n\n[index]\n\n[report]\n";
        let doc = PipelineDoc::parse(std::path::Path::new("p.toml"), text.into(), &names).unwrap();
        let report = registry().into_iter().find(|e| e.name == "report").unwrap();
        let stage = (report.build)(&doc)
            .unwrap()
            .expect("the file has [report]");
        assert_eq!(stage.upstream(), ["download", "balance", "index"]);
    }
}

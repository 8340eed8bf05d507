//! The stage registry: every stage the `openwit` binary knows, in pipeline order.
//!
//! HOW TO REGISTER A STAGE (one entry per stage, in `registry()` below):
//! 1. add your crate to this crate's `Cargo.toml` (`openwit-foo.workspace = true`);
//! 2. add a `StageEntry` at the right place in pipeline order: `name` is the CLI subcommand and the
//!    pipeline table, `about` is the one-line help, `build` turns the pipeline document into the stage
//!    (return `Ok(None)` when the table is absent, so `openwit run` skips the stage):
//!    ```
//!    use std::sync::Arc;
//!
//!    use openwit_cli::StageEntry;
//!    use openwit_core::Stage;
//!
//!    let entry = StageEntry {
//!        name: "queries",
//!        about: "Build the query list from Wikipedia and WordNet",
//!        build: |doc| {
//!            let Some(cfg) = doc.section::<openwit_queries::QueriesConfig>("queries")? else {
//!                return Ok(None);
//!            };
//!            let stage = openwit_queries::QueriesStage::new(cfg, &doc.base_dir())?;
//!            Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
//!        },
//!    };
//!    assert_eq!(entry.name, "queries");
//!    ```
//!    `doc.section` reports unknown keys and wrong types with file:line:column; `doc.pipeline()` gives
//!    the `[pipeline]` table (seed, allow_private_networks, proxy, ...); `doc.base_dir()` the folder
//!    of the pipeline file (resolve relative input paths against it). A stage that makes HTTP
//!    requests uses `openwit_http::HttpClient` with the pipeline's `allow_private_networks`
//!    and `proxy`;
//! 3. document the table's keys in `pipelines/README.md` and add it to `pipelines/demo.toml`.

use std::sync::Arc;

use openwit_core::{Result, Stage};

use crate::pipeline::PipelineDoc;

/// Builds a stage from the pipeline document, or `None` when the file has no table for it.
pub type BuildFn = fn(&PipelineDoc) -> Result<Option<Arc<dyn Stage>>>;

/// A stage the binary knows.
#[derive(Clone)]
pub struct StageEntry {
    pub name: &'static str,
    pub about: &'static str,
    pub build: BuildFn,
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
        StageEntry {
            name: "queries",
            about: "Build the query list (metadata.json) from Wikipedia, WordNet and pageviews",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_queries::QueriesConfig>("queries")? else {
                    return Ok(None);
                };
                let stage = openwit_queries::QueriesStage::new(cfg, &doc.base_dir())?
                    .allow_private_networks(doc.pipeline().allow_private_networks)
                    .proxy(doc.pipeline().proxy.clone());
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "crawl",
            about: "Crawl the web politely from seed URLs (robots.txt, per-host delays) into candidate pairs",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_sources::CrawlConfig>("crawl")? else {
                    return Ok(None);
                };
                let stage = openwit_sources::CrawlStage::new(cfg, doc.base_dir())?
                    .allow_private_networks(doc.pipeline().allow_private_networks)
                    .proxy(doc.pipeline().proxy.clone());
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "warc",
            about: "Extract candidate pairs from Common Crawl WARC/WAT files, URLs or *.paths.gz listings",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_sources::WarcConfig>("warc")? else {
                    return Ok(None);
                };
                let stage = openwit_sources::WarcStage::new(cfg, doc.base_dir())?
                    .allow_private_networks(doc.pipeline().allow_private_networks)
                    .proxy(doc.pipeline().proxy.clone());
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "import",
            about: "Import URL lists (parquet, csv, tsv, jsonl, json; optionally .gz) as candidate pairs",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_sources::ImportConfig>("import")? else {
                    return Ok(None);
                };
                let stage = openwit_sources::ImportStage::new(cfg, doc.base_dir())?;
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "curate",
            about: "Keep clean English captions that match a query entry, dedup, balance to at most t pairs per entry",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_curate::CurateConfig>("curate")? else {
                    return Ok(None);
                };
                let present: Vec<&str> = openwit_curate::stage::SOURCE_STAGES
                    .iter()
                    .copied()
                    .filter(|n| doc.has(n))
                    .collect();
                let stage = openwit_curate::CurateStage::new(
                    cfg,
                    doc.pipeline().seed,
                    &doc.base_dir(),
                    &present,
                )?;
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "download",
            about: "Download, validate and resize the images into webdataset + parquet shards (img2dataset layout)",
            build: |doc| {
                let Some(mut cfg) = doc.section::<openwit_fetch::Config>("download")? else {
                    return Ok(None);
                };
                cfg.proxy = doc.pipeline().proxy.clone();
                let stage = openwit_fetch::DownloadStage::new(
                    cfg,
                    &doc.base_dir(),
                    doc.pipeline().allow_private_networks,
                )?;
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "balance",
            about: "Balance again on the downloaded samples (MetaCLIP balances last): balance/NNNNN.parquet with a kept flag per sample",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_curate::RebalanceConfig>("balance")? else {
                    return Ok(None);
                };
                let stage =
                    openwit_curate::BalanceStage::new(cfg, doc.pipeline().seed, &doc.base_dir())?;
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "index",
            about: "Build the tantivy caption index over the shards (one index per shard; search it with `openwit search WORKDIR QUERY`)",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_index::IndexConfig>("index")? else {
                    return Ok(None);
                };
                let stage = openwit_index::IndexStage::new(cfg, &doc.base_dir());
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
        StageEntry {
            name: "train",
            about: TRAIN_ABOUT,
            build: |doc| {
                #[cfg(feature = "train")]
                {
                    let Some(cfg) = doc.section::<openwit_clip::train::TrainConfig>("train")?
                    else {
                        return Ok(None);
                    };
                    let mut stage =
                        openwit_clip::stage::TrainStage::new(cfg, doc.pipeline(), &doc.base_dir())?;
                    if let Some(eval) = doc.section::<openwit_clip::stage::EvalConfig>("eval")? {
                        stage = stage.with_eval(eval, doc.pipeline())?;
                    }
                    Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
                }
                #[cfg(not(feature = "train"))]
                without_train_feature(doc, "train")
            },
        },
        StageEntry {
            name: "eval",
            about: EVAL_ABOUT,
            build: |doc| {
                #[cfg(feature = "train")]
                {
                    let Some(cfg) = doc.section::<openwit_clip::stage::EvalConfig>("eval")? else {
                        return Ok(None);
                    };
                    let stage =
                        openwit_clip::stage::EvalStage::new(cfg, doc.pipeline(), &doc.base_dir())?;
                    Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
                }
                #[cfg(not(feature = "train"))]
                without_train_feature(doc, "eval")
            },
        },
        StageEntry {
            name: "report",
            about: "Write the HTML report of a run (`openwit report WORKDIR` also works on any workdir)",
            build: |doc| {
                let Some(cfg) = doc.section::<openwit_index::ReportConfig>("report")? else {
                    return Ok(None);
                };
                // After every other stage of the file, so a rerun of any of them rewrites it (the
                // registry's own list, so a new stage cannot be forgotten here).
                let after = registry()
                    .iter()
                    .map(|e| e.name)
                    .filter(|n| *n != "report" && doc.has(n))
                    .map(str::to_string)
                    .collect();
                let stage = openwit_index::ReportStage::new(cfg, after);
                Ok(Some(Arc::new(stage) as Arc<dyn Stage>))
            },
        },
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

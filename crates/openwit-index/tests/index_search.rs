//! `openwit index` and `openwit search` on real shards.

mod common;

use std::path::Path;

use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_index::{IndexError, IndexSet, SearchOptions, search};
use serde_json::Value;

fn keys(r: &openwit_index::SearchResults) -> Vec<String> {
    r.hits
        .iter()
        .map(|h| format!("{}/{}", h.shard, h.key))
        .collect()
}

#[test]
fn indexes_every_successful_sample_per_shard() {
    let dir = common::workdir();
    let out = common::run(dir.path(), &common::index_stage());
    assert!(matches!(
        out,
        openwit_exec::StageOutcome::Ran {
            ran: 4,
            total: 4,
            ..
        }
    ));
    for s in ["00000", "00001", "00002", "00003"] {
        assert!(dir.path().join("index").join(s).join("meta.json").is_file());
    }
    let set = IndexSet::open(dir.path()).unwrap();
    assert_eq!(set.shards(), vec!["00000", "00001", "00002", "00003"]);
    assert_eq!(set.num_docs(), 20, "24 rows, every sixth failed");
    let st = openwit_exec::RunState::open_readonly(dir.path()).unwrap();
    let tasks = st.tasks("index").unwrap();
    assert_eq!(tasks.iter().map(|t| t.items_out).sum::<u64>(), 20);
    // A rerun does nothing.
    assert_eq!(
        common::run(dir.path(), &common::index_stage()),
        openwit_exec::StageOutcome::UpToDate
    );
}

#[test]
fn search_ranks_stems_phrases_and_filters_on_entries() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let opts = SearchOptions {
        limit: 50,
        ..Default::default()
    };

    // Stemming: "dog" finds "dogs".
    let r = search(dir.path(), "dog", &opts).unwrap();
    assert!(r.total >= 1);
    assert!(
        r.hits
            .iter()
            .all(|h| h.caption.to_lowercase().contains("dogs"))
    );

    // Every hit carries shard, key, caption and url; scores are sorted.
    let r = search(dir.path(), "car", &opts).unwrap();
    assert!(r.total >= 4, "{r:?}");
    assert!(r.hits.windows(2).all(|w| w[0].score >= w[1].score));
    for h in &r.hits {
        assert!(h.caption.to_lowercase().contains("car"));
        assert!(h.url.starts_with("http://img") && h.url.ends_with(&format!("{}.jpg", h.key)));
        assert!(h.key.starts_with(&h.shard), "{} {}", h.shard, h.key);
        assert!(h.image.as_ref().unwrap().size > 100);
    }

    // A phrase matches only adjacent words: "A car painted red" is not a "red car".
    let r = search(dir.path(), "\"red car\"", &opts).unwrap();
    assert!(!r.hits.is_empty());
    assert!(
        r.hits
            .iter()
            .all(|h| h.caption.to_lowercase().contains("red car")),
        "{:?}",
        keys(&r)
    );
    let loose = search(dir.path(), "red car", &opts).unwrap();
    assert!(loose.total > r.total);

    // Filter on a matched entry, with or without text, via option or query syntax.
    let f = SearchOptions {
        entry: Some("Lighthouse".into()),
        ..opts.clone()
    };
    let r = search(dir.path(), "", &f).unwrap();
    assert!(r.total >= 2);
    assert!(
        r.hits
            .iter()
            .all(|h| h.entries.contains(&"lighthouse".to_string()))
    );
    let r2 = search(dir.path(), "car", &f).unwrap();
    assert!(
        r2.hits
            .iter()
            .all(|h| h.caption.contains("car") && h.entries.contains(&"lighthouse".into()))
    );
    assert!(r2.total >= 1 && r2.total < r.total + 1);
    let r3 = search(dir.path(), "entry:\"golden retriever\"", &opts).unwrap();
    assert!(
        r3.total >= 2
            && r3
                .hits
                .iter()
                .all(|h| h.entries.contains(&"golden retriever".into()))
    );

    // Other fields: domain, language, sizes.
    let r = search(dir.path(), "domain:img1.example.org", &opts).unwrap();
    assert!(
        r.total > 0
            && r.hits
                .iter()
                .all(|h| h.shard == "00001" || h.shard == "00003")
    );
    let r = search(dir.path(), "language:en AND width:[80 TO *]", &opts).unwrap();
    assert!(r.total > 0 && r.hits.iter().all(|h| h.width.unwrap() >= 80));

    // Paging: offset + limit over the merged ranking.
    let all = search(dir.path(), "car", &opts).unwrap();
    let p2 = search(
        dir.path(),
        "car",
        &SearchOptions {
            limit: 2,
            offset: 2,
            entry: None,
        },
    )
    .unwrap();
    assert_eq!(keys(&p2), keys(&all)[2..4].to_vec());
}

#[test]
fn malformed_queries_get_a_clear_message() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    for bad in [
        "\"unclosed",
        "caption:(dog",
        "nosuchfield:x",
        "width:[a TO b]",
    ] {
        let e = search(dir.path(), bad, &SearchOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, IndexError::Query { .. }), "{bad}: {msg}");
        assert!(
            msg.contains("cannot parse the query") && msg.contains("hint:"),
            "{msg}"
        );
        // The CLI reports it as a usage error (exit code 2).
        assert!(openwit_core::Error::from(e).is_usage());
    }
    let e = search(
        Path::new("/nonexistent/workdir"),
        "x",
        &SearchOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("openwit index"), "{e}");
}

/// The index stage, failing on one shard the first time (an interrupted build).
struct FailOn<'a>(&'a dyn Stage, &'a str);

impl Stage for FailOn<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn upstream(&self) -> Vec<String> {
        self.0.upstream()
    }
    fn config(&self) -> Value {
        self.0.config()
    }
    fn plan(&self, ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        self.0.plan(ctx)
    }
    fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> openwit_core::Result<TaskReport> {
        if t.id == self.1 {
            // Leave a half-written output behind, as a kill would.
            let p = ctx.output_path(&t.id)?;
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("meta.json"), b"{half").unwrap();
            return Err(openwit_core::Error::Stage("killed".into()));
        }
        self.0.run_task(ctx, t)
    }
}

#[test]
fn an_interrupted_build_leaves_a_usable_index_and_resumes() {
    let dir = common::workdir();
    let stage = common::index_stage();
    {
        assert!(openwit_testkit::run_stage(dir.path(), 1, &FailOn(&stage, "00002")).is_err());
    }
    // The finished shards are searchable; the half-written one is invisible.
    let set = IndexSet::open(dir.path()).unwrap();
    assert_eq!(set.shards(), vec!["00000", "00001", "00003"]);
    assert!(set.skipped.is_empty(), "{:?}", set.skipped);
    let r = set.search("teapot", &SearchOptions::default()).unwrap();
    assert!(r.total >= 1);
    assert!(r.hits.iter().all(|h| h.shard != "00002"));

    // The rerun builds only the missing shard.
    let out = common::run(dir.path(), &stage);
    assert!(
        matches!(
            out,
            openwit_exec::StageOutcome::Ran {
                ran: 1,
                total: 4,
                ..
            }
        ),
        "{out:?}"
    );
    let set = IndexSet::open(dir.path()).unwrap();
    assert_eq!(set.num_docs(), 20);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn a_damaged_shard_is_reported_and_skipped() {
    let dir = common::workdir();
    let tars = common::tars(dir.path());
    // Cut shard 1 in the middle of its second sample's image.
    let bytes = std::fs::read(&tars[1]).unwrap();
    std::fs::write(&tars[1], &bytes[..bytes.len() / 3]).unwrap();
    let out = common::run(dir.path(), &common::index_stage());
    assert!(matches!(
        out,
        openwit_exec::StageOutcome::Ran { ran: 4, .. }
    ));
    let st = openwit_exec::RunState::open_readonly(dir.path()).unwrap();
    let t = st
        .tasks("index")
        .unwrap()
        .into_iter()
        .find(|t| t.task == "00001")
        .unwrap();
    assert_eq!(t.drops.get("damaged_shard"), Some(&1));
    assert!(t.items_out < 5);
    let set = IndexSet::open(dir.path()).unwrap();
    assert!(set.num_docs() >= 15 && set.num_docs() < 20);
}

#[test]
fn a_damaged_index_is_reported_with_its_path_and_skipped() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let bad = dir.path().join("index").join("00002");
    std::fs::write(bad.join("meta.json"), b"not json").unwrap();
    let set = IndexSet::open(dir.path()).unwrap();
    assert_eq!(set.shards(), vec!["00000", "00001", "00003"]);
    assert_eq!(set.skipped.len(), 1);
    assert_eq!(set.skipped[0].0, bad);
    let r = search(
        dir.path(),
        "teapot OR car OR sunflower",
        &SearchOptions::default(),
    )
    .unwrap();
    assert!(r.total > 0);
    assert_eq!(r.skipped.len(), 1);
    let text = openwit_index::format_results(&r);
    assert!(
        text.contains("skipped damaged index") && text.contains("00002"),
        "{text}"
    );

    // Damaged segment data (not only the meta file) is caught too.
    let other = dir.path().join("index").join("00001");
    for e in std::fs::read_dir(&other).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "idx" || x == "term") {
            std::fs::write(&p, b"garbage").unwrap();
        }
    }
    let set = IndexSet::open(dir.path()).unwrap();
    assert_eq!(set.shards(), vec!["00000", "00003"]);
    assert_eq!(set.skipped.len(), 2);
}

#[test]
fn indexes_an_img2dataset_folder_given_in_the_config() {
    let src = common::workdir();
    let dir = tempfile::tempdir().unwrap();
    let cfg: openwit_index::IndexConfig =
        toml::from_str(&format!("shards = {:?}", src.path().join("download"))).unwrap();
    let stage = openwit_index::IndexStage::new(cfg, Path::new("."));
    assert!(stage.upstream().is_empty());
    common::run(dir.path(), &stage);
    let r = search(dir.path(), "sunflower", &SearchOptions::default()).unwrap();
    assert!(r.total >= 2);
    // Without metadata.json, entries show by id.
    assert!(
        r.hits
            .iter()
            .all(|h| h.entries.iter().all(|e| e.starts_with('#')))
    );
    assert!(r.hits[0].tar.starts_with(src.path()));
}

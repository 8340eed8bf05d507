//! `language` (curation's language id, carried by the download stage into each sample's
//! `.json` and the shard parquet) is searchable: `openwit search WORKDIR "language:en"`.

mod common;

use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_index::{SearchOptions, search};
use openwit_shard::{SampleMeta, ShardLayout, ShardStats, ShardWriter};
use serde_json::json;

/// One shard whose samples carry `SampleMeta::language` (not a carried column).
struct Download;

const LANGS: [&str; 5] = ["en", "de", "en", "fr", "en"];

impl Stage for Download {
    fn name(&self) -> &str {
        "download"
    }
    fn config(&self) -> serde_json::Value {
        json!({})
    }
    fn plan(&self, _: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok(vec![TaskSpec::new("00000", json!(0))])
    }
    fn run_task(&self, ctx: &TaskContext<'_>, _: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let layout = ShardLayout::new(10);
        let tar = ctx.output_path("00000.tar")?;
        let mut w = ShardWriter::create(&tar, Vec::new())?;
        for (i, lang) in LANGS.iter().enumerate() {
            let key = layout.key(0, i as u64);
            let mut m = SampleMeta::new(
                format!("http://img.example.org/{key}.jpg"),
                Some(format!("a red car number {i}")),
                key,
            );
            m.language = Some(lang.to_string());
            m.set_success(40, 30, 80, 60, "cd".repeat(32));
            w.add_success(m, "jpg", &common::jpeg(40, 30, i as u8))?;
        }
        w.finish(
            &ctx.output_path("00000.parquet")?,
            &ctx.output_path("00000_stats.json")?,
            ShardStats::default(),
        )?;
        Ok(TaskReport {
            items_in: LANGS.len() as u64,
            items_out: LANGS.len() as u64,
            ..Default::default()
        })
    }
}

#[test]
fn search_finds_samples_by_language() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("queries")).unwrap();
    std::fs::write(
        dir.path().join("queries/metadata.json"),
        serde_json::to_vec(common::ENTRIES).unwrap(),
    )
    .unwrap();
    common::run(dir.path(), &Download);
    common::run(dir.path(), &common::index_stage());
    let opts = SearchOptions {
        limit: 50,
        ..Default::default()
    };
    for lang in ["en", "de", "fr"] {
        let r = search(dir.path(), &format!("language:{lang}"), &opts).unwrap();
        let mut keys: Vec<String> = r.hits.iter().map(|h| h.key.clone()).collect();
        keys.sort();
        let want: Vec<String> = LANGS
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == lang)
            .map(|(i, _)| ShardLayout::new(10).key(0, i as u64))
            .collect();
        assert_eq!(keys, want, "language:{lang}");
        assert!(r.hits.iter().all(|h| h.language == lang));
    }
    let r = search(dir.path(), "car AND language:de", &opts).unwrap();
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.hits[0].key, ShardLayout::new(10).key(0, 1));
    let r = search(dir.path(), "language:ja", &opts).unwrap();
    assert!(r.hits.is_empty());
}

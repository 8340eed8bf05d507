//! Fixtures shared by the integration tests: a tiny corpus whose counts are computed by hand in
//! `recipe.rs`, WordNet files in the real format, pageviews.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use openwit_exec::StageOutcome;
use openwit_queries::testdata::PageSpec;
use openwit_queries::{QueriesConfig, QueriesStage};

/// Two articles, a redirect and a talk page. Cleaned, the articles are the lines
/// `Red fox runs.` / `The red fox sleeps.` and `The red car runs, the fox sleeps.`
pub fn pages() -> Vec<PageSpec> {
    vec![
        PageSpec::article(
            1,
            "Red fox",
            "'''Red fox''' runs.<ref>{{cite book|title=Foxes}}</ref>\n\nThe [[Red fox|red fox]] sleeps.\n[[Category:Foxes]]\n[[de:Rotfuchs]]",
        ),
        PageSpec::article(
            2,
            "Car",
            "{{Infobox car|name={{lang|en|Car}}|image=Car.jpg}}\nThe red car runs, the fox sleeps.<!-- a comment -->\n{| class=\"wikitable\"\n|-\n| cell || red fox\n|}\n[[File:Car.jpg|thumb|A [[red]] car]]",
        ),
        PageSpec {
            id: 3,
            title: "Foxes".into(),
            ns: 0,
            redirect: Some("Red fox".into()),
            text: "#REDIRECT [[Red fox]]".into(),
        },
        PageSpec {
            id: 4,
            title: "Talk:Red fox".into(),
            ns: 1,
            redirect: None,
            text: "fox fox fox fox".into(),
        },
    ]
}

/// WordNet 3.0 data files (wndb(5) format) with an adjective head, a satellite, a marker.
pub fn write_wordnet(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let header = "  1 Test lexical database in the WordNet 3.0 format.  \n";
    let files = [
        (
            "data.adj",
            vec![
                "00000055 00 a 01 red 0 001 & 00000124 s 0000 | having the colour of blood  ",
                "00000124 00 s 02 crimson 0 deep_red 0 001 & 00000055 a 0000 | deep red  ",
                "00000205 00 s 02 used_to(p) 0 wont_to(p) 0 000 | in the habit  ",
            ],
        ),
        (
            "data.adv",
            vec!["00000055 02 r 02 fast 0 quickly 0 000 | at speed  "],
        ),
        (
            "data.noun",
            vec![
                "00000055 05 n 01 fox 0 000 | an animal  ",
                "00000100 05 n 02 red_fox 0 Vulpes_vulpes 0 001 @ 00000055 n 0000 | a fox with red fur  ",
            ],
        ),
        (
            "data.verb",
            vec!["00000055 38 v 01 run 0 000 01 + 02 00 | move fast  "],
        ),
    ];
    for (name, lines) in files {
        let mut text = String::from(header);
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// One hourly pageview file (gzip).
pub fn write_pageviews(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("pageviews-20240101-000000.gz");
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), Default::default());
    gz.write_all(
        b"en Red_fox 80 0\nen Red_fox 40 0\nen Fox 60 0\nen Fox 15 0\nen.m Fox 900 0\nen Category:Foxes 500 0\n",
    )
    .unwrap();
    gz.finish().unwrap();
    p
}

/// A config over `wikipedia` with the thresholds the hand computations use.
pub fn config(
    wikipedia: Vec<String>,
    wordnet: Option<&Path>,
    pageviews: Option<&Path>,
) -> QueriesConfig {
    QueriesConfig {
        wikipedia,
        wordnet: wordnet
            .map(|p| vec![p.display().to_string()])
            .unwrap_or_default(),
        pageviews: pageviews
            .map(|p| vec![p.display().to_string()])
            .unwrap_or_default(),
        unigram_min_count: 2,
        bigram_min_pmi: 2.0,
        title_min_views: 70,
        ..Default::default()
    }
}

/// Runs the stage in `workdir`; returns the outcome.
pub fn run(workdir: &Path, cfg: QueriesConfig, jobs: usize) -> StageOutcome {
    let stage = QueriesStage::new(cfg, Path::new("/")).unwrap();
    openwit_testkit::run_stage(workdir, jobs, &stage).unwrap()
}

pub fn metadata(workdir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(workdir.join("queries/metadata.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn summary(workdir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(workdir.join("queries/summary.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Reads a count table (`key`, `count`) into pairs.
pub fn count_table(path: &Path) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    openwit_queries::tables::read_counts(path, |k, c| {
        v.push((k.to_string(), c));
        Ok(())
    })
    .unwrap();
    v
}

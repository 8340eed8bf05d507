//! kill -9 and rerun: the real `openwit` binary through the testkit harness gives outputs
//! byte-identical to an uninterrupted run.

mod common;

use std::path::Path;

use openwit_queries::testdata::{PageSpec, write_multistream};
use openwit_testkit::harness::{digest_outputs, kill_after_tasks, openwit_bin, run_to_end};

fn setup(dir: &Path) -> std::path::PathBuf {
    let mut pages = common::pages();
    for i in 0..200 {
        pages.push(PageSpec::article(
            100 + i,
            &format!("Page {i}"),
            &format!(
                "{{{{Infobox|n={i}}}}}\nThe red fox number {i} runs to the car.\n\n== Notes ==\nA [[dog|brown dog]] sleeps.<ref>x</ref>"
            ),
        ));
    }
    write_multistream(
        &dir.join("enwiki-r-pages-articles-multistream.xml.bz2"),
        &pages,
        2,
    )
    .unwrap();
    common::write_wordnet(&dir.join("wordnet"));
    common::write_pageviews(&dir.join("pageviews"));
    let pipe = dir.join("pipe.toml");
    std::fs::write(
        &pipe,
        "[pipeline]\nworkdir = \"work\"\n\n[queries]\nwikipedia = [\"enwiki-r-pages-articles-multistream.xml.bz2\"]\n\
         wordnet = [\"wordnet\"]\npageviews = [\"pageviews\"]\nunigram_min_count = 2\nbigram_mode = \"top_k\"\n\
         bigram_top_k = 20\ntask_size_mb = 0.0015\nmemory_budget_mb = 0.002\n",
    )
    .unwrap();
    pipe
}

#[test]
fn kill_after_tasks_and_rerun_gives_identical_outputs() {
    let bin = openwit_bin();
    let a = tempfile::tempdir().unwrap();
    setup(a.path());
    run_to_end(
        &bin,
        &["queries", "pipe.toml", "--jobs", "2"],
        Some(a.path()),
    )
    .assert_success();
    let reference = digest_outputs(&a.path().join("work"));
    assert!(reference.contains_key("queries/metadata.json"));
    let tasks = reference.keys().filter(|k| k.ends_with(".uni.cnt")).count();
    assert!(tasks >= 20, "{tasks} tasks");

    for kill_after in [1, tasks / 2, tasks * 3 / 4] {
        let b = tempfile::tempdir().unwrap();
        setup(b.path());
        let first = kill_after_tasks(
            &bin,
            &["queries", "pipe.toml", "--jobs", "2"],
            Some(b.path()),
            kill_after,
        );
        assert!(first.killed, "finished before the kill: {}", first.stderr);
        let second = run_to_end(
            &bin,
            &["queries", "pipe.toml", "--jobs", "2"],
            Some(b.path()),
        );
        second.assert_success();
        assert!(second.stdout.contains("queries:") || second.stderr.contains("queries"));
        let got = digest_outputs(&b.path().join("work"));
        assert_eq!(
            got, reference,
            "outputs differ after a kill after {kill_after} tasks"
        );
    }
}

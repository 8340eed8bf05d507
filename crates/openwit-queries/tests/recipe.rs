//! The recipe on a corpus small enough to count by hand.
//!
//! Cleaned text (see `common::pages`), one line each:
//!   `Red fox runs.` | `The red fox sleeps.` | `The red car runs, the fox sleeps.`
//! Tokens (18 = N): Red, fox, runs, . | The, red, fox, sleeps, . | The, red, car, runs, ",", the,
//! fox, sleeps, .
//! Unigrams: fox 3, . 3, The 2, red 2, runs 2, sleeps 2, Red 1, car 1, "," 1, the 1.
//! Bigrams (inside a line, punctuation ends the chain): The red 2, fox sleeps 2, Red fox 1,
//! fox runs 1, red fox 1, red car 1, car runs 1, the fox 1.
//! With words counted >= 2: PMI(The red) = log2(2*18/(2*2)) = log2 9; PMI(fox sleeps) =
//! log2(2*18/(3*2)) = log2 6; PMI(fox runs) = PMI(red fox) = log2(1*18/(3*2)) = log2 3.

mod common;

use std::fs::File;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, StringArray};
use common::*;
use openwit_queries::BigramMode;
use openwit_queries::testdata::{write_multistream, write_single};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn expected_list() -> Vec<String> {
    let mut v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    // WordNet in NLTK's order: adj (with satellites), adv, noun, verb.
    for e in ["red", "crimson", "used to", "fast", "fox", "red fox", "run"] {
        v.push(e.into());
    }
    // Unigrams by count: `.` (3, dropped: punctuation), fox (3, dup), The, red (dup), runs, sleeps.
    for e in ["The", "runs", "sleeps"] {
        v.push(e.into());
    }
    // Bigrams by PMI >= 2: The red (3.17), fox sleeps (2.58).
    v.push("The red".into());
    v.push("fox sleeps".into());
    // Titles: Red fox 80 views (the 40 is under the hourly 50); Fox 60 < 70.
    v.push("Red fox".into());
    v
}

#[test]
fn hand_computed_counts_pmi_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir
        .path()
        .join("enwiki-test-pages-articles-multistream.xml.bz2");
    write_multistream(&dump, &pages(), 1).unwrap();
    let wn = dir.path().join("wordnet");
    write_wordnet(&wn);
    let pv = dir.path().join("pageviews");
    write_pageviews(&pv);
    let work = dir.path().join("work");
    let cfg = config(vec![dump.display().to_string()], Some(&wn), Some(&pv));
    run(&work, cfg, 2);

    assert_eq!(metadata(&work), expected_list());

    let uni = count_table(&work.join("queries/unigram.parquet"));
    let expect_uni: Vec<(String, u64)> = [
        (",", 1),
        (".", 3),
        ("Red", 1),
        ("The", 2),
        ("car", 1),
        ("fox", 3),
        ("red", 2),
        ("runs", 2),
        ("sleeps", 2),
        ("the", 1),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), *c))
    .collect();
    assert_eq!(uni, expect_uni);
    let bi = count_table(&work.join("queries/bigram.parquet"));
    let expect_bi: Vec<(String, u64)> = [
        ("Red fox", 1),
        ("The red", 2),
        ("car runs", 1),
        ("fox runs", 1),
        ("fox sleeps", 2),
        ("red car", 1),
        ("red fox", 1),
        ("the fox", 1),
    ]
    .iter()
    .map(|(k, c)| (k.to_string(), *c))
    .collect();
    assert_eq!(bi, expect_bi);

    let s = summary(&work);
    assert_eq!(s["tokens"], 18);
    assert_eq!(s["wikipedia"]["dump"]["pages"], 4);
    assert_eq!(s["wikipedia"]["dump"]["articles"], 2);
    assert_eq!(s["wikipedia"]["dump"]["redirects"], 1);
    assert_eq!(s["wikipedia"]["dump"]["other_namespace"], 1);
    assert_eq!(s["bigrams_scored"], 4);
    assert_eq!(s["entries_by_source"]["wordnet"], 7);
    assert_eq!(s["entries_by_source"]["wiki_unigram"], 3);
    assert_eq!(s["entries_by_source"]["wiki_bigram"], 2);
    assert_eq!(s["entries_by_source"]["wiki_title"], 1);

    // queries.parquet: entry, id, source, count, pmi, views.
    let f = File::open(work.join("queries/queries.parquet")).unwrap();
    let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let b = &batches[0];
    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
    let entry = col("entry");
    let entry = entry.as_any().downcast_ref::<StringArray>().unwrap();
    let id = col("id");
    let id = id.as_any().downcast_ref::<Int32Array>().unwrap();
    let source = col("source");
    let source = source.as_any().downcast_ref::<StringArray>().unwrap();
    let count = col("count");
    let count = count.as_any().downcast_ref::<Int64Array>().unwrap();
    let pmi = col("pmi");
    let pmi = pmi.as_any().downcast_ref::<Float64Array>().unwrap();
    let views = col("views");
    let views = views.as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(b.num_rows(), 113);
    let row = (0..b.num_rows())
        .find(|&i| entry.value(i) == "The red")
        .unwrap();
    assert_eq!(id.value(row), row as i32);
    assert_eq!(source.value(row), "wiki_bigram");
    assert_eq!(count.value(row), 2);
    assert!((pmi.value(row) - 9f64.log2()).abs() < 1e-12);
    let row = (0..b.num_rows())
        .find(|&i| entry.value(i) == "fox sleeps")
        .unwrap();
    assert!((pmi.value(row) - 6f64.log2()).abs() < 1e-12);
    let row = (0..b.num_rows())
        .find(|&i| entry.value(i) == "runs")
        .unwrap();
    assert_eq!((source.value(row), count.value(row)), ("wiki_unigram", 2));
    assert!(pmi.is_null(row) && views.is_null(row));
    let row = (0..b.num_rows())
        .find(|&i| entry.value(i) == "Red fox")
        .unwrap();
    assert_eq!((source.value(row), views.value(row)), ("wiki_title", 80));
    assert_eq!(source.value(0), "number");
}

#[test]
fn top_k_mode_breaks_ties_by_entry_and_word_minimum_applies() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("enwiki-test-pages-articles.xml.bz2");
    write_single(&dump, &pages()).unwrap();
    let work = dir.path().join("work");
    let mut cfg = config(vec![dump.display().to_string()], None, None);
    cfg.bigram_mode = BigramMode::TopK;
    cfg.bigram_top_k = 3;
    run(&work, cfg, 1);
    let m = metadata(&work);
    // After the numbers: unigrams fox, The, red, runs, sleeps; bigrams The red, fox sleeps, then
    // the better of the two log2(3) ties by byte order: `fox runs` < `red fox`.
    assert_eq!(
        &m[100..],
        &[
            "fox",
            "The",
            "red",
            "runs",
            "sleeps",
            "The red",
            "fox sleeps",
            "fox runs"
        ]
    );

    // Bigram words need only 1 count: `Red fox` (1*18/(1*3): log2 6) now competes too.
    let work = dir.path().join("work2");
    let mut cfg = config(vec![dump.display().to_string()], None, None);
    cfg.bigram_word_min_count = Some(1);
    cfg.bigram_min_pmi = 2.5;
    run(&work, cfg, 1);
    let m = metadata(&work);
    // PMIs: The red log2 9 = 3.17; car runs 1*18/(1*2) = log2 9; red car 18/(2*1) = log2 9
    // (exact ties in floating point too: broken by byte order); the fox 18/(1*3), Red fox
    // 18/(1*3) and fox sleeps 36/(3*2) are all log2 6 (the last may differ in the last bit, as
    // in NLTK's float arithmetic).
    assert_eq!(&m[105..108], &["The red", "car runs", "red car"]);
    let mut rest = m[108..].to_vec();
    rest.sort();
    assert_eq!(rest, vec!["Red fox", "fox sleeps", "the fox"]);
}

#[test]
fn multistream_single_stream_and_plain_xml_give_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut pages = pages();
    // More articles, so the multistream dump splits into several tasks.
    for i in 0..30 {
        pages.push(openwit_queries::testdata::PageSpec::article(
            100 + i,
            &format!("Page {i}"),
            &format!(
                "The red fox number {i} runs.\n\n== Section ==\n[[Car|A car]] {{{{x|{i}}}}} sleeps."
            ),
        ));
    }
    let multi = dir
        .path()
        .join("enwiki-x-pages-articles-multistream.xml.bz2");
    write_multistream(&multi, &pages, 3).unwrap();
    let single = dir.path().join("enwiki-x-pages-articles.xml.bz2");
    write_single(&single, &pages).unwrap();
    let plain = dir.path().join("enwiki-x-pages-articles.xml");
    write_single(&plain, &pages).unwrap();
    let mut outs = Vec::new();
    for (name, path) in [("multi", &multi), ("single", &single), ("plain", &plain)] {
        let work = dir.path().join(name);
        let mut cfg = config(vec![path.display().to_string()], None, None);
        cfg.task_size_mb = 0.0005; // ~500 bytes: about one stream per task
        let outcome = run(&work, cfg, 2);
        if name == "multi" {
            match outcome {
                openwit_exec::StageOutcome::Ran { total, .. } => {
                    assert!(total >= 5, "{total} tasks")
                }
                other => panic!("{other:?}"),
            }
        }
        let meta = std::fs::read(work.join("queries/metadata.json")).unwrap();
        let q = std::fs::read(work.join("queries/queries.parquet")).unwrap();
        let u = std::fs::read(work.join("queries/unigram.parquet")).unwrap();
        let b = std::fs::read(work.join("queries/bigram.parquet")).unwrap();
        outs.push((meta, q, u, b));
    }
    assert!(outs[0] == outs[1], "multistream and single-stream differ");
    assert!(outs[0] == outs[2], "bzip2 and plain XML differ");
}

#[test]
fn a_folder_of_dumps_counts_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let p = pages();
    write_single(&dumps.join("part1.xml.bz2"), &p[..1]).unwrap();
    write_single(&dumps.join("part2.xml"), &p[1..]).unwrap();
    std::fs::write(dumps.join("notes.txt"), "not a dump").unwrap();
    let work = dir.path().join("work");
    run(
        &work,
        config(vec![dumps.display().to_string()], None, None),
        2,
    );
    assert_eq!(summary(&work)["tokens"], 18);
}

#[test]
fn a_threshold_change_after_restart_reuses_the_count_tables() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir
        .path()
        .join("enwiki-test-pages-articles-multistream.xml.bz2");
    write_multistream(&dump, &pages(), 1).unwrap();
    let work = dir.path().join("work");
    let cfg = config(vec![dump.display().to_string()], None, None);
    run(&work, cfg.clone(), 1);
    let first = metadata(&work);
    // Another threshold: the executor refuses until --restart; after it, nothing is recounted.
    let mut cfg2 = cfg.clone();
    cfg2.unigram_min_count = 3;
    let stage = openwit_queries::QueriesStage::new(cfg2, std::path::Path::new("/")).unwrap();
    let mut ex =
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    let err = ex.run_stage(&stage).unwrap_err().to_string();
    assert!(err.contains("unigram_min_count"), "{err}");
    ex.restart(
        &[std::sync::Arc::new(stage) as std::sync::Arc<dyn openwit_core::Stage>],
        "queries",
    )
    .unwrap();
    let stage = openwit_queries::QueriesStage::new(
        QueriesConfig {
            unigram_min_count: 3,
            ..cfg
        },
        std::path::Path::new("/"),
    )
    .unwrap();
    ex.run_stage(&stage).unwrap();
    let tasks = ex.state().tasks("queries").unwrap();
    let wiki: Vec<_> = tasks
        .iter()
        .filter(|t| t.task.starts_with("wiki-"))
        .collect();
    assert!(!wiki.is_empty());
    assert!(
        wiki.iter().all(|t| t.extra["cached"] == true),
        "tasks recounted"
    );
    let second = metadata(&work);
    // Words counted >= 3: only `fox` (and `.`, dropped); no bigram has two such words.
    assert_eq!(&second[100..], &["fox"]);
    assert_ne!(first, second);
    // The summary still has the corpus figures.
    assert_eq!(summary(&work)["tokens"], 18);
}

use openwit_queries::QueriesConfig;

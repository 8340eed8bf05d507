//! Numbers in pipeline files are checked when the file is loaded (issue #17, requirement 6).
//!
//! For every numeric key, a table of bad values (`inf`, `nan`, negative, `1e20`, 0 where it makes
//! no sense, integers too large) goes through the real `openwit` binary, which must refuse the
//! file with exit code 2, name `file:line:column` of the value and run nothing; a sensible value of
//! the same key must load and keep its value. Every pipeline file under `pipelines/` still loads.

use std::path::Path;
use std::process::Command;

use openwit_cli::PipelineDoc;
use serde::Serialize;
use serde_json::Value;

/// One numeric key: its table, the lines the table needs before it, a value that loads, and
/// values that must be refused.
struct Key {
    table: &'static str,
    prelude: &'static str,
    key: &'static str,
    good: &'static str,
    bad: &'static [&'static str],
}

const fn key(
    table: &'static str,
    prelude: &'static str,
    key: &'static str,
    good: &'static str,
    bad: &'static [&'static str],
) -> Key {
    Key {
        table,
        prelude,
        key,
        good,
        bad,
    }
}

const HUGE: &str = "9223372036854775807";
const SEEDS: &str = "seeds = [\"http://example.org/\"]";
const WORDNET: &str = "wordnet = [\"wordnet\"]";
const INPUTS: &str = "inputs = [\"a.warc.gz\"]";

/// Every numeric key of the stages built without the `train` feature.
const KEYS: &[Key] = &[
    // [pipeline]
    key(
        "pipeline",
        "",
        "jobs",
        "8",
        &["-1", "4097", HUGE, "1.5", "inf"],
    ),
    key(
        "pipeline",
        "",
        "max_attempts",
        "5",
        &["0", "-1", "101", "nan"],
    ),
    key("pipeline", "", "seed", "7", &["-1", "1.5", "inf"]),
    // [demo_site]
    key(
        "demo_site",
        "dir = \"site\"",
        "pages",
        "12",
        &["0", "-5", "100001", "inf"],
    ),
    key(
        "demo_site",
        "dir = \"site\"",
        "per_class",
        "12",
        &["0", "-5", "100001", "inf"],
    ),
    key(
        "demo_site",
        "dir = \"site\"",
        "held_out_percent",
        "10",
        &["-1", "91", "nan", "1e20"],
    ),
    // [queries]
    key(
        "queries",
        WORDNET,
        "unigram_min_count",
        "100",
        &["-1", "1e20", "1000000000001", "nan"],
    ),
    key(
        "queries",
        WORDNET,
        "bigram_min_pmi",
        "-2.5",
        &["inf", "-inf", "nan", "1e20", "-1001"],
    ),
    key(
        "queries",
        WORDNET,
        "bigram_top_k",
        "5000",
        &["0", "-1", HUGE],
    ),
    key(
        "queries",
        WORDNET,
        "bigram_word_min_count",
        "1",
        &["-1", "1e20"],
    ),
    key("queries", WORDNET, "bigram_min_count", "2", &["-1", "inf"]),
    key(
        "queries",
        WORDNET,
        "title_min_hourly_views",
        "50",
        &["-1", "nan"],
    ),
    key("queries", WORDNET, "title_min_views", "70", &["-1", HUGE]),
    key("queries", WORDNET, "max_entries", "500000", &["0", "1e20"]),
    key(
        "queries",
        WORDNET,
        "task_size_mb",
        "0.5",
        &["0", "-1", "inf", "nan", "1e20"],
    ),
    key(
        "queries",
        WORDNET,
        "max_page_mb",
        "64",
        &["0", "4097", "inf"],
    ),
    key(
        "queries",
        WORDNET,
        "memory_budget_mb",
        "8192",
        &["0", "-1", "inf", "nan", "1e20"],
    ),
    // [crawl]
    key("crawl", SEEDS, "max_depth", "0", &["-1", "1001", "inf"]),
    key(
        "crawl",
        SEEDS,
        "max_pages",
        "10",
        &["0", "-1", "1e20", HUGE],
    ),
    key(
        "crawl",
        SEEDS,
        "concurrency",
        "16",
        &["0", "-1", "10001", HUGE, "1.5", "inf"],
    ),
    key("crawl", SEEDS, "per_host", "1", &["0", "10001"]),
    key(
        "crawl",
        SEEDS,
        "min_delay_ms",
        "0",
        &["-1", "86400001", "1e20", "inf", "nan"],
    ),
    key(
        "crawl",
        SEEDS,
        "timeout_secs",
        "30",
        &["0", "-1", "86401", "1e20", "inf", "nan", HUGE],
    ),
    key(
        "crawl",
        SEEDS,
        "max_page_bytes",
        "5242880",
        &["0", "-1", "1073741825", "1e20"],
    ),
    key("crawl", SEEDS, "max_attempts", "3", &["0", "101"]),
    // [warc]
    key("warc", INPUTS, "max_files", "10", &["0", "-1", "inf"]),
    key(
        "warc",
        INPUTS,
        "timeout_secs",
        "600",
        &["0", "inf", "1e20", "86401"],
    ),
    // [curate]
    key(
        "curate",
        "",
        "partitions",
        "16",
        &["0", "65537", "-1", "inf"],
    ),
    key("curate", "", "rows_per_task", "1000", &["0", "-1", "1e20"]),
    key(
        "curate",
        "",
        "quality.min_chars",
        "5",
        &["-1", "1000001", "nan"],
    ),
    key("curate", "", "quality.max_chars", "1000", &["0", "1000001"]),
    key("curate", "", "quality.min_words", "2", &["-1", "100001"]),
    key(
        "curate",
        "",
        "language.min_confidence",
        "0.5",
        &["-0.1", "1.5", "nan", "inf"],
    ),
    key(
        "curate",
        "",
        "balance.t",
        "20000",
        &["0", "-1", "1e20", HUGE],
    ),
    key(
        "curate",
        "",
        "balance.oversample",
        "1.5",
        &["0", "-1", "inf", "nan", "1e20"],
    ),
    // [balance]
    key("balance", "", "t", "20000", &["0", "-1", "inf"]),
    // [download]
    key(
        "download",
        "",
        "shard_size",
        "10000",
        &["0", "-1", "10000001", "1e20"],
    ),
    key("download", "", "image_size", "256", &["-1", "65536", "inf"]),
    key(
        "download",
        "",
        "encode_quality",
        "95",
        &["0", "101", "256", "-1"],
    ),
    key("download", "", "min_image_size", "0", &["-1", "65536"]),
    key(
        "download",
        "",
        "max_aspect_ratio",
        "3.0",
        &["0", "0.5", "inf", "nan", "1e20"],
    ),
    key(
        "download",
        "",
        "max_pixels",
        "89478485",
        &["0", "-1", "1e20", HUGE],
    ),
    key("download", "", "max_dimension", "32768", &["0", "1048577"]),
    key(
        "download",
        "",
        "image_memory_budget_mb",
        "1024",
        &["0", "-1", "1048577", "inf", HUGE],
    ),
    key("download", "", "near_dup_distance", "4", &["-1", "65"]),
    key(
        "download",
        "",
        "exclude_eval_phash_distance",
        "4",
        &["-1", "65"],
    ),
    key("download", "", "concurrency", "64", &["0", "10001"]),
    key("download", "", "per_host_concurrency", "16", &["0", "-3"]),
    key(
        "download",
        "",
        "per_host_delay",
        "0.0",
        &["-1", "inf", "nan", "86401", "1e20"],
    ),
    key(
        "download",
        "",
        "connect_timeout",
        "10.0",
        &["0", "-1", "inf", "nan", "1e20"],
    ),
    key(
        "download",
        "",
        "timeout",
        "30",
        &["0", "-1", "inf", "-inf", "nan", "1e20"],
    ),
    key(
        "download",
        "",
        "read_timeout",
        "0.5",
        &["0", "-1", "inf", "nan", "1e20"],
    ),
    key(
        "download",
        "",
        "max_body_bytes",
        "33554432",
        &["0", "-1", "4294967297", "1e20", HUGE],
    ),
    key("download", "", "retries", "0", &["-1", "101"]),
    key(
        "download",
        "",
        "backoff",
        "0.5",
        &["-1", "inf", "nan", "1e20"],
    ),
    key(
        "download",
        "",
        "max_retry_after",
        "30",
        &["-1", "inf", "nan", "1e20"],
    ),
    // [index]
    key(
        "index",
        "",
        "memory_mb",
        "64",
        &["0", "15", "4001", "-1", HUGE],
    ),
];

/// A pipeline file with `line` in `table`, and the 1-based line and column of its value.
fn pipeline_with(k: &Key, value: &str) -> (String, usize, usize) {
    let mut text = String::from("# written by config_values.rs\n");
    if k.table != "pipeline" {
        text.push_str("[pipeline]\nworkdir = \"work\"\n\n");
    }
    text.push_str(&format!("[{}]\n", k.table));
    if k.table == "pipeline" {
        text.push_str("workdir = \"work\"\n");
    }
    if !k.prelude.is_empty() {
        text.push_str(k.prelude);
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    let assignment = format!("{} = ", k.key);
    let col = assignment.chars().count() + 1;
    text.push_str(&format!("{assignment}{value}\n"));
    // A stage table in every file, so that the file would be runnable without the bad value.
    if ![
        "index", "queries", "crawl", "warc", "curate", "balance", "download",
    ]
    .contains(&k.table)
    {
        text.push_str("\n[index]\n");
    }
    (text, line, col)
}

fn openwit(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run the openwit binary")
}

#[test]
fn bad_numbers_are_refused_on_load_with_file_line_column_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for k in KEYS {
        for bad in k.bad {
            let (text, line, col) = pipeline_with(k, bad);
            std::fs::write(dir.path().join("p.toml"), &text).unwrap();
            let out = openwit(dir.path(), &["run", "p.toml"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let at = format!("error: p.toml:{line}:{col}: ");
            let why = [
                "out of range",
                "not a finite number",
                "invalid type",
                "invalid value",
            ]
            .iter()
            .any(|w| stderr.contains(w));
            if out.status.code() != Some(2) || !stderr.contains(&at) || !why {
                failures.push(format!(
                    "[{}] {} = {bad}: exit {:?}, expected 2 and `{at}`; stderr:\n{stderr}",
                    k.table,
                    k.key,
                    out.status.code()
                ));
            }
            // Refused before anything ran: no workdir.
            assert!(!dir.path().join("work").exists(), "{text}\n{stderr}");
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, KEYS.iter().map(|k| k.bad.len()).sum::<usize>());
    assert!(checked > 150, "{checked}");
}

#[test]
fn the_message_names_the_range_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    for (text, want) in [
        (
            "[download]\nread_timeout = inf\n",
            "p.toml:2:16: not a finite number: inf",
        ),
        (
            "[download]\ntimeout = 1e20\n",
            "p.toml:2:11: out of range: 1e20; expected seconds from 0.001 to 86400",
        ),
        (
            "[curate]\nbalance = { t = 0, oversample = 2.0 }\n",
            "p.toml:2:17: out of range: 0; expected a count from 1 to 1e12",
        ),
        (
            "[crawl]\nseeds = []\nconcurrency = 9223372036854775807\n",
            "p.toml:3:15: out of range: 9223372036854775807; expected requests in flight from 1 to 10000",
        ),
        (
            "[download]\nshard_size = 99999999999999999999\n",
            "p.toml:2:14: ",
        ),
        // A stage this binary may not have: `inf` and `nan` are refused anywhere in the file.
        (
            "[index]\n\n[train]\nlr = nan\n",
            "p.toml:4:6: not a finite number: nan",
        ),
        (
            "[index]\n\n[train]\nadamw = { beta1 = 0.9, eps = -inf }\n",
            "p.toml:4:30: not a finite number: -inf",
        ),
    ] {
        std::fs::write(&p, text).unwrap();
        let out = openwit(dir.path(), &["run", "p.toml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}\n{stderr}");
        assert!(
            stderr.contains(&format!("error: {want}")),
            "{text}\n{stderr}"
        );
        assert!(stderr.contains("fix: "), "{text}\n{stderr}");
    }
}

/// The table `k.table` of `doc` through its stage's config type, as JSON.
fn section_json(doc: &PipelineDoc, table: &str) -> openwit_core::Result<Value> {
    fn json<T: Serialize>(v: Option<T>) -> Value {
        serde_json::to_value(v.expect("the table is present")).unwrap()
    }
    Ok(match table {
        "pipeline" => json(Some(doc.pipeline())),
        "demo_site" => json(doc.section::<openwit_sources::crawl::DemoSite>(table)?),
        "queries" => json(doc.section::<openwit_queries::QueriesConfig>(table)?),
        "crawl" => json(doc.section::<openwit_sources::CrawlConfig>(table)?),
        "warc" => json(doc.section::<openwit_sources::WarcConfig>(table)?),
        "curate" => json(doc.section::<openwit_curate::CurateConfig>(table)?),
        "balance" => json(doc.section::<openwit_curate::RebalanceConfig>(table)?),
        "download" => json(doc.section::<openwit_fetch::Config>(table)?),
        "index" => json(doc.section::<openwit_index::IndexConfig>(table)?),
        other => panic!("no config type for [{other}]"),
    })
}

#[test]
fn sensible_values_load_and_keep_their_value() {
    let stages: Vec<&str> = openwit_cli::registry().iter().map(|e| e.name).collect();
    let parse = |text: &str| {
        PipelineDoc::parse_with(Path::new("p.toml"), text.into(), &stages, &["demo_site"])
    };
    for k in KEYS {
        let (text, _, _) = pipeline_with(k, k.good);
        let doc = parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let v = section_json(&doc, k.table).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let pointer = format!("/{}", k.key.replace('.', "/"));
        let got = v.pointer(&pointer).and_then(Value::as_f64);
        let want: f64 = k.good.parse().unwrap();
        assert_eq!(got, Some(want), "[{}] {}: {v}", k.table, k.key);
        // The bad values fail in the same parse (not only in the binary).
        for bad in k.bad {
            let (text, _, _) = pipeline_with(k, bad);
            let refused = parse(&text).and_then(|doc| section_json(&doc, k.table));
            assert!(refused.is_err(), "{text}");
        }
    }
}

#[test]
fn every_numeric_key_of_the_stages_is_in_the_table() {
    // The keys whose default is a number, found from the configs themselves, must each have a
    // row above (so a new numeric key without a range makes this test fail).
    let mut missing = Vec::new();
    let defaults: [(&str, Value); 8] = [
        (
            "pipeline",
            serde_json::to_value(openwit_core::PipelineSettings::default()).unwrap(),
        ),
        (
            "queries",
            serde_json::to_value(openwit_queries::QueriesConfig::default()).unwrap(),
        ),
        (
            "crawl",
            serde_json::to_value(
                toml::from_str::<openwit_sources::CrawlConfig>("").expect("crawl defaults"),
            )
            .unwrap(),
        ),
        (
            "warc",
            serde_json::to_value(
                toml::from_str::<openwit_sources::WarcConfig>("inputs = []").unwrap(),
            )
            .unwrap(),
        ),
        (
            "curate",
            serde_json::to_value(openwit_curate::CurateConfig::default()).unwrap(),
        ),
        (
            "balance",
            serde_json::to_value(openwit_curate::RebalanceConfig::default()).unwrap(),
        ),
        (
            "download",
            serde_json::to_value(openwit_fetch::Config::default()).unwrap(),
        ),
        (
            "index",
            serde_json::to_value(
                toml::from_str::<openwit_index::IndexConfig>("memory_mb = 64").unwrap(),
            )
            .unwrap(),
        ),
    ];
    // Numeric keys whose absence means "no limit" have no default number; name them here.
    let optional = [
        ("queries", "bigram_word_min_count"),
        ("warc", "max_files"),
        ("download", "max_aspect_ratio"),
        ("download", "near_dup_distance"),
    ];
    for (table, v) in &defaults {
        for (key, value) in openwit_core::config::flatten(v) {
            if value.parse::<f64>().is_ok()
                && !KEYS.iter().any(|k| k.table == *table && k.key == key)
            {
                missing.push(format!("[{table}] {key}"));
            }
        }
    }
    for (table, key) in optional {
        assert!(
            KEYS.iter().any(|k| k.table == table && k.key == key),
            "[{table}] {key}"
        );
    }
    assert!(
        missing.is_empty(),
        "numeric keys without bad values: {missing:?}"
    );
}

#[test]
fn every_pipeline_under_pipelines_still_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut registry = openwit_cli::registry();
    if !cfg!(feature = "train") {
        // Without the trainer the `[train]` and `[eval]` tables are refused as a whole (another
        // test covers that); load the rest. `inf`/`nan` in them are still refused on parse.
        for e in &mut registry {
            if e.name == "train" || e.name == "eval" {
                e.build = |_| Ok(None);
            }
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no pipeline files in {}", root.display());
    for f in &files {
        let (doc, stages) = openwit_cli::commands::prepare::load(f, None, None, &registry)
            .unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
        for e in &registry {
            let built = e.name != "train" && e.name != "eval" || cfg!(feature = "train");
            assert_eq!(
                names.contains(&e.name),
                doc.has(e.name) && built,
                "{}: stage {} ({names:?})",
                f.display(),
                e.name
            );
        }
    }
}

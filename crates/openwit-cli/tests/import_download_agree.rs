//! `openwit import` and `openwit download` read a URL list the same way (issue 17, req. 5: one
//! reader for both). Each real list of openwit-urllist's test data (npm and PyPI packages,
//! `crates/openwit-urllist/tests/data/README.md`) goes through both stages, through the binary:
//! row for row, the rows import turns into candidates are the rows download tries to fetch, with
//! the same URL and caption, and the rows import drops are the rows download records as failures
//! before any request, with the same reasons and counts.
//!
//! Download must not reach the internet, so in the JSON lists (the only ones with URLs) every
//! `http(s)://HOST` is replaced by a loopback server's `http://127.0.0.1:PORT`, which answers 404;
//! every other byte is the package's. The CSV, TSV and parquet lists have no URL column: their
//! identifier columns are read as URLs, and every row is a bad URL in both stages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use openwit_testkit::server::{Response, TestServer};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../openwit-urllist/tests/data")
        .join(name)
}

fn openwit(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the openwit binary")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = openwit(args, cwd);
    assert!(
        out.status.success(),
        "openwit {args:?}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The utf8 columns `names` of every row of the `*.parquet` files in `dir` (sorted by name).
fn columns(dir: &Path, names: &[&str]) -> Vec<Vec<Option<String>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let f = std::fs::File::open(&p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b: RecordBatch = b.unwrap();
            let cols: Vec<_> = names
                .iter()
                .map(|n| {
                    let c = b
                        .column_by_name(n)
                        .unwrap_or_else(|| panic!("{}: no column {n}", p.display()));
                    assert_eq!(c.data_type(), &DataType::Utf8, "{n}");
                    c.as_string::<i32>().clone()
                })
                .collect();
            for i in 0..b.num_rows() {
                out.push(
                    cols.iter()
                        .map(|c| (!c.is_null(i)).then(|| c.value(i).to_string()))
                        .collect(),
                );
            }
        }
    }
    out
}

/// Every `http://HOST` and `https://HOST` in `text` becomes `base` (`http://127.0.0.1:PORT`).
fn to_loopback(text: &str, base: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let at = [rest.find("https://"), rest.find("http://")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = at else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let scheme = if after.starts_with("https://") { 8 } else { 7 };
        let host_end = after[scheme..]
            .find(|c: char| "/\"?#\\,".contains(c) || c.is_whitespace())
            .map_or(after.len(), |i| scheme + i);
        out.push_str(base);
        rest = &after[host_end..];
    }
}

/// Why a row was not read as a row: the shared reader's drop reasons and the URL check's.
const READ_REASONS: &[&str] = &[
    "invalid_utf8",
    "unterminated_quote",
    "bad_quote",
    "field_count",
    "malformed_json",
    "not_an_object",
    "not_text",
    "record_too_long",
    "missing_url",
    "missing_caption",
    "unreadable_row_group",
    "truncated_file",
    "bad_url",
];

struct Case {
    file: &'static str,
    url: &'static str,
    caption: &'static str,
    rows: usize,
}

#[test]
fn import_and_download_agree_row_for_row_on_every_real_list() {
    let srv = TestServer::start();
    srv.route("/robots.txt", Response::status(404));
    let base = srv.url("");
    let cases = [
        Case {
            file: "simple-icons.json",
            url: "source",
            caption: "title",
            rows: 3470,
        },
        Case {
            file: "country-flags.json",
            url: "image",
            caption: "name",
            rows: 261,
        },
        Case {
            file: "airports.csv",
            url: "iata",
            caption: "name",
            rows: 3376,
        },
        Case {
            file: "unemployment.tsv",
            url: "id",
            caption: "rate",
            rows: 3218,
        },
        Case {
            file: "pyarrow-v0.7.1.parquet",
            url: "cut",
            caption: "color",
            rows: 10,
        },
    ];
    let mut accepted_total = 0;
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        let bytes = std::fs::read(data(case.file)).unwrap();
        let bytes = if case.file.ends_with(".json") {
            to_loopback(std::str::from_utf8(&bytes).unwrap(), &base).into_bytes()
        } else {
            bytes
        };
        std::fs::write(cwd.join(case.file), &bytes).unwrap();
        std::fs::write(
            cwd.join("p.toml"),
            format!(
                r#"
[pipeline]
name = "agree"
workdir = "w"
allow_private_networks = true

[import]
inputs = ["{f}"]
url_col = "{u}"
caption_col = "{c}"

[download]
input = "{f}"
url_col = "{u}"
caption_col = "{c}"
shard_size = 1000
image_size = 32
retries = 0
"#,
                f = case.file,
                u = case.url,
                c = case.caption
            ),
        )
        .unwrap();
        ok(&["import", "p.toml"], cwd);
        ok(&["download", "p.toml"], cwd);
        let w = cwd.join("w");
        let status: Value = serde_json::from_str(&ok(&["status", "w", "--json"], cwd)).unwrap();
        let stage = |name: &str| {
            status["stages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["stage"] == name)
                .unwrap()
                .clone()
        };
        let import = stage("import");
        let name = case.file;

        // Import: candidates in file order, drops by reason.
        let candidates = columns(&w.join("import"), &["url", "caption"]);
        let import_drops: BTreeMap<String, u64> =
            serde_json::from_value(import["drops"].clone()).unwrap();
        assert_eq!(import["items_in"], case.rows, "{name}: rows read");
        assert_eq!(import["items_out"], candidates.len(), "{name}");

        // Download: one shard row per input row, in key order.
        let shard_rows = columns(
            &w.join("download"),
            &["key", "url", "caption", "error_message"],
        );
        assert_eq!(
            shard_rows.len(),
            case.rows,
            "{name}: one shard row per input row"
        );
        let mut keys: Vec<&str> = shard_rows
            .iter()
            .map(|r| r[0].as_deref().unwrap())
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), case.rows, "{name}: keys are unique");
        let mut download_drops: BTreeMap<String, u64> = BTreeMap::new();
        let mut fetched = Vec::new();
        for r in &shard_rows {
            let reason = r[3]
                .as_deref()
                .map(|m| m.split(':').next().unwrap().to_string());
            match reason {
                Some(reason) if READ_REASONS.contains(&reason.as_str()) => {
                    *download_drops.entry(reason).or_insert(0) += 1;
                }
                other => {
                    // Requested: the loopback server said 404 to each.
                    assert_eq!(other.as_deref(), Some("http_404"), "{name}: {r:?}");
                    fetched.push(vec![r[1].clone(), r[2].clone()]);
                }
            }
        }
        // Every disagreement of this list, listed before failing.
        let mut disagree = Vec::new();
        if download_drops != import_drops {
            disagree.push(format!(
                "drops: download {download_drops:?}, import {import_drops:?}"
            ));
        }
        if fetched.len() != candidates.len() {
            disagree.push(format!(
                "accepted rows: download {}, import {}",
                fetched.len(),
                candidates.len()
            ));
        }
        let differ: Vec<String> = fetched
            .iter()
            .zip(&candidates)
            .enumerate()
            .filter(|(_, (d, c))| d != c)
            .map(|(i, (d, c))| format!("row {i}: download {d:?}, import {c:?}"))
            .collect();
        if !differ.is_empty() {
            disagree.push(format!(
                "{} accepted rows differ, e.g. {:?}",
                differ.len(),
                &differ[..differ.len().min(3)]
            ));
        }
        assert!(disagree.is_empty(), "{name}: {disagree:#?}");
        accepted_total += candidates.len();
        for (u, _) in fetched.iter().map(|r| (r[0].clone().unwrap(), ())) {
            assert!(
                u.starts_with(&base),
                "{name}: {u} is on the loopback server"
            );
        }
    }
    assert_eq!(
        accepted_total,
        3470 + 261,
        "the JSON lists' rows are all accepted"
    );
}

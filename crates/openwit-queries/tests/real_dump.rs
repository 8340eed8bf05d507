//! The `queries` stage on real Wikipedia dumps that nobody on this project wrote (gensim's test
//! excerpts of enwiki, `tests/data/wikipedia/README.md`), with the real WordNet 3.0 when Debian's
//! `wordnet-base` is installed, against an independent Python reference (mwparserfromhell).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use openwit_queries::{QueriesConfig, QueriesStage};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/wikipedia")
        .join(name)
}

fn real_dumps() -> Vec<String> {
    [
        "enwiki-articles1-shortened.xml.bz2",
        "enwiki-table-markup.xml.bz2",
    ]
    .iter()
    .map(|n| data(n).display().to_string())
    .collect()
}

/// Markup that must never reach a count table or the query list.
const MARKUP: &[&str] = &[
    "{{",
    "}}",
    "[[",
    "]]",
    "<ref",
    "|-",
    "&nbsp;",
    "http",
    "File:",
    "Category:",
];

fn markup_in(s: &str) -> Option<&'static str> {
    MARKUP.iter().copied().find(|m| s.contains(m))
}

#[test]
fn real_enwiki_excerpt_counts_like_mwparserfromhell() {
    let dir = tempfile::tempdir().unwrap();
    let wordnet = Path::new("/usr/share/wordnet");
    let cfg = QueriesConfig {
        wikipedia: real_dumps(),
        wordnet: if wordnet.join("data.noun").exists() {
            vec![wordnet.display().to_string()]
        } else {
            eprintln!(
                "note: /usr/share/wordnet is missing (apt-get install wordnet-base): Wikipedia only"
            );
            Vec::new()
        },
        // A small excerpt: MetaCLIP's thresholds (100, PMI 30) would keep almost nothing.
        unigram_min_count: 5,
        bigram_min_pmi: 8.0,
        bigram_min_count: 5,
        ..Default::default()
    };
    let outcome = run(dir.path(), cfg, 2);
    assert!(
        matches!(
            outcome,
            openwit_exec::StageOutcome::Ran { reduced: true, .. }
        ),
        "{outcome:?}"
    );

    // Redirects and other namespaces are skipped, articles are counted.
    let s = summary(dir.path());
    let dump = &s["wikipedia"]["dump"];
    assert_eq!(dump["pages"], 211, "{dump}");
    assert_eq!(dump["redirects"], 100, "{dump}");
    assert_eq!(dump["articles"], 111, "{dump}");
    assert!(
        dump["drops"].as_object().is_none_or(|d| d.is_empty()),
        "no page of a real dump is dropped: {dump}"
    );

    // No markup in any table: every unigram and bigram key, every query entry.
    let uni = count_table(&dir.path().join("queries/unigram.parquet"));
    let bi = count_table(&dir.path().join("queries/bigram.parquet"));
    assert!(uni.len() > 20_000, "{} unigrams", uni.len());
    assert!(bi.len() > 100_000, "{} bigrams", bi.len());
    for (k, _) in uni.iter().chain(&bi) {
        assert_eq!(markup_in(k), None, "markup in count key {k:?}");
    }
    let entries = metadata(dir.path());
    assert!(entries.len() > 2_000, "{} entries", entries.len());
    for e in &entries {
        assert_eq!(markup_in(e), None, "markup in query entry {e:?}");
    }
    let words: HashMap<&str, u64> = uni.iter().map(|(k, c)| (k.as_str(), *c)).collect();

    // The 50 most frequent words are counted within 10% of the Python reference.
    let Some(reference) = python_reference(50) else {
        return;
    };
    assert_eq!(
        reference["pages"], 111,
        "the reference counts the same articles"
    );
    let top = reference["top"].as_array().unwrap();
    assert_eq!(top.len(), 50);
    let mut worst = (String::new(), 0.0f64);
    for pair in top {
        let (tok, want) = (pair[0].as_str().unwrap(), pair[1].as_u64().unwrap());
        let got = words.get(tok).copied().unwrap_or(0);
        let rel = (got as f64 - want as f64).abs() / want as f64;
        eprintln!(
            "{tok:>8}: openwit {got:>6}, mwparserfromhell {want:>6} ({:+.1}%)",
            100.0 * (got as f64 / want as f64 - 1.0)
        );
        if rel > worst.1 {
            worst = (tok.to_string(), rel);
        }
    }
    assert!(
        worst.1 <= 0.10,
        "{:?} is counted {:.1}% away from the reference",
        worst.0,
        100.0 * worst.1
    );
}

/// Runs `tests/py/ref_counts.py` on the same dumps; `None` (with a note) without python3 +
/// mwparserfromhell, except on CI where the reference must run.
fn python_reference(top_n: usize) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/ref_counts.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(top_n.to_string())
        .args(real_dumps())
        .output();
    let on_ci = std::env::var_os("CI").is_some();
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("No module named") && !on_ci {
                eprintln!("skipped the reference: {err}(pip install -r .ci/requirements.txt)");
                None
            } else {
                panic!("ref_counts.py failed: {err}");
            }
        }
        Err(e) if !on_ci => {
            eprintln!("skipped the reference: no python3 ({e})");
            None
        }
        Err(e) => panic!("python3: {e}"),
    }
}

/// A dump saved as UTF-16 (gensim's bgwiki excerpt) is refused with an error naming the file and
/// the encoding, not counted as garbage.
#[test]
fn utf16_dump_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = data("bgwiki-utf16-shortened.xml.bz2");
    let cfg = QueriesConfig {
        wikipedia: vec![path.display().to_string()],
        ..Default::default()
    };
    let stage = QueriesStage::new(cfg, Path::new("/")).unwrap();
    let err = openwit_testkit::run_stage(dir.path(), 1, &stage)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bgwiki-utf16-shortened.xml.bz2"), "{err}");
    assert!(err.contains("UTF-16"), "{err}");
}

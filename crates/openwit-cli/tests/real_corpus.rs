//! The pipeline on the real corpus, through the `openwit` binary, end to end (issue 17, req. 2):
//! material nobody on this project wrote (each folder's README names its package and licence).
//!
//! Part A (workdir `a`): `openwit queries` on gensim's enwiki excerpt, `openwit warc` on the real
//! WARC files (pywb's iana.org and example.com captures, wget's archiveteam.org capture, Warcat's
//! broken chunked record), `openwit crawl` of the German Debian Reference pages served on
//! 127.0.0.1, then `openwit curate`. Asserted: the candidates' captions are the alt texts in those
//! files; German captions are dropped for their language; every kept row's matched entries are
//! exactly the query entries found in its caption under MetaCLIP's rule (`" " + entry + " "` in the
//! spaced caption, so each is a substring of the caption); `openwit status --json` counts what the
//! output files hold.
//!
//! Part B (workdir `b`): the WARC captures' image URLs point to the internet and no setting makes
//! the pipeline resolve a name to a loopback address (the demo site's override is internal), so
//! the real (alt text, image URL) pairs of part A, and the real country-flags list of
//! openwit-urllist, are written as URL lists whose URLs name a loopback server instead (the
//! original host and path kept as the path). `openwit import` reads them, `openwit curate` keeps
//! the same captions as in part A, `openwit download` fetches the kept pairs from the loopback
//! server, which answers each with one of the real images of openwit-fetch's test data, then
//! `openwit index`, `openwit search` for a word of a real caption, and `openwit report`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use openwit_testkit::server::{Response, TestServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn openwit(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run the openwit binary")
}

/// Runs `openwit args` and asserts exit code 0.
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

/// `openwit status WORKDIR --json`, stage name -> its object.
fn status(work: &str, cwd: &Path) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(&ok(&["status", work, "--json"], cwd)).unwrap();
    v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

fn drops_of(s: &Value) -> BTreeMap<String, u64> {
    s["drops"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// The `*.parquet` files directly in `dir`, sorted.
fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    v.sort();
    v
}

fn cell(col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Utf8 => json!(col.as_string::<i32>().value(i)),
        DataType::Int32 => json!(col.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(col.as_primitive::<Int64Type>().value(i)),
        DataType::Float32 => json!(col.as_primitive::<Float32Type>().value(i)),
        DataType::Boolean => json!(col.as_boolean().value(i)),
        DataType::List(_) => {
            let v = col.as_list::<i32>().value(i);
            Value::Array((0..v.len()).map(|j| cell(v.as_ref(), j)).collect())
        }
        _ => Value::String(format!("<{}>", col.data_type())),
    }
}

/// Every row of a parquet file as column -> JSON value.
fn rows(path: &Path) -> Vec<BTreeMap<String, Value>> {
    let f = std::fs::File::open(path).unwrap();
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in r {
        let b: RecordBatch = b.unwrap();
        let schema = b.schema();
        for i in 0..b.num_rows() {
            out.push(
                schema
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                    .collect(),
            );
        }
    }
    out
}

fn rows_in(dir: &Path) -> Vec<BTreeMap<String, Value>> {
    parquet_files(dir).iter().flat_map(|p| rows(p)).collect()
}

/// The curated table: `curate/part-*.parquet` (not `entry_counts.parquet`).
fn curated_rows(dir: &Path) -> Vec<BTreeMap<String, Value>> {
    parquet_files(dir)
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("part-")
        })
        .flat_map(|p| rows(p))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// MetaCLIP's spacing (`spacing()` in its substring matcher): the text padded with one space on
/// each side, `, . ; : ? !` and the backquote wrapped in spaces, tab/CR/LF as spaces. Written here
/// from MetaCLIP's description, not taken from openwit-core.
fn metaclip_spaced(text: &str) -> String {
    let mut t = String::from(" ");
    for c in text.chars() {
        match c {
            ',' | '.' | ';' | ':' | '?' | '!' | '`' => {
                t.push(' ');
                t.push(c);
                t.push(' ');
            }
            '\t' | '\r' | '\n' => t.push(' '),
            c => t.push(c),
        }
    }
    t.push(' ');
    t
}

/// The real images of openwit-fetch's tests, sorted by path (relative path, bytes).
fn real_images() -> Vec<(String, Vec<u8>)> {
    let root = repo().join("crates/openwit-fetch/tests/data/images");
    let mut out = Vec::new();
    for sub in ["go", "pillow", "skimage"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = format!("{sub}/{}", p.file_name().unwrap().to_string_lossy());
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
    assert_eq!(out.len(), 56, "the README lists 56 images");
    out
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `http://HOST/PATH` -> `http://LOOPBACK/HOST/PATH` (https too): the original URL stays visible
/// in the path, and nothing outside this machine is named.
fn to_loopback(url: &str, srv: &TestServer) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("not an http(s) URL: {url}"));
    srv.url(&format!("/{rest}"))
}

const PAGES: [&str; 3] = ["pr01.de.html", "apa.de.html", "ch08.de.html"];

#[test]
fn the_real_corpus_through_queries_warc_crawl_import_curate_download_index_search_report() {
    let repo = repo();
    let sources = repo.join("crates/openwit-sources/tests/data");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();

    // The German Debian Reference pages on 127.0.0.1 (their images are relative: images/*.png).
    let site = TestServer::start();
    site.route("/robots.txt", Response::status(404));
    for p in PAGES {
        site.route(
            &format!("/doc/{p}"),
            Response::bytes(
                "text/html; charset=utf-8",
                std::fs::read(sources.join("html").join(p)).unwrap(),
            ),
        );
    }
    let seeds: Vec<String> = PAGES
        .iter()
        .map(|p| format!("\"{}\"", site.url(&format!("/doc/{p}"))))
        .collect();
    let warcs = [
        "iana.warc.gz",
        "example2.warc.gz",
        "at.warc",
        "bad_http_chunked_content.warc",
    ];
    let warc_inputs: Vec<String> = warcs
        .iter()
        .map(|w| format!("\"{}\"", sources.join(w).display()))
        .collect();
    let enwiki =
        repo.join("crates/openwit-queries/tests/data/wikipedia/enwiki-articles1-shortened.xml.bz2");
    std::fs::write(
        cwd.join("a.toml"),
        format!(
            r#"
[pipeline]
name = "real-corpus-a"
workdir = "a"
seed = 0
allow_private_networks = true

[queries]
wikipedia = ["{enwiki}"]
unigram_min_count = 3
bigram_mode = "top_k"
bigram_top_k = 2000
task_size_mb = 1

[warc]
inputs = [{warc_inputs}]

[crawl]
seeds = [{seeds}]
max_depth = 0
min_delay_ms = 0
max_attempts = 1

[curate]
partitions = 2
"#,
            enwiki = enwiki.display(),
            warc_inputs = warc_inputs.join(", "),
            seeds = seeds.join(", "),
        ),
    )
    .unwrap();

    // ---- Part A: queries, warc, crawl, curate, one command each.
    for stage in ["queries", "warc", "crawl", "curate"] {
        ok(&[stage, "a.toml"], cwd);
    }
    let a = cwd.join("a");
    let entries: Vec<String> =
        serde_json::from_slice(&std::fs::read(a.join("queries/metadata.json")).unwrap()).unwrap();
    assert!(entries.len() > 1000, "{} query entries", entries.len());
    for e in ["the", "of", "map", "century"] {
        assert!(entries.iter().any(|x| x == e), "`{e}` is a query entry");
    }

    // The candidates: the alt texts of the files, with their pages and image URLs.
    let warc_rows = rows_in(&a.join("warc"));
    let crawl_rows = rows_in(&a.join("crawl"));
    let has = |rows: &[BTreeMap<String, Value>], caption: &str, url_end: &str| {
        rows.iter()
            .any(|r| s(&r["caption"]) == caption && s(&r["url"]).ends_with(url_end))
    };
    for (caption, url) in [
        ("Map of RIRs", "www.iana.org/_img/2013.1/rir-map.svg"),
        ("Homepage", "www.iana.org/_img/2013.1/iana-logo-header.svg"),
        (
            "Powered by MediaWiki",
            "www.archiveteam.org/skins/common/images/poweredby_mediawiki_88x31.png",
        ),
        (
            "Archivetime.png",
            "www.archiveteam.org/images/8/8a/Archivetime.png",
        ),
    ] {
        assert!(
            has(&warc_rows, caption, url),
            "warc: ({caption}, {url}) in {warc_rows:#?}"
        );
    }
    for (caption, url) in [
        ("Zum Anfang", "/doc/images/home.png"),
        ("Zurück", "/doc/images/prev.png"),
        ("Weiter", "/doc/images/next.png"),
        ("[Anmerkung]", "/doc/images/note.png"),
    ] {
        assert!(
            has(&crawl_rows, caption, url),
            "crawl: ({caption}, {url}) in {crawl_rows:#?}"
        );
    }
    assert!(
        crawl_rows
            .iter()
            .all(|r| s(&r["url"]).starts_with(&site.url("/doc/images/")))
    );

    // The curated table and its stats.
    let curated = curated_rows(&a.join("curate"));
    let stats: Value =
        serde_json::from_slice(&std::fs::read(a.join("curate/stats.json")).unwrap()).unwrap();
    let st = status("a", cwd);
    let candidates: Vec<&BTreeMap<String, Value>> =
        warc_rows.iter().chain(crawl_rows.iter()).collect();
    let kept: Vec<&BTreeMap<String, Value>> = curated
        .iter()
        .filter(|r| r["kept"] == json!(true))
        .collect();
    let kept_captions: BTreeSet<&str> = kept.iter().map(|r| s(&r["caption"])).collect();
    assert!(
        kept_captions.contains("Map of RIRs") && kept_captions.contains("Powered by MediaWiki"),
        "kept: {kept_captions:?}"
    );
    // Every curated caption is a real one, from a candidate with the same URL.
    for r in &curated {
        assert!(
            candidates
                .iter()
                .any(|c| c["url"] == r["url"] && c["caption"] == r["caption"]),
            "curated row not among the candidates: {r:?}"
        );
        assert_eq!(r["language"], json!("en"), "{r:?}");
    }
    // German captions are dropped for their language: exactly those long enough to pass the
    // quality rules (two words or more: "Zum Anfang" on each page; "Zurück", "Weiter",
    // "[Anmerkung]" are too short), and no English caption of the WARC files.
    let language_drops = stats["drops"]["language_not_kept"].as_u64().unwrap_or(0);
    let german_sentences = crawl_rows
        .iter()
        .filter(|r| s(&r["caption"]).split_whitespace().count() >= 2)
        .count() as u64;
    assert_eq!(german_sentences, PAGES.len() as u64, "{crawl_rows:?}");
    assert_eq!(language_drops, german_sentences, "{stats}");
    for r in &crawl_rows {
        assert!(
            !curated.iter().any(|c| c["caption"] == r["caption"]),
            "a German caption was kept: {r:?}"
        );
    }
    // Matches: entry_ids are exactly the entries found in the caption (MetaCLIP's rule), each a
    // substring of the caption.
    for r in &curated {
        let caption = s(&r["caption"]);
        let spaced = metaclip_spaced(caption);
        let got: BTreeSet<i64> = r["entry_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert!(!got.is_empty(), "{r:?}");
        for id in &got {
            let e = &entries[*id as usize];
            assert!(caption.contains(e.as_str()), "{e:?} not in {caption:?}");
            assert!(spaced.contains(&format!(" {e} ")), "{e:?} in {caption:?}");
        }
        let want: BTreeSet<i64> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| spaced.contains(&format!(" {e} ")))
            .map(|(i, _)| i as i64)
            .collect();
        assert_eq!(got, want, "entries of {caption:?}");
    }
    // `openwit status --json` counts what the files hold.
    let n_rows = |stage: &str| st[stage]["items_out"].as_u64().unwrap();
    assert_eq!(n_rows("warc"), warc_rows.len() as u64);
    assert_eq!(n_rows("crawl"), crawl_rows.len() as u64);
    assert_eq!(st["curate"]["items_in"], json!(candidates.len()));
    assert_eq!(st["curate"]["items_in"], stats["candidates"]);
    assert_eq!(n_rows("curate"), kept.len() as u64);
    assert_eq!(st["curate"]["items_out"], stats["kept"]);
    let curate_drops = drops_of(&st["curate"]);
    let stats_drops: BTreeMap<String, u64> =
        serde_json::from_value(stats["drops"].clone()).unwrap();
    assert_eq!(curate_drops, stats_drops);
    assert_eq!(
        candidates.len() as u64,
        curated.len() as u64 + curate_drops.values().sum::<u64>(),
        "every candidate is a curated row or a counted drop: {curate_drops:?}"
    );
    for stage in ["queries", "warc", "crawl", "curate"] {
        assert_eq!(st[stage]["state"], "done", "{stage}");
    }
    // Warcat's record whose chunked body breaks off is a counted drop.
    assert!(
        drops_of(&st["warc"]).get("undecodable_body").copied() >= Some(1),
        "{:?}",
        st["warc"]
    );

    eprintln!(
        "part A: {} warc + {} crawl candidates -> {} curated, {} kept {kept_captions:?}; drops {curate_drops:?}",
        warc_rows.len(),
        crawl_rows.len(),
        curated.len(),
        kept.len()
    );

    // ---- Part B: the real pairs as URL lists on a loopback image server.
    let images = TestServer::start();
    images.route("/robots.txt", Response::status(404));
    let lists = cwd.join("lists");
    std::fs::create_dir(&lists).unwrap();
    let mut pairs = String::new();
    let mut seen = BTreeSet::new();
    for r in &candidates {
        let (url, caption) = (s(&r["url"]), s(&r["caption"]));
        let url = if url.starts_with(&site.url("/")) {
            url.to_string()
        } else {
            to_loopback(url, &images)
        };
        let url = url.replace(&site.url("/"), &images.url("/"));
        if seen.insert((url.clone(), caption.to_string())) {
            pairs.push_str(&json!({"image": url, "name": caption}).to_string());
            pairs.push('\n');
        }
    }
    std::fs::write(lists.join("alt-texts.jsonl"), pairs).unwrap();
    // The country-flags list (npm country-flag-emoji-json: name, image), its CDN host moved to
    // the loopback server; every other byte as in the package. The alt texts are written with
    // the same keys, so one [import] table reads both.
    let flags =
        std::fs::read_to_string(repo.join("crates/openwit-urllist/tests/data/country-flags.json"))
            .unwrap();
    let flags = flags.replace(
        "https://cdn.jsdelivr.net/",
        &images.url("/cdn.jsdelivr.net/"),
    );
    std::fs::write(lists.join("country-flags.json"), flags).unwrap();
    std::fs::write(
        cwd.join("b.toml"),
        r#"
[pipeline]
name = "real-corpus-b"
workdir = "b"
seed = 0
allow_private_networks = true

[import]
inputs = ["lists/alt-texts.jsonl", "lists/country-flags.json"]
url_col = "image"
caption_col = "name"

[curate]
queries = "a/queries/metadata.json"
partitions = 2

[download]
shard_size = 40
image_size = 64
retries = 0

[index]
metadata = "a/queries/metadata.json"

[report]
"#,
    )
    .unwrap();
    ok(&["import", "b.toml"], cwd);
    ok(&["curate", "b.toml"], cwd);
    let b = cwd.join("b");
    let curated_b = curated_rows(&b.join("curate"));
    let kept_b: Vec<&BTreeMap<String, Value>> = curated_b
        .iter()
        .filter(|r| r["kept"] == json!(true))
        .collect();
    // The real alt texts are judged as in part A.
    let alt_kept_b: BTreeSet<&str> = kept_b
        .iter()
        .filter(|r| !s(&r["url"]).contains("/cdn.jsdelivr.net/"))
        .map(|r| s(&r["caption"]))
        .collect();
    assert_eq!(alt_kept_b, kept_captions);
    assert!(kept_b.len() > kept_captions.len(), "flags kept too");

    // Each kept URL answers with a real image: the alt texts' with photographs (scikit-image's
    // cat and rocket, Pillow's flower and Grace Hopper), the flags' with the other files in
    // turn, broken ones included, so that download meets every kind of real image.
    let imgs = real_images();
    let photos = [
        "skimage/chelsea.png",
        "skimage/rocket.jpg",
        "pillow/flower.jpg",
        "pillow/hopper.jpg",
    ];
    let (good, rest): (Vec<&(String, Vec<u8>)>, Vec<&(String, Vec<u8>)>) =
        imgs.iter().partition(|(n, _)| photos.contains(&n.as_str()));
    let is_flag = |r: &BTreeMap<String, Value>| s(&r["url"]).contains("/cdn.jsdelivr.net/");
    let alt_rows: Vec<&BTreeMap<String, Value>> =
        kept_b.iter().copied().filter(|r| !is_flag(r)).collect();
    let flag_rows: Vec<&BTreeMap<String, Value>> =
        kept_b.iter().copied().filter(|r| is_flag(r)).collect();
    assert!(alt_rows.len() <= good.len(), "{alt_rows:?}");
    let mut want_sha: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut assigned: Vec<(&BTreeMap<String, Value>, &(String, Vec<u8>))> = Vec::new();
    assigned.extend(alt_rows.iter().copied().zip(good.iter().copied()));
    assigned.extend(flag_rows.iter().copied().zip(rest.iter().copied().cycle()));
    for (r, (name, bytes)) in assigned {
        let url = s(&r["url"]).to_string();
        let path = url.strip_prefix(&images.url("")).unwrap().to_string();
        images.route(&path, Response::bytes(content_type(name), bytes.clone()));
        want_sha.insert(url, (name.clone(), sha256_hex(bytes)));
    }
    assert_eq!(want_sha.len(), kept_b.len(), "kept URLs are unique");
    ok(&["download", "b.toml"], cwd);
    let shards = rows_in(&b.join("download"));
    assert_eq!(shards.len(), kept_b.len(), "one shard row per kept pair");
    let mut successes = 0;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for r in &shards {
        let url = s(&r["url"]);
        let (name, sha) = &want_sha[url];
        let caption = kept_b.iter().find(|k| s(&k["url"]) == url).unwrap()["caption"].clone();
        assert_eq!(r["caption"], caption, "{url}");
        if r["status"] == "success" {
            successes += 1;
            assert_eq!(s(&r["sha256"]), sha, "{url} is {name}");
        } else {
            let reason = s(&r["error_message"])
                .split(':')
                .next()
                .unwrap()
                .to_string();
            // Only the image itself can fail: the server answered every request.
            assert!(
                [
                    "corrupt_image",
                    "truncated_image",
                    "bomb",
                    "unsupported_format",
                    "too_small",
                    "duplicate",
                    "near_duplicate",
                ]
                .contains(&reason.as_str()),
                "{url} ({name}): {:?}",
                r["error_message"]
            );
            *reasons.entry(reason).or_insert(0) += 1;
        }
    }
    assert!(
        successes * 2 > shards.len(),
        "{successes} of {}",
        shards.len()
    );
    for p in want_sha.keys() {
        let path = p.strip_prefix(&images.url("")).unwrap();
        assert_eq!(images.hits(path), 1, "{path} fetched once");
    }

    eprintln!(
        "part B: {} kept pairs downloaded: {successes} images, failures {reasons:?}",
        kept_b.len()
    );

    ok(&["index", "b.toml"], cwd);
    let found: Value =
        serde_json::from_str(&ok(&["search", "b", "MediaWiki", "--json"], cwd)).unwrap();
    assert_eq!(found["total"], json!(1), "{found}");
    assert_eq!(found["hits"][0]["caption"], json!("Powered by MediaWiki"));
    let map: Value = serde_json::from_str(&ok(&["search", "b", "map", "--json"], cwd)).unwrap();
    assert!(
        map["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["caption"] == "Map of RIRs"),
        "{map}"
    );

    ok(&["report", "b.toml"], cwd);
    let html = std::fs::read_to_string(b.join("report/report.html")).unwrap();
    for stage in ["import", "curate", "download", "index"] {
        assert!(
            html.contains(&format!("data-stage=\"{stage}\"")),
            "the report's funnel has {stage}"
        );
    }
    let st = status("b", cwd);
    assert_eq!(
        st["import"]["items_out"],
        json!(rows_in(&b.join("import")).len())
    );
    assert_eq!(st["download"]["items_in"], json!(kept_b.len()));
    assert_eq!(st["download"]["items_out"], json!(successes));
    let download_drops = drops_of(&st["download"]);
    assert_eq!(download_drops, reasons, "{:?}", st["download"]);
}

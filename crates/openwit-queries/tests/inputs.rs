//! Bad input (counted drops vs. errors naming the file), WordNet formats, URL sources.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use openwit_core::NoProgress;
use openwit_exec::LocalExecutor;
use openwit_queries::QueriesStage;
use openwit_queries::testdata::{MultistreamWriter, PageSpec, write_multistream, write_single};
use openwit_testkit::{Fault, Response, TestServer};

fn run_err(workdir: &Path, cfg: openwit_queries::QueriesConfig) -> String {
    let stage = QueriesStage::new(cfg, Path::new("/")).unwrap();
    openwit_testkit::run_stage(workdir, 1, &stage)
        .unwrap_err()
        .to_string()
}

#[test]
fn corrupt_stream_malformed_page_and_invalid_utf8_are_counted_drops() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir
        .path()
        .join("enwiki-bad-pages-articles-multistream.xml.bz2");
    let mut w = MultistreamWriter::create(&dump, 1000, bzip2::Compression::best()).unwrap();
    let p = pages();
    // Stream 1: the two good articles.
    w.push(&p[0]).unwrap();
    w.push(&p[1]).unwrap();
    w.flush_stream_with(|d| d).unwrap();
    // Stream 2: two pages in a stream whose block header is damaged.
    w.push(&PageSpec::article(50, "Lost one", "lost words"))
        .unwrap();
    w.push(&PageSpec::article(51, "Lost two", "lost words"))
        .unwrap();
    w.flush_stream_with(|mut d| {
        d[5] ^= 0xff;
        d
    })
    .unwrap();
    // Stream 3: a page with an unescaped `<` in its text, and a good one.
    w.push(&PageSpec::article(60, "Bad", "placeholder"))
        .unwrap();
    w.push(&PageSpec::article(61, "Fine", "The fox")).unwrap();
    w.flush_stream_with(|d| {
        let xml = bzip2_decode(&d).replace("placeholder", "a <b> c");
        bzip2_encode(xml.as_bytes())
    })
    .unwrap();
    // Stream 4: a page with invalid UTF-8.
    w.push(&PageSpec::article(70, "Bytes", "abc INVALID def"))
        .unwrap();
    w.flush_stream_with(|d| {
        let mut xml = bzip2_decode_bytes(&d);
        let i = find(&xml, b"INVALID");
        xml[i] = 0xff;
        xml[i + 1] = 0xfe;
        bzip2_encode(&xml)
    })
    .unwrap();
    w.finish().unwrap();

    let work = dir.path().join("work");
    run(
        &work,
        config(vec![dump.display().to_string()], None, None),
        1,
    );
    let s = summary(&work);
    let d = &s["drops"];
    assert_eq!(d["bz2_stream_corrupt"], 1, "{s}");
    assert_eq!(d["pages_lost_in_corrupt_bz2_stream"], 2, "{s}");
    assert_eq!(d["page_malformed_xml"], 1, "{s}");
    assert_eq!(d["page_invalid_utf8"], 1, "{s}");
    // The good pages were counted: the 18 tokens of the fixture + `The fox` (2).
    assert_eq!(s["tokens"], 20);
    assert_eq!(s["wikipedia"]["dump"]["articles"], 3);
}

#[test]
fn a_truncated_single_stream_dump_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("enwiki-cut-pages-articles.xml.bz2");
    let mut pages = pages();
    for i in 0..200 {
        pages.push(PageSpec::article(
            100 + i,
            &format!("P{i}"),
            &format!("word{i} and more words {i}"),
        ));
    }
    write_single(&dump, &pages).unwrap();
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_err(
        &dir.path().join("work"),
        config(vec![dump.display().to_string()], None, None),
    );
    assert!(err.contains("enwiki-cut-pages-articles.xml.bz2"), "{err}");
    assert!(err.contains("broken at byte"), "{err}");
    assert!(err.contains("download it again"), "{err}");
}

#[test]
fn a_multistream_dump_shorter_than_its_index_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir
        .path()
        .join("enwiki-short-pages-articles-multistream.xml.bz2");
    write_multistream(&dump, &pages(), 1).unwrap();
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..700]).unwrap();
    let err = run_err(
        &dir.path().join("work"),
        config(vec![dump.display().to_string()], None, None),
    );
    assert!(
        err.contains("enwiki-short-pages-articles-multistream.xml.bz2"),
        "{err}"
    );
    assert!(err.contains("lists a stream at byte"), "{err}");
}

#[test]
fn a_file_that_is_not_a_dump_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.xml.bz2");
    std::fs::write(&f, "hello").unwrap();
    let err = run_err(
        &dir.path().join("work"),
        config(vec![f.display().to_string()], None, None),
    );
    assert!(
        err.contains("x.xml.bz2") && err.contains("neither bzip2"),
        "{err}"
    );
    let missing = dir.path().join("missing.xml.bz2");
    let err = run_err(
        &dir.path().join("work2"),
        config(vec![missing.display().to_string()], None, None),
    );
    assert!(err.contains("missing.xml.bz2: no such file"), "{err}");
}

#[test]
fn a_bad_wordnet_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let wn = dir.path().join("wn");
    write_wordnet(&wn);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(wn.join("data.noun"))
        .unwrap();
    writeln!(f, "00000200 05 q 01 cat 0 000 | a cat  ").unwrap();
    let cfg = openwit_queries::QueriesConfig {
        wordnet: vec![wn.display().to_string()],
        ..Default::default()
    };
    let err = run_err(&dir.path().join("work"), cfg);
    assert!(err.contains("data.noun:4:"), "{err}");
    assert!(err.contains("ss_type `q`"), "{err}");
}

#[test]
fn bundled_demo_wordnet_and_wn_lmf_give_nltk_names() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/wordnet");
    let s = openwit_queries::wordnet::read_source(&demo).unwrap();
    let names: Vec<String> = s.iter().map(|s| s.entry()).collect();
    // adj first (head, satellites, markers removed), then adv, noun, verb.
    assert_eq!(&names[..4], &["red", "crimson", "scarlet", "blue"]);
    assert!(names.contains(&"used to".to_string()));
    assert!(names.contains(&"galore".to_string()));
    assert!(
        names.contains(&"st".to_string()),
        "St._Louis stops at the period"
    );
    assert!(names.contains(&"einstein".to_string()));
    assert_eq!(s.iter().filter(|s| s.pos == 's').count(), 5);

    let dir = tempfile::tempdir().unwrap();
    let lmf = dir.path().join("english-wordnet-test.xml");
    std::fs::write(
        &lmf,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE LexicalResource SYSTEM "http://globalwordnet.github.io/schemas/WN-LMF-1.3.dtd">
<LexicalResource xmlns:dc="https://globalwordnet.github.io/schemas/dc/">
  <Lexicon id="oewn" label="Test English WordNet" language="en" email="x@example.org" license="https://creativecommons.org/licenses/by/4.0/" version="2024">
    <LexicalEntry id="oewn-dog-n">
      <Lemma writtenForm="dog" partOfSpeech="n"/>
      <Sense id="oewn-dog__1.05.00" synset="oewn-02086723-n"/>
    </LexicalEntry>
    <LexicalEntry id="oewn-Einstein-n">
      <Lemma writtenForm="Einstein" partOfSpeech="n"/>
      <Sense id="oewn-einstein__1.18.00" synset="oewn-10823014-n"/>
    </LexicalEntry>
    <LexicalEntry id="oewn-hot_dog-n">
      <Lemma writtenForm="hot dog" partOfSpeech="n"/>
      <Sense id="oewn-hot_dog__1.13.01" synset="oewn-07713074-n"/>
    </LexicalEntry>
    <LexicalEntry id="oewn-red-a">
      <Lemma writtenForm="red" partOfSpeech="a"/>
      <Sense id="oewn-red__3.00.00" synset="oewn-00386915-a"/>
    </LexicalEntry>
    <LexicalEntry id="oewn-run-v">
      <Lemma writtenForm="run" partOfSpeech="v"/>
      <Sense id="oewn-run__2.38.00" synset="oewn-01928883-v"/>
    </LexicalEntry>
    <Synset id="oewn-02086723-n" ili="i46360" members="oewn-dog-n" partOfSpeech="n" lexfile="noun.animal">
      <Definition>a domesticated animal</Definition>
    </Synset>
    <Synset id="oewn-07713074-n" ili="i77484" members="oewn-hot_dog-n" partOfSpeech="n" lexfile="noun.food">
      <Definition>a sausage in a roll</Definition>
    </Synset>
    <Synset id="oewn-10823014-n" ili="i92101" members="oewn-Einstein-n" partOfSpeech="n" lexfile="noun.person">
      <Definition>a physicist</Definition>
    </Synset>
    <Synset id="oewn-00386915-a" ili="i1900" members="oewn-red-a" partOfSpeech="a" lexfile="adj.all">
      <Definition>having the colour of blood</Definition>
    </Synset>
    <Synset id="oewn-01928883-v" ili="i25000" members="oewn-run-v" partOfSpeech="v" lexfile="verb.motion">
      <Definition>move fast</Definition>
    </Synset>
  </Lexicon>
</LexicalResource>
"#,
    )
    .unwrap();
    let s = openwit_queries::wordnet::read_source(&lmf).unwrap();
    let names: Vec<String> = s.iter().map(|s| s.entry()).collect();
    assert_eq!(names, vec!["red", "dog", "hot dog", "einstein", "run"]);
}

/// Serves `body` at `path` with HTTP range support; the first answer is cut after `cut` bytes.
fn serve_with_ranges(
    server: &TestServer,
    path: &'static str,
    body: Vec<u8>,
    cut: usize,
) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    server.handler(path, move |req| {
        let n = h.fetch_add(1, Ordering::SeqCst);
        if let Some(r) = req.header("range") {
            let from: usize = r
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            return Response::bytes("application/octet-stream", body[from..].to_vec())
                .with_status(206)
                .header(
                    "Content-Range",
                    &format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                );
        }
        let resp = Response::bytes("application/octet-stream", body.clone());
        if n == 0 {
            resp.fault(Fault::Truncate { bytes: cut })
        } else {
            resp
        }
    });
    hits
}

#[test]
fn url_sources_download_with_resume_and_refuse_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir
        .path()
        .join("enwiki-net-pages-articles-multistream.xml.bz2");
    write_multistream(&dump, &pages(), 1).unwrap();
    let idx = openwit_queries::testdata::index_path(&dump);
    let server = TestServer::start();
    let body = std::fs::read(&dump).unwrap();
    let cut = body.len() / 2;
    let dump_hits = serve_with_ranges(
        &server,
        "/enwiki-net-pages-articles-multistream.xml.bz2",
        body,
        cut,
    );
    server.route(
        "/enwiki-net-pages-articles-multistream-index.txt.bz2",
        Response::bytes("application/octet-stream", std::fs::read(&idx).unwrap()),
    );
    let url = server.url("/enwiki-net-pages-articles-multistream.xml.bz2");
    let work = dir.path().join("work");

    // Refused without allow_private_networks.
    let stage = QueriesStage::new(config(vec![url.clone()], None, None), Path::new("/")).unwrap();
    let mut ex = LocalExecutor::new(&work, Default::default(), &NoProgress).unwrap();
    let err = ex.run_stage(&stage).unwrap_err().to_string();
    assert!(err.contains("not a public address"), "{err}");
    assert_eq!(dump_hits.load(Ordering::SeqCst), 0);
    drop(ex);

    // Allowed: the first answer is cut short (an error), the rerun resumes with a range request.
    let stage = QueriesStage::new(config(vec![url.clone()], None, None), Path::new("/"))
        .unwrap()
        .allow_private_networks(true);
    let mut ex = openwit_testkit::executor(&work, 1);
    let err = ex.run_stage(&stage).unwrap_err().to_string();
    assert!(err.contains("rerun to resume"), "{err}");
    let part = work.join("downloads/enwiki-net-pages-articles-multistream.xml.bz2.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
    ex.run_stage(&stage).unwrap();
    let ranged: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.header("range").is_some())
        .collect();
    assert_eq!(ranged.len(), 1);
    assert_eq!(
        ranged[0].header("range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        std::fs::read(work.join("downloads/enwiki-net-pages-articles-multistream.xml.bz2"))
            .unwrap(),
        std::fs::read(&dump).unwrap()
    );
    assert_eq!(summary(&work)["tokens"], 18);
}

fn find(h: &[u8], n: &[u8]) -> usize {
    h.windows(n.len()).position(|w| w == n).unwrap()
}

fn bzip2_decode_bytes(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut bzip2::read::BzDecoder::new(d), &mut out).unwrap();
    out
}

fn bzip2_decode(d: &[u8]) -> String {
    String::from_utf8(bzip2_decode_bytes(d)).unwrap()
}

fn bzip2_encode(d: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

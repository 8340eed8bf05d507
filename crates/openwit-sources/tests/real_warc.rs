//! The `warc` stage on WARC files that independent writers made (wget, pywb's test captures of
//! iana.org and example.com; see tests/data/README.md): the records, pages, candidates and
//! drops it gives are those an independent reader computes (warcio for the records and their
//! decoded payloads, selectolax's lexbor HTML parser for the `<img alt>` captions).

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed (see .ci/requirements.txt)");
    assert!(
        out.status.success(),
        "python failed (pip install -r .ci/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// warcio's view of a file: the record count, the 2xx HTML responses, every `<img>` with a
/// non-empty alt as lexbor parses the decoded page (URL resolved against `<base href>` and the
/// page, without fragment, http(s) only, not `data:`, one per (url, alt) on a page), and each
/// response's decoded payload written to `out_dir/<record index>`.
const EXPECT: &str = r#"
import sys, json, os
from urllib.parse import urljoin, urldefrag
from warcio.archiveiterator import ArchiveIterator
from selectolax.lexbor import LexborHTMLParser
out = {"records": 0, "html_pages": 0, "alt": []}
with open(sys.argv[1], 'rb') as f:
    for i, r in enumerate(ArchiveIterator(f)):
        out["records"] += 1
        if r.rec_type != 'response' or r.http_headers is None:
            continue
        payload = r.content_stream().read()
        with open(os.path.join(sys.argv[2], str(i)), 'wb') as p:
            p.write(payload)
        if not r.http_headers.get_statuscode().startswith('2'):
            continue
        ct = (r.http_headers.get_header('Content-Type') or '').split(';')[0].strip().lower()
        if ct not in ('text/html', 'application/xhtml+xml'):
            continue
        out["html_pages"] += 1
        page = r.rec_headers.get_header('WARC-Target-URI')
        tree = LexborHTMLParser(payload)
        base = page
        b = tree.css_first('base[href]')
        if b is not None:
            base = urljoin(page, b.attributes.get('href').strip())
        seen = set()
        for img in tree.css('img'):
            src = (img.attributes.get('src') or '').strip()
            alt = ' '.join((img.attributes.get('alt') or '').split())
            if not src or not alt or src.lower().startswith('data:'):
                continue
            url = urldefrag(urljoin(base, src))[0]
            if not url.startswith(('http://', 'https://')) or (url, alt) in seen:
                continue
            seen.add((url, alt))
            out["alt"].append([page, url, alt])
print(json.dumps(out))
"#;

#[derive(serde::Deserialize)]
struct Expected {
    records: u64,
    html_pages: u64,
    alt: Vec<(String, String, String)>,
}

struct Outcome {
    expected: Expected,
    stats: openwit_sources::warc_stage::FileStats,
    /// (page, image URL, caption) of the alt rows
    alt: Vec<(String, String, String)>,
    rows: Vec<openwit_sources::Candidate>,
    /// (record index, warcio's payload) of the responses whose body we refuse to decode
    undecodable: Vec<(usize, Vec<u8>)>,
}

fn run(name: &str) -> Outcome {
    let p = data(name);
    let dir = tempfile::tempdir().unwrap();
    let expected: Expected = serde_json::from_str(&python(
        EXPECT,
        &[p.to_str().unwrap(), dir.path().to_str().unwrap()],
    ))
    .unwrap();
    // every response payload decodes to warcio's bytes
    let gzip = std::fs::read(&p).unwrap().starts_with(b"\x1f\x8b");
    let mut compared = 0;
    let mut undecodable = Vec::new();
    for (i, ev) in
        openwit_sources::warc::WarcReader::new(std::fs::File::open(&p).unwrap(), gzip).enumerate()
    {
        let openwit_sources::warc::Event::Record(rec) = ev else {
            panic!("{name}: record {i} unreadable: {ev:?}");
        };
        if rec.warc_type() != "response" {
            continue;
        }
        let Ok(theirs) = std::fs::read(dir.path().join(i.to_string())) else {
            continue;
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = resp.parse(&rec.body).unwrap() else {
            panic!("{name}: record {i}: incomplete HTTP head");
        };
        let h = |k: &str| {
            resp.headers
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(k))
                .map(|x| std::str::from_utf8(x.value).unwrap())
        };
        match openwit_sources::http_body::decode_payload(
            h("Transfer-Encoding"),
            h("Content-Encoding"),
            &rec.body[n..],
            rec.body_truncated,
        ) {
            Ok(ours) => {
                assert!(ours[..] == theirs[..], "{name}: record {i} payload differs");
                compared += 1;
            }
            // warcio then hands out the raw bytes, chunk-size lines and all
            Err(_) => undecodable.push((i, theirs)),
        }
    }
    assert!(
        compared + undecodable.len() > 0,
        "{name}: no response compared"
    );
    let mut rows = Vec::new();
    let stats = openwit_sources::warc_stage::process_file(
        Box::new(std::fs::File::open(&p).unwrap()),
        name,
        &mut |c| rows.push(c),
        &|_| false,
    )
    .unwrap();
    let alt = rows
        .iter()
        .filter(|r| r.caption_source.as_str() == "alt")
        .map(|r| {
            (
                r.page_url.clone().unwrap_or_default(),
                r.url.clone(),
                r.caption.clone(),
            )
        })
        .collect();
    Outcome {
        expected,
        stats,
        alt,
        rows,
        undecodable,
    }
}

#[test]
fn iana_capture_chunked_pages() {
    let o = run("iana.warc.gz");
    assert_eq!(o.stats.records, o.expected.records);
    assert_eq!(o.stats.records, 343);
    assert_eq!(o.stats.pages, o.expected.html_pages);
    assert_eq!(o.alt, o.expected.alt);
    assert!(o.alt.len() >= 16, "{}", o.alt.len());
    assert!(
        o.alt
            .iter()
            .any(|(p, u, c)| p == "http://www.iana.org/numbers"
                && u == "http://www.iana.org/_img/2013.1/rir-map.svg"
                && c == "Map of RIRs")
    );
    // no chunk-size line inside any caption
    assert!(o.rows.iter().all(|r| !r.caption.contains('\r')));
    assert_eq!(o.stats.drops.get("undecodable_body"), 0);
    assert!(o.undecodable.is_empty());
    assert!(o.stats.truncated.is_none());
    assert!(
        o.rows
            .iter()
            .all(|r| r.fetch_time.is_some() && r.source_id == "iana.warc.gz")
    );
}

#[test]
fn wget_warc_plain_file_with_a_chunked_page() {
    let o = run("at.warc");
    assert_eq!(o.stats.records, o.expected.records);
    assert_eq!(o.stats.pages, o.expected.html_pages);
    assert_eq!(o.stats.pages, 1);
    assert_eq!(o.alt, o.expected.alt);
    let captions: Vec<&str> = o.alt.iter().map(|a| a.2.as_str()).collect();
    assert_eq!(
        captions,
        ["Archiveteam.jpg", "Archivetime.png", "Powered by MediaWiki"]
    );
    assert_eq!(o.stats.drops.get("undecodable_body"), 0);
    assert!(o.undecodable.is_empty());
}

#[test]
fn gzip_encoded_page_and_broken_chunking() {
    let o = run("example2.warc.gz");
    assert_eq!(o.stats.records, o.expected.records);
    assert_eq!(o.stats.pages, o.expected.html_pages);
    assert_eq!(o.stats.pages, 1);
    assert!(o.rows.is_empty());
    assert_eq!(o.stats.drops.get("undecodable_body"), 0);
    assert!(o.undecodable.is_empty());

    // `3\r\naa\r`: a 3-byte chunk cut short; warcio falls back to the raw bytes, we count a drop
    let o = run("bad_http_chunked_content.warc");
    assert_eq!(o.stats.records, 1);
    assert_eq!(o.stats.pages, 0);
    assert!(o.rows.is_empty());
    assert_eq!(o.stats.drops.get("undecodable_body"), 1);
    assert_eq!(o.undecodable.len(), 1);
    assert!(o.undecodable[0].1.starts_with(b"3\r\n"));
}

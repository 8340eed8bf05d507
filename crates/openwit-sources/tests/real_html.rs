//! The `crawl` stage on real HTML written by people (German pages of the Debian Reference, from
//! the debian-reference-de package; tests/data/README.md) served from 127.0.0.1: its alt
//! captions and image URLs are those Python's html.parser finds in the same files.

use std::path::Path;

use openwit_testkit::server::{Response, TestServer};

const PAGES: [&str; 3] = ["pr01.de.html", "apa.de.html", "ch08.de.html"];

/// (page URL, image URL, alt) of every `<img>` with a src and a non-empty alt, deduplicated.
const EXPECT: &str = r#"
import sys, json
from html.parser import HTMLParser
from urllib.parse import urljoin, urldefrag
out = set()
base_url, files = sys.argv[1], sys.argv[2:]
class P(HTMLParser):
    def handle_starttag(self, tag, attrs):
        if tag != 'img':
            return
        a = dict(attrs)
        src = (a.get('src') or '').strip()
        alt = ' '.join((a.get('alt') or '').split())
        if src and alt:
            out.add((self.page, urldefrag(urljoin(self.page, src))[0], alt))
    handle_startendtag = handle_starttag
for f in files:
    p = P()
    p.page = base_url + f.rsplit('/', 1)[1]
    p.feed(open(f, encoding='utf-8').read())
print(json.dumps(sorted(out)))
"#;

#[test]
fn crawl_of_debian_reference_pages_matches_html_parser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/html");
    let srv = TestServer::start();
    srv.route("/robots.txt", Response::status(404));
    for p in PAGES {
        srv.route(
            &format!("/doc/{p}"),
            Response::bytes(
                "text/html; charset=utf-8",
                std::fs::read(dir.join(p)).unwrap(),
            ),
        );
    }
    let base = srv.url("/doc/");
    let mut args = vec![base.clone()];
    args.extend(PAGES.iter().map(|p| dir.join(p).display().to_string()));
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(EXPECT)
        .args(&args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<(String, String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(want.len() >= 8, "{want:?}");
    assert!(want.iter().any(|w| w.2 == "Zurück"));

    let work = tempfile::tempdir().unwrap();
    let mut c = openwit_sources::CrawlConfig::with_seeds(
        PAGES.iter().map(|p| format!("{base}{p}")).collect(),
    );
    c.allow_private_networks = true;
    c.min_delay_ms = 0;
    c.max_depth = 0;
    c.max_attempts = 1;
    let stage = openwit_sources::CrawlStage::new(c, work.path()).unwrap();
    let mut ex = openwit_exec::LocalExecutor::new(
        work.path(),
        Default::default(),
        &openwit_core::NoProgress,
    )
    .unwrap();
    ex.run_stage(&stage).unwrap();
    let rows =
        openwit_sources::candidate::read_candidates(&work.path().join("crawl/candidates.parquet"))
            .unwrap();
    let mut got: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| r.caption_source.as_str() == "alt")
        .map(|r| {
            (
                r.page_url.clone().unwrap(),
                r.url.clone(),
                r.caption.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    for p in PAGES {
        assert_eq!(srv.hits(&format!("/doc/{p}")), 1, "{p}");
    }
}

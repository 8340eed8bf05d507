//! The clip-art demo world (`openwit_sources::clipart`, `demo_site::generate_clipart`) on real
//! drawings of Debian's openclipart-svg and openclipart-png packages (`tests/data/openclipart`,
//! public domain; see tests/data/README.md): the metadata parser against Python's own XML parser,
//! the selection's rules (links, a drawing filed under two classes) and the site it writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use openwit_sources::clipart::{self, SvgMeta};
use openwit_sources::demo_site;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openclipart")
}

fn svgs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            svgs(&p, out);
        } else if p.extension().is_some_and(|e| e == "svg") && !p.is_symlink() {
            out.push(p);
        }
    }
}

/// Python's xml.etree reading of the same fields: the reference.
const REFERENCE: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
CC = "{http://web.resource.org/cc/}"
def text(e):
    if e is None:
        return None
    t = " ".join("".join(e.itertext()).split())
    return t or None
out = {}
for path in sys.argv[1:]:
    root = ET.parse(path).getroot()
    work = root.find(".//" + CC + "Work")
    m = {"title": None, "description": None, "keywords": [], "creator": None}
    if work is not None:
        m["title"] = text(work.find(DC + "title"))
        m["description"] = text(work.find(DC + "description"))
        subject = work.find(DC + "subject")
        if subject is not None:
            m["keywords"] = [t for t in (text(li) for li in subject.iter(RDF + "li")) if t]
        m["creator"] = text(work.find(DC + "creator/" + CC + "Agent/" + DC + "title"))
    out[path] = m
print(json.dumps(out))
"#;

#[test]
fn svg_metadata_agrees_with_pythons_xml_parser() {
    let mut files = Vec::new();
    svgs(&data().join("svg"), &mut files);
    assert!(files.len() >= 10, "{files:?}");
    let out = Command::new("python3")
        .arg("-c")
        .arg(REFERENCE)
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for f in &files {
        let m = clipart::parse_svg_meta(&std::fs::read(f).unwrap());
        let w = &want[&f.to_string_lossy().into_owned()];
        let got = serde_json::json!({
            "title": m.title, "description": m.description,
            "keywords": m.keywords, "creator": m.creator,
        });
        assert_eq!(&got, w, "{}", f.display());
    }
    // one by hand, as the file says it
    let apple = clipart::parse_svg_meta(
        &std::fs::read(data().join("svg/food/fruit/apple_bw.svg")).unwrap(),
    );
    assert_eq!(
        apple,
        SvgMeta {
            title: Some("Apple (B and W)".into()),
            description: Some("Apple".into()),
            keywords: vec!["food".into(), "apple".into(), "fruit".into(), "menu".into()],
            creator: Some("Gerald G.".into()),
        }
    );
}

#[test]
fn selection_follows_links_and_leaves_out_ambiguous_drawings() {
    let root = clipart::root_of(&data()).unwrap();
    let sel = clipart::select(&root, 40, 0).unwrap();
    let names: Vec<(&str, &str)> = sel
        .drawings
        .iter()
        .map(|d| (d.class, d.name.as_str()))
        .collect();
    // food/fruit/champignon_01 is a link to food/champignon_01 (as in the package): kept, as
    // fruit; parking_romus_01 is filed under road signs and (a link) under vehicles: left out
    assert_eq!(
        names,
        [
            ("bird", "animals/birds/contour_bat"),
            ("bird", "animals/birds/seagull_contour_nicu_buc_01"),
            ("bird", "animals/birds/uccello_profilo_01_archi_01"),
            ("fruit", "food/fruit/apple_bw"),
            ("fruit", "food/fruit/applf"),
            ("fruit", "food/fruit/champignon_01"),
            ("fruit", "food/fruit/gumnut_black_01"),
            ("music", "recreation/music/piano_keys_jonathan_diet_01"),
            ("music", "recreation/music/quaver_nathan_eady_01"),
            ("music", "recreation/music/trumpet_herald__ganson"),
        ]
    );
    assert_eq!((sel.ambiguous, sel.unusable, sel.over_cap), (1, 0, 0));
    assert!(sel.drawings.iter().all(|d| !d.held_out));
    // the cap keeps the same drawings whatever else is there; the split is by name
    let capped = clipart::select(&root, 2, 50).unwrap();
    assert_eq!(capped.drawings.len(), 6);
    assert_eq!(capped.over_cap, 4);
    for d in &capped.drawings {
        let again = clipart::select(&root, 40, 50).unwrap();
        let same = again.drawings.iter().find(|e| e.name == d.name).unwrap();
        assert_eq!(same.held_out, d.held_out, "{}", d.name);
    }
    let all = clipart::select(&root, 40, 90).unwrap();
    let held = all.drawings.iter().filter(|d| d.held_out).count();
    assert!((5..=10).contains(&held), "{held} of 10 held out at 90%");
    // a folder without the packages says where they come from
    let err = clipart::root_of(Path::new("/nonexistent"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("openclipart-svg") && err.contains("scripts/setup.sh"),
        "{err}"
    );
}

#[test]
fn site_serves_the_training_part_and_writes_the_held_out_folder() {
    let root = clipart::root_of(&data()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("site");
    let site = demo_site::generate_clipart(&dir, &root, 40, 30, 3).unwrap();
    let sel = clipart::select(&root, 40, 30).unwrap();
    assert_eq!(site.served + site.held_out, 10);
    assert_eq!(site.pages, site.served.div_ceil(3));
    assert_eq!(site.held_out_dir, tmp.path().join("site-heldout"));
    let mut pages = String::new();
    for p in 0..site.pages {
        pages.push_str(&std::fs::read_to_string(dir.join(format!("pages/c{p}.html"))).unwrap());
    }
    let captions = std::fs::read_to_string(site.held_out_dir.join("captions.tsv")).unwrap();
    for d in &sel.drawings {
        let rel = d.rel_png();
        let src = format!("/img/{rel}");
        let served = dir.join(&src[1..]);
        let held = site.held_out_dir.join(&rel);
        let package = std::fs::read(&d.png).unwrap();
        if d.held_out {
            assert!(
                !pages.contains(&src) && !served.exists(),
                "{} is served",
                d.name
            );
            assert_eq!(std::fs::read(&held).unwrap(), package);
            assert!(captions.contains(&format!("{rel}\t{}\t", d.class)));
        } else {
            assert!(pages.contains(&format!("\"{src}\"")), "{src}");
            assert_eq!(std::fs::read(&served).unwrap(), package, "{src}");
            assert!(!held.exists());
            // the real pictures decode
            image::open(&served).unwrap();
        }
    }
    let split = std::fs::read_to_string(dir.join("split.tsv")).unwrap();
    assert_eq!(split.lines().count(), 11);
    let sitemap = std::fs::read_to_string(dir.join("sitemap.xml")).unwrap();
    assert_eq!(sitemap.matches("<loc>").count(), site.pages);
    assert!(
        std::fs::read_to_string(dir.join("robots.txt"))
            .unwrap()
            .contains("Disallow: /private/")
    );
    // every served drawing is shown with its author's title or description, escaped for HTML
    let esc = openwit_core::escape::html;
    for d in sel.drawings.iter().filter(|d| !d.held_out) {
        let texts = [d.meta.title.as_deref(), d.meta.description.as_deref()];
        assert!(
            texts.into_iter().flatten().any(|t| pages.contains(&esc(t))),
            "{}: {:?}\n{pages}",
            d.name,
            d.meta
        );
        // with the author's keywords (the words that name the drawing's topic)
        if !d.meta.keywords.is_empty() {
            let tags = esc(&d.meta.keywords.join(", "));
            assert!(pages.contains(&format!(" ({tags})")), "{}: {tags}", d.name);
        }
    }
    // a second run writes the same site
    let tmp2 = tempfile::tempdir().unwrap();
    demo_site::generate_clipart(&tmp2.path().join("site"), &root, 40, 30, 3).unwrap();
    for p in 0..site.pages {
        let f = format!("pages/c{p}.html");
        assert_eq!(
            std::fs::read(dir.join(&f)).unwrap(),
            std::fs::read(tmp2.path().join("site").join(&f)).unwrap()
        );
    }
}

/// A small deterministic stand-in for the `svg_meta` fuzz target on every real drawing: cut at
/// many lengths and with bytes flipped, the reader returns (no panic) and its texts stay clean.
#[test]
fn cut_and_spoilt_drawings_never_panic() {
    let mut files = Vec::new();
    svgs(&data().join("svg"), &mut files);
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let step = (bytes.len() / 60).max(1);
        for n in (0..bytes.len()).step_by(step) {
            let m = clipart::parse_svg_meta(&bytes[..n]);
            for t in m.title.iter().chain(m.keywords.iter()) {
                assert!(!t.is_empty() && t.trim() == t, "{}: {t:?}", f.display());
            }
            let mut spoilt = bytes.clone();
            spoilt[n] ^= 0x80 | (n as u8);
            let _ = clipart::parse_svg_meta(&spoilt);
        }
    }
}

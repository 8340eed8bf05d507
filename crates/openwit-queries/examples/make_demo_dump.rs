//! Builds the bundled demo dump from `queries/demo-articles/*.wiki`:
//! `queries/enwiki-demo-pages-articles-multistream.xml.bz2` and its index, in the real
//! multistream format (4 pages per bzip2 stream), with a redirect, a talk page and a file page
//! beside the articles.
//!
//! `cargo run -p openwit-queries --example make_demo_dump [REPO_ROOT]`

use std::path::PathBuf;

use openwit_queries::testdata::{PageSpec, write_multistream};

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let src = root.join("queries/demo-articles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wiki"))
        .collect();
    files.sort();
    let mut pages = Vec::new();
    for (id, f) in (10..).zip(files.iter()) {
        let title = f
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', " "))
            .unwrap_or_default();
        pages.push(PageSpec::article(id, &title, &std::fs::read_to_string(f)?));
    }
    pages.push(PageSpec {
        id: 900,
        title: "Doggy".into(),
        ns: 0,
        redirect: Some("Dog".into()),
        text: "#REDIRECT [[Dog]] {{R from alternative name}}".into(),
    });
    pages.push(PageSpec {
        id: 901,
        title: "Talk:Dog".into(),
        ns: 1,
        redirect: None,
        text: "== Photo ==\nShould the dog photo be replaced? ~~~~".into(),
    });
    pages.push(PageSpec {
        id: 902,
        title: "File:Red car parked on a street.jpg".into(),
        ns: 6,
        redirect: None,
        text: "== Summary ==\n{{Information |description=A red car parked on a street |source=own work}}".into(),
    });
    let out = root.join("queries/enwiki-demo-pages-articles-multistream.xml.bz2");
    write_multistream(&out, &pages, 4)?;
    println!("wrote {} ({} pages)", out.display(), pages.len());
    Ok(())
}

//! The web UI's pages (`openwit serve`), byte for byte: each page of a fixed workdir, requested
//! over loopback, compared with the page committed in `tests/golden/serve/`. The one thing a
//! page shows that changes from run to run, the search's time in milliseconds, is replaced by
//! `T` before comparing; the style block that every page carries is compared with
//! `templates/serve/style.css` and stands as `STYLE` in the committed pages.
//!
//! A deliberate change of a page: run with `OPENWIT_BLESS=1` to rewrite the committed pages, then
//! review their diff.

mod common;

use std::path::{Path, PathBuf};

/// `in 1.2 ms` -> `in T ms`.
fn without_time(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(at) = rest.find(" in ") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n > 0 && rest[n..].starts_with(" ms") {
            out.push('T');
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/serve/{name}.html"))
}

/// Compares the page at `path`, after a first line with its status, with
/// `tests/golden/serve/{name}.html`.
fn check(addr: std::net::SocketAddr, workdir: &Path, name: &str, path: &str) {
    let (st, _, body) = common::get(addr, path);
    let page = format!(
        "HTTP {st}\n{}",
        without_time(&String::from_utf8(body).unwrap())
            .replace(&workdir.display().to_string(), "WORKDIR")
    );
    let (page, style) = without_style(&page);
    assert_eq!(
        style,
        include_str!("../templates/serve/style.css"),
        "{name}: the style block"
    );
    compare(name, path, &page, &golden(name));
}

/// `page` with its `<style>` block's text replaced by `STYLE`, and that text.
fn without_style(page: &str) -> (String, String) {
    let start = page.find("<style>").expect("every page has its style") + "<style>".len();
    let end = start + page[start..].find("</style>").unwrap();
    (
        format!("{}STYLE{}", &page[..start], &page[end..]),
        page[start..end].to_string(),
    )
}

/// Compares `page` (of `name`, at `path`) with `file`, or writes it there when blessing.
fn compare(name: &str, path: &str, page: &str, file: &Path) {
    if std::env::var_os("OPENWIT_BLESS").is_some() {
        std::fs::write(file, page).unwrap();
        return;
    }
    let want = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with OPENWIT_BLESS=1)", file.display()));
    if page != want {
        let at = page
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(page.len().min(want.len()));
        let lo = at.saturating_sub(120);
        let around = |s: &str| {
            String::from_utf8_lossy(&s.as_bytes()[lo.min(s.len())..(at + 120).min(s.len())])
                .into_owned()
        };
        panic!(
            "{name} ({path}) differs at byte {at} (lengths {} and {}):\n got: {:?}\nwant: {:?}",
            page.len(),
            want.len(),
            around(page),
            around(&want)
        );
    }
}

#[test]
fn every_page_of_the_web_ui_is_byte_identical_to_the_committed_one() {
    let dir = common::workdir();
    let w = dir.path();
    common::run(w, &common::index_stage());
    let addr = common::start_server(w);
    for (name, path) in [
        ("search_all", "/?q="),
        (
            "search_filters",
            "/?q=car&entry=red+car&domain=img0.example.org&lang=en&minw=10&minh=20",
        ),
        ("search_escapes", "/?q=%3Cb%3E%26%22x%22&entry=%27e%27"),
        (
            "search_escaped_filters",
            "/?q=&entry=%3Cb%3E%27e%27&domain=a%26b&lang=%22x%22",
        ),
        ("search_none", "/?q=nothingmatchesthis"),
        ("search_page2", "/?q=&page=1"),
        ("search_past_end", "/?q=&page=3"),
        ("search_bad_query", "/?q=%22unclosed"),
        ("search_bad_page", "/?q=&page=x"),
        ("search_bad_size", "/?q=&minw=big"),
        ("not_found", "/no/such/page"),
        ("sample_missing", "/sample/00000/999999"),
        ("entries_no_counts", "/entries"),
    ] {
        check(addr, w, name, path);
    }
    // A sample page with its place in the results, one without, and the full image.
    let (_, _, body) = common::get(addr, "/?q=car");
    let page = String::from_utf8(body).unwrap();
    let start = page.find("id=\"r1\" href=\"").unwrap() + "id=\"r1\" href=\"".len();
    let link = page[start..][..page[start..].find('"').unwrap()].replace("&amp;", "&");
    check(addr, w, "sample_in_results", &link);
    let start = page.find("id=\"r0\" href=\"").unwrap() + "id=\"r0\" href=\"".len();
    let first = page[start..][..page[start..].find('"').unwrap()].replace("&amp;", "&");
    check(addr, w, "sample_first_result", &first);
    let bare = link.split('?').next().unwrap().to_string();
    check(addr, w, "sample_alone", &bare);
    let full = format!("{bare}/full?{}", link.split_once('?').unwrap().1);
    check(addr, w, "sample_full", &full);
    check(addr, w, "sample_full_alone", &format!("{bare}/full"));
    // The entries with their counts, filtered, sorted, paged.
    common::write_entry_counts(&w.join("curate/entry_counts.parquet"));
    for (name, path) in [
        ("entries_counts", "/entries"),
        ("entries_filtered", "/entries?f=entry+1&sort=after"),
        ("entries_page2", "/entries?page=1&sort=entry"),
        ("entries_bad_page", "/entries?page=x"),
        ("entries_past_end", "/entries?page=99&sort=cut"),
        ("entries_no_match", "/entries?f=%3Cnothing%3E"),
    ] {
        check(addr, w, name, path);
    }
    // With the balance stage's counts too; then with a file that cannot be read.
    common::write_entry_counts_of(
        &w.join("balance/entry_counts.parquet"),
        &[("entry 1".to_string(), 40, 20), ("a&b".to_string(), 3, 3)],
    );
    check(addr, w, "entries_balance", "/entries?sort=kept");
    std::fs::write(w.join("balance/entry_counts.parquet"), b"not parquet").unwrap();
    check(addr, w, "entries_unreadable", "/entries?f=entry+29");
}

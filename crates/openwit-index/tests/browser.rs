//! Drives the real web UI in headless Chromium: search, open a result, check that the image
//! loaded (decoded by the browser) and the caption shows; saves screenshots under
//! `target/openwit-index-ui/`.
//!
//! Needs Debian's `chromium` (listed in `.ci/apt-packages.txt`). Without it the test says so and
//! passes, unless `CI` or `OPENWIT_REQUIRE_BROWSER` is set, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("OPENWIT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Runs headless Chromium on `url` with the flags of the issue and a fresh profile, plus `extra`.
fn browse(bin: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let d = target.join("openwit-index-ui");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn headless_chromium_searches_opens_a_result_and_sees_the_image_and_caption() {
    let Some(bin) = chromium() else {
        let required = std::env::var_os("CI").is_some()
            || std::env::var_os("OPENWIT_REQUIRE_BROWSER").is_some();
        assert!(
            !required,
            "chromium is not installed (apt-get install chromium)"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    common::run(
        dir.path(),
        &openwit_index::ReportStage::new(
            Default::default(),
            vec!["download".into(), "index".into()],
        ),
    );
    let addr = common::start_server(dir.path());
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir().unwrap();

    // The home page has the search form; submitting it is a GET of its action with `q`.
    let home = browse(&bin, profile.path(), &format!("{base}/"), &["--dump-dom"]);
    assert!(
        home.contains("<form action=\"/\" method=\"get\" id=\"search\">"),
        "{home}"
    );
    assert!(home.contains("name=\"q\""));
    let results = browse(
        &bin,
        profile.path(),
        &format!("{base}/?q=%22golden+retriever%22"),
        &["--dump-dom"],
    );
    assert!(results.contains("id=\"results\""), "{results}");
    let first = results
        .split("href=\"/sample/")
        .nth(1)
        .expect("at least one result");
    let link: String = first.chars().take_while(|&c| c != '"').collect();
    assert!(results.to_lowercase().contains("golden retriever"));

    // Open the result: the browser decoded the image from the tar and shows the caption.
    let detail_url = format!("{base}/sample/{link}");
    let detail = browse(&bin, profile.path(), &detail_url, &["--dump-dom"]);
    let marker = detail
        .split("data-image=\"")
        .nth(1)
        .map(|s| s.chars().take_while(|&c| c != '"').collect::<String>())
        .unwrap_or_default();
    assert!(
        marker.starts_with("loaded "),
        "image did not load: `{marker}`\n{detail}"
    );
    let (w, h) = marker["loaded ".len()..].split_once('x').unwrap();
    assert!(w.parse::<u32>().unwrap() >= 48 && h.parse::<u32>().unwrap() >= 32);
    let caption = detail
        .split("<p id=\"caption\"")
        .nth(1)
        .and_then(|s| s.split_once('>'))
        .map(|(_, rest)| rest.split("</p>").next().unwrap().to_string())
        .unwrap();
    assert!(
        caption.to_lowercase().contains("golden retriever"),
        "{caption}"
    );

    // Screenshots as test artifacts (and for the docs); the report with every section filled.
    common::add_curation_and_training(dir.path());
    openwit_index::write_report(dir.path(), None).unwrap();
    let out = artifacts();
    for (name, url, size) in [
        ("search.png", format!("{base}/?q=car"), "1280,720"),
        ("detail.png", detail_url.clone(), "1280,900"),
        ("report.png", format!("{base}/report"), "1280,4200"),
    ] {
        let shot = out.join(name);
        let _ = std::fs::remove_file(&shot);
        browse(
            &bin,
            profile.path(),
            &url,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size}"),
                "--hide-scrollbars",
            ],
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5000, "{name}");
    }
}

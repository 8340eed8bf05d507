//! Drives the real web UI in headless Chromium: search with the filter controls, open a result,
//! check that the image loaded (decoded by the browser) and the caption shows, walk to the next
//! result and back to the results, open the full-size view (shown at the image's natural size),
//! browse the entries and follow one to its samples, and see a page past the end and the styled
//! 404 page; saves screenshots under `target/openwit-index-ui/` (the README's are of the demo's
//! real run: `scripts/screenshots.sh`).
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

/// An attribute value as the browser reads it.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"")
}

/// The value of attribute `attr` of the element with `id` in a dumped DOM.
fn attr_of(dom: &str, id: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!(" id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..=end];
    let v = &tag[tag.find(&format!(" {attr}=\""))? + attr.len() + 3..];
    Some(unescape(&v[..v.find('"')?]))
}

/// The `data-image` and `data-shown` marks the page's script set on `<body>`.
fn marks(dom: &str) -> (String, String) {
    let mark = |name: &str| {
        dom.split(&format!("{name}=\""))
            .nth(1)
            .map(|s| s.chars().take_while(|&c| c != '"').collect::<String>())
            .unwrap_or_default()
    };
    (mark("data-image"), mark("data-shown"))
}

/// The sample paths (`shard/key`) of a results page, in order.
fn result_keys(dom: &str) -> Vec<String> {
    dom.split("class=\"card result\"")
        .skip(1)
        .map(|c| {
            let c = &c[c.find("href=\"/sample/").unwrap() + 14..];
            c[..c.find(['?', '"']).unwrap()].to_string()
        })
        .collect()
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
    let counts: Vec<(String, i64, i64)> = [
        ("golden retriever", 12_400, 20_000),
        ("red car", 48_210, 20_000),
        ("lighthouse", 3_120, 3_120),
        ("teapot", 910, 910),
        ("sunflower", 27_055, 20_000),
    ]
    .iter()
    .map(|(e, m, k)| (e.to_string(), *m, (*k).min(*m)))
    .collect();
    common::write_entry_counts_of(&dir.path().join("curate/entry_counts.parquet"), &counts);
    let addr = common::start_server(dir.path());
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir().unwrap();
    let dom = |path: &str| {
        browse(
            &bin,
            profile.path(),
            &format!("{base}{path}"),
            &["--dump-dom"],
        )
    };

    // The home page has the search form with its filter controls; submitting it is a GET of
    // its action with their names.
    let home = dom("/");
    assert!(
        home.contains("<form action=\"/\" method=\"get\" id=\"search\">"),
        "{home}"
    );
    for control in [
        "name=\"q\"",
        "name=\"entry\"",
        "<input name=\"domain\" id=\"domain\"",
        "<select name=\"lang\" id=\"lang\">",
        "name=\"minw\"",
        "name=\"minh\"",
    ] {
        assert!(home.contains(control), "{control}");
    }
    let results = dom("/?q=%22golden+retriever%22");
    assert!(results.contains("id=\"results\""), "{results}");
    assert!(results.to_lowercase().contains("golden retriever"));
    // The filter controls narrow the results: as the form sends them.
    let all_cars = result_keys(&dom("/?q=car"));
    let search = "/?q=car&entry=&domain=img0.example.org&lang=&minw=&minh=";
    let results = dom(search);
    let keys = result_keys(&results);
    assert!(
        keys.len() >= 2 && keys.len() < all_cars.len(),
        "{keys:?} {all_cars:?}"
    );
    assert!(keys.iter().all(|k| all_cars.contains(k)));
    assert!(
        results.contains("id=\"domain\" value=\"img0.example.org\""),
        "{results}"
    );

    // Open the first result: the browser decoded the image from the tar and shows the caption,
    // scaled into the preview box.
    let first = attr_of(&results, "r0", "href").unwrap();
    let detail = dom(&first);
    let (image, shown) = marks(&detail);
    assert!(
        image.starts_with("loaded "),
        "image did not load: `{image}`\n{detail}"
    );
    let natural = image["loaded ".len()..].to_string();
    let (w, h) = natural.split_once('x').unwrap();
    assert!(w.parse::<u32>().unwrap() >= 48 && h.parse::<u32>().unwrap() >= 32);
    assert!(
        shown.starts_with("512x"),
        "the preview is 512 wide: {shown}"
    );
    let caption = detail
        .split("<p id=\"caption\"")
        .nth(1)
        .and_then(|s| s.split_once('>'))
        .map(|(_, rest)| rest.split("</p>").next().unwrap().to_string())
        .unwrap();
    assert!(caption.to_lowercase().contains("car"), "{caption}");
    assert!(detail.contains(&format!("result 1 of {}", keys.len())));
    assert!(attr_of(&detail, "prev-sample", "href").is_none());

    // Next, then previous, walk the results; back returns to the same results.
    let next = attr_of(&detail, "next-sample", "href").unwrap();
    let second = dom(&next);
    assert!(second.contains(&format!("result 2 of {}", keys.len())));
    assert!(
        second.contains(&format!("/image/{}\"", keys[1])),
        "{second}"
    );
    let prev = attr_of(&second, "prev-sample", "href").unwrap();
    assert_eq!(prev, first);
    let back = attr_of(&second, "back", "href").unwrap();
    assert!(back.ends_with("#r1"), "{back}");
    assert_eq!(result_keys(&dom(&back)), keys);

    // The full-size view: the image at its natural size, not scaled.
    let full = attr_of(&second, "full-link", "href").unwrap();
    let full_dom = dom(&full);
    let (image, shown) = marks(&full_dom);
    assert!(image.starts_with("loaded "), "{full_dom}");
    assert_eq!(shown, image["loaded ".len()..], "{full_dom}");
    assert_eq!(
        attr_of(&full_dom, "back-sample", "href").unwrap(),
        next,
        "the full view leads back to the sample as it was opened"
    );

    // The entries: counts before and after balancing; an entry's link lists its samples.
    let entries = dom("/entries");
    assert_eq!(entries.matches("class=\"entry-row\"").count(), 5);
    assert!(
        entries.contains("<td class=\"num before\">48,210</td><td class=\"num after\">20,000</td>")
    );
    let link = entries
        .split("class=\"entry-link\" href=\"")
        .skip(1)
        .find(|r| r.contains("\">lighthouse</a>"))
        .map(|r| unescape(r.split('"').next().unwrap()))
        .unwrap();
    let lighthouse = dom(&link);
    assert!(lighthouse.contains("match(es) in entry <b>lighthouse</b>"));
    let caps: Vec<String> = lighthouse
        .split("<div class=\"cap\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_lowercase())
        .collect();
    assert!(
        !caps.is_empty() && caps.iter().all(|c| c.contains("lighthouse")),
        "{caps:?}"
    );

    // A page past the end says so; an unknown sample gets the styled 404 page.
    let past = dom("/?q=car&page=4");
    assert!(past.contains("Page 5 is past the last page, 1:"), "{past}");
    let missing = dom("/sample/00000/999999");
    assert!(
        missing.contains("<header>") && missing.contains("404 Not Found"),
        "{missing}"
    );

    // Screenshots as test artifacts (and for the docs); the report with every section filled.
    let out = artifacts();
    let shots = [
        (
            "ui-search.png",
            format!("{base}/?q=car&lang=en"),
            "1280,720",
        ),
        ("ui-detail.png", format!("{base}{next}"), "1280,900"),
        ("ui-full.png", format!("{base}{full}"), "1280,400"),
        ("ui-entries.png", format!("{base}/entries"), "1280,560"),
        (
            "ui-404.png",
            format!("{base}/sample/00000/999999"),
            "1280,400",
        ),
        ("report.png", format!("{base}/report"), "1280,4200"),
    ];
    for (name, url, size) in shots {
        if name == "report.png" {
            // The report with every section filled (after the entries page's shot: this
            // replaces its entry counts).
            common::add_curation_and_training(dir.path());
            openwit_index::write_report(
                dir.path(),
                run_summary(dir.path()).as_ref().map_err(String::as_str),
                None,
            )
            .unwrap();
        }
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

/// The funnel's figures, from the run state the local executor wrote (as `openwit report` reads
/// them).
fn run_summary(w: &std::path::Path) -> Result<openwit_core::RunSummary, String> {
    openwit_exec::RunState::open_readonly(w)
        .and_then(|st| st.summary())
        .map_err(|e| e.to_string())
}

//! `openwit report` and `openwit serve` on a real workdir.

mod common;

use openwit_index::{ReportStage, write_report};

#[test]
fn the_report_shows_every_part_and_needs_no_network() {
    let dir = common::workdir();
    let w = dir.path();
    common::run(w, &common::index_stage());
    // Before curation/training outputs exist, the report says they are missing.
    let html = std::fs::read_to_string(
        write_report(w, run_summary(w).as_ref().map_err(String::as_str), None).unwrap(),
    )
    .unwrap();
    assert!(html.contains("No <code>train/metrics.jsonl</code>"));
    assert!(html.contains("No <code>eval/*.json</code>"));

    common::add_curation_and_training(w);
    std::fs::write(w.join("eval/broken.json"), "{").unwrap();

    let path = write_report(w, run_summary(w).as_ref().map_err(String::as_str), None).unwrap();
    assert_eq!(path, w.join("report/report.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "Funnel",
        "download: drops by reason",
        "http_404",
        "Matches per entry, entries ranked (log-log)",
        "before balancing",
        "after balancing",
        "Most frequent",
        "Least frequent",
        "entry 0",
        "entry 299",
        "Caption length (characters)",
        "Image width (original pixels)",
        "Download failures by reason",
        "Download failures by host",
        "img0.example.org",
        "Indexed: 20 samples in 4 shard index(es)",
        "Loss",
        "0.4321",
        "broken.json",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    assert!(html.matches("<svg").count() >= 8);
    // Self-contained: no external references at all.
    for bad in ["http://", "https://", "<link", "<script", "src="] {
        assert!(!html.contains(bad), "report contains {bad}");
    }
    // No temporary files are left next to it.
    let names: Vec<_> = std::fs::read_dir(w.join("report"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn the_report_stage_writes_the_report_after_the_other_stages() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let stage = ReportStage::new(Default::default(), vec!["download".into(), "index".into()]);
    let out = common::run(dir.path(), &stage);
    match out {
        openwit_exec::StageOutcome::Ran { summary, .. } => {
            assert!(summary.unwrap().contains("report/report.html"))
        }
        o => panic!("{o:?}"),
    }
    let html = std::fs::read_to_string(dir.path().join("report/report.html")).unwrap();
    assert!(html.contains("<td>index</td>") && html.contains("<td>download</td>"));
}

#[test]
fn the_web_ui_searches_shows_images_from_the_tars_and_refuses_outside_paths() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = common::start_server(dir.path());

    let (st, _, body) = common::get(addr, "/?q=lighthouse");
    assert_eq!(st, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("id=\"results\""));
    assert!(page.contains("White lighthouse on a rocky coast"));
    let first = page.split("href=\"/sample/").nth(1).unwrap();
    // The link carries the search (`?q=..&i=N`) after the sample's path.
    let path: String = first
        .chars()
        .take_while(|&c| c != '"' && c != '?')
        .collect();
    let (shard, key) = path.split_once('/').unwrap();

    // The image bytes are the very JPEG in the tar.
    let (st, head, img) = common::get(addr, &format!("/image/{shard}/{key}"));
    assert_eq!(st, 200);
    assert!(head.to_lowercase().contains("content-type: image/jpeg"));
    let tar = dir.path().join(format!("download/{shard}.tar"));
    let sample = openwit_shard::ShardReader::open(&tar)
        .unwrap()
        .samples()
        .map(Result::unwrap)
        .find(|s| s.key == key)
        .unwrap();
    assert_eq!(img, sample.image().unwrap().data);

    // The detail view: caption, url, entries, json.
    let (st, _, body) = common::get(addr, &format!("/sample/{shard}/{key}"));
    assert_eq!(st, 200);
    let detail = String::from_utf8(body).unwrap();
    assert!(detail.contains("id=\"caption\""));
    assert!(detail.contains(&sample.text().unwrap()));
    assert!(detail.contains("lighthouse</a>"));
    assert!(detail.contains("&quot;sha256&quot;"));

    // Entry filter and JSON API.
    let (st, _, body) = common::get(addr, "/api/search?q=&entry=teapot&limit=5");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["total"].as_u64().unwrap() >= 2);
    assert!(v["hits"].as_array().unwrap().iter().all(|h| {
        h["caption"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("teapot")
    }));

    // Malformed queries: a clear message, not a crash.
    let (st, _, body) = common::get(addr, "/?q=%22unclosed");
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("cannot parse the query"));
    let (st, _, _) = common::get(addr, "/api/search?q=caption:(dog");
    assert_eq!(st, 400);

    // The report.
    let (st, _, body) = common::get(addr, "/report");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("OpenWIT report"));

    // Files inside the workdir are served; anything outside is refused.
    let (st, _, body) = common::get(addr, "/files/download/00000_stats.json");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("successes"));
    let outside = dir
        .path()
        .parent()
        .unwrap()
        .join("openwit-outside-secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("link-out")).unwrap();
    for p in [
        "/files/../openwit-outside-secret.txt",
        "/files/%2e%2e/openwit-outside-secret.txt",
        "/files/download/%2e%2e/%2e%2e/openwit-outside-secret.txt",
        "/files//etc/passwd",
        "/files/link-out",
    ] {
        let (st, _, body) = common::get(addr, p);
        assert!(st == 403 || st == 404 || st == 400, "{p}: {st}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{p}");
    }
    std::fs::remove_file(&outside).unwrap();
    let (st, _, _) = common::get(addr, "/image/..%2f..%2fetc/passwd");
    assert!(st == 400 || st == 404);
    let (st, _, _) = common::get(addr, "/sample/00000/999999");
    assert_eq!(st, 404);
}

/// The text of `page` between `start` and the next `end`.
fn between<'a>(page: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &page[page.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// An HTML attribute value as the browser reads it.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// The `href` of the element with `id` (as the browser reads it).
fn href_of(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!(" id=\"{id}\""))?;
    let start = page[..at].rfind('<')?;
    let end = at + page[at..].find('>')?;
    between(&page[start..=end], "href=\"", "\"").map(unescape)
}

/// The sample links (`shard/key`) of a results page, in order.
fn result_keys(page: &str) -> Vec<String> {
    page.split("class=\"card result\"")
        .skip(1)
        .map(|c| {
            let path = between(c, "href=\"/sample/", "\"").unwrap();
            path.split('?').next().unwrap().to_string()
        })
        .collect()
}

fn text(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (st, _, body) = common::get(addr, path);
    (st, String::from_utf8(body).unwrap())
}

#[test]
fn a_sample_leads_back_to_its_results_and_on_to_its_neighbours_and_to_its_full_image() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = common::start_server(dir.path());

    let search = "/?q=car&entry=&domain=img0.example.org";
    let (st, page) = text(addr, search);
    assert_eq!(st, 200);
    let keys = result_keys(&page);
    assert!(keys.len() >= 3, "{page}");

    // Walk the results with `next` from the first, then back with `previous`.
    let first = unescape(between(&page, "id=\"r0\" href=\"", "\"").unwrap());
    assert!(first.contains("q=car") && first.contains("domain=img0.example.org"));
    assert!(first.ends_with("&i=0"), "{first}");
    let mut url = first.clone();
    let mut walked = Vec::new();
    let mut pages = Vec::new();
    loop {
        let (st, p) = text(addr, &url);
        assert_eq!(st, 200, "{url}");
        walked.push(
            url["/sample/".len()..]
                .split('?')
                .next()
                .unwrap()
                .to_string(),
        );
        let n = walked.len();
        assert!(
            p.contains(&format!("result {n} of {}", keys.len())),
            "{url}: {p}"
        );
        // Back to the results: the same search, the page holding this result.
        let back = href_of(&p, "back").unwrap();
        assert!(back.starts_with("/?q=car&entry=&domain=img0.example.org&page=0#r"));
        let (st, again) = text(addr, back.split('#').next().unwrap());
        assert_eq!(st, 200);
        assert_eq!(result_keys(&again), keys, "{back}");
        pages.push(p.clone());
        match href_of(&p, "next-sample") {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(walked, keys);
    assert!(href_of(&pages[0], "prev-sample").is_none());
    for (i, p) in pages.iter().enumerate().skip(1) {
        let prev = href_of(p, "prev-sample").unwrap();
        assert!(
            prev.starts_with(&format!("/sample/{}?", keys[i - 1])),
            "{prev}"
        );
        assert!(prev.ends_with(&format!("&i={}", i - 1)), "{prev}");
    }
    // The search fills the controls of the sample page's header.
    assert!(pages[0].contains("value=\"car\""));
    assert!(pages[0].contains("id=\"domain\" value=\"img0.example.org\""));

    // The full-size view: the image alone, unscaled, and a way back to this place.
    let full = href_of(&pages[1], "full-link").unwrap();
    assert!(
        full.starts_with(&format!("/sample/{}/full?", keys[1])),
        "{full}"
    );
    let (st, fp) = text(addr, &full);
    assert_eq!(st, 200);
    assert!(fp.contains(&format!("<img id=\"image\" src=\"/image/{}\"", keys[1])));
    assert!(fp.contains("<div class=\"full\">"));
    let back = href_of(&fp, "back-sample").unwrap();
    assert_eq!(
        back,
        format!(
            "/sample/{}?q=car&entry=&domain=img0.example.org&i=1",
            keys[1]
        )
    );
    let size = between(&fp, "id=\"natural\">", " pixels").unwrap();
    let (w, h) = size.split_once(" x ").unwrap();
    let (st, _, img) = common::get(addr, &format!("/image/{}", keys[1]));
    assert_eq!(st, 200);
    // The JPEG's own frame header gives the same size.
    let sof = img.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    let jh = u16::from_be_bytes([img[sof + 5], img[sof + 6]]);
    let jw = u16::from_be_bytes([img[sof + 7], img[sof + 8]]);
    assert_eq!(
        (w.parse::<u16>().unwrap(), h.parse::<u16>().unwrap()),
        (jw, jh)
    );

    // A sample opened without a search shows no navigation; a tampered place shows the way
    // back but no neighbours.
    let (_, alone) = text(addr, &format!("/sample/{}", keys[1]));
    assert!(!alone.contains("id=\"nav\""));
    let (st, moved) = text(addr, &format!("/sample/{}?q=car&i=999", keys[1]));
    assert_eq!(st, 200);
    assert!(moved.contains("no longer at this place"));
    assert!(href_of(&moved, "next-sample").is_none());
}

#[test]
fn filter_controls_narrow_the_results_and_combine_with_the_query() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = common::start_server(dir.path());
    let api = |q: &str| -> Vec<serde_json::Value> {
        let (st, _, body) = common::get(addr, &format!("/api/search?limit=100&{q}"));
        assert_eq!(st, 200, "{q}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let hits = v["hits"].as_array().unwrap().clone();
        assert_eq!(v["total"].as_u64().unwrap() as usize, hits.len());
        hits
    };
    let all = api("q=");
    assert_eq!(all.len(), 20);
    // Each control alone, as the search form sends it (empty controls included).
    let form = |set: &str| {
        ["q", "entry", "domain", "lang", "minw", "minh"]
            .iter()
            .map(|name| {
                set.split('&')
                    .find(|kv| kv.starts_with(&format!("{name}=")))
                    .map(str::to_string)
                    .unwrap_or(format!("{name}="))
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    type Keep = fn(&serde_json::Value) -> bool;
    let cases: [(&str, Keep); 7] = [
        ("domain=img1.example.org", |h| {
            h["domain"] == "img1.example.org"
        }),
        ("minw=80", |h| h["width"].as_u64().unwrap() >= 80),
        ("minh=40", |h| h["height"].as_u64().unwrap() >= 40),
        ("minw=80&minh=40", |h| {
            h["width"].as_u64().unwrap() >= 80 && h["height"].as_u64().unwrap() >= 40
        }),
        ("lang=en", |h| h["language"] == "en"),
        ("lang=de", |_| false),
        ("entry=teapot", |h| {
            h["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "teapot")
        }),
    ];
    for (set, keep) in cases {
        let want: Vec<&serde_json::Value> = all.iter().filter(|h| keep(h)).collect();
        let got = api(&form(set));
        assert_eq!(got.len(), want.len(), "{set}");
        assert!(got.iter().all(keep), "{set}");
        // The page shows the same count, the controls set, and the filters as removable chips.
        let (st, page) = text(addr, &format!("/?{}", form(set)));
        assert_eq!(st, 200, "{set}");
        assert!(
            page.contains(&format!("id=\"count\">{} match(es)", want.len())),
            "{set}: {page}"
        );
        assert_eq!(result_keys(&page).len(), want.len(), "{set}");
        assert!(page.contains("id=\"active\""), "{set}");
        if want.is_empty() {
            assert!(page.contains("id=\"none\""), "{set}");
        }
    }
    let narrowed = api("q=&domain=img1.example.org&minw=80");
    assert_eq!(narrowed.len(), 2);
    // With a query text: both must hold.
    let cars = api("q=car");
    let img1_cars = api("q=car&domain=img1.example.org");
    assert!(!img1_cars.is_empty() && img1_cars.len() < cars.len());
    // The controls are in the form with the values of the search.
    let (_, page) = text(addr, "/?q=car&domain=img1.example.org&minw=64&lang=en");
    for needle in [
        "<input name=\"domain\" id=\"domain\" value=\"img1.example.org\" list=\"domain-list\"",
        "<option value=\"img1.example.org\" label=\"10 samples\">",
        "<option value=\"img0.example.org\" label=\"10 samples\">",
        "<option value=\"en\" selected>en (20)</option>",
        "name=\"minw\" id=\"minw\" min=\"0\" max=\"1000000\" value=\"64\"",
        "name=\"entry\" id=\"entry\"",
        "<option value=\"golden retriever\">",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
    // Paging links keep the filters; a chip removes only its own.
    let (_, page) = text(addr, "/?q=&domain=img1.example.org&page=1");
    let last = href_of(&page, "last").unwrap();
    assert_eq!(last, "/?q=&entry=&domain=img1.example.org&page=0");
    let chip = unescape(between(&page, "<a class=\"chip\" href=\"", "\"").unwrap());
    assert_eq!(chip, "/?q=&entry=&page=0");
    // Bad values get a clear 400.
    for bad in ["minw=-1", "minw=abc", "minh=99999999", "minw=1e3"] {
        let (st, body) = text(addr, &format!("/?q=&{bad}"));
        assert_eq!(st, 400, "{bad}: {body}");
        assert!(body.contains("whole number of pixels"), "{body}");
    }
    // An unknown domain is no error: nothing matches.
    let (st, body) = text(addr, "/?q=&domain=nowhere.example");
    assert_eq!(st, 200);
    assert!(body.contains("id=\"count\">0 match(es)"));
}

#[test]
fn a_page_past_the_end_says_so_and_unknown_pages_get_the_styled_404() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = common::start_server(dir.path());

    let (st, page) = text(addr, "/?q=&page=3");
    assert_eq!(st, 200);
    assert!(page.contains("Page 4 is past the last page, 1:"), "{page}");
    assert_eq!(href_of(&page, "last").unwrap(), "/?q=&entry=&page=0");
    let (_, page) = text(addr, "/?q=");
    assert!(page.contains("<span id=\"pageno\">page 1 of 1</span>"));

    for (path, says) in [
        (
            "/sample/00000/999999",
            "shard 00000 has no sample with key 999999",
        ),
        ("/sample/00042/000000001", "there is no shard 00042"),
        (
            "/sample/00000/999999/full",
            "shard 00000 has no sample with key 999999",
        ),
        ("/no/such/page", "There is no page at this address."),
    ] {
        let (st, head, body) = common::get(addr, path);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(st, 404, "{path}");
        assert!(
            head.to_lowercase().contains("content-type: text/html"),
            "{path}"
        );
        // The same layout as every page: header, search form, style; the status and why.
        assert!(
            body.contains("<header>") && body.contains("id=\"search\""),
            "{path}"
        );
        assert!(body.contains("<style>"), "{path}");
        assert!(body.contains("id=\"status\">404 Not Found</h2>"), "{path}");
        assert!(body.contains(says), "{path}: {body}");
    }
}

#[test]
fn the_entries_page_lists_counts_before_and_after_balancing_and_links_to_the_samples() {
    let dir = common::workdir();
    let w = dir.path();
    common::run(w, &common::index_stage());
    let addr = common::start_server(w);

    // Without counts the page says so, and lists the entries of the index.
    let (st, page) = text(addr, "/entries");
    assert_eq!(st, 200);
    assert!(page.contains("id=\"no-counts\""), "{page}");
    assert!(page.contains("This workdir has no entry counts"));
    assert_eq!(
        page.matches("class=\"entry-row\"").count(),
        common::ENTRIES.len()
    );

    let counts: Vec<(String, i64, i64)> = [
        ("golden retriever", 120, 50),
        ("red car", 80, 50),
        ("lighthouse", 30, 30),
        ("teapot", 1500, 50),
        ("sunflower", 0, 0),
    ]
    .iter()
    .map(|(e, m, k)| (e.to_string(), *m, *k))
    .collect();
    common::write_entry_counts_of(&w.join("curate/entry_counts.parquet"), &counts);
    let (st, page) = text(addr, "/entries");
    assert_eq!(st, 200);
    assert!(!page.contains("id=\"no-counts\""));
    assert!(
        page.contains("1,730 matches before balancing, 180 kept after"),
        "{page}"
    );
    let rows: Vec<(String, String, String, String)> = page
        .split("class=\"entry-row\"")
        .skip(1)
        .map(|r| {
            let entry = between(r, "class=\"entry-link\" href=\"", "</a>").unwrap();
            let entry = entry.split("\">").nth(1).unwrap().to_string();
            let cell = |c: &str| {
                between(r, &format!("class=\"num {c}\">"), "<")
                    .unwrap()
                    .to_string()
            };
            let indexed = between(r, "class=\"num indexed\"><a href=\"", "</a>").unwrap();
            let indexed = indexed.split("\">").nth(1).unwrap().to_string();
            (entry, cell("before"), cell("after"), indexed)
        })
        .collect();
    // Most matches first; counts with thousands separators.
    // (teapot: 2 of its 4 rows failed to download; the others' 4 all made it.)
    assert_eq!(
        rows[0],
        ("teapot".into(), "1,500".into(), "50".into(), "2".into())
    );
    assert_eq!(rows[1].0, "golden retriever");
    assert_eq!(
        rows[4],
        ("sunflower".into(), "0".into(), "0".into(), "4".into())
    );
    // Each entry's link lists its samples: as many as the page says, all matching it.
    for (entry, _, _, indexed) in &rows {
        let link = page
            .split("class=\"entry-link\" href=\"")
            .skip(1)
            .find(|r| {
                r.split("\">")
                    .nth(1)
                    .unwrap()
                    .starts_with(&format!("{entry}<"))
            })
            .map(|r| unescape(r.split('"').next().unwrap()))
            .unwrap();
        let (st, results) = text(addr, &link);
        assert_eq!(st, 200, "{link}");
        assert!(
            results.contains(&format!(
                "id=\"count\">{indexed} match(es) in entry <b>{entry}</b>"
            )),
            "{link}: {results}"
        );
        assert_eq!(result_keys(&results).len().to_string(), *indexed);
        // The captions hold the entry (its first word's stem: "sunflowers" for "sunflower").
        let word = entry.split(' ').next().unwrap();
        let stem = &word[..word.len() - 1];
        for cap in results.split("<div class=\"cap\">").skip(1) {
            let cap = cap.split('<').next().unwrap().to_lowercase();
            assert!(cap.contains(stem), "{entry}: {cap}");
        }
    }
    // Filtered, sorted by name, paged (past the end says so).
    let (_, page) = text(addr, "/entries?f=CAR&sort=after");
    assert_eq!(page.matches("class=\"entry-row\"").count(), 1);
    assert!(page.contains(">red car</a>"));
    let (_, page) = text(addr, "/entries?sort=entry");
    let order: Vec<&str> = page
        .split("class=\"entry-link\" href=\"")
        .skip(1)
        .map(|r| r.split("\">").nth(1).unwrap().split('<').next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "golden retriever",
            "lighthouse",
            "red car",
            "sunflower",
            "teapot"
        ]
    );
    let (st, page) = text(addr, "/entries?page=3");
    assert_eq!(st, 200);
    assert!(page.contains("Page 4 is past the last page, 1:"), "{page}");
    assert_eq!(
        href_of(&page, "last").unwrap(),
        "/entries?f=&sort=before&page=0"
    );
    let (st, _) = text(addr, "/entries?page=x");
    assert_eq!(st, 400);
}

#[test]
fn the_report_shows_the_held_out_evaluation_per_class_and_the_worst_confusions() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    std::fs::create_dir_all(w.join("train")).unwrap();
    std::fs::create_dir_all(w.join("eval")).unwrap();
    // eval_every = 2: every other line carries the held-out measures
    let metrics: String = (0..6)
        .map(|i| {
            let eval = if i % 2 == 1 {
                format!(
                    r#","eval":{{"zero_shot":{{"top1":{}}},"retrieval":{{"image_to_text_r5":0.2,"text_to_image_r5":0.1}}}}"#,
                    0.1 * i as f64
                )
            } else {
                String::new()
            };
            format!(r#"{{"step":{i},"loss":{}{eval}}}"#, 4.0 - i as f64 * 0.5) + "\n"
        })
        .collect();
    std::fs::write(w.join("train/metrics.jsonl"), metrics).unwrap();
    let results = serde_json::json!({
        "model": "tiny-rn",
        "zero_shot": {
            "set": "site-heldout", "images": 30, "classes": 3, "top1": 0.4, "top5": 1.0,
            "chance": 1.0 / 3.0, "mean_per_class_recall": 0.35,
            "per_class": [
                {"class": "bird", "images": 10, "top1": 0.7},
                {"class": "fruit", "images": 10, "top1": 0.1,
                 "confused_with": [{"class": "flower", "images": 6}, {"class": "bird", "images": 3}]},
                {"class": "flower", "images": 10, "top1": 0.4,
                 "confused_with": [{"class": "fruit", "images": 6}]}
            ]
        },
        "retrieval": {"set": "site-heldout", "pairs": 30, "images": 30,
                      "image_to_text": [0.1, 0.3, 0.5], "text_to_image": [0.05, 0.25, 0.4]},
        "linear_probe": {"test_set": "site-heldout", "test_images": 30, "classes": 3, "c": 100.0,
                         "top1": 0.6, "top5": 1.0, "mean_per_class_recall": 0.6,
                         "per_class": [{"class": "bird", "images": 10, "top1": 0.9},
                                       {"class": "fruit", "images": 10, "top1": 0.5},
                                       {"class": "flower", "images": 10, "top1": 0.4}]},
        "overlap": {"training": "download/00000.tar", "training_samples": 120,
                    "held_out_percent": 20, "phash_distance": 4,
                    "zero_shot": {"items": 30, "sha256": 1, "phash": 3, "caption": 0,
                                  "overlapping": 3,
                                  "clean": {"images": 27, "top1": 0.37, "top5": 1.0,
                                            "mean_per_class_recall": 0.36}},
                    "retrieval": {"items": 30, "sha256": 0, "phash": 0, "caption": 30,
                                  "overlapping": 30, "clean": null}}
    });
    std::fs::write(w.join("eval/results.json"), results.to_string()).unwrap();
    // `eval`'s list of the pairs it found: the report shows the nearest.
    let pairs = [
        r#"{"set":"zero_shot","item":"site-heldout/fruit/lemon.png","kind":"caption","shard":"download/00000.tar","key":"00000011","url":"http://x/1.png","caption":"a lemon"}"#,
        r#"{"set":"zero_shot","item":"site-heldout/bird/gull.png","kind":"phash","distance":2,"shard":"download/00000.tar","key":"00000004","url":"http://x/2.png","caption":"a gull"}"#,
    ];
    std::fs::write(w.join("eval/overlap.jsonl"), pairs.join("\n")).unwrap();
    let html = std::fs::read_to_string(
        write_report(w, run_summary(w).as_ref().map_err(String::as_str), None).unwrap(),
    )
    .unwrap();
    for needle in [
        "Held-out evaluation during training",
        "held-out zero-shot top-1",
        "held-out text-&gt;image R@5",
        "top-1 <b>40.00%</b>",
        "R@5 <b>30.00%</b>",
        "R@5 16.67%", // retrieval's chance: 5 of 30
        "33.33%",     // zero-shot's and the probe's chance
        "top-1 <b>60.00%</b>",
        "Per class, worst first",
        "flower (6), bird (3)",
        "Overlap with the training data",
        "120 training samples (download/00000.tar, less the 20% held out)",
        "<td>zero-shot</td><td>30</td><td>3 (10.00%)</td><td>1 / 3 / 0</td><td>top-1 <b>37.00%</b>",
        "<td>retrieval</td><td>30</td><td>30 (100.00%)</td><td>0 / 0 / 30</td><td>every item overlaps",
        "The nearest 2 of 2 pairs (every one in <code>eval/overlap.jsonl</code>)",
    ] {
        assert!(html.contains(needle), "report lacks {needle}");
    }
    // worst zero-shot class first, with its probe figure beside it
    let table = &html[html.find("Per class, worst first").unwrap()..];
    let (fruit, flower, bird) = (
        table.find("<td>fruit</td>").unwrap(),
        table.find("<td>flower</td>").unwrap(),
        table.find("<td>bird</td>").unwrap(),
    );
    assert!(fruit < flower && flower < bird);
    assert!(table[fruit..flower].contains("<td>10.00%</td><td>50.00%</td>"));
    // the nearest pair first
    let pairs = &html[html.find("The nearest 2 of 2 pairs").unwrap()..];
    let (gull, lemon) = (
        pairs.find("bird/gull.png").unwrap(),
        pairs.find("fruit/lemon.png").unwrap(),
    );
    assert!(gull < lemon);
    assert!(pairs[gull..lemon].contains("perceptual hash, 2 bits apart"));
    assert!(pairs[lemon..].contains("00000.tar:00000011"));
}

/// The funnel's figures, from the run state the local executor wrote (as `openwit report` reads
/// them).
fn run_summary(w: &std::path::Path) -> Result<openwit_core::RunSummary, String> {
    openwit_exec::RunState::open_readonly(w)
        .and_then(|st| st.summary())
        .map_err(|e| e.to_string())
}

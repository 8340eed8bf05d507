//! `openwit report` and `openwit serve` on a real workdir.

mod common;

use openwit_index::{ReportStage, write_report};

#[test]
fn the_report_shows_every_part_and_needs_no_network() {
    let dir = common::workdir();
    let w = dir.path();
    common::run(w, &common::index_stage());
    // Before curation/training outputs exist, the report says they are missing.
    let html = std::fs::read_to_string(write_report(w, None).unwrap()).unwrap();
    assert!(html.contains("No <code>train/metrics.jsonl</code>"));
    assert!(html.contains("No <code>eval/*.json</code>"));

    common::add_curation_and_training(w);
    std::fs::write(w.join("eval/broken.json"), "{").unwrap();

    let path = write_report(w, None).unwrap();
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
        openwit_core::StageOutcome::Ran { summary, .. } => {
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
    let path: String = first.chars().take_while(|&c| c != '"').collect();
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

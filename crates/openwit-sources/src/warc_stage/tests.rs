use super::*;
use crate::candidate::read_candidates;

fn run_file(bytes: Vec<u8>) -> (Vec<Candidate>, FileStats) {
    let mut rows = Vec::new();
    let st = process_file(
        Box::new(std::io::Cursor::new(bytes)),
        "test.warc.gz",
        &mut |c| rows.push(c),
        &|_| false,
    )
    .unwrap();
    (rows, st)
}

#[test]
fn warc_responses_go_through_the_extractor() {
    let mut f = Vec::new();
    crate::fixtures::write_warc(&mut f, 1, 30, 6).unwrap();
    let (rows, st) = run_file(f);
    assert_eq!(st.pages, 30);
    assert_eq!(st.records, 61);
    // pages 6, 13, 20, 27 opt out by X-Robots-Tag
    assert_eq!(st.drops.get("opted_out_page"), 4);
    assert!(st.drops.get("tracking_pixel") > 0 || st.drops.get("no_caption") > 0);
    assert!(rows.len() > 50, "{}", rows.len());
    assert!(
        rows.iter()
            .all(|r| !r.page_url.as_deref().unwrap().ends_with("/p6.html"))
    );
    let r = &rows[0];
    assert_eq!(
        r.page_url.as_deref(),
        Some("https://site0.example.org/articles/p0.html")
    );
    assert_eq!(r.page_lang.as_deref(), Some("en"));
    assert_eq!(r.fetch_time, Some(1_709_251_200_000));
    assert_eq!(r.source_id, "test.warc.gz");
    assert!(
        rows.iter().any(|r| r.url.ends_with("-l.jpg")),
        "largest srcset"
    );
    assert!(
        rows.iter()
            .any(|r| r.url.starts_with("https://cdn.example.com/")),
        "lazy data-src"
    );
    assert!(
        rows.iter().all(|r| !r.url.contains("nope")),
        "script text is not markup"
    );
}

#[test]
fn wat_links_resolved_and_truncation_keeps_earlier_records() {
    let mut f = Vec::new();
    crate::fixtures::write_wat(&mut f, 2, 21, 5).unwrap();
    let (rows, st) = run_file(f.clone());
    assert_eq!(st.pages, 21);
    assert_eq!(st.drops.get("opted_out_page"), 3);
    // 18 pages x 4 captioned images
    assert_eq!(rows.len(), 18 * 4);
    assert_eq!(st.drops.get("no_caption"), 18);
    assert_eq!(rows[0].url, "https://site0.example.org/img/0.jpg");
    assert_eq!(rows[1].url, "https://site0.example.org/articles/img/1.png");
    assert!(st.truncated.is_none());

    let cut = f[..f.len() * 2 / 3].to_vec();
    let (rows2, st2) = run_file(cut);
    let (off, _) = st2.truncated.clone().unwrap();
    assert!(off > 0 && off < f.len() as u64);
    assert!(!rows2.is_empty() && rows2.len() < rows.len());
    assert_eq!(rows2[..], rows[..rows2.len()]);
    assert_eq!(st2.drops.get("truncated_file"), 1);
}

#[test]
fn garbage_never_stops_the_file() {
    let mut f = Vec::new();
    crate::fixtures::write_wat(&mut f, 3, 3, 2).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    use std::io::Write;
    e.write_all(b"WARC/1.0\r\nWARC-Type: metadata\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"Envelo\r\n\r\n").unwrap();
    f.extend(e.finish().unwrap());
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://e.com/\r\nContent-Length: 11\r\n\r\nnot http!!\n\r\n\r\n").unwrap();
    f.extend(e.finish().unwrap());
    f.extend(b"\x1f\x8b\x08\x00garbage-not-deflate-at-all".iter());
    crate::fixtures::write_wat(&mut f, 3, 3, 2).unwrap();
    let (rows, st) = run_file(f);
    assert_eq!(st.drops.get("malformed_wat"), 1);
    assert_eq!(st.drops.get("malformed_http"), 1);
    assert!(st.drops.get("malformed_record") >= 1);
    assert!(rows.len() >= 2 * 2 * 4 / 5, "{}", rows.len());
}

#[test]
fn stage_with_listing_and_resume() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("cc");
    std::fs::create_dir_all(data.join("segments")).unwrap();
    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("segments/f{i}.wat.gz");
        let mut f = std::fs::File::create(data.join(&name)).unwrap();
        crate::fixtures::write_wat(&mut f, i, 10, 3).unwrap();
        names.push(name);
    }
    let mut f = std::fs::File::create(data.join("one.warc.gz")).unwrap();
    crate::fixtures::write_warc(&mut f, 9, 5, 3).unwrap();
    drop(f);
    {
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(d.path().join("wat.paths.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        use std::io::Write;
        e.write_all(format!("{}\n\n", names.join("\n")).as_bytes())
            .unwrap();
        e.finish().unwrap();
    }
    let cfg = WarcConfig {
        inputs: vec!["wat.paths.gz".into(), "cc/one.warc.gz".into()],
        listing_prefix: "cc".into(),
        max_files: None,
        allow_private_networks: false,
        user_agent: "t".into(),
        timeout_secs: 5,
        dropped_rows: true,
    };
    let stage = WarcStage::new(cfg, d.path()).unwrap();
    assert_eq!(stage.files().unwrap().len(), 4);
    let work = d.path().join("work");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let mut total = 0;
    for (i, n) in [
        "00000-f0.wat.gz",
        "00001-f1.wat.gz",
        "00002-f2.wat.gz",
        "00003-one.warc.gz",
    ]
    .iter()
    .enumerate()
    {
        let rows = read_candidates(&work.join(format!("warc/{n}.parquet"))).unwrap();
        assert!(!rows.is_empty(), "{n}");
        if i < 3 {
            assert!(rows[0].source_id.ends_with(&names[i]));
        }
        total += rows.len();
    }
    assert!(total > 50);
    assert_eq!(
        ex.run_stage(&stage).unwrap(),
        openwit_exec::StageOutcome::UpToDate
    );
}

#[test]
fn remote_files_and_listings_over_http_with_address_rules() {
    use openwit_testkit::server::{Response, TestServer};
    let srv = TestServer::start();
    let mut wat = Vec::new();
    crate::fixtures::write_wat(&mut wat, 4, 8, 3).unwrap();
    srv.route(
        "/data/seg/a.wat.gz",
        Response::bytes("application/octet-stream", wat),
    );
    srv.route(
        "/redirect.wat.gz",
        Response::redirect(302, "/data/seg/a.wat.gz"),
    );
    srv.route("/wat.paths", Response::text("seg/a.wat.gz\n"));
    let d = tempfile::tempdir().unwrap();
    let cfg = |allow: bool, inputs: Vec<String>| WarcConfig {
        inputs,
        listing_prefix: srv.url("/data/"),
        max_files: None,
        allow_private_networks: allow,
        user_agent: "openwit-test".into(),
        timeout_secs: 5,
        dropped_rows: true,
    };
    // a listing fetched over http, its entries joined to the prefix; a redirect followed
    let stage = WarcStage::new(
        cfg(
            true,
            vec![srv.url("/wat.paths"), srv.url("/redirect.wat.gz")],
        ),
        d.path(),
    )
    .unwrap();
    assert_eq!(
        stage.files().unwrap(),
        [srv.url("/data/seg/a.wat.gz"), srv.url("/redirect.wat.gz")]
    );
    let work = d.path().join("w1");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let a = read_candidates(&work.join("warc/00000-a.wat.gz.parquet")).unwrap();
    let b = read_candidates(&work.join("warc/00001-redirect.wat.gz.parquet")).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    assert!(
        srv.requests()
            .iter()
            .all(|r| r.header("user-agent") == Some("openwit-test"))
    );
    // without allow_private_networks, loopback is refused before any request
    let before = srv.requests().len();
    let stage = WarcStage::new(cfg(false, vec![srv.url("/data/seg/a.wat.gz")]), d.path()).unwrap();
    let work = d.path().join("w2");
    let mut ex = openwit_exec::LocalExecutor::new(
        &work,
        openwit_exec::RunOptions {
            jobs: 1,
            max_attempts: 1,
        },
        &openwit_core::NoProgress,
    )
    .unwrap();
    let err = ex.run_stage(&stage).unwrap_err();
    assert!(err.to_string().contains("allow_private_networks"), "{err}");
    assert_eq!(srv.requests().len(), before);
}

/// The listing of a task of a stage (`WORK/STAGE/dropped/TASK.parquet`).
pub(crate) fn listing_of(work: &Path, stage: &str, task: &str) -> Vec<crate::dropped::DroppedRow> {
    let p = work
        .join(stage)
        .join("dropped")
        .join(format!("{task}.parquet"));
    assert!(p.is_file(), "{} is not there", p.display());
    crate::dropped::read_listing(&p).unwrap()
}

#[test]
fn every_drop_is_listed_with_its_file_and_record_offset() {
    let d = tempfile::tempdir().unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // the real files: a response whose chunked body is cut (undecodable_body), the iana capture,
    // and wget's plain WARC cut in the middle of its big page (truncated_file)
    let at = std::fs::read(real.join("at.warc")).unwrap();
    let cut = d.path().join("at-cut.warc");
    std::fs::write(&cut, &at[..at.len() / 2]).unwrap();
    // generated pages with opt-outs, tracking pixels and images without captions
    let generated = d.path().join("gen.warc.gz");
    crate::fixtures::write_warc(&mut std::fs::File::create(&generated).unwrap(), 5, 20, 6).unwrap();
    let inputs = vec![
        real.join("bad_http_chunked_content.warc")
            .display()
            .to_string(),
        real.join("iana.warc.gz").display().to_string(),
        cut.display().to_string(),
        generated.display().to_string(),
    ];
    let cfg = WarcConfig {
        inputs: inputs.clone(),
        listing_prefix: default_prefix(),
        max_files: None,
        allow_private_networks: false,
        user_agent: "t".into(),
        timeout_secs: 5,
        dropped_rows: true,
    };
    let stage = WarcStage::new(cfg.clone(), d.path()).unwrap();
    let work = d.path().join("work");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let tasks = ex.state().tasks("warc").unwrap();
    assert_eq!(tasks.len(), 4);
    let mut reasons = std::collections::BTreeSet::new();
    for (t, input) in tasks.iter().zip(&inputs) {
        if t.drops.is_empty() {
            // nothing dropped, nothing listed
            assert!(
                !work
                    .join(format!("warc/dropped/{}.parquet", t.task))
                    .exists()
            );
            continue;
        }
        let rows = listing_of(&work, "warc", &t.task);
        // one row per counted drop, under the counted reason
        assert!(rows.iter().all(|r| r.count == 1));
        assert_eq!(crate::dropped::counts(&rows).0, t.drops, "{}", t.task);
        assert!(
            rows.iter()
                .all(|r| r.input.as_deref() == Some(input.as_str()))
        );
        assert!(rows.iter().all(|r| r.offset.is_some()));
        reasons.extend(rows.iter().map(|r| r.reason.clone()));
    }
    assert!(reasons.len() >= 4, "{reasons:?}");
    // the cut chunked body: its record (the first, at offset 0) and its page
    let rows = listing_of(&work, "warc", &tasks[0].task);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reason, "undecodable_body");
    assert_eq!(rows[0].offset, Some(0));
    assert_eq!(
        rows[0].page_url.as_deref(),
        Some("http://www.archiveteam.org/index.php?title=AAAAAA")
    );
    assert!(rows[0].detail.is_some());
    // the cut file: where it breaks off, as the task reports it
    let rows = listing_of(&work, "warc", &tasks[2].task);
    let t = rows.iter().find(|r| r.reason == "truncated_file").unwrap();
    assert_eq!(t.offset, tasks[2].extra["truncated_at"].as_u64());
    // the generated pages: the opted-out pages by URL, the images by URL on their page
    let rows = listing_of(&work, "warc", &tasks[3].task);
    let opted: Vec<&str> = rows
        .iter()
        .filter(|r| r.reason == "opted_out_page")
        .filter_map(|r| r.page_url.as_deref())
        .collect();
    assert!(!opted.is_empty());
    assert!(
        opted
            .iter()
            .all(|p| p.ends_with("/p6.html") || p.ends_with("/p13.html")),
        "{opted:?}"
    );
    let images: Vec<_> = rows
        .iter()
        .filter(|r| r.reason == "tracking_pixel" || r.reason == "no_caption")
        .collect();
    assert!(!images.is_empty());
    assert!(
        images
            .iter()
            .all(|r| r.url.is_some() && r.page_url.is_some())
    );

    // dropped_rows = false: the same counts, no listing
    let stage = WarcStage::new(
        WarcConfig {
            dropped_rows: false,
            ..cfg
        },
        d.path(),
    )
    .unwrap();
    let work2 = d.path().join("work2");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work2, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let tasks2 = ex.state().tasks("warc").unwrap();
    for (a, b) in tasks.iter().zip(&tasks2) {
        assert_eq!(a.drops, b.drops);
    }
    assert!(!work2.join("warc/dropped").exists());
}

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
    };
    let stage = WarcStage::new(cfg, d.path()).unwrap();
    assert_eq!(stage.files().unwrap().len(), 4);
    let work = d.path().join("work");
    let mut ex =
        openwit_core::Executor::new(&work, Default::default(), &openwit_core::NoProgress).unwrap();
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
        openwit_core::StageOutcome::UpToDate
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
        openwit_core::Executor::new(&work, Default::default(), &openwit_core::NoProgress).unwrap();
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
    let mut ex = openwit_core::Executor::new(
        &work,
        openwit_core::RunOptions {
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

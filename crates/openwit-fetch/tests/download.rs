//! The download stage end to end against the testkit's loopback server: every failure kind is
//! counted by reason, successes land in readable shards with img2dataset keys.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{Rgb, RgbImage};
use openwit_fetch::{Config, DownloadStage, EncodeFormat};
use openwit_shard::{ShardReader, Status, read_parquet, read_sizes, read_stats};
use openwit_testkit::{Fault, Response, TestServer};

fn picture(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * (seed + 3)) % 256) as u8,
            ((y * (seed * 7 + 1)) % 256) as u8,
            (((x / 16 + y / 16 + seed) % 2) * 200) as u8,
        ])
    });
    openwit_fetch::imaging::encode(&img, EncodeFormat::Jpg, 90).unwrap()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, _| image::Rgba([0, 100, 200, (x % 256) as u8]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn test_config(input: &str) -> Config {
    let mut c: Config = toml::from_str(&format!(
        r#"
        input = "{input}"
        shard_size = 8
        retries = 1
        backoff = 0.01
        read_timeout = 0.5
        timeout = 10.0
        connect_timeout = 2.0
        max_pixels = 1000000
        concurrency = 16
        "#
    ))
    .unwrap();
    c.save_additional_columns = vec!["note".into()];
    c
}

/// Writes `urls.csv` (url, caption, note) in `dir`.
fn write_csv(dir: &Path, urls: &[String]) {
    let mut w = csv::Writer::from_path(dir.join("urls.csv")).unwrap();
    w.write_record(["url", "caption", "note"]).unwrap();
    for (i, u) in urls.iter().enumerate() {
        w.write_record([u.as_str(), &format!("caption {i}"), &format!("n{i}")])
            .unwrap();
    }
    w.flush().unwrap();
}

fn run(
    dir: &Path,
    cfg: Config,
    allow_private: bool,
) -> openwit_core::Result<openwit_exec::StageOutcome> {
    let stage = DownloadStage::new(cfg, dir, allow_private)?;
    let work = dir.join("work");
    openwit_testkit::run_stage(&work, 2, &stage)
}

/// url -> (status, error message) over every shard parquet.
fn outcomes(work: &Path) -> BTreeMap<String, (Status, Option<String>, String)> {
    let mut out = BTreeMap::new();
    for tar in openwit_shard::list_shards(&work.join("download")).unwrap() {
        for r in read_parquet(&tar.with_extension("parquet")).unwrap() {
            out.insert(
                r.url.clone(),
                (r.status, r.error_message.clone(), r.key.clone()),
            );
        }
    }
    out
}

fn reason(o: &(Status, Option<String>, String)) -> String {
    match &o.1 {
        None => "success".into(),
        Some(m) => m.split(':').next().unwrap().to_string(),
    }
}

#[test]
fn every_failure_is_counted_by_reason_and_successes_are_readable() {
    let server = TestServer::start();
    let s = |p: &str| server.url(p);
    server.route(
        "/robots.txt",
        Response::text("User-agent: *\nDisallow: /private\n"),
    );
    let ok1 = picture(1, 640, 480);
    server.route("/ok1.jpg", Response::bytes("image/jpeg", ok1.clone()));
    server.route("/dup.jpg", Response::bytes("image/jpeg", ok1.clone()));
    server.route(
        "/ok2.jpg",
        Response::bytes("image/jpeg", picture(2, 300, 900)),
    );
    server.route("/alpha.png", Response::bytes("image/png", png(320, 200)));
    server.route(
        "/octet",
        Response::bytes("application/octet-stream", picture(3, 200, 200)),
    );
    server.route("/gone", Response::status(410));
    server.route("/denied", Response::status(403));
    server.route(
        "/html-ct",
        Response::html("<html><body>not here</body></html>"),
    );
    server.route("/plain", Response::text("hello"));
    server.route(
        "/html-body.jpg",
        Response::bytes("image/jpeg", &b"<!DOCTYPE html><html>oops</html>"[..]),
    );
    server.route("/empty.jpg", Response::bytes("image/jpeg", Vec::new()));
    let big = picture(4, 800, 600);
    server.route(
        "/short-body.jpg",
        Response::bytes("image/jpeg", big.clone()).fault(Fault::Truncate { bytes: 500 }),
    );
    server.route(
        "/reset.jpg",
        Response::bytes("image/jpeg", big.clone()).fault(Fault::ResetAfter { bytes: 500 }),
    );
    server.route(
        "/stall.jpg",
        Response::bytes("image/jpeg", big.clone()).fault(Fault::StallAfterHeaders { ms: 3000 }),
    );
    server.route(
        "/cut.jpg",
        Response::bytes("image/jpeg", big[..big.len() / 2].to_vec()),
    );
    let mut corrupt = big[..200].to_vec();
    corrupt.extend(std::iter::repeat_n(0x37u8, 5000));
    corrupt.extend_from_slice(&[0xFF, 0xD9]);
    server.route("/corrupt.jpg", Response::bytes("image/jpeg", corrupt));
    let mut bomb = Vec::new();
    RgbImage::new(2000, 1000)
        .write_to(
            &mut std::io::Cursor::new(&mut bomb),
            image::ImageFormat::Png,
        )
        .unwrap();
    server.route("/bomb.png", Response::bytes("image/png", bomb));
    server.route("/loop-a", Response::redirect(302, "/loop-b"));
    server.route("/loop-b", Response::redirect(302, "/loop-a"));
    for n in 1..=6 {
        server.route(
            &format!("/r/{n}"),
            Response::redirect(301, &format!("/r/{}", n - 1)),
        );
    }
    server.route("/r/0", Response::bytes("image/jpeg", picture(5, 120, 90)));
    server.route(
        "/noai.jpg",
        Response::bytes("image/jpeg", picture(6, 100, 100)).header("X-Robots-Tag", "noindex, noai"),
    );
    server.route(
        "/otherbot.jpg",
        Response::bytes("image/jpeg", picture(7, 100, 100))
            .header("X-Robots-Tag", "otherbot: noai"),
    );
    server.route(
        "/private/secret.jpg",
        Response::bytes("image/jpeg", picture(8, 100, 100)),
    );
    server.route("/down", Response::status(500));
    let flaky = Arc::new(AtomicUsize::new(0));
    let f2 = flaky.clone();
    let flaky_img = picture(9, 150, 100);
    server.handler("/flaky", move |_| {
        if f2.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::status(503)
        } else {
            Response::bytes("image/jpeg", flaky_img.clone())
        }
    });
    let busy = Arc::new(AtomicUsize::new(0));
    let b2 = busy.clone();
    let busy_img = picture(10, 150, 100);
    server.handler("/busy", move |_| {
        if b2.fetch_add(1, Ordering::SeqCst) == 0 {
            Response::status(429).header("Retry-After", "0")
        } else {
            Response::bytes("image/jpeg", busy_img.clone())
        }
    });

    let expected: Vec<(String, &str)> = vec![
        (s("/ok1.jpg"), "success"),
        (s("/ok2.jpg"), "success"),
        (s("/alpha.png"), "success"),
        (s("/octet"), "success"),
        (s("/missing.jpg"), "http_404"),
        (s("/gone"), "http_410"),
        (s("/denied"), "http_4xx"),
        (s("/html-ct"), "wrong_content_type"),
        (s("/plain"), "wrong_content_type"),
        (s("/html-body.jpg"), "html_body"),
        (s("/empty.jpg"), "empty_body"),
        (s("/short-body.jpg"), "reset_mid_body"),
        (s("/reset.jpg"), "reset_mid_body"),
        (s("/stall.jpg"), "stalled"),
        (s("/cut.jpg"), "truncated_image"),
        (s("/corrupt.jpg"), "corrupt_image"),
        (s("/bomb.png"), "bomb"),
        (s("/loop-a"), "redirect_loop"),
        (s("/r/5"), "success"),
        (s("/r/6"), "too_many_redirects"),
        (s("/noai.jpg"), "opted_out"),
        (s("/otherbot.jpg"), "success"),
        (s("/private/secret.jpg"), "robots_disallowed"),
        (s("/down"), "http_5xx"),
        (s("/flaky"), "success"),
        (s("/busy"), "success"),
        ("ftp://example.com/a.jpg".to_string(), "bad_url"),
        (s("/dup.jpg"), "dup"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = expected.iter().map(|(u, _)| u.clone()).collect();
    write_csv(dir.path(), &urls);
    let outcome = run(dir.path(), test_config("urls.csv"), true).unwrap();
    assert!(
        matches!(outcome, openwit_exec::StageOutcome::Ran { total: 4, .. }),
        "{outcome:?}"
    );

    let work = dir.path().join("work");
    let got = outcomes(&work);
    assert_eq!(got.len(), expected.len());
    let mut successes = 0;
    for (url, want) in &expected {
        let o = &got[url];
        let r = reason(o);
        if *want == "dup" {
            // /ok1.jpg and /dup.jpg have the same bytes: exactly one of them is kept.
            let first = reason(&got[&s("/ok1.jpg")]);
            assert!(
                (r == "duplicate") ^ (first == "duplicate"),
                "dup: {r}, ok1: {first}"
            );
            if r == "success" {
                successes += 1;
            }
            continue;
        }
        if *want == "success" && url.ends_with("/ok1.jpg") && r == "duplicate" {
            continue;
        }
        assert_eq!(&r, want, "{url}: {o:?}");
        if r == "success" {
            successes += 1;
            assert_eq!(o.0, Status::Success);
        }
    }
    // Politeness: robots.txt once, disallowed path never requested, no retry on 4xx, one retry on 5xx.
    assert_eq!(server.hits("/robots.txt"), 1);
    assert_eq!(server.hits("/private/secret.jpg"), 0);
    assert_eq!(server.hits("/denied"), 1);
    assert_eq!(server.hits("/down"), 2);
    assert_eq!(server.hits("/flaky"), 2);
    assert_eq!(server.hits("/busy"), 2);

    // The shards: sizes.json, stats and tar agree; keys are img2dataset's.
    let dl = work.join("download");
    let sizes = read_sizes(&dl.join("sizes.json")).unwrap();
    assert_eq!(sizes.len(), 4);
    assert_eq!(sizes.values().sum::<u64>(), successes);
    let mut reasons_total = 0;
    for (tar_name, n) in &sizes {
        let tar = dl.join(tar_name);
        let stats = read_stats(&dl.join(tar_name.replace(".tar", "_stats.json"))).unwrap();
        assert_eq!(stats.successes, *n);
        assert_eq!(
            stats.count,
            stats.successes + stats.failed_to_download + stats.failed_to_resize
        );
        reasons_total += stats.failures_by_reason.values().sum::<u64>();
        let samples: Vec<_> = ShardReader::open(&tar)
            .unwrap()
            .samples()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(samples.len() as u64, *n);
        for smp in samples {
            assert_eq!(
                smp.key.len(),
                6,
                "5 shard digits + 1 sample digit at 8 per shard"
            );
            let img = image::load_from_memory(&smp.get("jpg").unwrap().data).unwrap();
            assert_eq!((img.width(), img.height()), (256, 256));
            let json = smp.json().unwrap();
            assert_eq!(json["key"], smp.key.as_str());
            assert_eq!(json["status"], "success");
            assert!(json["note"].as_str().unwrap().starts_with('n'));
            assert_eq!(json["caption"].as_str(), smp.text().as_deref());
            assert_eq!(json["sha256"].as_str().unwrap().len(), 64);
            assert_eq!(json["phash"].as_str().unwrap().len(), 16);
        }
    }
    assert_eq!(reasons_total as usize, expected.len() - successes as usize);
    // Keys follow input order: row i of the list is key i.
    for (i, (url, _)) in expected.iter().enumerate() {
        assert_eq!(got[url].2, format!("{:05}{}", i / 8, i % 8));
    }
}

#[test]
fn private_addresses_are_refused_unless_allowed() {
    let server = TestServer::start();
    server.route("/a.jpg", Response::bytes("image/jpeg", picture(1, 64, 64)));
    let dir = tempfile::tempdir().unwrap();
    let port = server.addr().port();
    // 127.0.0.1 in the spellings URL parsers accept, loopback names, and the embedded forms
    // (IPv4-mapped, NAT64, 6to4) of loopback and private addresses: all checked by the one
    // guarded client (openwit_http) before a connection is made
    openwit_http::net::override_host("loopback.download.test", server.addr());
    let urls: Vec<String> = [
        server.url("/a.jpg"),
        format!("http://localhost:{port}/a.jpg"),
        format!("http://2130706433:{port}/a.jpg"),
        format!("http://017700000001:{port}/a.jpg"),
        format!("http://0177.0.0.1:{port}/a.jpg"),
        format!("http://0x7f.0.0.1:{port}/a.jpg"),
        format!("http://0x7f000001:{port}/a.jpg"),
        format!("http://127.1:{port}/a.jpg"),
        format!("http://[::ffff:127.0.0.1]:{port}/a.jpg"),
        format!("http://[64:ff9b::7f00:1]:{port}/a.jpg"),
        format!("http://[2002:7f00:1::]:{port}/a.jpg"),
        "http://100.64.0.1/a.jpg".to_string(),
        "http://224.0.0.1/a.jpg".to_string(),
        "http://169.254.169.254/a.jpg".to_string(),
        "http://loopback.download.test/a.jpg".to_string(),
    ]
    .into();
    write_csv(dir.path(), &urls);
    let mut cfg = test_config("urls.csv");
    cfg.retries = 0;
    run(dir.path(), cfg, false).unwrap();
    let got = outcomes(&dir.path().join("work"));
    // the input reader writes the spellings of 127.0.0.1 as one URL: 9 distinct ones are left
    assert_eq!(got.len(), 9, "{got:?}");
    for o in got.values() {
        assert_eq!(reason(o), "forbidden_address", "{o:?}");
    }
    assert_eq!(server.requests().len(), 0, "nothing reached the server");

    // allowed: the loopback ones download
    let dir = tempfile::tempdir().unwrap();
    server.route("/b.jpg", Response::bytes("image/jpeg", picture(2, 64, 64)));
    write_csv(
        dir.path(),
        &[
            format!("http://2130706433:{port}/a.jpg"),
            "http://loopback.download.test/b.jpg".to_string(),
        ],
    );
    let mut cfg = test_config("urls.csv");
    cfg.retries = 0;
    cfg.respect_robots = false;
    run(dir.path(), cfg, true).unwrap();
    let got = outcomes(&dir.path().join("work"));
    for o in got.values() {
        assert_eq!(reason(o), "success", "{o:?}");
    }
    assert_eq!(server.hits("/a.jpg") + server.hits("/b.jpg"), 2);
}

#[test]
fn per_host_concurrency_is_bounded_and_connections_are_reused() {
    let server = TestServer::start();
    let n = 24;
    for i in 0..n {
        server.route(
            &format!("/img/{i}.jpg"),
            Response::bytes("image/jpeg", picture(100 + i, 64, 48)).fault(Fault::Delay { ms: 20 }),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..n)
        .map(|i| server.url(&format!("/img/{i}.jpg")))
        .collect();
    write_csv(dir.path(), &urls);
    let mut cfg = test_config("urls.csv");
    cfg.per_host_concurrency = 2;
    cfg.shard_size = 100;
    run(dir.path(), cfg, true).unwrap();
    let got = outcomes(&dir.path().join("work"));
    assert!(got.values().all(|o| reason(o) == "success"), "{got:?}");
    assert!(
        server.peak_in_flight() <= 2,
        "peak {}",
        server.peak_in_flight()
    );
    // 24 images + robots.txt over a few connections: reused, not one per request. How many
    // depends on timing (a permit can be free again a moment before its connection is back in the
    // pool, and the next request then opens one), so the bound is a third of the requests.
    assert!(
        server.connections() <= n as usize / 3,
        "{} connections",
        server.connections()
    );
}

#[test]
fn near_duplicates_can_be_dropped() {
    let server = TestServer::start();
    // phash looks at luma structure: a smooth pattern survives recompression.
    let base = RgbImage::from_fn(400, 300, |x, y| {
        let v = 128.0 + 100.0 * (x as f64 / 30.0).sin() * (y as f64 / 45.0).cos();
        Rgb([v as u8, (v * 0.8) as u8, 60])
    });
    let a = openwit_fetch::imaging::encode(&base, EncodeFormat::Jpg, 95).unwrap();
    let b = openwit_fetch::imaging::encode(&base, EncodeFormat::Jpg, 70).unwrap();
    assert_ne!(a, b);
    server.route("/a.jpg", Response::bytes("image/jpeg", a));
    server.route("/b.jpg", Response::bytes("image/jpeg", b));
    let dir = tempfile::tempdir().unwrap();
    write_csv(dir.path(), &[server.url("/a.jpg"), server.url("/b.jpg")]);
    let mut cfg = test_config("urls.csv");
    cfg.near_dup_distance = Some(3);
    run(dir.path(), cfg, true).unwrap();
    let got = outcomes(&dir.path().join("work"));
    let reasons: Vec<String> = got.values().map(reason).collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "success").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| *r == "near_duplicate").count(),
        1,
        "{reasons:?}"
    );
}

#[test]
fn evaluation_images_are_kept_out_and_counted() {
    let server = TestServer::start();
    let smooth = |k: f64| {
        RgbImage::from_fn(400, 300, move |x, y| {
            let v = 128.0 + 100.0 * (x as f64 / (20.0 * k)).sin() * (y as f64 / (35.0 * k)).cos();
            Rgb([v as u8, (v * 0.8) as u8, 60])
        })
    };
    let dir = tempfile::tempdir().unwrap();
    // The evaluation set: an ImageFolder with a PNG and a JPEG.
    let eval = dir.path().join("eval/things");
    std::fs::create_dir_all(&eval).unwrap();
    let same = {
        let mut out = Vec::new();
        smooth(1.0)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    };
    std::fs::write(eval.join("a.png"), &same).unwrap();
    std::fs::write(
        eval.join("b.jpg"),
        openwit_fetch::imaging::encode(&smooth(2.0), EncodeFormat::Jpg, 95).unwrap(),
    )
    .unwrap();
    // Served: the very bytes of a.png, b re-encoded at another quality, and an unrelated one.
    server.route("/same.png", Response::bytes("image/png", same));
    server.route(
        "/near.jpg",
        Response::bytes(
            "image/jpeg",
            openwit_fetch::imaging::encode(&smooth(2.0), EncodeFormat::Jpg, 70).unwrap(),
        ),
    );
    server.route(
        "/other.jpg",
        Response::bytes("image/jpeg", picture(5, 400, 300)),
    );
    write_csv(
        dir.path(),
        &[
            server.url("/same.png"),
            server.url("/near.jpg"),
            server.url("/other.jpg"),
        ],
    );
    let mut cfg = test_config("urls.csv");
    cfg.exclude_eval = vec!["eval".into()];
    run(dir.path(), cfg.clone(), true).unwrap();
    let work = dir.path().join("work");
    let got = outcomes(&work);
    let by_url = |p: &str| reason(&got[&server.url(p)]);
    assert_eq!(by_url("/same.png"), "eval_overlap", "{got:?}");
    assert_eq!(by_url("/near.jpg"), "eval_overlap", "{got:?}");
    assert_eq!(by_url("/other.jpg"), "success", "{got:?}");
    assert!(
        got[&server.url("/same.png")]
            .1
            .as_deref()
            .unwrap()
            .contains("same sha256"),
        "{got:?}"
    );
    // Counted as a drop reason: in the shard's stats and the stage's task drops.
    let stats = read_stats(&work.join("download/00000_stats.json")).unwrap();
    assert_eq!(stats.failures_by_reason.get("eval_overlap"), Some(&2));
    let ex = openwit_testkit::executor(&work, 1);
    let counted: u64 = ex
        .state()
        .tasks("download")
        .unwrap()
        .iter()
        .map(|t| t.drops.get("eval_overlap").copied().unwrap_or(0))
        .sum();
    assert_eq!(counted, 2);
    // A missing evaluation set is a configuration error naming the key.
    cfg.exclude_eval = vec!["missing".into()];
    let err = DownloadStage::new(cfg, dir.path(), true).err().unwrap();
    assert!(err.to_string().contains("exclude_eval"), "{err}");
}

//! Reproducible downloads: with `SOURCE_DATE_EPOCH` set, runs with `jobs = 1`, `jobs = 4` and
//! a killed-and-resumed run write byte-identical shards, parquet, `_stats.json` and
//! `sizes.json`, and every duplicate is decided by row order (the lowest row keeps the image),
//! even when a higher row, in its own shard or a later one, finishes first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use image::{Rgb, RgbImage};
use openwit_shard::{ShardLayout, Status, read_parquet, read_sizes};
use openwit_testkit::{
    Fault, Response, TestServer, digest_outputs, kill_after_tasks, kill_at, openwit_bin, run_to_end,
};

const ROWS: u32 = 40;

/// Which earlier row's bytes a row serves (its duplicates), if any.
fn same_as(i: u32) -> Option<u32> {
    match i {
        9 => Some(2),   // same shard
        18 => Some(13), // same shard, the copy answers late: caught before decoding
        23 => Some(4),  // a later shard
        35 => Some(12), // a later shard
        36 => Some(4),  // a third copy
        _ => None,
    }
}

fn image_of(i: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(200 + i, 150, |x, y| {
        Rgb([
            ((x * (i + 1)) % 256) as u8,
            ((y * 7 + i * 13) % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    openwit_fetch::imaging::encode(&img, openwit_fetch::EncodeFormat::Jpg, 90).unwrap()
}

fn serve() -> TestServer {
    let server = TestServer::start();
    for i in 0..ROWS {
        let src = same_as(i).unwrap_or(i);
        // The lower copies answer late, so their duplicates finish first.
        let delay = if [2, 4, 12, 18].contains(&i) { 400 } else { 5 };
        let resp = if i % 11 == 6 {
            Response::status(404)
        } else {
            Response::bytes("image/jpeg", image_of(src)).fault(Fault::Delay { ms: delay })
        };
        server.route(&format!("/img/{i}.jpg"), resp);
    }
    server
}

fn setup(dir: &Path, server: &TestServer, jobs: usize) -> String {
    let mut w = csv::Writer::from_path(dir.join("urls.csv")).unwrap();
    w.write_record(["url", "caption"]).unwrap();
    for i in 0..ROWS {
        w.write_record([server.url(&format!("/img/{i}.jpg")), format!("picture {i}")])
            .unwrap();
    }
    w.flush().unwrap();
    let toml = format!(
        r#"
[pipeline]
workdir = "work"
jobs = {jobs}
allow_private_networks = true

[download]
input = "urls.csv"
shard_size = 10
per_host_concurrency = 8
concurrency = 8
"#
    );
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, toml).unwrap();
    p.to_string_lossy().into_owned()
}

/// sha256 of every file in `download/`.
fn digests(work: &Path) -> BTreeMap<String, String> {
    digest_outputs(work)
        .into_iter()
        .filter(|(k, _)| k.starts_with("download/"))
        .collect()
}

#[test]
fn jobs_1_jobs_4_and_a_killed_run_write_identical_bytes() {
    let server = serve();
    // The binary with SOURCE_DATE_EPOCH set (`exec` keeps the pid the harness kills).
    let wrap = tempfile::tempdir().unwrap();
    let bin = wrap.path().join("openwit");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nSOURCE_DATE_EPOCH=1700000000 OPENWIT_LOCAL='{}' exec '{}' \"$@\"\n",
            wrap.path().join("node-local").display(),
            openwit_bin().display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&bin).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&bin, perm).unwrap();

    let one = tempfile::tempdir().unwrap();
    let p = setup(one.path(), &server, 1);
    run_to_end(&bin, &["run", &p], Some(one.path())).assert_success();
    let want = digests(&one.path().join("work"));
    assert_eq!(
        want.len(),
        4 * 3 + 1,
        "four shards of three files, sizes.json"
    );

    // Who won: the lowest row of each group of equal bytes.
    let dl = one.path().join("work/download");
    let layout = ShardLayout::new(10);
    let key = |i: u32| layout.key(u64::from(i / 10), u64::from(i % 10));
    let mut rows = BTreeMap::new();
    for s in 0..4 {
        for r in read_parquet(&dl.join(format!("{s:05}.parquet"))).unwrap() {
            rows.insert(r.key.clone(), r);
        }
    }
    assert_eq!(rows.len(), ROWS as usize);
    for i in 0..ROWS {
        let r = &rows[&key(i)];
        match same_as(i) {
            Some(src) => {
                assert_eq!(r.status, Status::FailedToDownload, "row {i}");
                assert_eq!(
                    r.error_message.as_deref(),
                    Some(&*format!(
                        "duplicate: duplicate of {} (same sha256)",
                        key(src)
                    )),
                    "row {i}"
                );
                // The hash of the bytes it shares, however the duplicate was caught.
                let phash = rows[&key(src)].phash.clone();
                assert!(phash.is_some(), "row {src}");
                assert_eq!(r.phash, phash, "row {i}");
            }
            None if i % 11 == 6 => {
                assert_eq!(r.error_message.as_deref(), Some("http_404: HTTP 404"));
            }
            None => assert_eq!(r.status, Status::Success, "row {i}: {:?}", r.error_message),
        }
    }
    let sizes = read_sizes(&dl.join("sizes.json")).unwrap();
    assert_eq!(sizes.values().sum::<u64>(), u64::from(ROWS) - 5 - 4);
    let stats = openwit_shard::read_stats(&dl.join("00002_stats.json")).unwrap();
    assert_eq!(stats.failures_by_reason.get("duplicate"), Some(&1));
    assert_eq!((stats.start_time, stats.duration), (1_700_000_000.0, 0.0));
    for tar in openwit_shard::list_shards(&dl).unwrap() {
        let n = openwit_shard::ShardReader::open(&tar)
            .unwrap()
            .samples()
            .count() as u64;
        let name = tar.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(sizes[&name], n, "{name}");
    }

    let four = tempfile::tempdir().unwrap();
    let p = setup(four.path(), &server, 4);
    run_to_end(&bin, &["run", &p], Some(four.path())).assert_success();
    assert_eq!(digests(&four.path().join("work")), want, "jobs = 4");

    // Killed after one shard, then at seeded moments, then run to the end.
    let killed = tempfile::tempdir().unwrap();
    let p = setup(killed.path(), &server, 2);
    kill_after_tasks(&bin, &["run", &p], Some(killed.path()), 1);
    for seed in 0..2u64 {
        kill_at(
            &bin,
            &["run", &p],
            Some(killed.path()),
            seed,
            Duration::from_millis(700),
        );
    }
    run_to_end(&bin, &["run", &p], Some(killed.path())).assert_success();
    assert_eq!(
        digests(&killed.path().join("work")),
        want,
        "killed and resumed"
    );

    // The distributed executor on a shared folder (as Slurm array jobs run it): each task, the
    // reduce step, then a checkout. The demoted shards are the reduce's files in the store.
    let shared = tempfile::tempdir().unwrap();
    let p = setup(shared.path(), &server, 2);
    let store = shared.path().join("store");
    let store = store.to_str().unwrap();
    for i in (0..4).rev() {
        let i = i.to_string();
        let args = ["task", "download", &p, "--index", &i, "--workdir", store];
        run_to_end(&bin, &args, Some(shared.path())).assert_success();
    }
    let args = ["task", "download", &p, "--finish", "--workdir", store];
    run_to_end(&bin, &args, Some(shared.path())).assert_success();
    let co = shared.path().join("checkout");
    let args = ["checkout", store, co.to_str().unwrap()];
    run_to_end(&bin, &args, Some(shared.path())).assert_success();
    assert_eq!(digests(&co), want, "shared workdir, checked out");
}

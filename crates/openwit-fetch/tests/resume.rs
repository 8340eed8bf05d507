//! kill -9 at any moment, rerun: the same complete set of shards, no truncated tar, no duplicate
//! or missing sample, the same keys. Runs the real `openwit` binary through the testkit harness.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use image::{Rgb, RgbImage};
use openwit_shard::{ShardReader, read_parquet, read_sizes};
use openwit_testkit::{
    Fault, Response, TestServer, kill_after_tasks, kill_at, openwit_bin, run_to_end,
};
use sha2::{Digest, Sha256};

const IMAGES: u32 = 60;

fn serve() -> TestServer {
    let server = TestServer::start();
    for i in 0..IMAGES {
        let img = RgbImage::from_fn(320 + i, 200, |x, y| {
            Rgb([
                ((x * (i + 1)) % 256) as u8,
                ((y * 3 + i) % 256) as u8,
                (i * 4) as u8,
            ])
        });
        let jpg =
            openwit_fetch::imaging::encode(&img, openwit_fetch::EncodeFormat::Jpg, 90).unwrap();
        let resp = if i % 13 == 5 {
            Response::status(404)
        } else {
            Response::bytes("image/jpeg", jpg).fault(Fault::Delay { ms: 15 })
        };
        server.route(&format!("/img/{i}.jpg"), resp);
    }
    server
}

fn setup(dir: &Path, server: &TestServer) -> String {
    let mut w = csv::Writer::from_path(dir.join("urls.csv")).unwrap();
    w.write_record(["url", "caption"]).unwrap();
    for i in 0..IMAGES {
        w.write_record([
            server.url(&format!("/img/{i}.jpg")),
            format!("picture number {i}"),
        ])
        .unwrap();
    }
    w.flush().unwrap();
    let toml = r#"
[pipeline]
workdir = "work"
jobs = 2
allow_private_networks = true

[download]
input = "urls.csv"
shard_size = 10
per_host_concurrency = 4
concurrency = 8
"#;
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, toml).unwrap();
    p.to_string_lossy().into_owned()
}

/// Everything that must match between runs: per key, the status and the image bytes' hash;
/// plus sizes.json.
fn snapshot(
    work: &Path,
) -> (
    BTreeMap<String, (String, Option<String>)>,
    BTreeMap<String, u64>,
) {
    let dl = work.join("download");
    let mut rows = BTreeMap::new();
    for tar in openwit_shard::list_shards(&dl).unwrap() {
        let mut images = BTreeMap::new();
        for s in ShardReader::open(&tar).unwrap().samples() {
            let s = s.expect("every committed tar is complete");
            assert!(
                images
                    .insert(
                        s.key.clone(),
                        hex::encode(Sha256::digest(&s.image().unwrap().data))
                    )
                    .is_none(),
                "sample {} twice in {}",
                s.key,
                tar.display()
            );
        }
        let meta = read_parquet(&tar.with_extension("parquet")).unwrap();
        assert_eq!(
            meta.iter()
                .filter(|m| m.status == openwit_shard::Status::Success)
                .count(),
            images.len()
        );
        for m in meta {
            let img = images.get(&m.key).cloned();
            assert!(
                rows.insert(m.key.clone(), (m.status.as_str().to_string(), img))
                    .is_none(),
                "key {} in two shards",
                m.key
            );
        }
    }
    (rows, read_sizes(&dl.join("sizes.json")).unwrap())
}

fn no_temporaries(work: &Path) {
    let dl = work.join("download");
    for e in std::fs::read_dir(&dl).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".tmp"), "leftover temporary {n}");
    }
}

#[test]
fn kill_9_then_rerun_gives_the_uninterrupted_result() {
    let server = serve();
    let bin = openwit_bin();

    let reference = tempfile::tempdir().unwrap();
    let p = setup(reference.path(), &server);
    run_to_end(&bin, &["run", &p], Some(reference.path())).assert_success();
    let want = snapshot(&reference.path().join("work"));
    assert_eq!(want.0.len(), IMAGES as usize);
    assert_eq!(want.1.len(), 6);
    assert_eq!(want.1.values().sum::<u64>(), IMAGES as u64 - 5, "five 404s");

    // Killed after two shards are committed.
    let d = tempfile::tempdir().unwrap();
    let p = setup(d.path(), &server);
    let r = kill_after_tasks(&bin, &["run", &p], Some(d.path()), 2);
    if r.killed {
        // Whatever is committed is complete.
        for tar in openwit_shard::list_shards(&d.path().join("work/download")).unwrap() {
            for s in ShardReader::open(&tar).unwrap().samples() {
                s.expect("a committed tar is never truncated");
            }
        }
    }
    run_to_end(&bin, &["run", &p], Some(d.path())).assert_success();
    assert_eq!(snapshot(&d.path().join("work")), want);
    no_temporaries(&d.path().join("work"));

    // Killed at seeded random moments, possibly several times in a row.
    for seed in 0..3u64 {
        let d = tempfile::tempdir().unwrap();
        let p = setup(d.path(), &server);
        for k in 0..2 {
            kill_at(
                &bin,
                &["run", &p],
                Some(d.path()),
                seed * 10 + k,
                Duration::from_millis(900),
            );
        }
        run_to_end(&bin, &["run", &p], Some(d.path())).assert_success();
        assert_eq!(snapshot(&d.path().join("work")), want, "seed {seed}");
        no_temporaries(&d.path().join("work"));
    }
}

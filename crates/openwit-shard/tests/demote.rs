//! `demote_rows` (the download stage's run-wide dedup after the fact) and the `language` column.

use std::collections::BTreeMap;
use std::path::Path;

use openwit_shard::{
    SampleMeta, ShardFiles, ShardLayout, ShardReader, ShardStats, ShardWriter, Status, demote_rows,
    read_parquet, read_stats, reason_of,
};

fn write_shard(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    write_shard_failing(dir, 3)
}

/// The test shard, with sample `failed` written as a failure (sample 3 always is).
fn write_shard_failing(dir: &Path, failed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layout = ShardLayout::new(10);
    let mut w = ShardWriter::create(&dir.join("00000.tar"), vec!["page_url".into()]).unwrap();
    for i in 0..4u64 {
        let mut m = SampleMeta::new(
            format!("http://a/{i}.jpg"),
            Some(format!("caption {i}")),
            layout.key(0, i),
        );
        m.language = Some(if i == 2 { "de".into() } else { "en".into() });
        m.extra
            .insert("page_url".into(), serde_json::json!("http://a/page"));
        if i == 3 || i == failed {
            w.add_failure(m.failed_to_download("http_404: HTTP 404"));
            continue;
        }
        m.set_success(8, 8, 16, 16, format!("{i:064}"));
        m.phash = Some(format!("{i:016x}"));
        w.add_success(m, "jpg", format!("image {i}").as_bytes())
            .unwrap();
    }
    let base = ShardStats {
        start_time: 7.0,
        end_time: 7.0,
        failures_by_reason: [("http_404".to_string(), 1)].into(),
        ..Default::default()
    };
    w.finish(
        &dir.join("00000.parquet"),
        &dir.join("00000_stats.json"),
        base,
    )
    .unwrap();
    (
        std::fs::read(dir.join("00000.tar")).unwrap(),
        std::fs::read(dir.join("00000.parquet")).unwrap(),
        std::fs::read(dir.join("00000_stats.json")).unwrap(),
    )
}

fn tar_keys(p: &Path) -> Vec<String> {
    ShardReader::open(p)
        .unwrap()
        .samples()
        .map(|s| s.unwrap().key)
        .collect()
}

#[test]
fn demoted_rows_leave_the_tar_and_keep_their_reason_and_hashes() {
    let d = tempfile::tempdir().unwrap();
    write_shard(d.path());
    let (tar, pq, st) = (
        d.path().join("00000.tar"),
        d.path().join("00000.parquet"),
        d.path().join("00000_stats.json"),
    );
    assert_eq!(tar_keys(&tar), ["000000", "000001", "000002"]);
    let demote: BTreeMap<String, (Status, String)> = [(
        "000001".to_string(),
        (
            Status::FailedToDownload,
            "duplicate: duplicate of 000000 (same sha256)".to_string(),
        ),
    )]
    .into();
    let extra = vec!["page_url".to_string()];
    let files = ShardFiles {
        tar: &tar,
        parquet: &pq,
        stats: &st,
    };
    let stats = demote_rows(files, files, &extra, &demote).unwrap();
    assert_eq!(tar_keys(&tar), ["000000", "000002"]);
    // Byte for byte the tar the writer makes without that sample.
    let without = tempfile::tempdir().unwrap();
    let (want_tar, _, _) = write_shard_failing(without.path(), 1);
    assert_eq!(std::fs::read(&tar).unwrap(), want_tar);
    let rows = read_parquet(&pq).unwrap();
    assert_eq!(rows[1].status, Status::FailedToDownload);
    assert_eq!(
        rows[1].error_message.as_deref(),
        Some("duplicate: duplicate of 000000 (same sha256)")
    );
    assert_eq!(rows[1].sha256.as_deref(), Some(&*format!("{:064}", 1)));
    assert_eq!(rows[1].phash.as_deref(), Some("0000000000000001"));
    assert_eq!(rows[1].width, None);
    assert_eq!(rows[2].language.as_deref(), Some("de"));
    assert_eq!(rows[2].extra["page_url"], "http://a/page");
    assert_eq!((stats.successes, stats.failed_to_download), (2, 2));
    assert_eq!(
        stats.failures_by_reason,
        [("duplicate".to_string(), 1), ("http_404".to_string(), 1)].into()
    );
    assert_eq!(stats.start_time, 7.0);
    assert_eq!(read_stats(&st).unwrap(), stats);

    // Twice is once.
    let before: Vec<Vec<u8>> = [&tar, &pq, &st]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    demote_rows(files, files, &extra, &demote).unwrap();
    let after: Vec<Vec<u8>> = [&tar, &pq, &st]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
    // No temporary left behind.
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn demoting_nothing_rewrites_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let orig = write_shard(d.path());
    let (tar, pq, st) = (
        d.path().join("00000.tar"),
        d.path().join("00000.parquet"),
        d.path().join("00000_stats.json"),
    );
    let files = ShardFiles {
        tar: &tar,
        parquet: &pq,
        stats: &st,
    };
    demote_rows(files, files, &["page_url".to_string()], &BTreeMap::new()).unwrap();
    assert_eq!(std::fs::read(d.path().join("00000.tar")).unwrap(), orig.0);
    assert_eq!(
        std::fs::read(d.path().join("00000.parquet")).unwrap(),
        orig.1
    );
}

#[test]
fn language_goes_to_the_json_and_the_parquet() {
    let d = tempfile::tempdir().unwrap();
    write_shard(d.path());
    let rows = read_parquet(&d.path().join("00000.parquet")).unwrap();
    let langs: Vec<Option<&str>> = rows.iter().map(|r| r.language.as_deref()).collect();
    assert_eq!(langs, [Some("en"), Some("en"), Some("de"), Some("en")]);
    // The failed row says why.
    assert_eq!(rows[3].error_message.as_deref(), Some("http_404: HTTP 404"));
    let s = ShardReader::open(&d.path().join("00000.tar"))
        .unwrap()
        .samples()
        .nth(2)
        .unwrap()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&s.get("json").unwrap().data).unwrap();
    assert_eq!(j["language"], "de");
}

#[test]
fn reason_tokens() {
    assert_eq!(reason_of("http_404: HTTP 404"), "http_404");
    assert_eq!(
        reason_of("near_duplicate: near-duplicate of 1: x"),
        "near_duplicate"
    );
    assert_eq!(reason_of("HTTP 404"), "HTTP 404");
    assert_eq!(reason_of("Bad thing: x"), "Bad thing: x");
}

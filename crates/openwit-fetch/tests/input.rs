//! Inputs: every format is cut into the same shards and read back row for row, the curated table
//! contributes only its kept rows, and carried columns come along.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder};
use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use openwit_fetch::Config;
use openwit_fetch::input::{InputFile, list_url_files, plan_segments, read_segment};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

const N: usize = 23;

fn url(i: usize) -> String {
    format!("http://example.com/{i}.jpg")
}

fn cfg(toml_text: &str) -> Config {
    toml::from_str(toml_text).unwrap()
}

fn all_rows(files: &[InputFile], c: &Config) -> Vec<(String, Option<String>, serde_json::Value)> {
    let shards = plan_segments(files, c.shard_size, c).unwrap();
    let mut out = Vec::new();
    for (i, segs) in shards.iter().enumerate() {
        let mut n = 0;
        for s in segs {
            for r in read_segment(s, c).unwrap() {
                out.push((
                    r.url,
                    r.caption,
                    r.extra.get("n").cloned().unwrap_or_default(),
                ));
                n += 1;
            }
        }
        if i + 1 < shards.len() {
            assert_eq!(n as u64, c.shard_size, "every shard but the last is full");
        }
    }
    out
}

fn check(rows: &[(String, Option<String>, serde_json::Value)]) {
    assert_eq!(rows.len(), N);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.0, url(i));
        assert_eq!(r.1.as_deref(), Some(format!("cap, \"{i}\"").as_str()));
        assert_eq!(r.2.to_string().trim_matches('"'), i.to_string());
    }
}

fn write_parquet(
    path: &Path,
    urls: Vec<String>,
    caps: Vec<String>,
    ns: Vec<i64>,
    kept: Option<Vec<bool>>,
) {
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("link", Arc::new(StringArray::from(urls))),
        ("text", Arc::new(StringArray::from(caps))),
        ("n", Arc::new(Int64Array::from(ns.clone()))),
    ];
    if let Some(k) = kept {
        let mut ids = ListBuilder::new(Int32Builder::new());
        for n in &ns {
            ids.values().append_value(*n as i32);
            ids.values().append_value(7);
            ids.append(true);
        }
        cols[0].0 = "url";
        cols[1].0 = "caption";
        cols.push(("kept", Arc::new(BooleanArray::from(k))));
        cols.push(("entry_ids", Arc::new(ids.finish())));
    }
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let f = std::fs::File::create(path).unwrap();
    // Small row groups so offsets cross them.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(5))
        .build();
    let mut w = ArrowWriter::try_new(f, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn csv_tsv_jsonl_gz_and_parquet_give_the_same_rows_across_files_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = cfg(r#"input = "x"
        url_col = "link"
        caption_col = "text"
        save_additional_columns = ["n"]
        shard_size = 4"#);

    // CSV split over two files (quoted captions with commas), TSV, JSONL (plain and gzipped).
    std::fs::create_dir(d.join("csv")).unwrap();
    for (name, range) in [("a.csv", 0..10), ("b.csv", 10..N)] {
        let mut w = csv::Writer::from_path(d.join("csv").join(name)).unwrap();
        w.write_record(["n", "link", "text"]).unwrap();
        for i in range {
            w.write_record([i.to_string(), url(i), format!("cap, \"{i}\"")])
                .unwrap();
        }
        w.flush().unwrap();
    }
    let files = list_url_files(&d.join("csv"), &c).unwrap();
    assert_eq!(files.len(), 2);
    check(&all_rows(&files, &c));

    let mut tsv = String::from("link\ttext\tn\n");
    for i in 0..N {
        tsv.push_str(&format!("{}\tcap, \"{i}\"\t{i}\n", url(i)));
    }
    std::fs::write(d.join("l.tsv"), &tsv).unwrap();
    check(&all_rows(
        &list_url_files(&d.join("l.tsv"), &c).unwrap(),
        &c,
    ));

    let mut jsonl = String::new();
    for i in 0..N {
        jsonl.push_str(
            &serde_json::json!({"link": url(i), "text": format!("cap, \"{i}\""), "n": i})
                .to_string(),
        );
        jsonl.push('\n');
        if i == 3 {
            jsonl.push('\n'); // blank lines are not rows
        }
    }
    std::fs::write(d.join("l.jsonl"), &jsonl).unwrap();
    check(&all_rows(
        &list_url_files(&d.join("l.jsonl"), &c).unwrap(),
        &c,
    ));
    let f = std::fs::File::create(d.join("l.jsonl.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    gz.write_all(jsonl.as_bytes()).unwrap();
    gz.finish().unwrap();
    check(&all_rows(
        &list_url_files(&d.join("l.jsonl.gz"), &c).unwrap(),
        &c,
    ));

    write_parquet(
        &d.join("l.parquet"),
        (0..N).map(url).collect(),
        (0..N).map(|i| format!("cap, \"{i}\"")).collect(),
        (0..N as i64).collect(),
        None,
    );
    check(&all_rows(
        &list_url_files(&d.join("l.parquet"), &c).unwrap(),
        &c,
    ));
}

#[test]
fn curated_table_gives_only_kept_rows_with_entry_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("part-0.parquet");
    // 2N rows, every other one kept.
    let total = 2 * N;
    write_parquet(
        &p,
        (0..total).map(|i| url(i / 2)).collect(),
        (0..total).map(|i| format!("cap, \"{}\"", i / 2)).collect(),
        (0..total as i64).map(|i| i / 2).collect(),
        Some((0..total).map(|i| i % 2 == 1).collect()),
    );
    let c = cfg("shard_size = 5\nsave_additional_columns = [\"n\"]");
    let files = vec![InputFile {
        path: p,
        format: openwit_fetch::InputFormat::Parquet,
        gzip: false,
        curated: true,
    }];
    check(&all_rows(&files, &c));
    let shards = plan_segments(&files, 5, &c).unwrap();
    let first = read_segment(&shards[1][0], &c).unwrap();
    assert_eq!(first[0].entry_ids, Some(vec![5, 7]));
}

#[test]
fn bad_inputs_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.txt"), "a\n").unwrap();
    let c = cfg("");
    let e = list_url_files(&dir.path().join("x.txt"), &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.txt") && e.contains("input_format"), "{e}");
    let e = list_url_files(&dir.path().join("nope.csv"), &c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nope.csv") && e.contains("[download] input"),
        "{e}"
    );
    std::fs::write(dir.path().join("u.csv"), "link,caption\nhttp://a/1.jpg,x\n").unwrap();
    let files = list_url_files(&dir.path().join("u.csv"), &c).unwrap();
    // the missing column is found when planning, naming the header line and the key
    let e = plan_segments(&files, 10, &c).unwrap_err().to_string();
    assert!(
        e.contains("u.csv:1: no column `url`") && e.contains("[download] url_col"),
        "{e}"
    );
}

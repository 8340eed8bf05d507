use super::*;
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use std::fs::File;
use std::io::Write;

fn cfg(inputs: Vec<PathBuf>) -> ImportConfig {
    ImportConfig {
        inputs,
        url_col: "url".into(),
        caption_col: "caption".into(),
        extra_columns: vec![],
        format: "auto".into(),
    }
}

fn run(path: &Path, cols: &Columns) -> (Vec<Candidate>, Stats) {
    let (fmt, gz) = Format::from_path(path).unwrap();
    let mut stats = Stats::default();
    let mut rows = Vec::new();
    read_file(path, fmt, gz, cols, "src", &mut stats, &mut |c| {
        rows.push(c);
        Ok(())
    })
    .unwrap();
    (rows, stats)
}

fn gz(path: &Path, data: &[u8]) {
    let f = File::create(path).unwrap();
    let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap();
}

#[test]
fn csv_tsv_with_quotes_bad_rows_and_extras() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.csv");
    std::fs::write(
        &p,
        "url,caption,license\n\
         http://example.com/a.jpg,\"A cat, sleeping\",cc-by\n\
         ,no url,x\n\
         http://example.com/b.jpg,,x\n\
         ftp://example.com/c.jpg,ftp,x\n\
         not a url,bad,x\n\
         https://example.com/d.jpg,  A   dog ,cc0\n",
    )
    .unwrap();
    let mut c = cfg(vec![]);
    c.extra_columns = vec!["license".into()];
    let (rows, stats) = run(&p, &Columns::new(&c));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].caption, "A cat, sleeping");
    assert_eq!(rows[1].caption, "A dog");
    assert_eq!(rows[0].extra.as_deref(), Some(r#"{"license":"cc-by"}"#));
    assert_eq!(rows[0].caption_source, CaptionSource::List);
    assert_eq!(stats.rows, 6);
    assert_eq!(stats.drops.get("missing_url"), 1);
    assert_eq!(stats.drops.get("missing_caption"), 1);
    // ftp:// and "not a url": one reason, as download counts them
    assert_eq!(stats.drops.get("bad_url"), 2);

    let t = d.path().join("b.tsv.gz");
    gz(
        &t,
        b"caption\turl\textra1\nA \"quoted\" red bus\thttp://x.example/bus.jpg\t7\n",
    );
    c.extra_columns = vec!["*".into()];
    let (rows, _) = run(&t, &Columns::new(&c));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].caption, "A \"quoted\" red bus");
    assert_eq!(rows[0].extra.as_deref(), Some(r#"{"extra1":"7"}"#));

    // a missing column names the header line, the columns there are and the key to set
    c.caption_col = "text".into();
    let err = read_file(
        &t,
        Format::Tsv,
        true,
        &Columns::new(&c),
        "s",
        &mut Stats::default(),
        &mut |_| Ok(()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("b.tsv.gz:1: no column `text` (columns: caption, url, extra1)")
            && err.ends_with("fix: set [import] caption_col"),
        "{err}"
    );
}

#[test]
fn jsonl_and_json_with_custom_columns() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.jsonl.gz");
    gz(
        &p,
        b"{\"URL\":\"http://e.com/1.jpg\",\"TEXT\":\"one\",\"n\":1}\n\n{broken\n{\"URL\":\"http://e.com/2.jpg\",\"TEXT\":2,\"n\":{\"a\":[1]}}\n[1,2]\n",
    );
    let mut c = cfg(vec![]);
    c.url_col = "URL".into();
    c.caption_col = "TEXT".into();
    c.extra_columns = vec!["*".into()];
    let (rows, stats) = run(&p, &Columns::new(&c));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].caption, "2");
    assert_eq!(rows[1].extra.as_deref(), Some(r#"{"n":{"a":[1]}}"#));
    // `{broken` is not JSON; `[1,2]` is JSON but not an object
    assert_eq!(stats.drops.get("malformed_json"), 1);
    assert_eq!(stats.drops.get("not_an_object"), 1);

    let j = d.path().join("b.json");
    std::fs::write(
        &j,
        r#"[{"URL":"http://e.com/1.jpg","TEXT":"one"}, 5, {"URL":"http://e.com/3.jpg","TEXT":"three"}]"#,
    )
    .unwrap();
    c.extra_columns = vec![];
    let (rows, stats) = run(&j, &Columns::new(&c));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].extra, None);
    assert_eq!(stats.drops.get("not_an_object"), 1);

    // truncated JSON keeps the rows before the break
    let t = d.path().join("t.json");
    std::fs::write(
        &t,
        r#"[{"URL":"http://e.com/1.jpg","TEXT":"one"}, {"URL":"http://e.com/2.jpg","TE"#,
    )
    .unwrap();
    let (rows, stats) = run(&t, &Columns::new(&c));
    assert_eq!(rows.len(), 1);
    assert!(stats.error.is_some());
    assert_eq!(stats.drops.get("truncated_file"), 1);
}

#[test]
fn truncated_gzip_keeps_rows_before_the_break() {
    let d = tempfile::tempdir().unwrap();
    let mut text = String::from("url,caption\n");
    for i in 0..20000 {
        text.push_str(&format!(
            "http://e.com/{i}.jpg,picture number {i} of a tree\n"
        ));
    }
    let full = d.path().join("full.csv.gz");
    gz(&full, text.as_bytes());
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.path().join("cut.csv.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (rows, stats) = run(&cut, &Columns::new(&cfg(vec![])));
    assert!(rows.len() > 1000 && rows.len() < 20000, "{}", rows.len());
    assert!(stats.error.is_some());
    assert_eq!(rows[10].url, "http://e.com/10.jpg");
}

fn write_parquet(path: &Path, n: usize, row_group: usize) {
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("caption", DataType::Utf8, true),
        Field::new("similarity", DataType::Float64, true),
    ]));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let f = File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).unwrap();
    let mut start = 0;
    while start < n {
        let end = (start + 1000).min(n);
        let keys: Int64Array = (start as i64..end as i64).collect();
        let urls: StringArray = (start..end)
            .map(|i| {
                if i % 10 == 9 {
                    None
                } else {
                    Some(format!("https://img.example/{i}.jpg"))
                }
            })
            .collect();
        let caps: StringArray = (start..end)
            .map(|i| Some(format!("a photo of thing {i}")))
            .collect();
        let sims = arrow_array::Float64Array::from_iter((start..end).map(|i| Some(i as f64 / 4.0)));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(keys),
                Arc::new(urls),
                Arc::new(caps),
                Arc::new(sims),
            ],
        )
        .unwrap();
        w.write(&b).unwrap();
        start = end;
    }
    w.close().unwrap();
}

#[test]
fn parquet_streams_row_groups_and_carries_extras() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("in.parquet");
    write_parquet(&p, 25_000, 4096);
    let mut c = cfg(vec![]);
    c.extra_columns = vec!["similarity".into()];
    let (rows, stats) = run(&p, &Columns::new(&c));
    assert_eq!(stats.rows, 25_000);
    assert_eq!(rows.len(), 22_500);
    assert_eq!(stats.drops.get("missing_url"), 2_500);
    assert_eq!(rows[1].url, "https://img.example/1.jpg");
    assert_eq!(rows[1].extra.as_deref(), Some(r#"{"similarity":0.25}"#));
    c.url_col = "nope".into();
    let (fmt, gz) = Format::from_path(&p).unwrap();
    let err = read_file(
        &p,
        fmt,
        gz,
        &Columns::new(&c),
        "s",
        &mut Stats::default(),
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no column `nope`"), "{err}");
}

#[test]
fn stage_runs_resumes_and_writes_the_candidate_table() {
    let d = tempfile::tempdir().unwrap();
    let inputs = d.path().join("lists");
    std::fs::create_dir(&inputs).unwrap();
    write_parquet(&inputs.join("a.parquet"), 3000, 1000);
    std::fs::write(
        inputs.join("b.csv"),
        "url,caption\nhttp://e.com/x.jpg,x marks\n",
    )
    .unwrap();
    std::fs::write(inputs.join("README.txt"), "ignored").unwrap();
    let stage = ImportStage::new(cfg(vec!["lists".into()]), d.path()).unwrap();
    let work = d.path().join("work");
    let mut ex =
        openwit_core::Executor::new(&work, Default::default(), &openwit_core::NoProgress).unwrap();
    ex.run_stage(&stage).unwrap();
    let a = crate::candidate::read_candidates(&work.join("import/00000-a.parquet")).unwrap();
    assert_eq!(a.len(), 2700);
    assert!(a[0].source_id.ends_with("a.parquet"));
    let b = crate::candidate::read_candidates(&work.join("import/00001-b.parquet")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        ex.run_stage(&stage).unwrap(),
        openwit_core::StageOutcome::UpToDate
    );
}

#[test]
fn config_errors_name_the_fix() {
    let e = ImportStage::new(cfg(vec![]), ".").err().unwrap();
    assert!(e.to_string().contains("fix:"));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x.dat"), "").unwrap();
    let s = ImportStage::new(cfg(vec!["x.dat".into()]), d.path()).unwrap();
    assert!(
        s.files()
            .unwrap_err()
            .to_string()
            .contains("cannot tell the format")
    );
    let s = ImportStage::new(cfg(vec!["missing.csv".into()]), d.path()).unwrap();
    assert!(s.files().unwrap_err().to_string().contains("missing.csv"));
}

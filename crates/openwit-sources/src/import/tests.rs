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
        dropped_rows: true,
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
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let a = crate::candidate::read_candidates(&work.join("import/00000-a.parquet")).unwrap();
    assert_eq!(a.len(), 2700);
    assert!(a[0].source_id.ends_with("a.parquet"));
    let b = crate::candidate::read_candidates(&work.join("import/00001-b.parquet")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        ex.run_stage(&stage).unwrap(),
        openwit_exec::StageOutcome::UpToDate
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

#[test]
fn every_dropped_row_is_listed_with_its_file_row_and_line() {
    let d = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openwit-urllist/tests/data");
    let lists = d.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    // the real airports table (vega-datasets) with its `iata` column named `url`: every code
    // is a bad URL
    let airports = std::fs::read_to_string(data.join("airports.csv")).unwrap();
    let airports = airports.replacen("iata,", "url,", 1);
    std::fs::write(lists.join("a-airports.csv"), &airports).unwrap();
    // the real flag list (country-flag-emoji-json) with `image` named `url`, three rows spoilt:
    // Ascension Island without its URL, Andorra with a blank name, the Emirates with an ftp URL
    let flags = std::fs::read_to_string(data.join("country-flags.json")).unwrap();
    let cdn = "https://cdn.jsdelivr.net/npm/country-flag-emoji-json@2.0.0/dist/images";
    let flags = flags
        .replacen(&format!("\"image\":\"{cdn}/AC.svg\""), "\"img\":\"x\"", 1)
        .replacen("\"name\":\"Andorra\"", "\"name\":\"   \"", 1)
        .replacen(&format!("{cdn}/AE.svg"), "ftp://example.org/AE.svg", 1)
        .replace("\"image\":", "\"url\":");
    std::fs::write(lists.join("b-flags.json"), &flags).unwrap();
    let mut c = cfg(vec!["lists".into()]);
    c.caption_col = "name".into();
    let stage = ImportStage::new(c.clone(), d.path()).unwrap();
    let work = d.path().join("work");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let tasks = ex.state().tasks("import").unwrap();
    assert_eq!(tasks.len(), 2);
    let listing = |task: &str| {
        crate::dropped::read_listing(&work.join(format!("import/dropped/{task}.parquet"))).unwrap()
    };
    for t in &tasks {
        let rows = listing(&t.task);
        assert!(rows.iter().all(|r| r.count == 1));
        assert_eq!(crate::dropped::counts(&rows).0, t.drops, "{}", t.task);
        assert!(
            rows.iter()
                .all(|r| r.input.as_deref() == t.extra["source"].as_str())
        );
    }

    // airports: every row a bad URL, each at its row, line and byte offset
    let rows = listing(&tasks[0].task);
    let n = airports.lines().count() as u64 - 1;
    assert_eq!(tasks[0].drops.get("bad_url"), Some(&n));
    assert_eq!(tasks[0].items_out, 0);
    let first = &rows[0];
    assert_eq!(first.reason, "bad_url");
    assert_eq!(first.url.as_deref(), Some("00M"));
    assert_eq!(first.caption.as_deref(), Some("Thigpen"));
    assert_eq!((first.row, first.line), (Some(0), Some(2)));
    assert_eq!(first.offset, Some(airports.find('\n').unwrap() as u64 + 1));
    assert!(first.detail.as_deref().unwrap().contains("00M"));
    let last = rows.last().unwrap();
    assert_eq!((last.row, last.line), (Some(n - 1), Some(n + 1)));

    // flags: three reasons, each at the row that was spoilt
    let rows = listing(&tasks[1].task);
    let reasons: Vec<(Option<u64>, &str)> =
        rows.iter().map(|r| (r.row, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (Some(0), "missing_url"),
            (Some(1), "missing_caption"),
            (Some(2), "bad_url")
        ]
    );
    assert_eq!(rows[2].url.as_deref(), Some("ftp://example.org/AE.svg"));
    assert_eq!(rows[2].caption.as_deref(), Some("United Arab Emirates"));
    assert_eq!(tasks[1].items_out + 3, tasks[1].items_in);

    // dropped_rows = false: the same counts, no listing
    c.dropped_rows = false;
    let stage = ImportStage::new(c, d.path()).unwrap();
    let work2 = d.path().join("work2");
    let mut ex =
        openwit_exec::LocalExecutor::new(&work2, Default::default(), &openwit_core::NoProgress)
            .unwrap();
    ex.run_stage(&stage).unwrap();
    let tasks2 = ex.state().tasks("import").unwrap();
    assert_eq!(tasks2[0].drops, tasks[0].drops);
    assert_eq!(tasks2[1].drops, tasks[1].drops);
    assert!(!work2.join("import/dropped").exists());
}

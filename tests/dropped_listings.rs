//! The source stages list the records they drop in `<stage>/dropped/TASK.parquet` (with `url`
//! and `caption` columns, like a candidate table), and `curate` must never take those listings
//! for candidates: a real `openwit run` of `import` then `curate`, where import drops rows.

use std::path::{Path, PathBuf};

use openwit_testkit::run_to_end;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openwit-teststage"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn curate_reads_the_candidates_never_the_listing_of_dropped_rows() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    // 10 good rows, then 3 that import drops (no URL, an ftp URL, a blank caption)
    let mut list = String::from("url,caption\n");
    for i in 0..10 {
        list.push_str(&format!(
            "http://img.example/{i}.jpg,a happy dog number {i} on the beach\n"
        ));
    }
    list.push_str(",a dog without an image\nftp://img.example/x.jpg,a dog by ftp\nhttp://img.example/y.jpg,   \n");
    std::fs::write(dir.path().join("list.csv"), list).unwrap();
    std::fs::write(dir.path().join("q.json"), r#"["dog", "beach"]"#).unwrap();
    let p = dir.path().join("pipeline.toml");
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nworkdir = \"{}\"\njobs = 1\n\n[import]\ninputs = [\"list.csv\"]\n\n[curate]\nqueries = \"q.json\"\n",
            work.display()
        ),
    )
    .unwrap();
    run_to_end(&bin(), &["run", s(&p)], None).assert_success();

    // import listed its three drops
    let listing = work.join("import/dropped/00000-list.parquet");
    assert!(listing.is_file(), "no listing at {}", listing.display());
    let st = run_to_end(&bin(), &["status", s(&work), "--json"], None);
    st.assert_success();
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let stages = v["stages"].as_array().unwrap();
    let import = stages.iter().find(|s| s["stage"] == "import").unwrap();
    assert_eq!(import["items_out"], 10, "{import}");
    let drops: u64 = import["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(drops, 3, "{import}");

    // curate read the 10 candidates only, not the 3 listed rows
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("curate/stats.json")).unwrap()).unwrap();
    assert_eq!(stats["candidates"], 10, "{stats}");

    // `openwit status` says where the dropped rows are
    let st = run_to_end(&bin(), &["status", s(&work)], None);
    st.assert_success();
    assert!(
        st.stdout.contains("import/dropped/*.parquet"),
        "{}",
        st.stdout
    );
}

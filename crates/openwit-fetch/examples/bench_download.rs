//! Runs the download stage exactly as `openwit download` does (the executor, one workdir), without
//! building the whole CLI: `bench_download WORKDIR URLS.csv JOBS`, image_size 256, border, jpg 95,
//! 1,000 rows per shard, no retries, 64 requests in flight. Used by `scripts/bench-download.sh`.

use std::path::Path;

use openwit_fetch::{Config, DownloadStage};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bench_download WORKDIR URLS.csv JOBS");
        std::process::exit(2);
    }
    let jobs: usize = args[3].parse().unwrap();
    let cfg: Config = toml::from_str(&format!(
        r#"
        input = "{}"
        shard_size = 1000
        image_size = 256
        resize_mode = "border"
        encode_format = "jpg"
        encode_quality = 95
        retries = 0
        timeout = 10.0
        concurrency = 64
        per_host_concurrency = 64
        "#,
        args[2]
    ))
    .unwrap();
    let stage = DownloadStage::new(cfg, Path::new("."), true).unwrap();
    let out = openwit_testkit::run_stage(Path::new(&args[1]), jobs, &stage).unwrap();
    eprintln!("{out:?}");
}

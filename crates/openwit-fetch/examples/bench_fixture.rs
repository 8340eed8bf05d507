//! Benchmark fixture for `scripts/bench-download.sh`.
//!
//! - `bench_fixture generate DIR N SEED`: writes N JPEGs of about 0.3 to 2 megapixels (varied
//!   sizes and content) into DIR/img/, a few percent corrupt, and DIR/urls.txt paths (a few
//!   percent pointing at missing files).
//! - `bench_fixture serve DIR PORT_FILE`: serves DIR/img on 127.0.0.1 (the testkit's server) and
//!   writes its port to PORT_FILE; runs until killed.
//! - `bench_fixture fetch URLS CONCURRENCY`: downloads every URL with plain reqwest at the given
//!   concurrency and no decoding, and prints requests/s: the server's ceiling, to show it is not
//!   the bottleneck of either tool.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};

fn generate(dir: &Path, n: usize, seed: u64) {
    let img_dir = dir.join("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut urls = std::fs::File::create(dir.join("paths.txt")).unwrap();
    for i in 0..n {
        let mp: f64 = rng.random_range(0.3..2.0);
        let ar: f64 = rng.random_range(0.6..1.8);
        let w = ((mp * 1e6 * ar).sqrt()) as u32;
        let h = ((mp * 1e6 / ar).sqrt()) as u32;
        let (a, b, c) = (
            rng.random_range(1..9u32),
            rng.random_range(1..9u32),
            rng.random_range(0..255u32),
        );
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * a / 7) ^ (y * b / 5)) & 0xff;
            Rgb([
                v as u8,
                ((x + y + c) / 3 % 256) as u8,
                ((v + c) % 256) as u8,
            ])
        });
        let mut jpg =
            openwit_fetch::imaging::encode(&img, openwit_fetch::EncodeFormat::Jpg, 85).unwrap();
        let roll: f64 = rng.random_range(0.0..1.0);
        if roll < 0.02 {
            // Corrupt: cut in the middle.
            jpg.truncate(jpg.len() / 2);
        }
        let name = format!("{i:06}.jpg");
        if (0.02..0.04).contains(&roll) {
            // Missing: listed but not written.
            writeln!(urls, "/img/missing-{name}").unwrap();
            continue;
        }
        std::fs::write(img_dir.join(&name), &jpg).unwrap();
        writeln!(urls, "/img/{name}").unwrap();
    }
}

fn serve(dir: &Path, port_file: &Path) {
    let server = openwit_testkit::TestServer::start();
    server.serve_dir("/img/", dir.join("img"));
    std::fs::write(port_file, server.addr().port().to_string()).unwrap();
    loop {
        std::thread::park();
    }
}

fn fetch(urls: &Path, concurrency: usize) {
    let text = std::fs::read_to_string(urls).unwrap();
    let list: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let (n, bytes) = rt.block_on(async {
        futures::stream::iter(list.iter())
            .map(|u| {
                let c = client.clone();
                async move {
                    match c.get(u).send().await {
                        Ok(r) => r.bytes().await.map(|b| b.len()).unwrap_or(0),
                        Err(_) => 0,
                    }
                }
            })
            .buffer_unordered(concurrency)
            .fold((0usize, 0usize), |(n, b), x| async move { (n + 1, b + x) })
            .await
    });
    let s = t0.elapsed().as_secs_f64();
    println!(
        "fetched {n} URLs ({:.1} MB) in {s:.2}s: {:.0} requests/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        n as f64 / s,
        bytes as f64 / 1e6 / s
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => generate(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args.get(4).map(|s| s.parse().unwrap()).unwrap_or(0),
        ),
        Some("serve") => serve(Path::new(&args[2]), Path::new(&args[3])),
        Some("fetch") => fetch(Path::new(&args[2]), args[3].parse().unwrap()),
        _ => {
            eprintln!(
                "usage: bench_fixture generate DIR N [SEED] | serve DIR PORT_FILE | fetch URLS.csv CONCURRENCY"
            );
            std::process::exit(2);
        }
    }
}

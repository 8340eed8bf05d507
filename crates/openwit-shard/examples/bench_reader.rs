//! Reading speed of the shard reader against the `tar` crate.
//!
//! `cargo build --release --workspace --features train --example bench_reader`, then
//! `target/release/examples/bench_reader [SAMPLES] [IMAGE_BYTES] [ROUNDS]`
//!
//! Writes one shard of SAMPLES (default 10,000) samples with the shard writer (an image of
//! IMAGE_BYTES, default 16,384, bytes, the json and a caption each, as the download stage
//! writes them) to a temporary folder, then reads it ROUNDS (default 5) times with each reader,
//! alternating, every member's data into memory, and prints one JSON line per reader with its
//! best round in samples per CPU second (the reading thread's CPU time, the file in the page
//! cache) and the ratio.

use std::path::Path;

use openwit_shard::{SampleMeta, ShardLayout, ShardReader, ShardStats, ShardWriter};

/// CPU seconds of this thread so far.
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

fn write_shard(dir: &Path, samples: u64, image_bytes: usize) -> std::path::PathBuf {
    let layout = ShardLayout::new(samples);
    let tar = dir.join("00000.tar");
    let mut w = ShardWriter::create(&tar, Vec::new()).unwrap();
    for i in 0..samples {
        let mut m = SampleMeta::new(
            format!("https://example.com/images/{i}.jpg"),
            Some(format!("a photograph of item number {i} on a table")),
            layout.key(0, i),
        );
        m.set_success(256, 256, 512, 512, format!("{i:064x}"));
        let image: Vec<u8> = (0..image_bytes).map(|j| (i as usize + j) as u8).collect();
        w.add_success(m, "jpg", &image).unwrap();
    }
    w.finish(
        &dir.join("00000.parquet"),
        &dir.join("00000_stats.json"),
        ShardStats::default(),
    )
    .unwrap();
    tar
}

/// Samples and data bytes read by our reader.
fn ours(tar: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0, 0);
    for s in ShardReader::open(tar).unwrap().samples() {
        let s = s.unwrap();
        n += 1;
        bytes += s.members.iter().map(|m| m.data.len() as u64).sum::<u64>();
    }
    (n, bytes)
}

/// Samples (members grouped by key) and data bytes read by the `tar` crate.
fn tar_crate(tar: &Path) -> (u64, u64) {
    let f = std::io::BufReader::new(std::fs::File::open(tar).unwrap());
    let mut archive = tar::Archive::new(f);
    let (mut n, mut bytes, mut last) = (0, 0, String::new());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let key = name.split('.').next().unwrap_or("").to_string();
        let mut data = Vec::with_capacity(e.size() as usize);
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        bytes += data.len() as u64;
        if key != last {
            n += 1;
            last = key;
        }
    }
    (n, bytes)
}

fn main() {
    let arg = |i: usize, d: u64| {
        std::env::args()
            .nth(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(d)
    };
    let (samples, image_bytes, rounds) = (arg(1, 10_000), arg(2, 16_384), arg(3, 5));
    let dir = tempfile::tempdir().unwrap();
    let tar = write_shard(dir.path(), samples, image_bytes as usize);
    let size = std::fs::metadata(&tar).unwrap().len();
    let readers: [(&str, fn(&Path) -> (u64, u64)); 2] =
        [("openwit-shard", ours), ("tar", tar_crate)];
    let expected = ours(&tar);
    assert_eq!(tar_crate(&tar), expected, "both readers read the same");
    let mut best = [f64::MAX; 2];
    for _ in 0..rounds {
        for (i, (_, read)) in readers.iter().enumerate() {
            let c0 = thread_cpu();
            assert_eq!(read(&tar), expected);
            best[i] = best[i].min(thread_cpu() - c0);
        }
    }
    for (i, (name, _)) in readers.iter().enumerate() {
        println!(
            "{{\"reader\":\"{name}\",\"samples\":{samples},\"tar_bytes\":{size},\"best_cpu_s\":{:.4},\"samples_per_cpu_s\":{:.0},\"mib_per_cpu_s\":{:.0}}}",
            best[i],
            samples as f64 / best[i],
            size as f64 / best[i] / (1 << 20) as f64
        );
    }
    println!("{{\"ratio_ours_over_tar\":{:.2}}}", best[1] / best[0]);
}

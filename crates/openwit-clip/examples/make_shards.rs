//! Writes generated JPEG shards (webdataset, img2dataset layout) for benchmarks:
//!   cargo run --release -p openwit-clip --example make_shards -- DIR SHARDS PER_SHARD SIZE
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: make_shards DIR SHARDS PER_SHARD SIZE");
        std::process::exit(2);
    }
    let paths = openwit_clip::synth::write_shards(
        std::path::Path::new(&a[1]),
        a[2].parse().unwrap(),
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
        0,
    )
    .unwrap();
    println!("{} shards in {}", paths.len(), a[1]);
}

//! Writes generated JPEG shards (webdataset, img2dataset layout, with `KEY.cls`) for benchmarks,
//! and `DIR/classnames.txt` (the class names in class-index order, one a line):
//!   cargo run --release -p openwit-clip --example make_shards -- DIR SHARDS PER_SHARD SIZE [SEED]
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
        a.get(5).map(|s| s.parse().unwrap()).unwrap_or(0),
    )
    .unwrap();
    let names = openwit_clip::synth::class_names().join("\n") + "\n";
    std::fs::write(std::path::Path::new(&a[1]).join("classnames.txt"), names).unwrap();
    println!("{} shards in {}", paths.len(), a[1]);
}

//! Matching throughput on one core with a real-size automaton, writing the matched sets so that
//! `scripts/bench-curate.sh` can compare them with the pyahocorasick reference.
//!
//! `cargo run --release -p openwit-curate --example bench_match -- OUT_DIR [ENTRIES] [CAPTIONS]`
//! writes OUT_DIR/entries.json, OUT_DIR/captions.txt, OUT_DIR/rust.txt and prints JSON.

mod common;

use std::io::Write;
use std::time::Instant;

use openwit_curate::{MatchEngine, Matcher};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// CPU time of this thread (on-CPU nanoseconds from the scheduler): throughput per core that a
/// busy shared machine does not distort the way wall time does.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ns| ns / 1e9)
        .unwrap_or(0.0)
}

#[derive(PartialEq)]
struct Results {
    ids: Vec<u32>,
    ends: Vec<usize>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: bench_match OUT_DIR [ENTRIES] [CAPTIONS]"),
    );
    let n_entries: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(500_000);
    let n_captions: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(1_000_000);
    std::fs::create_dir_all(&out).unwrap();
    let vocab = common::Vocab::new(200_000);
    let entries = vocab.entries(n_entries);
    std::fs::write(
        out.join("entries.json"),
        serde_json::to_vec(&entries).unwrap(),
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let captions: Vec<String> = (0..n_captions).map(|_| vocab.caption(&mut rng)).collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("captions.txt")).unwrap());
    for c in &captions {
        f.write_all(c.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();

    let mut timings = serde_json::Map::new();
    let mut all: Vec<Results> = Vec::new();
    // (name, engine, batched): the token trie through `find_many` on batches of 8192 captions
    // (as the stage calls it, one record batch at a time) and through `find` one by one.
    let mut engines = vec![
        ("TokenTrie", MatchEngine::TokenTrie, true),
        ("TokenTrie_one_by_one", MatchEngine::TokenTrie, false),
    ];
    if std::env::var("BENCH_TRIE_ONLY").is_err() {
        engines.push(("AhoCorasick", MatchEngine::AhoCorasick, false));
    }
    for &(name, engine, batched) in &engines {
        let t0 = Instant::now();
        let m = Matcher::with_engine(&entries, engine).unwrap();
        let build = t0.elapsed().as_secs_f64();
        let (mut buf, mut ids) = (Default::default(), Vec::new());
        // BENCH_PASSES=n matches the captions n times (default 1) and reports every pass's rate
        // too: the first pass is the one reported as the engine's rate (as before), the others
        // show how much the rate varies and what the first, cold pass costs.
        let passes: usize = std::env::var("BENCH_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
            .max(1);
        let mut rates = Vec::new();
        let (mut first, mut cpu, mut secs) = (None, 0.0, 0.0);
        for _ in 0..passes {
            // All the matched ids in one buffer and where each caption's end (no allocation per
            // caption, as the stage's batches would do).
            let mut pass = Results {
                ids: Vec::with_capacity(8 * captions.len()),
                ends: Vec::with_capacity(captions.len()),
            };
            let results = &mut pass;
            let t0 = Instant::now();
            let c0 = cpu_seconds();
            if batched {
                let mut ends = Vec::new();
                for batch in captions.chunks(8192) {
                    m.find_many(batch, &mut buf, &mut ids, &mut ends);
                    let base = results.ids.len();
                    results.ids.extend_from_slice(&ids);
                    results.ends.extend(ends.iter().map(|e| base + e));
                }
            } else {
                for c in &captions {
                    m.find(c, &mut buf, &mut ids);
                    results.ids.extend_from_slice(&ids);
                    results.ends.push(results.ids.len());
                }
            }
            let pass_cpu = cpu_seconds() - c0;
            rates.push(captions.len() as f64 / pass_cpu);
            match &first {
                None => {
                    (cpu, secs) = (pass_cpu, t0.elapsed().as_secs_f64());
                    first = Some(pass);
                }
                Some(f) => assert!(*f == pass, "{name}: passes disagree"),
            }
        }
        let results = first.unwrap();
        timings.insert(
            name.to_string(),
            serde_json::json!({
                "build_seconds": build,
                "memory_mib": m.memory_usage() as f64 / (1u64 << 20) as f64,
                "wall_seconds": secs,
                "cpu_seconds": cpu,
                "captions_per_s": captions.len() as f64 / cpu,
                "pass_captions_per_s": rates,
            }),
        );
        all.push(results);
    }
    assert!(all.iter().all(|r| *r == all[0]), "the engines disagree");
    let results = &all[0];
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("rust.txt")).unwrap());
    let mut matched = 0u64;
    let mut total_ids = 0u64;
    let mut start = 0;
    for &end in &results.ends {
        let r = &results.ids[start..end];
        start = end;
        matched += (!r.is_empty()) as u64;
        total_ids += r.len() as u64;
        let line: Vec<String> = r.iter().map(|i| i.to_string()).collect();
        f.write_all(line.join(" ").as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "entries": entries.len(),
            "captions": captions.len(),
            "captions_with_a_match": matched,
            "matched_ids": total_ids,
            "engines": timings,
            "captions_per_s": timings["TokenTrie"]["captions_per_s"],
        })
    );
}

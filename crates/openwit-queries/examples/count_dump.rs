//! Runs the queries stage on one dump with a fresh workdir and prints the figures the bench
//! script records: `count_dump DUMP WORKDIR JOBS MEMORY_BUDGET_MB`.

use std::path::Path;
use std::time::Instant;

use openwit_queries::{BigramMode, QueriesConfig, QueriesStage};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dump = &a[1];
    let work = Path::new(&a[2]);
    let jobs: usize = a[3].parse().unwrap();
    let budget: f64 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(8192.0);
    let cfg = QueriesConfig {
        wikipedia: vec![dump.clone()],
        bigram_mode: BigramMode::TopK,
        bigram_top_k: 100_000,
        memory_budget_mb: budget,
        task_size_mb: 64.0,
        ..Default::default()
    };
    let stage = QueriesStage::new(cfg, Path::new(".")).unwrap();
    let mut ex = openwit_testkit::executor(work, jobs);
    let t0 = Instant::now();
    ex.run_stage(&stage).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("queries/summary.json")).unwrap())
            .unwrap();
    let d = &s["wikipedia"]["dump"];
    let spills: u64 = ex
        .state()
        .tasks("queries")
        .unwrap()
        .iter()
        .map(|t| t.extra["spills"].as_u64().unwrap_or(0))
        .sum();
    println!(
        "{{\"seconds\": {secs:.2}, \"bytes_in\": {}, \"bytes_xml\": {}, \"tokens\": {}, \"pages\": {}, \"unigram_types\": {}, \"bigram_types\": {}, \"spills\": {spills}}}",
        d["bytes_in"],
        d["bytes_xml"],
        s["tokens"],
        d["pages"],
        s["wikipedia"]["unigram_types"],
        s["wikipedia"]["bigram_types"]
    );
}

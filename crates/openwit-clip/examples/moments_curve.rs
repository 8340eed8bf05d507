//! The loss curve with fp32 and with bf16 AdamW moments (`[train] adam_moments`): the same model,
//! seed and generated shards, trained both ways on the CPU. Prints one JSON line (the final
//! losses, the largest and the mean absolute difference of the per-step losses, the mean losses
//! of the last tenth of the steps) and writes `OUT/moments.svg` (both curves).
//!
//!   cargo run --release -p openwit-clip --example moments_curve -- OUT [MODEL] [STEPS] [BATCH]

use std::path::PathBuf;
use std::time::Instant;

use openwit_chart::{LineChart, panels};
use openwit_clip::train::{Hooks, TrainConfig, read_metrics, train};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let Some(out) = a.get(1).map(PathBuf::from) else {
        eprintln!("usage: moments_curve OUT [MODEL] [STEPS] [BATCH]");
        std::process::exit(2);
    };
    let model = a.get(2).map_or("tiny-vit", |s| s.as_str());
    let steps: u64 = a.get(3).map_or(300, |s| s.parse().unwrap());
    let batch: usize = a.get(4).map_or(64, |s| s.parse().unwrap());
    let shards = openwit_clip::synth::write_shards(&out.join("shards"), 4, 500, 40, 7).unwrap();
    let mut curves = Vec::new();
    for moments in ["fp32", "bf16"] {
        let run = out.join(moments);
        if run.exists() {
            std::fs::remove_dir_all(&run).unwrap();
        }
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
            "model": model, "steps": steps, "batch_size": batch, "lr": 2e-3, "warmup": 10,
            "checkpoint_every": steps, "device": "cpu", "shuffle_buffer": 256,
            "adam_moments": moments,
        }))
        .unwrap();
        let t0 = Instant::now();
        train(&cfg, shards.clone(), &run, 0, &Hooks::default()).unwrap();
        eprintln!("{moments}: {:.0} s", t0.elapsed().as_secs_f64());
        let m = read_metrics(&run.join("metrics.jsonl")).unwrap();
        curves.push(m.iter().map(|m| m.loss).collect::<Vec<f64>>());
    }
    let (f, b) = (&curves[0], &curves[1]);
    let diffs: Vec<f64> = f.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let tail = (f.len() / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "model": model, "steps": steps, "batch": batch,
            "final_loss_fp32": f.last(), "final_loss_bf16": b.last(),
            "last_tenth_mean_loss_fp32": mean(&f[f.len() - tail..]),
            "last_tenth_mean_loss_bf16": mean(&b[b.len() - tail..]),
            "first_loss": f[0],
            "max_abs_diff": diffs.iter().cloned().fold(0.0, f64::max),
            "mean_abs_diff": mean(&diffs),
        })
    );
    let pts = |v: &[f64]| v.iter().enumerate().map(|(i, &l)| (i as f64, l)).collect();
    let chart = LineChart::new("loss", "step", "")
        .size(700.0, 360.0)
        .series_in("fp32 moments", pts(f), "#2471a3")
        .series_in("bf16 moments", pts(b), "#c0392b")
        .svg();
    let title = format!("{model}, batch {batch}: AdamW moments fp32 vs bf16");
    std::fs::write(
        out.join("moments.svg"),
        panels(&title, &[chart], 1, (700.0, 360.0)),
    )
    .unwrap();
}

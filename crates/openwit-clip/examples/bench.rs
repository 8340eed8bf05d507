//! Training throughput of the CLIP trainer: `synthetic` (random tensors already on the device:
//! model + loss + optimizer only) or `shards` (the whole trainer, data pipeline included, on
//! generated JPEG shards). Prints one JSON line per mode. Used by `scripts/gpu-bench.sh`.
//!
//!   cargo run --release -p openwit-clip --example bench -- MODEL BATCH STEPS DEVICE PRECISION MODE [SHARD_DIR]
//!   cargo run --release -p openwit-clip --example bench -- --nccl-compiled   # exit 0 if NCCL is in
//!
//! `GRAD_CKPT=1` turns on activation checkpointing of the transformer blocks; in `synthetic`,
//! `ADAM_MOMENTS=bf16` stores AdamW's moments in bf16, `ACCUM=k` takes each step as contrastive
//! accumulation over k micro-batches of BATCH (OpenCLIP's `--accum-freq`, `openwit_clip::accum`)
//! and `DIST=1` runs the step as rank 0 of a one-rank job (NCCL on CUDA, Gloo on the CPU;
//! `MASTER_PORT`, default 29500). The JSON line has
//! the process's peak resident memory (`max_rss_gib`, VmHWM: host memory, so the activations on
//! a CPU run); `synthetic` also the resident memory before the first step (model, optimizer
//! state, batch) and the peak up to the end of the first backward pass, before the optimizer's
//! flat buffers: their difference is what the forward and backward passes held.

use std::time::Instant;

use openwit_clip::accum::accumulated_backward;
use openwit_clip::dist::{DEFAULT_PORT, Dist, DistConfig, RankEnv};
use openwit_clip::loss::clamp_logit_scale;
use openwit_clip::optim::{AdamW, AdamWConfig, Moments};
use openwit_clip::train::{Hooks, TrainConfig, synthetic_batch, train};
use openwit_clip::{Clip, Fwd, ModelConfig, Precision, parse_device};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.get(1).is_some_and(|s| s == "--nccl-compiled") {
        // `scripts/gpu-bench.sh --prepare` checks that the GPU build has NCCL (exit 1 if not).
        let nccl = openwit_clip::dist::nccl_compiled();
        println!("{}", serde_json::json!({ "nccl_compiled": nccl }));
        std::process::exit(if nccl { 0 } else { 1 });
    }
    if a.len() < 7 {
        eprintln!("usage: bench MODEL BATCH STEPS DEVICE PRECISION synthetic|shards [SHARD_DIR]");
        std::process::exit(2);
    }
    let (model, batch, steps, device, precision, mode) = (
        a[1].as_str(),
        a[2].parse::<i64>().unwrap(),
        a[3].parse::<u64>().unwrap(),
        a[4].as_str(),
        a[5].as_str(),
        a[6].as_str(),
    );
    let dev = parse_device(device).unwrap();
    let mcfg = ModelConfig::preset(model).expect("unknown model");
    let warm = 5u64.min(steps / 2);
    let ckpt = std::env::var("GRAD_CKPT").is_ok_and(|v| v == "1");
    match mode {
        "synthetic" => {
            tch::manual_seed(0);
            let m = Clip::new(&mcfg, dev);
            let moments = std::env::var("ADAM_MOMENTS").map_or(Moments::Fp32, |v| {
                Moments::parse(&v).expect("ADAM_MOMENTS is fp32 or bf16")
            });
            let mut opt =
                AdamW::with_moments(m.named_parameters(), AdamWConfig::default(), moments);
            let params = m.named_parameters();
            let prec = if precision == "bf16" {
                Precision::Bf16
            } else {
                Precision::Fp32
            };
            let f = Fwd {
                precision: prec,
                train: true,
            };
            // DIST=1: this process joins a one-rank job (NCCL on CUDA, Gloo on the CPU) and the
            // step goes through the data-parallel path: features all-gathered, the loss over the
            // gathered batch, gradients all-reduced in buckets.
            // Under torchrun's variables (RANK, WORLD_SIZE, ...), this process is one rank of
            // that job instead.
            let dist = std::env::var("DIST").is_ok_and(|v| v == "1").then(|| {
                let env = RankEnv::from_env().ok().flatten().unwrap_or(RankEnv {
                    rank: 0,
                    world: 1,
                    local_rank: 0,
                    master_addr: "127.0.0.1".into(),
                    master_port: std::env::var("MASTER_PORT")
                        .ok()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(DEFAULT_PORT),
                });
                Dist::init(&env, dev, DistConfig::default()).expect("joining the job")
            });
            let sync = dist
                .as_ref()
                .map(|d| d.grad_sync(&params).expect("the gradient all-reduce"));
            // ACCUM=k: contrastive accumulation over k micro-batches of BATCH (one step is k x BATCH
            // pairs), each micro-batch generated on the device from its own seed when a pass
            // asks for it (the trainer keeps its micro-batches in host memory, not on the device).
            let accum: usize = std::env::var("ACCUM")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let size = mcfg.vision.image_size();
            let ctx = mcfg.text.context_length;
            let normalizer = openwit_clip::data::Normalizer::new(dev);
            let (images, tokens) = synthetic_batch(batch, size, ctx, dev);
            let images = normalizer.apply(&images);
            let start_rss = rss_gib("VmRSS:");
            let mut first_backward_peak = None;
            let mut losses = Vec::new();
            let mut t0 = Instant::now();
            for s in 0..steps {
                if s == warm {
                    if let tch::Device::Cuda(i) = dev {
                        tch::Cuda::synchronize(i as i64);
                    }
                    t0 = Instant::now();
                }
                let loss = accumulated_backward(
                    &m,
                    accum,
                    &mut |j| {
                        if accum == 1 {
                            return Ok((images.shallow_clone(), tokens.shallow_clone()));
                        }
                        tch::manual_seed(1 + (s as usize * accum + j) as i64);
                        let (i, t) = synthetic_batch(batch, size, ctx, dev);
                        Ok((normalizer.apply(&i), t))
                    },
                    f,
                    ckpt,
                    sync.as_ref(),
                )
                .unwrap();
                if s == 0 {
                    // Before the optimizer's flat buffers: the activations' peak.
                    first_backward_peak = rss_gib("VmHWM:");
                }
                let _ = opt.step(1e-4, 1.0, 1.0);
                clamp_logit_scale(&m.logit_scale);
                opt.zero_grad();
                if accum > 1 {
                    // One read per step (of k micro-batches): the loss curve of the few steps.
                    losses.push(loss.double_value(&[]));
                }
            }
            if let tch::Device::Cuda(i) = dev {
                tch::Cuda::synchronize(i as i64);
            }
            let dt = t0.elapsed().as_secs_f64();
            let per_step = batch as f64 * accum as f64;
            let sps = ((steps - warm) as f64 * per_step) / dt;
            let backend = dist
                .as_ref()
                .map(|_| if dev.is_cuda() { "nccl" } else { "gloo" });
            // How the last step's all-reduce overlapped its backward pass.
            let overlap = sync.as_ref().map(|s| {
                let t = s.timing();
                serde_json::json!({"buckets": t.launches.len(), "started_before_last_grad": t.overlapped(),
                    "first_launch_ms": t.launches.first().map(|x| x * 1e3), "last_grad_ms": t.last_grad * 1e3})
            });
            drop(sync);
            let rank_of = dist.as_ref().map(|d| [d.rank(), d.world()]);
            if let Some(d) = dist {
                d.finish();
            }
            println!(
                "{}",
                serde_json::json!({"impl": "openwit-clip", "mode": "synthetic", "model": model, "batch": batch,
                    "accum_freq": accum, "contrastive_batch": per_step as i64, "dist": backend, "grad_sync": overlap, "rank_of": rank_of,
                    "precision": precision, "device": device, "samples_per_s": sps, "step_ms": 1000.0 * dt / (steps - warm) as f64,
                    "grad_checkpointing": ckpt, "max_rss_gib": rss_gib("VmHWM:"), "adam_moments": moments.name(),
                    "start_rss_gib": start_rss, "first_backward_peak_gib": first_backward_peak,
                    "losses": losses})
            );
        }
        "shards" => {
            let dir = std::path::PathBuf::from(a.get(7).expect("shards mode needs SHARD_DIR"));
            let out = tempfile_dir();
            let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
                "model": model, "steps": steps, "batch_size": batch, "device": device,
                "precision": precision, "checkpoint_every": steps + 1, "shards": [dir.display().to_string()],
                "warmup": 1, "grad_checkpointing": ckpt,
            }))
            .unwrap();
            let shards =
                openwit_clip::data::resolve_shards(&cfg.shards, std::path::Path::new(".")).unwrap();
            let s = train(&cfg, shards, &out, 0, &Hooks::default()).unwrap();
            // Steady state, as the synthetic mode and OpenCLIP's step are timed: the steps after
            // the first `warm` ones, from the trainer's own per-step log (the whole run's figure
            // also holds the first step's CUDA set-up, the shuffle buffer's fill and the final
            // checkpoint write).
            let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
            let (mut n, mut secs, mut wait) = (0.0, 0.0, 0.0);
            for line in log.lines() {
                let m: openwit_clip::train::StepMetrics = serde_json::from_str(line).unwrap();
                if m.step >= warm {
                    let dt = batch as f64 / m.samples_per_s;
                    n += batch as f64;
                    secs += dt;
                    wait += m.data_wait * dt;
                }
            }
            println!(
                "{}",
                serde_json::json!({"impl": "openwit-clip", "mode": "shards", "model": model, "batch": batch,
                    "precision": precision, "device": device, "samples_per_s": n / secs,
                    "data_wait": wait / secs, "whole_run_samples_per_s": s.samples_per_s,
                    "whole_run_data_wait": s.mean_data_wait,
                    "grad_checkpointing": ckpt, "max_rss_gib": rss_gib("VmHWM:")})
            );
            let _ = std::fs::remove_dir_all(&out);
        }
        other => panic!("unknown mode {other}"),
    }
}

/// A memory line of /proc/self/status (`VmHWM:` peak resident, `VmRSS:` resident now), GiB.
fn rss_gib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

fn tempfile_dir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("openwit-clip-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

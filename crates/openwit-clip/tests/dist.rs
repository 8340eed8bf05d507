//! Data parallel on c10d with Gloo, one real process per rank (issue 19, reqs 3 and 6).
//!
//! - N = 2 and 4 processes with batch b take the same steps as one process with batch N x b:
//!   the same loss (<= 1e-5) and the same parameters after 3 AdamW steps (<= 1e-4, fp32). The
//!   gradients are all-reduced in 64 KiB buckets during the backward pass: in every step, buckets
//!   start before the last gradient is ready. With
//!   `local_loss`, the same loss, and the parameters of OpenCLIP's `local_loss` objective
//!   (each rank's rows against every column, the other ranks' features constants) computed in
//!   one process. With contrastive accumulation (`accum_freq` 2), 2 ranks take the step of one
//!   process with 4 times the batch.
//! - A rank killed with `kill -9` makes the others end with exit code 1 and a message that names
//!   it, within the configured timeout.
//! - Data and checkpoints across ranks (req. 5): the ranks' loaders read disjoint samples, every
//!   sample once per epoch in all, and resample deterministically when there are fewer shards
//!   than ranks; a 2-rank training run with one rank killed by `kill -9` restarts from the last
//!   checkpoint with each rank's recorded position; that checkpoint resumed by 1 process, and
//!   the 1-process checkpoint by 2 ranks, continue at the recorded step with positions in samples.
//!
//! The ranks are this test binary run again (`rank_process`, which does nothing unless
//! `OPENWIT_DIST_CHILD` is set) with torchrun's variables, on loopback with a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openwit_clip::data::{Loader, LoaderConfig, Position, Share};
use openwit_clip::dist::{Dist, DistConfig, RankEnv};
use openwit_clip::loss::{clamp_logit_scale, clip_loss};
use openwit_clip::optim::{AdamW, AdamWConfig};
use openwit_clip::train::ResumeRule;
use openwit_clip::{Clip, Fwd, ModelConfig, Precision};
use tch::{Device, Kind, Tensor};

mod common;

/// The per-rank batch.
const B: i64 = 4;
const STEPS: usize = 3;
const LR: f64 = 1e-3;
const CLIP_NORM: f64 = 1.0;
const SEED: u64 = 7;
/// Micro-batches per step in the contrastive-accumulation case.
const ACCUM: usize = 2;
/// The gradient buckets' size in the equality runs.
const BUCKET_BYTES: usize = 64 << 10;

fn model_config() -> ModelConfig {
    ModelConfig::preset("tiny-vit").unwrap()
}

const FWD: Fwd = Fwd {
    precision: Precision::Fp32,
    train: true,
};

/// The global batch of `step` for a job of `world` ranks: images and tokens of world x B pairs,
/// the same on every rank (rank r trains on rows r*B .. (r+1)*B).
fn global_batch(cfg: &ModelConfig, world: i64, step: usize) -> (Tensor, Tensor) {
    let g = world * B;
    tch::manual_seed(1000 + step as i64);
    let s = cfg.vision.image_size();
    let ctx = cfg.text.context_length;
    let images = Tensor::randn([g, 3, s, s], (Kind::Float, Device::Cpu));
    let tokens = Tensor::randint(49000, [g, ctx], (Kind::Int64, Device::Cpu));
    // The end of text at a varying place (the pooled position is the largest id).
    let lens = Tensor::randint_low(2, ctx, [g], (Kind::Int64, Device::Cpu));
    let lens = Vec::<i64>::try_from(lens).unwrap();
    for (row, len) in lens.into_iter().enumerate() {
        let _ = tokens
            .get(row as i64)
            .get(len)
            .fill_(openwit_clip::tokenizer::EOT);
    }
    (images, tokens)
}

/// Parameters after STEPS steps plus the losses and the all-reduce's overlap figures, as one
/// safetensors file.
fn save(path: &Path, model: &Clip, losses: &[f64], overlap: &[f64]) {
    let mut named: Vec<(String, Tensor)> = model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.detach().copy()))
        .collect();
    named.push(("__loss".into(), Tensor::from_slice(losses)));
    named.push(("__overlap".into(), Tensor::from_slice(overlap)));
    Tensor::write_safetensors(&named, path).unwrap();
}

/// One step of the reference: one process, the whole global batch. With `local_loss`, the
/// objective OpenCLIP's `local_loss` (without `gather_with_grad`) optimizes: the mean over the
/// ranks of each rank's rows against every column, the other ranks' features constants.
fn reference_loss(model: &Clip, world: i64, step: usize, local_loss: bool) -> (Tensor, f64) {
    let cfg = model_config();
    let (images, tokens) = global_batch(&cfg, world, step);
    let (i, t, s) = model.forward(&images, &tokens, FWD);
    let full = clip_loss(&i, &t, &s);
    let value = full.double_value(&[]);
    if !local_loss {
        return (full, value);
    }
    let own = |x: &Tensor, r: i64| {
        let parts: Vec<Tensor> = (0..world)
            .map(|q| {
                let slice = x.narrow(0, q * B, B);
                if q == r { slice } else { slice.detach() }
            })
            .collect();
        Tensor::cat(&parts, 0)
    };
    let mut sum: Option<Tensor> = None;
    for r in 0..world {
        let (ir, tr) = (own(&i, r), own(&t, r));
        let rows_i = ir.narrow(0, r * B, B);
        let rows_t = tr.narrow(0, r * B, B);
        let labels = Tensor::arange(B, (Kind::Int64, Device::Cpu)) + r * B;
        let li = (&s * rows_i.matmul(&tr.tr())).cross_entropy_for_logits(&labels);
        let lt = (&s * rows_t.matmul(&ir.tr())).cross_entropy_for_logits(&labels);
        let l = (li + lt) / 2.0;
        sum = Some(match sum {
            Some(x) => x + l,
            None => l,
        });
    }
    (sum.unwrap() / world as f64, value)
}

fn reference(world: i64, local_loss: bool) -> (Clip, Vec<f64>) {
    let model = Clip::new_seeded(&model_config(), Device::Cpu, SEED);
    let mut opt = AdamW::new(model.named_parameters(), AdamWConfig::default());
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let (loss, value) = reference_loss(&model, world, step, local_loss);
        loss.backward();
        let _ = opt.step(LR, CLIP_NORM, 1.0);
        clamp_logit_scale(&model.logit_scale);
        opt.zero_grad();
        losses.push(value);
    }
    (model, losses)
}

/// A rank: run by the parent tests only (`OPENWIT_DIST_CHILD` = `equal`, `equal-local`,
/// `equal-accum`, `equal-accum-ckpt`, `train` or `fault`; the output folder in `OPENWIT_DIST_OUT`).
#[test]
fn rank_process() {
    let Ok(mode) = std::env::var("OPENWIT_DIST_CHILD") else {
        return;
    };
    let out = PathBuf::from(std::env::var("OPENWIT_DIST_OUT").unwrap());
    tch::set_num_threads(1);
    let env = RankEnv::from_env()
        .unwrap()
        .expect("the parent sets the ranks");
    let timeout: f64 = std::env::var("OPENWIT_DIST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dcfg = DistConfig {
        timeout: Duration::from_secs_f64(timeout),
        local_loss: mode == "equal-local",
        // Small buckets: many of them, rebuilt after the first step, started while the
        // backward pass still runs (the default 25 MiB would hold the whole tiny model).
        bucket_bytes: BUCKET_BYTES,
    };
    if mode == "train-json" {
        train_rank(&out, env.rank);
        return;
    }
    if mode == "train" || mode == "train-slow-eval" {
        // train-slow-eval: rank 0's held-out evaluation (every 2 steps and after the last) takes
        // 2.5 times the collective timeout.
        let slow = mode == "train-slow-eval";
        let cfg: openwit_clip::train::TrainConfig = serde_json::from_value(serde_json::json!({
            "model": "tiny-vit", "steps": 3, "batch_size": 8, "lr": 1e-3, "warmup": 1,
            "checkpoint_every": 3, "device": "cpu", "workers": 1, "shuffle_buffer": 16,
            "threads": 1, "dist_timeout": timeout, "eval_every": if slow { 2 } else { 0 },
        }))
        .unwrap();
        let slow_eval = |_: &Clip| -> openwit_clip::Result<serde_json::Value> {
            std::thread::sleep(Duration::from_secs_f64(2.5 * timeout));
            Ok(serde_json::json!({"slept_s": 2.5 * timeout}))
        };
        let hooks = openwit_clip::train::Hooks {
            evaluate: slow.then_some(&slow_eval as _),
            ..Default::default()
        };
        let mut shards: Vec<PathBuf> = std::fs::read_dir(out.join("shards"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        shards.sort();
        openwit_clip::train::train(&cfg, shards, &out.join("run"), 3, &hooks).unwrap();
        return;
    }
    let d = Dist::init(&env, Device::Cpu, dcfg).unwrap();
    if mode == "fault" {
        let t = Tensor::ones([16], (Kind::Float, Device::Cpu));
        d.all_reduce_sum_(&t);
        std::fs::write(out.join(format!("ready-{}", env.rank)), b"").unwrap();
        // Until a rank is killed: then this process ends (exit code 1) from inside.
        loop {
            let t = Tensor::ones([16], (Kind::Float, Device::Cpu));
            d.all_reduce_sum_(&t);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let cfg = model_config();
    // A different initialization on every rank: the broadcast gives them rank 0's.
    let model = Clip::new_seeded(&cfg, Device::Cpu, SEED + env.rank as u64);
    let params = model.named_parameters();
    d.broadcast_params(&params);
    let sync = d.grad_sync(&params).unwrap();
    let mut opt = AdamW::new(model.named_parameters(), AdamWConfig::default());
    let world = env.world as i64;
    // Contrastive accumulation: ACCUM micro-batches of B per rank and step.
    let accum = if mode.starts_with("equal-accum") {
        ACCUM
    } else {
        1
    };
    // Activation checkpointing: each gradient pass is many backward passes (one per block).
    let checkpointed = mode == "equal-accum-ckpt";
    let mut losses = Vec::new();
    // Per step: the buckets all-reduced, and those started before the last gradient was ready.
    let mut overlap = Vec::new();
    for step in 0..STEPS {
        let (images, tokens) = global_batch(&cfg, world * accum as i64, step);
        // Rank r's micro-batch j: rows (r·k + j)·B, the order of accum's gathered cache.
        let first = env.rank as i64 * accum as i64 * B;
        let loss = openwit_clip::accum::accumulated_backward(
            &model,
            accum,
            &mut |j| {
                let at = first + j as i64 * B;
                Ok((images.narrow(0, at, B), tokens.narrow(0, at, B)))
            },
            FWD,
            checkpointed,
            Some(&sync),
        )
        .unwrap();
        losses.push(loss.double_value(&[]));
        let t = sync.timing();
        overlap.extend([t.launches.len() as f64, t.overlapped() as f64]);
        let _ = opt.step(LR, CLIP_NORM, 1.0);
        clamp_logit_scale(&model.logit_scale);
        opt.zero_grad();
    }
    save(
        &out.join(format!("rank-{}.safetensors", env.rank)),
        &model,
        &losses,
        &overlap,
    );
    drop(sync);
    d.finish();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `world` copies of this test binary, each running [`rank_process`] in `mode` as one rank
/// of a job that meets on a free loopback port, with `extra` environment variables set.
fn spawn_ranks(
    world: usize,
    mode: &str,
    out: &Path,
    timeout_s: f64,
    extra: &[(&str, String)],
) -> Vec<Child> {
    let port = free_port();
    let exe = std::env::current_exe().unwrap();
    (0..world)
        .map(|rank| {
            let mut c = Command::new(&exe);
            c.args(["--exact", "rank_process", "--nocapture", "--test-threads=1"])
                .env("OPENWIT_DIST_CHILD", mode)
                .env("OPENWIT_DIST_OUT", out)
                .env("OPENWIT_DIST_TIMEOUT", timeout_s.to_string())
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env_remove("SLURM_PROCID")
                .env_remove("OPENWIT_DIST_STEPS")
                .env_remove("OPENWIT_DIST_GATE")
                .envs(extra.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect()
}

/// Waits for every rank (a hang guard of `guard` each) and checks that each ended with exit
/// code 0.
fn all_succeed(children: &mut [Child], guard: Duration) {
    let world = children.len();
    for (r, c) in children.iter_mut().enumerate() {
        let (code, err) = wait_guarded(c, guard, &format!("rank {r}"));
        assert_eq!(code, 0, "rank {r} of {world} failed:\n{err}");
    }
}

/// Waits for a child, killing it (and failing) if it outlives `guard`: a hang guard only.
fn wait_guarded(child: &mut Child, guard: Duration, what: &str) -> (i32, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (status.code().unwrap_or(-1), err);
        }
        if start.elapsed() > guard {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still runs after {guard:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_equal(world: usize, local_loss: bool, accum: usize) {
    check_equal_mode(world, local_loss, accum, false)
}

fn check_equal_mode(world: usize, local_loss: bool, accum: usize, checkpointed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mode = match (local_loss, accum > 1, checkpointed) {
        (true, _, _) => "equal-local",
        (false, true, true) => "equal-accum-ckpt",
        (false, true, false) => "equal-accum",
        (false, false, _) => "equal",
    };
    let started = Instant::now();
    all_succeed(
        &mut spawn_ranks(world, mode, dir.path(), 60.0, &[]),
        Duration::from_secs(300),
    );
    eprintln!(
        "{world} ranks ({mode}): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (model, want_losses) = reference((world * accum) as i64, local_loss);
    let want: std::collections::HashMap<String, Tensor> =
        model.named_parameters().into_iter().collect();
    for r in 0..world {
        let got = common::read(&dir.path().join(format!("rank-{r}.safetensors")));
        let losses = Vec::<f64>::try_from(&got["__loss"]).unwrap();
        assert_eq!(losses.len(), STEPS);
        // The gradients were all-reduced during the backward pass, not after it: in every
        // step, some buckets' all-reduce started before the last gradient was ready.
        let overlap = Vec::<f64>::try_from(&got["__overlap"]).unwrap();
        for (step, o) in overlap.chunks(2).enumerate() {
            eprintln!(
                "{world} ranks ({mode}), rank {r}, step {step}: {} buckets, {} started before the last gradient",
                o[0], o[1]
            );
            assert!(
                o[0] > 1.0 && o[1] >= 1.0,
                "{world} ranks ({mode}), rank {r}, step {step}: {} buckets, {} started before the last gradient: the all-reduce did not overlap the backward pass",
                o[0],
                o[1]
            );
        }
        for (step, (a, b)) in losses.iter().zip(&want_losses).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5,
                "{world} ranks ({mode}), rank {r}, step {step}: loss {a} vs {b} in one process"
            );
        }
        let mut worst = (0.0f64, String::new());
        for (name, w) in &want {
            let d = (&got[name] - w).abs().max().double_value(&[]);
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
        eprintln!(
            "{world} ranks ({mode}), rank {r}: largest parameter difference {:.2e} ({})",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= 1e-4,
            "{world} ranks ({mode}), rank {r}: `{}` differs by {} from one process with batch {}",
            worst.1,
            worst.0,
            (world * accum) as i64 * B
        );
    }
    // The steps moved the parameters: the comparison is not between two initializations.
    let init = Clip::new_seeded(&model_config(), Device::Cpu, SEED);
    let moved = (&init.logit_scale - &want["logit_scale"])
        .abs()
        .double_value(&[])
        + (init.named_parameters()[1].1.shallow_clone() - &want[&init.named_parameters()[1].0])
            .abs()
            .max()
            .double_value(&[]);
    assert!(
        moved > 1e-5,
        "the reference steps did not move the parameters"
    );
}

#[test]
fn two_ranks_take_the_step_of_one_process_with_twice_the_batch() {
    check_equal(2, false, 1);
}

#[test]
fn four_ranks_take_the_step_of_one_process_with_four_times_the_batch() {
    check_equal(4, false, 1);
}

#[test]
fn local_loss_on_two_ranks_matches_its_objective_in_one_process() {
    check_equal(2, true, 1);
}

/// Contrastive accumulation across ranks: 2 ranks x 2 micro-batches of B take the step of one
/// process with a batch of 4·B (issue 19 req. 4 with req. 2).
#[test]
fn two_ranks_with_accum_freq_2_take_the_step_of_one_process_with_four_times_the_batch() {
    check_equal(2, false, ACCUM);
}

/// The same with activation checkpointing: the gradients arrive over many backward passes (one
/// per transformer block), and the all-reduce still sums them once per step.
#[test]
fn two_ranks_with_accum_freq_2_and_activation_checkpointing_take_the_same_step() {
    check_equal_mode(2, false, ACCUM, true);
}

/// A trained parameter that the loss never reaches: the step ends with an error that names it
/// (the all-reduce of its bucket can never start), not with a hang or the Reducer's indices.
#[test]
fn a_parameter_the_loss_does_not_reach_is_named() {
    let env = RankEnv {
        rank: 0,
        world: 1,
        local_rank: 0,
        master_addr: "127.0.0.1".into(),
        master_port: free_port(),
    };
    let dcfg = DistConfig {
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let d = Dist::init(&env, Device::Cpu, dcfg).unwrap();
    let cfg = model_config();
    let model = Clip::new_seeded(&cfg, Device::Cpu, SEED);
    let mut params = model.named_parameters();
    params.push((
        "adapter.unused".into(),
        Tensor::zeros([3], (Kind::Float, Device::Cpu)).set_requires_grad(true),
    ));
    let sync = d.grad_sync(&params).unwrap();
    let (images, tokens) = global_batch(&cfg, 1, 0);
    let err = openwit_clip::accum::accumulated_backward(
        &model,
        1,
        &mut |_| Ok((images.shallow_clone(), tokens.shallow_clone())),
        FWD,
        false,
        Some(&sync),
    )
    .unwrap_err()
    .to_string();
    eprintln!("{err}");
    assert!(err.contains("gave no gradient to adapter.unused;"), "{err}");
    drop(sync);
    d.finish();
}

/// kill -9 of rank `victim`: every other rank ends with exit code 1 and names it.
fn check_lost(world: usize, victim: usize) {
    let dir = tempfile::tempdir().unwrap();
    let timeout = 3.0;
    let mut children = spawn_ranks(world, "fault", dir.path(), timeout, &[]);
    let ready = dir.path().join(format!("ready-{victim}"));
    let start = Instant::now();
    while !ready.exists() {
        if let Some(s) = children[victim].try_wait().unwrap() {
            panic!("rank {victim} ended before the test killed it: {s}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the ranks never joined"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    children[victim].kill().unwrap();
    let _ = children[victim].wait();
    let killed = Instant::now();
    for (r, c) in children.iter_mut().enumerate() {
        if r == victim {
            continue;
        }
        let (code, err) = wait_guarded(c, Duration::from_secs(60), &format!("rank {r}"));
        eprintln!(
            "rank {r} ended {:.1} s after rank {victim} was killed (timeout {timeout} s)",
            killed.elapsed().as_secs_f64()
        );
        assert_eq!(code, 1, "rank {r}: exit code {code}, stderr:\n{err}");
        assert!(
            err.contains(&format!("lost rank {victim}")),
            "rank {r} does not name the lost rank {victim}:\n{err}"
        );
    }
}

#[test]
fn a_killed_rank_ends_the_others_with_exit_code_1() {
    check_lost(3, 1);
    check_lost(2, 0);
}

/// `train::train` on 2 ranks in `mode` (`train` or `train-slow-eval`) over generated shards,
/// both ranks ending with exit code 0; None (the test is skipped) without the tokenizer's
/// vocabulary outside CI.
fn train_two_ranks(mode: &str, timeout_s: f64) -> Option<tempfile::TempDir> {
    if openwit_clip::Tokenizer::default_vocab_path().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the vocabulary"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    openwit_clip::synth::write_shards(&dir.path().join("shards"), 2, 40, 40, 5).unwrap();
    all_succeed(
        &mut spawn_ranks(2, mode, dir.path(), timeout_s, &[]),
        Duration::from_secs(300),
    );
    Some(dir)
}

/// Rank 0 evaluates alone for longer than the collective timeout (a large held-out set): the
/// other rank waits for it on the store instead of failing at its next collective.
#[test]
fn a_rank_0_evaluation_longer_than_the_timeout_does_not_end_the_job() {
    let Some(dir) = train_two_ranks("train-slow-eval", 2.0) else {
        return;
    };
    let m0 = openwit_clip::train::read_metrics(&dir.path().join("run/metrics.jsonl")).unwrap();
    let evaluated: Vec<u64> = m0
        .iter()
        .filter(|m| m.eval.is_some())
        .map(|m| m.step)
        .collect();
    assert_eq!(
        evaluated,
        vec![1, 2],
        "steps 2 and 3 (0-based 1 and 2) are evaluated"
    );
}

/// The trainer itself (`train::train`) on 2 ranks: it joins from the variables, every rank logs
/// the same global loss, rank 0 alone writes the checkpoint.
#[test]
fn the_trainer_runs_on_two_ranks() {
    let Some(dir) = train_two_ranks("train", 60.0) else {
        return;
    };
    let run = dir.path().join("run");
    let m0 = openwit_clip::train::read_metrics(&run.join("metrics.jsonl")).unwrap();
    let m1 = openwit_clip::train::read_metrics(&run.join("rank-1/metrics.jsonl")).unwrap();
    assert_eq!(m0.len(), 3);
    assert_eq!(m1.len(), 3);
    for (a, b) in m0.iter().zip(&m1) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-6,
            "step {}: {} vs {}",
            a.step,
            a.loss,
            b.loss
        );
    }
    let ckpt = openwit_clip::train::latest_checkpoint(&run)
        .unwrap()
        .unwrap();
    assert_eq!(ckpt.1.step, 3);
}

/// Settings of [`train_rank`]'s runs: tiny-vit, per-rank batch 4, a checkpoint every 2 steps.
fn small_train_config(steps: u64, timeout: f64) -> openwit_clip::train::TrainConfig {
    serde_json::from_value(serde_json::json!({
        "model": "tiny-vit", "steps": steps, "batch_size": 4, "lr": 1e-3, "warmup": 1,
        "checkpoint_every": 2, "device": "cpu", "workers": 1, "shuffle_buffer": 8,
        "threads": 1, "dist_timeout": timeout, "prefetch": 2,
    }))
    .unwrap()
}

/// A training rank of [`kill_9_of_a_rank_then_resume_with_the_same_and_other_numbers_of_ranks`]:
/// `OPENWIT_DIST_STEPS` steps on `OUT/shards` into `OUT/run`, its summary into
/// `OUT/summary-RANK.json`. With `OPENWIT_DIST_GATE=R:K`, rank R stops after K steps (writes
/// `OUT/gate` and waits there for the parent's `kill -9`).
fn train_rank(out: &Path, rank: usize) {
    let steps: u64 = std::env::var("OPENWIT_DIST_STEPS")
        .unwrap()
        .parse()
        .unwrap();
    let timeout: f64 = std::env::var("OPENWIT_DIST_TIMEOUT")
        .unwrap()
        .parse()
        .unwrap();
    let gate: Option<(usize, u64)> = std::env::var("OPENWIT_DIST_GATE").ok().map(|g| {
        let (r, k) = g.split_once(':').unwrap();
        (r.parse().unwrap(), k.parse().unwrap())
    });
    let gate_file = out.join("gate");
    let status = move |done: u64, _: u64, _: &str| {
        if gate.is_some_and(|(r, k)| r == rank && k == done) {
            std::fs::write(&gate_file, b"").unwrap();
            loop {
                std::thread::park();
            }
        }
    };
    let hooks = openwit_clip::train::Hooks {
        status: &status,
        ..Default::default()
    };
    let summary = openwit_clip::train::train(
        &small_train_config(steps, timeout),
        shard_list(&out.join("shards")),
        &out.join("run"),
        3,
        &hooks,
    )
    .unwrap();
    std::fs::write(
        out.join(format!("summary-{rank}.json")),
        serde_json::to_vec(&summary).unwrap(),
    )
    .unwrap();
}

fn shard_list(dir: &Path) -> Vec<PathBuf> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    shards.sort();
    shards
}

/// [`spawn_ranks`] running [`train_rank`] to step `steps`; `gate` (`RANK:STEP`) makes that rank
/// stop after that step and wait for the parent's `kill -9`.
fn spawn_train_ranks(
    world: usize,
    out: &Path,
    timeout_s: f64,
    steps: u64,
    gate: Option<&str>,
) -> Vec<Child> {
    let mut env = vec![("OPENWIT_DIST_STEPS", steps.to_string())];
    env.extend(gate.map(|g| ("OPENWIT_DIST_GATE", g.to_string())));
    spawn_ranks(world, "train-json", out, timeout_s, &env)
}

/// Runs `world` training ranks to step `steps` and checks that every one succeeds.
fn train_ranks_to_the_end(world: usize, out: &Path, timeout: f64, steps: u64) {
    all_succeed(
        &mut spawn_train_ranks(world, out, timeout, steps, None),
        Duration::from_secs(300),
    );
}

fn pos(epoch: u64, sample: u64) -> Position {
    Position { epoch, sample }
}

fn summary(out: &Path, rank: usize) -> openwit_clip::train::TrainSummary {
    serde_json::from_slice(&std::fs::read(out.join(format!("summary-{rank}.json"))).unwrap())
        .unwrap()
}

/// Issue 19 req. 5 with the trainer on real ranks. 4 shards of 40 samples: with 2 ranks each
/// reads 80 per epoch, 4 per step, so every position below is in epoch 0.
#[test]
fn kill_9_of_a_rank_then_resume_with_the_same_and_other_numbers_of_ranks() {
    if !common::have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    openwit_clip::synth::write_shards(&out.join("shards"), 4, 40, 32, 5).unwrap();
    let run = out.join("run");
    let timeout = 15.0;

    // 1. Two ranks, 8 steps; rank 1 stops after its 5th step and is killed with kill -9: rank 0
    //    ends with exit code 1, the last checkpoint is step 4's.
    let mut children = spawn_train_ranks(2, out, timeout, 8, Some("1:5"));
    let start = Instant::now();
    while !out.join("gate").exists() {
        if let Some(s) = children[1].try_wait().unwrap() {
            let (_, err) = wait_guarded(&mut children[1], Duration::from_secs(1), "rank 1");
            panic!("rank 1 ended before the test killed it: {s}\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "rank 1 never reached its 5th step"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    children[1].kill().unwrap();
    let _ = children[1].wait();
    let (code, err) = wait_guarded(&mut children[0], Duration::from_secs(120), "rank 0");
    assert_eq!(code, 1, "rank 0: exit code {code}, stderr:\n{err}");
    assert!(err.contains("lost rank 1"), "rank 0:\n{err}");
    let (ckpt, state) = openwit_clip::train::latest_checkpoint(&run)
        .unwrap()
        .unwrap();
    assert_eq!(state.step, 4, "{}", ckpt.display());
    assert_eq!(state.world, 2);
    assert_eq!(state.positions, vec![pos(0, 16), pos(0, 16)]);
    assert_eq!(state.samples_seen, 32);

    // 2. The job started again: both ranks resume at step 4, each from its recorded position.
    train_ranks_to_the_end(2, out, timeout, 8);
    for r in 0..2 {
        let s = summary(out, r);
        assert_eq!(s.resumed_from, Some(4), "rank {r}");
        assert_eq!(
            s.resumed_at,
            Some((pos(0, 16), ResumeRule::SameRanks)),
            "rank {r}"
        );
        assert_eq!(s.samples_seen, 64, "rank {r}");
    }
    for m in ["metrics.jsonl", "rank-1/metrics.jsonl"] {
        let steps: Vec<u64> = openwit_clip::train::read_metrics(&run.join(m))
            .unwrap()
            .iter()
            .map(|m| m.step)
            .collect();
        assert_eq!(steps, (0..8).collect::<Vec<_>>(), "{m}: every step once");
    }
    let (_, state) = openwit_clip::train::latest_checkpoint(&run)
        .unwrap()
        .unwrap();
    assert_eq!(state.step, 8);
    assert_eq!(state.positions, vec![pos(0, 32), pos(0, 32)]);
    assert_eq!(state.samples_seen, 64);

    // 3. 2 ranks -> 1 process (this one): step 8, positions in samples: the 64 samples of epoch
    //    0 that the two ranks had read.
    let s = openwit_clip::train::train(
        &small_train_config(10, timeout),
        shard_list(&out.join("shards")),
        &run,
        3,
        &openwit_clip::train::Hooks::default(),
    )
    .unwrap();
    assert_eq!(s.resumed_from, Some(8));
    assert_eq!(s.resumed_at, Some((pos(0, 64), ResumeRule::Samples)));
    let (_, state) = openwit_clip::train::latest_checkpoint(&run)
        .unwrap()
        .unwrap();
    assert_eq!((state.step, state.world), (10, 1));
    assert_eq!(state.positions, vec![pos(0, 72)]);
    assert_eq!(state.samples_seen, 72);

    // 4. 1 process -> 2 ranks: 72 samples of epoch 0 read, 36 for each rank.
    train_ranks_to_the_end(2, out, timeout, 12);
    for r in 0..2 {
        let s = summary(out, r);
        assert_eq!(s.resumed_from, Some(10), "rank {r}");
        assert_eq!(
            s.resumed_at,
            Some((pos(0, 36), ResumeRule::Samples)),
            "rank {r}"
        );
    }
    let (_, state) = openwit_clip::train::latest_checkpoint(&run)
        .unwrap()
        .unwrap();
    assert_eq!((state.step, state.world), (12, 2));
    assert_eq!(state.positions, vec![pos(0, 44), pos(0, 44)]);
    assert_eq!(state.samples_seen, 88);
    let steps: Vec<u64> = openwit_clip::train::read_metrics(&run.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, (0..12).collect::<Vec<_>>(), "every step once");
}

/// Writes `shards` tars of `per_shard` samples whose caption is their key (`SHARD-I`), with a
/// tiny PNG each.
fn keyed_shards(dir: &Path, shards: usize, per_shard: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(8, 8, image::Rgb([9, 80, 200])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    (0..shards)
        .map(|s| {
            let path = dir.join(format!("{s:05}.tar"));
            let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
            for i in 0..per_shard {
                let key = format!("{s}-{i}");
                for (ext, data) in [("png", png.as_slice()), ("txt", key.as_bytes())] {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, format!("{key}.{ext}"), data).unwrap();
                }
            }
            b.finish().unwrap();
            path
        })
        .collect()
}

/// The keys rank `rank` of `world` reads, by epoch, for `epochs` epochs of `per_epoch` samples
/// (a multiple of the batch, 3), from `from`.
fn keys_by_epoch(
    shards: &[PathBuf],
    rank: usize,
    world: usize,
    epochs: usize,
    per_epoch: usize,
    seed: u64,
) -> Vec<Vec<String>> {
    let tok = std::sync::Arc::new(openwit_clip::Tokenizer::from_default().unwrap());
    let cfg = LoaderConfig {
        shards: shards.to_vec(),
        batch_size: 3,
        image_size: 8,
        context_length: 8,
        workers: 1,
        prefetch: 2,
        shuffle_buffer: 4,
        seed,
        train: true,
        pin_memory: None,
        held_out_percent: 0,
    };
    let mut loader = Loader::start_share(cfg, Share { rank, world }, tok, Position::default());
    let mut out = vec![Vec::new(); epochs];
    for _ in 0..epochs * per_epoch / 3 {
        let b = loader.next_batch().unwrap();
        // A batch ends at its position; with whole batches per epoch, in that epoch.
        let e = if b.position.sample == 0 {
            b.position.epoch - 1
        } else {
            b.position.epoch
        } as usize;
        out[e].extend(b.texts);
    }
    out
}

/// The ranks' loaders (the `Share` that `train` gives each rank): disjoint samples, all of them
/// once per epoch; with fewer shards than ranks, drawn with replacement, the same for a seed.
#[test]
fn ranks_read_disjoint_samples_or_resample_deterministically() {
    if !common::have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shards = keyed_shards(&dir.path().join("four"), 4, 6);
    let all: std::collections::BTreeSet<String> = (0..4)
        .flat_map(|s| (0..6).map(move |i| format!("{s}-{i}")))
        .collect();
    let a = keys_by_epoch(&shards, 0, 2, 2, 12, 5);
    let b = keys_by_epoch(&shards, 1, 2, 2, 12, 5);
    for e in 0..2 {
        let mut both: Vec<String> = a[e].iter().chain(&b[e]).cloned().collect();
        both.sort();
        let want: Vec<String> = all.iter().cloned().collect();
        assert_eq!(
            both, want,
            "epoch {e}: every sample once, on one of the ranks"
        );
    }
    assert_ne!(a[0], a[1], "each epoch has its own order");
    assert_eq!(a, keys_by_epoch(&shards, 0, 2, 2, 12, 5), "deterministic");

    // 2 shards, 3 ranks: each rank reads one drawn shard (6 samples) per epoch.
    let few = &shards[..2];
    let draws = |seed: u64| -> Vec<Vec<Vec<String>>> {
        (0..3)
            .map(|r| keys_by_epoch(few, r, 3, 4, 6, seed))
            .collect()
    };
    let d = draws(5);
    let mut shards_read = std::collections::BTreeSet::new();
    for (r, epochs) in d.iter().enumerate() {
        for (e, keys) in epochs.iter().enumerate() {
            let shard = keys[0].split('-').next().unwrap().to_string();
            let mut got = keys.clone();
            got.sort();
            let mut want: Vec<String> = (0..6).map(|i| format!("{shard}-{i}")).collect();
            want.sort();
            assert_eq!(got, want, "rank {r}, epoch {e}: one whole shard");
            shards_read.insert(shard);
        }
    }
    assert_eq!(shards_read.len(), 2, "the draws reach both shards");
    assert_eq!(d, draws(5), "the same keys for the same seed");
}

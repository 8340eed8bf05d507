//! `kill -9` during training and a rerun continue from the last checkpoint, with the loss curve
//! continuing (no step missing or repeated, the same losses as an uninterrupted run); with bf16
//! AdamW moments a stopped run resumes bit for bit, and a checkpoint with fp32 moments resumes
//! under bf16 ones; and the `train` and `eval` stages run through the executor.

use std::path::Path;
use std::process::Command;

use openwit_clip::stage::{EvalConfig, EvalStage, TrainStage};
use openwit_clip::synth::{class_names, write_shards};
use openwit_clip::tokenizer::Tokenizer;
use openwit_clip::train::{Hooks, TrainConfig, read_metrics, train};
use openwit_core::PipelineSettings;
use openwit_exec::StageOutcome;
use openwit_testkit::executor;

const STEPS: u64 = 40;

fn config() -> TrainConfig {
    serde_json::from_value(serde_json::json!({
        "model": "tiny-vit",
        "steps": STEPS,
        "batch_size": 32,
        "lr": 1e-3,
        "warmup": 5,
        "checkpoint_every": 10,
        "device": "cpu",
        "workers": 2,
        "shuffle_buffer": 64,
        "threads": 1,
    }))
    .unwrap()
}

fn shards(dir: &Path) -> Vec<std::path::PathBuf> {
    write_shards(dir, 2, 150, 40, 5).unwrap()
}

fn have_vocab() -> bool {
    let ok = Tokenizer::default_vocab_path().is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have the vocabulary"
    );
    ok
}

/// The training process the parent kills (runs only when the parent sets the variable).
#[test]
fn child_training_process() {
    let Some(out) = std::env::var_os("OPENWIT_CLIP_CHILD_OUT") else {
        return;
    };
    let out = Path::new(&out);
    let _ = train(
        &config(),
        shards(&out.join("shards")),
        &out.join("run"),
        3,
        &Hooks::default(),
    );
}

#[test]
fn kill_9_then_rerun_continues_the_curve() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Uninterrupted reference run.
    let reference = dir.path().join("reference");
    train(
        &config(),
        shards(&dir.path().join("shards")),
        &reference,
        3,
        &Hooks::default(),
    )
    .unwrap();
    let want = read_metrics(&reference.join("metrics.jsonl")).unwrap();

    // A child process trains; once it has written the checkpoint of step 20, kill -9 it.
    let child_dir = dir.path().join("child");
    std::fs::create_dir_all(&child_dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_training_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("OPENWIT_CLIP_CHILD_OUT", &child_dir)
        .spawn()
        .unwrap();
    let ckpt = child_dir.join("run/checkpoints/step-00000020/state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    while !ckpt.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the training child exited early: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after 900 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = read_metrics(&child_dir.join("run/metrics.jsonl")).unwrap();
    assert!(
        before.len() >= 20 && (before.len() as u64) < STEPS,
        "{} steps before the kill",
        before.len()
    );

    // Rerun in this process: resumes from the newest checkpoint and finishes.
    let s = train(
        &config(),
        shards(&child_dir.join("shards")),
        &child_dir.join("run"),
        3,
        &Hooks::default(),
    )
    .unwrap();
    let resumed = s.resumed_from.expect("the rerun must resume");
    assert!(resumed >= 20, "resumed from {resumed}");
    let got = read_metrics(&child_dir.join("run/metrics.jsonl")).unwrap();
    let steps: Vec<u64> = got.iter().map(|m| m.step).collect();
    assert_eq!(
        steps,
        (0..STEPS).collect::<Vec<_>>(),
        "every step exactly once"
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.loss - w.loss).abs() < 1e-3 * w.loss.abs().max(1.0),
            "step {}: loss {} after resume, {} uninterrupted",
            g.step,
            g.loss,
            w.loss
        );
    }
    assert!(
        !child_dir
            .join("run/checkpoints")
            .read_dir()
            .unwrap()
            .any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
    );
}

/// The model and optimizer state of a run's checkpoint at `step`, by name.
fn checkpoint(run: &Path, step: u64) -> Vec<(String, tch::Tensor)> {
    let d = run.join(format!("checkpoints/step-{step:08}"));
    let mut t = tch::Tensor::read_safetensors(d.join("model.safetensors")).unwrap();
    for (n, x) in tch::Tensor::read_safetensors(d.join("optimizer.safetensors")).unwrap() {
        t.push((format!("optimizer.{n}"), x));
    }
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn bf16_moments_resume_bit_for_bit_and_fp32_ones_convert() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tars = shards(&dir.path().join("shards"));
    let mut cfg = config();
    cfg.steps = 20;
    cfg.adam_moments = "bf16".into();
    let stop_at_10 = Hooks {
        stop_after: Some(10),
        ..Hooks::default()
    };
    // Uninterrupted.
    let reference = dir.path().join("reference");
    train(&cfg, tars.clone(), &reference, 3, &Hooks::default()).unwrap();
    let want = checkpoint(&reference, 20);
    assert_eq!(
        want.iter()
            .find(|(n, _)| n == "optimizer.exp_avg_sq")
            .unwrap()
            .1
            .kind(),
        tch::Kind::BFloat16
    );
    // Stopped after the checkpoint of step 10, then rerun.
    let run = dir.path().join("run");
    assert!(train(&cfg, tars.clone(), &run, 3, &stop_at_10).is_err());
    let s = train(&cfg, tars.clone(), &run, 3, &Hooks::default()).unwrap();
    assert_eq!(s.resumed_from, Some(10));
    let got = checkpoint(&run, 20);
    assert_eq!(
        got.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        want.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((n, g), (_, w)) in got.iter().zip(&want) {
        assert!(g.equal(w), "{n} differs after the resume");
    }
    let losses = |r: &Path| -> Vec<f64> {
        read_metrics(&r.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|m| m.loss)
            .collect()
    };
    assert_eq!(losses(&run), losses(&reference));

    // A checkpoint with fp32 moments resumes with bf16 ones (converted): the run finishes.
    let mixed = dir.path().join("mixed");
    let mut fp32 = cfg.clone();
    fp32.adam_moments = "fp32".into();
    assert!(train(&fp32, tars.clone(), &mixed, 3, &stop_at_10).is_err());
    let ten = checkpoint(&mixed, 10);
    let kind = |t: &[(String, tch::Tensor)]| {
        t.iter()
            .find(|(n, _)| n == "optimizer.exp_avg")
            .unwrap()
            .1
            .kind()
    };
    assert_eq!(kind(&ten), tch::Kind::Float);
    let s = train(&cfg, tars, &mixed, 3, &Hooks::default()).unwrap();
    assert_eq!(s.resumed_from, Some(10));
    assert_eq!(kind(&checkpoint(&mixed, 20)), tch::Kind::BFloat16);
    assert_eq!(
        read_metrics(&mixed.join("metrics.jsonl")).unwrap().len(),
        20
    );
}

#[test]
fn train_and_eval_stages_run_in_the_executor() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_shards(&dir.path().join("shards"), 2, 100, 40, 11).unwrap();
    write_shards(&dir.path().join("heldout"), 1, 60, 40, 12).unwrap();
    let mut cfg = config();
    cfg.steps = 8;
    cfg.shards = vec!["shards/{00000..00001}.tar".into()];
    let settings = PipelineSettings::default();
    let train_stage = TrainStage::new(cfg, &settings, dir.path()).unwrap();
    let eval_cfg: EvalConfig = serde_json::from_value(serde_json::json!({
        "classes": class_names(),
        "shards": ["heldout"],
        "retrieval_shards": ["heldout/00000.tar"],
        "device": "cpu",
        "workers": 2,
    }))
    .unwrap();
    let eval_stage = EvalStage::new(eval_cfg, &settings, dir.path()).unwrap();
    let work = dir.path().join("work");
    let mut ex = executor(&work, 1);
    assert!(matches!(
        ex.run_stage(&train_stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    assert!(work.join("train/model.safetensors").exists());
    assert!(work.join("train/curves.svg").exists());
    assert_eq!(
        read_metrics(&work.join("train/metrics.jsonl"))
            .unwrap()
            .len(),
        8
    );
    assert!(matches!(
        ex.run_stage(&eval_stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("eval/results.json")).unwrap()).unwrap();
    assert_eq!(results["zero_shot"]["images"], 60);
    assert_eq!(results["retrieval"]["pairs"], 60);
    let table = std::fs::read_to_string(work.join("eval/results.txt")).unwrap();
    assert!(table.contains("top-1") && table.contains("R@10"), "{table}");
    assert_eq!(ex.run_stage(&train_stage).unwrap(), StageOutcome::UpToDate);

    // Labels from the captions, with given weights (no upstream stage) in another workdir: 4 of
    // the 6 caption templates name the class ("a red circle on the left"); the other 2 ("a
    // drawing of a circle coloured red", "the circle is red") name colour and shape apart, so
    // those samples are left out and counted.
    let mut expect_left_out = 0;
    openwit_clip::data::read_tar(
        &dir.path().join("heldout/00000.tar"),
        &mut openwit_core::Drops::default(),
        |s| {
            if s.text.starts_with("a drawing of") || s.text.starts_with("the ") {
                expect_left_out += 1;
            }
            true
        },
    );
    assert!(expect_left_out > 0);
    let caption_cfg: EvalConfig = serde_json::from_value(serde_json::json!({
        "classes": class_names(),
        "shards": ["heldout"],
        "labels": "caption",
        "weights": "work/train/model.safetensors",
        "model": "tiny-vit",
        "device": "cpu",
        "workers": 2,
    }))
    .unwrap();
    let caption_stage = EvalStage::new(caption_cfg, &settings, dir.path()).unwrap();
    let mut ex2 = executor(&dir.path().join("work2"), 1);
    assert!(matches!(
        ex2.run_stage(&caption_stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("work2/eval/results.json")).unwrap())
            .unwrap();
    assert_eq!(results["zero_shot"]["left_out"], expect_left_out);
    assert_eq!(results["zero_shot"]["images"], 60 - expect_left_out);
    let table = std::fs::read_to_string(dir.path().join("work2/eval/results.txt")).unwrap();
    assert!(
        table.contains(&format!("({expect_left_out} left out")),
        "{table}"
    );

    // A bad table is a configuration error naming the fix.
    let bad: EvalConfig =
        serde_json::from_value(serde_json::json!({"shards": ["heldout"]})).unwrap();
    let err = EvalStage::new(bad, &settings, dir.path()).err().unwrap();
    assert!(
        err.is_usage() && err.to_string().contains("classes"),
        "{err}"
    );
}

#[test]
fn training_measures_the_held_out_sets_every_eval_every_steps() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_shards(&dir.path().join("shards"), 1, 100, 40, 21).unwrap();
    write_shards(&dir.path().join("heldout"), 1, 50, 40, 22).unwrap();
    let mut cfg = config();
    cfg.steps = 7;
    cfg.eval_every = 3;
    cfg.shards = vec!["shards/00000.tar".into()];
    let settings = PipelineSettings::default();
    let eval_cfg: EvalConfig = serde_json::from_value(serde_json::json!({
        "classes": class_names(),
        "shards": ["heldout"],
        "retrieval_shards": ["heldout/00000.tar"],
        "device": "cpu",
        "workers": 2,
    }))
    .unwrap();
    let plain = TrainStage::new(cfg.clone(), &settings, dir.path()).unwrap();
    let stage = TrainStage::new(cfg, &settings, dir.path())
        .unwrap()
        .with_eval(eval_cfg.clone(), &settings)
        .unwrap();
    // what is measured is part of the stage's fingerprint
    use openwit_core::Stage;
    assert_ne!(plain.config(), stage.config());
    assert_eq!(stage.config()["eval_sets"]["shards"][0], "heldout");
    let work = dir.path().join("work");
    let mut ex = executor(&work, 1);
    assert!(matches!(
        ex.run_stage(&stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    let metrics = read_metrics(&work.join("train/metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 7);
    // after steps 3 and 6, and after the last (7)
    let evaluated: Vec<u64> = metrics
        .iter()
        .filter(|m| m.eval.is_some())
        .map(|m| m.step + 1)
        .collect();
    assert_eq!(evaluated, [3, 6, 7]);
    for m in metrics.iter().filter_map(|m| m.eval.as_ref()) {
        assert_eq!(m["zero_shot"]["images"], 50);
        let top1 = m["zero_shot"]["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1));
        assert_eq!(m["retrieval"]["pairs"], 50);
        let r5 = m["retrieval"]["image_to_text_r5"].as_f64().unwrap();
        let r10 = m["retrieval"]["image_to_text_r10"].as_f64().unwrap();
        assert!(r5 <= r10 && r10 <= 1.0);
    }
    let svg = std::fs::read_to_string(work.join("train/curves.svg")).unwrap();
    assert!(svg.contains("held-out zero-shot top-1"), "{svg}");

    // The held-out sets were decoded at the first evaluation and kept for the next ones
    // (`keep_decoded_mib`); read and decoded at every evaluation instead, they measure the same.
    let mut cfg = config();
    cfg.steps = 7;
    cfg.eval_every = 3;
    cfg.shards = vec!["shards/00000.tar".into()];
    let mut every_time = eval_cfg.clone();
    every_time.keep_decoded_mib = 0;
    let stage = TrainStage::new(cfg, &settings, dir.path())
        .unwrap()
        .with_eval(every_time, &settings)
        .unwrap();
    let work2 = dir.path().join("work2");
    executor(&work2, 1).run_stage(&stage).unwrap();
    let again = read_metrics(&work2.join("train/metrics.jsonl")).unwrap();
    let evals = |m: &[openwit_clip::train::StepMetrics]| -> Vec<serde_json::Value> {
        m.iter().filter_map(|m| m.eval.clone()).collect()
    };
    assert_eq!(evals(&again), evals(&metrics));

    // [eval] with nothing held out (zero-shot on the download stage's shards) is refused
    let mut cfg = config();
    cfg.eval_every = 3;
    let own: EvalConfig = serde_json::from_value(serde_json::json!({
        "classes": class_names(),
        "device": "cpu",
    }))
    .unwrap();
    let err = TrainStage::new(cfg, &settings, dir.path())
        .unwrap()
        .with_eval(own, &settings)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("eval_every") && err.contains("held-out"),
        "{err}"
    );
}

#[test]
fn a_held_out_split_is_recorded_never_trained_on_and_measured() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tars = write_shards(&dir.path().join("shards"), 2, 60, 40, 31).unwrap();
    let mut cfg = config();
    cfg.steps = 4;
    cfg.held_out_percent = 25;
    cfg.shards = vec!["shards/{00000..00001}.tar".into()];
    let settings = PipelineSettings::default();
    let train_stage = TrainStage::new(cfg, &settings, dir.path()).unwrap();
    let work = dir.path().join("work");
    let mut ex = executor(&work, 1);
    assert!(matches!(
        ex.run_stage(&train_stage).unwrap(),
        StageOutcome::Ran { .. }
    ));
    // The split, by image, recorded in the workdir: every sample once, with its part.
    let mut want_held = std::collections::BTreeSet::new();
    let mut all = 0;
    for t in &tars {
        openwit_clip::data::read_tar(t, &mut openwit_core::Drops::default(), |s| {
            all += 1;
            if openwit_clip::data::held_out(&s.image, 25) {
                want_held.insert(s.key);
            }
            true
        });
    }
    assert!(!want_held.is_empty() && want_held.len() < all);
    let tsv = std::fs::read_to_string(work.join("train/split.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), all + 1);
    let held: std::collections::BTreeSet<String> = tsv
        .lines()
        .skip(1)
        .filter(|l| l.ends_with("\theld_out"))
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(held, want_held);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("train/split.json")).unwrap()).unwrap();
    assert_eq!(info["held_out"], want_held.len());
    // Training skipped them: the loader counted each held-out sample it passed over.
    let tj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("train/train.json")).unwrap()).unwrap();
    let skipped = tj["summary"]["drops"]["held_out"].as_u64().unwrap_or(0);
    assert!(skipped >= want_held.len() as u64, "{}", tj["summary"]);

    // eval on the same shards measures the held-out part, or another part when asked.
    for (part, want) in [
        ("held_out", want_held.len()),
        ("train", all - want_held.len()),
        ("all", all),
    ] {
        let eval_cfg: EvalConfig = serde_json::from_value(serde_json::json!({
            "classes": class_names(),
            "shards": ["shards"],
            "part": part,
            "weights": "work/train/model.safetensors",
            "model": "tiny-vit",
            "device": "cpu",
            "workers": 2,
        }))
        .unwrap();
        let eval_stage = EvalStage::new(eval_cfg, &settings, dir.path()).unwrap();
        // a workdir of its own holding the training run's split
        let w = dir.path().join(format!("work-{part}"));
        std::fs::create_dir_all(w.join("train")).unwrap();
        std::fs::copy(work.join("train/split.json"), w.join("train/split.json")).unwrap();
        let mut ex = executor(&w, 1);
        ex.run_stage(&eval_stage).unwrap();
        let results: serde_json::Value =
            serde_json::from_slice(&std::fs::read(w.join("eval/results.json")).unwrap()).unwrap();
        assert_eq!(results["zero_shot"]["images"], want, "{part}");
    }
}

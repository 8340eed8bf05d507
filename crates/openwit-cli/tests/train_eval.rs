//! `openwit train` and `openwit eval` through the real binary.
//!
//! With the `train` feature: a tiny CLIP trained on generated shards (12 classes: 4 colours x 3
//! shapes) reaches a zero-shot top-1 accuracy far above chance on 240 held-out images.
//! Without it: a pipeline with a `[train]` or `[eval]` table is refused with exit code 2 and a
//! message saying how to build the binary that has the stages.

use std::path::Path;
use std::process::{Command, Output};

fn openwit(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the openwit binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether CLIP's vocabulary is here; the training tests return early without it, except in
/// CI (`CI` set), where they fail.
#[cfg(feature = "train")]
fn have_vocab() -> bool {
    let ok = openwit_clip::Tokenizer::default_vocab_path().is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have CLIP's vocabulary (scripts/libtorch-env.sh sets OPENWIT_CLIP_VOCAB)"
    );
    ok
}

#[cfg(feature = "train")]
#[test]
fn train_then_eval_reaches_zero_shot_accuracy_far_above_chance() {
    use openwit_clip::synth::{class_names, write_shards};

    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_shards(&dir.path().join("shards"), 4, 500, 40, 1).unwrap();
    write_shards(&dir.path().join("heldout"), 1, 240, 40, 99).unwrap();
    let classes: Vec<String> = class_names().iter().map(|c| format!("\"{c}\"")).collect();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[pipeline]
workdir = "work"
seed = 0

[train]
model = "tiny-vit"
shards = ["shards/{{00000..00003}}.tar"]
steps = 300
batch_size = 64
lr = 2e-3
warmup = 10
checkpoint_every = 100
device = "cpu"
workers = 2
shuffle_buffer = 256

[eval]
classes = [{}]
shards = ["heldout"]
templates = ["a photo of a {{}}", "a {{}}"]
retrieval_shards = ["heldout/00000.tar"]
device = "cpu"
workers = 2
"#,
            classes.join(", ")
        ),
    )
    .unwrap();
    let p = pipeline.to_str().unwrap();

    let out = openwit(&["train", p], dir.path());
    assert!(
        out.status.success(),
        "openwit train failed\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("train: done") && stdout.contains("trained tiny-vit for 300 steps"),
        "{stdout}"
    );
    let work = dir.path().join("work");
    assert!(work.join("train/model.safetensors").is_file());
    assert!(work.join("train/curves.svg").is_file());

    let out = openwit(&["eval", p], dir.path());
    assert!(
        out.status.success(),
        "openwit eval failed\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("eval: done") && stdout.contains("zero-shot") && stdout.contains("R@1"),
        "{stdout}"
    );
    eprintln!("{stdout}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("eval/results.json")).unwrap()).unwrap();
    let zs = &results["zero_shot"];
    assert_eq!(zs["images"], 240, "{results}");
    assert_eq!(zs["classes"], 12, "{results}");
    // Chance is 1/12 = 8.3%. A model that learned only the colour (or only the shape) tops out
    // at 1/3 (or 1/4), so 40% needs both attributes bound to the right words; this run reaches
    // about 68% (about 60% in openwit-clip's tests/learns.rs, the same setup through the
    // library). A model that learned nothing reaches 40% (96 of 240) with probability far below
    // 1e-30 (binomial, p = 1/12: mean 20, sd 4.3).
    let top1 = zs["top1"].as_f64().unwrap();
    assert!(
        top1 >= 0.40,
        "zero-shot top-1 {top1} (chance 1/12)\n{stdout}"
    );
    assert_eq!(results["retrieval"]["pairs"], 240, "{results}");

    // Both stages are done: a rerun does nothing and says so.
    let out = openwit(&["run", p], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("train: up to date") && stdout.contains("eval: up to date"),
        "{stdout}"
    );
}

#[cfg(not(feature = "train"))]
#[test]
fn train_and_eval_tables_need_the_train_feature() {
    let dir = tempfile::tempdir().unwrap();
    for (table, body) in [
        ("train", "model = \"tiny-vit\"\nsteps = 10\n"),
        ("eval", "classes = [\"cat\", \"dog\"]\n"),
    ] {
        let pipeline = dir.path().join(format!("{table}.toml"));
        std::fs::write(
            &pipeline,
            format!("[pipeline]\nworkdir = \"work\"\n\n[{table}]\n{body}"),
        )
        .unwrap();
        let p = pipeline.to_str().unwrap();
        for args in [vec!["run", p], vec![table, p]] {
            let out = openwit(&args, dir.path());
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "{table}.toml:4:1: `[{table}]` needs the cargo feature `train`"
                )) && stderr.contains("--features train"),
                "{args:?}: {stderr}"
            );
            assert!(!stderr.contains("unknown table"), "{stderr}");
        }
        assert!(!dir.path().join("work").exists(), "nothing may run");
    }
}

/// Two shards of 40 samples and a pipeline (returned) that trains a tiny ViT for 3 steps on them
/// on the CPU, as two ranks do: its workdir `workdir`, `extra` a last line of `[train]`.
#[cfg(feature = "train")]
fn two_rank_setup(d: &Path, workdir: &str, extra: &str) -> std::path::PathBuf {
    openwit_clip::synth::write_shards(&d.join("shards"), 2, 40, 40, 3).unwrap();
    let pipeline = d.join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[pipeline]
workdir = "{workdir}"
seed = 0

[train]
model = "tiny-vit"
shards = ["shards"]
steps = 3
batch_size = 4
lr = 1e-3
warmup = 1
checkpoint_every = 3
device = "cpu"
workers = 1
threads = 1
shuffle_buffer = 16
dist_timeout = 60
{extra}
"#
        ),
    )
    .unwrap();
    pipeline
}

/// `openwit train --nproc 2` (issue 19 req. 7): two local ranks on the CPU with Gloo. Both ranks
/// train (the same global loss at every step, rank 1's metrics beside rank 0's), rank 0 alone
/// writes the checkpoint and records the stage done once, and a rerun has nothing to do.
#[cfg(feature = "train")]
#[test]
fn train_with_nproc_2_runs_two_ranks_and_records_the_stage_once() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipeline = two_rank_setup(dir.path(), "work", "accum_freq = 2");
    let p = pipeline.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = openwit(&["train", p, "--nproc", "2"], dir.path());
    eprintln!(
        "openwit train --nproc 2: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "openwit train --nproc 2 failed\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("train: done"), "{stdout}");
    assert!(stdout.contains("rank 1 of 2: trained 3 steps"), "{stdout}");
    let run = dir.path().join("work/train");
    let m0 = openwit_clip::train::read_metrics(&run.join("metrics.jsonl")).unwrap();
    let m1 = openwit_clip::train::read_metrics(&run.join("rank-1/metrics.jsonl")).unwrap();
    assert_eq!((m0.len(), m1.len()), (3, 3));
    for (a, b) in m0.iter().zip(&m1) {
        assert!((a.loss - b.loss).abs() <= 1e-6, "{} vs {}", a.loss, b.loss);
    }
    let ckpts: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ckpts, ["step-00000003"], "one checkpoint");
    assert!(run.join("model.safetensors").is_file());

    let out = openwit(&["status", "work", "--json"], dir.path());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<&serde_json::Value> = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stage"] == "train")
        .collect();
    assert_eq!(rows.len(), 1, "{status}");
    assert_eq!(rows[0]["state"], "done", "{status}");
    assert_eq!(rows[0]["tasks_done"], 1, "{status}");

    // Both ranks see the stage done: nothing to do, no rank waits for another.
    let out = openwit(&["train", p, "--nproc", "2"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("train: up to date") && stdout.contains("rank 1 of 2: nothing to do"),
        "{stdout}"
    );

    // --nproc belongs to `openwit train` alone.
    let out = openwit(&["run", p, "--nproc", "2"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// The ranks of a `train` task in a Slurm job step (issue 19 req. 7): `openwit submit --slurm`
/// gives the task `[train] ntasks` Slurm tasks and starts `openwit task train ... --index 0` on
/// each with `srun`. Here the two ranks are started as `srun` would (SLURM_PROCID, SLURM_NTASKS,
/// and MASTER_ADDR/MASTER_PORT for the rendezvous on loopback) on a shared workdir: rank 0 runs
/// and commits the task, rank 1 trains beside it and records nothing, the finish step records
/// the stage, and a rank started again finds the task committed.
#[cfg(feature = "train")]
#[test]
fn srun_ranks_of_a_train_task_train_together_and_commit_once() {
    if !have_vocab() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pipeline = two_rank_setup(d, "shared", "ntasks = 2");
    let p = pipeline.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let rank = |r: usize| {
        Command::new(env!("CARGO_BIN_EXE_openwit"))
            .args(["task", "train", p, "--index", "0", "--workdir", "shared"])
            .current_dir(d)
            .env("NO_COLOR", "1")
            .env("OPENWIT_LOCAL", d.join(format!("node-{r}")))
            .env("SLURM_PROCID", r.to_string())
            .env("SLURM_NTASKS", "2")
            .env("SLURM_LOCALID", r.to_string())
            .env("SLURM_JOB_NODELIST", "localhost")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env_remove("RANK")
            .env_remove("WORLD_SIZE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (r0, r1) = (rank(0), rank(1));
    let (o0, o1) = (
        r0.wait_with_output().unwrap(),
        r1.wait_with_output().unwrap(),
    );
    let (s0, s1) = (text(&o0.stdout), text(&o1.stdout));
    assert!(o0.status.success(), "rank 0\n{s0}\n{}", text(&o0.stderr));
    assert!(o1.status.success(), "rank 1\n{s1}\n{}", text(&o1.stderr));
    assert!(s0.contains("train task 0: committed"), "{s0}");
    assert!(s1.contains("rank 1 of 2: trained 3 steps"), "{s1}");
    // Rank 1 recorded nothing and left nothing in its node-local folder's work area.
    let work = d.join("node-1/work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "rank 1 left {left:?}");

    let out = openwit(&["task", "train", p, "--finish", "--workdir", "shared"], d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("train: done"));
    let out = openwit(&["status", "shared", "--json"], d);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let train = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "train")
        .cloned()
        .unwrap_or_default();
    assert_eq!(train["done"], true, "{status}");
    assert_eq!(train["committed"], 1, "{status}");

    // A rank started again (a requeued job step) finds the task committed.
    let again = rank(1).wait_with_output().unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("nothing to do, train task 0 is committed"),
        "{}",
        text(&again.stdout)
    );
}

//! Scale-out: `openwit submit` (Slurm job arrays, or Kubernetes manifests), `openwit task` (what a
//! job runs), `openwit gc`, and `openwit status`/`openwit run` on a shared workdir. The stages are
//! the same as under `openwit run`; only the executor differs ([`openwit_core::dist`]).
//!
//! How a submission proceeds: `submit` plans the first unfinished stage (its upstream stages are
//! done) and submits one array job of its uncommitted tasks plus a *finish* job that runs after
//! the whole array succeeded (`--dependency=afterok`). The finish job runs the stage's reduce
//! step, records the stage as done, and submits the next stage the same way: a stage's task
//! count is known only once its upstream stages are done. Each step is idempotent: a requeued or
//! duplicated job finds the commits already there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use openwit_core::{NoProgress, Reporter, Stage};
use openwit_exec::RunOptions;
use openwit_exec::dist::{self, DistExecutor, TaskOutcome};
use openwit_exec::store::Store;
use serde::{Deserialize, Serialize};

use crate::args::{CheckoutArgs, GcArgs, SubmitArgs, TaskArgs};
use crate::commands::prepare::{load, start_demo_site};
use crate::commands::summary::print_outcome;
use crate::pipeline::PipelineDoc;
use crate::slurm::{self, Job, shell_quote};
use crate::stages::StageEntry;

const SUBMISSION: &str = "_openwit/slurm/submission.json";

/// What `openwit submit` recorded, so the jobs can submit the next stages the same way.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submission {
    id: String,
    exe: String,
    pipeline: String,
    workdir: String,
    log_dir: String,
    sbatch: Vec<String>,
    created_at: f64,
}

/// The jobs submitted for one stage by one submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageJobs {
    stage: String,
    array: Option<String>,
    indices: String,
    finish: String,
}

fn jobs_prefix() -> &'static str {
    "_openwit/slurm/jobs/"
}

fn executor<'r>(
    doc: &PipelineDoc,
    jobs: Option<usize>,
    reporter: &'r dyn Reporter,
) -> Result<DistExecutor<'r>> {
    let settings = doc.pipeline();
    let store = Store::open(&settings.workdir.to_string_lossy())?;
    let jobs = jobs
        .or_else(|| {
            std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(if settings.jobs == 0 {
            RunOptions::default().jobs
        } else {
            settings.jobs
        });
    Ok(DistExecutor::new(
        store,
        dist::default_local_dir(),
        RunOptions {
            jobs,
            max_attempts: settings.max_attempts.max(1),
        },
        reporter,
    ))
}

/// A local workdir is made absolute (jobs start elsewhere); an S3 prefix is kept as it is.
fn absolute_workdir(w: &str) -> Result<String> {
    if openwit_exec::store::is_remote(w) {
        return Ok(w.to_string());
    }
    let p = Path::new(w);
    std::fs::create_dir_all(p).with_context(|| format!("workdir {w}"))?;
    Ok(std::fs::canonicalize(p)?.display().to_string())
}

fn find<'a>(
    stages: &'a [Arc<dyn Stage>],
    name: &str,
    pipeline: &Path,
) -> Result<&'a Arc<dyn Stage>> {
    stages.iter().find(|s| s.name() == name).ok_or_else(|| {
        openwit_core::Error::Config(format!(
            "{}: has no stage `{name}`; its stages: {}",
            pipeline.display(),
            stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()
    })
}

/// `openwit task STAGE PIPELINE --index N | --finish [--chain ID]`.
pub fn task(args: &TaskArgs, registry: &[StageEntry]) -> Result<()> {
    crate::logging::init(None, args.quiet, args.verbose, false);
    let (doc, stages) = load(&args.pipeline, args.workdir.as_deref(), None, registry)?;
    let stage = find(&stages, &args.stage, &args.pipeline)?;
    let _demo = start_demo_site(&doc)?;
    let ex = executor(&doc, args.jobs, &NoProgress)?;
    let name = stage.name();
    // A rank above 0 of a task that runs as several processes (`srun` started every rank of
    // the job step): it works beside rank 0, which runs and commits the task.
    if let Some(i) = args.index
        && let Some((rank, world)) = crate::commands::ranks::rank_of_many()
        && rank > 0
    {
        return crate::commands::ranks::follow_task(&ex, stage.as_ref(), &doc, i, rank, world);
    }
    if let Some(i) = args.index {
        let outcome = ex.run_task(stage.as_ref(), i)?;
        let what = match outcome {
            TaskOutcome::Committed => "committed",
            TaskOutcome::AlreadyCommitted => "already committed, nothing to do",
            TaskOutcome::LostRace => {
                "another attempt committed it first; this attempt's uploads were removed"
            }
        };
        println!("{name} task {i}: {what}");
        return Ok(());
    }
    let summary = ex.finish(stage.as_ref())?;
    println!("{name}: done");
    for line in summary.iter().flat_map(|s| s.lines()) {
        println!("  {line}");
    }
    if let Some(id) = &args.chain {
        chain_next(&ex, &stages, name, id)?;
    }
    Ok(())
}

/// After stage `done` finished: submit the next unfinished stage, once per submission.
fn chain_next(
    ex: &DistExecutor<'_>,
    stages: &[Arc<dyn Stage>],
    done: &str,
    id: &str,
) -> Result<()> {
    let store = ex.store();
    let Some(sub) = store.get(SUBMISSION)? else {
        bail!(
            "{}: no submission record; was this job started by `openwit submit`?",
            store.url()
        );
    };
    let sub: Submission = serde_json::from_slice(&sub)?;
    if sub.id != id {
        tracing::info!(current = %sub.id, mine = %id, "a newer submission took over; not chaining");
        return Ok(());
    }
    let pos = stages.iter().position(|s| s.name() == done).unwrap_or(0);
    for next in &stages[pos + 1..] {
        if ex.read_stage(next.name())?.is_some() {
            continue;
        }
        submit_stage(ex, &sub, next.as_ref())?;
        return Ok(());
    }
    println!("pipeline finished: every stage is done in {}", store.url());
    Ok(())
}

/// The sbatch options and the command prefix of a task that runs as `shape`: nothing for one
/// process; for several, one job step of that many Slurm tasks (with their GPUs) started by
/// `srun`, whose ranks meet at a port derived from the job id unless MASTER_PORT is set.
fn job_step(shape: openwit_core::TaskProcesses) -> (Vec<String>, &'static str) {
    if shape.processes <= 1 {
        return (Vec::new(), "");
    }
    let mut opts = vec![format!("--ntasks={}", shape.processes)];
    if shape.gpus_each > 0 {
        opts.push(format!("--gpus-per-task={}", shape.gpus_each));
    }
    (
        opts,
        "export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}; srun --kill-on-bad-exit=1 ",
    )
}

/// Plans `stage` and submits its uncommitted tasks as an array plus its finish job, unless this
/// submission already did (a requeued finish job).
fn submit_stage(ex: &DistExecutor<'_>, sub: &Submission, stage: &dyn Stage) -> Result<()> {
    let store = ex.store();
    let name = stage.name();
    let claim = format!("{}{}/{name}.claim", jobs_prefix(), sub.id);
    if !store.put_if_absent(&claim, Vec::new())? {
        tracing::info!(stage = name, "already submitted by this submission");
        return Ok(());
    }
    ex.plan(stage)?;
    let progress = ex.progress(name)?;
    let indices: Vec<usize> = progress.missing.iter().map(|(i, _)| *i).collect();
    let base = format!(
        "{} task {} {} --workdir {}",
        shell_quote(&sub.exe),
        shell_quote(name),
        shell_quote(&sub.pipeline),
        shell_quote(&sub.workdir)
    );
    let output = Some(format!("{}/%x-%A_%a.out", sub.log_dir));
    // A task that runs as several processes (the ranks of a data-parallel `train` task): one
    // job step of that many Slurm tasks with their GPUs, started by `srun`; the rendezvous port
    // is derived from the job id unless MASTER_PORT is set.
    let (extra, launch) = job_step(stage.task_processes());
    let mut user = sub.sbatch.clone();
    user.extend(extra);
    // Array indices must stay below Slurm's MaxArraySize (1001 by default): one array job per
    // block of task indices, each element adding its block's offset.
    let mut arrays = Vec::new();
    for (offset, block) in slurm::blocks(&indices, slurm::max_array_size()) {
        arrays.push(slurm::sbatch(&Job {
            name: format!("openwit-{name}"),
            array: Some(slurm::array_spec(&block)),
            after_ok: vec![],
            command: format!("{launch}{base} --index $((SLURM_ARRAY_TASK_ID + {offset}))"),
            output: output.clone(),
            user: user.clone(),
        })?);
    }
    let array = (!arrays.is_empty()).then(|| arrays.join(","));
    let finish = slurm::sbatch(&Job {
        name: format!("openwit-{name}-finish"),
        array: None,
        after_ok: arrays.clone(),
        command: format!("{base} --finish --chain {}", shell_quote(&sub.id)),
        output,
        user: sub.sbatch.clone(),
    })?;
    let rec = StageJobs {
        stage: name.to_string(),
        array: array.clone(),
        indices: slurm::array_spec(&indices),
        finish: finish.clone(),
    };
    store.put(
        &format!("{}{}/{name}.json", jobs_prefix(), sub.id),
        serde_json::to_vec_pretty(&rec)?,
    )?;
    println!(
        "{name}: submitted {} task(s) of {} as job {}, finish step as job {finish}",
        indices.len(),
        progress.tasks_total,
        array.as_deref().unwrap_or("-"),
    );
    Ok(())
}

/// `openwit submit PIPELINE --slurm [--resume] [SBATCH OPTIONS]` (or `--k8s`).
pub fn submit(args: &SubmitArgs, registry: &[StageEntry]) -> Result<()> {
    crate::logging::init(None, args.quiet, args.verbose, false);
    let (mut doc, stages) = load(&args.pipeline, args.workdir.as_deref(), None, registry)?;
    let workdir = absolute_workdir(&doc.pipeline().workdir.to_string_lossy())?;
    doc.pipeline_mut().workdir = PathBuf::from(&workdir);
    let _demo = start_demo_site(&doc)?;
    let ex = executor(&doc, None, &NoProgress)?;
    let store = ex.store();

    // The first stage not done yet (every earlier one is: the pipeline is in order).
    let mut first = None;
    for s in &stages {
        match ex.read_stage(s.name())? {
            Some(_) => {
                // A changed configuration of a finished stage is refused, as by `openwit run`.
                ex.finish(s.as_ref())?;
            }
            None => {
                first = Some(s.clone());
                break;
            }
        }
    }
    let Some(first) = first else {
        println!(
            "nothing to do: all {} stage(s) are done in {workdir}",
            stages.len()
        );
        return Ok(());
    };
    if args.k8s {
        return k8s(&ex, &stages, first.as_ref(), args, &workdir);
    }
    let previous: Option<Submission> = match store.get(SUBMISSION)? {
        Some(b) => Some(serde_json::from_slice(&b)?),
        None => None,
    };
    if previous.is_some() && !args.resume {
        bail!(
            "{workdir} already has a submission ({}) that has not finished (stage `{}` is not \
             done); see `openwit status {workdir}`, then `openwit submit --resume` to submit \
             only what is missing",
            previous.as_ref().map(|p| p.id.as_str()).unwrap_or(""),
            first.name()
        );
    }
    if let Some(prev) = &previous {
        // Pending jobs of the old submission would chain on their own: cancel them.
        let mut ids = Vec::new();
        for e in store.list(&format!("{}{}/", jobs_prefix(), prev.id))? {
            if e.key.ends_with(".json")
                && let Some(b) = store.get(&e.key)?
                && let Ok(j) = serde_json::from_slice::<StageJobs>(&b)
            {
                ids.extend(
                    j.array
                        .iter()
                        .flat_map(|a| a.split(',').map(str::to_string)),
                );
                ids.push(j.finish);
            }
        }
        slurm::cancel_pending(&ids)?;
    }
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("openwit-slurm-logs"));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("log folder {}", log_dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the openwit binary's path")?;
    let sub = Submission {
        id: format!("{:x}", (openwit_core::clock::now() * 1e6) as u64),
        exe: exe.display().to_string(),
        pipeline: std::fs::canonicalize(&args.pipeline)?.display().to_string(),
        workdir: workdir.clone(),
        log_dir: std::fs::canonicalize(&log_dir)?.display().to_string(),
        sbatch: args.sbatch.clone(),
        created_at: openwit_core::clock::now(),
    };
    store.put(SUBMISSION, serde_json::to_vec_pretty(&sub)?)?;
    submit_stage(&ex, &sub, first.as_ref())?;
    println!(
        "submission {}: the later stages are submitted as each one finishes; follow with \
         `openwit status {workdir}`",
        sub.id
    );
    Ok(())
}

/// `--k8s`: an Indexed Job per stage that can be planned now (its upstream is done).
fn k8s(
    ex: &DistExecutor<'_>,
    stages: &[Arc<dyn Stage>],
    first: &dyn Stage,
    args: &SubmitArgs,
    workdir: &str,
) -> Result<()> {
    let plan = ex.plan(first)?;
    let name = first.name();
    let pipeline = args.pipeline.display().to_string();
    let cmd = |extra: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"exec openwit task {name} {pipeline} --workdir {workdir} {extra}\"]"
        )
    };
    println!(
        "# openwit {name}: {} task(s); apply, wait for the job, then apply the finish job.\n\
         # Later stages are planned once this one is done: run `openwit submit --k8s` again then.\n\
         # AWS_* credentials come from the secret `openwit-s3`.",
        plan.tasks.len()
    );
    for (job, completions, extra) in [
        (
            format!("openwit-{name}"),
            plan.tasks.len(),
            "--index $JOB_COMPLETION_INDEX",
        ),
        (format!("openwit-{name}-finish"), 1, "--finish"),
    ] {
        println!(
            "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {job}\nspec:\n  completions: {completions}\n  \
             parallelism: {completions}\n  completionMode: Indexed\n  backoffLimitPerIndex: 3\n  template:\n    spec:\n      \
             restartPolicy: Never\n      containers:\n      - name: openwit\n        image: {image}\n        \
             command: {cmd}\n        envFrom:\n        - secretRef:\n            name: openwit-s3",
            image = args.image,
            cmd = cmd(extra)
        );
    }
    let later: Vec<&str> = stages
        .iter()
        .map(|s| s.name())
        .skip_while(|n| *n != name)
        .skip(1)
        .collect();
    if !later.is_empty() {
        eprintln!(
            "later stages, planned when `{name}` is done: {}",
            later.join(", ")
        );
    }
    Ok(())
}

/// `openwit run` on an S3 workdir: the distributed executor in this one process.
pub fn run_remote(
    doc: &PipelineDoc,
    stages: &[Arc<dyn Stage>],
    only: Option<&str>,
    restart: bool,
    opts: RunOptions,
    progress: &dyn Reporter,
) -> Result<()> {
    if restart {
        bail!("--restart is not supported on an S3 workdir; use a new prefix");
    }
    let _demo = start_demo_site(doc)?;
    let store = Store::open(&doc.pipeline().workdir.to_string_lossy())?;
    let url = store.url().to_string();
    let ex = DistExecutor::new(store, dist::default_local_dir(), opts, progress);
    let mut ran_any = false;
    for stage in stages {
        if only.is_some_and(|o| o != stage.name()) {
            continue;
        }
        let t0 = std::time::Instant::now();
        ran_any |= print_outcome(stage.name(), ex.run_stage(stage.as_ref())?, t0, None);
    }
    if ran_any {
        println!("finished; see `openwit status {url}`");
    } else {
        println!("nothing to do: every stage is up to date in {url}");
    }
    Ok(())
}

/// Whether `workdir` is a shared workdir (S3, or a folder written by the distributed executor).
pub fn is_shared(workdir: &str) -> bool {
    openwit_exec::store::is_remote(workdir) || Path::new(workdir).join("_openwit/plans").is_dir()
}

/// `openwit status` of a shared workdir: read from the committed manifests.
pub fn status(workdir: &str, json: bool) -> Result<()> {
    let store = Store::open(workdir)?;
    let ex = DistExecutor::new(
        store,
        dist::default_local_dir(),
        RunOptions::default(),
        &NoProgress,
    );
    let mut plans = Vec::new();
    for e in ex.store().list("_openwit/plans/")? {
        let Some(name) = e
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some(p) = ex.read_plan(name)? {
            plans.push((p.created_at, name.to_string()));
        }
    }
    plans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rows = Vec::new();
    for (_, name) in &plans {
        rows.push(ex.progress(name)?);
    }
    let submission: Option<Submission> = match ex.store().get(SUBMISSION)? {
        Some(b) => serde_json::from_slice(&b).ok(),
        None => None,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "workdir": ex.store().url(),
                "submission": submission.as_ref().map(|s| &s.id),
                "stages": rows,
            }))?
        );
        return Ok(());
    }
    println!("workdir: {}", ex.store().url());
    if let Some(s) = &submission {
        println!("submission: {} (pipeline {})", s.id, s.pipeline);
    }
    println!(
        "{:<10} {:<10} {:>11} {:>12} {:>12}  drops",
        "stage", "state", "tasks", "items in", "items out"
    );
    for r in &rows {
        let state = if r.done {
            "done"
        } else if r.missing.is_empty() {
            "finishing"
        } else {
            "incomplete"
        };
        let drops = crate::commands::summary::fmt_drops(&r.drops);
        println!(
            "{:<10} {:<10} {:>11} {:>12} {:>12}  {drops}",
            r.stage,
            state,
            format!("{}/{}", r.committed, r.tasks_total),
            r.items_in,
            r.items_out
        );
        if !r.missing.is_empty() {
            let list: Vec<String> = r
                .missing
                .iter()
                .take(20)
                .map(|(i, id)| format!("{i} ({id})"))
                .collect();
            println!(
                "  missing {}: {}{}",
                r.missing.len(),
                list.join(", "),
                if r.missing.len() > 20 { ", ..." } else { "" }
            );
        }
    }
    if rows.is_empty() {
        println!("(no stage has been planned yet)");
    }
    Ok(())
}

/// `openwit gc WORKDIR`.
pub fn gc(args: &GcArgs) -> Result<()> {
    let store = Store::open(&args.workdir)?;
    let r = dist::gc(&store, args.grace, args.dry_run)?;
    println!(
        "{}{} object(s) of losing attempts, {} of stale attempts, {:.1} MiB; {} kept",
        if args.dry_run {
            "would remove "
        } else {
            "removed "
        },
        r.losers,
        r.stale,
        r.bytes as f64 / (1 << 20) as f64,
        r.kept
    );
    Ok(())
}

/// `openwit checkout WORKDIR DEST`.
pub fn checkout(args: &CheckoutArgs) -> Result<()> {
    let store = Store::open(&args.workdir)?;
    let ex = DistExecutor::new(
        store,
        dist::default_local_dir(),
        RunOptions::default(),
        &NoProgress,
    );
    let (n, bytes) = ex.checkout(&args.dest)?;
    println!(
        "copied {n} file(s), {:.1} MiB, into {}",
        bytes as f64 / (1 << 20) as f64,
        args.dest.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwit_core::TaskProcesses;

    #[test]
    fn a_task_of_several_processes_is_one_srun_job_step_with_their_gpus() {
        assert_eq!(job_step(TaskProcesses::default()), (Vec::new(), ""));
        let (opts, launch) = job_step(TaskProcesses {
            processes: 8,
            gpus_each: 1,
        });
        assert_eq!(opts, ["--ntasks=8", "--gpus-per-task=1"]);
        assert!(launch.contains("srun --kill-on-bad-exit=1 "), "{launch}");
        assert!(launch.contains("MASTER_PORT=${MASTER_PORT:-"), "{launch}");
        let (opts, _) = job_step(TaskProcesses {
            processes: 2,
            gpus_each: 0,
        });
        assert_eq!(opts, ["--ntasks=2"]);
        // As sbatch receives it: the user's options, then the step's, then the command.
        let job = Job {
            name: "openwit-train".into(),
            array: Some("0".into()),
            command: format!("{launch}openwit task train p.toml --index 0"),
            user: ["--partition=gpu".to_string()]
                .into_iter()
                .chain(opts)
                .collect(),
            ..Default::default()
        };
        let args = job.args();
        assert!(args.contains(&"--ntasks=2".to_string()), "{args:?}");
        assert!(
            args.last()
                .unwrap()
                .starts_with("--wrap=export MASTER_PORT="),
            "{args:?}"
        );
    }
}

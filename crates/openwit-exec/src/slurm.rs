//! Slurm: the chaining policy of `openwit submit --slurm` over the distributed executor's
//! store, and `sbatch`/`scancel` as child processes (the tools every Slurm install has; no
//! library, no accounting needed).
//!
//! How a submission proceeds: `submit` plans the first unfinished stage ([`first_unfinished`];
//! its upstream stages are done) and submits one array job of its uncommitted tasks plus a
//! *finish* job that runs after the whole array succeeded (`--dependency=afterok`). The finish job runs the stage's reduce
//! step, records the stage as done, and submits the next stage the same way ([`chain_next`]): a
//! stage's task count is known only once its upstream stages are done. Each step is
//! idempotent: a requeued or duplicated job finds the commits already there.
//!
//! Keys of the submission's records (relative to the store's root):
//!
//! ```text
//! _openwit/slurm/submission.json            the current submission (put; a newer one replaces it)
//! _openwit/slurm/jobs/<id>/<stage>.claim    this submission submitted the stage; put-if-absent
//! _openwit/slurm/jobs/<id>/<stage>.json     the job ids it submitted for the stage
//! ```

use std::process::Command;
use std::sync::Arc;

use openwit_core::{Error, Result, Stage, TaskProcesses};
use serde::{Deserialize, Serialize};

use crate::dist::DistExecutor;
use crate::store::Store;

/// The key of the current submission's record.
pub const SUBMISSION: &str = "_openwit/slurm/submission.json";
const JOBS_PREFIX: &str = "_openwit/slurm/jobs/";

/// What `openwit submit` recorded, so the jobs can submit the next stages the same way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub id: String,
    /// The `openwit` binary the jobs run.
    pub exe: String,
    pub pipeline: String,
    pub workdir: String,
    pub log_dir: String,
    /// The user's own sbatch options, passed as they are.
    pub sbatch: Vec<String>,
    pub created_at: f64,
}

/// The jobs submitted for one stage by one submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageJobs {
    stage: String,
    array: Option<String>,
    indices: String,
    finish: String,
}

fn stage_error(e: impl std::fmt::Display) -> Error {
    Error::Stage(e.to_string())
}

/// The current submission of the store's workdir, if any.
pub fn read_submission(store: &Store) -> Result<Option<Submission>> {
    match store.get(SUBMISSION)? {
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(stage_error),
        None => Ok(None),
    }
}

/// Records a new submission (made now) as the store's current one.
pub fn new_submission(
    store: &Store,
    exe: String,
    pipeline: String,
    workdir: String,
    log_dir: String,
    sbatch: Vec<String>,
) -> Result<Submission> {
    let now = openwit_core::clock::now();
    let sub = Submission {
        id: format!("{:x}", (now * 1e6) as u64),
        exe,
        pipeline,
        workdir,
        log_dir,
        sbatch,
        created_at: now,
    };
    store.put(
        SUBMISSION,
        serde_json::to_vec_pretty(&sub).map_err(stage_error)?,
    )?;
    Ok(sub)
}

/// Cancels the still pending jobs of submission `prev` (they would chain on their own).
pub fn cancel_submission(store: &Store, prev: &Submission) -> Result<()> {
    let mut ids = Vec::new();
    for e in store.list(&format!("{JOBS_PREFIX}{}/", prev.id))? {
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
    cancel_pending(&ids)
}

/// What [`submit_stage`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// This submission had already submitted the stage (a requeued finish job).
    Already,
    /// The stage's uncommitted tasks went out as `array` (job ids, comma-separated; `None` when
    /// every task was committed) and its finish step as job `finish`.
    Jobs {
        stage: String,
        tasks: usize,
        total: usize,
        array: Option<String>,
        finish: String,
    },
}

impl std::fmt::Display for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Submitted::Already => f.write_str("already submitted by this submission"),
            Submitted::Jobs {
                stage,
                tasks,
                total,
                array,
                finish,
            } => write!(
                f,
                "{stage}: submitted {tasks} task(s) of {total} as job {}, finish step as job {finish}",
                array.as_deref().unwrap_or("-"),
            ),
        }
    }
}

/// What [`chain_next`] did after a stage finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chained {
    /// A newer submission took over; nothing was submitted.
    Superseded,
    /// The next unfinished stage was submitted (or had been already).
    Next(Submitted),
    /// Every stage is done.
    Finished,
}

/// Where a submission starts: the first stage of `stages` (in pipeline order) not done yet in
/// the executor's workdir, every earlier one being done; `None` when all are. A finished stage
/// whose configuration changed since is refused, as by `openwit run`.
pub fn first_unfinished(
    ex: &DistExecutor<'_>,
    stages: &[Arc<dyn Stage>],
) -> Result<Option<Arc<dyn Stage>>> {
    for s in stages {
        if ex.read_stage(s.name())?.is_none() {
            return Ok(Some(s.clone()));
        }
        ex.finish(s.as_ref())?;
    }
    Ok(None)
}

/// After stage `done` finished: submit the next unfinished stage of `stages`, once per
/// submission `id`.
pub fn chain_next(
    ex: &DistExecutor<'_>,
    stages: &[Arc<dyn Stage>],
    done: &str,
    id: &str,
) -> Result<Chained> {
    let store = ex.store();
    let Some(sub) = read_submission(store)? else {
        return Err(Error::Stage(format!(
            "{}: no submission record; was this job started by `openwit submit`?",
            store.url()
        )));
    };
    if sub.id != id {
        tracing::info!(current = %sub.id, mine = %id, "a newer submission took over; not chaining");
        return Ok(Chained::Superseded);
    }
    let pos = stages.iter().position(|s| s.name() == done).unwrap_or(0);
    for next in &stages[pos + 1..] {
        if ex.read_stage(next.name())?.is_some() {
            continue;
        }
        return submit_stage(ex, &sub, next.as_ref()).map(Chained::Next);
    }
    Ok(Chained::Finished)
}

/// The sbatch options and the command prefix of a task that runs as `shape`: nothing for one
/// process; for several, one job step of that many Slurm tasks (with their GPUs) started by
/// `srun`, whose ranks meet at a port derived from the job id unless MASTER_PORT is set.
pub fn job_step(shape: TaskProcesses) -> (Vec<String>, &'static str) {
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
pub fn submit_stage(
    ex: &DistExecutor<'_>,
    sub: &Submission,
    stage: &dyn Stage,
) -> Result<Submitted> {
    let store = ex.store();
    let name = stage.name();
    let claim = format!("{JOBS_PREFIX}{}/{name}.claim", sub.id);
    if !store.put_if_absent(&claim, Vec::new())? {
        tracing::info!(stage = name, "already submitted by this submission");
        return Ok(Submitted::Already);
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
    for (offset, block) in blocks(&indices, max_array_size()) {
        arrays.push(sbatch(&Job {
            name: format!("openwit-{name}"),
            array: Some(array_spec(&block)),
            after_ok: vec![],
            command: format!("{launch}{base} --index $((SLURM_ARRAY_TASK_ID + {offset}))"),
            output: output.clone(),
            user: user.clone(),
        })?);
    }
    let array = (!arrays.is_empty()).then(|| arrays.join(","));
    let finish = sbatch(&Job {
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
        indices: array_spec(&indices),
        finish: finish.clone(),
    };
    store.put(
        &format!("{JOBS_PREFIX}{}/{name}.json", sub.id),
        serde_json::to_vec_pretty(&rec).map_err(stage_error)?,
    )?;
    Ok(Submitted::Jobs {
        stage: name.to_string(),
        tasks: indices.len(),
        total: progress.tasks_total,
        array,
        finish,
    })
}

/// One `sbatch` submission.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub name: String,
    /// `--array` spec (`0-9,12`), if an array.
    pub array: Option<String>,
    /// Job ids this one runs after (all must succeed).
    pub after_ok: Vec<String>,
    /// The shell command the job runs.
    pub command: String,
    /// Where stdout/stderr go (a pattern with %x %A %a %j), unless `user` names --output.
    pub output: Option<String>,
    /// The user's own sbatch options, passed as they are.
    pub user: Vec<String>,
}

impl Job {
    /// The `sbatch` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", self.name),
        ];
        if let Some(spec) = &self.array {
            a.push(format!("--array={spec}"));
        }
        if !self.after_ok.is_empty() {
            a.push(format!("--dependency=afterok:{}", self.after_ok.join(":")));
            // A dependency that can never be met (a cancelled or failed task) cancels this job
            // instead of leaving it pending forever; `openwit submit --resume` takes over.
            a.push("--kill-on-invalid-dep=yes".into());
        }
        let user_output = self
            .user
            .iter()
            .any(|u| u == "-o" || u.starts_with("--output") || u.starts_with("-o"));
        if let (Some(o), false) = (&self.output, user_output) {
            a.push(format!("--output={o}"));
        }
        a.extend(self.user.iter().cloned());
        a.push(format!("--wrap={}", self.command));
        a
    }
}

/// Submits `job`; returns its job id.
pub fn sbatch(job: &Job) -> Result<String> {
    let args = job.args();
    let out = Command::new("sbatch").args(&args).output().map_err(|e| {
        Error::Stage(format!(
            "cannot run `sbatch`: is Slurm installed and on PATH (and SLURM_CONF set)?: {e}"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Stage(format!(
            "sbatch {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_job_id(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| Error::Stage(format!("sbatch printed no job id for {}", job.name)))
}

/// `--parsable` prints `jobid` or `jobid;cluster`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// Cancels the still pending parts of `ids` (running elements keep running: a duplicate of a
/// task is harmless, the first commit wins).
pub fn cancel_pending(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = Command::new("scancel")
        .arg("--state=PENDING")
        .args(ids)
        .output()
        .map_err(|e| Error::Stage(format!("cannot run `scancel`: {e}")))?;
    if !out.status.success() {
        // Jobs that ended long ago are unknown to Slurm; that is fine.
        tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr), "scancel");
    }
    Ok(())
}

/// An `--array` spec for sorted indices: runs collapsed (`0-3,7,9-10`).
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Slurm's `MaxArraySize` (array indices must be below it), from `scontrol show config`;
/// Slurm's default 1001 when it cannot be read.
pub fn max_array_size() -> usize {
    Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(1001)
}

/// Splits sorted task indices into blocks whose indices, minus the block's offset, are below
/// `max`: (offset, indices - offset).
pub fn blocks(indices: &[usize], max: usize) -> Vec<(usize, Vec<usize>)> {
    let max = max.max(1);
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in indices {
        let offset = i / max * max;
        match out.last_mut() {
            Some((o, b)) if *o == offset => b.push(i - offset),
            _ => out.push((offset, vec![i - offset])),
        }
    }
    out
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_starts_at_the_first_unfinished_stage() {
        use crate::status::tests::Toy;
        let scratch = tempfile::tempdir().unwrap();
        let ex = DistExecutor::new(
            Store::memory(),
            scratch.path().into(),
            Default::default(),
            &openwit_core::NoProgress,
        );
        let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(Toy("a", 0)), Arc::new(Toy("b", 0))];
        let first = |stages: &[Arc<dyn Stage>]| {
            first_unfinished(&ex, stages).map(|s| s.map(|s| s.name().to_string()))
        };
        assert_eq!(first(&stages).unwrap().as_deref(), Some("a"));
        ex.run_stage(stages[0].as_ref()).unwrap();
        assert_eq!(first(&stages).unwrap().as_deref(), Some("b"));
        // A finished stage whose configuration changed is refused.
        let changed: Vec<Arc<dyn Stage>> = vec![Arc::new(Toy("a", 1)), Arc::new(Toy("b", 0))];
        let e = first(&changed).unwrap_err().to_string();
        assert!(e.contains("`a`") && e.contains("version"), "{e}");
        ex.run_stage(stages[1].as_ref()).unwrap();
        assert_eq!(first(&stages).unwrap(), None);
    }

    #[test]
    fn array_specs_collapse_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(array_spec(&[5]), "5");
        assert_eq!(array_spec(&[]), "");
    }

    #[test]
    fn blocks_keep_indices_below_the_array_limit() {
        assert_eq!(
            blocks(&[0, 5, 999, 1000, 1001, 2500], 1000),
            vec![(0, vec![0, 5, 999]), (1000, vec![0, 1]), (2000, vec![500])]
        );
        assert!(blocks(&[], 1000).is_empty());
    }

    #[test]
    fn job_ids_are_parsed() {
        assert_eq!(parse_job_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_job_id("77;cluster\n").as_deref(), Some("77"));
        assert_eq!(parse_job_id("Submitted batch job 5"), None);
    }

    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain/path.toml", "with space", "it's", "$HOME", ""] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

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

    #[test]
    fn the_user_output_option_wins() {
        let mut j = Job {
            name: "n".into(),
            array: Some("0-2".into()),
            after_ok: vec!["1".into(), "2".into()],
            command: "true".into(),
            output: Some("/logs/%x-%A_%a.out".into()),
            user: vec![],
        };
        let a = j.args();
        assert!(a.contains(&"--dependency=afterok:1:2".to_string()));
        assert!(a.contains(&"--output=/logs/%x-%A_%a.out".to_string()));
        assert_eq!(a.last().unwrap(), "--wrap=true");
        j.user = vec!["--output=mine".into(), "--partition=cpu".into()];
        let a = j.args();
        assert!(!a.iter().any(|x| x.starts_with("--output=/logs")));
        assert!(a.contains(&"--partition=cpu".to_string()));
    }
}

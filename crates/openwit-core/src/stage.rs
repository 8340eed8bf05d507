//! The stage contract: a stage splits its work into tasks, each task writes its outputs through
//! a [`TaskContext`] (under temporary names), and the executor renames them into place and only
//! then records the task as done. A stage with a global reduction (a merge, a count over all
//! tasks) implements [`Stage::reduce`], which runs once every task is done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::pipeline_file::PipelineDoc;
use crate::progress::Reporter;
use crate::summary::RunSummary;
use crate::task::TaskRecord;

pub use crate::task::{Drops, REDUCE_TASK, TaskReport, TaskSpec};

/// What a stage can see while it plans or reduces. The executors (`openwit-exec`) build it with
/// [`StageContext::new`].
#[derive(Clone, Copy)]
pub struct StageContext<'a> {
    pub workdir: &'a Path,
    pub stage: &'a str,
    pub jobs: usize,
    pub(crate) upstream: &'a HashMap<String, Vec<TaskRecord>>,
    run: Option<&'a RunSummary>,
}

impl<'a> StageContext<'a> {
    /// The context of stage `stage` in `workdir`, run with `jobs` parallel jobs, reading the done
    /// tasks of its upstream stages (by stage name, in plan order) from `upstream`.
    pub fn new(
        workdir: &'a Path,
        stage: &'a str,
        jobs: usize,
        upstream: &'a HashMap<String, Vec<TaskRecord>>,
    ) -> Self {
        StageContext {
            workdir,
            stage,
            jobs,
            upstream,
            run: None,
        }
    }

    /// The same context with the run's summary (for a stage that asks for it:
    /// [`Stage::reads_run_summary`]).
    pub fn with_run_summary(self, run: Option<&'a RunSummary>) -> Self {
        StageContext { run, ..self }
    }

    /// This stage's output folder (`WORKDIR/<stage>`).
    pub fn stage_dir(&self) -> PathBuf {
        self.workdir.join(self.stage)
    }
    /// The done tasks of an upstream stage (declared in [`Stage::upstream`]), in plan order.
    pub fn upstream(&self, stage: &str) -> &[TaskRecord] {
        self.upstream.get(stage).map(Vec::as_slice).unwrap_or(&[])
    }
    /// The committed output paths (absolute) of an upstream stage, in plan order.
    pub fn upstream_outputs(&self, stage: &str) -> Vec<PathBuf> {
        upstream_paths(self.workdir, self.upstream(stage))
    }
    /// What the run did so far, per stage; `Some` only for a stage whose
    /// [`Stage::reads_run_summary`] is true.
    pub fn run_summary(&self) -> Option<&'a RunSummary> {
        self.run
    }
}

/// What an executor lends every task it runs: where progress goes, the shared tokio runtime
/// (made on first use) and the flag that asks tasks to stop.
#[derive(Clone, Copy)]
pub struct TaskEnv<'a> {
    pub reporter: &'a dyn Reporter,
    pub runtime: &'a OnceLock<tokio::runtime::Runtime>,
    pub cancel: &'a AtomicBool,
}

/// Each path once, where its first task put it: a reduce step may rewrite a task's output (the
/// download stage's run-wide dedup), and then both declare it.
pub fn upstream_paths(workdir: &Path, tasks: &[TaskRecord]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    tasks
        .iter()
        .flat_map(|t| t.outputs.iter())
        .filter(|o| seen.insert(o.as_str()))
        .map(|o| workdir.join(o))
        .collect()
}

/// What a task sees while it runs: where to write, how to report progress, the upstream
/// outputs, a tokio runtime for network work.
pub struct TaskContext<'a> {
    pub workdir: &'a Path,
    pub stage: &'a str,
    pub task: &'a str,
    pub attempt: u32,
    pub(crate) upstream: &'a HashMap<String, Vec<TaskRecord>>,
    run: Option<&'a RunSummary>,
    outputs: Mutex<Vec<(PathBuf, PathBuf)>>,
    reporter: &'a dyn Reporter,
    runtime: &'a OnceLock<tokio::runtime::Runtime>,
    cancel: &'a AtomicBool,
    jobs: usize,
}

impl<'a> TaskContext<'a> {
    /// The context of attempt `attempt` (from 1) of task `task` of the stage of `stage`.
    pub fn new(stage: &StageContext<'a>, task: &'a str, attempt: u32, env: TaskEnv<'a>) -> Self {
        TaskContext {
            workdir: stage.workdir,
            stage: stage.stage,
            task,
            attempt,
            upstream: stage.upstream,
            run: stage.run,
            outputs: Mutex::new(Vec::new()),
            reporter: env.reporter,
            runtime: env.runtime,
            cancel: env.cancel,
            jobs: stage.jobs,
        }
    }

    /// Hands the outputs declared so far to the executor, which commits or discards them:
    /// (temporary path, final path) in the order they were declared.
    pub fn take_outputs(&self) -> Vec<(PathBuf, PathBuf)> {
        std::mem::take(&mut *self.outputs.lock().unwrap())
    }

    /// What the run did so far, per stage; `Some` only for a stage whose
    /// [`Stage::reads_run_summary`] is true.
    pub fn run_summary(&self) -> Option<&'a RunSummary> {
        self.run
    }

    /// This stage's output folder (`WORKDIR/<stage>`).
    pub fn stage_dir(&self) -> PathBuf {
        self.workdir.join(self.stage)
    }

    /// Declares an output `rel` (relative to the stage folder; a file or a folder) and returns the
    /// temporary path to write it at. The executor fsyncs it and renames it to its final name
    /// when the task succeeds; a failed or killed task leaves only a temporary name that the next
    /// run removes.
    pub fn output_path(&self, rel: &str) -> Result<PathBuf> {
        let final_path = self.stage_dir().join(rel);
        if let Some(parent) = final_path.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Stage(format!("output name `{rel}` has no file name")))?;
        let temp = final_path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        crate::atomic::remove_any(&temp)?;
        let mut outs = self.outputs.lock().unwrap();
        outs.retain(|(_, f)| f != &final_path);
        outs.push((temp.clone(), final_path));
        Ok(temp)
    }

    /// Declares an output file and opens it for writing (buffered).
    pub fn create_output(&self, rel: &str) -> Result<std::io::BufWriter<std::fs::File>> {
        let p = self.output_path(rel)?;
        let f = std::fs::File::create(&p).at(&p)?;
        Ok(std::io::BufWriter::with_capacity(1 << 16, f))
    }

    /// A private scratch folder for this task, emptied at the start of each attempt.
    pub fn scratch_dir(&self) -> Result<PathBuf> {
        let d = self
            .workdir
            .join(".scratch")
            .join(self.stage)
            .join(sanitize(self.task));
        std::fs::create_dir_all(&d).at(&d)?;
        Ok(d)
    }

    /// The done tasks of an upstream stage.
    pub fn upstream(&self, stage: &str) -> &[TaskRecord] {
        self.upstream.get(stage).map(Vec::as_slice).unwrap_or(&[])
    }
    /// The committed output paths (absolute) of an upstream stage, in plan order.
    pub fn upstream_outputs(&self, stage: &str) -> Vec<PathBuf> {
        upstream_paths(self.workdir, self.upstream(stage))
    }

    /// Reports `n` more items processed (drives the progress bar's items/s).
    pub fn progress(&self, n: u64) {
        self.reporter.items(self.stage, n);
    }

    /// Reports step `done` of `total` of a task that runs in steps, with its latest figures
    /// (the progress bar then counts steps, with their ETA, instead of tasks).
    pub fn steps(&self, done: u64, total: u64, msg: &str) {
        self.reporter.steps(self.stage, done, total, msg);
    }

    /// A shared multi-threaded tokio runtime for network work (created on first use).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.jobs.max(1))
                .thread_name("openwit-io")
                .enable_all()
                .build()
                .expect("cannot start the tokio runtime")
        })
    }

    /// The number of parallel jobs the run was given.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Whether the run is being stopped; long tasks should check it and return an error.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Makes a task id safe as a file name.
pub fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A stage of the pipeline. Implementations are built from their typed config ([`FromConfig`]).
pub trait Stage: Send + Sync {
    /// The stage's name: its CLI subcommand, its pipeline table and its folder in the workdir.
    fn name(&self) -> &str;

    /// The stages whose committed outputs this stage reads.
    fn upstream(&self) -> Vec<String> {
        Vec::new()
    }

    /// The configuration its outputs depend on (fingerprinted; a change stops a rerun).
    /// Leave out settings that do not change outputs (concurrency, progress).
    fn config(&self) -> Value;

    /// Splits the work into tasks. Must be deterministic for the same config and inputs.
    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>>;

    /// Runs one task, writing outputs only through `ctx`.
    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> Result<TaskReport>;

    /// The global reduction, run once after every task is done, with the done tasks.
    fn reduce(&self, _ctx: &TaskContext<'_>, _tasks: &[TaskRecord]) -> Result<Option<TaskReport>> {
        Ok(None)
    }

    /// How many of its tasks may run at once (default: `--jobs`).
    fn max_parallel(&self, jobs: usize) -> usize {
        jobs
    }

    /// How each of its tasks runs on a cluster: one process (the default), or several that work
    /// together as one job step (the ranks of a data-parallel `train` task), with GPUs for each.
    /// `openwit submit --slurm` asks Slurm for that many tasks and GPUs per task and starts them
    /// with `srun`.
    fn task_processes(&self) -> TaskProcesses {
        TaskProcesses::default()
    }

    /// Whether the stage reads the run's summary ([`StageContext::run_summary`]), as the report
    /// does. Both executors then give it one: from the run state, or from the committed
    /// manifests.
    fn reads_run_summary(&self) -> bool {
        false
    }

    /// A short summary for people, printed when the stage finishes (e.g. entries per source).
    fn summary(&self, _ctx: &StageContext<'_>, _tasks: &[TaskRecord]) -> Option<String> {
        None
    }
}

/// The processes one task of a stage runs as on a cluster ([`Stage::task_processes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskProcesses {
    /// Processes of one task (Slurm's `--ntasks` of its job step); at least 1.
    pub processes: usize,
    /// GPUs for each of them (Slurm's `--gpus-per-task`); 0 asks for none.
    pub gpus_each: u32,
}

impl Default for TaskProcesses {
    fn default() -> Self {
        TaskProcesses {
            processes: 1,
            gpus_each: 0,
        }
    }
}

/// A list of stages, in pipeline order.
pub type StageList = Vec<Arc<dyn Stage>>;

/// How every stage is built: from its typed table of the pipeline file and the rest of the
/// file (the `[pipeline]` table, the folder of the file, which other tables are there). The
/// binary's stage registry builds each stage with [`build_stage`], so there is one way.
pub trait FromConfig: Stage + Sized + 'static {
    /// The stage's table in pipeline files (also its CLI subcommand and its folder).
    const TABLE: &'static str;
    /// The table's typed contents (unknown keys and wrong types are located errors).
    type Config: serde::de::DeserializeOwned;
    /// Builds the stage; relative paths of `cfg` resolve against [`PipelineDoc::base_dir`].
    fn from_config(cfg: Self::Config, doc: &PipelineDoc) -> Result<Self>;
}

/// Builds stage `S` from `doc`, or `None` when the file has no `[S::TABLE]`.
pub fn build_stage<S: FromConfig>(doc: &PipelineDoc) -> Result<Option<Arc<dyn Stage>>> {
    match doc.section::<S::Config>(S::TABLE)? {
        Some(cfg) => Ok(Some(Arc::new(S::from_config(cfg, doc)?))),
        None => Ok(None),
    }
}

//! The [`Executor`] trait, and the local executor ([`LocalExecutor`]): runs a stage's pending
//! tasks in parallel (bounded by `--jobs`), retries failed ones, commits each task's outputs
//! (fsync, rename) and only then records it as done.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::lock::WorkdirLock;
use crate::state::{RunState, Status, TaskRecord};
use openwit_core::atomic::{remove_any, remove_stray_temps, sync_dir, sync_tree};
use openwit_core::config::{changed_keys, fingerprint};
use openwit_core::error::{Error, IoContext, Result, panic_message};
use openwit_core::progress::Reporter;
use openwit_core::stage::{
    REDUCE_TASK, Stage, StageContext, TaskContext, TaskEnv, TaskReport, TaskSpec, sanitize,
};
use openwit_core::summary::{RunSummary, StageTotals};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tasks run at once (at least 1).
    pub jobs: usize,
    /// Attempts per task before the stage fails.
    pub max_attempts: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_attempts: 3,
        }
    }
}

/// What running a stage did.
#[derive(Debug, Clone, PartialEq)]
pub enum StageOutcome {
    /// Every task was already done with the same configuration; nothing ran.
    UpToDate,
    /// Tasks ran: `ran` of the stage's `total` tasks this time, and the reduce step if `reduced`.
    Ran {
        ran: usize,
        total: usize,
        reduced: bool,
        summary: Option<String>,
    },
}

/// What the CLI does with an executor, whichever runs the stages: the local one
/// ([`LocalExecutor`]) or the distributed one ([`crate::DistExecutor`]).
pub trait Executor {
    /// Runs one stage: plans, runs the tasks not done yet, reduces, records the outcome. Its
    /// upstream stages must be done.
    fn run_stage(&mut self, stage: &dyn Stage) -> Result<StageOutcome>;

    /// Discards the outputs and state of `from` and of every stage in `stages` downstream of it.
    /// Returns the stages reset.
    fn restart(&mut self, stages: &[Arc<dyn Stage>], from: &str) -> Result<Vec<String>>;

    /// The totals of stage `name` to print after it ran, where the executor keeps them at hand
    /// (the local run state); `None` otherwise.
    fn stage_totals(&self, name: &str) -> Result<Option<StageTotals>>;

    /// What the run did so far, per stage.
    fn run_summary(&self) -> Result<RunSummary>;

    /// The flag that asks running tasks to stop.
    fn cancel_flag(&self) -> Arc<AtomicBool>;

    /// Where the workdir is, for people: a folder or a store URL.
    fn location(&self) -> String;
}

/// Runs stages in one workdir, holding its lock.
pub struct LocalExecutor<'r> {
    workdir: PathBuf,
    state: RunState,
    opts: RunOptions,
    reporter: &'r dyn Reporter,
    cancel: Arc<AtomicBool>,
    _lock: WorkdirLock,
}

enum Msg {
    Started(String),
    Done {
        task: String,
        outputs: Vec<String>,
        report: TaskReport,
        elapsed: f64,
    },
    Failed {
        task: String,
        error: String,
        last: bool,
    },
}

impl<'r> LocalExecutor<'r> {
    /// Locks `workdir` and opens its run state.
    pub fn new(workdir: &Path, opts: RunOptions, reporter: &'r dyn Reporter) -> Result<Self> {
        let lock = WorkdirLock::acquire(workdir)?;
        let state = RunState::open(workdir)?;
        Ok(LocalExecutor {
            workdir: workdir.to_path_buf(),
            state,
            opts,
            reporter,
            cancel: Arc::new(AtomicBool::new(false)),
            _lock: lock,
        })
    }

    /// The flag that asks running tasks to stop.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The run state (read access for summaries).
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Discards the outputs and state of `from` and of every stage in `stages` downstream of it.
    /// Returns the stages reset.
    pub fn restart(&mut self, stages: &[Arc<dyn Stage>], from: &str) -> Result<Vec<String>> {
        let mut reset: Vec<String> = vec![from.to_string()];
        let mut changed = true;
        while changed {
            changed = false;
            for s in stages {
                let name = s.name().to_string();
                if !reset.contains(&name) && s.upstream().iter().any(|u| reset.contains(u)) {
                    reset.push(name);
                    changed = true;
                }
            }
        }
        for name in &reset {
            let dir = self.workdir.join(name);
            remove_any(&dir)?;
            remove_any(&self.workdir.join(".scratch").join(name))?;
            self.state.reset_stage(name)?;
            tracing::info!(stage = %name, "restart: discarded outputs and state");
        }
        sync_dir(&self.workdir)?;
        Ok(reset)
    }

    fn upstream_map(&self, stage: &dyn Stage) -> Result<HashMap<String, Vec<TaskRecord>>> {
        let upstream = stage.upstream();
        for u in &upstream {
            match self.state.stage(u)? {
                Some(rec) if rec.state == Status::Done => {}
                _ => {
                    return Err(Error::Stage(format!(
                        "stage `{}` reads the outputs of `{u}`, which has not finished in {}; \
                         run `openwit {u} PIPELINE.toml` (or `openwit run PIPELINE.toml`) first",
                        stage.name(),
                        self.workdir.display()
                    )));
                }
            }
        }
        self.state.done_tasks_of(&upstream)
    }

    /// Whether `stage` is done with its current configuration.
    pub fn is_up_to_date(&self, stage: &dyn Stage) -> Result<bool> {
        Ok(match self.state.stage(stage.name())? {
            Some(rec) => {
                rec.state == Status::Done && rec.fingerprint == fingerprint(&stage.config())
            }
            None => false,
        })
    }

    /// Runs one stage: plans, runs the tasks not done yet, reduces, records the outcome.
    pub fn run_stage(&mut self, stage: &dyn Stage) -> Result<StageOutcome> {
        let name = stage.name().to_string();
        let config = stage.config();
        let fp = fingerprint(&config);
        if let Some(rec) = self.state.stage(&name)? {
            if rec.fingerprint != fp {
                let keys = changed_keys(&rec.config, &config);
                return Err(Error::ConfigChanged {
                    stage: name,
                    keys: if keys.is_empty() {
                        "(unknown)".into()
                    } else {
                        keys.join(", ")
                    },
                });
            }
            if rec.state == Status::Done {
                return Ok(StageOutcome::UpToDate);
            }
        }
        let started = Instant::now();
        let upstream = self.upstream_map(stage)?;
        let stage_dir = self.workdir.join(&name);
        std::fs::create_dir_all(&stage_dir).at(&stage_dir)?;
        let stray = remove_stray_temps(&stage_dir)?;
        if stray > 0 {
            tracing::info!(stage = %name, stray, "removed partial outputs of an interrupted run");
        }
        remove_any(&self.workdir.join(".scratch").join(&name))?;

        let run = if stage.reads_run_summary() {
            Some(self.state.summary()?)
        } else {
            None
        };
        let plan = {
            let ctx = StageContext::new(&self.workdir, &name, self.opts.jobs, &upstream)
                .with_run_summary(run.as_ref());
            stage.plan(&ctx)?
        };
        let mut seen = HashSet::new();
        for t in &plan {
            if !seen.insert(t.id.as_str()) || t.id == REDUCE_TASK {
                return Err(Error::Stage(format!(
                    "stage `{name}` planned task id `{}` twice (a bug in the stage)",
                    t.id
                )));
            }
        }
        self.state.begin_stage(&name, &fp, &config, &plan)?;
        let records = self.state.tasks(&name)?;
        let done: HashSet<&str> = records
            .iter()
            .filter(|r| r.status == Status::Done && r.task != REDUCE_TASK)
            .map(|r| r.task.as_str())
            .collect();
        let pending: Vec<TaskSpec> = plan
            .iter()
            .filter(|t| !done.contains(t.id.as_str()))
            .cloned()
            .collect();
        tracing::info!(
            stage = %name,
            tasks = plan.len(),
            done = done.len(),
            pending = pending.len(),
            "stage started"
        );
        self.reporter
            .stage_started(&name, plan.len() as u64, done.len() as u64);

        let failures = self.run_tasks(stage, &name, &upstream, run.as_ref(), pending.clone());
        let failures = match failures {
            Ok(f) => f,
            Err(e) => {
                self.reporter.stage_finished(&name, false);
                let _ = self.state.finish_stage(
                    &name,
                    Status::Failed,
                    started.elapsed().as_secs_f64(),
                    Some(&e.to_string()),
                    None,
                );
                return Err(e);
            }
        };
        if let Some((task, error)) = failures.first() {
            let err = Error::TasksFailed {
                stage: name.clone(),
                failed: failures.len(),
                attempts: self.opts.max_attempts,
                task: task.clone(),
                error: error.clone(),
                hint: "fix the cause and rerun the same command: finished tasks are kept, only the failed ones run again".into(),
            };
            self.reporter.stage_finished(&name, false);
            self.state.finish_stage(
                &name,
                Status::Failed,
                started.elapsed().as_secs_f64(),
                Some(&err.to_string()),
                None,
            )?;
            return Err(err);
        }

        // The global reduction, once every task is done.
        let all: Vec<TaskRecord> = self.state.tasks(&name)?;
        let reduce_done = all
            .iter()
            .any(|t| t.task == REDUCE_TASK && t.status == Status::Done);
        let ran = pending.len();
        let mut reduced = false;
        if !reduce_done {
            let map_tasks: Vec<TaskRecord> = all
                .iter()
                .filter(|t| t.task != REDUCE_TASK)
                .cloned()
                .collect();
            if let Err(e) = self.run_reduce(stage, &name, &upstream, run.as_ref(), &map_tasks) {
                self.reporter.stage_finished(&name, false);
                self.state.finish_stage(
                    &name,
                    Status::Failed,
                    started.elapsed().as_secs_f64(),
                    Some(&e.to_string()),
                    None,
                )?;
                return Err(e);
            }
            if self
                .state
                .tasks(&name)?
                .iter()
                .any(|t| t.task == REDUCE_TASK)
            {
                reduced = true;
            }
        }
        let all = self.state.tasks(&name)?;
        let summary = {
            let ctx = StageContext::new(&self.workdir, &name, self.opts.jobs, &upstream)
                .with_run_summary(run.as_ref());
            stage.summary(&ctx, &all)
        };
        self.state.finish_stage(
            &name,
            Status::Done,
            started.elapsed().as_secs_f64(),
            None,
            summary.as_deref(),
        )?;
        self.reporter.stage_finished(&name, true);
        tracing::info!(stage = %name, ran, "stage done");
        Ok(StageOutcome::Ran {
            ran,
            total: plan.len(),
            reduced,
            summary,
        })
    }

    fn run_reduce(
        &mut self,
        stage: &dyn Stage,
        name: &str,
        upstream: &HashMap<String, Vec<TaskRecord>>,
        run: Option<&RunSummary>,
        tasks: &[TaskRecord],
    ) -> Result<()> {
        let runtime = OnceLock::new();
        let t0 = Instant::now();
        let mut last_err = None;
        let sctx =
            StageContext::new(&self.workdir, name, self.opts.jobs, upstream).with_run_summary(run);
        let env = TaskEnv {
            reporter: self.reporter,
            runtime: &runtime,
            cancel: &self.cancel,
        };
        for attempt in 1..=self.opts.max_attempts {
            let ctx = TaskContext::new(&sctx, REDUCE_TASK, attempt, env);
            let res = catch(|| stage.reduce(&ctx, tasks));
            match res {
                Ok(None) => {
                    discard(&ctx);
                    return Ok(());
                }
                Ok(Some(report)) => {
                    let outputs = commit_outputs(&self.workdir, &ctx)?;
                    self.state.task_started(name, REDUCE_TASK)?;
                    self.state.task_done(
                        name,
                        REDUCE_TASK,
                        &outputs,
                        &report,
                        t0.elapsed().as_secs_f64(),
                    )?;
                    return Ok(());
                }
                Err(e) => {
                    discard(&ctx);
                    tracing::warn!(stage = %name, attempt, error = %e, "reduce failed");
                    last_err = Some(e);
                }
            }
        }
        let e = last_err.expect("at least one attempt");
        Err(Error::TasksFailed {
            stage: name.to_string(),
            failed: 1,
            attempts: self.opts.max_attempts,
            task: REDUCE_TASK.into(),
            error: e,
            hint:
                "the stage's tasks are kept; fix the cause and rerun to redo only the reduce step"
                    .into(),
        })
    }

    /// Runs `pending` on a pool of workers; returns the tasks that failed every attempt.
    fn run_tasks(
        &mut self,
        stage: &dyn Stage,
        name: &str,
        upstream: &HashMap<String, Vec<TaskRecord>>,
        run: Option<&RunSummary>,
        pending: Vec<TaskSpec>,
    ) -> Result<Vec<(String, String)>> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let threads = stage.max_parallel(self.opts.jobs).clamp(1, pending.len());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("openwit-task-{i}"))
            .build()
            .map_err(|e| Error::Stage(format!("cannot start the worker pool: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let runtime = OnceLock::new();
        let workdir = self.workdir.clone();
        let max_attempts = self.opts.max_attempts;
        let reporter = self.reporter;
        let cancel = self.cancel.clone();
        let jobs = self.opts.jobs;
        let sctx = StageContext::new(&workdir, name, jobs, upstream).with_run_summary(run);
        let mut failures = Vec::new();
        let mut db_error: Option<Error> = None;
        std::thread::scope(|scope| {
            let workdir = &workdir;
            let sctx = &sctx;
            let env = TaskEnv {
                reporter,
                runtime: &runtime,
                cancel: &cancel,
            };
            scope.spawn(move || {
                pool.scope(|s| {
                    for task in pending {
                        let tx = tx.clone();
                        s.spawn(move |_| {
                            for attempt in 1..=max_attempts {
                                let _ = tx.send(Msg::Started(task.id.clone()));
                                let t0 = Instant::now();
                                let ctx = TaskContext::new(sctx, &task.id, attempt, env);
                                let scratch =
                                    workdir.join(".scratch").join(name).join(sanitize(&task.id));
                                let _ = remove_any(&scratch);
                                let res =
                                    catch(|| stage.run_task(&ctx, &task)).and_then(|report| {
                                        commit_outputs(workdir, &ctx)
                                            .map(|outs| (outs, report))
                                            .map_err(|e| e.to_string())
                                    });
                                let _ = remove_any(&scratch);
                                match res {
                                    Ok((outputs, report)) => {
                                        let _ = tx.send(Msg::Done {
                                            task: task.id.clone(),
                                            outputs,
                                            report,
                                            elapsed: t0.elapsed().as_secs_f64(),
                                        });
                                        return;
                                    }
                                    Err(error) => {
                                        discard(&ctx);
                                        let last = attempt == max_attempts;
                                        let _ = tx.send(Msg::Failed {
                                            task: task.id.clone(),
                                            error,
                                            last,
                                        });
                                    }
                                }
                            }
                        });
                    }
                });
                drop(tx);
            });
            for msg in rx.iter() {
                if db_error.is_some() {
                    continue;
                }
                let r = match msg {
                    Msg::Started(task) => self.state.task_started(name, &task).map(|_| ()),
                    Msg::Done {
                        task,
                        outputs,
                        report,
                        elapsed,
                    } => {
                        let r = self
                            .state
                            .task_done(name, &task, &outputs, &report, elapsed);
                        if r.is_ok() {
                            tracing::info!(stage = %name, task = %task, items_out = report.items_out, "task done");
                            reporter.task_finished(name, &task, report.items_out);
                        }
                        r
                    }
                    Msg::Failed { task, error, last } => {
                        tracing::warn!(stage = %name, task = %task, error = %error, last, "task attempt failed");
                        if last {
                            failures.push((task.clone(), error.clone()));
                        }
                        self.state.task_failed(name, &task, &error)
                    }
                };
                if let Err(e) = r {
                    db_error = Some(e);
                }
            }
        });
        match db_error {
            Some(e) => Err(e),
            None => Ok(failures),
        }
    }
}

impl Executor for LocalExecutor<'_> {
    fn run_stage(&mut self, stage: &dyn Stage) -> Result<StageOutcome> {
        LocalExecutor::run_stage(self, stage)
    }
    fn restart(&mut self, stages: &[Arc<dyn Stage>], from: &str) -> Result<Vec<String>> {
        LocalExecutor::restart(self, stages, from)
    }
    fn stage_totals(&self, name: &str) -> Result<Option<StageTotals>> {
        Ok(Some(StageTotals::of(&self.state.tasks(name)?)))
    }
    fn run_summary(&self) -> Result<RunSummary> {
        self.state.summary()
    }
    fn cancel_flag(&self) -> Arc<AtomicBool> {
        LocalExecutor::cancel_flag(self)
    }
    fn location(&self) -> String {
        self.workdir.display().to_string()
    }
}

/// Runs `f`, turning errors and panics into messages.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("task panicked: {}", panic_message(p.as_ref()))),
    }
}

/// fsyncs and renames a task's declared outputs into place. Returns them relative to the workdir.
fn commit_outputs(workdir: &Path, ctx: &TaskContext<'_>) -> Result<Vec<String>> {
    let outs = ctx.take_outputs();
    let mut parents = Vec::new();
    for (temp, _) in &outs {
        if !temp.exists() {
            return Err(Error::Stage(format!(
                "task declared output {} but did not write it",
                temp.display()
            )));
        }
        sync_tree(temp)?;
    }
    let mut rels = Vec::with_capacity(outs.len());
    for (temp, fin) in &outs {
        if fin.is_dir() {
            remove_any(fin)?;
        }
        std::fs::rename(temp, fin).at(fin)?;
        if let Some(p) = fin.parent()
            && !parents.iter().any(|q: &PathBuf| q == p)
        {
            parents.push(p.to_path_buf());
        }
        let rel = fin.strip_prefix(workdir).unwrap_or(fin);
        rels.push(rel.to_string_lossy().into_owned());
    }
    for p in parents {
        sync_dir(&p)?;
    }
    Ok(rels)
}

/// Removes the temporary outputs of a failed attempt.
fn discard(ctx: &TaskContext<'_>) {
    for (temp, _) in ctx.take_outputs() {
        let _ = remove_any(&temp);
    }
}

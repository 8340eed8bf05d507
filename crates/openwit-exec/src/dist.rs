//! The distributed executor: the same [`Stage`]s, run task by task by independent processes
//! (Slurm array elements, or threads of one `openwit run`) over a [`Store`], with a commit
//! protocol that needs nothing but put-if-absent.
//!
//! Layout of a workdir (keys relative to the store's root):
//!
//! ```text
//! _openwit/plans/<stage>.json               the stage's plan (config, fingerprint, tasks); put-if-absent
//! _openwit/tasks/<stage>/<task>.json        a task's commit manifest; put-if-absent: the winner
//! _openwit/stages/<stage>.json              the stage's completion (reduce output, summary, every
//!                                           task's manifest); put-if-absent
//! <stage>/_attempts/<task>/<attempt>/<rel>  data of one attempt; only what a manifest names counts
//! ```
//!
//! A task attempt runs in a node-local folder (the *mirror*) that holds the committed outputs of
//! the upstream stages at their usual relative paths (downloaded once per node into a cache:
//! committed data keys never change), so stage code reads and writes plain files exactly as
//! under the local executor. Its outputs go up under attempt-unique keys; then the attempt
//! creates the task's manifest with put-if-absent. A task is done when its manifest exists. A
//! losing duplicate (a requeued task whose orphan also finished) gets "already exists", removes
//! its own uploads and exits successfully, never touching the winner's data. Readers follow
//! manifests only. [`gc`] removes what losers and dead attempts left behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use openwit_core::summary::{RunSummary, StageSummary, StageTotals};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::exec::{Executor, RunOptions, StageOutcome, catch};
use crate::state::{Status, TaskRecord, now};
use crate::store::Store;
use openwit_core::atomic::remove_any;
use openwit_core::config::{changed_keys, fingerprint};
use openwit_core::error::{Error, IoContext, Result};
use openwit_core::progress::Reporter;
use openwit_core::stage::{
    REDUCE_TASK, Stage, StageContext, TaskContext, TaskEnv, TaskReport, TaskSpec, sanitize,
};

/// The prefix of the protocol's own objects.
pub const META: &str = "_openwit";

fn plan_key(stage: &str) -> String {
    format!("{META}/plans/{stage}.json")
}
fn task_prefix(stage: &str) -> String {
    format!("{META}/tasks/{stage}/")
}
fn task_key(stage: &str, task: &str) -> String {
    format!("{META}/tasks/{stage}/{}.json", sanitize(task))
}
fn stage_key(stage: &str) -> String {
    format!("{META}/stages/{stage}.json")
}
fn attempt_prefix(stage: &str, task: &str, attempt: &str) -> String {
    format!("{stage}/_attempts/{}/{attempt}", sanitize(task))
}

/// A stage's plan, fixed by whoever planned it first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub stage: String,
    pub fingerprint: String,
    pub config: Value,
    pub tasks: Vec<TaskSpec>,
    pub created_at: f64,
}

/// One committed file: where stage code sees it (relative to the workdir) and where it lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: String,
    pub key: String,
    pub size: u64,
}

/// A task's commit manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub task: String,
    /// The task's position in the plan (`None` for the reduce step).
    pub index: Option<usize>,
    /// The task's payload, as planned.
    #[serde(default)]
    pub payload: Value,
    pub attempt: String,
    pub fingerprint: String,
    /// The outputs as the task declared them (files or folders), relative to the workdir.
    pub outputs: Vec<String>,
    /// Every committed file.
    pub files: Vec<OutputFile>,
    pub report: TaskReport,
    pub host: String,
    /// `SLURM_JOB_ID`/`SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID` when run by Slurm.
    pub job: Option<String>,
    pub elapsed_s: f64,
    pub finished_at: f64,
}

/// A stage's completion record, written once after its reduce step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageManifest {
    pub stage: String,
    pub fingerprint: String,
    pub config: Value,
    pub tasks_total: usize,
    /// Every task's manifest in plan order, then the reduce step's if it wrote outputs.
    pub tasks: Vec<Manifest>,
    pub summary: Option<String>,
    pub elapsed_s: f64,
    pub finished_at: f64,
}

/// What one task attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// This attempt committed the task.
    Committed,
    /// The task was already committed before this attempt started; nothing ran.
    AlreadyCommitted,
    /// Another attempt committed first; this one's uploads were removed.
    LostRace,
}

/// Where a stage stands, read from the committed manifests.
#[derive(Debug, Clone, Serialize)]
pub struct StageProgress {
    pub stage: String,
    pub planned: bool,
    pub tasks_total: usize,
    pub committed: usize,
    /// (plan index, task id) of the tasks with no manifest.
    pub missing: Vec<(usize, String)>,
    pub done: bool,
    pub items_in: u64,
    pub items_out: u64,
    pub drops: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub summary: Option<String>,
}

/// Runs stages over a [`Store`] with the put-if-absent commit protocol.
pub struct DistExecutor<'r> {
    store: Store,
    local: PathBuf,
    opts: RunOptions,
    reporter: &'r dyn Reporter,
    cancel: Arc<AtomicBool>,
    runtime: OnceLock<tokio::runtime::Runtime>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// An id no other attempt anywhere has: host, pid, time and a counter, hashed.
fn attempt_id() -> String {
    let mut h = Sha256::new();
    h.update(hostname().as_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(now().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.update(t.as_nanos().to_le_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

fn slurm_job() -> Option<String> {
    let get = |k: &str| std::env::var(k).ok();
    match (get("SLURM_ARRAY_JOB_ID"), get("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("{j}_{t}")),
        _ => get("SLURM_JOB_ID"),
    }
}

/// Whether `workdir` is a shared workdir: an S3 prefix, or a folder written by the distributed
/// executor (it holds `_openwit/plans`).
pub fn is_shared(workdir: &str) -> bool {
    crate::store::is_remote(workdir) || Path::new(workdir).join(META).join("plans").is_dir()
}

/// The default node-local folder: `$OPENWIT_LOCAL`, else `$TMPDIR/openwit-local`.
pub fn default_local_dir() -> PathBuf {
    std::env::var_os("OPENWIT_LOCAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("openwit-local"))
}

impl<'r> DistExecutor<'r> {
    /// An executor over `store`, staging files under the node-local folder `local`.
    pub fn new(store: Store, local: PathBuf, opts: RunOptions, reporter: &'r dyn Reporter) -> Self {
        DistExecutor {
            store,
            local,
            opts,
            reporter,
            cancel: Arc::new(AtomicBool::new(false)),
            runtime: OnceLock::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The flag that asks running tasks to stop.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>> {
        match self.store.get(key)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::Stage(format!(
                    "{}/{key}: not a valid openwit record ({e}); was it written by another tool?",
                    self.store.url()
                ))
            }),
        }
    }

    /// Writes `record` as pretty JSON at `key` unless something is there already (the commit
    /// protocol's put-if-absent); whether this call wrote it.
    fn put_json_if_absent(&self, key: &str, record: &impl Serialize) -> Result<bool> {
        let bytes = serde_json::to_vec_pretty(record).expect("openwit records serialize");
        self.store.put_if_absent(key, bytes)
    }

    /// The stage's plan, if one was made.
    pub fn read_plan(&self, stage: &str) -> Result<Option<Plan>> {
        self.get_json(&plan_key(stage))
    }

    /// The stages that have a plan, in the order they were planned.
    pub fn planned_stages(&self) -> Result<Vec<String>> {
        let mut plans = Vec::new();
        for e in self.store.list(&format!("{META}/plans/"))? {
            let Some(name) = e
                .key
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Some(p) = self.read_plan(name)? {
                plans.push((p.created_at, name.to_string()));
            }
        }
        plans.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(plans.into_iter().map(|(_, n)| n).collect())
    }

    /// The stage's completion record, if it is done.
    pub fn read_stage(&self, stage: &str) -> Result<Option<StageManifest>> {
        self.get_json(&stage_key(stage))
    }

    fn check_fingerprint(&self, stage: &dyn Stage, fp: &str, old_config: &Value) -> Result<()> {
        let config = stage.config();
        if fingerprint(&config) != fp {
            let keys = changed_keys(old_config, &config);
            return Err(Error::Stage(format!(
                "the configuration of stage `{}` changed since it was planned in {} (changed keys: {}); \
                 restore the old values or use a new workdir prefix",
                stage.name(),
                self.store.url(),
                if keys.is_empty() {
                    "(unknown)".into()
                } else {
                    keys.join(", ")
                }
            )));
        }
        Ok(())
    }

    /// The committed records of the stage's upstream stages, which must all be done.
    fn upstream(&self, stage: &dyn Stage) -> Result<HashMap<String, Vec<Manifest>>> {
        let mut map = HashMap::new();
        for u in stage.upstream() {
            let Some(done) = self.read_stage(&u)? else {
                return Err(Error::Stage(format!(
                    "stage `{}` reads the outputs of `{u}`, which has not finished in {}; \
                     run `openwit task {u} ...` for its missing tasks and its reduce step first \
                     (`openwit status {}` lists them)",
                    stage.name(),
                    self.store.url(),
                    self.store.url()
                )));
            };
            map.insert(u, done.tasks);
        }
        Ok(map)
    }

    /// The plan of `stage`: read it, or make it (its upstream stages must be done) and store it
    /// with put-if-absent, so every process uses the first one made.
    pub fn plan(&self, stage: &dyn Stage) -> Result<Plan> {
        if let Some(p) = self.read_plan(stage.name())? {
            self.check_fingerprint(stage, &p.fingerprint, &p.config)?;
            return Ok(p);
        }
        let upstream = self.upstream(stage)?;
        let mirror = self.mirror(stage, &upstream, &[])?;
        let records = records_of(&upstream, &mirror);
        let run = self.summary_for(stage)?;
        let tasks = {
            let ctx = StageContext::new(&mirror, stage.name(), self.opts.jobs, &records)
                .with_run_summary(run.as_ref());
            stage.plan(&ctx)
        };
        let _ = remove_any(&mirror);
        let tasks: Vec<TaskSpec> = tasks?
            .into_iter()
            .map(|t| TaskSpec {
                payload: relativize(&t.payload, &mirror),
                id: t.id,
            })
            .collect();
        let mut seen = HashSet::new();
        for t in &tasks {
            if !seen.insert(sanitize(&t.id)) || t.id == REDUCE_TASK {
                return Err(Error::Stage(format!(
                    "stage `{}` planned task id `{}` twice (a bug in the stage)",
                    stage.name(),
                    t.id
                )));
            }
        }
        let config = stage.config();
        let plan = Plan {
            stage: stage.name().to_string(),
            fingerprint: fingerprint(&config),
            config,
            tasks,
            created_at: now(),
        };
        if !self.put_json_if_absent(&plan_key(stage.name()), &plan)? {
            let p = self
                .read_plan(stage.name())?
                .ok_or_else(|| Error::Stage(format!("the plan of `{}` vanished", stage.name())))?;
            self.check_fingerprint(stage, &p.fingerprint, &p.config)?;
            return Ok(p);
        }
        tracing::info!(stage = stage.name(), tasks = plan.tasks.len(), "planned");
        Ok(plan)
    }

    /// The committed manifests of a stage's tasks (one read per task).
    fn task_manifests(&self, stage: &str) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for e in self.store.list(&task_prefix(stage))? {
            if let Some(m) = self.get_json::<Manifest>(&e.key)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Committed task ids of a stage (a listing, no reads).
    fn committed_ids(&self, stage: &str) -> Result<HashSet<String>> {
        let prefix = task_prefix(stage);
        Ok(self
            .store
            .list(&prefix)?
            .into_iter()
            .filter_map(|e| {
                e.key
                    .strip_prefix(&prefix)
                    .and_then(|k| k.strip_suffix(".json"))
                    .map(str::to_string)
            })
            .collect())
    }

    /// Where the stage stands: planned, committed and missing tasks, done.
    pub fn progress(&self, stage: &str) -> Result<StageProgress> {
        let mut p = StageProgress {
            stage: stage.to_string(),
            planned: false,
            tasks_total: 0,
            committed: 0,
            missing: Vec::new(),
            done: false,
            items_in: 0,
            items_out: 0,
            drops: BTreeMap::new(),
            elapsed_s: 0.0,
            summary: None,
        };
        if let Some(done) = self.read_stage(stage)? {
            p.planned = true;
            p.done = true;
            p.tasks_total = done.tasks_total;
            p.committed = done.tasks.iter().filter(|m| m.index.is_some()).count();
            // Items in: what the tasks read; items out: what the reduce step kept when the
            // stage has one, else what the tasks wrote (as `openwit status` counts locally).
            let reduce = done.tasks.iter().find(|m| m.index.is_none());
            for m in &done.tasks {
                match (m.index, reduce) {
                    (Some(_), None) => {
                        p.items_in += m.report.items_in;
                        p.items_out += m.report.items_out;
                    }
                    (Some(_), Some(_)) => p.items_in += m.report.items_in,
                    (None, _) => p.items_out += m.report.items_out,
                }
                for (k, v) in &m.report.drops.0 {
                    *p.drops.entry(k.clone()).or_default() += v;
                }
            }
            p.elapsed_s = done.elapsed_s;
            p.summary = done.summary;
            return Ok(p);
        }
        let Some(plan) = self.read_plan(stage)? else {
            return Ok(p);
        };
        p.planned = true;
        p.tasks_total = plan.tasks.len();
        let ids = self.committed_ids(stage)?;
        for (i, t) in plan.tasks.iter().enumerate() {
            if ids.contains(&sanitize(&t.id)) {
                p.committed += 1;
            } else {
                p.missing.push((i, t.id.clone()));
            }
        }
        Ok(p)
    }

    /// Runs task `index` of the stage's plan (planning first if needed) and commits it.
    pub fn run_task(&self, stage: &dyn Stage, index: usize) -> Result<TaskOutcome> {
        let plan = self.plan(stage)?;
        let Some(task) = plan.tasks.get(index) else {
            return Err(Error::Config(format!(
                "stage `{}` has {} task(s) (indices 0..{}); there is no task {index}",
                stage.name(),
                plan.tasks.len(),
                plan.tasks.len().saturating_sub(1)
            )));
        };
        self.run_one(stage, &plan, index, task)
    }

    /// For a process that works beside task `index` of `stage` without being it (a rank above
    /// 0 of a data-parallel `train` task, started by `srun` next to rank 0, which runs the task
    /// through [`Self::run_task`]): None when the task is committed already, else a fresh
    /// node-local workdir holding the committed outputs of the stage's upstream stages, and
    /// their records in it (for the stage's [`StageContext`] there, as rank 0's task sees them).
    /// Nothing is recorded; the caller removes the folder.
    pub fn beside_task(
        &self,
        stage: &dyn Stage,
        index: usize,
    ) -> Result<Option<(PathBuf, HashMap<String, Vec<TaskRecord>>)>> {
        let plan = self.plan(stage)?;
        let Some(task) = plan.tasks.get(index) else {
            return Err(Error::Config(format!(
                "stage `{}` has {} task(s); there is no task {index}",
                stage.name(),
                plan.tasks.len()
            )));
        };
        if self.store.get(&task_key(stage.name(), &task.id))?.is_some() {
            return Ok(None);
        }
        let upstream = self.upstream(stage)?;
        let mirror = self.mirror(stage, &upstream, &[])?;
        let records = records_of(&upstream, &mirror);
        Ok(Some((mirror, records)))
    }

    fn run_one(
        &self,
        stage: &dyn Stage,
        plan: &Plan,
        index: usize,
        task: &TaskSpec,
    ) -> Result<TaskOutcome> {
        let name = stage.name();
        let key = task_key(name, &task.id);
        if self.store.get(&key)?.is_some() {
            tracing::info!(stage = name, task = %task.id, "already committed");
            return Ok(TaskOutcome::AlreadyCommitted);
        }
        let upstream = self.upstream(stage)?;
        let run = self.summary_for(stage)?;
        let mut last = String::new();
        for attempt in 1..=self.opts.max_attempts {
            let t0 = Instant::now();
            let aid = attempt_id();
            let mirror = self.mirror(stage, &upstream, &[])?;
            let records = records_of(&upstream, &mirror);
            let here = TaskSpec {
                id: task.id.clone(),
                payload: absolutize(&task.payload, &mirror),
            };
            let ctx = self.context(&mirror, name, &task.id, attempt, &records, run.as_ref());
            let res = catch(|| stage.run_task(&ctx, &here));
            let res = res.map(|mut r| {
                r.extra = relativize(&r.extra, &mirror);
                r
            });
            let res = res.and_then(|report| {
                self.upload(&ctx, &mirror, name, &task.id, &aid)
                    .map(|(outputs, files)| (report, outputs, files))
                    .map_err(|e| e.to_string())
            });
            let _ = remove_any(&mirror);
            match res {
                Ok((report, outputs, files)) => {
                    let m = Manifest {
                        stage: name.to_string(),
                        task: task.id.clone(),
                        index: Some(index),
                        payload: task.payload.clone(),
                        attempt: aid.clone(),
                        fingerprint: plan.fingerprint.clone(),
                        outputs,
                        files,
                        report,
                        host: hostname(),
                        job: slurm_job(),
                        elapsed_s: t0.elapsed().as_secs_f64(),
                        finished_at: now(),
                    };
                    if self.put_json_if_absent(&key, &m)? {
                        tracing::info!(stage = name, task = %task.id, attempt = %aid, items_out = m.report.items_out, "task committed");
                        self.reporter
                            .task_finished(name, &task.id, m.report.items_out);
                        return Ok(TaskOutcome::Committed);
                    }
                    tracing::warn!(stage = name, task = %task.id, attempt = %aid, "another attempt committed this task first; removing this attempt's uploads");
                    self.remove_attempt(name, &task.id, &aid)?;
                    return Ok(TaskOutcome::LostRace);
                }
                Err(e) => {
                    tracing::warn!(stage = name, task = %task.id, attempt, error = %e, "task attempt failed");
                    let _ = self.remove_attempt(name, &task.id, &aid);
                    last = e;
                }
            }
        }
        Err(Error::TasksFailed {
            stage: name.to_string(),
            failed: 1,
            attempts: self.opts.max_attempts,
            task: task.id.clone(),
            error: last,
            hint: "fix the cause and run the task again (`openwit submit --resume` reruns only the missing ones)".into(),
        })
    }

    /// Finishes a stage once every task is committed: the reduce step, the summary and the
    /// stage's completion record. Returns the summary.
    pub fn finish(&self, stage: &dyn Stage) -> Result<Option<String>> {
        let name = stage.name();
        if let Some(done) = self.read_stage(name)? {
            self.check_fingerprint(stage, &done.fingerprint, &done.config)?;
            return Ok(done.summary);
        }
        let plan = self.plan(stage)?;
        let mut by_id: HashMap<String, Manifest> = self
            .task_manifests(name)?
            .into_iter()
            .map(|m| (m.task.clone(), m))
            .collect();
        let missing: Vec<String> = plan
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !by_id.contains_key(&t.id))
            .map(|(i, t)| format!("{i} ({})", t.id))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Stage(format!(
                "stage `{name}`: {} of {} task(s) not committed: {}; run them first \
                 (`openwit submit --resume` submits only the missing ones)",
                missing.len(),
                plan.tasks.len(),
                abbreviate(&missing)
            )));
        }
        let mut tasks: Vec<Manifest> = plan
            .tasks
            .iter()
            .filter_map(|t| by_id.remove(&t.id))
            .collect();
        let upstream = self.upstream(stage)?;
        let t0 = Instant::now();
        let aid = attempt_id();
        let mirror = self.mirror(stage, &upstream, &tasks)?;
        let mut records = records_of(&upstream, &mirror);
        let own: Vec<TaskRecord> = tasks
            .iter()
            .map(|m| record_of(m, plan.tasks.len(), &mirror))
            .collect();
        let run = self.summary_for(stage)?;
        let mut reduced = None;
        let mut last = None;
        for attempt in 1..=self.opts.max_attempts {
            let ctx = self.context(&mirror, name, REDUCE_TASK, attempt, &records, run.as_ref());
            match catch(|| stage.reduce(&ctx, &own)) {
                Ok(None) => {
                    last = None;
                    break;
                }
                Ok(Some(mut report)) => {
                    report.extra = relativize(&report.extra, &mirror);
                    let (outputs, files) = self.upload(&ctx, &mirror, name, REDUCE_TASK, &aid)?;
                    reduced = Some(Manifest {
                        stage: name.to_string(),
                        task: REDUCE_TASK.into(),
                        index: None,
                        payload: Value::Null,
                        attempt: aid.clone(),
                        fingerprint: plan.fingerprint.clone(),
                        outputs,
                        files,
                        report,
                        host: hostname(),
                        job: slurm_job(),
                        elapsed_s: t0.elapsed().as_secs_f64(),
                        finished_at: now(),
                    });
                    last = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!(stage = name, attempt, error = %e, "reduce failed");
                    last = Some(e);
                }
            }
        }
        if let Some(e) = last {
            let _ = remove_any(&mirror);
            return Err(Error::TasksFailed {
                stage: name.to_string(),
                failed: 1,
                attempts: self.opts.max_attempts,
                task: REDUCE_TASK.into(),
                error: e,
                hint: "the stage's tasks are kept; fix the cause and run its reduce step again"
                    .into(),
            });
        }
        if let Some(r) = &reduced {
            tasks.push(r.clone());
        }
        let all: Vec<TaskRecord> = tasks
            .iter()
            .map(|m| record_of(m, plan.tasks.len(), &mirror))
            .collect();
        // The summary sees the stage's own outputs where they are in the mirror.
        records.insert(name.to_string(), all.clone());
        let summary = {
            let ctx = StageContext::new(&mirror, name, self.opts.jobs, &records)
                .with_run_summary(run.as_ref());
            stage.summary(&ctx, &all)
        };
        // Paths in the summary name the store, not this node's mirror.
        let summary = summary.map(|s| s.replace(&*mirror.to_string_lossy(), self.store.url()));
        let _ = remove_any(&mirror);
        let done = StageManifest {
            stage: name.to_string(),
            fingerprint: plan.fingerprint.clone(),
            config: plan.config.clone(),
            tasks_total: plan.tasks.len(),
            elapsed_s: tasks.iter().map(|m| m.elapsed_s).sum(),
            tasks,
            summary,
            finished_at: now(),
        };
        if !self.put_json_if_absent(&stage_key(name), &done)? {
            if reduced.is_some() {
                self.remove_attempt(name, REDUCE_TASK, &aid)?;
            }
            let other = self.read_stage(name)?;
            return Ok(other.and_then(|d| d.summary));
        }
        tracing::info!(stage = name, "stage committed");
        Ok(done.summary)
    }

    /// Runs a whole stage in this process: plan, the uncommitted tasks in parallel, finish.
    pub fn run_stage(&self, stage: &dyn Stage) -> Result<StageOutcome> {
        let name = stage.name();
        if let Some(done) = self.read_stage(name)? {
            self.check_fingerprint(stage, &done.fingerprint, &done.config)?;
            return Ok(StageOutcome::UpToDate);
        }
        let plan = self.plan(stage)?;
        let ids = self.committed_ids(name)?;
        let pending: Vec<(usize, &TaskSpec)> = plan
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !ids.contains(&sanitize(&t.id)))
            .collect();
        self.reporter.stage_started(
            name,
            plan.tasks.len() as u64,
            (plan.tasks.len() - pending.len()) as u64,
        );
        let threads = stage
            .max_parallel(self.opts.jobs)
            .clamp(1, pending.len().max(1));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("openwit-task-{i}"))
            .build()
            .map_err(|e| Error::Stage(format!("cannot start the worker pool: {e}")))?;
        let errors: Mutex<Vec<Error>> = Mutex::new(Vec::new());
        pool.scope(|s| {
            for (i, t) in &pending {
                let errors = &errors;
                let plan = &plan;
                s.spawn(move |_| {
                    if let Err(e) = self.run_one(stage, plan, *i, t) {
                        errors.lock().unwrap().push(e);
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap();
        if !errors.is_empty() {
            self.reporter.stage_finished(name, false);
            return Err(errors.swap_remove(0));
        }
        let summary = self.finish(stage);
        self.reporter.stage_finished(name, summary.is_ok());
        let reduced = self.read_stage(name)?.is_some_and(|d| {
            d.tasks
                .last()
                .is_some_and(|m| m.task == REDUCE_TASK && m.index.is_none())
        });
        Ok(StageOutcome::Ran {
            ran: pending.len(),
            total: plan.tasks.len(),
            reduced,
            summary: summary?,
        })
    }

    /// Copies the committed outputs of every finished stage into `dest` at their usual
    /// relative paths (a plain local workdir layout, for `openwit search`, OpenCLIP, pandas).
    /// Returns the number of files and bytes copied. Where a stage's reduce step rewrote a
    /// task's file, the reduce's copy is the one taken.
    pub fn checkout(&self, dest: &Path) -> Result<(usize, u64)> {
        let (mut n, mut bytes) = (0, 0);
        for e in self.store.list(&format!("{META}/stages/"))? {
            let Some(done) = self.get_json::<StageManifest>(&e.key)? else {
                continue;
            };
            // Manifests are in plan order with the reduce step's last: the last key wins.
            let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
            for f in done.tasks.iter().flat_map(|m| &m.files) {
                latest.insert(&f.path, &f.key);
            }
            for (path, key) in latest {
                bytes += self.store.download(key, &dest.join(path))?;
                n += 1;
            }
        }
        Ok((n, bytes))
    }

    fn context<'a>(
        &'a self,
        mirror: &'a Path,
        stage: &'a str,
        task: &'a str,
        attempt: u32,
        records: &'a HashMap<String, Vec<TaskRecord>>,
        run: Option<&'a RunSummary>,
    ) -> TaskContext<'a> {
        let sctx = StageContext::new(mirror, stage, self.opts.jobs, records).with_run_summary(run);
        let env = TaskEnv {
            reporter: self.reporter,
            runtime: &self.runtime,
            cancel: &self.cancel,
        };
        TaskContext::new(&sctx, task, attempt, env)
    }

    /// A fresh node-local workdir holding the committed outputs of `upstream` and `own` at their
    /// relative paths (hard links into the node's cache).
    fn mirror(
        &self,
        stage: &dyn Stage,
        upstream: &HashMap<String, Vec<Manifest>>,
        own: &[Manifest],
    ) -> Result<PathBuf> {
        let dir =
            self.local
                .join("work")
                .join(format!("{}-{}", sanitize(stage.name()), attempt_id()));
        remove_any(&dir)?;
        std::fs::create_dir_all(&dir).at(&dir)?;
        let cache = self.local.join("cache").join(hex::encode(
            &Sha256::digest(self.store.url().as_bytes())[..8],
        ));
        for m in upstream.values().flatten().chain(own.iter()) {
            for f in &m.files {
                let cached = cache.join(&f.key);
                let fresh = std::fs::metadata(&cached).is_ok_and(|md| md.len() == f.size);
                if !fresh {
                    self.store.download(&f.key, &cached)?;
                }
                let dest = dir.join(&f.path);
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).at(p)?;
                }
                // A later manifest's file at the same path (a reduce step's rewrite of a task's
                // output) replaces the link; copying over it would write into the cache.
                remove_any(&dest)?;
                if std::fs::hard_link(&cached, &dest).is_err() {
                    std::fs::copy(&cached, &dest).at(&dest)?;
                }
            }
        }
        Ok(dir)
    }

    /// The run summary for a stage that reads it ([`Stage::reads_run_summary`]), else `None`.
    fn summary_for(&self, stage: &dyn Stage) -> Result<Option<RunSummary>> {
        if stage.reads_run_summary() {
            self.summary().map(Some)
        } else {
            Ok(None)
        }
    }

    /// What the committed manifests say: every finished stage, in the order it finished.
    pub fn summary(&self) -> Result<RunSummary> {
        let mut done: Vec<StageManifest> = Vec::new();
        for e in self.store.list(&format!("{META}/stages/"))? {
            if let Some(d) = self.get_json::<StageManifest>(&e.key)? {
                done.push(d);
            }
        }
        done.sort_by(|a, b| a.finished_at.total_cmp(&b.finished_at));
        let mut stages = Vec::new();
        for d in done {
            let Some(plan) = self.read_plan(&d.stage)? else {
                continue;
            };
            let records: Vec<TaskRecord> = d
                .tasks
                .iter()
                .map(|m| record_of(m, plan.tasks.len(), Path::new("")))
                .collect();
            stages.push(StageSummary {
                stage: d.stage.clone(),
                state: Status::Done,
                tasks_total: plan.tasks.len() as u64,
                totals: StageTotals::of(&records),
                elapsed_s: d.elapsed_s,
            });
        }
        Ok(RunSummary { stages })
    }

    /// Uploads a finished attempt's declared outputs under its attempt-unique prefix.
    fn upload(
        &self,
        ctx: &TaskContext<'_>,
        mirror: &Path,
        stage: &str,
        task: &str,
        aid: &str,
    ) -> Result<(Vec<String>, Vec<OutputFile>)> {
        let outs = ctx.take_outputs();
        let stage_dir = mirror.join(stage);
        let prefix = attempt_prefix(stage, task, aid);
        let mut outputs = Vec::new();
        let mut files = Vec::new();
        for (temp, fin) in &outs {
            if !temp.exists() {
                return Err(Error::Stage(format!(
                    "task declared output {} but did not write it",
                    fin.display()
                )));
            }
            let rel = rel_str(fin.strip_prefix(&stage_dir).unwrap_or(fin));
            outputs.push(format!("{stage}/{rel}"));
            let mut walk = vec![(temp.clone(), rel)];
            while let Some((p, r)) = walk.pop() {
                if p.is_dir() {
                    let mut kids: Vec<_> = std::fs::read_dir(&p)
                        .at(&p)?
                        .filter_map(|e| e.ok())
                        .collect();
                    kids.sort_by_key(|e| e.file_name());
                    for k in kids.into_iter().rev() {
                        let n = k.file_name().to_string_lossy().into_owned();
                        walk.push((k.path(), format!("{r}/{n}")));
                    }
                } else {
                    let key = format!("{prefix}/{r}");
                    let size = self.store.upload(&p, &key)?;
                    files.push(OutputFile {
                        path: format!("{stage}/{r}"),
                        key,
                        size,
                    });
                }
            }
            // In place in the mirror too, for what runs after (the summary).
            remove_any(fin)?;
            std::fs::rename(temp, fin).at(fin)?;
        }
        Ok((outputs, files))
    }

    fn remove_attempt(&self, stage: &str, task: &str, aid: &str) -> Result<()> {
        for e in self
            .store
            .list(&format!("{}/", attempt_prefix(stage, task, aid)))?
        {
            self.store.delete(&e.key)?;
        }
        Ok(())
    }
}

impl Executor for DistExecutor<'_> {
    fn run_stage(&mut self, stage: &dyn Stage) -> Result<StageOutcome> {
        DistExecutor::run_stage(self, stage)
    }
    fn restart(&mut self, _stages: &[Arc<dyn Stage>], _from: &str) -> Result<Vec<String>> {
        Err(Error::Config(
            "--restart is not supported on an S3 workdir; use a new prefix".into(),
        ))
    }
    /// `None`: `openwit run` on a shared workdir prints no drops after each stage
    /// (`openwit status` shows them).
    fn stage_totals(&self, _name: &str) -> Result<Option<StageTotals>> {
        Ok(None)
    }
    fn run_summary(&self) -> Result<RunSummary> {
        self.summary()
    }
    fn cancel_flag(&self) -> Arc<AtomicBool> {
        DistExecutor::cancel_flag(self)
    }
    fn location(&self) -> String {
        self.store.url().to_string()
    }
}

/// Stands for the mirror's path in stored payloads and reports: stage code may put absolute
/// paths of upstream outputs into a task's payload (as it does under the local executor), and
/// each attempt runs in a mirror of its own, on any node.
const WORKDIR_TOKEN: &str = "${OPENWIT_WORKDIR}";

/// Replaces the mirror's path at the start of every string in `v` with [`WORKDIR_TOKEN`].
fn relativize(v: &Value, mirror: &Path) -> Value {
    let m = mirror.to_string_lossy();
    map_strings(v, &|s| match s.strip_prefix(m.as_ref()) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{WORKDIR_TOKEN}{rest}"),
        _ => s.to_string(),
    })
}

/// The inverse of [`relativize`] for the mirror at `mirror`.
fn absolutize(v: &Value, mirror: &Path) -> Value {
    let m = mirror.to_string_lossy();
    map_strings(v, &|s| match s.strip_prefix(WORKDIR_TOKEN) {
        Some(rest) => format!("{m}{rest}"),
        None => s.to_string(),
    })
}

fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_strings(x, f)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), map_strings(x, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn rel_str(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn abbreviate(items: &[String]) -> String {
    if items.len() <= 10 {
        items.join(", ")
    } else {
        format!(
            "{}, ... and {} more",
            items[..10].join(", "),
            items.len() - 10
        )
    }
}

/// A done task's record as stage code sees it (payload and report paths resolved into `mirror`);
/// the reduce step, which has no index, gets `reduce_ord` (after every task).
fn record_of(m: &Manifest, reduce_ord: usize, mirror: &Path) -> TaskRecord {
    TaskRecord {
        stage: m.stage.clone(),
        task: m.task.clone(),
        ord: m.index.unwrap_or(reduce_ord) as i64,
        payload: absolutize(&m.payload, mirror),
        status: Status::Done,
        attempts: 1,
        outputs: m.outputs.clone(),
        items_in: m.report.items_in,
        items_out: m.report.items_out,
        drops: m.report.drops.0.clone(),
        extra: absolutize(&m.report.extra, mirror),
        last_error: None,
        elapsed_s: m.elapsed_s,
    }
}

/// The records of the upstream stages' done tasks, in plan order.
fn records_of(
    upstream: &HashMap<String, Vec<Manifest>>,
    mirror: &Path,
) -> HashMap<String, Vec<TaskRecord>> {
    upstream
        .iter()
        .map(|(k, ms)| {
            let recs = ms.iter().map(|m| record_of(m, ms.len(), mirror)).collect();
            (k.clone(), recs)
        })
        .collect()
}

/// What [`gc`] found and removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Objects of attempts that lost to a committed winner (always safe to remove).
    pub losers: usize,
    /// Objects of uncommitted tasks older than the grace period.
    pub stale: usize,
    pub bytes: u64,
    /// Objects kept: committed, or of an uncommitted task that may still be running.
    pub kept: usize,
}

/// Removes attempt data no manifest names: always the data of attempts whose task was committed
/// by another attempt; the data of uncommitted tasks only when older than `grace_s` seconds (an
/// attempt may still be uploading). With `dry_run` only counts.
pub fn gc(store: &Store, grace_s: i64, dry_run: bool) -> Result<GcReport> {
    let mut rep = GcReport::default();
    let plans = store.list(&format!("{META}/plans/"))?;
    let now_s = now() as i64;
    for p in plans {
        let Some(stage) = p
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        // Winners: attempt per task (sanitized), from the task manifests.
        let mut winners: HashMap<String, String> = HashMap::new();
        for e in store.list(&task_prefix(stage))? {
            if let Some(b) = store.get(&e.key)?
                && let Ok(m) = serde_json::from_slice::<Manifest>(&b)
            {
                winners.insert(sanitize(&m.task), m.attempt);
            }
        }
        if let Some(b) = store.get(&stage_key(stage))?
            && let Ok(d) = serde_json::from_slice::<StageManifest>(&b)
        {
            for m in d.tasks.iter().filter(|m| m.index.is_none()) {
                winners.insert(sanitize(&m.task), m.attempt.clone());
            }
        }
        let reduce_done = store.get(&stage_key(stage))?.is_some();
        let prefix = format!("{stage}/_attempts/");
        for e in store.list(&prefix)? {
            let rest = &e.key[prefix.len()..];
            let mut parts = rest.splitn(3, '/');
            let (Some(task), Some(aid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let committed = winners.get(task);
            let remove = match committed {
                Some(w) => w != aid,
                // The reduce step commits with the stage record.
                None if task == REDUCE_TASK && reduce_done => true,
                None => now_s - e.modified > grace_s,
            };
            if !remove {
                rep.kept += 1;
                continue;
            }
            if committed.is_some() || (task == REDUCE_TASK && reduce_done) {
                rep.losers += 1;
            } else {
                rep.stale += 1;
            }
            rep.bytes += e.size;
            if !dry_run {
                store.delete(&e.key)?;
            }
        }
    }
    Ok(rep)
}

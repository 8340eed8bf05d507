//! What `openwit status` shows of a workdir, local or shared: one row per stage, read from the
//! local run state ([`RunState`]) or from the distributed executor's committed manifests
//! ([`DistExecutor`]), and how the run stands (a process running in the local workdir, the
//! Slurm submission of a shared one). The CLI prints [`WorkdirStatus`] with one printer.

use std::collections::BTreeMap;
use std::path::Path;

use openwit_core::Result;
use openwit_core::summary::StageTotals;
use serde_json::{Value, json};

use crate::dist::{self, DistExecutor};
use crate::exec::RunOptions;
use crate::slurm::{self, Submission};
use crate::state::{RunState, Status};
use crate::store::Store;

/// One stage of a workdir.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub stage: String,
    /// Local: `pending`, `running`, `done`, `failed`, or `interrupted` (recorded as running with
    /// no process holding the workdir). Shared: `done`, `finishing` (every task committed, the
    /// finish step not run yet) or `incomplete`.
    pub state: String,
    /// Tasks done (local) or committed (shared).
    pub tasks_done: u64,
    pub tasks_total: u64,
    pub tasks_failed: u64,
    /// The same totals as the HTML report's funnel: each item counted once.
    pub items_in: u64,
    pub items_out: u64,
    pub drops: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// The stage's last error (local).
    pub error: Option<String>,
    /// (plan index, task id) of the tasks not committed yet (shared).
    pub missing: Vec<(usize, String)>,
    /// The stage's summary line, once done (shared).
    pub summary: Option<String>,
}

/// How the run in a workdir stands, beside its stages.
#[derive(Debug, Clone)]
pub enum Activity {
    /// A local workdir: the pid of the process running in it, if one is.
    Local { running_pid: Option<String> },
    /// A shared workdir (an S3 prefix or a folder of the distributed executor): its current
    /// `openwit submit --slurm` submission, if any.
    Shared { submission: Option<Submission> },
}

/// `openwit status` of one workdir.
#[derive(Debug, Clone)]
pub struct WorkdirStatus {
    /// The folder, or the store's URL.
    pub workdir: String,
    pub activity: Activity,
    /// The stages that have started (local) or been planned (shared), in that order.
    pub rows: Vec<StatusRow>,
}

impl WorkdirStatus {
    /// The status of `workdir`: a shared one ([`dist::is_shared`]) from its store, else the
    /// local run state.
    pub fn read(workdir: &str) -> Result<Self> {
        if dist::is_shared(workdir) {
            Self::shared(workdir)
        } else {
            Self::local(Path::new(workdir))
        }
    }

    /// A local workdir, from its run state (read only: a running process keeps the lock).
    pub fn local(workdir: &Path) -> Result<Self> {
        let st = RunState::open_readonly(workdir)?;
        let running_pid = crate::lock::holder(workdir);
        let mut rows = Vec::new();
        for s in st.stages()? {
            let totals = StageTotals::of(&st.tasks(&s.name)?);
            let state = match (s.state, &running_pid) {
                (Status::Running, None) => "interrupted".to_string(),
                (st, _) => st.as_str().to_string(),
            };
            rows.push(StatusRow {
                stage: s.name,
                state,
                tasks_done: totals.tasks_done,
                tasks_total: s.tasks_total,
                tasks_failed: totals.tasks_failed,
                items_in: totals.items_in,
                items_out: totals.items_out,
                drops: totals.drops,
                elapsed_s: s.elapsed_s,
                error: s.error,
                missing: Vec::new(),
                summary: s.summary,
            });
        }
        Ok(WorkdirStatus {
            workdir: workdir.display().to_string(),
            activity: Activity::Local { running_pid },
            rows,
        })
    }

    /// A shared workdir, from the committed manifests in its store.
    pub fn shared(workdir: &str) -> Result<Self> {
        let ex = DistExecutor::new(
            Store::open(workdir)?,
            dist::default_local_dir(),
            RunOptions::default(),
            &openwit_core::NoProgress,
        );
        let mut rows = Vec::new();
        for name in ex.planned_stages()? {
            let p = ex.progress(&name)?;
            let state = if p.done {
                "done"
            } else if p.missing.is_empty() {
                "finishing"
            } else {
                "incomplete"
            };
            rows.push(StatusRow {
                stage: p.stage,
                state: state.into(),
                tasks_done: p.committed as u64,
                tasks_total: p.tasks_total as u64,
                tasks_failed: 0,
                items_in: p.items_in,
                items_out: p.items_out,
                drops: p.drops,
                elapsed_s: p.elapsed_s,
                error: None,
                missing: p.missing,
                summary: p.summary,
            });
        }
        let submission = slurm::read_submission(ex.store()).ok().flatten();
        Ok(WorkdirStatus {
            workdir: ex.store().url().to_string(),
            activity: Activity::Shared { submission },
            rows,
        })
    }

    /// Whether the workdir is shared.
    pub fn is_shared(&self) -> bool {
        matches!(self.activity, Activity::Shared { .. })
    }

    /// `openwit status --json`: the local workdir's rows with their run-state fields, the
    /// shared one's with the manifests' (`committed`, `missing`, `done`), as each printed them
    /// before they shared one code path.
    pub fn to_json(&self) -> Value {
        match &self.activity {
            Activity::Local { running_pid } => json!({
                "workdir": self.workdir,
                "running_pid": running_pid,
                "stages": self.rows.iter().map(|r| json!({
                    "stage": r.stage,
                    "state": r.state,
                    "tasks_done": r.tasks_done,
                    "tasks_total": r.tasks_total,
                    "tasks_failed": r.tasks_failed,
                    "items_in": r.items_in,
                    "items_out": r.items_out,
                    "drops": r.drops,
                    "elapsed_s": r.elapsed_s,
                    "error": r.error,
                })).collect::<Vec<_>>(),
            }),
            Activity::Shared { submission } => json!({
                "workdir": self.workdir,
                "submission": submission.as_ref().map(|s| &s.id),
                "stages": self.rows.iter().map(|r| json!({
                    "stage": r.stage,
                    // a row of a shared workdir is a stage with a plan
                    "planned": true,
                    "tasks_total": r.tasks_total,
                    "committed": r.tasks_done,
                    "missing": r.missing,
                    "done": r.state == "done",
                    "items_in": r.items_in,
                    "items_out": r.items_out,
                    "drops": r.drops,
                    "elapsed_s": r.elapsed_s,
                    "summary": r.summary,
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use openwit_core::{NoProgress, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
    use serde_json::{Value, json};

    use super::*;
    use crate::{LocalExecutor, Store};

    /// A stage of two tasks, one output each; task 1 drops an item. `version` is its config.
    pub(crate) struct Toy(pub &'static str, pub u32);

    impl Stage for Toy {
        fn name(&self) -> &str {
            self.0
        }
        fn config(&self) -> Value {
            json!({ "version": self.1 })
        }
        fn plan(&self, _: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
            Ok((0..2u64)
                .map(|i| TaskSpec::new(format!("t{i}"), i.into()))
                .collect())
        }
        fn run_task(
            &self,
            ctx: &TaskContext<'_>,
            t: &TaskSpec,
        ) -> openwit_core::Result<TaskReport> {
            let mut f = ctx.create_output(&format!("{}.txt", t.id))?;
            writeln!(f, "{}", t.payload).unwrap();
            let mut r = TaskReport {
                items_in: 3,
                items_out: 3 - t.payload.as_u64().unwrap(),
                ..Default::default()
            };
            r.drops.add("odd", t.payload.as_u64().unwrap());
            Ok(r)
        }
    }

    #[test]
    fn a_local_workdir_has_one_row_per_stage_run() {
        let dir = tempfile::tempdir().unwrap();
        LocalExecutor::new(dir.path(), Default::default(), &NoProgress)
            .unwrap()
            .run_stage(&Toy("toy", 0))
            .unwrap();
        let st = WorkdirStatus::read(&dir.path().to_string_lossy()).unwrap();
        assert!(!st.is_shared());
        assert!(matches!(st.activity, Activity::Local { running_pid: None }));
        let [r] = &st.rows[..] else { panic!("{st:?}") };
        assert_eq!(
            (
                r.stage.as_str(),
                r.state.as_str(),
                r.tasks_done,
                r.tasks_total
            ),
            ("toy", "done", 2, 2)
        );
        assert_eq!((r.items_in, r.items_out, r.drops["odd"]), (6, 5, 1));
        let j = st.to_json();
        assert_eq!(j["running_pid"], Value::Null);
        let keys: Vec<&String> = j["stages"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "drops",
                "elapsed_s",
                "error",
                "items_in",
                "items_out",
                "stage",
                "state",
                "tasks_done",
                "tasks_failed",
                "tasks_total"
            ]
        );
    }

    #[test]
    fn a_shared_workdir_has_one_row_per_planned_stage() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let url = dir.path().join("bucket").to_string_lossy().into_owned();
        let ex = DistExecutor::new(
            Store::open(&url).unwrap(),
            scratch.path().into(),
            RunOptions::default(),
            &NoProgress,
        );
        ex.run_task(&Toy("toy", 0), 1).unwrap();
        let st = WorkdirStatus::read(&url).unwrap();
        assert!(st.is_shared());
        let [r] = &st.rows[..] else { panic!("{st:?}") };
        assert_eq!(
            (r.state.as_str(), r.tasks_done, r.tasks_total),
            ("incomplete", 1, 2)
        );
        assert_eq!(r.missing, [(0, "t0".to_string())]);
        let j = st.to_json();
        assert_eq!(j["stages"][0]["done"], false);
        assert_eq!(j["stages"][0]["committed"], 1);
        assert_eq!(j["stages"][0]["missing"], json!([[0, "t0"]]));
        ex.run_stage(&Toy("toy", 0)).unwrap();
        let st = WorkdirStatus::read(&url).unwrap();
        assert_eq!(st.rows[0].state, "done");
        assert_eq!((st.rows[0].items_in, st.rows[0].items_out), (6, 5));
        assert_eq!(st.to_json()["stages"][0]["done"], true);
    }
}

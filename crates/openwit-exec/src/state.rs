//! The run state: a SQLite database (WAL mode) in the workdir that records stages, their tasks
//! and the fingerprint of the configuration each stage's outputs depend on.
//!
//! A task is done only once its row says so, and the row is written in one transaction after
//! its outputs were renamed into place. Everything a reader trusts is reachable from done rows.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use openwit_core::error::{Error, Result};
use openwit_core::summary::{RunSummary, StageSummary, StageTotals};
use openwit_core::task::{REDUCE_TASK, TaskReport, TaskSpec};
pub use openwit_core::task::{Status, TaskRecord};

/// File name of the run state inside the workdir.
pub use openwit_core::STATE_FILE;
/// Seconds since the Unix epoch.
pub use openwit_core::clock::now;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stages (
    name        TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    config      TEXT NOT NULL,
    state       TEXT NOT NULL,
    tasks_total INTEGER NOT NULL DEFAULT 0,
    started_at  REAL,
    finished_at REAL,
    elapsed_s   REAL NOT NULL DEFAULT 0,
    error       TEXT,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    stage       TEXT NOT NULL,
    task        TEXT NOT NULL,
    ord         INTEGER NOT NULL,
    payload     TEXT NOT NULL DEFAULT 'null',
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    outputs     TEXT NOT NULL DEFAULT '[]',
    items_in    INTEGER NOT NULL DEFAULT 0,
    items_out   INTEGER NOT NULL DEFAULT 0,
    drops       TEXT NOT NULL DEFAULT '{}',
    extra       TEXT NOT NULL DEFAULT 'null',
    last_error  TEXT,
    elapsed_s   REAL NOT NULL DEFAULT 0,
    finished_at REAL,
    PRIMARY KEY (stage, task)
);
";

/// One stage's row.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub name: String,
    pub fingerprint: String,
    #[serde(skip)]
    pub config: Value,
    pub state: Status,
    pub tasks_total: u64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub elapsed_s: f64,
    pub error: Option<String>,
    pub summary: Option<String>,
}

/// The run state database of one workdir.
pub struct RunState {
    conn: Connection,
    path: PathBuf,
}

impl RunState {
    /// Opens (creating if needed) the run state in `workdir`.
    pub fn open(workdir: &Path) -> Result<Self> {
        std::fs::create_dir_all(workdir).map_err(|e| Error::io(workdir, e))?;
        let path = workdir.join(STATE_FILE);
        let conn = Connection::open(&path).map_err(|e| Error::State {
            path: path.clone(),
            source: e.into(),
        })?;
        let st = RunState { conn, path };
        st.wrap(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.busy_timeout(std::time::Duration::from_secs(30))?;
            c.execute_batch(SCHEMA)
        })?;
        Ok(st)
    }

    /// Opens an existing run state read-only (for `openwit status`).
    pub fn open_readonly(workdir: &Path) -> Result<Self> {
        let path = workdir.join(STATE_FILE);
        if !path.exists() {
            return Err(Error::Config(format!(
                "{}: no run state here; is this a workdir made by `openwit run`?",
                path.display()
            )));
        }
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
                Error::State {
                    path: path.clone(),
                    source: e.into(),
                }
            })?;
        let st = RunState { conn, path };
        st.wrap(|c| c.busy_timeout(std::time::Duration::from_secs(30)))?;
        Ok(st)
    }

    fn wrap<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        f(&self.conn).map_err(|e| Error::State {
            path: self.path.clone(),
            source: e.into(),
        })
    }

    /// The row of stage `name`, if it ever ran.
    pub fn stage(&self, name: &str) -> Result<Option<StageRecord>> {
        self.wrap(|c| {
            c.query_row(
                "SELECT name, fingerprint, config, state, tasks_total, started_at, finished_at, elapsed_s, error, summary
                 FROM stages WHERE name = ?1",
                params![name],
                stage_from_row,
            )
            .optional()
        })
    }

    /// All stage rows, in the order they were first started.
    pub fn stages(&self) -> Result<Vec<StageRecord>> {
        self.wrap(|c| {
            let mut st = c.prepare(
                "SELECT name, fingerprint, config, state, tasks_total, started_at, finished_at, elapsed_s, error, summary
                 FROM stages ORDER BY rowid",
            )?;
            st.query_map([], stage_from_row)?.collect()
        })
    }

    /// Records the start of a stage with its planned tasks. Tasks already known keep their
    /// status; planned tasks not known yet are added; known tasks no longer planned are removed.
    pub fn begin_stage(
        &mut self,
        name: &str,
        fingerprint: &str,
        config: &Value,
        tasks: &[TaskSpec],
    ) -> Result<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| Error::State {
            path: path.clone(),
            source: e.into(),
        })?;
        let r: rusqlite::Result<()> = (|| {
            tx.execute(
                "INSERT INTO stages (name, fingerprint, config, state, tasks_total, started_at)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET fingerprint = ?2, config = ?3, state = 'running',
                     tasks_total = ?4, started_at = COALESCE(started_at, ?5), error = NULL",
                params![
                    name,
                    fingerprint,
                    config.to_string(),
                    tasks.len() as i64,
                    now()
                ],
            )?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS planned (task TEXT PRIMARY KEY)",
                [],
            )?;
            tx.execute("DELETE FROM temp.planned", [])?;
            {
                let mut ins = tx.prepare(
                    "INSERT INTO tasks (stage, task, ord, payload) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(stage, task) DO UPDATE SET ord = ?3, payload = ?4",
                )?;
                let mut plan =
                    tx.prepare("INSERT OR IGNORE INTO temp.planned (task) VALUES (?1)")?;
                for (i, t) in tasks.iter().enumerate() {
                    ins.execute(params![name, t.id, i as i64, t.payload.to_string()])?;
                    plan.execute(params![t.id])?;
                }
            }
            tx.execute(
                "DELETE FROM tasks WHERE stage = ?1 AND task NOT IN (SELECT task FROM temp.planned)
                     AND task <> ?2",
                params![name, REDUCE_TASK],
            )?;
            Ok(())
        })();
        r.map_err(|e| Error::State {
            path: path.clone(),
            source: e.into(),
        })?;
        tx.commit().map_err(|e| Error::State {
            path,
            source: e.into(),
        })
    }

    /// Counts an attempt of a task and marks it running.
    pub fn task_started(&self, stage: &str, task: &str) -> Result<u32> {
        self.wrap(|c| {
            c.execute(
                "INSERT INTO tasks (stage, task, ord) VALUES (?1, ?2, 1000000000)
                 ON CONFLICT(stage, task) DO NOTHING",
                params![stage, task],
            )?;
            c.query_row(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1
                 WHERE stage = ?1 AND task = ?2 RETURNING attempts",
                params![stage, task],
                |r| r.get::<_, u32>(0),
            )
        })
    }

    /// Marks a task done with its outputs and counts, in one transaction.
    pub fn task_done(
        &mut self,
        stage: &str,
        task: &str,
        outputs: &[String],
        report: &TaskReport,
        elapsed_s: f64,
    ) -> Result<()> {
        let outputs = serde_json::to_string(outputs).unwrap_or_else(|_| "[]".into());
        let drops = serde_json::to_string(&report.drops.0).unwrap_or_else(|_| "{}".into());
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| Error::State {
            path: path.clone(),
            source: e.into(),
        })?;
        tx.execute(
            "UPDATE tasks SET status = 'done', outputs = ?3, items_in = ?4, items_out = ?5, drops = ?6,
                 extra = ?7, last_error = NULL, elapsed_s = ?8, finished_at = ?9
             WHERE stage = ?1 AND task = ?2",
            params![
                stage,
                task,
                outputs,
                report.items_in as i64,
                report.items_out as i64,
                drops,
                report.extra.to_string(),
                elapsed_s,
                now()
            ],
        )
        .map_err(|e| Error::State {
            path: path.clone(),
            source: e.into(),
        })?;
        tx.commit().map_err(|e| Error::State {
            path,
            source: e.into(),
        })
    }

    /// Records a failed attempt.
    pub fn task_failed(&self, stage: &str, task: &str, error: &str) -> Result<()> {
        self.wrap(|c| {
            c.execute(
                "UPDATE tasks SET status = 'failed', last_error = ?3 WHERE stage = ?1 AND task = ?2",
                params![stage, task, error],
            )
            .map(|_| ())
        })
    }

    /// Sets a stage's final state and adds this run's wall time to its elapsed time.
    pub fn finish_stage(
        &self,
        name: &str,
        state: Status,
        elapsed_s: f64,
        error: Option<&str>,
        summary: Option<&str>,
    ) -> Result<()> {
        self.wrap(|c| {
            c.execute(
                "UPDATE stages SET state = ?2, elapsed_s = elapsed_s + ?3, error = ?4,
                     summary = COALESCE(?5, summary),
                     finished_at = CASE WHEN ?2 = 'done' THEN ?6 ELSE finished_at END
                 WHERE name = ?1",
                params![name, state.as_str(), elapsed_s, error, summary, now()],
            )
            .map(|_| ())
        })
    }

    /// Forgets a stage and its tasks (its outputs are removed by the caller).
    pub fn reset_stage(&self, name: &str) -> Result<()> {
        self.wrap(|c| {
            c.execute("DELETE FROM tasks WHERE stage = ?1", params![name])?;
            c.execute("DELETE FROM stages WHERE name = ?1", params![name])
                .map(|_| ())
        })
    }

    /// What the run did so far: every stage that started, in the order it first started, with
    /// its totals (given to stages that read it, and to `openwit report WORKDIR`).
    pub fn summary(&self) -> Result<RunSummary> {
        let mut stages = Vec::new();
        for s in self.stages()? {
            let totals = StageTotals::of(&self.tasks(&s.name)?);
            stages.push(StageSummary {
                stage: s.name,
                state: s.state,
                tasks_total: s.tasks_total,
                totals,
                elapsed_s: s.elapsed_s,
            });
        }
        Ok(RunSummary { stages })
    }

    /// The done tasks of each of `stages` (a stage's upstream stages), in plan order: what a
    /// [`StageContext`](openwit_core::StageContext) reads them from. A stage with no record has
    /// none.
    pub fn done_tasks_of(
        &self,
        stages: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<TaskRecord>>> {
        let mut map = std::collections::HashMap::new();
        for u in stages {
            let tasks: Vec<TaskRecord> = self
                .tasks(u)?
                .into_iter()
                .filter(|t| t.status == Status::Done)
                .collect();
            map.insert(u.clone(), tasks);
        }
        Ok(map)
    }

    /// The tasks of a stage in plan order (the reduce task last).
    pub fn tasks(&self, stage: &str) -> Result<Vec<TaskRecord>> {
        self.wrap(|c| {
            let mut st = c.prepare(
                "SELECT stage, task, ord, payload, status, attempts, outputs, items_in, items_out, drops,
                        extra, last_error, elapsed_s
                 FROM tasks WHERE stage = ?1 ORDER BY ord, task",
            )?;
            st.query_map(params![stage], |r| {
                Ok(TaskRecord {
                    stage: r.get(0)?,
                    task: r.get(1)?,
                    ord: r.get(2)?,
                    payload: parse_json(&r.get::<_, String>(3)?),
                    status: Status::parse(&r.get::<_, String>(4)?),
                    attempts: r.get(5)?,
                    outputs: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                    items_in: r.get::<_, i64>(7)? as u64,
                    items_out: r.get::<_, i64>(8)? as u64,
                    drops: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                    extra: parse_json(&r.get::<_, String>(10)?),
                    last_error: r.get(11)?,
                    elapsed_s: r.get(12)?,
                })
            })?
            .collect()
        })
    }
}

fn parse_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

fn stage_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StageRecord> {
    Ok(StageRecord {
        name: r.get(0)?,
        fingerprint: r.get(1)?,
        config: parse_json(&r.get::<_, String>(2)?),
        state: Status::parse(&r.get::<_, String>(3)?),
        tasks_total: r.get::<_, i64>(4)? as u64,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        elapsed_s: r.get(7)?,
        error: r.get(8)?,
        summary: r.get(9)?,
    })
}

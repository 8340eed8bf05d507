//! `openwit-exec`: the engine that runs [`Stage`](openwit_core::Stage)s (the contract is in
//! `openwit-core`).
//!
//! - [`Executor`]: what the CLI does with an executor, implemented by both:
//!   [`LocalExecutor`] ([`exec`]) runs a stage's pending tasks in parallel in one workdir,
//!   retries, commits outputs atomically and records them in the [`RunState`] ([`state`],
//!   SQLite, WAL) only afterwards; a rerun skips done tasks, removes partial outputs and refuses
//!   a changed configuration. [`DistExecutor`] ([`dist`]) runs the same stages task by task in
//!   independent processes over a [`Store`] ([`store`]: a local folder or an S3 prefix) with a
//!   put-if-absent commit protocol.
//! - [`lock`]: one process per local workdir.
//! - [`status`]: what `openwit status` shows of a workdir, local or shared, as one kind of row.
//! - [`slurm`] and [`k8s`]: the cluster chaining policy (a job array per stage, a finish job
//!   that submits the next stage) over the distributed executor's store.
//!
//! ```
//! use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec, Result};
//! use openwit_exec::{Executor, LocalExecutor, StageOutcome};
//! use std::io::Write;
//!
//! struct Hello;
//! impl Stage for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     fn config(&self) -> serde_json::Value { serde_json::json!({"greeting": "hi"}) }
//!     fn plan(&self, _: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
//!         Ok((0..3).map(|i| TaskSpec::new(format!("part-{i}"), i.into())).collect())
//!     }
//!     fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> Result<TaskReport> {
//!         let mut f = ctx.create_output(&format!("{}.txt", t.id))?;
//!         writeln!(f, "hi {}", t.payload).unwrap();
//!         Ok(TaskReport { items_in: 1, items_out: 1, ..Default::default() })
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut ex = LocalExecutor::new(dir.path(), Default::default(), &openwit_core::NoProgress).unwrap();
//! assert!(matches!(ex.run_stage(&Hello).unwrap(), StageOutcome::Ran { ran: 3, .. }));
//! assert_eq!(ex.run_stage(&Hello).unwrap(), StageOutcome::UpToDate);
//! assert!(dir.path().join("hello/part-2.txt").exists());
//! ```

pub mod dist;
pub mod exec;
pub mod k8s;
pub mod lock;
pub mod slurm;
pub mod state;
pub mod status;
pub mod store;

pub use dist::DistExecutor;
pub use exec::{Executor, LocalExecutor, RunOptions, StageOutcome};
pub use state::{RunState, StageRecord};
pub use status::{StatusRow, WorkdirStatus};
pub use store::Store;

//! `openwit-core`: what every OpenWIT stage shares.
//!
//! - [`Stage`]: the contract a stage implements — split the work into tasks ([`Stage::plan`]),
//!   run one task writing outputs through a [`TaskContext`] ([`Stage::run_task`]), optionally
//!   reduce over all tasks ([`Stage::reduce`]).
//! - [`Executor`]: runs a stage's pending tasks in parallel, retries, commits outputs atomically
//!   and records them in the [`RunState`] (SQLite, WAL) only afterwards; a rerun skips done
//!   tasks, removes partial outputs and refuses a changed configuration.
//! - [`atomic`]: temp-file + fsync + rename writes; [`lock`]: one process per workdir.
//! - [`config`]: strict TOML parsing with `file:line:column` errors, fingerprints;
//!   [`PipelineDoc`]: a pipeline file, each stage's table read into its typed config; every stage
//!   is built from it the same way ([`FromConfig`], [`stage::build_stage`]).
//! - [`text`]: MetaCLIP's spacing and matching rule.
//! - [`pipeline`]: the `[pipeline]` table (its `proxy` rule too; the HTTP client itself, robots.txt
//!   and opt-outs are in `openwit-http`).
//!
//! ```
//! use openwit_core::{Stage, StageContext, TaskContext, TaskReport, TaskSpec, Result};
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
//! let mut ex = openwit_core::Executor::new(dir.path(), Default::default(), &openwit_core::NoProgress).unwrap();
//! assert!(matches!(ex.run_stage(&Hello).unwrap(), openwit_core::StageOutcome::Ran { ran: 3, .. }));
//! assert_eq!(ex.run_stage(&Hello).unwrap(), openwit_core::StageOutcome::UpToDate);
//! assert!(dir.path().join("hello/part-2.txt").exists());
//! ```

pub mod artifact;
pub mod atomic;
pub mod clock;
pub mod config;
pub mod dist;
pub mod error;
pub mod escape;
pub mod exec;
pub mod lock;
pub mod pipeline;
pub mod pipeline_file;
pub mod progress;
pub mod stage;
pub mod state;
pub mod store;
pub mod task;
pub mod text;

pub use error::{Error, IoContext, Result};
pub use exec::{Executor, RunOptions, StageOutcome, panic_message};
pub use pipeline::PipelineSettings;
pub use pipeline_file::PipelineDoc;
pub use progress::{NoProgress, Reporter};
pub use stage::{
    Drops, FromConfig, REDUCE_TASK, Stage, StageContext, StageList, TaskContext, TaskProcesses,
    TaskReport, TaskSpec,
};
pub use state::{RunState, StageRecord, Status, TaskRecord};

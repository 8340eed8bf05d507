//! `openwit-core`: what every OpenWIT stage shares — the contract, not the engine (the
//! executors, the run state and the object store are in `openwit-exec`).
//!
//! - [`Stage`]: the contract a stage implements — split the work into tasks ([`Stage::plan`]),
//!   run one task writing outputs through a [`TaskContext`] ([`Stage::run_task`]), optionally
//!   reduce over all tasks ([`Stage::reduce`]). The records both sides share are in [`task`];
//!   what a run did so far, per stage, in [`summary`] ([`RunSummary`]).
//! - [`atomic`]: temp-file + fsync + rename writes.
//! - [`config`]: strict TOML parsing with `file:line:column` errors, fingerprints;
//!   [`pipeline`]: the `[pipeline]` table; [`PipelineDoc`]: a pipeline file, each stage's table
//!   read into its typed config; every stage is built from it the same way ([`FromConfig`],
//!   [`stage::build_stage`]).
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
//! // An executor (`openwit_exec::LocalExecutor`) plans, runs the tasks and commits their outputs.
//! let dir = std::path::Path::new("/tmp");
//! let upstream = Default::default();
//! let plan = Hello.plan(&StageContext::new(dir, "hello", 1, &upstream)).unwrap();
//! assert_eq!(plan.len(), 3);
//! ```

pub mod artifact;
pub mod atomic;
pub mod clock;
pub mod config;
pub mod error;
pub mod escape;
pub mod pipeline;
pub mod pipeline_file;
pub mod progress;
pub mod stage;
pub mod summary;
pub mod task;
pub mod text;

pub use error::{Error, IoContext, Result, panic_message};
pub use pipeline::PipelineSettings;
pub use pipeline_file::PipelineDoc;
pub use progress::{NoProgress, Reporter};
pub use stage::{
    Drops, FromConfig, REDUCE_TASK, Stage, StageContext, StageList, TaskContext, TaskEnv,
    TaskProcesses, TaskReport, TaskSpec,
};
pub use summary::{RunSummary, StageSummary, StageTotals};
pub use task::{Status, TaskRecord};

/// File name of the run state (`openwit-exec`'s SQLite database) in a local workdir; the web UI
/// never serves it.
pub const STATE_FILE: &str = "openwit.sqlite";

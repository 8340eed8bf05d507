//! Running one stage in a test or an example with the local executor: the set-up every stage's
//! tests repeat (one attempt per task, so a failure shows at once; no progress display).

use std::path::Path;

use openwit_core::NoProgress;
use openwit_core::error::Result;
use openwit_core::stage::Stage;
use openwit_exec::{LocalExecutor, RunOptions, StageOutcome};

/// A local executor on `workdir` (locked while it lives) running `jobs` tasks at once, one attempt
/// per task, reporting nothing.
pub fn executor(workdir: &Path, jobs: usize) -> LocalExecutor<'static> {
    LocalExecutor::new(
        workdir,
        RunOptions {
            jobs,
            max_attempts: 1,
        },
        &NoProgress,
    )
    .unwrap()
}

/// Runs `stage` in `workdir` with [`executor`]; its outcome, or the error that stopped it.
pub fn run_stage(workdir: &Path, jobs: usize, stage: &dyn Stage) -> Result<StageOutcome> {
    executor(workdir, jobs).run_stage(stage)
}

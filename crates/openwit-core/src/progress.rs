//! Progress reporting. Libraries report through [`Reporter`]; only the binary draws bars.

/// Receives progress events from the executor and from running tasks.
pub trait Reporter: Send + Sync {
    /// A stage starts (or resumes) with `done` of `total` tasks already finished.
    fn stage_started(&self, _stage: &str, _total: u64, _done: u64) {}
    /// One more task of `stage` finished.
    fn task_finished(&self, _stage: &str, _task: &str, _items_out: u64) {}
    /// `n` more items processed inside a task.
    fn items(&self, _stage: &str, _n: u64) {}
    /// A task that runs in steps (a training run) finished step `done` of `total`; `msg` is its
    /// latest figures in a few words (loss, rate).
    fn steps(&self, _stage: &str, _done: u64, _total: u64, _msg: &str) {}
    /// The stage ended.
    fn stage_finished(&self, _stage: &str, _ok: bool) {}
}

/// A reporter that ignores everything.
pub struct NoProgress;
impl Reporter for NoProgress {}

//! What a run did so far, per stage, as the executors record it: [`RunSummary`] (given to stages
//! that ask for it, such as the report, through their context) and [`StageTotals`] (one stage's
//! figures over its task rows, as `openwit status` and the report show them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::task::{REDUCE_TASK, Status, TaskRecord};

/// One stage's totals over its task rows, each item counted once: `items_in` is what the tasks
/// read, `items_out` what the reduce step kept when the stage has a done one (it sees every item
/// the tasks wrote), else what the tasks wrote; drops come from both. `openwit status` and the
/// HTML report both show these numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTotals {
    /// Done tasks, the reduce step not counted.
    pub tasks_done: u64,
    /// Failed tasks, the reduce step not counted.
    pub tasks_failed: u64,
    pub items_in: u64,
    pub items_out: u64,
    pub drops: BTreeMap<String, u64>,
}

impl StageTotals {
    /// The totals of a stage's task rows (the reduce step's row among them, if any).
    pub fn of(tasks: &[TaskRecord]) -> StageTotals {
        let reduced = tasks
            .iter()
            .any(|t| t.task == REDUCE_TASK && t.status == Status::Done);
        let mut s = StageTotals::default();
        for t in tasks {
            let is_reduce = t.task == REDUCE_TASK;
            match t.status {
                Status::Failed if !is_reduce => s.tasks_failed += 1,
                Status::Done => {
                    if is_reduce {
                        s.items_out += t.items_out;
                    } else {
                        s.tasks_done += 1;
                        s.items_in += t.items_in;
                        if !reduced {
                            s.items_out += t.items_out;
                        }
                    }
                    for (k, v) in &t.drops {
                        *s.drops.entry(k.clone()).or_insert(0) += v;
                    }
                }
                _ => {}
            }
        }
        s
    }
}

/// One stage of a [`RunSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub stage: String,
    pub state: Status,
    /// Planned tasks, the reduce step not counted.
    pub tasks_total: u64,
    pub totals: StageTotals,
    /// Wall time of the stage over all its runs, in seconds.
    pub elapsed_s: f64,
}

/// The stages of a workdir that have started, in the order they first started, with their
/// figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub stages: Vec<StageSummary>,
}

//! The records of the stage contract that both sides share: a task as a stage plans it
//! ([`TaskSpec`]), what it reports when done ([`TaskReport`], with its [`Drops`]), and its row in
//! the run state ([`TaskRecord`], [`Status`]). `stage.rs` (the contract) and the executors'
//! run state (`openwit-exec`) both build on these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Task id of a stage's reduce step.
pub const REDUCE_TASK: &str = "_reduce";

/// One unit of work: a stable id (unique in the stage) and whatever the stage needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub id: String,
    pub payload: Value,
}

impl TaskSpec {
    pub fn new(id: impl Into<String>, payload: Value) -> Self {
        TaskSpec {
            id: id.into(),
            payload,
        }
    }
}

/// Drops by reason. A drop is an expected, counted outcome (a broken page, a corrupt image),
/// never an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops(pub BTreeMap<String, u64>);

impl Drops {
    /// Counts `n` drops for `reason`.
    pub fn add(&mut self, reason: impl AsRef<str>, n: u64) {
        if n > 0 {
            *self.0.entry(reason.as_ref().to_string()).or_default() += n;
        }
    }
    /// Counts one drop for `reason`.
    pub fn inc(&mut self, reason: impl AsRef<str>) {
        self.add(reason, 1);
    }
    /// Adds all of `other`.
    pub fn merge(&mut self, other: &Drops) {
        for (k, v) in &other.0 {
            self.add(k, *v);
        }
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn get(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }
}

/// What a finished task reports: items read, items written, drops by reason, and anything the
/// stage wants to keep for its reduce step or for downstream stages (`extra`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub items_in: u64,
    pub items_out: u64,
    pub drops: Drops,
    pub extra: Value,
}

/// The state of a stage or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }
    /// The inverse of [`Status::as_str`] (anything unknown is `Pending`).
    pub fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "done" => Status::Done,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// One task's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub stage: String,
    pub task: String,
    pub ord: i64,
    pub payload: Value,
    pub status: Status,
    pub attempts: u32,
    /// Output paths relative to the workdir.
    pub outputs: Vec<String>,
    pub items_in: u64,
    pub items_out: u64,
    pub drops: BTreeMap<String, u64>,
    pub extra: Value,
    pub last_error: Option<String>,
    pub elapsed_s: f64,
}

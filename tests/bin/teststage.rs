//! The `openwit` binary plus one stage defined only for the frame's tests: `toy`.
//!
//! `toy` splits its work into `tasks` tasks; each computes `items` sha256 chains of `work`
//! rounds and writes them to `toy/part-NNNN.txt`; the reduce step concatenates the parts into
//! `toy/all.txt`. `OPENWIT_TOY_FAIL=T[:N]` makes task T fail its first N attempts (all when N
//! is left out) without changing the configuration's fingerprint.

use std::io::Write;
use std::sync::Arc;

use openwit_cli::{PipelineDoc, StageEntry};
use openwit_core::{
    Error, IoContext, Result, Stage, StageContext, TaskContext, TaskRecord, TaskReport, TaskSpec,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyConfig {
    #[serde(default = "d_tasks")]
    tasks: u32,
    #[serde(default = "d_items")]
    items: u32,
    #[serde(default = "d_work")]
    work: u32,
    #[serde(default)]
    label: String,
}
fn d_tasks() -> u32 {
    8
}
fn d_items() -> u32 {
    40
}
fn d_work() -> u32 {
    2000
}

struct Toy(ToyConfig);

fn chain(label: &str, task: u32, item: u32, rounds: u32) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::digest(format!("{label}/{task}/{item}").as_bytes());
    for _ in 0..rounds {
        h = Sha256::digest(h);
    }
    hex::encode(h)
}

fn injected_failure(task: u32, attempt: u32) -> bool {
    let Ok(spec) = std::env::var("OPENWIT_TOY_FAIL") else {
        return false;
    };
    let mut it = spec.split(':');
    let t: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(u32::MAX);
    let n: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(u32::MAX);
    t == task && attempt <= n
}

impl Stage for Toy {
    fn name(&self) -> &str {
        "toy"
    }
    fn config(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap()
    }
    fn plan(&self, _ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        Ok((0..self.0.tasks)
            .map(|i| TaskSpec::new(format!("part-{i:04}"), i.into()))
            .collect())
    }
    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> Result<TaskReport> {
        let t = task.payload.as_u64().unwrap() as u32;
        if injected_failure(t, ctx.attempt) {
            return Err(Error::Stage(format!("injected failure in task {t}")));
        }
        let rel = format!("{}.txt", task.id);
        let path = ctx.output_path(&rel)?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).at(&path)?);
        for item in 0..self.0.items {
            writeln!(
                f,
                "{t} {item} {}",
                chain(&self.0.label, t, item, self.0.work)
            )
            .at(&path)?;
            ctx.progress(1);
        }
        f.flush().at(&path)?;
        let mut report = TaskReport {
            items_in: u64::from(self.0.items),
            items_out: u64::from(self.0.items),
            ..Default::default()
        };
        report.drops.add("odd_task", u64::from(t % 2));
        Ok(report)
    }
    fn reduce(&self, ctx: &TaskContext<'_>, tasks: &[TaskRecord]) -> Result<Option<TaskReport>> {
        let path = ctx.output_path("all.txt")?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).at(&path)?);
        let mut n = 0;
        for t in tasks {
            for o in &t.outputs {
                let p = ctx.workdir.join(o);
                let text = std::fs::read_to_string(&p).at(&p)?;
                n += text.lines().count() as u64;
                out.write_all(text.as_bytes()).at(&path)?;
            }
        }
        out.flush().at(&path)?;
        Ok(Some(TaskReport {
            items_in: n,
            items_out: n,
            ..Default::default()
        }))
    }
    fn summary(&self, _ctx: &StageContext<'_>, tasks: &[TaskRecord]) -> Option<String> {
        Some(format!("toy: {} tasks recorded", tasks.len()))
    }
}

fn build(doc: &PipelineDoc) -> Result<Option<Arc<dyn Stage>>> {
    Ok(doc
        .section::<ToyConfig>("toy")?
        .map(|c| Arc::new(Toy(c)) as Arc<dyn Stage>))
}

fn main() -> std::process::ExitCode {
    openwit_cli::main_with(vec![StageEntry {
        name: "toy",
        about: "A stage for the frame's tests: hash chains split into tasks",
        build,
    }])
}

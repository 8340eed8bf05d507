//! The distributed executor's commit protocol on a real local store (and an in-memory one):
//! same outputs as the local executor, exactly one winner per task under racing attempts,
//! missing tasks named, changed configurations refused, garbage collected.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use openwit_core::{
    IoContext, NoProgress, Result, Stage, StageContext, TaskContext, TaskRecord, TaskReport,
    TaskSpec,
};
use openwit_exec::dist::{self, DistExecutor, TaskOutcome};
use openwit_exec::store::Store;
use openwit_exec::{LocalExecutor, RunOptions, StageOutcome};
use serde_json::{Value, json};

/// Task i writes `numbers/part-i.txt` and a folder `numbers/dir-i/` of two files; the reduce
/// step writes `numbers/total.txt`.
struct Numbers {
    tasks: u32,
    salt: u32,
    barrier: Option<Arc<Barrier>>,
}

impl Stage for Numbers {
    fn name(&self) -> &str {
        "numbers"
    }
    fn config(&self) -> Value {
        json!({"tasks": self.tasks, "salt": self.salt})
    }
    fn plan(&self, _: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        Ok((0..self.tasks)
            .map(|i| TaskSpec::new(format!("part-{i}"), i.into()))
            .collect())
    }
    fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> Result<TaskReport> {
        let i = t.payload.as_u64().unwrap();
        let mut f = ctx.create_output(&format!("part-{i}.txt"))?;
        for k in 0..10 {
            writeln!(f, "{}", i * 100 + k + u64::from(self.salt)).unwrap();
        }
        f.flush().unwrap();
        let d = ctx.output_path(&format!("dir-{i}"))?;
        std::fs::create_dir_all(d.join("sub")).at(&d)?;
        std::fs::write(d.join("a.bin"), vec![i as u8; 1000]).at(&d)?;
        std::fs::write(d.join("sub/b.txt"), format!("task {i}")).at(&d)?;
        if let Some(b) = &self.barrier {
            b.wait();
        }
        let mut r = TaskReport {
            items_in: 10,
            items_out: 10,
            ..Default::default()
        };
        r.drops.add("odd", i % 2);
        r.extra = json!({"task": i});
        Ok(r)
    }
    fn reduce(&self, ctx: &TaskContext<'_>, tasks: &[TaskRecord]) -> Result<Option<TaskReport>> {
        let mut sum = 0u64;
        for t in tasks {
            let p = ctx.workdir.join(&t.outputs[0]);
            for l in std::fs::read_to_string(&p).at(&p)?.lines() {
                sum += l.parse::<u64>().unwrap();
            }
        }
        let mut f = ctx.create_output("total.txt")?;
        writeln!(f, "{sum}").unwrap();
        f.flush().unwrap();
        Ok(Some(TaskReport {
            items_in: tasks.len() as u64,
            items_out: 1,
            ..Default::default()
        }))
    }
    fn summary(&self, ctx: &StageContext<'_>, tasks: &[TaskRecord]) -> Option<String> {
        let total = std::fs::read_to_string(ctx.stage_dir().join("total.txt")).ok()?;
        Some(format!("{} records, total {}", tasks.len(), total.trim()))
    }
}

/// Reads every upstream part and the reduce output; one task per upstream part.
struct Doubler;

impl Stage for Doubler {
    fn name(&self) -> &str {
        "doubler"
    }
    fn upstream(&self) -> Vec<String> {
        vec!["numbers".into()]
    }
    fn config(&self) -> Value {
        json!({})
    }
    fn plan(&self, ctx: &StageContext<'_>) -> Result<Vec<TaskSpec>> {
        Ok(ctx
            .upstream_outputs("numbers")
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .filter(|p| !p.ends_with("total.txt"))
            .map(|p| {
                // An absolute path in the payload, as real stages do: the plan's workdir and
                // each task's are different folders under the distributed executor.
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                TaskSpec::new(name.clone(), json!({"name": name, "path": p}))
            })
            .collect())
    }
    fn run_task(&self, ctx: &TaskContext<'_>, t: &TaskSpec) -> Result<TaskReport> {
        let name = t.payload["name"].as_str().unwrap();
        let src = Path::new(t.payload["path"].as_str().unwrap());
        assert!(
            src.starts_with(ctx.workdir),
            "payload paths point into this workdir"
        );
        let total = ctx.workdir.join("numbers/total.txt");
        let total = std::fs::read_to_string(&total).at(&total)?;
        let blob = ctx
            .workdir
            .join("numbers")
            .join(name.replace("part", "dir"));
        let b = std::fs::read_to_string(blob.join("sub/b.txt")).at(&blob)?;
        let mut f = ctx.create_output(&format!("{name}.txt"))?;
        for l in std::fs::read_to_string(src).at(src)?.lines() {
            writeln!(f, "{}", l.parse::<u64>().unwrap() * 2).unwrap();
        }
        writeln!(f, "{} {}", total.trim(), b).unwrap();
        f.flush().unwrap();
        Ok(TaskReport {
            items_in: 10,
            items_out: 10,
            ..Default::default()
        })
    }
}

fn opts() -> RunOptions {
    RunOptions {
        jobs: 3,
        max_attempts: 1,
    }
}

/// A distributed executor on `store` (three jobs, one attempt), its node cache in `scratch`.
fn dist_on(store: Store, scratch: PathBuf) -> DistExecutor<'static> {
    DistExecutor::new(store, scratch, opts(), &NoProgress)
}

impl Numbers {
    /// `tasks` tasks whose files depend on `salt`, not waiting on each other.
    fn new(tasks: u32, salt: u32) -> Numbers {
        Numbers {
            tasks,
            salt,
            barrier: None,
        }
    }
}

/// Every file under `dir` (relative path -> bytes), skipping the run state and the lock.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("openwit.sqlite") || rel.starts_with(".openwit") || rel == "logs" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The committed files of `stages` as the manifests name them (path -> bytes).
fn committed(store: &Store, stages: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let ex = dist_on(
        Store::open(store.url()).unwrap(),
        tempfile::tempdir().unwrap().keep(),
    );
    let mut out = BTreeMap::new();
    for s in stages {
        let done = ex.read_stage(s).unwrap().expect("stage done");
        for m in done.tasks {
            for f in m.files {
                let b = store.get(&f.key).unwrap().expect("committed data exists");
                assert_eq!(b.len() as u64, f.size);
                assert!(
                    out.insert(f.path, b.to_vec()).is_none(),
                    "one file per path"
                );
            }
        }
    }
    out
}

#[test]
fn distributed_outputs_equal_the_local_executors() {
    let local = tempfile::tempdir().unwrap();
    let stages: Vec<Box<dyn Stage>> = vec![Box::new(Numbers::new(5, 0)), Box::new(Doubler)];
    {
        let mut ex = LocalExecutor::new(local.path(), opts(), &NoProgress).unwrap();
        for s in &stages {
            ex.run_stage(s.as_ref()).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bucket").to_str().unwrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let ex = dist_on(Store::open(store.url()).unwrap(), scratch.path().into());
    let mut summaries = Vec::new();
    for s in &stages {
        match ex.run_stage(s.as_ref()).unwrap() {
            StageOutcome::Ran {
                ran,
                total,
                summary,
                ..
            } => {
                assert_eq!(ran, total);
                summaries.push(summary);
            }
            o => panic!("expected a run, got {o:?}"),
        }
    }
    assert_eq!(
        summaries[0].as_deref(),
        Some("6 records, total 10225"),
        "the summary sees the stage's reduce output"
    );
    assert_eq!(
        committed(&store, &["numbers", "doubler"]),
        files(local.path())
    );
    // A second run does nothing.
    for s in &stages {
        assert_eq!(ex.run_stage(s.as_ref()).unwrap(), StageOutcome::UpToDate);
    }
    assert_eq!(
        ex.run_task(stages[0].as_ref(), 2).unwrap(),
        TaskOutcome::AlreadyCommitted
    );
    let p = ex.progress("numbers").unwrap();
    assert!(p.done);
    assert_eq!(
        (p.tasks_total, p.committed, p.items_in, p.items_out),
        (5, 5, 50, 1)
    );
    assert_eq!(p.drops.get("odd"), Some(&2));
    // The node-local mirrors are gone; the cache holds what was read.
    assert_eq!(
        std::fs::read_dir(scratch.path().join("work"))
            .unwrap()
            .count(),
        0
    );
    // Nothing to collect.
    let g = dist::gc(&store, 0, false).unwrap();
    assert_eq!((g.losers, g.stale), (0, 0));
}

#[test]
fn racing_attempts_commit_exactly_once_and_the_loser_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("bucket").to_string_lossy().into_owned();
    let barrier = Arc::new(Barrier::new(2));
    let stage = Numbers {
        tasks: 3,
        salt: 7,
        barrier: Some(barrier),
    };
    let outcomes: Vec<TaskOutcome> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let url = url.clone();
                let stage = &stage;
                s.spawn(move || {
                    let scratch = tempfile::tempdir().unwrap();
                    let ex = dist_on(Store::open(&url).unwrap(), scratch.path().into());
                    ex.run_task(stage, 1).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = outcomes.clone();
    sorted.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(sorted, vec![TaskOutcome::Committed, TaskOutcome::LostRace]);
    let store = Store::open(&url).unwrap();
    // Exactly one attempt's data remains, the one the manifest names.
    let data = store.list("numbers/_attempts/part-1").unwrap();
    let attempts: std::collections::BTreeSet<&str> = data
        .iter()
        .map(|e| e.key.split('/').nth(3).unwrap())
        .collect();
    assert_eq!(attempts.len(), 1);
    let m: dist::Manifest = serde_json::from_slice(
        &store
            .get("_openwit/tasks/numbers/part-1.json")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(attempts.into_iter().next().unwrap(), m.attempt);
    assert_eq!(m.files.len(), 3);
    for f in &m.files {
        assert!(store.get(&f.key).unwrap().is_some(), "{} exists", f.key);
    }
}

#[test]
fn finishing_names_the_missing_tasks_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("bucket").to_string_lossy().into_owned();
    let scratch = tempfile::tempdir().unwrap();
    let ex = dist_on(Store::open(&url).unwrap(), scratch.path().into());
    let stage = Numbers::new(4, 0);
    for i in [0, 2] {
        assert_eq!(ex.run_task(&stage, i).unwrap(), TaskOutcome::Committed);
    }
    let p = ex.progress("numbers").unwrap();
    assert_eq!(
        p.missing,
        vec![(1, "part-1".to_string()), (3, "part-3".to_string())]
    );
    let e = ex.finish(&stage).unwrap_err().to_string();
    assert!(
        e.contains("2 of 4 task(s) not committed: 1 (part-1), 3 (part-3)"),
        "{e}"
    );
    // The downstream stage refuses to plan before its upstream is done.
    let e = ex.plan(&Doubler).unwrap_err().to_string();
    assert!(e.contains("has not finished"), "{e}");
    let e = ex.run_task(&stage, 9).unwrap_err().to_string();
    assert!(e.contains("there is no task 9"), "{e}");
    // The rest, then finish.
    match ex.run_stage(&stage).unwrap() {
        StageOutcome::Ran { ran, total, .. } => assert_eq!((ran, total), (2, 4)),
        o => panic!("{o:?}"),
    }
    assert!(ex.progress("numbers").unwrap().done);
}

#[test]
fn a_changed_configuration_is_refused() {
    let ex = dist_on(Store::memory(), tempfile::tempdir().unwrap().keep());
    let a = Numbers::new(2, 0);
    ex.run_task(&a, 0).unwrap();
    let b = Numbers::new(2, 1);
    let e = ex.run_task(&b, 1).unwrap_err().to_string();
    assert!(
        e.contains("changed since it was planned") && e.contains("salt"),
        "{e}"
    );
}

#[test]
fn gc_removes_losers_always_and_stale_attempts_after_the_grace_period() {
    let ex = dist_on(Store::memory(), tempfile::tempdir().unwrap().keep());
    let stage = Numbers::new(2, 0);
    ex.run_task(&stage, 0).unwrap();
    let store = ex.store();
    // An orphan of the committed task 0 and a dead attempt of the uncommitted task 1.
    store
        .put(
            "numbers/_attempts/part-0/deadbeef/part-0.txt",
            b"x".to_vec(),
        )
        .unwrap();
    store
        .put("numbers/_attempts/part-1/cafe/part-1.txt", b"yy".to_vec())
        .unwrap();
    let dry = dist::gc(store, 3600, true).unwrap();
    assert_eq!((dry.losers, dry.stale, dry.bytes), (1, 0, 1));
    assert_eq!(store.list("numbers/_attempts/part-0").unwrap().len(), 4);
    let g = dist::gc(store, 3600, false).unwrap();
    assert_eq!((g.losers, g.stale), (1, 0));
    assert_eq!(store.list("numbers/_attempts/part-0").unwrap().len(), 3);
    assert_eq!(store.list("numbers/_attempts/part-1").unwrap().len(), 1);
    let g = dist::gc(store, -1, false).unwrap();
    assert_eq!((g.losers, g.stale, g.bytes), (0, 1, 2));
    assert!(store.list("numbers/_attempts/part-1").unwrap().is_empty());
    // The committed task still reads back whole.
    ex.run_task(&stage, 1).unwrap();
    ex.finish(&stage).unwrap();
}

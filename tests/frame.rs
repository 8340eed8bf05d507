//! The stage frame, proven on its own: real runs of the binary (with the test-only `toy` stage)
//! killed at several points, resumed, and compared with an uninterrupted run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openwit_testkit::{digest_outputs, kill_after_tasks, kill_at, run_to_end};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openwit-teststage"))
}

/// Writes a pipeline file into `dir` and returns its path.
fn pipeline(dir: &Path, workdir: &Path, toy: &str) -> PathBuf {
    let p = dir.join("pipeline.toml");
    std::fs::write(
        &p,
        format!(
            "[pipeline]\nworkdir = \"{}\"\njobs = 2\nmax_attempts = 2\n\n[toy]\n{toy}\n",
            workdir.display()
        ),
    )
    .unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const TOY: &str = "tasks = 10\nitems = 30\nwork = 3000\nlabel = \"frame\"";

/// An uninterrupted run: its digest and how long it took.
fn reference(root: &Path) -> (std::collections::BTreeMap<String, String>, Duration) {
    let work = root.join("ref");
    let p = pipeline(root, &work, TOY);
    let t0 = Instant::now();
    run_to_end(&bin(), &["run", s(&p)], None).assert_success();
    let took = t0.elapsed();
    (digest_outputs(&work), took)
}

fn assert_complete(work: &Path) {
    let all = std::fs::read_to_string(work.join("toy/all.txt")).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 10 * 30, "every item exactly once");
    let unique: HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(unique.len(), lines.len(), "no duplicates");
}

#[test]
fn run_twice_second_does_nothing_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let p = pipeline(dir.path(), &work, TOY);
    let first = run_to_end(&bin(), &["run", s(&p)], None);
    first.assert_success();
    assert!(
        first
            .stdout
            .contains("toy: done (10 of 10 tasks run now + reduce"),
        "{}",
        first.stdout
    );
    assert_complete(&work);
    let second = run_to_end(&bin(), &["run", s(&p)], None);
    second.assert_success();
    assert!(
        second.stdout.contains("toy: up to date"),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("nothing to do"), "{}", second.stdout);
    assert_eq!(second.tasks_done, 0);

    let st = run_to_end(&bin(), &["status", s(&work), "--json"], None);
    st.assert_success();
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let toy = &v["stages"][0];
    assert_eq!(toy["stage"], "toy");
    assert_eq!(toy["state"], "done");
    assert_eq!(toy["tasks_done"], 10);
    assert_eq!(toy["tasks_total"], 10);
    assert_eq!(toy["drops"]["odd_task"], 5);
    let table = run_to_end(&bin(), &["status", s(&work)], None);
    table.assert_success();
    assert!(
        table.stdout.contains("10/10") && table.stdout.contains("odd_task=5"),
        "{}",
        table.stdout
    );
    // Logs go to the workdir too.
    assert!(std::fs::read_dir(work.join("logs")).unwrap().count() >= 2);
}

#[test]
fn killed_after_n_tasks_resumes_to_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (want, _) = reference(dir.path());
    for n in [1usize, 4, 9] {
        let work = dir.path().join(format!("k{n}"));
        let p = pipeline(dir.path(), &work, TOY);
        let killed = kill_after_tasks(&bin(), &["run", s(&p), "--jobs", "2"], None, n);
        assert!(
            killed.killed,
            "the run finished before task {n}: {}",
            killed.stderr
        );
        // Status after a kill: interrupted, some tasks done.
        let st = run_to_end(&bin(), &["status", s(&work), "--json"], None);
        let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
        assert_eq!(v["stages"][0]["state"], "interrupted");
        let done_before = v["stages"][0]["tasks_done"].as_u64().unwrap() as usize;
        assert!(done_before >= n, "{done_before} < {n}");
        let resumed = run_to_end(&bin(), &["run", s(&p)], None);
        resumed.assert_success();
        // Only the tasks not done before ran again (+ the reduce step).
        assert_eq!(resumed.tasks_done, 10 - done_before, "{}", resumed.stderr);
        assert_eq!(
            digest_outputs(&work),
            want,
            "outputs differ after a kill after {n} tasks"
        );
        assert_complete(&work);
    }
}

#[test]
fn killed_at_random_moments_resumes_to_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (want, took) = reference(dir.path());
    let mut killed_any = 0;
    for seed in 1..=5u64 {
        let work = dir.path().join(format!("r{seed}"));
        let p = pipeline(dir.path(), &work, TOY);
        // Possibly several kills in a row before a clean finish.
        let mut runs = 0;
        loop {
            let r = kill_at(&bin(), &["run", s(&p)], None, seed * 31 + runs, took);
            runs += 1;
            if !r.killed {
                r.assert_success();
                break;
            }
            killed_any += 1;
            assert!(runs < 50, "never finished");
        }
        assert_eq!(digest_outputs(&work), want, "outputs differ (seed {seed})");
        assert_complete(&work);
        // No temporary file survives a finished run.
        let leftovers: Vec<_> = walk(&work.join("toy"))
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert!(killed_any > 0, "no run was actually killed");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn stray_partial_outputs_are_removed_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let p = pipeline(dir.path(), &work, TOY);
    let r = kill_after_tasks(&bin(), &["run", s(&p), "--jobs", "1"], None, 2);
    assert!(r.killed);
    // Plant what a kill in the middle of a write leaves behind.
    std::fs::write(work.join("toy/.part-0009.txt.12345.tmp"), b"half a fi").unwrap();
    run_to_end(&bin(), &["run", s(&p)], None).assert_success();
    assert!(!work.join("toy/.part-0009.txt.12345.tmp").exists());
    assert_complete(&work);
}

#[test]
fn changed_configuration_is_refused_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let p = pipeline(dir.path(), &work, TOY);
    run_to_end(&bin(), &["run", s(&p)], None).assert_success();
    let p2 = pipeline(dir.path(), &work, &TOY.replace("items = 30", "items = 31"));
    let r = run_to_end(&bin(), &["run", s(&p2)], None);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("changed keys: items"), "{}", r.stderr);
    assert!(r.stderr.contains("--restart toy"), "{}", r.stderr);
    // Outputs untouched by the refusal.
    assert_complete(&work);
    let r = run_to_end(&bin(), &["run", s(&p2), "--restart", "toy"], None);
    r.assert_success();
    let all = std::fs::read_to_string(work.join("toy/all.txt")).unwrap();
    assert_eq!(all.lines().count(), 10 * 31);
    // --workdir overrides the file: a fresh workdir runs from scratch.
    let other = dir.path().join("other");
    run_to_end(&bin(), &["toy", s(&p2), "--workdir", s(&other)], None).assert_success();
    assert_eq!(digest_outputs(&other), digest_outputs(&work));
}

#[test]
fn second_process_is_refused_and_stale_lock_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let p = pipeline(
        dir.path(),
        &work,
        "tasks = 40\nitems = 40\nwork = 20000\nlabel = \"slow\"",
    );
    // Start a long run and wait until it has finished one task (so it holds the lock).
    let mut child = std::process::Command::new(bin())
        .args(["run", s(&p), "--jobs", "1"])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    loop {
        let l = lines.next().expect("first run ended early").unwrap();
        if l.contains("task done") {
            break;
        }
    }
    let r = run_to_end(&bin(), &["run", s(&p)], None);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "in use by another openwit process (pid {})",
            child.id()
        )),
        "{}",
        r.stderr
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The lock file still names the dead process; the next run takes it over.
    let p_fast = pipeline(
        dir.path(),
        &work,
        "tasks = 40\nitems = 40\nwork = 20000\nlabel = \"slow\"",
    );
    let r = kill_after_tasks(&bin(), &["run", s(&p_fast)], None, 1);
    assert!(r.stderr.contains("took over a stale lock"), "{}", r.stderr);
}

#[test]
fn failing_task_fails_the_stage_keeps_the_rest_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    let p = pipeline(dir.path(), &work, TOY);
    // Task 3 fails every attempt: exit 1, its error and a hint; the other tasks are done.
    let out = std::process::Command::new(bin())
        .args(["run", s(&p)])
        .env("OPENWIT_TOY_FAIL", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("task `part-0003`") && err.contains("injected failure in task 3"),
        "{err}"
    );
    assert!(
        err.contains("2 attempt(s)") && err.contains("hint:"),
        "{err}"
    );
    let st = run_to_end(&bin(), &["status", s(&work), "--json"], None);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["stages"][0]["state"], "failed");
    assert_eq!(v["stages"][0]["tasks_done"], 9);
    assert_eq!(v["stages"][0]["tasks_failed"], 1);
    // Rerun: only the failed task runs.
    let r = run_to_end(&bin(), &["run", s(&p)], None);
    r.assert_success();
    assert_eq!(r.tasks_done, 1, "{}", r.stderr);
    assert_complete(&work);

    // A task that fails once succeeds on its second attempt; attempts are recorded.
    let work2 = dir.path().join("w2");
    let p2 = pipeline(dir.path(), &work2, TOY);
    let out = std::process::Command::new(bin())
        .args(["run", s(&p2)])
        .env("OPENWIT_TOY_FAIL", "5:1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = rusqlite::Connection::open(work2.join("openwit.sqlite")).unwrap();
    let attempts: u32 = db
        .query_row(
            "SELECT attempts FROM tasks WHERE stage = 'toy' AND task = 'part-0005'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(digest_outputs(&work2), digest_outputs(&work));
}

#[test]
fn bad_configuration_and_usage_exit_2_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(
        &p,
        "[pipeline]\nworkdir = \"w\"\n\n[toy]\ntasks = 3\nitmes = 4\n",
    )
    .unwrap();
    let r = run_to_end(&bin(), &["run", s(&p)], None);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("bad.toml:6:1: unknown field `itmes`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("`items`"), "{}", r.stderr);
    std::fs::write(&p, "[pipeline]\njobs = \"many\"\n[toy]\n").unwrap();
    let r = run_to_end(&bin(), &["run", s(&p)], None);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("bad.toml:2:8"), "{}", r.stderr);
    let r = run_to_end(&bin(), &["run", s(&dir.path().join("missing.toml"))], None);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("missing.toml: cannot read the pipeline file"),
        "{}",
        r.stderr
    );
    let r = run_to_end(&bin(), &["frobnicate"], None);
    assert_eq!(r.code, Some(2));
    let r = run_to_end(&bin(), &["--help"], None);
    assert_eq!(r.code, Some(0));
    for word in ["run", "status", "toy", "Exit codes"] {
        assert!(r.stdout.contains(word), "--help lacks {word}: {}", r.stdout);
    }
    let r = run_to_end(&bin(), &["run", "--help"], None);
    for word in ["--workdir", "--jobs", "--restart", "--quiet"] {
        assert!(
            r.stdout.contains(word),
            "run --help lacks {word}: {}",
            r.stdout
        );
    }
    let r = run_to_end(&bin(), &["status", s(&dir.path().join("nowhere"))], None);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

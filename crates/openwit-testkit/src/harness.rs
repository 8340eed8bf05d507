//! Kill-and-resume harness: runs the real binary, kills it with SIGKILL at a chosen moment,
//! reruns it, and digests the outputs so a test can compare them with an uninterrupted run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// How one run of the binary ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Whether the harness killed it.
    pub killed: bool,
    /// How many tasks it reported done on stderr.
    pub tasks_done: usize,
}

impl Run {
    /// Panics with the output when the run did not exit with 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "run failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Whether a run was killed before it finished.
pub type Killed = bool;

/// The `openwit` binary of this workspace, built (once per test process) with `cargo build`.
/// Set `OPENWIT_BIN` to use another binary; `OPENWIT_TEST_FEATURES` (or `OPENWIT_FEATURES`) adds cargo features.
pub fn openwit_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("OPENWIT_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "openwit-cli",
            "--bin",
            "openwit",
            "--message-format=json",
        ]);
        // The same features as the test suite's build: scripts/test.sh exports
        // OPENWIT_FEATURES (default `train`, the CLIP trainer, which needs libtorch).
        let features = std::env::var("OPENWIT_TEST_FEATURES")
            .or_else(|_| std::env::var("OPENWIT_FEATURES"))
            .unwrap_or_default();
        if !features.is_empty() {
            cmd.args(["--features", &features]);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build for the openwit binary");
        assert!(
            out.status.success(),
            "cargo build of openwit failed (features: `{features}`; `train` needs libtorch: `source scripts/libtorch-env.sh`, or set OPENWIT_FEATURES= to build without)"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["reason"] == "compiler-artifact"
                && v["target"]["name"] == "openwit"
                && let Some(exe) = v["executable"].as_str()
            {
                return PathBuf::from(exe);
            }
        }
        panic!("cargo build did not report the openwit executable");
    })
    .clone()
}

fn spawn(bin: &Path, args: &[&str], cwd: Option<&Path>) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Reads stdout fully on a thread.
fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

fn is_task_done(line: &str) -> bool {
    line.contains("task done")
}

/// Runs `bin args` to the end.
pub fn run_to_end(bin: &Path, args: &[&str], cwd: Option<&Path>) -> Run {
    let mut child = spawn(bin, args, cwd);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let status = child.wait().expect("wait for the child");
    let stderr = err.join().unwrap();
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        tasks_done: stderr.lines().filter(|l| is_task_done(l)).count(),
        stderr,
        killed: false,
    }
}

/// Runs `bin args` and kills it with SIGKILL as soon as it has reported `n` finished tasks
/// (the executor logs `task done` once a task's outputs are committed and recorded).
/// If it finishes first, `killed` is false.
pub fn kill_after_tasks(bin: &Path, args: &[&str], cwd: Option<&Path>, n: usize) -> Run {
    let mut child = spawn(bin, args, cwd);
    let out = collect(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let child = Arc::new(Mutex::new(child));
    let mut text = String::new();
    let mut done = 0;
    let mut killed = false;
    for line in stderr.lines() {
        let Ok(line) = line else { break };
        if is_task_done(&line) {
            done += 1;
            if done >= n && !killed {
                let mut c = child.lock().unwrap();
                if c.try_wait().ok().flatten().is_none() {
                    let _ = c.kill();
                    killed = true;
                }
            }
        }
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.lock().unwrap().wait().expect("wait");
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: text,
        killed: killed && status.code().is_none(),
        tasks_done: done,
    }
}

/// Runs `bin args` and kills it with SIGKILL at a moment drawn from `seed` in `[0, within)`.
pub fn kill_at(bin: &Path, args: &[&str], cwd: Option<&Path>, seed: u64, within: Duration) -> Run {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let at = within.mul_f64(rng.random_range(0.0..1.0));
    let mut child = spawn(bin, args, cwd);
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if t0.elapsed() >= at {
            let _ = child.kill();
            killed = true;
            break child.wait().expect("wait");
        }
        // Poll the child's state at a fine grain; this decides *when* to kill, not a result.
        std::thread::sleep(
            Duration::from_millis(2)
                .min(at.saturating_sub(t0.elapsed()))
                .max(Duration::from_micros(200)),
        );
    };
    let stderr = err.join().unwrap();
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        tasks_done: stderr.lines().filter(|l| is_task_done(l)).count(),
        stderr,
        killed: killed && status.code().is_none(),
    }
}

/// sha256 of every output file under `workdir`, by relative path, leaving out the run state,
/// the lock, logs and scratch space (which legitimately differ between runs).
pub fn digest_outputs(workdir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let top = rel.split('/').next().unwrap_or("");
            if matches!(top, "logs" | ".scratch" | ".openwit.lock")
                || top.starts_with("openwit.sqlite")
            {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(workdir, workdir, &mut out);
    out
}

/// [`digest_outputs`] of a run made with `SOURCE_DATE_EPOCH`, for comparing runs on different
/// days and machines: paths under a prefix of `leave_out` are left out, and tantivy's index
/// folders, whose segments are named by random UUIDs, are digested with each segment's UUID
/// replaced by `segN` (N its rank among the folder's segments, ordered by their files' digests),
/// inside `meta.json` too, with `.managed.json`'s list of files sorted.
pub fn reproducible_digests(workdir: &Path, leave_out: &[&str]) -> BTreeMap<String, String> {
    let raw: BTreeMap<String, String> = digest_outputs(workdir)
        .into_iter()
        .filter(|(k, _)| !leave_out.iter().any(|p| k.starts_with(p)))
        .collect();
    // Segment files are `<32 hex>.<ext>` beside a `meta.json`.
    let is_uuid = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut segments: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (k, d) in &raw {
        let (dir, file) = k.rsplit_once('/').unwrap_or(("", k));
        if let Some((stem, _)) = file.split_once('.')
            && is_uuid(stem)
            && raw.contains_key(&format!("{dir}/meta.json"))
        {
            segments
                .entry(dir.to_string())
                .or_default()
                .entry(stem.to_string())
                .or_default()
                .push(d.clone());
        }
    }
    let mut names: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (dir, segs) in &segments {
        let mut order: Vec<(&Vec<String>, &String)> = segs.iter().map(|(u, d)| (d, u)).collect();
        order.sort();
        let m = names.entry(dir.clone()).or_default();
        for (n, (_, uuid)) in order.into_iter().enumerate() {
            m.insert(uuid.clone(), format!("seg{n}"));
        }
    }
    let mut out = BTreeMap::new();
    for (k, d) in raw {
        let (dir, file) = k.rsplit_once('/').unwrap_or(("", &k));
        let Some(m) = names.get(dir) else {
            out.insert(k, d);
            continue;
        };
        let rename = |text: &str| {
            let mut t = text.to_string();
            for (uuid, seg) in m {
                let dashed = format!(
                    "{}-{}-{}-{}-{}",
                    &uuid[..8],
                    &uuid[8..12],
                    &uuid[12..16],
                    &uuid[16..20],
                    &uuid[20..]
                );
                t = t.replace(uuid, seg).replace(&dashed, seg);
            }
            t
        };
        match file {
            "meta.json" | ".managed.json" => {
                let text = std::fs::read_to_string(workdir.join(&k)).unwrap_or_default();
                let text = if file == ".managed.json" {
                    let mut files: Vec<String> = serde_json::from_str(&text).unwrap_or_default();
                    files = files.iter().map(|f| rename(f)).collect();
                    files.sort();
                    files.join("\n")
                } else {
                    rename(&text)
                };
                out.insert(k, hex::encode(Sha256::digest(text.as_bytes())));
            }
            _ => {
                out.insert(format!("{dir}/{}", rename(file)), d);
            }
        }
    }
    out
}

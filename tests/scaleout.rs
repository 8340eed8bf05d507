//! Scale-out on real components (issue #7): a single-host Slurm with three node daemons and a
//! Ceph RADOS Gateway (S3), both started by `scripts/cluster/`. Needs root and the Debian
//! packages of `.ci/apt-packages.txt`; without them the test says so and passes only outside CI
//! (`CI` set: it fails).
//!
//! (a) the demo pipeline through `openwit submit --slurm` on an S3 workdir: every task has
//!     exactly one commit and the outputs equal a local `openwit run`'s;
//! (b) `scancel` of one running and one pending array element: `openwit status` names exactly
//!     those tasks missing and `openwit submit --resume` completes the pipeline;
//! (c) a node's slurmd killed mid-task: the task is requeued while its orphan also finishes; one
//!     commit per task, the other attempt yields, outputs identical;
//! (d) submitting a finished pipeline again does nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_openwit-teststage");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The Slurm cluster and the S3 store, stopped on drop.
struct Cluster {
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Cluster {
    fn up(dir: &Path) -> Cluster {
        let mut env = vec![
            (
                "OPENWIT_SLURM_DIR".to_string(),
                dir.join("slurm").display().to_string(),
            ),
            (
                "OPENWIT_S3_DIR".to_string(),
                dir.join("s3").display().to_string(),
            ),
        ];
        let mut c = Cluster {
            env: env.clone(),
            dir: dir.to_path_buf(),
        };
        for script in ["s3-up.sh", "slurm-up.sh"] {
            let out = Command::new(repo().join("scripts/cluster").join(script))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some(kv) = line.trim().strip_prefix("export ") else {
                    continue;
                };
                for part in kv.split_whitespace() {
                    if let Some((k, v)) = part.split_once('=') {
                        env.push((k.to_string(), v.trim_matches(['\'', '"']).to_string()));
                    }
                }
            }
        }
        c.env = env;
        c
    }

    fn script(&self, name: &str, args: &[&str]) -> Output {
        Command::new(repo().join("scripts/cluster").join(name))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Runs the openwit binary (with the test-only `toy` stage) in the test folder.
    fn ow(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SOURCE_DATE_EPOCH", "1790000000")
            .env("OPENWIT_LOCAL", self.dir.join("node-local"))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ow(args);
        assert!(
            out.status.success(),
            "openwit {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Jobs in the queue: (id, state).
    fn squeue(&self) -> Vec<(String, String)> {
        let out = Command::new("squeue")
            .args(["-h", "-o", "%i %t"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (a, b) = l.trim().split_once(' ')?;
                Some((a.to_string(), b.to_string()))
            })
            .collect()
    }

    fn status(&self, workdir: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", workdir, "--json"])).unwrap()
    }

    /// Waits until the queue is empty (bounded); then the pipeline must be done or not.
    fn wait_queue_empty(&self, what: &str, limit: Duration) {
        let t0 = Instant::now();
        while !self.squeue().is_empty() {
            assert!(
                t0.elapsed() < limit,
                "{what}: jobs still queued after {limit:?}: {:?}\n{}",
                self.squeue(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The last lines of every job log (for failure messages).
    fn logs(&self) -> String {
        self.log_text("logs", 8)
    }

    /// The job logs in `sub`, the last `lines` lines of each.
    fn log_text(&self, sub: &str, lines: usize) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.join(sub)) {
            let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                s += &format!("== {}\n", f.display());
                for l in tail.into_iter().rev() {
                    s += l;
                    s.push('\n');
                }
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script("slurm-down.sh", &["--purge"]);
        let _ = self.script("s3-down.sh", &["--purge"]);
    }
}

/// Every stage of the status is done with all its tasks committed.
fn assert_all_done(st: &serde_json::Value, stages: &[&str]) {
    let rows = st["stages"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["stage"].as_str().unwrap()).collect();
    assert_eq!(names, stages, "{st:#}");
    for r in rows {
        assert_eq!(r["done"], true, "{r:#}");
        assert_eq!(r["committed"], r["tasks_total"], "{r:#}");
        assert!(r["missing"].as_array().unwrap().is_empty(), "{r:#}");
    }
}

/// Files under `dir/sub` (relative to `dir`) -> bytes.
fn tree(dir: &Path, sub: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A tar's members, name -> bytes (member order follows download arrival, in both executors).
fn tar_members(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.insert(name, b);
    }
    out
}

/// The demo pipeline of the generated world (`pipelines/demo-generated.toml`: small, nothing to
/// fetch) with absolute paths, its site in `dir`, and `workdir`.
fn demo_pipeline(dir: &Path, workdir: &str) -> String {
    let text = std::fs::read_to_string(repo().join("pipelines/demo-generated.toml")).unwrap();
    let mut doc: toml::Table = text.parse().unwrap();
    doc.remove("train");
    doc.remove("eval");
    let table = |doc: &mut toml::Table, name: &str| -> toml::Table {
        doc.get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
    };
    let mut p = table(&mut doc, "pipeline");
    p.insert("workdir".into(), workdir.into());
    doc.insert("pipeline".into(), p.into());
    let mut site = table(&mut doc, "demo_site");
    site.insert("dir".into(), dir.join("site").display().to_string().into());
    doc.insert("demo_site".into(), site.into());
    let q = doc.get_mut("queries").unwrap().as_table_mut().unwrap();
    for key in ["wikipedia", "wordnet"] {
        if let Some(toml::Value::Array(a)) = q.get_mut(key) {
            for v in a.iter_mut() {
                let p = repo().join("pipelines").join(v.as_str().unwrap());
                *v = p.display().to_string().into();
            }
        }
    }
    // Exact-duplicate removal keeps whichever copy arrives first, across concurrently running
    // shards: not reproducible run to run in either executor, so off for the comparison.
    let mut d = table(&mut doc, "download");
    d.insert("dedup_sha256".into(), false.into());
    doc.insert("download".into(), d.into());
    toml::to_string(&doc).unwrap()
}

fn toy_pipeline(workdir: &str, tasks: u32, work: u32) -> String {
    format!(
        "[pipeline]\nworkdir = \"{workdir}\"\n\n[toy]\ntasks = {tasks}\nitems = 40\nwork = {work}\n"
    )
}

/// Submits, and waits for the queue to drain.
fn submit(c: &Cluster, pipeline: &Path, extra: &[&str]) -> String {
    submit_logs(c, pipeline, "logs", extra)
}

/// Submits with the job logs in `logs`.
fn submit_logs(c: &Cluster, pipeline: &Path, logs: &str, extra: &[&str]) -> String {
    let p = pipeline.to_str().unwrap();
    let mut args = vec!["submit", p, "--slurm", "--log-dir", logs];
    args.extend_from_slice(extra);
    c.ok(&args)
}

/// The array job id `openwit submit` printed for `stage`.
fn array_job(out: &str, stage: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{stage}: submitted")))
        .unwrap_or_else(|| panic!("no submission line for {stage} in:\n{out}"));
    line.split(" as job ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn slurm_job_arrays_over_s3_keep_the_resume_guarantees() {
    if !(have("sbatch") && have("radosgw") && is_root()) {
        let msg = "scale-out test needs root, slurm-wlm and radosgw (scripts/setup.sh --tests installs them)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::up(dir.path());
    let bucket = c
        .env
        .iter()
        .find(|(k, _)| k == "AWS_BUCKET")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "openwit".into());
    let s3 = |name: &str| format!("s3://{bucket}/{name}");

    // (a) The demo through Slurm on S3, against a local run.
    let demo = dir.path().join("demo.toml");
    std::fs::write(&demo, demo_pipeline(dir.path(), &s3("demo"))).unwrap();
    let local = dir.path().join("local.toml");
    let local_work = dir.path().join("local-work");
    std::fs::write(
        &local,
        demo_pipeline(dir.path(), local_work.to_str().unwrap()),
    )
    .unwrap();
    let out = submit(&c, &demo, &[]);
    assert!(out.contains("queries: submitted"), "{out}");
    c.wait_queue_empty("demo", Duration::from_secs(600));
    let stages = ["queries", "crawl", "curate", "download", "index", "report"];
    assert_all_done(&c.status(&s3("demo")), &stages);
    c.ok(&["run", local.to_str().unwrap(), "-q"]);
    let co = dir.path().join("checkout");
    c.ok(&["checkout", &s3("demo"), co.to_str().unwrap()]);
    for stage in ["queries", "crawl", "curate"] {
        let d = tree(&co, stage);
        let l = tree(&local_work, stage);
        assert!(!d.is_empty(), "{stage}: nothing committed");
        for (path, bytes) in &d {
            assert!(
                l.get(path) == Some(bytes),
                "{path}: differs from the local run's"
            );
        }
    }
    let shards: Vec<String> = tree(&co, "download")
        .into_keys()
        .filter(|p| p.ends_with(".tar"))
        .collect();
    assert!(!shards.is_empty());
    assert_eq!(
        shards,
        tree(&local_work, "download")
            .into_keys()
            .filter(|p| p.ends_with(".tar"))
            .collect::<Vec<_>>()
    );
    for s in &shards {
        assert_eq!(
            tar_members(&co.join(s)),
            tar_members(&local_work.join(s)),
            "{s}: other samples than the local run's"
        );
    }
    for q in ["photo", "cat", "beach"] {
        let a = c.ok(&["search", co.to_str().unwrap(), q, "--json", "-n", "50"]);
        let b = c.ok(&[
            "search",
            local_work.to_str().unwrap(),
            q,
            "--json",
            "-n",
            "50",
        ]);
        let hits = |s: &str| -> Vec<String> {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            let mut keys: Vec<String> = v["hits"]
                .as_array()
                .map(|a| a.iter().map(|h| h["key"].to_string()).collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        assert_eq!(hits(&a), hits(&b), "search {q:?}");
    }
    assert!(co.join("report/report.html").is_file());
    let gc = c.ok(&["gc", &s3("demo"), "--dry-run"]);
    assert!(
        gc.contains("would remove 0 object(s) of losing attempts, 0 of stale"),
        "{gc}"
    );

    // (d) Submitting the finished pipeline again does nothing.
    let again = submit(&c, &demo, &[]);
    assert!(again.contains("nothing to do"), "{again}");
    assert!(c.squeue().is_empty());

    // A local run of the toy stage, the reference for (b) and (c).
    let toy_local = dir.path().join("toy-local");
    let tl = dir.path().join("toy-local.toml");
    std::fs::write(&tl, toy_pipeline(toy_local.to_str().unwrap(), 8, 60_000)).unwrap();
    c.ok(&["run", tl.to_str().unwrap(), "-q"]);

    // (b) Cancel one running and one pending element; status names them; --resume completes.
    let toy = dir.path().join("toy.toml");
    std::fs::write(&toy, toy_pipeline(&s3("toy"), 8, 60_000)).unwrap();
    let out = submit(&c, &toy, &[]);
    let job = array_job(&out, "toy");
    let t0 = Instant::now();
    let (running, pending) = loop {
        let q = c.squeue();
        let r = q
            .iter()
            .find(|(id, st)| st == "R" && id.starts_with(&format!("{job}_")));
        // Pending elements show as one line `JOB_[3-7]`; a single one as `JOB_7`.
        let p = q
            .iter()
            .find(|(id, st)| st == "PD" && id.starts_with(&format!("{job}_")));
        if let (Some(r), Some(p)) = (r, p) {
            let last =
                p.0.trim_end_matches(']')
                    .rsplit(['-', '[', '_', ','])
                    .next()
                    .unwrap();
            break (r.0.clone(), format!("{job}_{last}"));
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no running and pending elements: {q:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let idx = |id: &str| id.rsplit('_').next().unwrap().parse::<usize>().unwrap();
    let cancelled = [idx(&running), idx(&pending)];
    for id in [&running, &pending] {
        let out = Command::new("scancel")
            .arg(id)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(out.status.success(), "scancel {id}");
    }
    c.wait_queue_empty("toy after scancel", Duration::from_secs(300));
    let st = c.status(&s3("toy"));
    let row = &st["stages"][0];
    assert_eq!(row["done"], false, "{st:#}");
    let mut missing: Vec<usize> = row["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[0].as_u64().unwrap() as usize)
        .collect();
    missing.sort();
    let mut want = cancelled.to_vec();
    want.sort();
    assert_eq!(missing, want, "status names exactly the cancelled tasks");
    let human = c.ok(&["status", &s3("toy")]);
    assert!(human.contains("missing 2:"), "{human}");
    let out = submit(&c, &toy, &["--resume"]);
    assert!(out.contains("toy: submitted 2 task(s) of 8"), "{out}");
    c.wait_queue_empty("toy resume", Duration::from_secs(300));
    assert_all_done(&c.status(&s3("toy")), &["toy"]);
    let co = dir.path().join("toy-checkout");
    c.ok(&["checkout", &s3("toy"), co.to_str().unwrap()]);
    assert_eq!(tree(&co, "toy"), tree(&toy_local, "toy"));

    // (c) Kill the slurmd of a node running a task: requeue plus orphan, one winner. The orphan
    // must still be running when slurmctld marks the node down (5-10 s with SlurmdTimeout=5), or
    // its completion reaches slurmctld first and nothing is requeued: each task computes 40
    // chains of TOY2_WORK hashes, about 35 s for a debug build on the 2-core VM (Zen 5), 14 s with
    // 250,000, which a run under load once finished before the node was down.
    const TOY2_WORK: u32 = 600_000;
    let toy2 = dir.path().join("toy2.toml");
    std::fs::write(&toy2, toy_pipeline(&s3("toy2"), 3, TOY2_WORK)).unwrap();
    let tl2 = dir.path().join("toy2-local.toml");
    let toy2_local = dir.path().join("toy2-local");
    std::fs::write(
        &tl2,
        toy_pipeline(toy2_local.to_str().unwrap(), 3, TOY2_WORK),
    )
    .unwrap();
    c.ok(&["run", tl2.to_str().unwrap(), "-q"]);
    let out = submit_logs(&c, &toy2, "logs-toy2", &["--open-mode=append"]);
    let job = array_job(&out, "toy");
    let t0 = Instant::now();
    let node = loop {
        let out = Command::new("squeue")
            .args(["-h", "-t", "R", "-o", "%i %N", "-j", &job])
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(n) = text.lines().find_map(|l| l.split_whitespace().nth(1)) {
            break n.to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no element started"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let k = c.script("kill-node.sh", &[&node, "--wait-down"]);
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    c.wait_queue_empty("toy2 after a node failure", Duration::from_secs(600));
    assert_all_done(&c.status(&s3("toy2")), &["toy"]);
    let co = dir.path().join("toy2-checkout");
    c.ok(&["checkout", &s3("toy2"), co.to_str().unwrap()]);
    assert_eq!(tree(&co, "toy"), tree(&toy2_local, "toy"));
    // The killed node's task ran twice: one attempt committed, the other found the commit.
    let logs = c.log_text("logs-toy2", 1000);
    let committed = logs.matches(": committed").count();
    let yielded = logs.matches("another attempt committed it first").count()
        + logs.matches("already committed, nothing to do").count();
    assert!(
        committed == 3 && yielded >= 1,
        "expected a requeued duplicate that yields:\n{logs}"
    );
    let gc = c.ok(&["gc", &s3("toy2")]);
    assert!(gc.contains("removed"), "{gc}");
    c.script("revive-node.sh", &[&node]);

    // (d) A data-parallel train task (`[train] ntasks = 2`) is one job step of 2 Slurm tasks
    // started by `srun`: rank 0 commits the task, rank 1 trains beside it, the finish job
    // records the stage (issue 19 req. 7). Only with a binary built with the trainer. The
    // nodes' names do not resolve (every node is 127.0.0.1), so the ranks are told where rank
    // 0 is through the sbatch options, as a user does where host names do not resolve.
    let train_built =
        std::env::var("OPENWIT_FEATURES").is_ok_and(|f| f.split(',').any(|x| x.trim() == "train"));
    if train_built {
        let shards = dir.path().join("train-shards");
        write_train_shards(&shards);
        let shared = dir.path().join("train-shared");
        let tp = dir.path().join("train.toml");
        std::fs::write(
            &tp,
            format!(
                "[pipeline]\nworkdir = \"{}\"\n\n[train]\nmodel = \"tiny-vit\"\nshards = [\"{}\"]\nsteps = 3\nbatch_size = 4\nlr = 1e-3\nwarmup = 1\ncheckpoint_every = 3\ndevice = \"cpu\"\nworkers = 1\nthreads = 1\nshuffle_buffer = 16\ndist_timeout = 120\nntasks = 2\n",
                shared.display(),
                shards.display()
            ),
        )
        .unwrap();
        let out = submit_logs(
            &c,
            &tp,
            "logs-train",
            &["--export=ALL,MASTER_ADDR=127.0.0.1"],
        );
        assert!(out.contains("train: submitted 1 task(s) of 1"), "{out}");
        c.wait_queue_empty("the train job step", Duration::from_secs(300));
        let logs = c.log_text("logs-train", 50);
        assert_all_done(&c.status(shared.to_str().unwrap()), &["train"]);
        assert!(logs.contains("rank 1 of 2: trained 3 steps"), "{logs}");
        assert!(logs.contains("train task 0: committed"), "{logs}");
        assert!(shared.join("_openwit").is_dir());
    } else {
        eprintln!("(d) skipped: the binary is built without the trainer (OPENWIT_FEATURES)");
    }
}

/// Two webdataset shards of 20 small captioned PNGs each (KEY.png + KEY.txt).
fn write_train_shards(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let colours = [
        ("red", [200u8, 30, 30]),
        ("green", [30, 180, 40]),
        ("blue", [30, 40, 200]),
        ("yellow", [220, 210, 40]),
    ];
    for shard in 0..2u32 {
        let f = std::fs::File::create(dir.join(format!("{shard:05}.tar"))).unwrap();
        let mut b = tar::Builder::new(f);
        for i in 0..20u32 {
            let (name, rgb) = colours[(i as usize) % colours.len()];
            let img = image::RgbImage::from_fn(64, 64, |x, y| {
                if (x / 8 + y / 8 + i) % 2 == 0 {
                    image::Rgb(rgb)
                } else {
                    image::Rgb([255, 255, 255])
                }
            });
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).unwrap();
            let key = format!("{shard:04}{i:05}");
            let caption = format!("a {name} checkerboard number {i}");
            for (ext, data) in [("png", png.into_inner()), ("txt", caption.into_bytes())] {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, format!("{key}.{ext}"), data.as_slice())
                    .unwrap();
            }
        }
        b.finish().unwrap();
    }
}

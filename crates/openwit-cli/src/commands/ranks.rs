//! Data-parallel `openwit train`: the local launcher (`--nproc N`, as torchrun's standalone
//! mode) and the ranks other than 0, which train beside rank 0 without owning the workdir.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use openwit_core::PipelineDoc;

/// This process's (rank, world) when a launcher made it one rank of several: torchrun's
/// `RANK`/`WORLD_SIZE`, else Slurm's `SLURM_PROCID`/`SLURM_NTASKS` (as `openwit_clip::dist`
/// reads them). `None` for a single process (a world of 1 included).
pub fn rank_of_many() -> Option<(usize, usize)> {
    let num = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    let (rank, world) = match (num("RANK"), num("WORLD_SIZE")) {
        (Some(r), Some(w)) => (r, w),
        _ => (num("SLURM_PROCID")?, num("SLURM_NTASKS")?),
    };
    (world > 1).then_some((rank, world))
}

/// The command line without `--nproc N` / `--nproc=N`.
fn argv_without_nproc() -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        if a == "--nproc" {
            args.next();
            continue;
        }
        if a.to_string_lossy().starts_with("--nproc=") {
            continue;
        }
        out.push(a);
    }
    out
}

/// Starts `nproc` copies of this command on this machine, one rank each, with torchrun's
/// variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR=127.0.0.1`, `MASTER_PORT` = a
/// free port), and waits for them. When one fails, the others are killed and the launcher
/// fails naming it (exit code 1).
pub fn launch(nproc: usize) -> Result<()> {
    if let Some((rank, world)) = rank_of_many() {
        bail!(
            "--nproc {nproc} inside a data-parallel job (this process is rank {rank} of {world}): under srun or torchrun, run `openwit train` without --nproc"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port on 127.0.0.1 for the ranks' rendezvous")?
        .port();
    let exe = std::env::current_exe().context("locating the openwit binary")?;
    let argv = argv_without_nproc();
    tracing::info!(nproc, port, "starting {nproc} local ranks");
    let mut children: Vec<Child> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut cmd = Command::new(&exe);
        cmd.args(&argv)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            // The Slurm variables of an enclosing allocation must not override these.
            .env_remove("SLURM_PROCID")
            .env_remove("SLURM_NTASKS");
        match cmd.spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                kill_all(&mut children);
                return Err(e).with_context(|| format!("starting rank {rank} ({})", exe.display()));
            }
        }
    }
    let mut done = vec![false; nproc];
    loop {
        let mut failed = None;
        for (rank, c) in children.iter_mut().enumerate() {
            if done[rank] {
                continue;
            }
            match c.try_wait() {
                Ok(Some(status)) => {
                    done[rank] = true;
                    if !status.success() {
                        failed = Some((rank, status.to_string()));
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    failed = Some((rank, format!("cannot wait for it: {e}")));
                    break;
                }
            }
        }
        if let Some((rank, why)) = failed {
            kill_all(&mut children);
            bail!(
                "rank {rank} of {nproc} failed ({why}); stopped the other ranks. Run the same command again to resume from the last checkpoint"
            );
        }
        if done.iter().all(|d| *d) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// What a rank other than 0 follows.
pub enum Follow<'a> {
    /// The `train` stage of the run in this workdir (`openwit run` on that rank).
    Run(&'a Path),
    /// Task `index` of `stage` of a data-parallel `train` task on a cluster (`openwit task train
    /// ... --index I` started by `srun` on every rank of the job step `openwit submit --slurm`
    /// asked for): rank 0 runs the task through the executor and commits it; this rank trains
    /// beside it in a node-local folder holding the upstream outputs, and records nothing.
    Task {
        ex: &'a openwit_exec::dist::DistExecutor<'a>,
        stage: &'a dyn openwit_core::Stage,
        index: usize,
    },
}

/// A rank other than 0: runs the `train` stage's training beside rank 0 (see
/// `openwit_clip::stage::TrainStage::follow`), or nothing when the stage (or the task) is
/// already done with this configuration (rank 0 then has nothing to do either). Only `train`
/// tasks run as several ranks.
#[cfg(feature = "train")]
pub fn follow(doc: &PipelineDoc, what: Follow<'_>, rank: usize, world: usize) -> Result<()> {
    use openwit_core::{Stage, Status};
    use openwit_exec::RunState;

    let summary = match what {
        Follow::Run(workdir) => {
            let stage = train_stage(doc)?;
            // No run state yet (a first run with explicit shards): nothing is done, nothing
            // upstream.
            let state = RunState::open_readonly(workdir).ok();
            if let Some(st) = &state
                && let Some(rec) = st.stage(stage.name())?
                && rec.state == Status::Done
                && rec.fingerprint == openwit_core::config::fingerprint(&stage.config())
            {
                println!("rank {rank} of {world}: nothing to do, the train stage is up to date");
                return Ok(());
            }
            // The upstream stages' done tasks, as the executor gives them to rank 0 (none
            // without a run state).
            let up = stage.upstream();
            let upstream = match &state {
                Some(st) => st.done_tasks_of(&up)?,
                None => up.into_iter().map(|u| (u, Vec::new())).collect(),
            };
            stage.follow(&openwit_core::StageContext::new(
                workdir,
                stage.name(),
                1,
                &upstream,
            ))?
        }
        Follow::Task { ex, stage, index } => {
            if stage.name() != "train" {
                bail!(
                    "rank {rank} of {world}: `openwit task {}` runs as one process; only `train` tasks run as several ranks (unset SLURM_NTASKS/WORLD_SIZE or give the job step one task)",
                    stage.name()
                );
            }
            let train = train_stage(doc)?;
            let Some((dir, upstream)) = ex.beside_task(stage, index)? else {
                println!("rank {rank} of {world}: nothing to do, train task {index} is committed");
                return Ok(());
            };
            let res = train.follow(&openwit_core::StageContext::new(
                &dir,
                stage.name(),
                1,
                &upstream,
            ));
            let _ = std::fs::remove_dir_all(&dir);
            res?
        }
    };
    println!(
        "rank {rank} of {world}: trained {} steps, loss {:.4}",
        summary.steps, summary.final_loss
    );
    Ok(())
}

/// The pipeline's `train` stage.
#[cfg(feature = "train")]
fn train_stage(doc: &PipelineDoc) -> Result<openwit_clip::stage::TrainStage> {
    let Some(cfg) = doc.section::<openwit_clip::train::TrainConfig>("train")? else {
        bail!(
            "{}: has no [train] table; a data-parallel rank runs `openwit train`",
            doc.path().display()
        );
    };
    Ok(openwit_clip::stage::TrainStage::new(
        cfg,
        doc.pipeline(),
        &doc.base_dir(),
    )?)
}

#[cfg(not(feature = "train"))]
pub fn follow(doc: &PipelineDoc, _what: Follow<'_>, _rank: usize, _world: usize) -> Result<()> {
    bail!(
        "{}: a data-parallel rank runs `openwit train`, which this binary lacks (rebuild with `--features {}`)",
        doc.path().display(),
        crate::stages::TRAIN_FEATURE
    )
}

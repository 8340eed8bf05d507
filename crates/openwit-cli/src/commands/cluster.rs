//! Scale-out: `openwit submit` (Slurm job arrays, or Kubernetes manifests), `openwit task` (what a
//! job runs), `openwit gc` and `openwit checkout` on a shared workdir: argument handling and
//! printing (`openwit status` of any workdir is in `status.rs`). The executor and the chaining
//! policy are in `openwit-exec` ([`openwit_exec::dist`], [`openwit_exec::slurm`],
//! [`openwit_exec::k8s`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use openwit_core::{NoProgress, Reporter, Stage};
use openwit_exec::dist::{self, DistExecutor, TaskOutcome};
use openwit_exec::slurm::{self, Chained};
use openwit_exec::store::Store;
use openwit_exec::{RunOptions, k8s};

use crate::args::{CheckoutArgs, GcArgs, SubmitArgs, TaskArgs};
use crate::commands::prepare::{load, start_demo_site};
use crate::stages::StageEntry;
use openwit_core::PipelineDoc;

fn executor<'r>(
    doc: &PipelineDoc,
    jobs: Option<usize>,
    reporter: &'r dyn Reporter,
) -> Result<DistExecutor<'r>> {
    let settings = doc.pipeline();
    let store = Store::open(&settings.workdir.to_string_lossy())?;
    let jobs = jobs
        .or_else(|| {
            std::env::var("SLURM_CPUS_PER_TASK")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(if settings.jobs == 0 {
            RunOptions::default().jobs
        } else {
            settings.jobs
        });
    Ok(DistExecutor::new(
        store,
        dist::default_local_dir(),
        RunOptions {
            jobs,
            max_attempts: settings.max_attempts.max(1),
        },
        reporter,
    ))
}

/// A local workdir is made absolute (jobs start elsewhere); an S3 prefix is kept as it is.
fn absolute_workdir(w: &str) -> Result<String> {
    if openwit_exec::store::is_remote(w) {
        return Ok(w.to_string());
    }
    let p = Path::new(w);
    std::fs::create_dir_all(p).with_context(|| format!("workdir {w}"))?;
    Ok(std::fs::canonicalize(p)?.display().to_string())
}

fn find<'a>(
    stages: &'a [Arc<dyn Stage>],
    name: &str,
    pipeline: &Path,
) -> Result<&'a Arc<dyn Stage>> {
    stages.iter().find(|s| s.name() == name).ok_or_else(|| {
        openwit_core::Error::Config(format!(
            "{}: has no stage `{name}`; its stages: {}",
            pipeline.display(),
            stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()
    })
}

/// `openwit task STAGE PIPELINE --index N | --finish [--chain ID]`.
pub fn task(args: &TaskArgs, registry: &[StageEntry]) -> Result<()> {
    crate::logging::init(None, args.quiet, args.verbose, false);
    let (doc, stages) = load(&args.pipeline, args.workdir.as_deref(), None, registry)?;
    let stage = find(&stages, &args.stage, &args.pipeline)?;
    let _demo = start_demo_site(&doc)?;
    let ex = executor(&doc, args.jobs, &NoProgress)?;
    let name = stage.name();
    // A rank above 0 of a task that runs as several processes (`srun` started every rank of
    // the job step): it works beside rank 0, which runs and commits the task.
    if let Some(i) = args.index
        && let Some((rank, world)) = crate::commands::ranks::rank_of_many()
        && rank > 0
    {
        return crate::commands::ranks::follow(
            &doc,
            crate::commands::ranks::Follow::Task {
                ex: &ex,
                stage: stage.as_ref(),
                index: i,
            },
            rank,
            world,
        );
    }
    if let Some(i) = args.index {
        let outcome = ex.run_task(stage.as_ref(), i)?;
        let what = match outcome {
            TaskOutcome::Committed => "committed",
            TaskOutcome::AlreadyCommitted => "already committed, nothing to do",
            TaskOutcome::LostRace => {
                "another attempt committed it first; this attempt's uploads were removed"
            }
        };
        println!("{name} task {i}: {what}");
        return Ok(());
    }
    let summary = ex.finish(stage.as_ref())?;
    println!("{name}: done");
    for line in summary.iter().flat_map(|s| s.lines()) {
        println!("  {line}");
    }
    if let Some(id) = &args.chain {
        match slurm::chain_next(&ex, &stages, name, id)? {
            Chained::Superseded | Chained::Next(slurm::Submitted::Already) => {}
            Chained::Next(s) => println!("{s}"),
            Chained::Finished => println!(
                "pipeline finished: every stage is done in {}",
                ex.store().url()
            ),
        }
    }
    Ok(())
}

/// `openwit submit PIPELINE --slurm [--resume] [SBATCH OPTIONS]` (or `--k8s`).
pub fn submit(args: &SubmitArgs, registry: &[StageEntry]) -> Result<()> {
    crate::logging::init(None, args.quiet, args.verbose, false);
    let (mut doc, stages) = load(&args.pipeline, args.workdir.as_deref(), None, registry)?;
    let workdir = absolute_workdir(&doc.pipeline().workdir.to_string_lossy())?;
    doc.pipeline_mut().workdir = PathBuf::from(&workdir);
    let _demo = start_demo_site(&doc)?;
    let ex = executor(&doc, None, &NoProgress)?;
    let store = ex.store();

    let Some(first) = slurm::first_unfinished(&ex, &stages)? else {
        println!(
            "nothing to do: all {} stage(s) are done in {workdir}",
            stages.len()
        );
        return Ok(());
    };
    if args.k8s {
        return k8s(&ex, &stages, first.as_ref(), args, &workdir);
    }
    let previous = slurm::read_submission(store)?;
    if previous.is_some() && !args.resume {
        bail!(
            "{workdir} already has a submission ({}) that has not finished (stage `{}` is not \
             done); see `openwit status {workdir}`, then `openwit submit --resume` to submit \
             only what is missing",
            previous.as_ref().map(|p| p.id.as_str()).unwrap_or(""),
            first.name()
        );
    }
    if let Some(prev) = &previous {
        // Pending jobs of the old submission would chain on their own: cancel them.
        slurm::cancel_submission(store, prev)?;
    }
    let log_dir = args
        .log_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("openwit-slurm-logs"));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("log folder {}", log_dir.display()))?;
    let exe = std::env::current_exe().context("cannot find the openwit binary's path")?;
    let sub = slurm::new_submission(
        store,
        exe.display().to_string(),
        std::fs::canonicalize(&args.pipeline)?.display().to_string(),
        workdir.clone(),
        std::fs::canonicalize(&log_dir)?.display().to_string(),
        args.sbatch.clone(),
    )?;
    let submitted = slurm::submit_stage(&ex, &sub, first.as_ref())?;
    if submitted != slurm::Submitted::Already {
        println!("{submitted}");
    }
    println!(
        "submission {}: the later stages are submitted as each one finishes; follow with \
         `openwit status {workdir}`",
        sub.id
    );
    Ok(())
}

/// `--k8s`: an Indexed Job per stage that can be planned now (its upstream is done).
fn k8s(
    ex: &DistExecutor<'_>,
    stages: &[Arc<dyn Stage>],
    first: &dyn Stage,
    args: &SubmitArgs,
    workdir: &str,
) -> Result<()> {
    let plan = ex.plan(first)?;
    let name = first.name();
    print!(
        "{}",
        k8s::manifests(
            name,
            plan.tasks.len(),
            &args.pipeline.display().to_string(),
            workdir,
            &args.image
        )
    );
    let later: Vec<&str> = stages
        .iter()
        .map(|s| s.name())
        .skip_while(|n| *n != name)
        .skip(1)
        .collect();
    if !later.is_empty() {
        eprintln!(
            "later stages, planned when `{name}` is done: {}",
            later.join(", ")
        );
    }
    Ok(())
}

/// `openwit gc WORKDIR`.
pub fn gc(args: &GcArgs) -> Result<()> {
    let store = Store::open(&args.workdir)?;
    let r = dist::gc(&store, args.grace, args.dry_run)?;
    println!(
        "{}{} object(s) of losing attempts, {} of stale attempts, {:.1} MiB; {} kept",
        if args.dry_run {
            "would remove "
        } else {
            "removed "
        },
        r.losers,
        r.stale,
        r.bytes as f64 / (1 << 20) as f64,
        r.kept
    );
    Ok(())
}

/// `openwit checkout WORKDIR DEST`.
pub fn checkout(args: &CheckoutArgs) -> Result<()> {
    let store = Store::open(&args.workdir)?;
    let ex = DistExecutor::new(
        store,
        dist::default_local_dir(),
        RunOptions::default(),
        &NoProgress,
    );
    let (n, bytes) = ex.checkout(&args.dest)?;
    println!(
        "copied {n} file(s), {:.1} MiB, into {}",
        bytes as f64 / (1 << 20) as f64,
        args.dest.display()
    );
    Ok(())
}

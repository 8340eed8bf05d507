//! `openwit run` and `openwit <stage>`.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use openwit_core::{NoProgress, Reporter};
use openwit_exec::{DistExecutor, Executor, LocalExecutor, RunOptions, Store};

use crate::args::StageArgs;
use crate::commands::prepare::load;
use crate::commands::prepare::start_demo_site;
use crate::commands::summary::print_outcome;
use crate::stages::StageEntry;

/// Runs the stages of the pipeline file (all of them, or only `only`).
pub fn run(args: &StageArgs, registry: &[StageEntry], only: Option<&str>) -> Result<()> {
    if let Some(n) = args.nproc {
        if only != Some("train") || n == 0 {
            return Err(openwit_core::Error::Config(format!(
                "--nproc {n}: only `openwit train PIPELINE --nproc N` (N >= 1) starts data-parallel ranks"
            ))
            .into());
        }
        if n > 1 {
            crate::logging::init(None, args.quiet, args.verbose, false);
            return crate::commands::ranks::launch(n);
        }
    }
    let (doc, stages) = load(
        &args.pipeline,
        args.workdir.as_ref().and_then(|w| w.to_str()),
        args.jobs,
        registry,
    )?;
    let settings = doc.pipeline().clone();
    let workdir = settings.workdir.clone();
    // A rank other than 0 of a data-parallel job: rank 0 owns the workdir (lock, run state,
    // checkpoints, logs); this one only trains beside it.
    if let Some((rank, world)) = crate::commands::ranks::rank_of_many()
        && rank > 0
    {
        if only != Some("train") {
            return Err(openwit_core::Error::Config(format!(
                "rank {rank} of {world}: in a data-parallel job (RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS set) every rank runs `openwit train`"
            ))
            .into());
        }
        crate::logging::init(None, true, args.verbose, false);
        return crate::commands::ranks::follow(
            &doc,
            crate::commands::ranks::Follow::Run(&workdir),
            rank,
            world,
        );
    }

    if let Some(name) = only
        && !stages.iter().any(|s| s.name() == name)
    {
        return Err(openwit_core::Error::Config(format!(
            "{}: has no [{name}] table; add one to run `openwit {name}` (see pipelines/README.md)",
            args.pipeline.display()
        ))
        .into());
    }
    if let Some(r) = &args.restart
        && !stages.iter().any(|s| s.name() == r)
    {
        let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
        return Err(openwit_core::Error::Config(format!(
            "--restart {r}: the pipeline {} has no stage `{r}`; its stages: {}",
            args.pipeline.display(),
            names.join(", ")
        ))
        .into());
    }
    let bars = !args.quiet && std::io::stderr().is_terminal();
    let remote = openwit_exec::store::is_remote(&workdir.to_string_lossy());
    crate::logging::init(
        (!remote).then_some(workdir.as_path()),
        args.quiet,
        args.verbose,
        bars,
    );
    let progress: Box<dyn Reporter> = if bars {
        Box::new(crate::progress::Bars::new())
    } else {
        Box::new(NoProgress)
    };
    let jobs = if settings.jobs == 0 {
        RunOptions::default().jobs
    } else {
        settings.jobs
    };
    let opts = RunOptions {
        jobs,
        max_attempts: settings.max_attempts.max(1),
    };
    // The same stages under either executor: the local one (a folder, its lock and run state)
    // or the distributed one in this one process (an S3 workdir).
    let mut ex: Box<dyn Executor + '_> = if remote {
        if args.restart.is_some() {
            bail!("--restart is not supported on an S3 workdir; use a new prefix");
        }
        let store = Store::open(&workdir.to_string_lossy())?;
        Box::new(DistExecutor::new(
            store,
            openwit_exec::dist::default_local_dir(),
            opts,
            progress.as_ref(),
        ))
    } else {
        Box::new(LocalExecutor::new(&workdir, opts, progress.as_ref())?)
    };
    let _demo_site = start_demo_site(&doc)?;
    let location = ex.location();
    tracing::info!(workdir = %location, jobs, "run started");
    if let Some(r) = &args.restart {
        let reset = ex.restart(&stages, r)?;
        println!("restart: discarded the outputs of {}", reset.join(", "));
    }

    let mut ran_any = false;
    let mut count = 0;
    for stage in &stages {
        if only.is_some_and(|o| o != stage.name()) {
            continue;
        }
        count += 1;
        let t0 = std::time::Instant::now();
        let outcome = ex.run_stage(stage.as_ref())?;
        let drops = ex.stage_totals(stage.name())?.map(|t| t.drops);
        ran_any |= print_outcome(stage.name(), outcome, t0, drops.as_ref());
    }
    if ran_any {
        println!("finished; see `openwit status {location}`");
    } else if remote {
        println!("nothing to do: every stage is up to date in {location}");
    } else {
        println!("nothing to do: {count} stage(s) already up to date in {location}");
    }
    Ok(())
}

//! `openwit run` and `openwit <stage>`.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Result;
use openwit_core::{Executor, NoProgress, Reporter, RunOptions, Stage, StageOutcome};

use crate::args::StageArgs;
use crate::pipeline::PipelineDoc;
use crate::stages::StageEntry;

/// Runs the stages of the pipeline file (all of them, or only `only`).
pub fn run(args: &StageArgs, registry: &[StageEntry], only: Option<&str>) -> Result<()> {
    let names: Vec<&str> = registry.iter().map(|e| e.name).collect();
    let mut doc = PipelineDoc::load(&args.pipeline, &names)?;
    if let Some(w) = &args.workdir {
        doc.pipeline_mut().workdir = w.clone();
    }
    if let Some(j) = args.jobs {
        doc.pipeline_mut().jobs = j;
    }
    let settings = doc.pipeline().clone();
    let workdir = settings.workdir.clone();

    // Build every stage present in the file (so config errors show before anything runs).
    let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
    for entry in registry {
        if let Some(stage) = (entry.build)(&doc)? {
            stages.push(stage);
        }
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
    if stages.is_empty() {
        return Err(openwit_core::Error::Config(format!(
            "{}: no stage tables; add at least one (see pipelines/README.md)",
            args.pipeline.display()
        ))
        .into());
    }

    let bars = !args.quiet && std::io::stderr().is_terminal();
    crate::logging::init(Some(&workdir), args.quiet, args.verbose, bars);
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
    let mut ex = Executor::new(&workdir, opts, progress.as_ref())?;
    tracing::info!(workdir = %workdir.display(), jobs, "run started");
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
        match ex.run_stage(stage.as_ref())? {
            StageOutcome::UpToDate => {
                println!("{}: up to date, nothing to do", stage.name());
            }
            StageOutcome::Ran {
                ran,
                total,
                reduced,
                summary,
            } => {
                ran_any = true;
                println!(
                    "{}: done ({ran} of {total} tasks run now{}, {:.1}s)",
                    stage.name(),
                    if reduced { " + reduce" } else { "" },
                    t0.elapsed().as_secs_f64()
                );
                if let Some(s) = summary {
                    for line in s.lines() {
                        println!("  {line}");
                    }
                }
            }
        }
    }
    if !ran_any {
        println!(
            "nothing to do: {} stage(s) already up to date in {}",
            count,
            workdir.display()
        );
    } else {
        println!("finished; see `openwit status {}`", workdir.display());
    }
    Ok(())
}

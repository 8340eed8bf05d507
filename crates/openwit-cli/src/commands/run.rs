//! `openwit run` and `openwit <stage>`.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Result;
use openwit_core::{Executor, NoProgress, Reporter, RunOptions, Stage, StageOutcome};

use crate::args::StageArgs;
use crate::pipeline::PipelineDoc;
use crate::stages::StageEntry;

/// Loads a pipeline file and builds every stage present in it (so configuration errors show
/// before anything runs), with `workdir`/`jobs` overriding the `[pipeline]` table.
pub fn load(
    pipeline: &std::path::Path,
    workdir: Option<&str>,
    jobs: Option<usize>,
    registry: &[StageEntry],
) -> Result<(PipelineDoc, Vec<Arc<dyn Stage>>)> {
    let mut names: Vec<&str> = registry.iter().map(|e| e.name).collect();
    names.push("demo_site");
    let mut doc = PipelineDoc::load(pipeline, &names)?;
    if let Some(w) = workdir {
        doc.pipeline_mut().workdir = w.into();
    }
    if let Some(j) = jobs {
        doc.pipeline_mut().jobs = j;
    }
    // `[demo_site]` is read when the run starts; its values are checked now.
    doc.section::<openwit_sources::crawl::DemoSite>("demo_site")?;
    let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
    for entry in registry {
        if let Some(stage) = (entry.build)(&doc)? {
            stages.push(stage);
        }
    }
    if stages.is_empty() {
        return Err(openwit_core::Error::Config(format!(
            "{}: no stage tables; add at least one (see pipelines/README.md)",
            pipeline.display()
        ))
        .into());
    }
    Ok((doc, stages))
}

/// Runs the stages of the pipeline file (all of them, or only `only`).
pub fn run(args: &StageArgs, registry: &[StageEntry], only: Option<&str>) -> Result<()> {
    let (doc, stages) = load(
        &args.pipeline,
        args.workdir.as_ref().and_then(|w| w.to_str()),
        args.jobs,
        registry,
    )?;
    let settings = doc.pipeline().clone();
    let workdir = settings.workdir.clone();

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
    let remote = openwit_core::store::is_remote(&workdir.to_string_lossy());
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
    if openwit_core::store::is_remote(&workdir.to_string_lossy()) {
        return crate::commands::cluster::run_remote(
            &doc,
            &stages,
            only,
            args.restart.is_some(),
            opts,
            progress.as_ref(),
        );
    }
    let mut ex = Executor::new(&workdir, opts, progress.as_ref())?;
    let _demo_site = start_demo_site(&doc)?;
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
        let outcome = ex.run_stage(stage.as_ref())?;
        let drops = openwit_core::state::StageTotals::of(&ex.state().tasks(stage.name())?).drops;
        ran_any |= print_outcome(stage.name(), outcome, t0, Some(&drops));
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

/// Prints what running a stage did (stdout), and its drops in words when given; returns whether
/// anything ran.
pub(crate) fn print_outcome(
    stage: &str,
    outcome: StageOutcome,
    t0: std::time::Instant,
    drops: Option<&std::collections::BTreeMap<String, u64>>,
) -> bool {
    match outcome {
        StageOutcome::UpToDate => {
            println!("{stage}: up to date, nothing to do");
            false
        }
        StageOutcome::Ran {
            ran,
            total,
            reduced,
            summary,
        } => {
            println!(
                "{stage}: done ({ran} of {total} tasks run now{}, {:.1}s)",
                if reduced { " + reduce" } else { "" },
                t0.elapsed().as_secs_f64()
            );
            for line in summary.iter().flat_map(|s| s.lines()) {
                println!("  {line}");
            }
            print_drops_in_words(stage, drops.into_iter().flatten(), "  ");
            true
        }
    }
}

/// One line per drop reason, most frequent first, in words (`crate::reasons::explain`).
pub(crate) fn print_drops_in_words<'a>(
    stage: &str,
    drops: impl Iterator<Item = (&'a String, &'a u64)>,
    indent: &str,
) {
    let mut drops: Vec<(&String, &u64)> = drops.filter(|(_, n)| **n > 0).collect();
    drops.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for (reason, n) in drops {
        println!(
            "{indent}dropped: {}",
            crate::reasons::explain(stage, reason, *n)
        );
    }
}

/// `k=v, k=v` for drops by reason, `-` for none.
pub(crate) fn fmt_drops(drops: &std::collections::BTreeMap<String, u64>) -> String {
    if drops.is_empty() {
        return "-".to_string();
    }
    drops
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `[demo_site]` table: generate the demo's web site (if missing) and serve it on 127.0.0.1 for
/// the whole run under the stable name `demo.openwit.test`, so the crawl and the download stages
/// reach the same URLs in every run, whatever the port.
pub(crate) fn start_demo_site(
    doc: &PipelineDoc,
) -> Result<
    Option<(
        openwit_sources::demo_site::DemoServer,
        tokio::runtime::Runtime,
    )>,
> {
    let Some(cfg) = doc.section::<openwit_sources::crawl::DemoSite>("demo_site")? else {
        return Ok(None);
    };
    let dir = cfg.ensure(&doc.base_dir()).map_err(|e| {
        anyhow::anyhow!("demo site {}: {e}", cfg.site_dir(&doc.base_dir()).display())
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = openwit_sources::demo_site::serve(&rt, &dir)
        .map_err(|e| anyhow::anyhow!("demo site {}: {e}", dir.display()))?;
    openwit_core::net::override_host(openwit_sources::demo_site::DEMO_HOST, server.addr);
    tracing::info!(addr = %server.addr, host = openwit_sources::demo_site::DEMO_HOST, "serving the demo site");
    Ok(Some((server, rt)))
}

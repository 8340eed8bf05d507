//! What every way of running a pipeline does first: load the file and build its stages (so
//! configuration errors show before anything runs), and start the demo's web site when the file
//! has a `[demo_site]` table. Used by `openwit run`/`STAGE` (`run.rs`) and the cluster commands
//! (`cluster.rs`).

use std::sync::Arc;

use anyhow::Result;
use openwit_core::Stage;

use crate::stages::StageEntry;
use openwit_core::PipelineDoc;

/// Loads a pipeline file and builds every stage present in it (so configuration errors show
/// before anything runs), with `workdir`/`jobs` overriding the `[pipeline]` table.
pub fn load(
    pipeline: &std::path::Path,
    workdir: Option<&str>,
    jobs: Option<usize>,
    registry: &[StageEntry],
) -> Result<(PipelineDoc, Vec<Arc<dyn Stage>>)> {
    let names: Vec<&str> = registry.iter().map(|e| e.name).collect();
    let mut doc = PipelineDoc::load(pipeline, &names, &["demo_site"])?;
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
    openwit_http::net::override_host(openwit_sources::demo_site::DEMO_HOST, server.addr);
    tracing::info!(addr = %server.addr, host = openwit_sources::demo_site::DEMO_HOST, "serving the demo site");
    Ok(Some((server, rt)))
}

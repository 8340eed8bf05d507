//! `openwit search`, `openwit serve` and `openwit report WORKDIR` (the index crate does the work).

use std::path::Path;

use anyhow::Result;

use crate::args::{SearchArgs, ServeArgs};

/// `openwit search WORKDIR QUERY`.
pub fn search(a: &SearchArgs) -> Result<()> {
    crate::logging::init(None, true, 0, false);
    let opts = openwit_index::SearchOptions {
        limit: a.limit,
        offset: a.offset,
        entry: a.entry.clone(),
    };
    let r =
        openwit_index::search(&a.workdir, &a.query, &opts).map_err(openwit_core::Error::from)?;
    let text = if a.json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        openwit_index::format_results(&r)
    };
    // A closed pipe (`| head`) is not an error.
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, text.as_bytes())
        .and_then(|_| std::io::Write::flush(&mut out))
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// `openwit serve WORKDIR`.
pub fn serve(a: &ServeArgs) -> Result<()> {
    crate::logging::init(None, false, 0, false);
    if !a.workdir.is_dir() {
        return Err(openwit_core::Error::Config(format!(
            "{}: no such workdir; pass the workdir of a run",
            a.workdir.display()
        ))
        .into());
    }
    let opts = openwit_index::ServeOptions {
        allow_hosts: a.allow_host.clone(),
        run_summary: Some(openwit_index::RunSummarySource(std::sync::Arc::new(|w| {
            run_summary(w)
        }))),
    };
    openwit_index::serve(&a.workdir, std::net::SocketAddr::new(a.host, a.port), &opts)
        .map_err(openwit_core::Error::from)?;
    Ok(())
}

/// `openwit report WORKDIR`: writes `WORKDIR/report/report.html` and prints its path.
pub fn report(workdir: &Path) -> Result<()> {
    crate::logging::init(None, true, 0, false);
    let run = run_summary(workdir);
    let path = openwit_index::write_report(workdir, run.as_ref().map_err(String::as_str), None)
        .map_err(openwit_core::Error::from)?;
    println!("{}", path.display());
    Ok(())
}

/// The run summary of a local workdir, from its run state (the report's funnel), or why there is
/// none.
fn run_summary(workdir: &Path) -> std::result::Result<openwit_core::RunSummary, String> {
    openwit_exec::RunState::open_readonly(workdir)
        .and_then(|st| st.summary())
        .map_err(|e| e.to_string())
}

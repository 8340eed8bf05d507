//! `openwit status WORKDIR`.

use std::collections::BTreeMap;

use anyhow::Result;
use openwit_core::StageTotals;
use openwit_core::Status;
use openwit_exec::{RunState, lock};
use serde::Serialize;

use crate::args::StatusArgs;

#[derive(Debug, Serialize)]
struct StageStatus {
    stage: String,
    state: String,
    tasks_done: u64,
    tasks_total: u64,
    tasks_failed: u64,
    items_in: u64,
    items_out: u64,
    drops: BTreeMap<String, u64>,
    elapsed_s: f64,
    error: Option<String>,
}

pub fn status(args: &StatusArgs) -> Result<()> {
    let w = args.workdir.to_string_lossy();
    if crate::commands::cluster::is_shared(&w) {
        return crate::commands::cluster::status(&w, args.json);
    }
    let st = RunState::open_readonly(&args.workdir)?;
    let holder = lock::holder(&args.workdir);
    let mut rows = Vec::new();
    for s in st.stages()? {
        // The same totals as the HTML report's funnel: each item counted once.
        let totals = StageTotals::of(&st.tasks(&s.name)?);
        // A stage recorded as running without a live holder was interrupted.
        let state = match (s.state, &holder) {
            (Status::Running, None) => "interrupted".to_string(),
            (st, _) => st.as_str().to_string(),
        };
        rows.push(StageStatus {
            stage: s.name.clone(),
            state,
            tasks_done: totals.tasks_done,
            tasks_total: s.tasks_total,
            tasks_failed: totals.tasks_failed,
            items_in: totals.items_in,
            items_out: totals.items_out,
            drops: totals.drops,
            elapsed_s: s.elapsed_s,
            error: s.error.clone(),
        });
    }
    if args.json {
        let out = serde_json::json!({
            "workdir": args.workdir,
            "running_pid": holder,
            "stages": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("workdir: {}", args.workdir.display());
    if let Some(pid) = &holder {
        println!("a run is in progress (pid {pid})");
    }
    println!(
        "{:<10} {:<12} {:>11} {:>12} {:>12} {:>10}  drops",
        "stage", "state", "tasks", "items in", "items out", "elapsed"
    );
    for r in &rows {
        let drops = crate::commands::summary::fmt_drops(&r.drops);
        println!(
            "{:<10} {:<12} {:>11} {:>12} {:>12} {:>10}  {drops}",
            r.stage,
            r.state,
            format!("{}/{}", r.tasks_done, r.tasks_total),
            r.items_in,
            r.items_out,
            fmt_secs(r.elapsed_s)
        );
        if let Some(e) = &r.error {
            println!("  error: {}", e.lines().next().unwrap_or(""));
        }
    }
    if rows.is_empty() {
        println!("(no stage has run yet)");
    }
    if rows.iter().any(|r| r.drops.values().any(|n| *n > 0)) {
        println!("\ndrops, in words:");
        for r in rows.iter().filter(|r| r.drops.values().any(|n| *n > 0)) {
            println!("  {}:", r.stage);
            crate::commands::summary::print_drops_in_words(&r.stage, r.drops.iter(), "    ");
            if let Some(at) = crate::reasons::where_listed(&r.stage) {
                println!("    the dropped rows: {}/{at}", args.workdir.display());
            }
        }
    }
    Ok(())
}

fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

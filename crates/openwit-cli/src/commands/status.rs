//! `openwit status WORKDIR`: prints [`WorkdirStatus`], read from a local workdir's run state or
//! a shared workdir's store by `openwit-exec`.

use anyhow::Result;
use openwit_exec::WorkdirStatus;
use openwit_exec::status::Activity;

use crate::args::StatusArgs;

pub fn status(args: &StatusArgs) -> Result<()> {
    let st = WorkdirStatus::read(&args.workdir.to_string_lossy())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&st.to_json())?);
        return Ok(());
    }
    print_text(&st);
    Ok(())
}

/// The table for people. A local workdir's rows have their elapsed time, errors and drops in
/// words; a shared workdir's their missing tasks.
fn print_text(st: &WorkdirStatus) {
    let local = !st.is_shared();
    println!("workdir: {}", st.workdir);
    match &st.activity {
        Activity::Local {
            running_pid: Some(pid),
        } => {
            println!("a run is in progress (pid {pid})");
        }
        Activity::Shared {
            submission: Some(s),
        } => {
            println!("submission: {} (pipeline {})", s.id, s.pipeline);
        }
        _ => {}
    }
    // The state column fits `interrupted` locally.
    let w = if local { 12 } else { 10 };
    print!(
        "{:<10} {:<w$} {:>11} {:>12} {:>12}",
        "stage", "state", "tasks", "items in", "items out"
    );
    if local {
        print!(" {:>10}", "elapsed");
    }
    println!("  drops");
    for r in &st.rows {
        print!(
            "{:<10} {:<w$} {:>11} {:>12} {:>12}",
            r.stage,
            r.state,
            format!("{}/{}", r.tasks_done, r.tasks_total),
            r.items_in,
            r.items_out
        );
        if local {
            print!(" {:>10}", fmt_secs(r.elapsed_s));
        }
        println!("  {}", crate::commands::summary::fmt_drops(&r.drops));
        if let Some(e) = &r.error {
            println!("  error: {}", e.lines().next().unwrap_or(""));
        }
        if !r.missing.is_empty() {
            let list: Vec<String> = r
                .missing
                .iter()
                .take(20)
                .map(|(i, id)| format!("{i} ({id})"))
                .collect();
            println!(
                "  missing {}: {}{}",
                r.missing.len(),
                list.join(", "),
                if r.missing.len() > 20 { ", ..." } else { "" }
            );
        }
    }
    if st.rows.is_empty() {
        println!(
            "{}",
            if local {
                "(no stage has run yet)"
            } else {
                "(no stage has been planned yet)"
            }
        );
    }
    let dropping = |r: &&openwit_exec::StatusRow| r.drops.values().any(|n| *n > 0);
    if local && st.rows.iter().any(|r| dropping(&r)) {
        println!("\ndrops, in words:");
        for r in st.rows.iter().filter(dropping) {
            println!("  {}:", r.stage);
            crate::commands::summary::print_drops_in_words(&r.stage, r.drops.iter(), "    ");
            if let Some(at) = crate::reasons::where_listed(&r.stage) {
                println!("    the dropped rows: {}/{at}", st.workdir);
            }
        }
    }
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

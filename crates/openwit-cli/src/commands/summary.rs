//! The stage summaries printed on the terminal (stdout): what a run did, and its drops in words.

use openwit_exec::StageOutcome;

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

//! `openwit report WORKDIR` and the `report` stage: one self-contained HTML page (inline CSS and
//! SVG, no script, no network) describing a run.
//!
//! It reads only what exists: the run state (`openwit.sqlite`) for the funnel, the curation's
//! `curate/entry_counts.parquet`, the shards' parquet and `_stats.json` in `download/`, the index,
//! `train/metrics.jsonl` and `eval/*.json`. Missing parts are said to be missing, not errors.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int32Array, Int64Array, StringArray};
use openwit_core::artifact::{
    self, EntryCounts, EvalResults, Model, QueryList, ShardStats, ShardTables, Shards,
};
use openwit_core::state::StageTotals;
use openwit_core::{RunState, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{IndexError, Result};
use crate::{REPORT_DIR, REPORT_FILE};
use openwit_chart::{esc, hbars, histogram, lines};

/// One stage's line of the funnel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FunnelRow {
    pub stage: String,
    pub state: String,
    pub tasks_done: u64,
    pub tasks_total: u64,
    pub items_in: u64,
    pub items_out: u64,
    pub drops: BTreeMap<String, u64>,
    pub elapsed_s: f64,
}

/// An entry's matches before balancing and kept after.
#[derive(Debug, Clone, Serialize)]
pub struct EntryCount {
    pub entry: String,
    pub matches: u64,
    pub kept: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReportData {
    pub workdir: PathBuf,
    pub funnel: Vec<FunnelRow>,
    pub funnel_note: Option<String>,
    pub entries: Vec<EntryCount>,
    /// Where `entries` came from (`curate/entry_counts.parquet`, or the shards).
    pub entries_source: Option<String>,
    pub shards: usize,
    pub rows: u64,
    pub successes: u64,
    pub caption_lengths: Vec<u64>,
    pub widths: Vec<u64>,
    pub heights: Vec<u64>,
    pub failures_by_reason: BTreeMap<String, u64>,
    pub failures_by_host: BTreeMap<String, u64>,
    pub indexed: Option<(u64, usize)>,
    pub train: Vec<BTreeMap<String, f64>>,
    pub eval: Vec<(String, Value)>,
    /// Files that could not be read (path, reason): reported, skipped.
    pub problems: Vec<(PathBuf, String)>,
}

/// `curate/entry_counts.parquet`, relative to the workdir.
fn entry_counts_file() -> String {
    EntryCounts::paths()[0].clone()
}

/// `YYYY-MM-DD HH:MM UTC` of Unix seconds (civil-from-days, no time zone database needed).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Reads `entry_counts.parquet` (entry, matches, kept).
pub(crate) fn read_entry_counts(path: &Path) -> Result<Vec<EntryCount>> {
    let f = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| IndexError::Other(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| IndexError::Other(format!("{}: {e}", path.display())))?;
        let entry = batch
            .column_by_name("entry")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let int = |name: &str| -> Option<Vec<u64>> {
            let c = batch.column_by_name(name)?;
            if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
                return Some(
                    (0..a.len())
                        .map(|i| {
                            if a.is_null(i) {
                                0
                            } else {
                                a.value(i).max(0) as u64
                            }
                        })
                        .collect(),
                );
            }
            let a = c.as_any().downcast_ref::<Int32Array>()?;
            Some(
                (0..a.len())
                    .map(|i| {
                        if a.is_null(i) {
                            0
                        } else {
                            a.value(i).max(0) as u64
                        }
                    })
                    .collect(),
            )
        };
        let (Some(entry), Some(matches)) = (entry, int("matches")) else {
            return Err(IndexError::Other(format!(
                "{}: expected columns `entry` (utf8) and `matches` (int64)",
                path.display()
            )));
        };
        let kept = int("kept").unwrap_or_else(|| vec![0; matches.len()]);
        for i in 0..entry.len() {
            out.push(EntryCount {
                entry: entry.value(i).to_string(),
                matches: matches[i],
                kept: kept[i],
            });
        }
    }
    Ok(out)
}

/// Gathers what the report shows from `workdir`.
pub fn collect(workdir: &Path) -> ReportData {
    let mut d = ReportData {
        workdir: workdir.to_path_buf(),
        ..Default::default()
    };
    // Funnel from the run state.
    match RunState::open_readonly(workdir) {
        Ok(st) => match st.stages() {
            Ok(stages) => {
                for s in stages.into_iter().filter(|s| s.name != REPORT_DIR) {
                    // The totals `openwit status` shows: a stage with a reduce step counts its
                    // items once (in: what the tasks read; out: what the reduce kept).
                    let totals = match st.tasks(&s.name) {
                        Ok(tasks) => StageTotals::of(&tasks),
                        Err(e) => {
                            d.problems.push((
                                workdir.join(openwit_core::state::STATE_FILE),
                                e.to_string(),
                            ));
                            StageTotals::default()
                        }
                    };
                    d.funnel.push(FunnelRow {
                        stage: s.name.clone(),
                        state: s.state.as_str().into(),
                        tasks_done: totals.tasks_done,
                        tasks_total: s.tasks_total,
                        items_in: totals.items_in,
                        items_out: totals.items_out,
                        drops: totals.drops,
                        elapsed_s: s.elapsed_s,
                    });
                }
            }
            Err(e) => d.funnel_note = Some(e.to_string()),
        },
        Err(e) => d.funnel_note = Some(e.to_string()),
    }

    // Entries before/after balancing.
    let ec = artifact::in_workdir::<EntryCounts>(workdir);
    if ec.exists() {
        match read_entry_counts(&ec) {
            Ok(v) => {
                d.entries = v;
                d.entries_source = Some(entry_counts_file());
            }
            Err(e) => d.problems.push((ec.clone(), e.to_string())),
        }
    }

    // Shards.
    let dl = artifact::dir_in_workdir::<Shards>(workdir);
    let mut from_shards: HashMap<i32, u64> = HashMap::new();
    for pq in artifact::list_in::<ShardTables>(&dl) {
        d.shards += 1;
        match openwit_shard::read_parquet(&pq) {
            Ok(rows) => {
                for r in rows {
                    d.rows += 1;
                    if r.status == openwit_shard::Status::Success {
                        d.successes += 1;
                        if let Some(c) = &r.caption {
                            d.caption_lengths.push(c.chars().count() as u64);
                        }
                        if let Some(w) = r.original_width.or(r.width) {
                            d.widths.push(w.max(0) as u64);
                        }
                        if let Some(h) = r.original_height.or(r.height) {
                            d.heights.push(h.max(0) as u64);
                        }
                        for id in r.entry_ids.unwrap_or_default() {
                            *from_shards.entry(id).or_default() += 1;
                        }
                    } else {
                        let host = crate::schema::domain_of(&r.url);
                        let host = if host.is_empty() {
                            "(no host)".into()
                        } else {
                            host
                        };
                        *d.failures_by_host.entry(host).or_default() += 1;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %pq.display(), error = %e, "damaged shard parquet; skipped in the report");
                d.problems.push((pq.clone(), e.to_string()));
            }
        }
    }
    for st in artifact::list_in::<ShardStats>(&dl) {
        match openwit_shard::read_stats(&st) {
            Ok(s) => {
                let src = if s.failures_by_reason.is_empty() {
                    &s.status_dict
                } else {
                    &s.failures_by_reason
                };
                for (k, v) in src {
                    *d.failures_by_reason.entry(k.clone()).or_default() += v;
                }
            }
            Err(e) => d.problems.push((st.clone(), e.to_string())),
        }
    }
    if d.entries.is_empty() && !from_shards.is_empty() {
        let names = crate::build::load_entries(&artifact::in_workdir::<QueryList>(workdir));
        d.entries = from_shards
            .into_iter()
            .map(|(id, n)| EntryCount {
                entry: names
                    .get(id as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("#{id}")),
                matches: n,
                kept: n,
            })
            .collect();
        d.entries
            .sort_by(|a, b| b.matches.cmp(&a.matches).then(a.entry.cmp(&b.entry)));
        d.entries_source = Some(format!(
            "the downloaded samples (no {})",
            entry_counts_file()
        ));
    }

    // Index.
    if workdir.join(crate::INDEX_DIR).is_dir()
        && let Ok(set) = crate::IndexSet::open(workdir)
    {
        d.indexed = Some((set.num_docs(), set.shards().len()));
        for (p, e) in &set.skipped {
            d.problems.push((p.clone(), e.clone()));
        }
    }

    // Training and evaluation.
    let metrics = Model::dir(workdir).join(Model::METRICS);
    if let Ok(text) = std::fs::read_to_string(&metrics) {
        for (i, line) in text.lines().enumerate() {
            let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let mut row: BTreeMap<String, f64> = m
                .iter()
                .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
                .collect();
            row.entry("step".into()).or_insert(i as f64);
            // `eval_every`: the held-out measures of that step
            if let Some(e) = m.get("eval") {
                let figures = [
                    ("held-out zero-shot top-1", "/zero_shot/top1"),
                    ("held-out image->text R@5", "/retrieval/image_to_text_r5"),
                    ("held-out text->image R@5", "/retrieval/text_to_image_r5"),
                ];
                for (name, ptr) in figures {
                    if let Some(v) = e.pointer(ptr).and_then(Value::as_f64) {
                        row.insert(name.into(), v);
                    }
                }
            }
            d.train.push(row);
        }
    }
    for p in artifact::list_in::<EvalResults>(&artifact::dir_in_workdir::<EvalResults>(workdir)) {
        match std::fs::read(&p).map(|b| serde_json::from_slice::<Value>(&b)) {
            Ok(Ok(v)) => d
                .eval
                .push((p.file_name().unwrap().to_string_lossy().into_owned(), v)),
            Ok(Err(e)) => d.problems.push((p.clone(), e.to_string())),
            Err(e) => d.problems.push((p.clone(), e.to_string())),
        }
    }
    d
}

fn bins(values: &[u64], edges: &[u64]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let label = match edges.get(i + 1) {
                Some(_) => format!("{e}"),
                None => format!("{e}+"),
            };
            (label, 0)
        })
        .collect();
    for &v in values {
        let i = edges.partition_point(|&e| e <= v).saturating_sub(1);
        out[i].1 += 1;
    }
    out
}

fn flatten_numbers(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_numbers(&p, v, out);
            }
        }
        Value::Array(a) if a.len() <= 50 => {
            for (i, v) in a.iter().enumerate() {
                flatten_numbers(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        Value::String(s) if s.len() < 200 => out.push((prefix.to_string(), s.clone())),
        Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
        _ => {}
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;font-size:.9em}
td:first-child,th:first-child{text-align:left}.muted{color:#888;fill:#888}.chart{display:block;margin:1em 0;font-size:12px;font-family:sans-serif}
.ct{font-size:14px;font-weight:600}.cols{display:flex;gap:2em;flex-wrap:wrap}.warn{color:#a33}code{background:#f4f4f4;padding:0 .2em}";

/// Renders the report of `workdir` as one HTML page.
pub fn render_report(workdir: &Path) -> String {
    render(&collect(workdir))
}

/// Renders gathered data.
pub fn render(d: &ReportData) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>OpenWIT report: {w}</title><style>{CSS}</style></head><body>\n<h1>OpenWIT report</h1>\n\
         <p>Workdir <code>{w}</code>; made {t}.</p>\n",
        w = esc(&d.workdir.display().to_string()),
        t = utc(openwit_core::state::now() as i64)
    );
    if !d.problems.is_empty() {
        h.push_str(
            "<p class=\"warn\">Files that could not be read (skipped):</p><ul class=\"warn\">",
        );
        for (p, e) in &d.problems {
            let _ = write!(
                h,
                "<li><code>{}</code>: {}</li>",
                esc(&p.display().to_string()),
                esc(e)
            );
        }
        h.push_str("</ul>\n");
    }

    // Funnel.
    h.push_str("<h2 id=\"funnel\">Funnel</h2>\n");
    if d.funnel.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">No stage has run here{}.</p>",
            d.funnel_note
                .as_ref()
                .map(|n| format!(" ({})", esc(n)))
                .unwrap_or_default()
        );
    } else {
        h.push_str("<table><tr><th>stage</th><th>state</th><th>tasks</th><th>items in</th><th>items out</th><th>dropped</th><th>elapsed</th></tr>\n");
        for r in &d.funnel {
            let _ = writeln!(
                h,
                "<tr class=\"stage\" data-stage=\"{s}\"><td>{s}</td><td>{}</td><td class=\"tasks\">{}/{}</td><td class=\"in\">{}</td><td class=\"out\">{}</td><td class=\"dropped\">{}</td><td>{:.1}s</td></tr>",
                esc(&r.state),
                r.tasks_done,
                r.tasks_total,
                r.items_in,
                r.items_out,
                r.drops.values().sum::<u64>(),
                r.elapsed_s,
                s = esc(&r.stage)
            );
        }
        h.push_str("</table>\n");
        let rows: Vec<(String, f64)> = d
            .funnel
            .iter()
            .map(|r| (format!("{} (out)", r.stage), r.items_out as f64))
            .collect();
        h.push_str(&hbars("Items out per stage", &rows, "#3b6fb6"));
        for r in d.funnel.iter().filter(|r| !r.drops.is_empty()) {
            let mut drops: Vec<(String, f64)> = r
                .drops
                .iter()
                .map(|(k, v)| (k.clone(), *v as f64))
                .collect();
            drops.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            drops.truncate(15);
            h.push_str(&hbars(
                &format!("{}: drops by reason", r.stage),
                &drops,
                "#c2413b",
            ));
        }
    }

    // Entries.
    h.push_str("<h2 id=\"entries\">Matches per entry</h2>\n");
    if d.entries.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">No entry counts (no <code>{}</code> and no matched entries in the shards).</p>",
            entry_counts_file()
        );
    } else {
        let _ = writeln!(
            h,
            "<p>From {}: {} entries, {} with at least one match.</p>",
            esc(d.entries_source.as_deref().unwrap_or("")),
            d.entries.len(),
            d.entries.iter().filter(|e| e.matches > 0).count()
        );
        let ranked = |f: fn(&EntryCount) -> u64| -> Vec<(f64, f64)> {
            let mut v: Vec<u64> = d.entries.iter().map(f).filter(|&c| c > 0).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            // At most ~2000 points: every rank at the head, then log-spaced ranks.
            let n = v.len();
            let mut pts = Vec::new();
            let mut r = 1usize;
            while r <= n {
                pts.push((r as f64, v[r - 1] as f64));
                r = if r < 500 {
                    r + 1
                } else {
                    (r as f64 * 1.003).ceil() as usize
                };
            }
            if n > 0 && pts.last().is_some_and(|p| p.0 as usize != n) {
                pts.push((n as f64, v[n - 1] as f64));
            }
            pts
        };
        let from_curation = d.entries_source.as_deref() == Some(entry_counts_file().as_str());
        let series = if from_curation {
            vec![
                ("before balancing".to_string(), ranked(|e| e.matches)),
                ("after balancing".to_string(), ranked(|e| e.kept)),
            ]
        } else {
            vec![("downloaded samples".to_string(), ranked(|e| e.kept))]
        };
        h.push_str(&lines(
            "Matches per entry, entries ranked (log-log)",
            "entry rank",
            "matches",
            &series,
            true,
        ));
        let mut by: Vec<&EntryCount> = d.entries.iter().filter(|e| e.matches > 0).collect();
        by.sort_by(|a, b| b.matches.cmp(&a.matches).then(a.entry.cmp(&b.entry)));
        let table = |title: &str, it: &mut dyn Iterator<Item = &&EntryCount>| -> String {
            let mut t = format!(
                "<div><h3>{title}</h3><table><tr><th>entry</th><th>matches</th><th>kept</th></tr>"
            );
            for e in it {
                let _ = write!(
                    t,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&e.entry),
                    e.matches,
                    e.kept
                );
            }
            t.push_str("</table></div>");
            t
        };
        h.push_str("<div class=\"cols\">");
        h.push_str(&table("Most frequent", &mut by.iter().take(20)));
        h.push_str(&table(
            "Least frequent (at least one match)",
            &mut by.iter().rev().take(20),
        ));
        h.push_str("</div>\n");
    }

    // Samples.
    h.push_str("<h2 id=\"samples\">Samples</h2>\n");
    if d.shards == 0 {
        h.push_str("<p class=\"muted\">No shards in <code>download/</code>.</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p>{} shard(s): {} rows, {} successful samples ({:.1}%).{}</p>",
            d.shards,
            d.rows,
            d.successes,
            100.0 * d.successes as f64 / d.rows.max(1) as f64,
            d.indexed
                .map(|(n, s)| format!(" Indexed: {n} samples in {s} shard index(es)."))
                .unwrap_or_default()
        );
        let len_edges: Vec<u64> = (0..=30).map(|i| i * 10).collect();
        h.push_str(&histogram(
            "Caption length (characters)",
            "characters",
            &bins(&d.caption_lengths, &len_edges),
            "#2f9e66",
        ));
        let size_edges = [
            0, 64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 2048, 3072,
            4096,
        ];
        h.push_str(&histogram(
            "Image width (original pixels)",
            "pixels",
            &bins(&d.widths, &size_edges),
            "#7d5ba6",
        ));
        h.push_str(&histogram(
            "Image height (original pixels)",
            "pixels",
            &bins(&d.heights, &size_edges),
            "#7d5ba6",
        ));
        let mut reasons: Vec<(String, f64)> = d
            .failures_by_reason
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        reasons.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        reasons.truncate(20);
        h.push_str(&hbars("Download failures by reason", &reasons, "#c2413b"));
        let mut hosts: Vec<(String, f64)> = d
            .failures_by_host
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        hosts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hosts.truncate(20);
        h.push_str(&hbars(
            "Download failures by host (top 20)",
            &hosts,
            "#d9822b",
        ));
    }

    // Training and evaluation.
    h.push_str("<h2 id=\"training\">Training</h2>\n");
    if d.train.is_empty() {
        h.push_str("<p class=\"muted\">No <code>train/metrics.jsonl</code>.</p>\n");
    } else {
        let mut keys: Vec<String> = d.train.iter().flat_map(|r| r.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| {
                !matches!(
                    k.as_str(),
                    "step" | "epoch" | "time" | "elapsed_s" | "samples"
                )
            })
            .collect();
        let series_of = |k: &str| -> (String, Vec<(f64, f64)>) {
            (
                k.to_string(),
                d.train
                    .iter()
                    .filter_map(|r| Some((*r.get("step")?, *r.get(k)?)))
                    .collect(),
            )
        };
        let loss: Vec<_> = keys
            .iter()
            .filter(|k| k.contains("loss"))
            .map(|k| series_of(k))
            .collect();
        if !loss.is_empty() {
            h.push_str(&lines("Loss", "step", "loss", &loss, false));
        }
        let held_out: Vec<_> = keys
            .iter()
            .filter(|k| k.starts_with("held-out"))
            .map(|k| series_of(k))
            .collect();
        if !held_out.is_empty() {
            h.push_str(&lines(
                "Held-out evaluation during training (eval_every)",
                "step",
                "accuracy / recall",
                &held_out,
                false,
            ));
        }
        for k in keys
            .iter()
            .filter(|k| !k.contains("loss") && !k.starts_with("held-out"))
            .take(4)
        {
            h.push_str(&lines(k, "step", k, &[series_of(k)], false));
        }
    }
    h.push_str("<h2 id=\"eval\">Evaluation</h2>\n");
    if d.eval.is_empty() {
        h.push_str("<p class=\"muted\">No <code>eval/*.json</code>.</p>\n");
    }
    for (name, v) in &d.eval {
        if let Some(html) = eval_results(name, v) {
            h.push_str(&html);
            continue;
        }
        let mut kv = Vec::new();
        flatten_numbers("", v, &mut kv);
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>metric</th><th>value</th></tr>",
            esc(name)
        );
        for (k, v) in kv.iter().take(200) {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
        }
        h.push_str("</table>\n");
    }
    let _ = writeln!(
        h,
        "<p class=\"muted\">{} charts, all inline; this page needs no network.</p></body></html>",
        h.matches("<svg").count()
    );
    h
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", 100.0 * x))
        .unwrap_or_else(|| "-".into())
}

/// The overlap analysis of `results.json`: per measured set, how many items the training data
/// holds (by kind) and the measure without them.
fn overlap_table(h: &mut String, o: &Value) {
    let f = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_f64);
    let n = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0);
    let held = n(o, "/held_out_percent");
    let _ = write!(
        h,
        "<h3>Overlap with the training data</h3><p class=\"muted\">{} training samples ({}{}); near-duplicates within {} bits of the perceptual hash. The CLIP paper's check: the same measures without the evaluation items the training data holds.</p><table><tr><th>set</th><th>items</th><th>overlapping</th><th>sha256 / phash / caption</th><th>without the overlaps</th></tr>",
        n(o, "/training_samples"),
        esc(o.get("training").and_then(Value::as_str).unwrap_or("")),
        if held > 0 {
            format!(", less the {held}% held out")
        } else {
            String::new()
        },
        n(o, "/phash_distance")
    );
    for (what, key) in [
        ("zero-shot", "zero_shot"),
        ("retrieval", "retrieval"),
        ("linear probe", "linear_probe"),
    ] {
        let Some(s) = o.get(key).filter(|s| s.is_object()) else {
            continue;
        };
        let clean = match s.get("clean").filter(|c| c.is_object()) {
            None => "every item overlaps".to_string(),
            Some(c) if key == "retrieval" => format!(
                "{} pairs: image&rarr;text R@5 {}, text&rarr;image R@5 {}",
                n(c, "/pairs"),
                pct(f(c, "/image_to_text/1")),
                pct(f(c, "/text_to_image/1"))
            ),
            Some(c) => format!(
                "top-1 <b>{}</b>, top-5 {}, mean per-class recall {}",
                pct(f(c, "/top1")),
                pct(f(c, "/top5")),
                pct(f(c, "/mean_per_class_recall"))
            ),
        };
        let _ = write!(
            h,
            "<tr><td>{what}</td><td>{}</td><td>{} ({})</td><td>{} / {} / {}</td><td>{clean}</td></tr>",
            n(s, "/items"),
            n(s, "/overlapping"),
            pct(Some(
                n(s, "/overlapping") as f64 / n(s, "/items").max(1) as f64
            )),
            n(s, "/sha256"),
            n(s, "/phash"),
            n(s, "/caption")
        );
    }
    h.push_str("</table>\n");
}

/// `openwit eval`'s `results.json` (zero-shot, retrieval, linear probe): the measures next to
/// chance, the per-class table and the confusion overview of the worst classes. None for JSON
/// of another shape (shown as a flat table instead).
fn eval_results(name: &str, v: &Value) -> Option<String> {
    let z = v.get("zero_shot").filter(|z| z.is_object());
    let r = v.get("retrieval").filter(|r| r.is_object());
    let p = v.get("linear_probe").filter(|p| p.is_object());
    if z.is_none() && r.is_none() && p.is_none() {
        return None;
    }
    let f = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_f64);
    let n = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0);
    let mut h = String::new();
    let _ = write!(
        h,
        "<h3>{} <span class=\"muted\">({})</span></h3><table><tr><th>measure</th><th>set</th><th>images</th><th>result</th><th>chance</th></tr>",
        esc(name),
        esc(v.get("model").and_then(Value::as_str).unwrap_or(""))
    );
    let set = |v: &Value| esc(v.get("set").and_then(Value::as_str).unwrap_or(""));
    if let Some(z) = z {
        let _ = write!(
            h,
            "<tr><td>zero-shot ({} classes)</td><td>{}</td><td>{}</td><td>top-1 <b>{}</b>, top-5 {}, mean per-class recall {}</td><td>{}</td></tr>",
            n(z, "/classes"),
            set(z),
            n(z, "/images"),
            pct(f(z, "/top1")),
            pct(f(z, "/top5")),
            pct(f(z, "/mean_per_class_recall")),
            pct(f(z, "/chance"))
        );
    }
    if let Some(r) = r {
        let images = n(r, "/images").max(1) as f64;
        let _ = write!(
            h,
            "<tr><td>retrieval ({} pairs)</td><td>{}</td><td>{}</td><td>image&rarr;text R@1 {}, R@5 <b>{}</b>, R@10 {}<br>text&rarr;image R@1 {}, R@5 <b>{}</b>, R@10 {}</td><td>R@5 {}</td></tr>",
            n(r, "/pairs"),
            set(r),
            n(r, "/images"),
            pct(f(r, "/image_to_text/0")),
            pct(f(r, "/image_to_text/1")),
            pct(f(r, "/image_to_text/2")),
            pct(f(r, "/text_to_image/0")),
            pct(f(r, "/text_to_image/1")),
            pct(f(r, "/text_to_image/2")),
            pct(Some((5.0 / images).min(1.0)))
        );
    }
    if let Some(p) = p {
        let classes = n(p, "/classes").max(1);
        let _ = write!(
            h,
            "<tr><td>linear probe ({classes} classes, C = {})</td><td>{}</td><td>{}</td><td>top-1 <b>{}</b>, top-5 {}, mean per-class recall {}</td><td>{}</td></tr>",
            f(p, "/c").map(|c| format!("{c:.3e}")).unwrap_or_default(),
            esc(p.get("test_set").and_then(Value::as_str).unwrap_or("")),
            n(p, "/test_images"),
            pct(f(p, "/top1")),
            pct(f(p, "/top5")),
            pct(f(p, "/mean_per_class_recall")),
            pct(Some(1.0 / classes as f64))
        );
    }
    h.push_str("</table>\n");
    if let Some(o) = v.get("overlap").filter(|o| o.is_object()) {
        overlap_table(&mut h, o);
    }
    // Per class: zero-shot and probe side by side, worst zero-shot first, with what their
    // misses were taken for.
    let per = |v: Option<&Value>, ptr: &str| -> Vec<Value> {
        v.and_then(|v| v.pointer(ptr))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let zs = per(z, "/per_class");
    let probe = per(p, "/per_class");
    let rows = if zs.is_empty() { &probe } else { &zs };
    if !rows.is_empty() {
        let mut order: Vec<&Value> = rows.iter().collect();
        order.sort_by(|a, b| {
            f(a, "/top1")
                .unwrap_or(0.0)
                .total_cmp(&f(b, "/top1").unwrap_or(0.0))
        });
        let probe_of = |class: &str| {
            probe
                .iter()
                .find(|q| q.get("class").and_then(Value::as_str) == Some(class))
                .and_then(|q| f(q, "/top1"))
        };
        let confusions = |row: &Value| -> String {
            row.get("confused_with")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .map(|x| {
                            format!(
                                "{} ({})",
                                esc(x.get("class").and_then(Value::as_str).unwrap_or("")),
                                n(x, "/images")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let _ = write!(
            h,
            "<h3>Per class, worst first</h3><table><tr><th>class</th><th>images</th><th>{} top-1</th>{}<th>its misses taken for (images)</th></tr>",
            if zs.is_empty() { "probe" } else { "zero-shot" },
            if zs.is_empty() || probe.is_empty() {
                ""
            } else {
                "<th>probe top-1</th>"
            }
        );
        for row in order {
            let class = row.get("class").and_then(Value::as_str).unwrap_or("");
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>",
                esc(class),
                n(row, "/images"),
                pct(f(row, "/top1")),
                if zs.is_empty() || probe.is_empty() {
                    String::new()
                } else {
                    format!("<td>{}</td>", pct(probe_of(class)))
                },
                confusions(row)
            );
        }
        h.push_str("</table>\n");
    }
    Some(h)
}

/// Writes the report of `workdir` to `out` (default `WORKDIR/report/report.html`), atomically.
/// Returns the path written.
pub fn write_report(workdir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    if !workdir.is_dir() {
        return Err(IndexError::NoIndex(format!(
            "{}: no such workdir; pass the workdir of a run (the `workdir` of its pipeline file)",
            workdir.display()
        )));
    }
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workdir.join(REPORT_DIR).join(REPORT_FILE));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| IndexError::io(parent, e))?;
    }
    let html = render_report(workdir);
    openwit_core::atomic::write_atomic(&path, html.as_bytes())
        .map_err(|e| IndexError::Other(e.to_string()))?;
    Ok(path)
}

/// The `[report]` table of a pipeline file (no keys yet).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {}

/// The `report` stage: writes `WORKDIR/report/report.html` after the stages it follows.
pub struct ReportStage {
    upstream: Vec<String>,
}

impl ReportStage {
    /// The stage, run after `upstream` (the other stages of the pipeline, so a rerun of any of
    /// them rewrites the report).
    pub fn new(_cfg: ReportConfig, upstream: Vec<String>) -> Self {
        ReportStage { upstream }
    }
}

impl Stage for ReportStage {
    fn name(&self) -> &str {
        REPORT_DIR
    }
    fn upstream(&self) -> Vec<String> {
        self.upstream.clone()
    }
    fn config(&self) -> Value {
        json!({ "version": 1, "after": self.upstream })
    }
    fn reads_run_state(&self) -> bool {
        true
    }
    fn plan(&self, _ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok(vec![TaskSpec::new("report", Value::Null)])
    }
    fn run_task(
        &self,
        ctx: &TaskContext<'_>,
        _task: &TaskSpec,
    ) -> openwit_core::Result<TaskReport> {
        let html = render_report(ctx.workdir);
        let mut f = ctx.create_output(REPORT_FILE)?;
        std::io::Write::write_all(&mut f, html.as_bytes())
            .and_then(|_| std::io::Write::flush(&mut f))
            .map_err(|e| openwit_core::Error::io(ctx.stage_dir().join(REPORT_FILE), e))?;
        Ok(TaskReport {
            items_in: 1,
            items_out: 1,
            ..Default::default()
        })
    }
    fn summary(
        &self,
        ctx: &StageContext<'_>,
        _tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        Some(format!(
            "report: {}",
            ctx.stage_dir().join(REPORT_FILE).display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_776_578), "2026-11-27 10:49 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn bins_put_values_at_their_lower_edge() {
        let b = bins(&[0, 9, 10, 55, 1000], &[0, 10, 50]);
        assert_eq!(
            b,
            vec![("0".into(), 2), ("10".into(), 1), ("50+".into(), 2)]
        );
    }

    #[test]
    fn report_of_an_empty_folder_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let html = render_report(dir.path());
        assert!(html.contains("No stage has run here"));
        assert!(html.contains("No shards"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}

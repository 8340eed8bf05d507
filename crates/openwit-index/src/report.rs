//! `openwit report WORKDIR` and the `report` stage: one self-contained HTML page (inline CSS and
//! SVG, no script, no network) describing a run.
//!
//! It reads only what exists: the run's summary (given by the executor, or by `openwit report`
//! from the run state) for the funnel, the curation's
//! `curate/entry_counts.parquet`, the shards' parquet and `_stats.json` in `download/`, the index,
//! `train/metrics.jsonl` and `eval/*.json`. Missing parts are said to be missing, not errors.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, Int32Array, Int64Array, StringArray};
use openwit_core::artifact::{
    self, EntryCounts, EvalResults, Model, QueryList, ShardStats, ShardTables, Shards,
};
use openwit_core::{RunSummary, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
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
    /// The nearest of the overlap analysis's pairs (`eval/overlap.jsonl`: an evaluation item and
    /// a training sample), at most [`OVERLAP_EXAMPLES`], and how many distinct pairs it lists.
    pub overlap_pairs: Vec<Value>,
    pub overlap_pairs_total: u64,
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

/// What the funnel shows: the run's summary, or why there is none (said on the page).
pub type Funnel<'a> = std::result::Result<&'a RunSummary, &'a str>;

/// Gathers what the report shows from `workdir`, with the funnel from `run`.
pub fn collect(workdir: &Path, run: Funnel<'_>) -> ReportData {
    let mut d = ReportData {
        workdir: workdir.to_path_buf(),
        ..Default::default()
    };
    // Funnel from the run summary: the totals `openwit status` shows (a stage with a reduce
    // step counts its items once: in, what the tasks read; out, what the reduce kept).
    match run {
        Ok(run) => {
            for s in run.stages.iter().filter(|s| s.stage != REPORT_DIR) {
                d.funnel.push(FunnelRow {
                    stage: s.stage.clone(),
                    state: s.state.as_str().into(),
                    tasks_done: s.totals.tasks_done,
                    tasks_total: s.tasks_total,
                    items_in: s.totals.items_in,
                    items_out: s.totals.items_out,
                    drops: s.totals.drops.clone(),
                    elapsed_s: s.elapsed_s,
                });
            }
        }
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
    let pairs = artifact::dir_in_workdir::<EvalResults>(workdir).join(artifact::OVERLAP_PAIRS);
    if let Ok(text) = std::fs::read_to_string(&pairs) {
        let (rows, total, bad) = nearest_pairs(&text);
        d.overlap_pairs = rows;
        d.overlap_pairs_total = total;
        if bad > 0 {
            d.problems.push((
                pairs,
                format!("{bad} lines that are not a JSON object, skipped"),
            ));
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

/// How many of the overlap analysis's pairs the report shows.
pub const OVERLAP_EXAMPLES: usize = 12;

/// The nearest [`OVERLAP_EXAMPLES`] distinct pairs of `overlap.jsonl` (the same item and training
/// sample by the same kind count once, whichever measured sets list them): same bytes first,
/// then perceptual hashes by distance, then equal captions; with the number of distinct pairs
/// and of lines that did not parse.
fn nearest_pairs(text: &str) -> (Vec<Value>, u64, u64) {
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    let mut bad = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line) else {
            bad += 1;
            continue;
        };
        let field = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
        if seen.insert([field("item"), field("kind"), field("shard"), field("key")]) {
            rows.push(v);
        }
    }
    let rank = |v: &Value| {
        let d = v.get("distance").and_then(Value::as_u64).unwrap_or(0);
        match v.get("kind").and_then(Value::as_str) {
            Some("sha256") => (0, 0),
            Some("phash") => (1, d),
            _ => (2, 0),
        }
    };
    let total = rows.len() as u64;
    // Stable: pairs of one rank keep the file's order.
    rows.sort_by_key(rank);
    rows.truncate(OVERLAP_EXAMPLES);
    (rows, total, bad)
}

/// The page's rows of [`ReportData::overlap_pairs`].
fn pairs_view(d: &ReportData) -> Value {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    // A path's last two parts (an image folder's class and file), or a shard's `NAME.tar:KEY`.
    let short = |p: &str| {
        let parts: Vec<&str> = p.rsplit(['/', '\\']).take(2).collect();
        parts.into_iter().rev().collect::<Vec<_>>().join("/")
    };
    let rows: Vec<Value> = d
        .overlap_pairs
        .iter()
        .map(|v| {
            let kind = match (
                s(v, "kind").as_str(),
                v.get("distance").and_then(Value::as_u64),
            ) {
                ("sha256", _) => "same bytes".to_string(),
                ("phash", Some(d)) => format!("perceptual hash, {d} bits apart"),
                ("caption", _) => "same caption".to_string(),
                (k, _) => k.to_string(),
            };
            let shard = s(v, "shard");
            let name = Path::new(&shard)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(shard);
            json!({
                "item": short(&s(v, "item")),
                "item_full": s(v, "item"),
                "kind": kind,
                "training": format!("{name}:{}", s(v, "key")),
                "caption": crate::serve::shorten(&s(v, "caption"), 120),
                "url": s(v, "url"),
            })
        })
        .collect();
    json!({ "total": d.overlap_pairs_total, "shown": rows.len(), "rows": rows, "file": format!("{}/{}", <EvalResults as artifact::Artifact>::PRODUCER, artifact::OVERLAP_PAIRS) })
}

/// The page's template (`templates/report.html`), embedded so the binary stays self-contained.
const TEMPLATE: &str = include_str!("../templates/report.html");

/// The report's template environment ([`environment_of`] with `report.html`).
fn environment() -> &'static minijinja::Environment<'static> {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| environment_of(&[("report.html", TEMPLATE)], true))
}

/// A template environment of the crate's HTML pages (the report, the web UI's): minijinja with
/// `trim_blocks`/`lstrip_blocks`, strict about undefined names, HTML autoescape through the one
/// escape function (`openwit_core::escape::html`, via `openwit_chart::esc`) instead of
/// minijinja's own; `templates` (name, source) added, keeping a template's last newline or not.
pub(crate) fn environment_of(
    templates: &[(&'static str, &'static str)],
    keep_trailing_newline: bool,
) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(keep_trailing_newline)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        let text = value.to_string();
        if value.is_safe() || *state.auto_escape() == minijinja::AutoEscape::None {
            out.write_str(&text)?;
        } else {
            out.write_str(&esc(&text))?;
        }
        Ok(())
    });
    for (name, source) in templates {
        env.add_template(name, source)
            .expect("the crate's templates parse (tested)");
    }
    env
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

/// Renders the report of `workdir` as one HTML page, with the funnel from `run`.
pub fn render_report(workdir: &Path, run: Funnel<'_>) -> String {
    render(&collect(workdir, run))
}

/// Renders gathered data, made now (at `SOURCE_DATE_EPOCH` when set: `openwit_core::clock`).
pub fn render(d: &ReportData) -> String {
    render_at(d, openwit_core::clock::output_time_s() as i64)
}

/// Renders gathered data as made at `made` (Unix seconds): the view that `view` builds, through the
/// template `templates/report.html`.
pub fn render_at(d: &ReportData, made: i64) -> String {
    environment()
        .get_template("report.html")
        .and_then(|t| t.render(minijinja::value::Serde(view(d, made))))
        .expect("the report template renders every view (tested)")
}

/// Items sorted by count, largest first (then by name), the first `n`, as chart rows.
fn top(counts: &BTreeMap<String, u64>, n: usize) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = counts.iter().map(|(k, v)| (k.clone(), *v as f64)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// What the template shows, derived from `d`: plain text (escaped by the template), numbers
/// formatted here, and the charts' SVG (inserted as it is).
fn view(d: &ReportData, made: i64) -> Value {
    let mut charts = 0;
    let mut chart = |svg: String| -> String {
        charts += svg.matches("<svg").count();
        svg
    };

    // Funnel.
    let funnel: Vec<Value> = d
        .funnel
        .iter()
        .map(|r| {
            json!({
                "stage": r.stage,
                "state": r.state,
                "tasks_done": r.tasks_done,
                "tasks_total": r.tasks_total,
                "items_in": r.items_in,
                "items_out": r.items_out,
                "dropped": r.drops.values().sum::<u64>(),
                "elapsed": format!("{:.1}", r.elapsed_s),
            })
        })
        .collect();
    let mut funnel_charts = Vec::new();
    if !d.funnel.is_empty() {
        let rows: Vec<(String, f64)> = d
            .funnel
            .iter()
            .map(|r| (format!("{} (out)", r.stage), r.items_out as f64))
            .collect();
        funnel_charts.push(chart(hbars("Items out per stage", &rows, "#3b6fb6")));
        for r in d.funnel.iter().filter(|r| !r.drops.is_empty()) {
            funnel_charts.push(chart(hbars(
                &format!("{}: drops by reason", r.stage),
                &top(&r.drops, 15),
                "#c2413b",
            )));
        }
    }

    // Entries.
    let entries = (!d.entries.is_empty()).then(|| {
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
        let ranks = chart(lines(
            "Matches per entry, entries ranked (log-log)",
            "entry rank",
            "matches",
            &series,
            true,
        ));
        let mut by: Vec<&EntryCount> = d.entries.iter().filter(|e| e.matches > 0).collect();
        by.sort_by(|a, b| b.matches.cmp(&a.matches).then(a.entry.cmp(&b.entry)));
        let table = |title: &str, it: &mut dyn Iterator<Item = &&EntryCount>| {
            json!({ "title": title, "rows": it.map(|e| json!({
                "entry": e.entry, "matches": e.matches, "kept": e.kept,
            })).collect::<Vec<_>>() })
        };
        json!({
            "source": d.entries_source.as_deref().unwrap_or(""),
            "count": d.entries.len(),
            "matched": by.len(),
            "chart": ranks,
            "tables": [
                table("Most frequent", &mut by.iter().take(20)),
                table("Least frequent (at least one match)", &mut by.iter().rev().take(20)),
            ],
        })
    });

    // Samples.
    let samples = (d.shards > 0).then(|| {
        let len_edges: Vec<u64> = (0..=30).map(|i| i * 10).collect();
        let size_edges = [
            0, 64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 2048, 3072,
            4096,
        ];
        let charts = vec![
            chart(histogram(
                "Caption length (characters)",
                "characters",
                &bins(&d.caption_lengths, &len_edges),
                "#2f9e66",
            )),
            chart(histogram(
                "Image width (original pixels)",
                "pixels",
                &bins(&d.widths, &size_edges),
                "#7d5ba6",
            )),
            chart(histogram(
                "Image height (original pixels)",
                "pixels",
                &bins(&d.heights, &size_edges),
                "#7d5ba6",
            )),
            chart(hbars(
                "Download failures by reason",
                &top(&d.failures_by_reason, 20),
                "#c2413b",
            )),
            chart(hbars(
                "Download failures by host (top 20)",
                &top(&d.failures_by_host, 20),
                "#d9822b",
            )),
        ];
        json!({
            "shards": d.shards,
            "rows": d.rows,
            "successes": d.successes,
            "percent": format!("{:.1}", 100.0 * d.successes as f64 / d.rows.max(1) as f64),
            "indexed": d.indexed.map(|(n, s)| json!({ "samples": n, "shards": s })),
            "charts": charts,
        })
    });

    // Training.
    let training = (!d.train.is_empty()).then(|| {
        let mut keys: Vec<String> = d.train.iter().flat_map(|r| r.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys.retain(|k| {
            !matches!(
                k.as_str(),
                "step" | "epoch" | "time" | "elapsed_s" | "samples"
            )
        });
        let series_of = |k: &str| -> (String, Vec<(f64, f64)>) {
            (
                k.to_string(),
                d.train
                    .iter()
                    .filter_map(|r| Some((*r.get("step")?, *r.get(k)?)))
                    .collect(),
            )
        };
        let mut out = Vec::new();
        let loss: Vec<_> = keys
            .iter()
            .filter(|k| k.contains("loss"))
            .map(|k| series_of(k))
            .collect();
        if !loss.is_empty() {
            out.push(chart(lines("Loss", "step", "loss", &loss, false)));
        }
        let held_out: Vec<_> = keys
            .iter()
            .filter(|k| k.starts_with("held-out"))
            .map(|k| series_of(k))
            .collect();
        if !held_out.is_empty() {
            out.push(chart(lines(
                "Held-out evaluation during training (eval_every)",
                "step",
                "accuracy / recall",
                &held_out,
                false,
            )));
        }
        for k in keys
            .iter()
            .filter(|k| !k.contains("loss") && !k.starts_with("held-out"))
            .take(4)
        {
            out.push(chart(lines(k, "step", k, &[series_of(k)], false)));
        }
        out
    });

    // Evaluation: `openwit eval`'s results, or any other JSON as a flat table.
    let evals: Vec<Value> = d
        .eval
        .iter()
        .map(|(name, v)| {
            eval_results(name, v)
                .map(|mut e| {
                    // `overlap.jsonl` lists the pairs of `results.json`'s overlap analysis.
                    if name == "results.json" && !e["overlap"].is_null() {
                        e["overlap"]["pairs"] = pairs_view(d);
                    }
                    e
                })
                .unwrap_or_else(|| {
                let mut kv = Vec::new();
                flatten_numbers("", v, &mut kv);
                kv.truncate(200);
                json!({
                    "name": name,
                    "metrics": kv.into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
                })
            })
        })
        .collect();

    json!({
        "workdir": d.workdir.display().to_string(),
        "made": utc(made),
        "problems": d.problems.iter().map(|(p, e)| json!({
            "path": p.display().to_string(), "reason": e,
        })).collect::<Vec<_>>(),
        "funnel": funnel,
        "funnel_note": d.funnel_note,
        "funnel_charts": funnel_charts,
        "entries": entries,
        "samples": samples,
        "training": training,
        "evals": evals,
        "charts": charts,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.2}%", 100.0 * x))
        .unwrap_or_else(|| "-".into())
}

/// The overlap analysis of `results.json`: per measured set, how many items the training data
/// holds (by kind) and the measure without them.
fn overlap_view(o: &Value) -> Value {
    let f = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_f64);
    let n = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0);
    let sets: Vec<Value> = [
        ("zero-shot", "zero_shot"),
        ("retrieval", "retrieval"),
        ("linear probe", "linear_probe"),
    ]
    .into_iter()
    .filter_map(|(what, key)| {
        let s = o.get(key).filter(|s| s.is_object())?;
        let clean = match s.get("clean").filter(|c| c.is_object()) {
            None => Value::Null,
            Some(c) if key == "retrieval" => json!({
                "pairs": n(c, "/pairs"),
                "i2t": pct(f(c, "/image_to_text/1")),
                "t2i": pct(f(c, "/text_to_image/1")),
            }),
            Some(c) => json!({
                "top1": pct(f(c, "/top1")),
                "top5": pct(f(c, "/top5")),
                "recall": pct(f(c, "/mean_per_class_recall")),
            }),
        };
        Some(json!({
            "what": what,
            "total": n(s, "/items"),
            "overlapping": n(s, "/overlapping"),
            "share": pct(Some(n(s, "/overlapping") as f64 / n(s, "/items").max(1) as f64)),
            "sha256": n(s, "/sha256"),
            "phash": n(s, "/phash"),
            "caption": n(s, "/caption"),
            "clean": clean,
        }))
    })
    .collect();
    json!({
        "training_samples": n(o, "/training_samples"),
        "training": o.get("training").and_then(Value::as_str).unwrap_or(""),
        "held": n(o, "/held_out_percent"),
        "phash_distance": n(o, "/phash_distance"),
        "sets": sets,
    })
}

/// `openwit eval`'s `results.json` (zero-shot, retrieval, linear probe): the measures next to
/// chance, the per-class table and the confusion overview of the worst classes. None for JSON
/// of another shape (shown as a flat table instead).
fn eval_results(name: &str, v: &Value) -> Option<Value> {
    let z = v.get("zero_shot").filter(|z| z.is_object());
    let r = v.get("retrieval").filter(|r| r.is_object());
    let p = v.get("linear_probe").filter(|p| p.is_object());
    if z.is_none() && r.is_none() && p.is_none() {
        return None;
    }
    let f = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_f64);
    let n = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0);
    let s = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let zero_shot = z.map(|z| {
        json!({
            "classes": n(z, "/classes"),
            "dataset": s(z, "set"),
            "images": n(z, "/images"),
            "top1": pct(f(z, "/top1")),
            "top5": pct(f(z, "/top5")),
            "recall": pct(f(z, "/mean_per_class_recall")),
            "chance": pct(f(z, "/chance")),
        })
    });
    let retrieval = r.map(|r| {
        let images = n(r, "/images").max(1) as f64;
        let at = |dir: &str| -> Vec<String> {
            (0..3).map(|i| pct(f(r, &format!("/{dir}/{i}")))).collect()
        };
        json!({
            "pairs": n(r, "/pairs"),
            "dataset": s(r, "set"),
            "images": n(r, "/images"),
            "i2t": at("image_to_text"),
            "t2i": at("text_to_image"),
            "chance": pct(Some((5.0 / images).min(1.0))),
        })
    });
    let probe = p.map(|p| {
        let classes = n(p, "/classes").max(1);
        json!({
            "classes": classes,
            "c": f(p, "/c").map(|c| format!("{c:.3e}")).unwrap_or_default(),
            "dataset": s(p, "test_set"),
            "images": n(p, "/test_images"),
            "top1": pct(f(p, "/top1")),
            "top5": pct(f(p, "/top5")),
            "recall": pct(f(p, "/mean_per_class_recall")),
            "chance": pct(Some(1.0 / classes as f64)),
        })
    });
    let overlap = v.get("overlap").filter(|o| o.is_object()).map(overlap_view);
    // Per class: zero-shot and probe side by side, worst zero-shot first, with what their
    // misses were taken for.
    let per = |v: Option<&Value>, ptr: &str| -> Vec<Value> {
        v.and_then(|v| v.pointer(ptr))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let zs = per(z, "/per_class");
    let probe_rows = per(p, "/per_class");
    let rows = if zs.is_empty() { &probe_rows } else { &zs };
    let per_class = (!rows.is_empty()).then(|| {
        let mut order: Vec<&Value> = rows.iter().collect();
        order.sort_by(|a, b| {
            f(a, "/top1")
                .unwrap_or(0.0)
                .total_cmp(&f(b, "/top1").unwrap_or(0.0))
        });
        let probe_of = |class: &str| {
            probe_rows
                .iter()
                .find(|q| q.get("class").and_then(Value::as_str) == Some(class))
                .and_then(|q| f(q, "/top1"))
        };
        // Joined before escaping: `, ` and ` (N)` need no escape, so escaping the whole line
        // gives the same bytes as escaping each class name.
        let confusions = |row: &Value| -> String {
            row.get("confused_with")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .map(|x| format!("{} ({})", s(x, "class"), n(x, "/images")))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        json!({
            "measure": if zs.is_empty() { "probe" } else { "zero-shot" },
            "both": !zs.is_empty() && !probe_rows.is_empty(),
            "rows": order.into_iter().map(|row| {
                let class = s(row, "class");
                json!({
                    "name": class,
                    "images": n(row, "/images"),
                    "top1": pct(f(row, "/top1")),
                    "probe_top1": pct(probe_of(&class)),
                    "confused": confusions(row),
                })
            }).collect::<Vec<_>>(),
        })
    });
    Some(json!({
        "name": name,
        "model": s(v, "model"),
        "metrics": null,
        "zero_shot": zero_shot,
        "retrieval": retrieval,
        "probe": probe,
        "overlap": overlap,
        "per_class": per_class,
    }))
}

/// Writes the report of `workdir` to `out` (default `WORKDIR/report/report.html`), atomically.
/// Returns the path written.
pub fn write_report(workdir: &Path, run: Funnel<'_>, out: Option<&Path>) -> Result<PathBuf> {
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
    let html = render_report(workdir, run);
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

impl openwit_core::FromConfig for ReportStage {
    const TABLE: &'static str = "report";
    type Config = ReportConfig;
    fn from_config(
        cfg: ReportConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        // After every other stage of the file, so a rerun of any of them rewrites it (the file's
        // stages in pipeline order, so a new stage cannot be forgotten here).
        let after = doc
            .stages()
            .filter(|n| *n != Self::TABLE)
            .map(str::to_string)
            .collect();
        Ok(Self::new(cfg, after))
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
    fn reads_run_summary(&self) -> bool {
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
        let run = ctx
            .run_summary()
            .ok_or_else(|| openwit_core::Error::Stage("the executor gave no run summary".into()))?;
        let html = render_report(ctx.workdir, Ok(run));
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

    /// `overlap.jsonl`'s pairs: one per item, training sample and kind whichever sets list it,
    /// same bytes first, then the nearest hashes, then captions; a broken line counted.
    #[test]
    fn the_nearest_overlap_pairs_once_each() {
        let line = |set: &str, item: &str, kind: &str, key: &str, d: Option<u32>| {
            let mut v =
                json!({"set": set, "item": item, "kind": kind, "shard": "s/00000.tar", "key": key});
            if let Some(d) = d {
                v["distance"] = json!(d);
            }
            v.to_string()
        };
        let mut text = vec![
            line("zero_shot", "a.png", "caption", "1", None),
            line("zero_shot", "b.png", "phash", "2", Some(4)),
            line("zero_shot", "c.png", "phash", "3", Some(1)),
            line("zero_shot", "c.png", "sha256", "3", None),
            "{not json".to_string(),
        ];
        // The probe's test set is the same folder: the same pairs again.
        let again: Vec<String> = text[..4]
            .iter()
            .map(|l| l.replace("zero_shot", "linear_probe"))
            .collect();
        text.extend(again);
        let extra: Vec<String> = (0..OVERLAP_EXAMPLES)
            .map(|i| line("retrieval", &format!("r{i}"), "caption", "9", None))
            .collect();
        text.extend(extra);
        let (rows, total, bad) = nearest_pairs(&text.join("\n"));
        assert_eq!(total, 4 + OVERLAP_EXAMPLES as u64);
        assert_eq!(bad, 1);
        assert_eq!(rows.len(), OVERLAP_EXAMPLES);
        let order: Vec<(&str, &str)> = rows
            .iter()
            .take(5)
            .map(|r| (r["item"].as_str().unwrap(), r["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            order,
            [
                ("c.png", "sha256"),
                ("c.png", "phash"),
                ("b.png", "phash"),
                ("a.png", "caption"),
                ("r0", "caption")
            ]
        );
    }

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
        let html = render_report(dir.path(), Err("no run state here"));
        assert!(html.contains("No stage has run here (no run state here)"));
        assert!(html.contains("No shards"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}

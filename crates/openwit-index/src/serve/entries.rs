//! `/entries`: the query entries with their counts before and after balancing, as the curate
//! stage (`curate/entry_counts.parquet`) and the balance stage (`balance/entry_counts.parquet`)
//! wrote them, with the samples of each in the index; filtered, sorted, paged; each entry links
//! to its samples.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{App, Ctx, Shared, blocking, enc, error_page, html, layout, shorten};
use openwit_chart::thousands;

/// Entries per page.
pub const ENTRIES_PAGE_SIZE: usize = 100;
/// The longest entry filter accepted (bytes).
const MAX_FILTER_BYTES: usize = 256;

/// `curate/entry_counts.parquet` and `balance/entry_counts.parquet`, relative to the workdir.
fn counts_files() -> [String; 2] {
    openwit_core::artifact::EntryCounts::paths()
}

/// One entry's counts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EntryRow {
    pub entry: String,
    /// Candidates that matched it (before balancing), and kept by balancing.
    pub before: Option<u64>,
    pub after: Option<u64>,
    /// The balance stage's: downloaded samples that matched it, and kept by the final balancing.
    pub downloaded: Option<u64>,
    pub kept: Option<u64>,
}

/// The entries of a workdir, as the page shows them.
#[derive(Debug, Default)]
pub(super) struct EntryTable {
    pub rows: Vec<EntryRow>,
    /// Whether the balance stage's counts are there.
    pub balance: bool,
    /// Where the counts come from, in words.
    pub source: String,
    /// Files that could not be read (path, reason).
    pub problems: Vec<(PathBuf, String)>,
}

/// What the cached table was read from: each counts file's modification time and length.
pub(super) type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(workdir: &Path) -> Stamp {
    counts_files()
        .iter()
        .map(|rel| {
            std::fs::metadata(workdir.join(rel))
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Reads the entry counts of `workdir`; without any, the entries of the index (samples only).
fn load(workdir: &Path, app: &App) -> EntryTable {
    let mut t = EntryTable::default();
    let [curate_counts, balance_counts] = counts_files();
    let curate = workdir.join(&curate_counts);
    if curate.is_file() {
        match crate::report::read_entry_counts(&curate) {
            Ok(v) => {
                t.rows = v
                    .into_iter()
                    .map(|e| EntryRow {
                        entry: e.entry,
                        before: Some(e.matches),
                        after: Some(e.kept),
                        downloaded: None,
                        kept: None,
                    })
                    .collect();
                t.source = curate_counts;
            }
            Err(e) => t.problems.push((curate, e.to_string())),
        }
    }
    let balance = workdir.join(&balance_counts);
    if balance.is_file() {
        match crate::report::read_entry_counts(&balance) {
            Ok(v) => {
                t.balance = true;
                let mut by_name: std::collections::HashMap<String, usize> = t
                    .rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.entry.clone(), i))
                    .collect();
                for e in v {
                    let i = *by_name.entry(e.entry.clone()).or_insert_with(|| {
                        t.rows.push(EntryRow {
                            entry: e.entry.clone(),
                            before: None,
                            after: None,
                            downloaded: None,
                            kept: None,
                        });
                        t.rows.len() - 1
                    });
                    t.rows[i].downloaded = Some(e.matches);
                    t.rows[i].kept = Some(e.kept);
                }
                t.source = if t.source.is_empty() {
                    balance_counts
                } else {
                    format!("{} and {balance_counts}", t.source)
                };
            }
            Err(e) => t.problems.push((balance, e.to_string())),
        }
    }
    if t.rows.is_empty()
        && let Some(set) = &app.set
    {
        t.rows = set
            .field_values("entry", usize::MAX, usize::MAX)
            .into_iter()
            .map(|(entry, _)| EntryRow {
                entry,
                before: None,
                after: None,
                downloaded: None,
                kept: None,
            })
            .collect();
        if !t.rows.is_empty() {
            t.source = "the index (no entry counts in this workdir)".into();
        }
    }
    t
}

/// The table of `app`'s workdir, read again when a counts file changed.
fn table(app: &App) -> Arc<EntryTable> {
    let now = stamp(&app.workdir);
    let mut cache = app
        .entry_table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((s, t)) = cache.as_ref()
        && *s == now
    {
        return t.clone();
    }
    let t = Arc::new(load(&app.workdir, app));
    *cache = Some((now, t.clone()));
    t
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct EntriesParams {
    #[serde(default)]
    f: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: Option<String>,
}

/// The orders the page offers: (name, label).
const SORTS: [(&str, &str); 5] = [
    ("before", "most matches before balancing"),
    ("after", "most kept after balancing"),
    ("cut", "most cut by balancing"),
    ("kept", "most kept by the final balancing"),
    ("entry", "entry, A to Z"),
];

/// Sorts `rows` by `sort` (one of [`SORTS`]); ties by entry.
pub(super) fn sort_rows(rows: &mut [&EntryRow], sort: &str) {
    let key = |r: &EntryRow| -> u64 {
        match sort {
            "after" => r.after.unwrap_or(0),
            "cut" => r.before.unwrap_or(0).saturating_sub(r.after.unwrap_or(0)),
            "kept" => r.kept.unwrap_or(0),
            _ => r.before.or(r.downloaded).unwrap_or(0),
        }
    };
    if sort == "entry" {
        rows.sort_by_cached_key(|r| r.entry.to_lowercase());
    } else {
        rows.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.entry.cmp(&b.entry)));
    }
}

pub(super) async fn page(State(app): State<Shared>, Query(p): Query<EntriesParams>) -> Response {
    let app2 = app.clone();
    blocking(&app, move || render(&app2, &p)).await
}

fn render(app: &App, p: &EntriesParams) -> Response {
    if p.f.len() > MAX_FILTER_BYTES {
        return error_page(
            app,
            StatusCode::BAD_REQUEST,
            "bad filter",
            &format!(
                "the filter is too long ({} bytes; at most {MAX_FILTER_BYTES})",
                p.f.len()
            ),
        );
    }
    let page = match p.page.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return error_page(
                    app,
                    StatusCode::BAD_REQUEST,
                    "bad page",
                    &format!("page must be a whole number, not `{}`", shorten(v, 40)),
                );
            }
        },
    };
    let sort = SORTS
        .iter()
        .map(|s| s.0)
        .find(|s| *s == p.sort.trim())
        .unwrap_or("before");
    let filter = p.f.trim().to_lowercase();
    let t = table(app);
    let counts = t.rows.iter().any(|r| r.before.is_some());
    let no_counts = !counts && !t.balance;
    let mut rows: Vec<&EntryRow> = t
        .rows
        .iter()
        .filter(|r| filter.is_empty() || r.entry.to_lowercase().contains(&filter))
        .collect();
    sort_rows(&mut rows, sort);
    let link =
        |sort: &str, page: usize| format!("/entries?f={}&sort={sort}&page={page}", enc(p.f.trim()));
    let sum = |f: fn(&EntryRow) -> Option<u64>| rows.iter().filter_map(|r| f(r)).sum::<u64>();
    let offered: Vec<(&str, &str)> = SORTS
        .into_iter()
        .filter(|(name, _)| match *name {
            "after" | "cut" => counts,
            "kept" => t.balance,
            _ => true,
        })
        .collect();
    let pages = rows.len().div_ceil(ENTRIES_PAGE_SIZE).max(1);
    let search = |entry: &str| {
        Ctx {
            entry: entry.to_string(),
            ..Ctx::default()
        }
        .page_link(0)
    };
    let start = page * ENTRIES_PAGE_SIZE;
    let shown: Vec<serde_json::Value> = rows
        .iter()
        .enumerate()
        .skip(start)
        .take(ENTRIES_PAGE_SIZE)
        .map(|(n, r)| {
            let (before, after) = (r.before.unwrap_or(0), r.after.unwrap_or(0));
            serde_json::json!({
                "n": thousands(n as u64 + 1),
                "entry": r.entry,
                "search": search(&r.entry),
                "before": r.before.map(thousands),
                "after": r.after.map(thousands),
                "max": before.max(1),
                "value": after,
                "percent": if before == 0 {
                    "0".to_string()
                } else {
                    format!("{:.0}", 100.0 * after as f64 / before as f64)
                },
                "downloaded": r.downloaded.map(thousands),
                "kept": r.kept.map(thousands),
                "indexed": app.set.as_ref().map(|set| thousands(set.entry_count(&r.entry))),
            })
        })
        .collect();
    let [curate_counts, balance_counts] = counts_files();
    let b = super::render_page(
        "entries.html",
        serde_json::json!({
            "problems": t.problems.iter().map(|(path, why)| (path.display().to_string(), why)).collect::<Vec<_>>(),
            "no_counts": no_counts,
            "curate_counts": curate_counts,
            "balance_counts": balance_counts,
            "below": !t.rows.is_empty(),
            "rest": !(no_counts && t.rows.is_empty()),
            "shown": thousands(rows.len() as u64),
            "f": p.f.trim(),
            "all": thousands(t.rows.len() as u64),
            "counts": counts,
            "before": thousands(sum(|r| r.before)),
            "after": thousands(sum(|r| r.after)),
            "balance": t.balance,
            "downloaded": thousands(sum(|r| r.downloaded)),
            "kept": thousands(sum(|r| r.kept)),
            "source": t.source,
            "sorts": offered,
            "sort": sort,
            "sort_links": SORTS.iter().map(|(name, _)| (*name, link(name, 0))).collect::<std::collections::BTreeMap<_, _>>(),
            "no_entry": rows.is_empty(),
            "past_end": page >= pages,
            "page": thousands(page as u64 + 1),
            "pages": thousands(pages as u64),
            "last_link": link(sort, pages - 1),
            "rows": shown,
            "indexed": app.set.is_some(),
            "prev": (page > 0).then(|| link(sort, page - 1)),
            "next": (page + 1 < pages).then(|| link(sort, page + 1)),
        }),
    );
    html(StatusCode::OK, layout(app, "entries", &Ctx::default(), &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(entry: &str, before: u64, after: u64) -> EntryRow {
        EntryRow {
            entry: entry.into(),
            before: Some(before),
            after: Some(after),
            downloaded: None,
            kept: None,
        }
    }

    #[test]
    fn entries_sort_by_each_order_with_ties_by_name() {
        let rows = [
            row("b", 10, 5),
            row("a", 10, 10),
            row("C", 3, 3),
            row("d", 100, 20),
        ];
        let names = |sort: &str| {
            let mut v: Vec<&EntryRow> = rows.iter().collect();
            sort_rows(&mut v, sort);
            v.iter().map(|r| r.entry.as_str()).collect::<Vec<_>>()
        };
        assert_eq!(names("before"), ["d", "a", "b", "C"]);
        assert_eq!(names("after"), ["d", "a", "b", "C"]);
        assert_eq!(names("cut"), ["d", "b", "C", "a"]);
        assert_eq!(names("entry"), ["a", "b", "C", "d"]);
        assert_eq!(names("nonsense"), names("before"));
    }
}

//! `/entries`: the query entries with their counts before and after balancing, as the curate
//! stage (`curate/entry_counts.parquet`) and the balance stage (`balance/entry_counts.parquet`)
//! wrote them, with the samples of each in the index; filtered, sorted, paged; each entry links
//! to its samples.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{App, Ctx, Shared, blocking, enc, error_page, html, layout, shorten};
use openwit_chart::{esc, thousands};

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
    let mut b = String::from("<h2>Query entries</h2>\n");
    for (path, why) in &t.problems {
        let _ = writeln!(
            b,
            "<div class=\"error\">cannot read {}: {}</div>",
            esc(&path.display().to_string()),
            esc(why)
        );
    }
    let counts = t.rows.iter().any(|r| r.before.is_some());
    if !counts && !t.balance {
        let [curate_counts, balance_counts] = counts_files();
        let _ = writeln!(
            b,
            "<p class=\"error\" id=\"no-counts\">This workdir has no entry counts: neither \
             <code>{curate_counts}</code> (written by the curate stage) nor <code>{balance_counts}</code> \
             (written by the balance stage) is there, so there are no counts before and after balancing to show.{}</p>",
            if t.rows.is_empty() {
                ""
            } else {
                " Below: the entries the indexed samples matched."
            }
        );
        if t.rows.is_empty() {
            return html(StatusCode::OK, layout(app, "entries", &Ctx::default(), &b));
        }
    }
    let mut rows: Vec<&EntryRow> = t
        .rows
        .iter()
        .filter(|r| filter.is_empty() || r.entry.to_lowercase().contains(&filter))
        .collect();
    sort_rows(&mut rows, sort);
    let link =
        |sort: &str, page: usize| format!("/entries?f={}&sort={sort}&page={page}", enc(p.f.trim()));
    // Totals, and the form.
    let sum = |f: fn(&EntryRow) -> Option<u64>| rows.iter().filter_map(|r| f(r)).sum::<u64>();
    let _ = write!(
        b,
        "<p id=\"totals\">{} entries{}",
        thousands(rows.len() as u64),
        if filter.is_empty() {
            String::new()
        } else {
            format!(
                " containing “{}” (of {})",
                esc(p.f.trim()),
                thousands(t.rows.len() as u64)
            )
        }
    );
    if counts {
        let _ = write!(
            b,
            "; {} matches before balancing, {} kept after",
            thousands(sum(|r| r.before)),
            thousands(sum(|r| r.after))
        );
    }
    if t.balance {
        let _ = write!(
            b,
            "; {} downloaded matches, {} kept by the final balancing",
            thousands(sum(|r| r.downloaded)),
            thousands(sum(|r| r.kept))
        );
    }
    let _ = writeln!(
        b,
        ". <span class=\"muted\">From {}.</span></p>",
        esc(&t.source)
    );
    let mut sorts = String::new();
    for (name, label) in SORTS {
        let offered = match name {
            "after" | "cut" => counts,
            "kept" => t.balance,
            _ => true,
        };
        if offered {
            let _ = write!(
                sorts,
                "<option value=\"{name}\"{}>{label}</option>",
                if name == sort { " selected" } else { "" }
            );
        }
    }
    let _ = writeln!(
        b,
        "<form action=\"/entries\" method=\"get\" id=\"entries-form\" class=\"nav\">\
         <label>entries containing <input name=\"f\" id=\"f\" value=\"{}\" placeholder=\"filter entries\"></label>\
         <label>sorted by <select name=\"sort\" id=\"sort\">{sorts}</select></label><button>Show</button></form>",
        esc(p.f.trim())
    );
    let pages = rows.len().div_ceil(ENTRIES_PAGE_SIZE).max(1);
    if rows.is_empty() {
        b.push_str("<p id=\"none\">No entry contains this text.</p>\n");
        return html(StatusCode::OK, layout(app, "entries", &Ctx::default(), &b));
    }
    if page >= pages {
        let _ = writeln!(
            b,
            "<p class=\"error\" id=\"past-end\">Page {} is past the last page, {}: \
             <a href=\"{}\" id=\"last\">go to the last page</a>.</p>",
            thousands(page as u64 + 1),
            thousands(pages as u64),
            esc(&link(sort, pages - 1))
        );
        return html(StatusCode::OK, layout(app, "entries", &Ctx::default(), &b));
    }
    // The table: the sortable columns link to their order.
    let th = |name: &str, label: &str| {
        format!(
            "<th class=\"num{}\"><a href=\"{}\">{label}</a></th>",
            if name == sort { " sorted" } else { "" },
            esc(&link(name, 0))
        )
    };
    b.push_str("<table class=\"entries\" id=\"entries-table\"><thead><tr><th class=\"num\">#</th>");
    b.push_str(&th("entry", "entry").replace("class=\"num", "class=\""));
    if counts {
        b.push_str(&th("before", "before balancing"));
        b.push_str(&th("after", "after balancing"));
        b.push_str("<th>kept</th>");
    }
    if t.balance {
        b.push_str("<th class=\"num\">downloaded</th>");
        b.push_str(&th("kept", "after the final balancing"));
    }
    b.push_str("<th class=\"num\">samples in the index</th></tr></thead>\n<tbody>\n");
    let cell = |v: Option<u64>, class: &str| match v {
        Some(n) => format!("<td class=\"num {class}\">{}</td>", thousands(n)),
        None => format!("<td class=\"num {class} muted\">–</td>"),
    };
    let start = page * ENTRIES_PAGE_SIZE;
    for (n, r) in rows.iter().enumerate().skip(start).take(ENTRIES_PAGE_SIZE) {
        let search = Ctx {
            entry: r.entry.clone(),
            ..Ctx::default()
        }
        .page_link(0);
        let _ = write!(
            b,
            "<tr class=\"entry-row\"><td class=\"num muted\">{}</td><td><a class=\"entry-link\" href=\"{}\">{}</a></td>",
            thousands(n as u64 + 1),
            esc(&search),
            esc(&r.entry)
        );
        if counts {
            b.push_str(&cell(r.before, "before"));
            b.push_str(&cell(r.after, "after"));
            let (before, after) = (r.before.unwrap_or(0), r.after.unwrap_or(0));
            let _ = write!(
                b,
                "<td><meter min=\"0\" max=\"{}\" value=\"{after}\" title=\"{}% kept\"></meter></td>",
                before.max(1),
                if before == 0 {
                    "0".to_string()
                } else {
                    format!("{:.0}", 100.0 * after as f64 / before as f64)
                }
            );
        }
        if t.balance {
            b.push_str(&cell(r.downloaded, "downloaded"));
            b.push_str(&cell(r.kept, "kept"));
        }
        match &app.set {
            Some(set) => {
                let _ = writeln!(
                    b,
                    "<td class=\"num indexed\"><a href=\"{}\">{}</a></td></tr>",
                    esc(&search),
                    thousands(set.entry_count(&r.entry))
                );
            }
            None => b.push_str("<td class=\"num indexed muted\">no index</td></tr>\n"),
        }
    }
    b.push_str("</tbody></table>\n<nav class=\"pager\" id=\"pager\">");
    if page > 0 {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"prev\" rel=\"prev\">‹ previous</a>",
            esc(&link(sort, page - 1))
        );
    }
    let _ = write!(
        b,
        "<span id=\"pageno\">page {} of {}</span>",
        thousands(page as u64 + 1),
        thousands(pages as u64)
    );
    if page + 1 < pages {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"next\" rel=\"next\">next ›</a>",
            esc(&link(sort, page + 1))
        );
    }
    b.push_str("</nav>");
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

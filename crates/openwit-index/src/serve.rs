//! `openwit serve WORKDIR`: a local web UI over a workdir (axum, 127.0.0.1 by default).
//!
//! - `/` search box and a grid of results (`?q=QUERY&entry=ENTRY&page=N`);
//! - `/image/{shard}/{key}`: the sample's image, read from the tar at its member offset (no
//!   extraction to disk);
//! - `/sample/{shard}/{key}`: detail view (image, caption, url, matched entries, json);
//! - `/report`: the HTML report (the written one, or made on the fly);
//! - `/api/search?q=...`: the results as JSON;
//! - `/files/{path}`: a file of the workdir; paths that lead outside it are refused (403).

// Handlers return ready responses as their errors; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::error::{IndexError, Result};
use crate::search::{Hit, IndexSet, SearchOptions};
use crate::svg::esc;
use crate::{REPORT_DIR, REPORT_FILE};

const PAGE_SIZE: usize = 60;

struct App {
    workdir: PathBuf,
    set: Option<IndexSet>,
    /// Why there is no index, when there is none.
    no_index: Option<String>,
}

type Shared = Arc<App>;

/// The web UI's routes over `workdir` (opens its index once).
pub fn router(workdir: &Path) -> Result<Router> {
    let workdir = workdir
        .canonicalize()
        .map_err(|e| IndexError::io(workdir, e))?;
    let (set, no_index) = match IndexSet::open(&workdir) {
        Ok(s) if !s.shards().is_empty() => (Some(s), None),
        Ok(_) => (
            None,
            Some("the index has no usable shard index".to_string()),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let app = Arc::new(App {
        workdir,
        set,
        no_index,
    });
    Ok(Router::new()
        .route("/", get(page_search))
        .route("/api/search", get(api_search))
        .route("/image/{shard}/{key}", get(image))
        .route("/sample/{shard}/{key}", get(sample))
        .route("/report", get(report))
        .route("/files/{*path}", get(files))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .with_state(app))
}

/// Serves the UI of `workdir` on `addr` until the process is stopped. Prints the address.
pub fn serve(workdir: &Path, addr: SocketAddr) -> Result<()> {
    let app = router(workdir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| IndexError::Other(format!("cannot start the web server: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            IndexError::Other(format!("cannot listen on {addr}: {e}; pick another --port"))
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| IndexError::Other(e.to_string()))?;
        println!(
            "serving {} at http://{local}/ (Ctrl-C stops)",
            workdir.display()
        );
        axum::serve(listener, app)
            .await
            .map_err(|e| IndexError::Other(format!("web server: {e}")))
    })
}

#[derive(Debug, Deserialize, Default)]
struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    entry: String,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    limit: Option<usize>,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#23395d;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header a{color:#fff}header form{display:flex;gap:.4em;flex:1}header input[name=q]{flex:1;min-width:12em}
input,button{font-size:1em;padding:.3em .5em}main{padding:1em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{display:block;text-decoration:none;color:#222;border:1px solid #ddd;border-radius:6px;overflow:hidden;background:#fafafa}
.card img{width:100%;height:160px;object-fit:cover;display:block;background:#eee}.card .cap{padding:.4em;font-size:.85em;max-height:4.2em;overflow:hidden}
.error{background:#fde8e8;border:1px solid #e99;padding:.6em;white-space:pre-wrap}.muted{color:#777}
.detail{display:flex;gap:2em;flex-wrap:wrap}.detail img{max-width:512px;max-height:512px;border:1px solid #ddd}
pre{background:#f4f4f4;padding:.6em;overflow:auto;max-width:100%}td{padding:2px 8px;vertical-align:top}.entry{display:inline-block;background:#e6eefb;border-radius:4px;padding:1px 6px;margin:2px}";

fn layout(title: &str, q: &str, entry: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} - OpenWIT</title><style>{STYLE}</style></head><body>\n<header><a href=\"/\"><b>OpenWIT</b></a>\
         <form action=\"/\" method=\"get\" id=\"search\"><input name=\"q\" id=\"q\" value=\"{q}\" placeholder=\"search captions: dog, &quot;red car&quot;, entry:&quot;golden retriever&quot;\" autofocus>\
         <input name=\"entry\" id=\"entry\" value=\"{e}\" placeholder=\"only entry\" size=\"14\"><button id=\"go\">Search</button></form>\
         <a href=\"/report\">Report</a></header>\n<main>{body}</main></body></html>",
        t = esc(title),
        q = esc(q),
        e = esc(entry)
    )
}

fn error_page(status: StatusCode, title: &str, msg: &str) -> Response {
    (
        status,
        Html(layout(
            title,
            "",
            "",
            &format!("<div class=\"error\">{}</div>", esc(msg)),
        )),
    )
        .into_response()
}

async fn page_search(State(app): State<Shared>, Query(p): Query<SearchParams>) -> Response {
    let Some(_) = &app.set else {
        let msg = app.no_index.clone().unwrap_or_default();
        return error_page(
            StatusCode::OK,
            "no index",
            &format!("No index to search: {msg}"),
        );
    };
    let app2 = app.clone();
    let (q, entry, page) = (p.q.clone(), p.entry.clone(), p.page);
    let res = tokio::task::spawn_blocking(move || {
        let t0 = std::time::Instant::now();
        let opts = SearchOptions {
            limit: PAGE_SIZE,
            offset: page * PAGE_SIZE,
            entry: (!entry.trim().is_empty()).then(|| entry.clone()),
        };
        let set = app2.set.as_ref().expect("checked above");
        set.search(&q, &opts).map(|r| (r, t0.elapsed()))
    })
    .await;
    let (r, took) = match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error_page(StatusCode::BAD_REQUEST, "bad query", &e.to_string()),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "error", &e.to_string()),
    };
    let mut b = String::new();
    for (path, why) in &r.skipped {
        let _ = writeln!(
            b,
            "<div class=\"error\">skipped damaged index {}: {}</div>",
            esc(&path.display().to_string()),
            esc(why)
        );
    }
    let _ = writeln!(
        b,
        "<p class=\"muted\" id=\"count\">{} match(es){} in {:.1} ms{}</p>",
        r.total,
        if p.entry.trim().is_empty() {
            String::new()
        } else {
            format!(" in entry <b>{}</b>", esc(&p.entry))
        },
        took.as_secs_f64() * 1e3,
        if r.total > 0 {
            format!("; {}-{}", r.offset + 1, r.offset + r.hits.len())
        } else {
            String::new()
        }
    );
    b.push_str("<div class=\"grid\" id=\"results\">\n");
    for h in &r.hits {
        let _ = writeln!(
            b,
            "<a class=\"card result\" href=\"/sample/{s}/{k}\" title=\"{c}\"><img src=\"/image/{s}/{k}\" loading=\"lazy\" alt=\"{c}\"><div class=\"cap\">{c}</div></a>",
            s = enc(&h.shard),
            k = enc(&h.key),
            c = esc(&h.caption)
        );
    }
    b.push_str("</div>\n<p>");
    let link = |pg: usize| format!("/?q={}&entry={}&page={pg}", enc(&p.q), enc(&p.entry));
    if page > 0 {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"prev\">previous</a> ",
            esc(&link(page - 1))
        );
    }
    if (r.offset + r.hits.len()) < r.total as usize {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"next\">next</a>",
            esc(&link(page + 1))
        );
    }
    b.push_str("</p>");
    let title = if p.q.is_empty() {
        "all samples".to_string()
    } else {
        p.q.clone()
    };
    Html(layout(&title, &p.q, &p.entry, &b)).into_response()
}

async fn api_search(State(app): State<Shared>, Query(p): Query<SearchParams>) -> Response {
    let res = tokio::task::spawn_blocking(move || {
        let Some(set) = &app.set else {
            return Err(IndexError::NoIndex(
                app.no_index.clone().unwrap_or_default(),
            ));
        };
        let opts = SearchOptions {
            limit: p.limit.unwrap_or(20).min(1000),
            offset: p.page * p.limit.unwrap_or(20),
            entry: (!p.entry.trim().is_empty()).then(|| p.entry.clone()),
        };
        set.search(&p.q, &opts)
    })
    .await;
    match res {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Looks a sample up and reads one of its members (`image` or `json`) from the tar.
fn lookup(app: &App, shard: &str, key: &str) -> std::result::Result<Hit, Response> {
    if !valid_name(shard) || !valid_name(key) {
        return Err((StatusCode::BAD_REQUEST, "bad shard or key").into_response());
    }
    let Some(set) = &app.set else {
        return Err((StatusCode::NOT_FOUND, "no index").into_response());
    };
    match set.get(shard, key) {
        Ok(Some(h)) => Ok(h),
        Ok(None) => {
            Err((StatusCode::NOT_FOUND, format!("no sample {shard}/{key}")).into_response())
        }
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
    }
}

fn content_type(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "txt" | "log" | "toml" | "jsonl" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn image(
    State(app): State<Shared>,
    UrlPath((shard, key)): UrlPath<(String, String)>,
) -> Response {
    let res = tokio::task::spawn_blocking(move || {
        let h = lookup(&app, &shard, &key)?;
        let Some(m) = h.image else {
            return Err((StatusCode::NOT_FOUND, "sample has no image").into_response());
        };
        let bytes = openwit_shard::ShardReader::read_at(&h.tar, m.offset, m.size).map_err(|e| {
            tracing::warn!(path = %h.tar.display(), error = %e, "cannot read an image from a shard");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        })?;
        Ok((
            [
                (header::CONTENT_TYPE, content_type(&m.ext)),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            bytes,
        )
            .into_response())
    })
    .await;
    match res {
        Ok(Ok(r)) | Ok(Err(r)) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn sample(
    State(app): State<Shared>,
    UrlPath((shard, key)): UrlPath<(String, String)>,
) -> Response {
    let res = tokio::task::spawn_blocking(move || {
        let h = lookup(&app, &shard, &key)?;
        let json = h
            .json
            .as_ref()
            .and_then(|m| openwit_shard::ShardReader::read_at(&h.tar, m.offset, m.size).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_else(|| "(no json member)".into());
        Ok(detail_page(&h, &json))
    })
    .await;
    match res {
        Ok(Ok(r)) | Ok(Err(r)) => r,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn detail_page(h: &Hit, json: &str) -> Response {
    let mut b = String::new();
    let entries: String = if h.entries.is_empty() {
        "<span class=\"muted\">none</span>".into()
    } else {
        h.entries
            .iter()
            .map(|e| {
                format!(
                    "<a class=\"entry\" href=\"/?entry={}\">{}</a>",
                    enc(e),
                    esc(e)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let size = match (h.width, h.height) {
        (Some(w), Some(hh)) => format!("{w} x {hh}"),
        _ => "?".into(),
    };
    let _ = write!(
        b,
        "<div class=\"detail\"><div><img id=\"image\" src=\"/image/{s}/{k}\" alt=\"{c}\"></div><div>\
         <p id=\"caption\" style=\"font-size:1.3em\">{c}</p><table>\
         <tr><td>url</td><td><a id=\"url\" href=\"{u}\" rel=\"noreferrer\">{u}</a></td></tr>\
         <tr><td>entries</td><td id=\"entries\">{entries}</td></tr>\
         <tr><td>shard / key</td><td>{s} / {k}</td></tr><tr><td>domain</td><td>{d}</td></tr>\
         <tr><td>size</td><td>{size}</td></tr><tr><td>language</td><td>{l}</td></tr></table>\
         <h3>json</h3><pre id=\"json\">{j}</pre></div></div>\n\
         <script>(function(){{var i=document.getElementById('image');function m(){{document.body.setAttribute('data-image',\
         i.naturalWidth>0?'loaded '+i.naturalWidth+'x'+i.naturalHeight:'broken');}}\
         if(i.complete){{m();}}else{{i.addEventListener('load',m);i.addEventListener('error',m);}}}})();</script>",
        s = esc(&h.shard),
        k = esc(&h.key),
        c = esc(&h.caption),
        u = esc(&h.url),
        d = esc(&h.domain),
        l = esc(&h.language),
        j = esc(json)
    );
    Html(layout(&h.caption, "", "", &b)).into_response()
}

async fn report(State(app): State<Shared>) -> Response {
    let res = tokio::task::spawn_blocking(move || {
        let written = app.workdir.join(REPORT_DIR).join(REPORT_FILE);
        std::fs::read_to_string(&written)
            .unwrap_or_else(|_| crate::report::render_report(&app.workdir))
    })
    .await;
    match res {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Resolves a request path inside `root`; `None` when it leads outside (`..`, absolute paths,
/// symlinks pointing out) or does not exist.
pub fn resolve_inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let p = root.join(rel_path).canonicalize().ok()?;
    p.starts_with(root).then_some(p)
}

async fn files(State(app): State<Shared>, UrlPath(rel): UrlPath<String>) -> Response {
    let res = tokio::task::spawn_blocking(move || {
        let Some(p) = resolve_inside(&app.workdir, &rel) else {
            return (
                StatusCode::FORBIDDEN,
                "refused: the path is not inside the workdir",
            )
                .into_response();
        };
        if !p.is_file() {
            return (StatusCode::NOT_FOUND, "not a file").into_response();
        }
        match std::fs::read(&p) {
            Ok(bytes) => {
                let ext = p
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ([(header::CONTENT_TYPE, content_type(&ext))], bytes).into_response()
            }
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    })
    .await;
    res.unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

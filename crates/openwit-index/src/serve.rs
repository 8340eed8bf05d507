//! `openwit serve WORKDIR`: a local web UI over a workdir (axum, 127.0.0.1 by default).
//!
//! - `/` search box, filter controls (entry, domain, language, smallest width and height) and a
//!   grid of results (`?q=QUERY&entry=ENTRY&domain=HOST&lang=CODE&minw=PX&minh=PX&page=N`); a
//!   page past the last says so and links to the last;
//! - `/image/{shard}/{key}`: the sample's image, read from the tar at its member offset (no
//!   extraction to disk);
//! - `/sample/{shard}/{key}`: detail view (image, caption, url, matched entries, json); opened
//!   from the results it carries their search and its place (`?q=..&i=N`), and links back to
//!   them and to the previous and next result;
//! - `/sample/{shard}/{key}/full`: the image alone at its natural size;
//! - `/entries`: the query entries with their counts before and after balancing (from the
//!   curate and balance stages' `entry_counts.parquet`), filtered, sorted, paged, each linking
//!   to its samples;
//! - anything else: the styled 404 page (an unknown sample too);
//! - `/report`: the HTML report (the written one, or made on the fly);
//! - `/api/search?q=...`: the results as JSON;
//! - `/files/{path}`: a file of the workdir; paths that lead outside it, and the run state
//!   (`openwit.sqlite`, the lock, `logs/`, dot files), are refused (403).
//!
//! The HTML pages are minijinja templates (`templates/serve/`: `layout.html` around each
//! page's body), filled from views built here and escaped by the one escape function.
//!
//! Hardening (the UI has no login, so it must not be usable by another site nor knocked over):
//! every request's `Host` must be the bound address, `localhost` or a name given with
//! `--allow-host` (else 403: a DNS-rebinding page cannot read the workdir); every response carries
//! a Content-Security-Policy (the one inline script and the style block are allowed by hash),
//! `X-Content-Type-Options: nosniff` and `frame-ancestors 'none'`; paging reaches the first
//! [`MAX_RESULT_WINDOW`] results (deeper pages get a 400), queries are at most
//! [`MAX_QUERY_BYTES`] bytes and [`MAX_QUERY_DEPTH`] parentheses deep; blocking work runs a few
//! jobs at a time; a member or file over [`MAX_BODY_BYTES`] is refused, not read; connections are
//! capped, and a client that does not send its request headers in time is cut off.

// Handlers return ready responses as their errors; their size does not matter here.
#![allow(clippy::result_large_err)]

mod entries;

use std::collections::HashSet;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{IndexError, Result};
use crate::search::{Filters, Hit, IndexSet, SearchOptions, SearchResults};
use crate::{REPORT_DIR, REPORT_FILE};
use openwit_chart::thousands;

/// Results per page of the UI.
pub const PAGE_SIZE: usize = 60;
/// The deepest result paging reaches: a page or offset past it gets a 400. This bounds what one
/// search collects and holds, whatever the request asks.
pub const MAX_RESULT_WINDOW: usize = 10_000;
/// The most results one `/api/search` call returns (a larger `limit` is lowered to it).
pub const MAX_API_LIMIT: usize = 1000;
const DEFAULT_API_LIMIT: usize = 20;
/// The longest query text accepted (bytes); the entry filter's limit is [`MAX_ENTRY_BYTES`].
pub const MAX_QUERY_BYTES: usize = 1024;
pub const MAX_ENTRY_BYTES: usize = 256;
/// The deepest nesting of parentheses in a query (the query parser recurses on each level).
pub const MAX_QUERY_DEPTH: usize = 16;
/// The largest image, json member or file served: a bigger one is refused, never read whole.
pub const MAX_BODY_BYTES: u64 = 64 << 20;
/// Blocking jobs (searches, reads, report renders) running at once; more requests wait.
const MAX_JOBS: usize = 8;
/// Connections held at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 512;
/// Time a client has to send a request's headers (it also bounds an idle keep-alive).
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a connection lives (a client that never reads its response cannot hold it).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// The largest request head (request line and headers), bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Options of [`serve()`] and [`serve_on`].
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Host names (or addresses) accepted in requests' `Host` header besides `localhost` and the
    /// bound address (`openwit serve --allow-host NAME`), e.g. the machine's name on a LAN.
    pub allow_hosts: Vec<String>,
    /// Where `/report` gets the run's summary for its funnel when the workdir has no written
    /// report (`openwit serve` reads the run state); without it the funnel says there is none.
    pub run_summary: Option<RunSummarySource>,
}

/// Reads the run summary of a workdir, or says why there is none (see
/// [`ServeOptions::run_summary`]).
#[derive(Clone)]
pub struct RunSummarySource(
    pub Arc<dyn Fn(&Path) -> std::result::Result<openwit_core::RunSummary, String> + Send + Sync>,
);

impl std::fmt::Debug for RunSummarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunSummarySource(..)")
    }
}

struct App {
    workdir: PathBuf,
    set: Option<IndexSet>,
    /// Why there is no index, when there is none.
    no_index: Option<String>,
    /// Accepted `Host` names, normalised by [`host_name`].
    hosts: HashSet<String>,
    /// The run summary of a report rendered on request.
    run_summary: Option<RunSummarySource>,
    /// Slots for blocking jobs.
    jobs: Arc<Semaphore>,
    /// The values the filter controls offer.
    facets: Facets,
    /// The entries page's table, with what it was read from.
    entry_table: std::sync::Mutex<Option<(entries::Stamp, Arc<entries::EntryTable>)>>,
}

/// The values of the index's fields that the filter controls offer, most samples first.
#[derive(Debug, Default)]
struct Facets {
    domains: Vec<(String, u64)>,
    languages: Vec<(String, u64)>,
    entries: Vec<(String, u64)>,
}

/// Domains, languages and entries offered by the filter controls (the most frequent).
const MAX_FACET_VALUES: usize = 300;
/// The shard indexes read for them (the first ones: a sample of a large index, so that starting
/// the server does not read every term of every shard). Any value can still be typed.
const MAX_FACET_SHARDS: usize = 256;

type Shared = Arc<App>;

/// The web UI's routes over `workdir` (opens its index once). Requests must name a loopback
/// host (`localhost`, `127.0.0.1`, `[::1]`); [`serve_on`] accepts the bound address instead.
pub fn router(workdir: &Path) -> Result<Router> {
    router_for(workdir, None, &ServeOptions::default())
}

/// The routes, accepting `bound` (the listening address; `None`: the loopback addresses),
/// `localhost` and `opts.allow_hosts` as `Host`.
fn router_for(workdir: &Path, bound: Option<IpAddr>, opts: &ServeOptions) -> Result<Router> {
    let mut hosts: HashSet<String> = HashSet::from(["localhost".to_string()]);
    match bound {
        Some(ip) => {
            hosts.insert(ip.to_string());
        }
        None => {
            hosts.insert("127.0.0.1".into());
            hosts.insert("::1".into());
        }
    }
    for h in &opts.allow_hosts {
        let name = host_name(h).ok_or_else(|| {
            IndexError::Other(format!(
                "--allow-host {h:?}: not a host name or address (letters, digits, `.`, `-`; an optional :port)"
            ))
        })?;
        hosts.insert(name);
    }
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
    let facets = set
        .as_ref()
        .map(|s| Facets {
            domains: s.field_values("domain", MAX_FACET_VALUES, MAX_FACET_SHARDS),
            languages: s.field_values("language", MAX_FACET_VALUES, MAX_FACET_SHARDS),
            entries: s.field_values("entry", MAX_FACET_VALUES, MAX_FACET_SHARDS),
        })
        .unwrap_or_default();
    let app = Arc::new(App {
        workdir,
        set,
        no_index,
        hosts,
        run_summary: opts.run_summary.clone(),
        jobs: Arc::new(Semaphore::new(MAX_JOBS)),
        facets,
        entry_table: std::sync::Mutex::new(None),
    });
    Ok(Router::new()
        .route("/", get(page_search))
        .route("/api/search", get(api_search))
        .route("/image/{shard}/{key}", get(image))
        .route("/sample/{shard}/{key}", get(sample))
        .route("/sample/{shard}/{key}/full", get(full_image))
        .route("/entries", get(entries::page))
        .route("/report", get(report))
        .route("/files/{*path}", get(files))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app))
}

/// Serves the UI of `workdir` on `addr` until the process is stopped. Prints the address.
pub fn serve(workdir: &Path, addr: SocketAddr, opts: &ServeOptions) -> Result<()> {
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
        let app = router_for(workdir, Some(local.ip()), opts)?;
        println!(
            "serving {} at http://{local}/ (Ctrl-C stops)",
            workdir.display()
        );
        if local.ip().is_unspecified() {
            println!(
                "listening on every address: requests must name this machine as given with \
                 --allow-host NAME (others get 403)"
            );
        }
        run_listener(listener, app).await
    })
}

/// Serves the UI of `workdir` on `listener` (accepting its address, `localhost` and
/// `opts.allow_hosts` as `Host`) with the server's limits, until the task is dropped.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    workdir: &Path,
    opts: &ServeOptions,
) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| IndexError::Other(e.to_string()))?;
    let app = router_for(workdir, Some(local.ip()), opts)?;
    run_listener(listener, app).await
}

/// The connection loop: at most [`MAX_CONNECTIONS`] at once, HTTP/1.1 with a header read
/// timeout, a bounded request head and a bounded connection life.
async fn run_listener(listener: tokio::net::TcpListener, app: Router) -> Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait for connections to end.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(64);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "connection ended"),
                Err(_) => tracing::debug!("connection closed: lived too long"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

/// The host name of a `Host` header or authority (`name`, `name:port`, `1.2.3.4:80`, `[::1]:80`,
/// or a bare address), lowercased, without a trailing dot; `None` when it is not one.
fn host_name(h: &str) -> Option<String> {
    let h = h.trim();
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = h.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| ip.to_string());
    }
    let name = match h.rsplit_once(':') {
        Some((n, p)) if is_port(p) => n,
        Some(_) => return None,
        None => h,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    ok.then(|| name.to_ascii_lowercase())
}

/// Base64 (standard alphabet, padded) of `b`, for CSP hashes.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(A[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `'sha256-...'`: a CSP source allowing the inline block `text`.
fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", base64(&Sha256::digest(text.as_bytes())))
}

/// The policy of the UI's pages: images from here, the style block and the detail view's script
/// by hash, forms to here; nothing else, and no framing.
static PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; img-src 'self'; style-src {}; script-src {}; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
        csp_hash(STYLE),
        csp_hash(DETAIL_SCRIPT)
    )
});
/// The report's policy: its inline styles and SVG; no script at all.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                          base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Everything else (images, files, JSON, errors): nothing runs, even when opened directly.
const OTHER_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                         sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Refuses requests that do not name this server (DNS rebinding), and sets the security headers
/// on every response.
async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    // The authority of an absolute-form target wins over the Host header (RFC 9112 3.2.2).
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    let named: Option<String> = match req.uri().authority() {
        Some(a) if !a.as_str().contains('@') => Some(a.as_str().to_string()),
        Some(_) => None,
        None if hosts.len() == 1 => hosts[0].to_str().ok().map(str::to_string),
        None => None,
    };
    let allowed = named
        .as_deref()
        .and_then(host_name)
        .is_some_and(|n| app.hosts.contains(&n));
    let mut resp = if allowed {
        next.run(req).await
    } else {
        tracing::warn!(host = ?named, "refused a request for another host name (DNS rebinding?)");
        (
            StatusCode::FORBIDDEN,
            "refused: the request's Host is not this server's address nor localhost; \
             start `openwit serve` with --allow-host NAME to accept another name\n",
        )
            .into_response()
    };
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(OTHER_CSP));
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// An HTML page of the UI, with its policy.
fn html(status: StatusCode, page: String) -> Response {
    let mut r = (status, Html(page)).into_response();
    if let Ok(v) = HeaderValue::from_str(&PAGE_CSP) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

#[derive(Debug, Deserialize, Default)]
struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    entry: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    lang: String,
    /// Numbers are read by hand so a bad one gets a clear 400.
    #[serde(default)]
    minw: Option<String>,
    #[serde(default)]
    minh: Option<String>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    /// On a sample page: its place in the results of the search the other parameters give.
    #[serde(default)]
    i: Option<String>,
}

/// The largest size filter accepted (pixels).
pub const MAX_SIZE_FILTER: usize = 1_000_000;

/// A search as the UI carries it from page to page: its text and its filters. Result links
/// carry it, so that a sample page leads back to its results and on to its neighbours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ctx {
    q: String,
    entry: String,
    domain: String,
    lang: String,
    minw: Option<usize>,
    minh: Option<usize>,
}

impl Ctx {
    /// The search of `p`, checked (an error for a 400).
    fn of(p: &SearchParams) -> std::result::Result<Ctx, String> {
        check_query(&p.q, &p.entry)?;
        for (name, v) in [("domain", &p.domain), ("language", &p.lang)] {
            if v.len() > MAX_ENTRY_BYTES {
                return Err(format!(
                    "the {name} filter is too long ({} bytes; at most {MAX_ENTRY_BYTES})",
                    v.len()
                ));
            }
        }
        let size = |name: &str, v: Option<&str>| -> std::result::Result<Option<usize>, String> {
            let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            match v.parse::<usize>() {
                Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) && n <= MAX_SIZE_FILTER => {
                    Ok((n > 0).then_some(n))
                }
                _ => Err(format!(
                    "{name} must be a whole number of pixels, at most {MAX_SIZE_FILTER}, not `{}`",
                    shorten(v, 40)
                )),
            }
        };
        Ok(Ctx {
            q: p.q.clone(),
            entry: p.entry.trim().to_string(),
            domain: p.domain.trim().to_string(),
            lang: p.lang.trim().to_string(),
            minw: size("minw", p.minw.as_deref())?,
            minh: size("minh", p.minh.as_deref())?,
        })
    }

    /// The search as a query string (`q=..&entry=..`, then the filters that are set).
    fn query(&self) -> String {
        let mut s = format!("q={}&entry={}", enc(&self.q), enc(&self.entry));
        for (name, v) in [("domain", &self.domain), ("lang", &self.lang)] {
            if !v.is_empty() {
                let _ = write!(s, "&{name}={}", enc(v));
            }
        }
        for (name, v) in [("minw", self.minw), ("minh", self.minh)] {
            if let Some(n) = v {
                let _ = write!(s, "&{name}={n}");
            }
        }
        s
    }

    /// The link to page `page` (from 0) of these results.
    fn page_link(&self, page: usize) -> String {
        format!("/?{}&page={page}", self.query())
    }

    fn options(&self, offset: usize, limit: usize) -> SearchOptions {
        SearchOptions {
            limit,
            offset,
            entry: (!self.entry.is_empty()).then(|| self.entry.clone()),
        }
    }

    fn filters(&self) -> Filters {
        let text = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Filters {
            domain: text(&self.domain),
            language: text(&self.lang),
            min_width: self.minw.map(|n| n as u64),
            min_height: self.minh.map(|n| n as u64),
        }
    }

    /// The filters that are set, each as (what it says, this search without it).
    fn active(&self) -> Vec<(String, Ctx)> {
        let mut v = Vec::new();
        if !self.entry.is_empty() {
            let mut c = self.clone();
            c.entry.clear();
            v.push((format!("entry: {}", self.entry), c));
        }
        if !self.domain.is_empty() {
            let mut c = self.clone();
            c.domain.clear();
            v.push((format!("domain: {}", self.domain), c));
        }
        if !self.lang.is_empty() {
            let mut c = self.clone();
            c.lang.clear();
            v.push((format!("language: {}", self.lang), c));
        }
        if let Some(n) = self.minw {
            let c = Ctx {
                minw: None,
                ..self.clone()
            };
            v.push((format!("width ≥ {n} px"), c));
        }
        if let Some(n) = self.minh {
            let c = Ctx {
                minh: None,
                ..self.clone()
            };
            v.push((format!("height ≥ {n} px"), c));
        }
        v
    }
}

/// Runs the search `ctx` (results `offset..offset + limit`) on the blocking thread it is on.
fn run_search(app: &App, ctx: &Ctx, offset: usize, limit: usize) -> Result<SearchResults> {
    let Some(set) = &app.set else {
        return Err(IndexError::NoIndex(
            app.no_index.clone().unwrap_or_default(),
        ));
    };
    set.search_filtered(&ctx.q, &ctx.options(offset, limit), &ctx.filters())
}
/// `s` cut to at most `n` characters (for echoing outside input in messages, and the report's
/// captions).
pub(crate) fn shorten(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A whole number from the query string: `None` when absent or empty; an error (for a 400) when
/// it is not a whole number or exceeds `max`.
fn number(name: &str, v: Option<&str>, max: usize) -> std::result::Result<Option<usize>, String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{name} must be a whole number, not `{}`",
            shorten(v, 40)
        ));
    }
    match v.parse::<usize>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(format!(
            "{name}={} is too large: paging reaches the first {MAX_RESULT_WINDOW} results \
             (at most {name}={max} here); narrow the query or filter by entry",
            shorten(v, 40)
        )),
    }
}

/// Checks a query's size before parsing it: its length and the nesting of its parentheses (the
/// parser recurses on each level, so a deep one would overflow the stack).
fn check_query(q: &str, entry: &str) -> std::result::Result<(), String> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the query is too long ({} bytes; at most {MAX_QUERY_BYTES})",
            q.len()
        ));
    }
    if entry.len() > MAX_ENTRY_BYTES {
        return Err(format!(
            "the entry is too long ({} bytes; at most {MAX_ENTRY_BYTES})",
            entry.len()
        ));
    }
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in q.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => {
                depth += 1;
                if depth > MAX_QUERY_DEPTH {
                    return Err(format!(
                        "the query nests parentheses too deep (at most {MAX_QUERY_DEPTH} levels)"
                    ));
                }
            }
            ')' | ']' | '}' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
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

/// The UI's style block (allowed by its hash in [`PAGE_CSP`]).
const STYLE: &str = include_str!("../templates/serve/style.css");

/// The script of the detail and full-size views (allowed by its hash in [`PAGE_CSP`]): marks
/// the page with whether the image decoded and its natural and shown sizes, for people and for
/// the browser test.
const DETAIL_SCRIPT: &str = "(function(){var i=document.getElementById('image');function m(){document.body.setAttribute('data-image',\
i.naturalWidth>0?'loaded '+i.naturalWidth+'x'+i.naturalHeight:'broken');document.body.setAttribute('data-shown',i.width+'x'+i.height);}\
if(i.complete){m();}else{i.addEventListener('load',m);i.addEventListener('error',m);}})();";

/// The web UI's page templates (`templates/serve/`), embedded so the binary stays
/// self-contained.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../templates/serve/layout.html"),
    ),
    ("error.html", include_str!("../templates/serve/error.html")),
    (
        "search.html",
        include_str!("../templates/serve/search.html"),
    ),
    (
        "sample.html",
        include_str!("../templates/serve/sample.html"),
    ),
    ("full.html", include_str!("../templates/serve/full.html")),
    (
        "entries.html",
        include_str!("../templates/serve/entries.html"),
    ),
];

/// Renders the template `name` with `view` (escaped by the one escape function: see
/// [`crate::report::environment_of`]).
pub(crate) fn render_page(name: &str, view: impl serde::Serialize) -> String {
    static ENV: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| crate::report::environment_of(TEMPLATES, false))
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(view)))
        .expect("the web UI's templates render every view (tested)")
}

/// A page of the UI: the header with the search form and its filter controls, then `body`.
fn layout(app: &App, title: &str, ctx: &Ctx, body: &str) -> String {
    let f = &app.facets;
    let num = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_default();
    let counted = |v: &[(String, u64)]| -> Vec<(String, String)> {
        v.iter().map(|(v, n)| (v.clone(), thousands(*n))).collect()
    };
    render_page(
        "layout.html",
        serde_json::json!({
            "title": title,
            "style": STYLE,
            "q": ctx.q,
            "q_encoded": enc(&ctx.q),
            "entry": ctx.entry,
            "domain": ctx.domain,
            "lang": ctx.lang,
            "lang_extra": !ctx.lang.is_empty() && !f.languages.iter().any(|(v, _)| *v == ctx.lang),
            "languages": counted(&f.languages),
            "max_size": MAX_SIZE_FILTER,
            "minw": num(ctx.minw),
            "minh": num(ctx.minh),
            "entries": f.entries.iter().map(|(e, _)| e).collect::<Vec<_>>(),
            "domains": counted(&f.domains),
            "body": body,
        }),
    )
}

fn error_page(app: &App, status: StatusCode, title: &str, msg: &str) -> Response {
    html(
        status,
        layout(
            app,
            title,
            &Ctx::default(),
            &render_page(
                "error.html",
                serde_json::json!({
                    "code": status.as_u16(),
                    "reason": status.canonical_reason().unwrap_or(""),
                    "message": msg,
                }),
            ),
        ),
    )
}

/// Any path the UI does not have: the styled 404 page.
async fn not_found(State(app): State<Shared>) -> Response {
    error_page(
        &app,
        StatusCode::NOT_FOUND,
        "not found",
        "There is no page at this address.",
    )
}

async fn page_search(State(app): State<Shared>, Query(p): Query<SearchParams>) -> Response {
    let Some(_) = &app.set else {
        let msg = app.no_index.clone().unwrap_or_default();
        return error_page(
            &app,
            StatusCode::OK,
            "no index",
            &format!("No index to search: {msg}"),
        );
    };
    let max_page = MAX_RESULT_WINDOW / PAGE_SIZE;
    let page = match number("page", p.page.as_deref(), max_page) {
        Ok(n) => n.unwrap_or(0),
        Err(e) => return error_page(&app, StatusCode::BAD_REQUEST, "bad page", &e),
    };
    let ctx = match Ctx::of(&p) {
        Ok(c) => c,
        Err(e) => return error_page(&app, StatusCode::BAD_REQUEST, "bad query", &e),
    };
    let Ok(_job) = app.jobs.clone().acquire_owned().await else {
        return error_page(
            &app,
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "shutting down",
        );
    };
    let app2 = app.clone();
    let ctx2 = ctx.clone();
    let res = tokio::task::spawn_blocking(move || {
        let t0 = std::time::Instant::now();
        run_search(&app2, &ctx2, page * PAGE_SIZE, PAGE_SIZE).map(|r| (r, t0.elapsed()))
    })
    .await;
    let (r, took) = match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return error_page(&app, StatusCode::BAD_REQUEST, "bad query", &e.to_string());
        }
        Err(e) => {
            return error_page(
                &app,
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                &e.to_string(),
            );
        }
    };
    // The pages this query has (within the paging window).
    let total = usize::try_from(r.total).unwrap_or(usize::MAX);
    let last_page = (total.saturating_sub(1) / PAGE_SIZE).min(max_page);
    let shown = if r.hits.is_empty() {
        String::new()
    } else {
        format!("; {}-{}", r.offset + 1, r.offset + r.hits.len())
    };
    let end = r.offset + r.hits.len();
    let b = render_page(
        "search.html",
        serde_json::json!({
            "skipped": r.skipped.iter().map(|(p, why)| (p.display().to_string(), why)).collect::<Vec<_>>(),
            "active": ctx.active().iter().map(|(what, without)| (what.clone(), without.page_link(0))).collect::<Vec<_>>(),
            "total": r.total,
            "entry": ctx.entry,
            "ms": format!("{:.1}", took.as_secs_f64() * 1e3),
            "shown": shown,
            "past_end": r.hits.is_empty() && total > 0,
            "page": page + 1,
            "last_page": last_page + 1,
            "last_link": ctx.page_link(last_page),
            "no_match": total == 0,
            "query": ctx.query(),
            "hits": r.hits.iter().enumerate().map(|(n, h)| serde_json::json!({
                "i": r.offset + n,
                "shard": enc(&h.shard),
                "key": enc(&h.key),
                "caption": h.caption,
            })).collect::<Vec<_>>(),
            "prev": (page > 0).then(|| ctx.page_link((page - 1).min(last_page))),
            "pageno": (total > 0 && page <= last_page).then_some(page + 1),
            "pages": last_page + 1,
            "next": (end < total && page < max_page).then(|| ctx.page_link(page + 1)),
            "window": (end < total && page >= max_page).then_some(MAX_RESULT_WINDOW),
        }),
    );
    let title = if ctx.q.is_empty() {
        "all samples".to_string()
    } else {
        ctx.q.clone()
    };
    html(StatusCode::OK, layout(&app, &title, &ctx, &b))
}

async fn api_search(State(app): State<Shared>, Query(p): Query<SearchParams>) -> Response {
    let bad = |msg: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": msg })),
        )
            .into_response()
    };
    // A larger limit is lowered to the maximum; a page or offset past the window is refused.
    let limit = match number("limit", p.limit.as_deref(), usize::MAX) {
        Ok(n) => n.unwrap_or(DEFAULT_API_LIMIT).min(MAX_API_LIMIT),
        Err(e) => return bad(e),
    };
    let offset = match (
        number("page", p.page.as_deref(), usize::MAX),
        number("offset", p.offset.as_deref(), MAX_RESULT_WINDOW),
    ) {
        (Err(e), _) | (_, Err(e)) => return bad(e),
        (Ok(Some(_)), Ok(Some(_))) => return bad("give page or offset, not both".into()),
        (Ok(Some(page)), Ok(None)) => match page.checked_mul(limit.max(1)) {
            Some(o) if o <= MAX_RESULT_WINDOW => o,
            _ => {
                return bad(format!(
                    "page={page} is too large: paging reaches the first {MAX_RESULT_WINDOW} \
                     results (at most page={} with limit={limit}); narrow the query or filter by entry",
                    MAX_RESULT_WINDOW / limit.max(1)
                ));
            }
        },
        (Ok(None), Ok(o)) => o.unwrap_or(0),
    };
    let ctx = match Ctx::of(&p) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let Ok(job) = app.jobs.clone().acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let res = tokio::task::spawn_blocking(move || {
        let _job = job;
        run_search(&app, &ctx, offset, limit)
    })
    .await;
    match res {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => bad(e.to_string()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Looks a sample up: its index record, or the status and message to answer with.
fn lookup(app: &App, shard: &str, key: &str) -> std::result::Result<Hit, (StatusCode, String)> {
    if !valid_name(shard) || !valid_name(key) {
        return Err((
            StatusCode::BAD_REQUEST,
            "bad shard or key: shard and key names are letters, digits, `_` and `-`".into(),
        ));
    }
    let Some(set) = &app.set else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no index: {}", app.no_index.clone().unwrap_or_default()),
        ));
    };
    match set.get(shard, key) {
        Ok(Some(h)) => Ok(h),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            if set.shards().contains(&shard) {
                format!("No sample {shard}/{key}: shard {shard} has no sample with key {key}.")
            } else {
                format!("No sample {shard}/{key}: there is no shard {shard} in the index.")
            },
        )),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
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

/// Reads a member from its tar, refusing (not reading) one the index says is over
/// [`MAX_BODY_BYTES`]: a damaged index cannot make the server allocate its claim.
fn read_member(tar: &Path, m: &crate::search::MemberRef) -> std::result::Result<Vec<u8>, Response> {
    if m.size > MAX_BODY_BYTES {
        tracing::warn!(path = %tar.display(), offset = m.offset, size = m.size, "a member too large to serve (damaged index?)");
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the index gives this member {} bytes (at most {MAX_BODY_BYTES} are served); \
                 rebuild the index with `openwit index` if it is damaged",
                m.size
            ),
        )
            .into_response());
    }
    openwit_shard::ShardReader::read_at(tar, m.offset, m.size).map_err(|e| {
        tracing::warn!(path = %tar.display(), error = %e, "cannot read a member from a shard");
        (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    })
}

/// Runs `f` on the blocking pool once a job slot is free.
async fn blocking(app: &Shared, f: impl FnOnce() -> Response + Send + 'static) -> Response {
    let Ok(job) = app.jobs.clone().acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    tokio::task::spawn_blocking(move || {
        let _job = job;
        f()
    })
    .await
    .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

async fn image(
    State(app): State<Shared>,
    UrlPath((shard, key)): UrlPath<(String, String)>,
) -> Response {
    let app2 = app.clone();
    blocking(&app, move || {
        image_of(&app2, &shard, &key).unwrap_or_else(|r| r)
    })
    .await
}

fn image_of(app: &App, shard: &str, key: &str) -> std::result::Result<Response, Response> {
    let h = lookup(app, shard, key).map_err(IntoResponse::into_response)?;
    let Some(m) = h.image else {
        return Err((StatusCode::NOT_FOUND, "sample has no image").into_response());
    };
    let bytes = read_member(&h.tar, &m)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&m.ext)),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response())
}

/// Where a sample page sits in the results it was opened from.
struct Nav {
    ctx: Ctx,
    /// Its place in the results (from 0).
    i: usize,
    total: u64,
    /// Whether the search still gives this sample at `i` (else only the way back is shown).
    here: bool,
    prev: Option<Hit>,
    next: Option<Hit>,
}

impl Nav {
    /// The results around `h` when the request carries a search and a place (`i`); `None`
    /// when it carries none (or a broken one: the page then shows the sample alone).
    fn of(app: &App, h: &Hit, p: &SearchParams) -> Option<Nav> {
        let i = number("i", p.i.as_deref(), MAX_RESULT_WINDOW - 1).ok()??;
        let ctx = Ctx::of(p).ok()?;
        let start = i.saturating_sub(1);
        let r = run_search(app, &ctx, start, i - start + 2).ok()?;
        let at = i - start;
        let here = r
            .hits
            .get(at)
            .is_some_and(|x| x.shard == h.shard && x.key == h.key);
        let prev = (here && at > 0).then(|| r.hits[at - 1].clone());
        let next = if here && i + 1 < MAX_RESULT_WINDOW {
            r.hits.get(at + 1).cloned()
        } else {
            None
        };
        Some(Nav {
            ctx,
            i,
            total: r.total,
            here,
            prev,
            next,
        })
    }

    /// The query string of a sample page at place `i` of these results.
    fn at(&self, i: usize) -> String {
        format!("{}&i={i}", self.ctx.query())
    }

    /// What `templates/serve/sample.html` shows of it.
    fn view(&self) -> serde_json::Value {
        let link =
            |h: &Hit, i: usize| format!("/sample/{}/{}?{}", enc(&h.shard), enc(&h.key), self.at(i));
        serde_json::json!({
            "back": format!("{}#r{}", self.ctx.page_link(self.i / PAGE_SIZE), self.i),
            "prev": self.prev.as_ref().map(|h| link(h, self.i - 1)),
            "here": self.here,
            "place": thousands(self.i as u64 + 1),
            "total": thousands(self.total),
            "next": self.next.as_ref().map(|h| link(h, self.i + 1)),
        })
    }
}

async fn sample(
    State(app): State<Shared>,
    UrlPath((shard, key)): UrlPath<(String, String)>,
    Query(p): Query<SearchParams>,
) -> Response {
    let app2 = app.clone();
    blocking(&app, move || {
        let h = match lookup(&app2, &shard, &key) {
            Ok(h) => h,
            Err((status, msg)) => return error_page(&app2, status, "no such sample", &msg),
        };
        let json = h
            .json
            .as_ref()
            .and_then(|m| read_member(&h.tar, m).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_else(|| "(no json member)".into());
        let nav = Nav::of(&app2, &h, &p);
        detail_page(&app2, &h, &json, nav.as_ref())
    })
    .await
}

fn detail_page(app: &App, h: &Hit, json: &str, nav: Option<&Nav>) -> Response {
    let search = |c: Ctx| c.page_link(0);
    let size = match (h.width, h.height) {
        (Some(w), Some(hh)) => format!("{w} x {hh}"),
        _ => "?".into(),
    };
    let full = format!(
        "/sample/{}/{}/full{}",
        enc(&h.shard),
        enc(&h.key),
        nav.map(|n| format!("?{}", n.at(n.i))).unwrap_or_default()
    );
    let b = render_page(
        "sample.html",
        serde_json::json!({
            "nav": nav.map(Nav::view),
            "full": full,
            "shard": h.shard,
            "key": h.key,
            "caption": h.caption,
            "url": h.url,
            "size": size,
            "entries": h.entries.iter().map(|e| (e, search(Ctx {
                entry: e.clone(),
                ..Ctx::default()
            }))).collect::<Vec<_>>(),
            "domain": h.domain,
            "domain_link": search(Ctx {
                domain: h.domain.clone(),
                ..Ctx::default()
            }),
            "language": h.language,
            "language_link": search(Ctx {
                lang: h.language.clone(),
                ..Ctx::default()
            }),
            "json": json,
            "script": DETAIL_SCRIPT,
        }),
    );
    let ctx = nav.map(|n| n.ctx.clone()).unwrap_or_default();
    html(StatusCode::OK, layout(app, &h.caption, &ctx, &b))
}

/// `/sample/{shard}/{key}/full`: the image alone at its natural size.
async fn full_image(
    State(app): State<Shared>,
    UrlPath((shard, key)): UrlPath<(String, String)>,
    Query(p): Query<SearchParams>,
) -> Response {
    let app2 = app.clone();
    blocking(&app, move || {
        let h = match lookup(&app2, &shard, &key) {
            Ok(h) => h,
            Err((status, msg)) => return error_page(&app2, status, "no such sample", &msg),
        };
        // Back to the sample page as it was opened (with its place in the results, if any).
        let ctx = Ctx::of(&p).ok();
        let i = number("i", p.i.as_deref(), MAX_RESULT_WINDOW - 1)
            .ok()
            .flatten();
        let back = match (&ctx, i) {
            (Some(c), Some(i)) => format!("?{}&i={i}", c.query()),
            _ => String::new(),
        };
        let size = match (h.width, h.height) {
            (Some(w), Some(hh)) => format!("{w} x {hh} pixels"),
            _ => "size unknown".into(),
        };
        let b = render_page(
            "full.html",
            serde_json::json!({
                "shard": enc(&h.shard),
                "key": enc(&h.key),
                "back": back,
                "size": size,
                "caption": h.caption,
                "script": DETAIL_SCRIPT,
            }),
        );
        html(
            StatusCode::OK,
            layout(&app2, &h.caption, &ctx.unwrap_or_default(), &b),
        )
    })
    .await
}

async fn report(State(app): State<Shared>) -> Response {
    let app2 = app.clone();
    blocking(&app, move || {
        let written = app2.workdir.join(REPORT_DIR).join(REPORT_FILE);
        let small = std::fs::metadata(&written).is_ok_and(|m| m.len() <= MAX_BODY_BYTES);
        let page = small
            .then(|| std::fs::read_to_string(&written).ok())
            .flatten()
            .unwrap_or_else(|| {
                let run = match &app2.run_summary {
                    Some(RunSummarySource(f)) => f(&app2.workdir),
                    None => Err("the server was given no run summary".to_string()),
                };
                crate::report::render_report(&app2.workdir, run.as_ref().map_err(String::as_str))
            });
        ([(header::CONTENT_SECURITY_POLICY, REPORT_CSP)], Html(page)).into_response()
    })
    .await
}

/// Whether `rel` (relative to the workdir) is part of the run state or its logs, which are never
/// served: `openwit.sqlite` (and its journals), `logs/`, and dot files (the lock, temporaries).
fn is_private(rel: &Path) -> bool {
    let mut comps = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let first_is_logs = comps.next().is_some_and(|c| c == "logs");
    first_is_logs
        || rel.components().any(|c| {
            let c = c.as_os_str().to_string_lossy();
            c.starts_with('.') || c.starts_with(openwit_core::STATE_FILE)
        })
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
    let app2 = app.clone();
    blocking(&app, move || {
        let app = app2;
        let Some(p) = resolve_inside(&app.workdir, &rel) else {
            return (
                StatusCode::FORBIDDEN,
                "refused: the path is not inside the workdir",
            )
                .into_response();
        };
        // By the name asked for and by where it leads (a link to the run state is refused too).
        if is_private(Path::new(&rel)) || p.strip_prefix(&app.workdir).is_ok_and(is_private) {
            return (
                StatusCode::FORBIDDEN,
                "refused: the run state and logs are not served",
            )
                .into_response();
        }
        let Ok(meta) = std::fs::metadata(&p) else {
            return (StatusCode::NOT_FOUND, "not a file").into_response();
        };
        if !meta.is_file() {
            return (StatusCode::NOT_FOUND, "not a file").into_response();
        }
        if meta.len() > MAX_BODY_BYTES {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "refused: the file has {} bytes; at most {MAX_BODY_BYTES} are served (open it on disk)",
                    meta.len()
                ),
            )
                .into_response();
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
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain}");
        }
    }

    #[test]
    fn host_names_are_normalised_and_junk_is_refused() {
        assert_eq!(host_name("LocalHost:8765").as_deref(), Some("localhost"));
        assert_eq!(host_name("openwit.test.").as_deref(), Some("openwit.test"));
        assert_eq!(host_name("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:8765").as_deref(), Some("::1"));
        assert_eq!(host_name("::1").as_deref(), Some("::1"));
        for bad in [
            "",
            ":80",
            "a@b",
            "[::1",
            "[::1]x",
            "host:port",
            "évil.example",
            "a/b",
        ] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_and_queries_are_checked_without_slicing_inside_a_character() {
        assert_eq!(number("page", Some("12"), 100), Ok(Some(12)));
        assert_eq!(number("page", Some(""), 100), Ok(None));
        assert!(number("page", Some("101"), 100).is_err());
        assert!(number("page", Some("99999999999999999999999"), 100).is_err());
        // A long non-number made of multi-byte characters is cut at a character boundary.
        let e = number("page", Some(&"é".repeat(100)), 100).unwrap_err();
        assert!(e.contains(&"é".repeat(40)) && e.ends_with("...`"), "{e}");
        assert_eq!(shorten("日本語テキスト", 3), "日本語...");
        assert!(check_query("(a (b \"((((\" c))", "").is_ok());
        assert!(check_query(&"(".repeat(MAX_QUERY_DEPTH + 1), "").is_err());
        assert!(check_query("\\(\\(\\(", "").is_ok());
        assert!(check_query(&"é".repeat(MAX_QUERY_BYTES), "").is_err());
    }
}

//! `openwit warc`: Common Crawl WARC files (HTML response records through the shared
//! extractor) and WAT files (image links of the JSON metadata records) into the candidate
//! table. Inputs are local paths, http(s) URLs, or `*.paths`/`*.paths.gz` listings (one path per
//! line, joined to `listing_prefix`). One task per file, so a killed run resumes per file.
//!
//! ```toml
//! [warc]
//! inputs = ["crawl-data/CC-MAIN-2024-10/wat.paths.gz"]
//! listing_prefix = "https://data.commoncrawl.org/"  # default
//! max_files = 10                  # first N files of the listings (default: all)
//! allow_private_networks = false  # default
//! dropped_rows = true             # list every dropped record in warc/dropped/TASK.parquet
//! ```

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openwit_core::{Drops, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::candidate::{Candidate, CandidateWriter};
use crate::dropped::{DroppedRow, Listing, clip_url};
use crate::error::{IoAt, SourcesError};
use crate::extract::{PageInfo, extract, has_img_tag, into_candidates_listed};
use crate::warc::{Event, WarcReader, parse_warc_date};

/// The `[warc]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarcConfig {
    /// WARC/WAT files (local or http(s)) or `*.paths(.gz)` listings.
    pub inputs: Vec<String>,
    /// Prefix joined to the relative paths of a listing. Default `https://data.commoncrawl.org/`.
    #[serde(default = "default_prefix")]
    pub listing_prefix: String,
    /// Use only the first N files (after expanding listings). Default: all.
    #[serde(default, deserialize_with = "openwit_core::config::range::count")]
    pub max_files: Option<usize>,
    /// Allow fetching from private/loopback/link-local addresses. Default false.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// User agent for remote files. Default names openwit and its contact URL.
    #[serde(default = "default_ua")]
    pub user_agent: String,
    /// Seconds before a stalled download fails (the task is retried). Default 600.
    #[serde(
        default = "default_timeout",
        deserialize_with = "openwit_core::config::range::timeout"
    )]
    pub timeout_secs: u64,
    /// List every dropped record (with its file, offset and reason) in
    /// `warc/dropped/TASK.parquet`. Default true.
    #[serde(default = "yes")]
    pub dropped_rows: bool,
}

fn yes() -> bool {
    true
}

fn default_prefix() -> String {
    "https://data.commoncrawl.org/".into()
}
fn default_ua() -> String {
    openwit_http::DEFAULT_USER_AGENT.into()
}
fn default_timeout() -> u64 {
    600
}

/// The warc stage.
pub struct WarcStage {
    cfg: WarcConfig,
    base: PathBuf,
    /// `[pipeline] proxy`.
    proxy: Option<String>,
}

fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Per-file outcome.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileStats {
    pub records: u64,
    pub pages: u64,
    pub drops: Drops,
    /// (offset, error) when the file ended inside a record or gzip member.
    pub truncated: Option<(u64, String)>,
}

impl WarcStage {
    pub fn new(cfg: WarcConfig, base: impl Into<PathBuf>) -> Result<Self, SourcesError> {
        if cfg.inputs.is_empty() {
            return Err(SourcesError::Config(
                "[warc] inputs is empty; fix: list WARC/WAT files, URLs or a wat.paths.gz listing"
                    .into(),
            ));
        }
        Ok(WarcStage {
            cfg,
            base: base.into(),
            proxy: None,
        })
    }

    /// Send every request through this proxy (`[pipeline] proxy`; names are still checked
    /// here first, see `openwit_http`).
    pub fn proxy(mut self, proxy: Option<String>) -> Self {
        self.proxy = proxy;
        self
    }

    /// Honour the pipeline-wide `allow_private_networks` too.
    pub fn allow_private_networks(mut self, allow: bool) -> Self {
        self.cfg.allow_private_networks |= allow;
        self
    }

    fn local(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn client(&self) -> Result<openwit_http::HttpClient, SourcesError> {
        crate::http::client(&openwit_http::HttpSettings {
            user_agent: self.cfg.user_agent.clone(),
            timeout: Some(Duration::from_secs(self.cfg.timeout_secs)),
            allow_private: self.cfg.allow_private_networks,
            proxy: self.proxy.clone(),
            // WARC files are read as sent (`.warc.gz` stays gzip)
            decompress: false,
            ..Default::default()
        })
    }

    fn open_input(
        &self,
        input: &str,
        rt: Option<&tokio::runtime::Runtime>,
    ) -> Result<Box<dyn Read>, SourcesError> {
        if is_remote(input) {
            let owned;
            let rt = match rt {
                Some(r) => r,
                None => {
                    owned = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .map_err(|e| SourcesError::Http(e.to_string()))?;
                    // plan-time listings are small: read them whole
                    let c = self.client()?;
                    let mut r = crate::http::RemoteReader::open(&owned, &c, input)?;
                    let mut buf = Vec::new();
                    r.read_to_end(&mut buf).at(input)?;
                    return Ok(Box::new(std::io::Cursor::new(buf)));
                }
            };
            let c = self.client()?;
            return Ok(Box::new(crate::http::RemoteReader::open(rt, &c, input)?));
        }
        let p = self.local(input);
        Ok(Box::new(std::fs::File::open(&p).map_err(|e| {
            SourcesError::Input(format!("{}: {e}; fix: check [warc] inputs (relative paths are relative to the pipeline file)", p.display()))
        })?))
    }

    /// The files to read: inputs with listings expanded, cut to `max_files`.
    pub fn files(&self) -> Result<Vec<String>, SourcesError> {
        let mut out = Vec::new();
        for inp in &self.cfg.inputs {
            let name = inp.trim_end_matches(".gz");
            if name.ends_with(".paths") {
                let r = self.open_input(inp, None)?;
                let r: Box<dyn Read> = if inp.ends_with(".gz") {
                    Box::new(flate2::read::MultiGzDecoder::new(r))
                } else {
                    r
                };
                for (i, line) in BufReader::new(r).lines().enumerate() {
                    let line =
                        line.map_err(|e| SourcesError::Input(format!("{inp}:{}: {e}", i + 1)))?;
                    let l = line.trim();
                    if l.is_empty() || l.starts_with('#') {
                        continue;
                    }
                    if is_remote(l) || Path::new(l).is_absolute() {
                        out.push(l.to_string());
                    } else if is_remote(&self.cfg.listing_prefix) {
                        out.push(format!(
                            "{}/{}",
                            self.cfg.listing_prefix.trim_end_matches('/'),
                            l.trim_start_matches('/')
                        ));
                    } else {
                        let base = self.local(&self.cfg.listing_prefix);
                        out.push(base.join(l).display().to_string());
                    }
                }
            } else {
                out.push(inp.clone());
            }
        }
        if let Some(m) = self.cfg.max_files {
            out.truncate(m);
        }
        Ok(out)
    }
}

impl openwit_core::FromConfig for WarcStage {
    const TABLE: &'static str = "warc";
    type Config = WarcConfig;
    fn from_config(cfg: WarcConfig, doc: &openwit_core::PipelineDoc) -> openwit_core::Result<Self> {
        Ok(Self::new(cfg, doc.base_dir())?
            .allow_private_networks(doc.pipeline().allow_private_networks)
            .proxy(doc.pipeline().proxy.clone()))
    }
}

impl Stage for WarcStage {
    fn name(&self) -> &str {
        "warc"
    }

    fn config(&self) -> Value {
        json!({
            "inputs": self.cfg.inputs,
            "listing_prefix": self.cfg.listing_prefix,
            "max_files": self.cfg.max_files,
            "allow_private_networks": self.cfg.allow_private_networks,
            "dropped_rows": self.cfg.dropped_rows,
        })
    }

    fn plan(&self, _ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        Ok(self
            .files()?
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let base = f.rsplit(['/', '\\']).next().unwrap_or("").to_string();
                TaskSpec::new(
                    format!("{i:05}-{}", openwit_core::stage::sanitize(&base)),
                    json!({ "input": f }),
                )
            })
            .collect())
    }

    fn max_parallel(&self, jobs: usize) -> usize {
        jobs
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let input = task.payload["input"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let rt = is_remote(&input).then(|| ctx.runtime());
        let r = self.open_input(&input, rt)?;
        let out = ctx.create_output(&format!("{}.parquet", task.id))?;
        let mut w = CandidateWriter::new(out)?;
        let mut listing = Listing::new(ctx, &task.id, self.cfg.dropped_rows);
        let mut err = None;
        let mut list_err = None;
        let mut list = |row: DroppedRow| {
            if list_err.is_none()
                && let Err(e) = listing.push(row)
            {
                list_err = Some(e);
            }
        };
        let dropped: Option<&mut dyn FnMut(DroppedRow)> = if self.cfg.dropped_rows {
            Some(&mut list)
        } else {
            None
        };
        let stats = process_file_listed(
            r,
            &input,
            &mut |c| {
                if err.is_none()
                    && let Err(e) = w.push(c)
                {
                    err = Some(e);
                }
            },
            dropped,
            &|n| {
                ctx.progress(n);
                ctx.cancelled()
            },
        )?;
        if let Some(e) = err.or(list_err) {
            return Err(e.into());
        }
        if ctx.cancelled() {
            return Err(openwit_core::Error::Interrupted);
        }
        if is_remote(&input)
            && let Some((off, e)) = &stats.truncated
        {
            // a remote file that broke off is a network failure: let the executor retry it
            return Err(openwit_core::Error::Stage(format!(
                "{input}: download broke off at offset {off}: {e}"
            )));
        }
        let (n, _) = w.finish()?;
        listing.finish()?;
        if let Some((off, e)) = &stats.truncated {
            tracing::warn!(input = %input, offset = off, error = %e, "truncated file: kept the records before the break");
        }
        Ok(TaskReport {
            items_in: stats.records,
            items_out: n,
            drops: stats.drops,
            extra: json!({
                "input": input,
                "pages": stats.pages,
                "truncated_at": stats.truncated.as_ref().map(|t| t.0),
                "error": stats.truncated.as_ref().map(|t| t.1.clone()),
            }),
        })
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        Some(crate::summary_line("warc", tasks))
    }
}

/// Reads one WARC or WAT stream (gzip detected by its magic bytes) and calls `sink` for every
/// candidate. `progress(n)` is called every few records and returns true to stop.
pub fn process_file(
    r: Box<dyn Read>,
    source_id: &str,
    sink: &mut dyn FnMut(Candidate),
    progress: &dyn Fn(u64) -> bool,
) -> Result<FileStats, SourcesError> {
    process_file_listed(r, source_id, sink, None, progress)
}

/// [`process_file`] that also hands every drop it counts to `dropped` (one [`DroppedRow`] per
/// counted drop, with `source_id` as the input and the record's offset), when given.
pub fn process_file_listed(
    r: Box<dyn Read>,
    source_id: &str,
    sink: &mut dyn FnMut(Candidate),
    mut dropped: Option<&mut dyn FnMut(DroppedRow)>,
    progress: &dyn Fn(u64) -> bool,
) -> Result<FileStats, SourcesError> {
    let mut br = BufReader::with_capacity(1 << 16, r);
    let gzip = br.fill_buf().at(source_id)?.starts_with(b"\x1f\x8b");
    let mut stats = FileStats::default();
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    let mut since = 0u64;
    let at = |reason: &str, offset: u64| DroppedRow {
        input: Some(source_id.to_string()),
        offset: Some(offset),
        ..DroppedRow::new(reason)
    };
    for ev in WarcReader::new(br, gzip) {
        match ev {
            Event::Record(rec) => {
                stats.records += 1;
                rows.clear();
                let list = dropped.is_some().then_some(&mut listed);
                process_record(&rec, source_id, &mut stats, &mut rows, list);
                for c in rows.drain(..) {
                    sink(c);
                }
                if let Some(d) = dropped.as_deref_mut() {
                    for r in listed.drain(..) {
                        d(r);
                    }
                }
            }
            Event::Bad { offset, reason } => {
                tracing::debug!(source_id, offset, %reason, "skipped a malformed record");
                stats.records += 1;
                stats.drops.inc("malformed_record");
                if let Some(d) = dropped.as_deref_mut() {
                    d(DroppedRow {
                        detail: Some(reason),
                        ..at("malformed_record", offset)
                    });
                }
            }
            Event::Truncated { offset, error } => {
                stats.drops.inc("truncated_file");
                if let Some(d) = dropped.as_deref_mut() {
                    d(DroppedRow {
                        detail: Some(format!("the file breaks off here: {error}")),
                        ..at("truncated_file", offset)
                    });
                }
                stats.truncated = Some((offset, error));
            }
        }
        since += 1;
        if since >= 256 {
            if progress(since) {
                break;
            }
            since = 0;
        }
    }
    progress(since);
    Ok(stats)
}

/// An HTTP header (name, value), borrowed from the record unless it is not UTF-8.
type HttpHeader<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Splits an HTTP response (status line + headers + body) as stored in a WARC response record.
fn split_http(block: &[u8]) -> Option<(u16, Vec<HttpHeader<'_>>, &[u8])> {
    let (head_end, body_start) = match memchr::memmem::find(block, b"\r\n\r\n") {
        Some(p) => (p + 2, p + 4),
        None => {
            let p = memchr::memmem::find(block, b"\n\n")?;
            (p + 1, p + 2)
        }
    };
    let head = &block[..head_end];
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next()?;
    let status_line = String::from_utf8_lossy(status_line);
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    for l in lines {
        let l = l.trim_ascii();
        if l.is_empty() {
            continue;
        }
        if let Some(c) = memchr::memchr(b':', l) {
            headers.push((
                String::from_utf8_lossy(l[..c].trim_ascii()),
                String::from_utf8_lossy(l[c + 1..].trim_ascii()),
            ));
        }
    }
    Some((status, headers, &block[body_start..]))
}

/// Where the drops of one record are listed (`None`: they are only counted).
struct RecordDrops<'l> {
    list: Option<&'l mut Vec<DroppedRow>>,
    source_id: &'l str,
    offset: u64,
}

impl RecordDrops<'_> {
    /// Counts a drop of the record (or one of its images) and lists it as `row` (with the
    /// input and offset filled in).
    fn record(&mut self, stats: &mut FileStats, row: DroppedRow) {
        stats.drops.inc(&row.reason);
        self.list_only(row);
    }

    /// Lists a drop counted elsewhere.
    fn list_only(&mut self, row: DroppedRow) {
        if let Some(l) = self.list.as_deref_mut() {
            l.push(DroppedRow {
                input: Some(self.source_id.to_string()),
                offset: Some(self.offset),
                ..row
            });
        }
    }
}

/// A listing row for a dropped record of page `page` (as written, cut when over-long).
fn page_row(reason: &str, page: Option<&str>, detail: Option<String>) -> DroppedRow {
    let (page_url, cut) = match page {
        Some(p) => {
            let (u, d) = clip_url(p);
            (Some(u), d)
        }
        None => (None, None),
    };
    DroppedRow {
        page_url,
        detail: detail.or(cut),
        ..DroppedRow::new(reason)
    }
}

fn process_record(
    rec: &crate::warc::Record,
    source_id: &str,
    stats: &mut FileStats,
    out: &mut Vec<Candidate>,
    list: Option<&mut Vec<DroppedRow>>,
) {
    let mut drops = RecordDrops {
        list,
        source_id,
        offset: rec.offset,
    };
    let ty = rec.warc_type();
    let fetch_time = rec.header("WARC-Date").and_then(parse_warc_date);
    if ty == "response" {
        let Some(target) = rec.header("WARC-Target-URI") else {
            drops.record(
                stats,
                page_row(
                    "no_target_uri",
                    None,
                    Some("a response record without WARC-Target-URI".into()),
                ),
            );
            return;
        };
        let target = target.trim_matches(['<', '>']);
        let page = match url::Url::parse(target) {
            Ok(p) => p,
            Err(e) => {
                drops.record(
                    stats,
                    page_row("invalid_page_url", Some(target), Some(e.to_string())),
                );
                return;
            }
        };
        let Some((status, headers, body)) = split_http(&rec.body) else {
            drops.record(
                stats,
                page_row(
                    "malformed_http",
                    Some(page.as_str()),
                    Some("no HTTP status line and headers".into()),
                ),
            );
            return;
        };
        if !(200..300).contains(&status) {
            return; // redirects and errors carry no page
        }
        let hv = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_ref())
        };
        let by_type = hv("Content-Type").and_then(crate::html::html_by_type);
        if by_type == Some(false) {
            return;
        }
        // the payload as the server meant it: de-chunked and decompressed (warcio's
        // content_stream); a broken one is dropped, never parsed with framing bytes inside
        let body = match crate::http_body::decode_payload(
            hv("Transfer-Encoding"),
            hv("Content-Encoding"),
            body,
            rec.body_truncated,
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(source_id, offset = rec.offset, page = %page, error = %e, "undecodable HTTP body");
                drops.record(
                    stats,
                    page_row("undecodable_body", Some(page.as_str()), Some(e.to_string())),
                );
                return;
            }
        };
        let body = &body[..];
        if by_type.is_none() && !crate::html::sniff_html(body) {
            return;
        }
        stats.pages += 1;
        let robots: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("X-Robots-Tag"))
            .map(|(_, v)| v.as_ref())
            .collect();
        if robots.is_empty() && !has_img_tag(body) {
            return;
        }
        let text = crate::html::decode_html_cow(body, hv("Content-Type"));
        let ex = extract(&text, &page, &robots);
        emit(
            ex,
            page.as_str(),
            source_id,
            fetch_time,
            stats,
            out,
            &mut drops,
        );
    } else if ty == "metadata"
        && rec
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("application/json"))
    {
        match crate::wat::parse_wat(&rec.body) {
            Ok(Some(p)) => {
                stats.pages += 1;
                let ft = p
                    .warc_date
                    .as_deref()
                    .and_then(parse_warc_date)
                    .or(fetch_time);
                emit(
                    p.extraction,
                    &p.page_url,
                    source_id,
                    ft,
                    stats,
                    out,
                    &mut drops,
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(source_id, offset = rec.offset, error = %e, "malformed WAT record");
                let target = rec
                    .header("WARC-Target-URI")
                    .map(|t| t.trim_matches(['<', '>']));
                drops.record(
                    stats,
                    page_row("malformed_wat", target, Some(e.to_string())),
                );
            }
        }
    }
}

fn emit(
    mut ex: crate::extract::Extraction,
    page_url: &str,
    source_id: &str,
    fetch_time: Option<i64>,
    stats: &mut FileStats,
    out: &mut Vec<Candidate>,
    drops: &mut RecordDrops<'_>,
) {
    if let Some(directive) = &ex.opted_out {
        let detail = format!("the page says `{directive}`");
        drops.record(
            stats,
            page_row("opted_out_page", Some(page_url), Some(detail)),
        );
        return;
    }
    stats.drops.merge(&ex.drops);
    let listing = drops.list.is_some();
    let mut images = std::mem::take(&mut ex.dropped);
    into_candidates_listed(
        ex,
        PageInfo {
            page_url,
            source_id,
            fetch_time,
        },
        &mut stats.drops,
        out,
        listing.then_some(&mut images),
    );
    if listing {
        for img in images {
            drops.list_only(img.into_row(page_url));
        }
    }
}

#[cfg(test)]
mod tests;

//! `openwit crawl`: a polite crawler that writes the candidate table.
//!
//! Seeds (a list and/or a file, optionally sitemaps) go into a SQLite frontier
//! ([`frontier::Frontier`]) with normalized, deduplicated URLs; scope rules (same site,
//! allow/deny hosts, max depth, max pages) decide what enters. Each host's robots.txt is fetched
//! once, cached in the frontier and obeyed (parsed by `openwit_http::robots`), Crawl-delay
//! included; at most `per_host` requests are in flight per host with at least `min_delay_ms`
//! between their starts, and at most `concurrency` overall. Responses are capped at
//! `max_page_bytes`, must be HTML (by Content-Type, else sniffed), are decoded by their charset,
//! and go through the shared extractor. Requests go through the one guarded client
//! ([`openwit_http`]: address rules, the optional `[pipeline] proxy`, the robots.txt status
//! rules); a redirect's target (at most [`MAX_REDIRECTS`] hops) goes back into the frontier, so
//! each hop is deduplicated (no loops) and re-checked against the scope, robots.txt, politeness
//! and the address rules. A killed crawl resumes from the frontier.
//!
//! Every counted drop (a page skipped or failed, an image or caption dropped) is also recorded in
//! the frontier with its page, image URL, caption and seed, and listed in
//! `crawl/dropped/crawl.parquet` at the end (`dropped_rows = true`, the default; see
//! [`crate::dropped`]).
//!
//! ```toml
//! [crawl]
//! seeds = ["https://example.org/"]
//! max_depth = 3          # default 3
//! max_pages = 10000      # default 10000
//! same_site = true       # default: stay on the seeds' hosts (and their subdomains)
//! min_delay_ms = 1000    # default: one request per second per host
//! dropped_rows = true    # default: list every dropped page and image in crawl/dropped/
//! ```

pub mod frontier;
pub mod urlnorm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openwit_core::{Drops, Stage, StageContext, TaskContext, TaskReport, TaskSpec};
use openwit_http::robots::Robots;
use openwit_http::{
    FailKind, HttpClient, HttpSettings, MAX_REDIRECTS, RobotsTxt, check_target, fetch_robots,
    path_and_query, read_capped, redirect_target,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::candidate::{Candidate, CandidateWriter};
use crate::dropped::{DroppedRow, Listing, clip_url};
use crate::error::{IoAt, SourcesError};
use crate::extract::{PageInfo, extract_with_links, into_candidates_listed};
use frontier::{DONE, FAILED, Frontier, KIND_PAGE, KIND_SITEMAP, NewUrl, SKIPPED};

// The ranges of this table's own numeric keys (shared ones are in `openwit_core::config::range`;
// pipelines/README.md lists them all).
openwit_core::config_ranges! {
    fn link_depth = openwit_core::config::Range::new(0.0, 1000.0, "links from a seed");
    fn page_bytes = openwit_core::config::Range::new(1.0, 1_073_741_824.0, "bytes");
    fn demo_pages = openwit_core::config::Range::new(1.0, 100_000.0, "pages");
    fn demo_per_class = openwit_core::config::Range::new(1.0, 100_000.0, "drawings per class");
    fn demo_held_out = openwit_core::config::Range::new(0.0, 90.0, "percent");
}

/// The demo site option: generate a small site into `dir` and crawl it from a local server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSite {
    /// Where the site is generated (relative to the pipeline file).
    pub dir: PathBuf,
    /// Number of pages of the `generated` world; drawings per page of the `openclipart` world.
    /// Default 40 (generated) or 8 (openclipart).
    #[serde(default, deserialize_with = "demo_pages_opt")]
    pub pages: Option<usize>,
    /// What the site shows: `generated` (default: one drawn pattern per everyday thing, made by
    /// this project) or `openclipart` (real drawings with the titles, descriptions and keywords
    /// their authors wrote: Debian's openclipart-svg and openclipart-png, see `clipart.rs`).
    #[serde(default, skip_serializing_if = "DemoWorld::is_generated")]
    pub world: DemoWorld,
    /// `openclipart`: the drawings' folder (Debian's layout, `svg/` and `png/`). Default
    /// `/usr/share/openclipart` when the packages are installed, else
    /// `~/.cache/openwit/openclipart` (where `scripts/setup.sh` extracts them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openclipart: Option<PathBuf>,
    /// `openclipart`: at most this many drawings per class. Default 40.
    #[serde(
        default = "default_per_class",
        deserialize_with = "demo_per_class",
        skip_serializing_if = "is_default_per_class"
    )]
    pub per_class: usize,
    /// `openclipart`: the percentage of drawings held out (never served; written as a labelled
    /// image folder beside the site for evaluation). Default 20.
    #[serde(
        default = "default_held_out",
        deserialize_with = "demo_held_out",
        skip_serializing_if = "is_default_held_out"
    )]
    pub held_out_percent: u32,
}

/// The demo site's world (`[demo_site] world`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoWorld {
    #[default]
    Generated,
    Openclipart,
}

impl DemoWorld {
    fn is_generated(&self) -> bool {
        *self == DemoWorld::Generated
    }
}

fn default_per_class() -> usize {
    40
}
fn is_default_per_class(n: &usize) -> bool {
    *n == default_per_class()
}
fn is_default_held_out(n: &u32) -> bool {
    *n == default_held_out()
}
fn default_held_out() -> u32 {
    20
}
fn demo_pages_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    demo_pages(d).map(Some)
}

impl DemoSite {
    /// The `generated` world with `pages` pages in `dir`.
    pub fn generated(dir: impl Into<PathBuf>, pages: usize) -> Self {
        DemoSite {
            dir: dir.into(),
            pages: Some(pages),
            world: DemoWorld::Generated,
            openclipart: None,
            per_class: default_per_class(),
            held_out_percent: default_held_out(),
        }
    }

    /// The site's folder (`dir`, relative to `base`, the pipeline file's folder).
    pub fn site_dir(&self, base: &Path) -> PathBuf {
        if self.dir.is_absolute() {
            self.dir.clone()
        } else {
            base.join(&self.dir)
        }
    }

    /// Writes the site into [`DemoSite::site_dir`] unless a complete one of the same world is
    /// there already; returns the folder.
    pub fn ensure(&self, base: &Path) -> Result<PathBuf, SourcesError> {
        let dir = self.site_dir(base);
        let marker = std::fs::read_to_string(dir.join(crate::demo_site::MARKER)).ok();
        let is_clipart = marker.as_deref().map(|m| m.starts_with("openclipart"));
        match self.world {
            DemoWorld::Generated => {
                if is_clipart != Some(false) {
                    if is_clipart == Some(true) {
                        std::fs::remove_dir_all(&dir).at(dir.display())?;
                    }
                    crate::demo_site::generate(&dir, self.pages.unwrap_or(40))?;
                }
            }
            DemoWorld::Openclipart => {
                let per_page = self.pages.unwrap_or(8);
                let want = crate::demo_site::clipart_marker(
                    self.per_class,
                    self.held_out_percent,
                    per_page.clamp(1, 1000),
                );
                // Written again when it is another world, or older, or made with other settings.
                if marker.as_deref() != Some(want.as_str()) {
                    let src = match &self.openclipart {
                        Some(p) if p.is_absolute() => p.clone(),
                        Some(p) => base.join(p),
                        None => default_openclipart(),
                    };
                    let root = crate::clipart::root_of(&src)?;
                    crate::demo_site::generate_clipart(
                        &dir,
                        &root,
                        self.per_class,
                        self.held_out_percent,
                        per_page,
                    )?;
                }
            }
        }
        Ok(dir)
    }
}

/// Debian's install folder when the packages are installed, else the cache `scripts/setup.sh`
/// extracts them into.
fn default_openclipart() -> PathBuf {
    let system = PathBuf::from("/usr/share/openclipart");
    if system.join("svg").is_dir() {
        return system;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/openwit/openclipart")
}

/// The `[crawl]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlConfig {
    /// Seed URLs.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// A file with one seed URL per line (`#` comments), relative to the pipeline file.
    #[serde(default)]
    pub seeds_file: Option<PathBuf>,
    /// Also seed from the seeds' `/sitemap.xml` and the sitemaps their robots.txt names. Default false.
    #[serde(default)]
    pub sitemaps: bool,
    /// Link depth from a seed. Default 3.
    #[serde(default = "default_depth", deserialize_with = "link_depth")]
    pub max_depth: u32,
    /// Pages fetched at most. Default 10000.
    #[serde(
        default = "default_max_pages",
        deserialize_with = "openwit_core::config::range::count"
    )]
    pub max_pages: u64,
    /// Stay on the seeds' hosts and their subdomains. Default true.
    #[serde(default = "yes")]
    pub same_site: bool,
    /// When not empty, only these hosts (and subdomains) are crawled.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// These hosts (and subdomains) are never crawled.
    #[serde(default)]
    pub deny_hosts: Vec<String>,
    /// Requests in flight overall. Default 16.
    #[serde(
        default = "default_concurrency",
        deserialize_with = "openwit_core::config::range::concurrency"
    )]
    pub concurrency: usize,
    /// Requests in flight per host. Default 1.
    #[serde(
        default = "one",
        deserialize_with = "openwit_core::config::range::concurrency"
    )]
    pub per_host: usize,
    /// Milliseconds between two request starts on one host (robots.txt Crawl-delay raises it). Default 1000.
    #[serde(
        default = "default_delay",
        deserialize_with = "openwit_core::config::range::delay_ms"
    )]
    pub min_delay_ms: u64,
    /// User agent; keep a contact URL in it. Its first word is the robots.txt product token.
    #[serde(default = "default_ua")]
    pub user_agent: String,
    /// Seconds per request. Default 30.
    #[serde(
        default = "default_timeout",
        deserialize_with = "openwit_core::config::range::timeout"
    )]
    pub timeout_secs: u64,
    /// Bytes of a page read at most. Default 5 MiB.
    #[serde(default = "default_page_bytes", deserialize_with = "page_bytes")]
    pub max_page_bytes: u64,
    /// Attempts per URL on timeouts, connection errors, 429 and 5xx. Default 3.
    #[serde(
        default = "default_attempts",
        deserialize_with = "openwit_core::config::range::attempts"
    )]
    pub max_attempts: u32,
    /// Allow private/loopback/link-local addresses. Default false.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Generate and serve the demo site (see `demo_site.rs`) and crawl it.
    #[serde(default)]
    pub demo_site: Option<DemoSite>,
    /// List every dropped page and image (with its reason) in `crawl/dropped/crawl.parquet`.
    /// Default true.
    #[serde(default = "yes")]
    pub dropped_rows: bool,
}

fn default_depth() -> u32 {
    3
}
fn default_max_pages() -> u64 {
    10_000
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_concurrency() -> usize {
    16
}
fn default_delay() -> u64 {
    1000
}
fn default_ua() -> String {
    openwit_http::DEFAULT_USER_AGENT.into()
}
fn default_timeout() -> u64 {
    30
}
fn default_page_bytes() -> u64 {
    5 << 20
}
fn default_attempts() -> u32 {
    3
}

impl CrawlConfig {
    /// A config with every default and these seeds.
    pub fn with_seeds(seeds: Vec<String>) -> Self {
        toml_defaults(seeds)
    }
}

fn toml_defaults(seeds: Vec<String>) -> CrawlConfig {
    CrawlConfig {
        seeds,
        seeds_file: None,
        sitemaps: false,
        max_depth: default_depth(),
        max_pages: default_max_pages(),
        same_site: true,
        allow_hosts: vec![],
        deny_hosts: vec![],
        concurrency: default_concurrency(),
        per_host: 1,
        min_delay_ms: default_delay(),
        user_agent: default_ua(),
        timeout_secs: default_timeout(),
        max_page_bytes: default_page_bytes(),
        max_attempts: default_attempts(),
        allow_private_networks: false,
        demo_site: None,
        dropped_rows: true,
    }
}

/// The crawl stage.
pub struct CrawlStage {
    cfg: CrawlConfig,
    base: PathBuf,
    /// `[pipeline] proxy`.
    proxy: Option<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn host_key(u: &Url) -> String {
    match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    }
}

fn host_matches(host: &str, rule: &str) -> bool {
    let rule = rule.trim().trim_start_matches("*.").to_ascii_lowercase();
    host == rule || host.ends_with(&format!(".{rule}"))
}

/// Scope rules.
struct Scope {
    seed_hosts: Vec<String>,
    same_site: bool,
    allow: Vec<String>,
    deny: Vec<String>,
}

impl Scope {
    fn allows(&self, u: &Url) -> bool {
        let Some(h) = u.host_str() else { return false };
        let h = h.to_ascii_lowercase();
        if self.deny.iter().any(|d| host_matches(&h, d)) {
            return false;
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|a| host_matches(&h, a)) {
            return false;
        }
        if self.same_site {
            return self.seed_hosts.iter().any(|s| {
                let s = s.strip_prefix("www.").unwrap_or(s);
                host_matches(&h, s)
            });
        }
        true
    }
}

impl CrawlStage {
    pub fn new(cfg: CrawlConfig, base: impl Into<PathBuf>) -> Result<Self, SourcesError> {
        if cfg.seeds.is_empty() && cfg.seeds_file.is_none() && cfg.demo_site.is_none() {
            return Err(SourcesError::Config(
                "[crawl] has no seeds; fix: set seeds = [\"https://example.org/\"] or seeds_file = \"seeds.txt\"".into(),
            ));
        }
        if cfg.concurrency == 0 || cfg.per_host == 0 {
            return Err(SourcesError::Config(
                "[crawl] concurrency and per_host must be at least 1; fix: remove them to use the defaults (16 and 1)".into(),
            ));
        }
        for s in &cfg.seeds {
            if urlnorm::normalize(&Url::parse("http://x/").unwrap(), s).is_none()
                || Url::parse(s).is_err()
            {
                return Err(SourcesError::Config(format!(
                    "[crawl] seed `{s}` is not an absolute http(s) URL; fix: write it as https://host/path"
                )));
            }
        }
        Ok(CrawlStage {
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

    fn seeds(&self) -> Result<Vec<String>, SourcesError> {
        let mut seeds = self.cfg.seeds.clone();
        if let Some(f) = &self.cfg.seeds_file {
            let p = if f.is_absolute() {
                f.clone()
            } else {
                self.base.join(f)
            };
            let text = std::fs::read_to_string(&p).map_err(|e| {
                SourcesError::Config(format!("[crawl] seeds_file {}: {e}; fix: give an existing file (relative to the pipeline file)", p.display()))
            })?;
            for (i, l) in text.lines().enumerate() {
                let l = l.split('#').next().unwrap_or("").trim();
                if l.is_empty() {
                    continue;
                }
                if Url::parse(l)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .is_none()
                {
                    return Err(SourcesError::Config(format!(
                        "{}:{}: `{l}` is not an absolute http(s) URL; fix: one URL per line, like https://example.org/",
                        p.display(),
                        i + 1
                    )));
                }
                seeds.push(l.to_string());
            }
        }
        if self.cfg.demo_site.is_some() && seeds.is_empty() {
            seeds.push(format!("http://{}/", crate::demo_site::DEMO_HOST));
        }
        Ok(seeds)
    }

    fn agent_token(&self) -> String {
        self.cfg
            .user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or("openwit")
            .to_ascii_lowercase()
    }
}

impl openwit_core::FromConfig for CrawlStage {
    const TABLE: &'static str = "crawl";
    type Config = CrawlConfig;
    fn from_config(
        cfg: CrawlConfig,
        doc: &openwit_core::PipelineDoc,
    ) -> openwit_core::Result<Self> {
        Ok(Self::new(cfg, doc.base_dir())?
            .allow_private_networks(doc.pipeline().allow_private_networks)
            .proxy(doc.pipeline().proxy.clone()))
    }
}

impl Stage for CrawlStage {
    fn name(&self) -> &str {
        "crawl"
    }

    fn config(&self) -> Value {
        json!({
            "seeds": self.cfg.seeds,
            "seeds_file": self.cfg.seeds_file,
            "sitemaps": self.cfg.sitemaps,
            "max_depth": self.cfg.max_depth,
            "max_pages": self.cfg.max_pages,
            "same_site": self.cfg.same_site,
            "allow_hosts": self.cfg.allow_hosts,
            "deny_hosts": self.cfg.deny_hosts,
            "max_page_bytes": self.cfg.max_page_bytes,
            "allow_private_networks": self.cfg.allow_private_networks,
            "demo_site": self.cfg.demo_site,
            "dropped_rows": self.cfg.dropped_rows,
        })
    }

    fn plan(&self, _ctx: &StageContext<'_>) -> openwit_core::Result<Vec<TaskSpec>> {
        // One task: politeness is per host across the whole crawl, and the frontier is shared.
        Ok(vec![TaskSpec::new("crawl", json!({}))])
    }

    fn run_task(&self, ctx: &TaskContext<'_>, task: &TaskSpec) -> openwit_core::Result<TaskReport> {
        let dir = ctx.stage_dir();
        std::fs::create_dir_all(&dir).map_err(|e| openwit_core::Error::io(&dir, e))?;
        let rt = ctx.runtime();
        let mut http = HttpSettings {
            user_agent: self.cfg.user_agent.clone(),
            timeout: Some(Duration::from_secs(self.cfg.timeout_secs.max(1))),
            connect_timeout: Duration::from_secs(self.cfg.timeout_secs.clamp(1, 10)),
            allow_private: self.cfg.allow_private_networks,
            proxy: self.proxy.clone(),
            ..Default::default()
        };
        let _server = match &self.cfg.demo_site {
            Some(d) => {
                let site = d.ensure(&self.base)?;
                let server = crate::demo_site::serve(rt, &site)?;
                http.overrides
                    .push((crate::demo_site::DEMO_HOST.to_string(), server.addr));
                tracing::info!(addr = %server.addr, host = crate::demo_site::DEMO_HOST, "serving the demo site");
                Some(server)
            }
            None => None,
        };
        let mut frontier = Frontier::open(&dir.join("frontier.sqlite"))?;
        let seeds = self.seeds()?;
        let crawler = Crawler::new(self, &http, &seeds)?;
        crawler.run(ctx, rt, &mut frontier)?;
        if ctx.cancelled() {
            return Err(openwit_core::Error::Interrupted);
        }
        let out = ctx.create_output("candidates.parquet")?;
        let mut w = CandidateWriter::new(out)?;
        frontier.for_each_candidate(|c| w.push(c))?;
        let (n, _) = w.finish()?;
        let drops = frontier.drops()?;
        if self.cfg.dropped_rows {
            write_listing(ctx, &task.id, &frontier, &drops)?;
        }
        let counts = frontier.status_counts()?;
        let pages = frontier.pages_done()?;
        Ok(TaskReport {
            items_in: pages,
            items_out: n,
            drops,
            extra: json!({
                "pages": pages,
                "status_counts": counts.iter().map(|(s, n)| (match *s { 0 => "pending", 1 => "done", 2 => "failed", _ => "skipped" }.to_string(), *n)).collect::<HashMap<_, _>>(),
            }),
        })
    }

    fn max_parallel(&self, _jobs: usize) -> usize {
        1
    }

    fn summary(
        &self,
        _ctx: &StageContext<'_>,
        tasks: &[openwit_core::TaskRecord],
    ) -> Option<String> {
        Some(crate::summary_line("crawl", tasks).replace("items", "pages"))
    }
}

/// Writes `crawl/dropped/crawl.parquet`: every dropped record the frontier holds, then, for a
/// reason counted more often than listed (drops counted in a frontier that an earlier version
/// filled without listing them), one row with the rest in `count`, so that the listing's
/// `count` per reason always sums to the counted drops.
fn write_listing(
    ctx: &TaskContext<'_>,
    task: &str,
    frontier: &Frontier,
    counted: &Drops,
) -> Result<(), SourcesError> {
    let mut listing = Listing::new(ctx, task, true);
    frontier.for_each_dropped(|r| listing.push(r))?;
    let listed = frontier.listed_drops()?;
    for (reason, &n) in &counted.0 {
        let rest = n.saturating_sub(listed.get(reason));
        if rest > 0 {
            listing.push(DroppedRow {
                count: rest,
                detail: Some(
                    "counted before openwit listed dropped records one by one (an earlier frontier); the records are not known"
                        .into(),
                ),
                ..DroppedRow::new(reason.clone())
            })?;
        }
    }
    listing.finish()
}

/// The listing row of a dropped page (or sitemap) `e`.
fn page_row(e: &frontier::Entry, reason: &str, detail: Option<String>) -> DroppedRow {
    let (page, cut) = clip_url(&e.url);
    DroppedRow {
        page_url: Some(page),
        input: Some(e.seed.clone()),
        detail: detail.or(cut),
        ..DroppedRow::new(reason)
    }
}

/// What one fetch gave.
enum Outcome {
    /// A page (or sitemap) was processed.
    Done {
        cands: Vec<Candidate>,
        links: Vec<NewUrl>,
        drops: Drops,
        /// The drops one by one (empty unless the crawl lists them); the seed is filled in by
        /// the caller.
        listed: Vec<DroppedRow>,
        fetched_at: i64,
    },
    /// Not fetched or not usable, for good: reason.
    Skip(&'static str, Vec<NewUrl>),
    /// A transient failure: try again later.
    Retry(&'static str),
    /// A redirect: the target goes into the frontier.
    Redirect(NewUrl),
    /// The host's robots.txt was fetched: (host, status, body).
    Robots(String, i64, String),
}

struct HostState {
    in_flight: usize,
    next_start: Instant,
    robots: Option<Arc<HostRules>>,
    robots_pending: bool,
}

/// What a host's robots.txt fetch decided: its rules, and whether the host's addresses are
/// forbidden by the address rules (then nothing is fetched from it: `forbidden_address`).
struct HostRules {
    rules: Robots,
    forbidden: bool,
}

struct Crawler {
    client: HttpClient,
    scope: Arc<Scope>,
    agent: String,
    cfg: CrawlConfig,
    seeds: Vec<String>,
}

/// Robots status codes stored in the frontier.
const ROBOTS_OK: i64 = 200;
const ROBOTS_ALLOW_ALL: i64 = 404;
const ROBOTS_DISALLOW_ALL: i64 = 503;
/// The host resolves only to forbidden addresses.
const ROBOTS_FORBIDDEN: i64 = 451;

impl Crawler {
    fn new(
        stage: &CrawlStage,
        http: &HttpSettings,
        seeds: &[String],
    ) -> Result<Self, SourcesError> {
        let client = crate::http::client(http)?;
        let seed_hosts = seeds
            .iter()
            .filter_map(|s| Url::parse(s).ok())
            .filter_map(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
            .collect();
        Ok(Crawler {
            client,
            scope: Arc::new(Scope {
                seed_hosts,
                same_site: stage.cfg.same_site,
                allow: stage.cfg.allow_hosts.clone(),
                deny: stage.cfg.deny_hosts.clone(),
            }),
            agent: stage.agent_token(),
            cfg: stage.cfg.clone(),
            seeds: seeds.to_vec(),
        })
    }

    fn seed_frontier(&self, f: &mut Frontier) -> Result<(), SourcesError> {
        if f.meta("seeded")?.is_some() {
            return Ok(());
        }
        let base = Url::parse("http://invalid/").unwrap();
        let mut new = Vec::new();
        for s in &self.seeds {
            let Some(u) = urlnorm::normalize(&base, s) else {
                continue;
            };
            if self.cfg.sitemaps {
                let sm = u.join("/sitemap.xml").unwrap();
                new.push(NewUrl {
                    url: sm.to_string(),
                    host: host_key(&sm),
                    depth: 0,
                    seed: s.clone(),
                    kind: KIND_SITEMAP,
                    hops: 0,
                });
            }
            new.push(NewUrl {
                url: u.to_string(),
                host: host_key(&u),
                depth: 0,
                seed: s.clone(),
                kind: KIND_PAGE,
                hops: 0,
            });
        }
        f.add(&new)?;
        f.set_meta("seeded", "1")
    }

    fn run(
        &self,
        ctx: &TaskContext<'_>,
        rt: &tokio::runtime::Runtime,
        f: &mut Frontier,
    ) -> Result<(), SourcesError> {
        self.seed_frontier(f)?;
        let (tx, rx) = std::sync::mpsc::channel::<(frontier::Entry, Outcome)>();
        let mut hosts: HashMap<String, HostState> = HashMap::new();
        let mut in_flight = 0usize;
        let mut in_flight_ids = std::collections::HashSet::new();
        let mut pages_done = f.pages_done()?;
        let min_delay = Duration::from_millis(self.cfg.min_delay_ms);
        let sitemap_hosts_done: Arc<Mutex<std::collections::HashSet<String>>> = Default::default();
        loop {
            if ctx.cancelled() {
                break;
            }
            let budget_left = pages_done + (in_flight as u64) < self.cfg.max_pages;
            // 1. start what is ready
            if in_flight < self.cfg.concurrency && budget_left {
                let now = Instant::now();
                let ready = f.ready(now_ms(), 512)?;
                for e in ready {
                    if in_flight >= self.cfg.concurrency
                        || pages_done + (in_flight as u64) >= self.cfg.max_pages
                    {
                        break;
                    }
                    if in_flight_ids.contains(&e.id) {
                        continue;
                    }
                    let hs = hosts.entry(e.host.clone()).or_insert_with(|| HostState {
                        in_flight: 0,
                        next_start: now,
                        robots: None,
                        robots_pending: false,
                    });
                    if hs.robots.is_none()
                        && !hs.robots_pending
                        && let Some((status, body)) = f.robots(&e.host)?
                    {
                        hs.robots = Some(Arc::new(robots_from(status, &body, &self.agent)));
                    }
                    if hs.in_flight >= self.cfg.per_host || hs.next_start > now || hs.robots_pending
                    {
                        continue;
                    }
                    let delay = hs
                        .robots
                        .as_ref()
                        .and_then(|r| r.rules.crawl_delay)
                        .map(Duration::from_secs_f64)
                        .unwrap_or_default()
                        .max(min_delay);
                    hs.in_flight += 1;
                    hs.next_start = now + delay;
                    in_flight += 1;
                    let tx = tx.clone();
                    let client = self.client.clone();
                    match hs.robots.clone() {
                        None => {
                            // fetch robots.txt first; the entry stays pending
                            hs.robots_pending = true;
                            let host = e.host.clone();
                            rt.spawn(async move {
                                let (status, body) = robots_status(&client, &e.url).await;
                                let _ = tx.send((e, Outcome::Robots(host, status, body)));
                            });
                        }
                        Some(robots) => {
                            in_flight_ids.insert(e.id);
                            let job = FetchJob {
                                client,
                                robots,
                                scope: self.scope.clone(),
                                cfg: self.cfg.clone(),
                                sitemap_hosts_done: sitemap_hosts_done.clone(),
                            };
                            rt.spawn(async move {
                                let out = job.fetch(&e).await;
                                let _ = tx.send((e, out));
                            });
                        }
                    }
                }
            }
            if in_flight == 0 {
                let next = f.next_pending_time()?;
                match next {
                    None => break,
                    Some(_) if !budget_left => break,
                    Some(t) => {
                        // wait for a retry time or a host delay
                        let wait_host = hosts.values().map(|h| h.next_start).min();
                        let until_retry =
                            Duration::from_millis((t - now_ms()).clamp(0, 1000) as u64);
                        let until_host = wait_host
                            .map(|w| w.saturating_duration_since(Instant::now()))
                            .unwrap_or_default();
                        std::thread::sleep(
                            until_retry
                                .max(until_host)
                                .clamp(Duration::from_millis(5), Duration::from_secs(1)),
                        );
                        continue;
                    }
                }
            }
            // 2. collect results
            let wait = hosts
                .values()
                .map(|h| h.next_start.saturating_duration_since(Instant::now()))
                .filter(|d| !d.is_zero())
                .min()
                .unwrap_or(Duration::from_millis(200))
                .clamp(Duration::from_millis(2), Duration::from_millis(200));
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(_) => break,
            };
            let mut batch: Vec<(frontier::Entry, Outcome)> = first.into_iter().collect();
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            for (e, out) in batch {
                in_flight -= 1;
                in_flight_ids.remove(&e.id);
                if let Some(hs) = hosts.get_mut(&e.host) {
                    hs.in_flight -= 1;
                }
                match out {
                    Outcome::Robots(host, status, body) => {
                        f.set_robots(&host, status, &body, now_ms())?;
                        let r = Arc::new(robots_from(status, &body, &self.agent));
                        if self.cfg.sitemaps && status == ROBOTS_OK {
                            let base = Url::parse(&e.url).ok();
                            let sm: Vec<NewUrl> = r
                                .rules
                                .sitemaps
                                .iter()
                                .filter_map(|s| {
                                    base.as_ref().and_then(|b| urlnorm::normalize(b, s))
                                })
                                .filter(|u| self.scope.allows(u))
                                .map(|u| NewUrl {
                                    host: host_key(&u),
                                    url: u.to_string(),
                                    depth: 0,
                                    seed: e.seed.clone(),
                                    kind: KIND_SITEMAP,
                                    hops: 0,
                                })
                                .collect();
                            f.add(&sm)?;
                        }
                        let hs = hosts.get_mut(&host).unwrap();
                        hs.robots = Some(r);
                        hs.robots_pending = false;
                    }
                    Outcome::Done {
                        cands,
                        links,
                        drops,
                        mut listed,
                        fetched_at,
                    } => {
                        if e.kind == KIND_PAGE {
                            pages_done += 1;
                        }
                        ctx.progress(1);
                        for r in &mut listed {
                            r.input = Some(e.seed.clone());
                        }
                        f.finish(
                            e.id,
                            DONE,
                            None,
                            Some(fetched_at),
                            &cands,
                            &links,
                            &drops,
                            &listed,
                        )?;
                    }
                    Outcome::Skip(reason, links) => {
                        let mut d = Drops::default();
                        let counted = if e.kind == KIND_SITEMAP {
                            format!("sitemap_{reason}")
                        } else {
                            reason.to_string()
                        };
                        d.inc(&counted);
                        let listed = if self.cfg.dropped_rows {
                            vec![page_row(&e, &counted, None)]
                        } else {
                            vec![]
                        };
                        let status = if reason == "robots_disallowed" || reason == "out_of_scope" {
                            SKIPPED
                        } else {
                            FAILED
                        };
                        f.finish(
                            e.id,
                            status,
                            Some(reason),
                            Some(now_ms()),
                            &[],
                            &links,
                            &d,
                            &listed,
                        )?;
                    }
                    Outcome::Redirect(n) => {
                        f.finish(
                            e.id,
                            SKIPPED,
                            Some("redirected"),
                            Some(now_ms()),
                            &[],
                            &[n],
                            &Drops::default(),
                            &[],
                        )?;
                    }
                    Outcome::Retry(reason) => {
                        if e.attempts + 1 >= self.cfg.max_attempts as i64 {
                            let mut d = Drops::default();
                            d.inc(reason);
                            let listed = if self.cfg.dropped_rows {
                                let n = e.attempts + 1;
                                let detail = format!(
                                    "{reason} on each of {n} attempt{}",
                                    if n == 1 { "" } else { "s" }
                                );
                                vec![page_row(&e, reason, Some(detail))]
                            } else {
                                vec![]
                            };
                            f.finish(
                                e.id,
                                FAILED,
                                Some(reason),
                                Some(now_ms()),
                                &[],
                                &[],
                                &d,
                                &listed,
                            )?;
                        } else {
                            let backoff = 1000i64 << e.attempts.min(6);
                            f.retry_later(e.id, now_ms() + backoff)?;
                        }
                    }
                }
            }
        }
        // let in-flight fetches finish into the void: their URLs stay pending for the next run
        Ok(())
    }
}

fn robots_from(status: i64, body: &str, agent: &str) -> HostRules {
    let rules = match status {
        ROBOTS_OK => Robots::parse(body, agent),
        ROBOTS_ALLOW_ALL => Robots::allow_all(),
        _ => Robots::disallow_all(),
    };
    HostRules {
        rules,
        forbidden: status == ROBOTS_FORBIDDEN,
    }
}

/// Fetches `/robots.txt` of the URL's host through the guarded client (the status rules of
/// [`fetch_robots`]) as it is stored in the frontier: (status class, body).
async fn robots_status(client: &HttpClient, page: &str) -> (i64, String) {
    let Ok(page) = Url::parse(page) else {
        return (ROBOTS_ALLOW_ALL, String::new());
    };
    match fetch_robots(client, &page).await {
        Ok(RobotsTxt::Body(b)) => (ROBOTS_OK, String::from_utf8_lossy(&b).into_owned()),
        Ok(RobotsTxt::AllowAll) => (ROBOTS_ALLOW_ALL, String::new()),
        Ok(RobotsTxt::DisallowAll) => (ROBOTS_DISALLOW_ALL, String::new()),
        Err(e) if e.kind == FailKind::ForbiddenAddress => (ROBOTS_FORBIDDEN, String::new()),
        // the name does not resolve: nothing can be fetched from the host
        Err(_) => (ROBOTS_DISALLOW_ALL, String::new()),
    }
}

struct FetchJob {
    client: HttpClient,
    robots: Arc<HostRules>,
    scope: Arc<Scope>,
    cfg: CrawlConfig,
    sitemap_hosts_done: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl FetchJob {
    async fn fetch(&self, e: &frontier::Entry) -> Outcome {
        let Ok(url) = Url::parse(&e.url) else {
            return Outcome::Skip("invalid_url", vec![]);
        };
        let mut hops = e.hops;
        {
            // every hop: scope, robots, address rules
            if !self.scope.allows(&url) {
                return Outcome::Skip("out_of_scope", vec![]);
            }
            if self.robots.forbidden {
                return Outcome::Skip("forbidden_address", vec![]);
            }
            if let Err(err) = check_target(&url, self.cfg.allow_private_networks) {
                return Outcome::Skip(err.reason(), vec![]);
            }
            if !self.robots.rules.allowed(&path_and_query(&url)) {
                return Outcome::Skip("robots_disallowed", vec![]);
            }
            let resp = match self
                .client
                .send_once(&url, |r| {
                    r.header(
                        reqwest::header::ACCEPT,
                        "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
                    )
                })
                .await
            {
                Ok(r) => r,
                Err(err) if err.kind.is_transient() => return Outcome::Retry(err.reason()),
                // forbidden_address, dns_error, bad_url: for good
                Err(err) => return Outcome::Skip(err.reason(), vec![]),
            };
            let status = resp.status();
            if status.is_redirection() {
                let Some(next) = redirect_target(&url, &resp)
                    .and_then(Result::ok)
                    .and_then(|l| urlnorm::normalize(&url, l.as_str()))
                else {
                    return Outcome::Skip("bad_redirect", vec![]);
                };
                hops += 1;
                if hops > MAX_REDIRECTS as i64 {
                    return Outcome::Skip("too_many_redirects", vec![]);
                }
                // the target goes through the frontier: deduplicated (no loops), and checked
                // against scope, robots.txt, politeness and the address rules like any URL
                if !self.scope.allows(&next) {
                    return Outcome::Skip("out_of_scope", vec![]);
                }
                let n = NewUrl {
                    host: host_key(&next),
                    url: next.to_string(),
                    depth: e.depth,
                    seed: e.seed.clone(),
                    kind: e.kind,
                    hops,
                };
                return Outcome::Redirect(n);
            }
            if status.as_u16() == 429 || status.is_server_error() {
                return Outcome::Retry(if status.as_u16() == 429 {
                    "http_429"
                } else {
                    "http_5xx"
                });
            }
            if !status.is_success() {
                return Outcome::Skip(
                    if status.as_u16() == 404 {
                        "http_404"
                    } else {
                        "http_4xx"
                    },
                    vec![],
                );
            }
            let ctype = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let robots_tags: Vec<String> = resp
                .headers()
                .get_all("x-robots-tag")
                .iter()
                // every header, bytes outside visible ASCII included (`to_str` would drop it)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            if e.kind == KIND_SITEMAP {
                return self.sitemap(e, &url, resp).await;
            }
            // a type that is not HTML is refused before the body is read
            if ctype.as_deref().and_then(crate::html::html_by_type) == Some(false) {
                return Outcome::Skip("not_html", vec![]);
            }
            let (body, cut) = match read_capped(&url, resp, self.cfg.max_page_bytes).await {
                Ok(b) => b,
                Err(err) => return Outcome::Retry(err.reason()),
            };
            if !crate::html::is_html(ctype.as_deref(), &body) {
                return Outcome::Skip("not_html", vec![]);
            }
            let fetched_at = openwit_core::clock::output_time_ms();
            let text = crate::html::decode_html(&body, ctype.as_deref());
            let page_url = url.to_string();
            let refs: Vec<&str> = robots_tags.iter().map(String::as_str).collect();
            let (mut ex, raw_links) = extract_with_links(&text, &url, &refs);
            let mut drops = Drops::default();
            let list = self.cfg.dropped_rows;
            let mut listed = Vec::new();
            if cut {
                drops.inc("page_truncated");
                if list {
                    let detail = format!(
                        "only the first {} bytes were read (max_page_bytes)",
                        self.cfg.max_page_bytes
                    );
                    listed.push(page_row(e, "page_truncated", Some(detail)));
                }
            }
            let mut cands = Vec::new();
            if let Some(directive) = &ex.opted_out {
                drops.inc("opted_out_page");
                if list {
                    let detail = format!("the page says `{directive}`");
                    listed.push(page_row(e, "opted_out_page", Some(detail)));
                }
            } else {
                drops.merge(&ex.drops);
                let mut images = std::mem::take(&mut ex.dropped);
                into_candidates_listed(
                    ex,
                    PageInfo {
                        page_url: &page_url,
                        source_id: &e.seed,
                        fetch_time: Some(fetched_at),
                    },
                    &mut drops,
                    &mut cands,
                    list.then_some(&mut images),
                );
                if list {
                    listed.extend(images.into_iter().map(|i| i.into_row(&page_url)));
                }
            }
            let mut links = Vec::new();
            if (e.depth as u64) < self.cfg.max_depth as u64 {
                let mut seen = std::collections::HashSet::new();
                for l in raw_links {
                    let Some(n) = urlnorm::normalize(&url, l.as_str()) else {
                        continue;
                    };
                    if !self.scope.allows(&n) || !seen.insert(n.to_string()) {
                        continue;
                    }
                    links.push(NewUrl {
                        host: host_key(&n),
                        url: n.to_string(),
                        depth: e.depth + 1,
                        seed: e.seed.clone(),
                        kind: KIND_PAGE,
                        hops: 0,
                    });
                }
            }
            Outcome::Done {
                cands,
                links,
                drops,
                listed,
                fetched_at,
            }
        }
    }

    async fn sitemap(&self, e: &frontier::Entry, url: &Url, resp: reqwest::Response) -> Outcome {
        let (body, _) = match read_capped(url, resp, 50 << 20).await {
            Ok(b) => b,
            Err(err) => return Outcome::Retry(err.reason()),
        };
        let body = if body.starts_with(b"\x1f\x8b") {
            let mut out = Vec::new();
            use std::io::Read;
            let _ = flate2::read::MultiGzDecoder::new(&body[..])
                .take(100 << 20)
                .read_to_end(&mut out);
            out
        } else {
            body
        };
        let (locs, is_index) = parse_sitemap(&body);
        self.sitemap_hosts_done
            .lock()
            .unwrap()
            .insert(host_key(url));
        let mut links = Vec::new();
        for l in locs.into_iter().take(50_000) {
            let Some(n) = urlnorm::normalize(url, &l) else {
                continue;
            };
            if !self.scope.allows(&n) {
                continue;
            }
            let kind = if is_index { KIND_SITEMAP } else { KIND_PAGE };
            links.push(NewUrl {
                host: host_key(&n),
                url: n.to_string(),
                depth: if is_index { 0 } else { 1 },
                seed: e.seed.clone(),
                kind,
                hops: 0,
            });
        }
        Outcome::Done {
            cands: vec![],
            links,
            drops: Drops::default(),
            listed: vec![],
            fetched_at: now_ms(),
        }
    }
}

/// The `<loc>` entries of a sitemap and whether it is a sitemap index. Malformed XML gives the
/// entries read before the error.
pub fn parse_sitemap(xml: &[u8]) -> (Vec<String>, bool) {
    use quick_xml::events::Event as X;
    let mut r = quick_xml::Reader::from_reader(xml);
    r.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut in_loc = false;
    let mut is_index = false;
    let mut out = Vec::new();
    let mut cur = String::new();
    loop {
        match r.read_event_into(&mut buf) {
            Ok(X::Start(s)) => {
                let name = s.local_name();
                if name.as_ref() == b"loc" {
                    in_loc = true;
                    cur.clear();
                } else if name.as_ref() == b"sitemapindex" {
                    is_index = true;
                }
            }
            Ok(X::End(_)) => {
                if in_loc && !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                in_loc = false;
            }
            Ok(X::Text(t)) if in_loc => {
                if let Ok(s) = t.decode() {
                    cur.push_str(&s);
                }
            }
            Ok(X::GeneralRef(g)) if in_loc => cur.extend(crate::html::xml_ref_char(&g)),
            Ok(X::CData(t)) if in_loc => cur.push_str(&String::from_utf8_lossy(&t)),
            Ok(X::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    (out, is_index)
}

#[cfg(test)]
mod tests;

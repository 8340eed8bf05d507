//! The one HTTP client of openwit: the crawl, the WARC reader, the image download and the
//! queries downloader all send their requests through [`HttpClient`].
//!
//! - One user agent by default ([`DEFAULT_USER_AGENT`], robots.txt product token
//!   [`DEFAULT_PRODUCT_TOKEN`]); a stage's `user_agent` key replaces it.
//! - One address check, on the first request and on every redirect hop, before anything is sent:
//!   the URL must be `http` or `https` with a host; an IP literal (whatever form the URL spelled
//!   it in: decimal, octal, hex, IPv4-mapped, NAT64, 6to4, ...) must be public
//!   ([`crate::net::is_forbidden`]); `localhost` and `*.localhost` are refused; a host name is
//!   resolved by [`crate::net::GuardedResolver`] (the [`crate::net::override_host`] table first)
//!   and refused when it resolves only to non-public addresses. `allow_private` (the pipeline's
//!   `allow_private_networks`) lifts the address rules; [`HttpSettings::overrides`] names the
//!   stage's own servers, which they do not cover.
//! - One redirect policy ([`HttpClient::get`]): reqwest follows nothing itself
//!   (`Policy::none()`); at most [`MAX_REDIRECTS`] hops of 301/302/303/307/308, a hop back to an
//!   URL already requested is a `redirect_loop`, a hop to anything but http(s) is a `bad_url`, and
//!   each hop's request is built again by the caller (range headers, `Accept`, ...). The crawler,
//!   which queues redirect targets in its frontier, uses [`HttpClient::send_once`] and
//!   [`redirect_target`] instead: the same checks and the same limit.
//! - One robots.txt fetch ([`fetch_robots`]) and cache ([`RobotsCache`], per origin): 2xx is
//!   parsed (at most [`MAX_ROBOTS_BYTES`]), 429 and 5xx and an unreachable host disallow
//!   everything, other 4xx allow everything, a forbidden or unresolvable host is an error.
//! - Failures are [`HttpError`]s whose [`FailKind::reason`] is a stable drop-reason token.
//!
//! # Proxy
//!
//! Proxy environment variables are ignored ([`crate::net::without_env_proxies`]). When the
//! pipeline names a proxy ([`HttpSettings::proxy`], from `[pipeline] proxy`), every request goes
//! through it, and the host name of every hop is still resolved here, with the address rules,
//! before the request is sent:
//!
//! - `http://` URLs are sent to the proxy with the host replaced by the checked IP address (the
//!   original name goes in the `Host` header), so the proxy connects to that address and never
//!   resolves the name itself;
//! - `https://` URLs go through a `CONNECT` tunnel that openwit opens itself, to the checked
//!   address (`CONNECT 93.184.216.34:443`), never to the name; TLS inside the tunnel names the
//!   server (SNI and the certificate check) as without a proxy (`crate::tunnel`). So the proxy
//!   never resolves a name of a target, and DNS rebinding between the check and the connection
//!   cannot happen through a proxy either.
//!
//! Without a proxy nothing is rewritten: names are resolved (and cached for five minutes) by the
//! client's guarded resolver at connection time.
//!
//! ```
//! use openwit_http::{HttpClient, HttpSettings};
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let client = HttpClient::new(&HttpSettings::default()).unwrap();
//! let url = url::Url::parse("http://0x7f.0.0.1/").unwrap(); // 127.0.0.1
//! let err = rt.block_on(client.get(&url, |_, req| req)).unwrap_err();
//! assert_eq!(err.reason(), "forbidden_address");
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::OnceCell;
use url::{Host, Url};

use crate::net::{ForbiddenAddress, GuardedResolver, is_forbidden};
pub use crate::robots::MAX_ROBOTS_BYTES;
use crate::robots::Robots;

/// The default user agent of every request: the tool, its version and where to learn about it
/// or complain.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "openwit/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/openwit/openwit; image-text dataset builder; honours robots.txt, noai and noimageai)"
);

/// The default product token matched against robots.txt groups and `X-Robots-Tag: token: ...`.
pub const DEFAULT_PRODUCT_TOKEN: &str = "openwit";

/// Most redirects followed for one request (the sixth is a `too_many_redirects`).
pub const MAX_REDIRECTS: usize = 5;

/// How long a resolved (and allowed) name is reused.
const DNS_TTL: Duration = Duration::from_secs(300);

/// Why a request failed. [`FailKind::reason`] is the token counted in drop statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailKind {
    /// The address (an IP literal, `localhost`, or every address a name resolves to) is not
    /// public and `allow_private_networks` is off.
    ForbiddenAddress,
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects,
    /// A redirect back to an URL already requested.
    RedirectLoop,
    /// Not an http(s) URL with a host (the first URL or a redirect target).
    BadUrl,
    /// A redirect without a usable `Location`.
    BadRedirect,
    /// The request (or the name lookup through a proxy) took too long.
    Timeout,
    /// The connection could not be made.
    ConnectError,
    /// The host name does not resolve.
    DnsError,
    /// The connection failed before a response came.
    ConnectionReset,
    /// Reading or decoding the body failed.
    BodyError,
}

impl FailKind {
    /// The stable drop-reason token.
    pub fn reason(self) -> &'static str {
        match self {
            FailKind::ForbiddenAddress => "forbidden_address",
            FailKind::TooManyRedirects => "too_many_redirects",
            FailKind::RedirectLoop => "redirect_loop",
            FailKind::BadUrl => "bad_url",
            FailKind::BadRedirect => "bad_redirect",
            FailKind::Timeout => "timeout",
            FailKind::ConnectError => "connect_error",
            FailKind::DnsError => "dns_error",
            FailKind::ConnectionReset => "connection_reset",
            FailKind::BodyError => "body_error",
        }
    }

    /// Whether trying again later may succeed (timeouts and broken connections).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailKind::Timeout
                | FailKind::ConnectError
                | FailKind::ConnectionReset
                | FailKind::BodyError
        )
    }
}

/// A failed request: its kind (reason token), the URL of the hop that failed, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({url})")]
pub struct HttpError {
    pub kind: FailKind,
    pub url: String,
    pub message: String,
}

impl HttpError {
    fn new(kind: FailKind, url: &Url, message: impl Into<String>) -> Self {
        HttpError {
            kind,
            url: url.to_string(),
            message: message.into(),
        }
    }

    /// The stable drop-reason token.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// Classifies an error of `reqwest` (sending, or reading a body) for the request to `url`.
    pub fn from_reqwest(url: &Url, e: &reqwest::Error) -> Self {
        let msg = error_chain(e);
        let kind = if ForbiddenAddress::is_in(e) {
            FailKind::ForbiddenAddress
        } else if e.is_timeout() {
            FailKind::Timeout
        } else if e.is_connect() {
            if msg.contains("dns error") || msg.contains("failed to lookup") {
                FailKind::DnsError
            } else {
                FailKind::ConnectError
            }
        } else if e.is_body() || e.is_decode() {
            FailKind::BodyError
        } else {
            FailKind::ConnectionReset
        };
        HttpError::new(kind, url, msg)
    }
}

/// The error and its sources, joined (a source whose text the message already holds is left out).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Settings of an [`HttpClient`].
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// The `User-Agent` header. Default [`DEFAULT_USER_AGENT`].
    pub user_agent: String,
    /// Limit on a whole request (per hop), body included. `None`: no limit. Default 30 s.
    pub timeout: Option<Duration>,
    /// Limit on making a connection (and, through a proxy, on resolving a name). Default 10 s.
    pub connect_timeout: Duration,
    /// Lift the address rules (the pipeline's `allow_private_networks`). Default false.
    pub allow_private: bool,
    /// The proxy every request goes through (`[pipeline] proxy`): an `http://` or `https://` URL.
    pub proxy: Option<String>,
    /// Host name -> address overrides of this client, for servers the stage runs itself (the
    /// crawl's `demo_site`): trusted, so the address rules do not apply to these addresses (they
    /// do to everything else, and to the process-wide [`crate::net::override_host`] table). The
    /// port is used when an URL names none.
    pub overrides: Vec<(String, SocketAddr)>,
    /// Idle connections kept per host. Default 2.
    pub pool_max_idle_per_host: usize,
    /// How long an idle connection is kept. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// Ask for and decode gzip, brotli and deflate bodies. Default true; off for file downloads
    /// that resume with `Range` or must keep the bytes as sent.
    pub decompress: bool,
    /// PEM certificates trusted besides the Mozilla roots, for servers and `https://` proxies
    /// (a TLS-intercepting proxy's CA, a test CA). Default none.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            user_agent: DEFAULT_USER_AGENT.into(),
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            allow_private: false,
            proxy: None,
            overrides: Vec::new(),
            pool_max_idle_per_host: 2,
            pool_idle_timeout: Duration::from_secs(60),
            decompress: true,
            extra_root_certificates: Vec::new(),
        }
    }
}

type DnsCache = Arc<Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>>;

/// [`GuardedResolver`] behind this client's overrides and a shared cache of allowed answers.
#[derive(Clone)]
struct Resolver {
    allow_private: bool,
    overrides: Arc<Vec<(String, SocketAddr)>>,
    cache: DnsCache,
}

impl Resolver {
    async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, std::io::Error> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some((t, addrs)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host)
            && t.elapsed() < DNS_TTL
        {
            return Ok(addrs.clone());
        }
        let own = self
            .overrides
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(&host))
            .map(|(_, a)| *a);
        let addrs = match own {
            // the stage's own server (see `HttpSettings::overrides`)
            Some(a) => vec![a],
            None => {
                GuardedResolver {
                    allow_private: self.allow_private,
                }
                .lookup(&host)
                .await?
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host, (Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await.map_err(|e| {
                // hand the typed refusal to reqwest so that it can be found in the error chain
                match e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<ForbiddenAddress>())
                {
                    Some(f) => Box::new(f.clone()) as Box<dyn std::error::Error + Send + Sync>,
                    None => Box::new(e),
                }
            })?;
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The response of the last hop and its URL.
#[derive(Debug)]
pub struct Followed {
    pub response: reqwest::Response,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// Redirects followed.
    pub redirects: usize,
}

/// The guarded client. Cloning is cheap (connections, DNS cache shared).
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    resolver: Resolver,
    allow_private: bool,
    proxy: Option<Url>,
    /// `https://` through the proxy (module docs).
    tunnels: Option<Arc<crate::tunnel::Tunnels>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("allow_private", &self.allow_private)
            .field("proxy", &self.proxy.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be requested before any name is resolved: http(s) with a host, not an IP
/// literal the address rules forbid, not `localhost` (unless `allow_private`).
pub fn check_target(url: &Url, allow_private: bool) -> Result<(), HttpError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::new(
            FailKind::BadUrl,
            url,
            format!("not an http(s) URL (scheme `{}`)", url.scheme()),
        ));
    }
    let host = match url.host() {
        Some(Host::Domain("")) | None => {
            return Err(HttpError::new(FailKind::BadUrl, url, "the URL has no host"));
        }
        Some(h) => h,
    };
    if allow_private {
        return Ok(());
    }
    let literal = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            if d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
            {
                return Err(HttpError::new(
                    FailKind::ForbiddenAddress,
                    url,
                    format!(
                        "{d} is a loopback name, not a public address; set allow_private_networks = true to allow it"
                    ),
                ));
            }
            None
        }
    };
    if let Some(ip) = literal
        && is_forbidden(&ip)
    {
        return Err(HttpError::new(
            FailKind::ForbiddenAddress,
            url,
            format!("{ip} is not a public address; set allow_private_networks = true to allow it"),
        ));
    }
    Ok(())
}

/// The redirect `resp` (the answer to `from`) asks for: `None` when it is not a 301, 302, 303,
/// 307 or 308; a `bad_redirect` error when its `Location` is missing or not an URL. The target
/// itself is checked when it is requested.
pub fn redirect_target(from: &Url, resp: &reqwest::Response) -> Option<Result<Url, HttpError>> {
    if !is_redirect(resp.status()) {
        return None;
    }
    let status = resp.status().as_u16();
    Some(
        resp.headers()
            .get(reqwest::header::LOCATION)
            .ok_or_else(|| {
                HttpError::new(
                    FailKind::BadRedirect,
                    from,
                    format!("HTTP {status} without Location"),
                )
            })
            .and_then(|l| {
                let l = String::from_utf8_lossy(l.as_bytes());
                from.join(l.trim()).map_err(|e| {
                    HttpError::new(
                        FailKind::BadRedirect,
                        from,
                        format!("HTTP {status} to a bad Location `{l}`: {e}"),
                    )
                })
            }),
    )
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl HttpClient {
    /// Builds the client; a bad proxy URL is a configuration error.
    pub fn new(s: &HttpSettings) -> openwit_core::Result<Self> {
        let proxy = match &s.proxy {
            Some(p) => Some(openwit_core::pipeline::parse_proxy(p).map_err(|e| {
                openwit_core::Error::Config(format!(
                    "{e}\n  fix: correct `proxy` in the [pipeline] table"
                ))
            })?),
            None => None,
        };
        let resolver = Resolver {
            allow_private: s.allow_private,
            overrides: Arc::new(s.overrides.clone()),
            cache: Default::default(),
        };
        let mut roots = Vec::new();
        for pem in &s.extra_root_certificates {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                openwit_core::Error::Config(format!("a trusted certificate is not PEM: {e}"))
            })?;
            if certs.is_empty() {
                return Err(openwit_core::Error::Config(
                    "a trusted certificate file holds no PEM certificate".into(),
                ));
            }
            roots.extend(certs);
        }
        let builder = || {
            let mut b = crate::net::without_env_proxies(reqwest::Client::builder())
                .user_agent(&s.user_agent)
                .connect_timeout(s.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(s.pool_max_idle_per_host)
                .pool_idle_timeout(s.pool_idle_timeout)
                .tcp_nodelay(true)
                .gzip(s.decompress)
                .brotli(s.decompress)
                .deflate(s.decompress);
            for c in &roots {
                b = b.add_root_certificate(c.clone());
            }
            match s.timeout {
                Some(t) => b.timeout(t),
                None => b,
            }
        };
        let tunnels = match &proxy {
            Some(p) => Some(Arc::new(
                crate::tunnel::Tunnels::new(
                    p,
                    builder(),
                    s.connect_timeout,
                    &s.extra_root_certificates,
                )
                .map_err(openwit_core::Error::Stage)?,
            )),
            None => None,
        };
        let mut b = builder();
        b = match &proxy {
            // names are resolved by `send_once` before the request goes to the proxy; the only
            // name reqwest resolves itself is the proxy's, which the address rules do not cover
            Some(p) => b.proxy(reqwest::Proxy::all(p.as_str()).map_err(|e| {
                openwit_core::Error::Config(format!(
                    "proxy `{p}`: {e}\n  fix: correct `proxy` in the [pipeline] table"
                ))
            })?),
            None => b.dns_resolver(Arc::new(resolver.clone())),
        };
        let client = b.build().map_err(|e| {
            openwit_core::Error::Stage(format!("cannot build the HTTP client: {e}"))
        })?;
        Ok(HttpClient {
            client,
            resolver,
            allow_private: s.allow_private,
            proxy,
            tunnels,
            connect_timeout: s.connect_timeout,
        })
    }

    /// Whether the address rules are lifted.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The proxy, when one is configured.
    pub fn proxy(&self) -> Option<&Url> {
        self.proxy.as_ref()
    }

    /// Resolves `host` with the address rules (overrides, cache, guarded resolver).
    async fn resolve_checked(&self, url: &Url, host: &str) -> Result<SocketAddr, HttpError> {
        let looked = tokio::time::timeout(self.connect_timeout, self.resolver.lookup(host)).await;
        let addrs = match looked {
            Err(_) => {
                return Err(HttpError::new(
                    FailKind::Timeout,
                    url,
                    format!("resolving {host} took over {:?}", self.connect_timeout),
                ));
            }
            Ok(Err(e)) => {
                let kind = if ForbiddenAddress::is_in(&e) {
                    FailKind::ForbiddenAddress
                } else {
                    FailKind::DnsError
                };
                return Err(HttpError::new(kind, url, error_chain(&e)));
            }
            Ok(Ok(a)) => a,
        };
        // one address goes to the proxy: IPv4 first, which every proxy can reach
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| HttpError::new(FailKind::DnsError, url, format!("{host}: no address")))
    }

    /// Sends one GET to `url` (no redirect is followed) after the address checks; `build` adds
    /// headers to the request. Through a proxy, the name is resolved and checked here first (see
    /// the module documentation).
    pub async fn send_once<F>(&self, url: &Url, build: F) -> Result<reqwest::Response, HttpError>
    where
        F: FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    {
        check_target(url, self.allow_private)?;
        let mut tunnel = None;
        let req = match (&self.proxy, url.host()) {
            (Some(_), Some(Host::Domain(name))) => {
                let addr = self.resolve_checked(url, name).await?;
                if url.scheme() == "https"
                    && let Some(t) = &self.tunnels
                {
                    // the proxy tunnels to the checked address; TLS names the server
                    let port = match url.port() {
                        None if addr.port() != 0 => addr.port(),
                        _ => url.port_or_known_default().unwrap_or(443),
                    };
                    let dest = SocketAddr::new(addr.ip(), port);
                    let local = t.local_for(dest).await.map_err(|e| {
                        HttpError::new(
                            FailKind::ConnectError,
                            url,
                            format!("cannot open a local tunnel listener: {e}"),
                        )
                    })?;
                    let mut target = url.clone();
                    let _ = target.set_port(Some(local.port()));
                    let authority = match url.port() {
                        Some(p) => format!("{name}:{p}"),
                        None => name.to_string(),
                    };
                    tunnel = Some((t, dest));
                    t.client()
                        .get(target)
                        .header(reqwest::header::HOST, authority)
                } else if url.scheme() == "http" {
                    // the proxy gets the checked address, the server its name
                    let mut target = url.clone();
                    let authority = match url.port() {
                        Some(p) => format!("{name}:{p}"),
                        None => name.to_string(),
                    };
                    if target.set_ip_host(addr.ip()).is_err() {
                        return Err(HttpError::new(
                            FailKind::BadUrl,
                            url,
                            "cannot address this URL by IP",
                        ));
                    }
                    if url.port().is_none() && addr.port() != 0 {
                        let _ = target.set_port(Some(addr.port()));
                    }
                    self.client
                        .get(target)
                        .header(reqwest::header::HOST, authority)
                } else {
                    self.client.get(url.clone())
                }
            }
            _ => self.client.get(url.clone()),
        };
        build(req).send().await.map_err(|e| {
            let mut err = HttpError::from_reqwest(url, &e);
            // the tunnel closed the connection: say why the proxy did not open it
            if let Some((t, dest)) = tunnel
                && let Some(why) = t.failure(dest)
                && err.kind != FailKind::Timeout
            {
                err.kind = FailKind::ConnectError;
                err.message = why;
            }
            err
        })
    }

    /// GET `url`, following redirects by hand: every hop is checked like the first request,
    /// `build(hop, request)` builds each hop's request. Returns the first response that is not a
    /// followed redirect (any status) and its URL.
    pub async fn get<F>(&self, url: &Url, mut build: F) -> Result<Followed, HttpError>
    where
        F: FnMut(&Url, reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    {
        let mut seen: Vec<Url> = vec![url.clone()];
        let mut cur = url.clone();
        loop {
            let resp = self.send_once(&cur, |r| build(&cur, r)).await?;
            let next = match redirect_target(&cur, &resp) {
                None => {
                    return Ok(Followed {
                        response: resp,
                        url: cur,
                        redirects: seen.len() - 1,
                    });
                }
                Some(next) => next?,
            };
            if seen.len() > MAX_REDIRECTS {
                return Err(HttpError::new(
                    FailKind::TooManyRedirects,
                    &cur,
                    format!("more than {MAX_REDIRECTS} redirects"),
                ));
            }
            if seen.contains(&next) {
                return Err(HttpError::new(
                    FailKind::RedirectLoop,
                    &cur,
                    format!("redirect loop back to {next}"),
                ));
            }
            seen.push(next.clone());
            cur = next;
        }
    }
}

/// Reads `resp`'s body up to `cap` bytes: (bytes, whether it was cut at `cap`).
pub async fn read_capped(
    url: &Url,
    mut resp: reqwest::Response,
    cap: u64,
) -> Result<(Vec<u8>, bool), HttpError> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError::from_reqwest(url, &e))?
    {
        let room = cap - buf.len();
        if chunk.len() >= room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// What a host's robots.txt says, before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotsTxt {
    /// A 2xx answer: the file (at most [`MAX_ROBOTS_BYTES`]).
    Body(Vec<u8>),
    /// No usable file (4xx other than 429, too many redirects): everything is allowed.
    AllowAll,
    /// The host is unreachable (429, 5xx, connection errors): nothing is allowed.
    DisallowAll,
}

impl RobotsTxt {
    /// The rules for the product token `token`.
    pub fn rules(&self, token: &str) -> Robots {
        match self {
            RobotsTxt::Body(b) => Robots::parse_bytes(b, token),
            RobotsTxt::AllowAll => Robots::allow_all(),
            RobotsTxt::DisallowAll => Robots::disallow_all(),
        }
    }
}

/// Fetches the robots.txt of `url`'s origin through `client` (redirects followed like any
/// request). An error only when the host itself cannot be used: its address is forbidden
/// (`forbidden_address`) or its name does not resolve (`dns_error`).
pub async fn fetch_robots(client: &HttpClient, url: &Url) -> Result<RobotsTxt, HttpError> {
    let robots_url = url
        .join("/robots.txt")
        .map_err(|e| HttpError::new(FailKind::BadUrl, url, e.to_string()))?;
    let f = match client.get(&robots_url, |_, r| r).await {
        Ok(f) => f,
        Err(e) => {
            return match e.kind {
                FailKind::ForbiddenAddress | FailKind::DnsError => Err(e),
                // RFC 9309 2.3.1.2: after too many redirects the file may be taken as unavailable
                FailKind::TooManyRedirects
                | FailKind::RedirectLoop
                | FailKind::BadRedirect
                | FailKind::BadUrl => Ok(RobotsTxt::AllowAll),
                _ => {
                    tracing::debug!(url = %robots_url, error = %e, "robots.txt unreachable: disallowing the host");
                    Ok(RobotsTxt::DisallowAll)
                }
            };
        }
    };
    let status = f.response.status();
    if status.is_success() {
        return Ok(
            match read_capped(&f.url, f.response, MAX_ROBOTS_BYTES as u64).await {
                Ok((body, _)) => RobotsTxt::Body(body),
                Err(_) => RobotsTxt::DisallowAll,
            },
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Ok(RobotsTxt::DisallowAll);
    }
    if status.is_client_error() {
        return Ok(RobotsTxt::AllowAll);
    }
    // 1xx, a 3xx that is not a redirect: no file to read, and not a "not there" either
    Ok(RobotsTxt::DisallowAll)
}

type RobotsCell = Arc<OnceCell<Result<Arc<Robots>, HttpError>>>;

/// robots.txt rules per origin (scheme, host, port), each fetched once through the client by
/// [`fetch_robots`] and parsed for one product token.
pub struct RobotsCache {
    client: HttpClient,
    token: String,
    cells: Mutex<HashMap<String, RobotsCell>>,
}

impl RobotsCache {
    /// An empty cache fetching through `client`, matching groups for `token`.
    pub fn new(client: HttpClient, token: impl Into<String>) -> Self {
        RobotsCache {
            client,
            token: token.into(),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The rules for `url`'s origin (fetched on first use; concurrent callers wait for one
    /// fetch). An error when the host cannot be used (see [`fetch_robots`]); it is cached too.
    pub async fn get(&self, url: &Url) -> Result<Arc<Robots>, HttpError> {
        let origin = url.origin().ascii_serialization();
        let cell = self
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(origin)
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            fetch_robots(&self.client, url)
                .await
                .map(|t| Arc::new(t.rules(&self.token)))
        })
        .await
        .clone()
    }

    /// Whether `url` (path and query) may be fetched; errors as [`RobotsCache::get`].
    pub async fn allowed(&self, url: &Url) -> Result<bool, HttpError> {
        let rules = self.get(url).await?;
        Ok(rules.allowed(&path_and_query(url)))
    }

    /// Origins cached so far.
    pub fn len(&self) -> usize {
        self.cells.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The path and query of `url`, as robots.txt rules match them.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

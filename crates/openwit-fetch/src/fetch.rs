//! The download side of the one guarded HTTP client ([`openwit_http::HttpClient`]:
//! connection reuse, HTTP/1.1 and HTTP/2, gzip/brotli/deflate, the address rules on every hop,
//! at most 5 redirects, the optional `[pipeline] proxy`, robots.txt per origin through
//! [`RobotsCache`]), plus what only the download needs: a global and a per-host concurrency limit
//! with a per-host minimum delay, `X-Robots-Tag` opt-outs checked before the body is read, a body
//! cap enforced while streaming, a stall timeout between body chunks, and retries with
//! exponential backoff and jitter for timeouts, resets, 5xx and 429 (honouring `Retry-After`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use openwit_http::{HttpClient, HttpError, HttpSettings, RobotsCache, path_and_query};
use tokio::sync::Semaphore;
use url::Url;

use crate::config::Config;

/// A downloaded body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

/// Why a download failed: a stable reason token (counted) and a message (stored per row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFail {
    pub reason: &'static str,
    pub message: String,
}

fn ff(reason: &'static str, message: impl Into<String>) -> FetchFail {
    FetchFail {
        reason,
        message: message.into(),
    }
}

impl From<HttpError> for FetchFail {
    fn from(e: HttpError) -> Self {
        ff(e.reason(), e.to_string())
    }
}

enum Attempt {
    Retry(FetchFail, Option<Duration>),
    Final(FetchFail),
}

impl From<HttpError> for Attempt {
    fn from(e: HttpError) -> Self {
        if e.kind.is_transient() {
            Attempt::Retry(e.into(), None)
        } else {
            Attempt::Final(e.into())
        }
    }
}

struct Host {
    sem: Semaphore,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// The downloader shared by every shard of a run.
pub struct Fetcher {
    client: HttpClient,
    cfg: Arc<Config>,
    global: Semaphore,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    robots: RobotsCache,
}

impl Fetcher {
    /// Builds the client. `allow_private` lifts the address rules (tests, local demos);
    /// `cfg.proxy` is the pipeline's proxy.
    pub fn new(cfg: Arc<Config>, allow_private: bool) -> Result<Self, String> {
        let client = HttpClient::new(&HttpSettings {
            user_agent: cfg.user_agent.clone(),
            timeout: Some(Duration::from_secs_f64(cfg.timeout)),
            connect_timeout: Duration::from_secs_f64(cfg.connect_timeout),
            allow_private,
            proxy: cfg.proxy.clone(),
            overrides: Vec::new(),
            pool_max_idle_per_host: cfg.per_host_concurrency,
            pool_idle_timeout: Duration::from_secs(60),
            decompress: true,
            extra_root_certificates: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
        Ok(Fetcher {
            robots: RobotsCache::new(client.clone(), cfg.user_agent_token.clone()),
            client,
            global: Semaphore::new(cfg.concurrency),
            cfg,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    fn host(&self, key: &str) -> Arc<Host> {
        self.hosts
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Host {
                    sem: Semaphore::new(self.cfg.per_host_concurrency),
                    next: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// Downloads `url` under all the rules; a failure is a counted drop.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchFail> {
        let u = Url::parse(url).map_err(|e| ff("bad_url", format!("bad URL: {e}")))?;
        openwit_http::check_target(&u, self.client.allow_private())?;
        if self.cfg.respect_robots {
            // an error when the host itself cannot be used (forbidden or unresolvable)
            let robots = self.robots.get(&u).await?;
            if !robots.allowed(&path_and_query(&u)) {
                return Err(ff("robots_disallowed", "disallowed by robots.txt"));
            }
        }
        let key = format!(
            "{}:{}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        );
        let host = self.host(&key);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = {
                let _h = host.sem.acquire().await.expect("semaphore open");
                if self.cfg.per_host_delay > 0.0 {
                    let mut next = host.next.lock().await;
                    if let Some(t) = *next {
                        tokio::time::sleep_until(t).await;
                    }
                    *next = Some(
                        tokio::time::Instant::now()
                            + Duration::from_secs_f64(self.cfg.per_host_delay),
                    );
                }
                let _g = self.global.acquire().await.expect("semaphore open");
                self.once(&u).await
            };
            match res {
                Ok(bytes) => {
                    return Ok(Fetched {
                        bytes,
                        attempts: attempt,
                    });
                }
                Err(Attempt::Retry(f, after)) if attempt <= self.cfg.retries => {
                    let wait = after.unwrap_or_else(|| {
                        let base = self.cfg.backoff * 2f64.powi(attempt as i32 - 1);
                        Duration::from_secs_f64(base * (0.5 + rand::random::<f64>()))
                    });
                    tracing::debug!(%url, reason = f.reason, attempt, wait_s = wait.as_secs_f64(), "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(Attempt::Retry(f, _)) | Err(Attempt::Final(f)) => return Err(f),
            }
        }
    }

    async fn once(&self, u: &Url) -> Result<Vec<u8>, Attempt> {
        let resp = self.client.get(u, |_, r| r).await?.response;
        let status = resp.status();
        if !status.is_success() {
            let code = status.as_u16();
            let msg = format!("HTTP {code}");
            return Err(match code {
                404 => Attempt::Final(ff("http_404", msg)),
                410 => Attempt::Final(ff("http_410", msg)),
                429 | 500..=599 => {
                    let reason = if code == 429 { "http_429" } else { "http_5xx" };
                    match retry_after(resp.headers()) {
                        Some(d) if d.as_secs_f64() > self.cfg.max_retry_after => {
                            Attempt::Final(ff(
                                reason,
                                format!(
                                    "{msg} (Retry-After {}s is over max_retry_after)",
                                    d.as_secs()
                                ),
                            ))
                        }
                        after => Attempt::Retry(ff(reason, msg), after),
                    }
                }
                _ => Attempt::Final(ff("http_4xx", msg)),
            });
        }
        for v in resp.headers().get_all("x-robots-tag") {
            // bytes outside visible ASCII must not hide an opt-out
            let v = String::from_utf8_lossy(v.as_bytes());
            if opted_out(
                &v,
                &self.cfg.user_agent_token,
                &self.cfg.disallowed_header_directives,
            ) {
                return Err(Attempt::Final(ff(
                    "opted_out",
                    format!("X-Robots-Tag: {v}"),
                )));
            }
        }
        if let Some(ct) = resp.headers().get(reqwest::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if wrong_content_type(mime) {
                return Err(Attempt::Final(ff(
                    "wrong_content_type",
                    format!("Content-Type {mime} is not an image"),
                )));
            }
        }
        let max = self.cfg.max_body_bytes;
        if let Some(len) = resp.content_length()
            && len > max
        {
            return Err(Attempt::Final(ff(
                "too_large",
                format!("Content-Length {len} is over max_body_bytes {max}"),
            )));
        }
        let mut body =
            Vec::with_capacity(resp.content_length().unwrap_or(64 << 10).min(max) as usize);
        let mut stream = resp.bytes_stream();
        let stall = Duration::from_secs_f64(self.cfg.read_timeout);
        loop {
            match tokio::time::timeout(stall, stream.next()).await {
                Err(_) => {
                    return Err(Attempt::Retry(
                        ff(
                            "stalled",
                            format!(
                                "no body bytes for {}s after {} bytes",
                                self.cfg.read_timeout,
                                body.len()
                            ),
                        ),
                        None,
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    if e.is_timeout() {
                        return Err(Attempt::Retry(ff("timeout", format!("body: {e}")), None));
                    }
                    return Err(Attempt::Retry(
                        ff(
                            "reset_mid_body",
                            format!(
                                "connection failed after {} body bytes: {}",
                                body.len(),
                                openwit_http::error_chain(&e)
                            ),
                        ),
                        None,
                    ));
                }
                Ok(Some(Ok(chunk))) => {
                    if body.len() as u64 + chunk.len() as u64 > max {
                        return Err(Attempt::Final(ff(
                            "too_large",
                            format!("body over max_body_bytes {max}"),
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        if body.is_empty() {
            return Err(Attempt::Final(ff("empty_body", "zero-byte body")));
        }
        Ok(body)
    }
}

/// Content types that are certainly not images (others are sniffed from the bytes).
fn wrong_content_type(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
        || matches!(
            mime,
            "application/json"
                | "application/xml"
                | "application/xhtml+xml"
                | "application/javascript"
                | "application/pdf"
                | "application/zip"
                | "image/svg+xml"
        )
}

/// Whether one `X-Robots-Tag` value opts out for the product token `token`, read by
/// [`openwit_http::optout`] as Google documents it: comma-separated rules; rules after `agent:`
/// only for our token or `*`; `none` as `noindex, nofollow`; `unavailable_after: <date>` past the
/// clock's now ([`openwit_core::clock::output_time_s`]) as `noindex`. `disallowed` is the set
/// honoured (case-insensitive).
pub fn opted_out(value: &str, token: &str, disallowed: &[String]) -> bool {
    openwit_http::optout::Directives::from_header(value, token)
        .opt_out(disallowed, openwit_core::clock::output_time_s())
        .is_some()
}

/// `Retry-After`: delay-seconds or an IMF-fixdate.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = parse_http_date(v)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT` into Unix seconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_robots_tag_like_img2dataset() {
        let d: Vec<String> = ["noai", "noimageai", "noindex", "noimageindex"]
            .map(String::from)
            .to_vec();
        assert!(opted_out("noai", "openwit", &d));
        assert!(opted_out("nofollow, NoImageIndex", "openwit", &d));
        assert!(opted_out("OpenWIT: noindex", "openwit", &d));
        assert!(!opted_out("otherbot: noindex", "openwit", &d));
        // the header: `unavailable_after` is a date, not an agent
        assert!(opted_out(
            "noindex, unavailable_after: 25 Jun 2010 15:00:00 PST",
            "openwit",
            &d
        ));
        assert!(opted_out(
            "unavailable_after: 25 Jun 2010 15:00:00 PST",
            "openwit",
            &d
        ));
        assert!(!opted_out(
            "unavailable_after: 25 Jun 9999 15:00:00 PST",
            "openwit",
            &d
        ));
        assert!(opted_out("none", "openwit", &d), "none means noindex");
        assert!(opted_out("*: noai", "OpenWIT/1.0", &d));
        assert!(!opted_out("otherbot: noai, nofollow", "openwit", &d));
        assert!(!opted_out("nofollow", "openwit", &d));
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}

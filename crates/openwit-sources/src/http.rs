//! The HTTP client shared by the crawler and the WARC reader: a user agent naming the tool and a
//! contact URL, timeouts, names resolved through [`openwit_core::net::GuardedResolver`], IP
//! literals checked with [`openwit_core::net::is_forbidden`], redirects followed by hand (at
//! most [`MAX_REDIRECTS`]) so that every hop is re-checked by the caller.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use openwit_core::net::{ForbiddenAddress, GuardedResolver, is_forbidden};
use url::{Host, Url};

/// The default user agent: the tool, its version and where to learn about it / complain.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "openwit/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/openwit/openwit; image-text dataset builder; honours robots.txt, noai and noimageai)"
);

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub user_agent: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub allow_private_networks: bool,
    /// Host name -> socket address overrides (the demo site's virtual host).
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            user_agent: DEFAULT_USER_AGENT.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            allow_private_networks: false,
            resolve: Vec::new(),
        }
    }
}

/// Builds a client that never follows redirects itself.
pub fn client(opts: &HttpOptions) -> Result<reqwest::Client, crate::SourcesError> {
    let mut b = openwit_core::net::without_env_proxies(reqwest::Client::builder())
        .user_agent(&opts.user_agent)
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: opts.allow_private_networks,
        }))
        .pool_max_idle_per_host(2);
    for (host, addr) in &opts.resolve {
        b = b.resolve(host, *addr);
    }
    b.build()
        .map_err(|e| crate::SourcesError::Http(format!("cannot build the HTTP client: {e}")))
}

/// Whether `url`'s host is an IP literal that the address rules forbid.
pub fn forbidden_literal(url: &Url, allow_private: bool) -> bool {
    if allow_private {
        return false;
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => is_forbidden(&IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_forbidden(&IpAddr::V6(ip)),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"),
        None => true,
    }
}

/// Why a request failed, as a drop reason.
pub fn failure_reason(e: &reqwest::Error) -> &'static str {
    if ForbiddenAddress::is_in(e) {
        "forbidden_address"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect_error"
    } else if e.is_body() || e.is_decode() {
        "body_error"
    } else {
        "http_error"
    }
}

/// A blocking `Read` over a remote file, streamed on the tokio runtime (bounded buffer), with
/// redirects followed by hand and each hop checked against the address rules.
pub struct RemoteReader {
    rx: std::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    cur: bytes::Bytes,
    done: bool,
}

impl RemoteReader {
    pub fn open(
        rt: &tokio::runtime::Runtime,
        client: &reqwest::Client,
        url: &str,
        allow_private: bool,
    ) -> Result<Self, crate::SourcesError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(32);
        let client = client.clone();
        let first =
            Url::parse(url).map_err(|e| crate::SourcesError::Input(format!("{url}: {e}")))?;
        let resp = rt.block_on(async move {
            let mut url = first;
            for _ in 0..=MAX_REDIRECTS {
                if forbidden_literal(&url, allow_private) {
                    return Err(format!(
                        "{url}: address not allowed (set allow_private_networks = true to allow it)"
                    ));
                }
                let r = client
                    .get(url.clone())
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                if r.status().is_redirection() {
                    let loc = r
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .ok_or_else(|| format!("{url}: redirect without Location"))?;
                    url = url
                        .join(loc)
                        .map_err(|e| format!("{url}: bad redirect: {e}"))?;
                    continue;
                }
                if !r.status().is_success() {
                    return Err(format!("{url}: HTTP {}", r.status()));
                }
                return Ok(r);
            }
            Err(format!("{url}: more than {MAX_REDIRECTS} redirects"))
        });
        let mut resp = resp.map_err(crate::SourcesError::Http)?;
        rt.spawn(async move {
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        let tx = tx.clone();
                        // the blocking send runs off the async workers
                        let sent =
                            tokio::task::spawn_blocking(move || tx.send(Ok(c)).is_ok()).await;
                        if !matches!(sent, Ok(true)) {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.try_send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(RemoteReader {
            rx,
            cur: bytes::Bytes::new(),
            done: false,
        })
    }
}

impl std::io::Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e));
                }
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

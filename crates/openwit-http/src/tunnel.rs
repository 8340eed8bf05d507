//! `https://` through the configured proxy without a second name resolution.
//!
//! A `CONNECT` tunnel does not have to name the host: the proxy only needs an address to connect
//! to, and TLS carries the server's name itself (SNI, and the certificate check). reqwest's own
//! proxy support sends `CONNECT name:port`, which lets the proxy resolve the name again after it
//! was checked here (a DNS-rebinding window). So [`HttpClient`](crate::client::HttpClient) does
//! not hand `https://` requests to reqwest's proxy support. For each checked target address it
//! opens a listener on 127.0.0.1 ([`Tunnels::local_for`]); every connection accepted there is
//! forwarded through the proxy with `CONNECT <checked ip>:<port>`. The request goes to the
//! original URL with its port replaced by the listener's, on a client whose only resolver
//! answers 127.0.0.1 (the [`Tunnels::client`]), and with the original authority as `Host`: TLS
//! then runs end to end with the server under its own name, and the proxy never sees the name.
//!
//! Listeners are kept per target address (their connections pooled by the client), at most
//! [`MAX_LISTENERS`] (the oldest is closed first; its open connections carry on). A listener
//! lives on the tokio runtime that first asked for it and is made again when that runtime is gone.
//! Why the proxy refused a tunnel (its status line, or the connection error) is kept per target
//! and put in the request's error.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// Listeners kept open at most (one per target address).
pub const MAX_LISTENERS: usize = 256;

/// The longest proxy answer to `CONNECT` read (status line and headers).
const MAX_CONNECT_REPLY: usize = 16 * 1024;

/// The local tunnels to targets through one proxy.
pub(crate) struct Tunnels {
    /// Sends the tunnelled requests: resolves every name to 127.0.0.1, no proxy, HTTP/1.1 (so
    /// that the `Host` header names the server).
    client: reqwest::Client,
    shared: Arc<Shared>,
    listeners: Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    by_target: HashMap<SocketAddr, (SocketAddr, tokio::task::AbortHandle)>,
    order: VecDeque<SocketAddr>,
}

struct Shared {
    proxy_host: String,
    proxy_port: u16,
    /// TLS to the proxy itself (an `https://` proxy).
    tls: Option<tokio_rustls::TlsConnector>,
    /// `Proxy-Authorization` from the proxy URL's user and password.
    auth: Option<String>,
    connect_timeout: Duration,
    /// Why the last tunnel to a target failed.
    failures: Mutex<HashMap<SocketAddr, String>>,
}

/// The resolver of the tunnel client: every name is the local end of a tunnel.
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            let it: reqwest::dns::Addrs =
                Box::new(std::iter::once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))));
            Ok(it)
        })
    }
}

impl Tunnels {
    /// Tunnels through `proxy` (an `http://` or `https://` URL checked by
    /// [`parse_proxy`](openwit_core::pipeline::parse_proxy)); `builder` carries the request settings
    /// (user agent, timeouts, decompression, pool), and gets this module's resolver.
    pub(crate) fn new(
        proxy: &Url,
        builder: reqwest::ClientBuilder,
        connect_timeout: Duration,
        extra_roots: &[Vec<u8>],
    ) -> Result<Tunnels, String> {
        let client = builder
            .dns_resolver(Arc::new(Loopback))
            .http1_only()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let proxy_host = proxy
            .host_str()
            .ok_or("the proxy has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let proxy_port = proxy.port_or_known_default().unwrap_or(80);
        let tls = if proxy.scheme() == "https" {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for pem in extra_roots {
                for c in CertificateDer::pem_slice_iter(pem) {
                    let c = c.map_err(|e| format!("a trusted certificate is not PEM: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("a trusted certificate is not usable: {e}"))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        let auth = (!proxy.username().is_empty()).then(|| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let creds = format!(
                "{}:{}",
                dec(proxy.username()),
                dec(proxy.password().unwrap_or(""))
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            )
        });
        Ok(Tunnels {
            client,
            shared: Arc::new(Shared {
                proxy_host,
                proxy_port,
                tls,
                auth,
                connect_timeout,
                failures: Mutex::default(),
            }),
            listeners: Mutex::default(),
        })
    }

    /// The client that sends requests into the tunnels.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The local address whose connections are tunnelled to `target` (a checked address).
    pub(crate) async fn local_for(&self, target: SocketAddr) -> std::io::Result<SocketAddr> {
        {
            let l = self.listeners.lock().unwrap();
            if let Some((local, h)) = l.by_target.get(&target)
                && !h.is_finished()
            {
                return Ok(*local);
            }
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local = listener.local_addr()?;
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, peer)) = listener.accept().await else {
                    continue;
                };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let shared = shared.clone();
                tokio::spawn(async move { shared.forward(conn, target).await });
            }
        });
        let mut l = self.listeners.lock().unwrap();
        // Another request to the same target may have opened one meanwhile: keep that one, so
        // that no request is left connecting to a listener closed under it.
        if let Some((theirs, h)) = l.by_target.get(&target)
            && !h.is_finished()
        {
            task.abort();
            return Ok(*theirs);
        }
        if let Some((_, old)) = l.by_target.insert(target, (local, task.abort_handle())) {
            old.abort();
        }
        l.order.retain(|t| *t != target);
        l.order.push_back(target);
        while l.order.len() > MAX_LISTENERS {
            if let Some(t) = l.order.pop_front()
                && let Some((_, h)) = l.by_target.remove(&t)
            {
                h.abort();
            }
        }
        Ok(local)
    }

    /// Why the last tunnel to `target` could not be opened, if it could not.
    pub(crate) fn failure(&self, target: SocketAddr) -> Option<String> {
        self.shared.failures.lock().unwrap().get(&target).cloned()
    }
}

impl Drop for Tunnels {
    fn drop(&mut self) {
        if let Ok(l) = self.listeners.lock() {
            for (_, h) in l.by_target.values() {
                h.abort();
            }
        }
    }
}

impl Shared {
    /// Forwards `conn` to `target` through the proxy, or closes it (the reason kept).
    async fn forward(&self, mut conn: TcpStream, target: SocketAddr) {
        let opened = tokio::time::timeout(self.connect_timeout, self.open(target)).await;
        let mut up = match opened {
            Ok(Ok(up)) => {
                self.failures.lock().unwrap().remove(&target);
                up
            }
            Ok(Err(e)) => {
                tracing::debug!(%target, error = %e, "proxy tunnel failed");
                self.failures.lock().unwrap().insert(target, e);
                return;
            }
            Err(_) => {
                let e = format!(
                    "the proxy did not open a tunnel to {target} within {:?}",
                    self.connect_timeout
                );
                self.failures.lock().unwrap().insert(target, e);
                return;
            }
        };
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
    }

    /// A stream to `target` through the proxy.
    async fn open(&self, target: SocketAddr) -> Result<Box<dyn Stream>, String> {
        let proxy = format!("{}:{}", self.proxy_host, self.proxy_port);
        let tcp = TcpStream::connect((self.proxy_host.as_str(), self.proxy_port))
            .await
            .map_err(|e| format!("cannot connect to the proxy {proxy}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut s: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.proxy_host.clone())
                    .map_err(|e| format!("proxy host {}: {e}", self.proxy_host))?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS with the proxy {proxy}: {e}"))?,
                )
            }
        };
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &self.auth {
            req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("proxy {proxy}: {e}"))?;
        let head = read_head(&mut s)
            .await
            .map_err(|e| format!("proxy {proxy}: {e}"))?;
        let status_line = head.lines().next().unwrap_or("").trim().to_string();
        let code = status_line.split(' ').nth(1).unwrap_or("");
        if !code.starts_with('2') || code.len() != 3 {
            return Err(format!(
                "the proxy {proxy} refused CONNECT {target}: {status_line}"
            ));
        }
        Ok(s)
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads the proxy's answer up to the blank line, byte by byte (nothing of the tunnel's own
/// bytes is consumed).
async fn read_head(s: &mut Box<dyn Stream>) -> Result<String, String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_CONNECT_REPLY {
            return Err(format!("answer to CONNECT over {MAX_CONNECT_REPLY} bytes"));
        }
        match s.read(&mut b).await {
            Ok(0) => return Err("closed the connection during CONNECT".into()),
            Ok(_) => head.push(b[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

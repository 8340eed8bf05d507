//! A loopback HTTP/1.1 server with fault injection, for tests.
//!
//! ```
//! use openwit_testkit::{TestServer, Response, Fault};
//! let server = TestServer::start();
//! server.route("/a.html", Response::html("<p>hi</p>"));
//! server.route("/slow", Response::bytes("image/jpeg", vec![1; 1000]).fault(Fault::SlowBody { chunk: 100, every_ms: 5 }));
//! server.handler("/gen/", |req| Response::text(&format!("you asked for {}", req.path)));
//! assert!(server.url("/a.html").starts_with("http://127.0.0.1:"));
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault injected into a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// No fault.
    None,
    /// Wait before sending anything.
    Delay { ms: u64 },
    /// Send the body `chunk` bytes at a time, pausing between chunks.
    SlowBody { chunk: usize, every_ms: u64 },
    /// Send the headers and the first `bytes` of the body, then reset the connection (RST).
    ResetAfter { bytes: usize },
    /// Send the headers, then send nothing for `ms` (then close).
    StallAfterHeaders { ms: u64 },
    /// Announce the full Content-Length but send only `bytes` of the body, then close cleanly.
    Truncate { bytes: usize },
    /// Close the connection without answering.
    Close,
}

/// An HTTP response to serve.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub fault: Fault,
}

impl Response {
    /// 200 with a body and content type.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            fault: Fault::None,
        }
    }
    /// 200 `text/html; charset=utf-8`.
    pub fn html(body: &str) -> Self {
        Self::bytes("text/html; charset=utf-8", body.as_bytes())
    }
    /// 200 `text/plain`.
    pub fn text(body: &str) -> Self {
        Self::bytes("text/plain; charset=utf-8", body.as_bytes())
    }
    /// An empty response with this status.
    pub fn status(code: u16) -> Self {
        Response {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
            fault: Fault::None,
        }
    }
    /// A redirect (301, 302, 307, 308) to `location`.
    pub fn redirect(code: u16, location: &str) -> Self {
        Self::status(code).header("Location", location)
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Sets the status code.
    pub fn with_status(mut self, code: u16) -> Self {
        self.status = code;
        self
    }
    /// Injects a fault.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// Which connection it came on (connections are numbered from 0).
    pub connection: usize,
    /// When it arrived, relative to the server's start.
    pub at: Duration,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

#[derive(Default)]
struct Routes {
    exact: HashMap<String, Response>,
    prefixes: Vec<(String, Handler)>,
    dirs: Vec<(String, PathBuf)>,
}

struct Shared {
    routes: Mutex<Routes>,
    log: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    connections: AtomicUsize,
    started: Instant,
}

/// A running test server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 and a free port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1".parse().unwrap())
    }

    /// Starts a server on `ip` (any 127.x.y.z works on Linux: use several to simulate hosts).
    pub fn start_on(ip: IpAddr) -> Self {
        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
            log: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            started: Instant::now(),
        });
        let std_listener =
            std::net::TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a loopback port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("testserver-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            acc = listener.accept() => {
                                if let Ok((stream, _)) = acc {
                                    let sh = sh.clone();
                                    tokio::spawn(async move { let _ = serve_conn(stream, sh).await; });
                                }
                            }
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .unwrap();
        TestServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Serves `resp` for requests whose path (with query) is exactly `path`.
    pub fn route(&self, path: &str, resp: Response) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .exact
            .insert(path.to_string(), resp);
    }

    /// Serves paths starting with `prefix` by calling `f` (generated content).
    pub fn handler(&self, prefix: &str, f: impl Fn(&Request) -> Response + Send + Sync + 'static) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .prefixes
            .push((prefix.to_string(), Arc::new(f)));
    }

    /// Serves files under `dir` at `prefix` (content type from the extension).
    pub fn serve_dir(&self, prefix: &str, dir: impl Into<PathBuf>) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .dirs
            .push((prefix.to_string(), dir.into()));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests were received for `path` (exact, with query).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// The most requests this server was answering at the same time.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn content_type_for(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "json" => "application/json",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

fn lookup(shared: &Shared, req: &Request) -> Response {
    let routes = shared.routes.lock().unwrap();
    if let Some(r) = routes.exact.get(&req.path) {
        return r.clone();
    }
    let path_only = req.path.split('?').next().unwrap_or("");
    if let Some(r) = routes.exact.get(path_only) {
        return r.clone();
    }
    for (prefix, h) in &routes.prefixes {
        if req.path.starts_with(prefix.as_str()) {
            let h = h.clone();
            drop(routes);
            return h(req);
        }
    }
    for (prefix, dir) in &routes.dirs {
        if let Some(rest) = path_only.strip_prefix(prefix.as_str()) {
            if rest.split('/').any(|c| c == "..") {
                return Response::status(403);
            }
            let p = dir.join(rest.trim_start_matches('/'));
            if let Ok(body) = std::fs::read(&p) {
                return Response::bytes(content_type_for(rest), body);
            }
        }
    }
    Response::status(404).header("Content-Type", "text/plain")
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn serve_conn(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let conn = shared.connections.fetch_add(1, Ordering::SeqCst);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let (req, head_len, body_len, keep_alive) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut map = HashMap::new();
                    for h in parsed.headers.iter() {
                        map.insert(
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        );
                    }
                    let body_len = map
                        .get("content-length")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    let keep_alive = !map
                        .get("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                        && parsed.version == Some(1);
                    let req = Request {
                        method: parsed.method.unwrap_or("GET").to_string(),
                        path: parsed.path.unwrap_or("/").to_string(),
                        headers: map,
                        connection: conn,
                        at: shared.started.elapsed(),
                    };
                    break (req, n, body_len, keep_alive);
                }
                Ok(httparse::Status::Partial) => {
                    let mut chunk = [0u8; 4096];
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Err(_) => {
                    stream
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await?;
                    return Ok(());
                }
            }
        };
        // Skip a request body.
        while buf.len() < head_len + body_len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_len + body_len);

        shared.log.lock().unwrap().push(req.clone());
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        let resp = lookup(&shared, &req);
        let result = write_response(&mut stream, &req, &resp, keep_alive).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(true) => continue,
            Ok(false) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Writes a response; returns whether the connection can be reused.
async fn write_response(
    stream: &mut TcpStream,
    req: &Request,
    resp: &Response,
    keep_alive: bool,
) -> std::io::Result<bool> {
    use tokio::time::sleep;
    if let Fault::Delay { ms } = resp.fault {
        sleep(Duration::from_millis(ms)).await;
    }
    if resp.fault == Fault::Close {
        return Ok(false);
    }
    let body: &[u8] = if req.method == "HEAD" {
        &[]
    } else {
        &resp.body
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let mut has_len = false;
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") {
            has_len = true;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    let reuse = keep_alive
        && matches!(
            resp.fault,
            Fault::None | Fault::Delay { .. } | Fault::SlowBody { .. }
        );
    head.push_str(if reuse {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    stream.write_all(head.as_bytes()).await?;
    match resp.fault {
        Fault::SlowBody { chunk, every_ms } => {
            for part in body.chunks(chunk.max(1)) {
                stream.write_all(part).await?;
                stream.flush().await?;
                sleep(Duration::from_millis(every_ms)).await;
            }
        }
        Fault::ResetAfter { bytes } => {
            stream.write_all(&body[..bytes.min(body.len())]).await?;
            stream.flush().await?;
            // A zero linger time makes the close send RST instead of FIN.
            reset_on_close(stream)?;
            return Ok(false);
        }
        Fault::StallAfterHeaders { ms } => {
            stream.flush().await?;
            sleep(Duration::from_millis(ms)).await;
            return Ok(false);
        }
        Fault::Truncate { bytes } => {
            stream.write_all(&body[..bytes.min(body.len())]).await?;
            stream.flush().await?;
            return Ok(false);
        }
        _ => {
            stream.write_all(body).await?;
        }
    }
    stream.flush().await?;
    Ok(reuse)
}

/// Sets SO_LINGER to zero so that closing the socket resets the connection.
fn reset_on_close(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_zero_linger()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(server: &TestServer, path: &str) -> (String, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(out.len());
        (
            text[..split.min(text.len())].to_string(),
            out[split..].to_vec(),
        )
    }

    #[test]
    fn routes_handlers_dirs_and_404() {
        let server = TestServer::start();
        server.route("/a", Response::html("<b>a</b>"));
        server.handler("/gen/", |r| Response::text(&r.path));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.jpg"), b"jpegbytes").unwrap();
        server.serve_dir("/files/", dir.path());
        let (h, b) = get(&server, "/a");
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        assert_eq!(b, b"<b>a</b>");
        assert_eq!(get(&server, "/gen/42?q=1").1, b"/gen/42?q=1");
        let (h, b) = get(&server, "/files/x.jpg");
        assert!(h.contains("image/jpeg"), "{h}");
        assert_eq!(b, b"jpegbytes");
        assert!(get(&server, "/files/../etc").0.contains("403"));
        assert!(get(&server, "/nope").0.starts_with("HTTP/1.1 404"));
        assert_eq!(server.hits("/a"), 1);
        assert_eq!(server.requests().len(), 5);
    }

    #[test]
    fn faults_truncate_and_reset() {
        let server = TestServer::start();
        server.route(
            "/t",
            Response::bytes("image/jpeg", vec![7u8; 1000]).fault(Fault::Truncate { bytes: 10 }),
        );
        server.route(
            "/r",
            Response::bytes("image/jpeg", vec![7u8; 100_000])
                .fault(Fault::ResetAfter { bytes: 10 }),
        );
        server.route("/redir", Response::redirect(302, "/t"));
        let (h, b) = get(&server, "/t");
        assert!(h.contains("Content-Length: 1000"), "{h}");
        assert_eq!(b.len(), 10);
        // A reset connection: reading fails or ends early, never the whole body.
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        write!(s, "GET /r HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let r = s.read_to_end(&mut out);
        assert!(r.is_err() || out.len() < 100_000);
        let (h, _) = get(&server, "/redir");
        assert!(
            h.starts_with("HTTP/1.1 302") && h.contains("Location: /t"),
            "{h}"
        );
    }
}

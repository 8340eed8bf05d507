//! A tiny HTTP forwarding proxy on 127.0.0.1 for the tests of the configured `[pipeline] proxy`.
//!
//! It records the request line and the `Host` header of every request it receives, so a test can
//! check what reached it (for instance that it was given a checked IP address, never a name to
//! resolve). Plain requests in absolute form (`GET http://ADDRESS:PORT/path HTTP/1.1`) are
//! forwarded to the address in the request line, one request per upstream connection. `CONNECT`
//! opens a tunnel: the proxy answers 200, records the first bytes sent into it (a TLS
//! ClientHello) and then relays both ways. Optionally one host is answered by the proxy itself
//! (see [`Proxy::answering`]): nothing connects to it, and a `CONNECT` to it gets a 403.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use url::Url;

/// What the proxy answers for its own host: the raw HTTP response for a path (with the query).
type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// (request line, Host header) of every request.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A running forwarding proxy; it lives until the test process ends.
pub struct Proxy {
    addr: SocketAddr,
    seen: Seen,
    tunnelled: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The proxy's rules, shared by its connection threads.
struct Rules {
    /// The host the proxy answers for itself, and how.
    own: Option<(String, Answer)>,
    seen: Seen,
    tunnelled: Arc<Mutex<Vec<Vec<u8>>>>,
}

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";

impl Proxy {
    /// A proxy that forwards every request.
    pub fn start() -> Proxy {
        Proxy::spawn(None)
    }

    /// A proxy that answers requests for `host` itself with `answer(path)` (a raw HTTP response)
    /// and refuses `CONNECT` to it with a 403; other requests are forwarded.
    pub fn answering(host: &str, answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Proxy {
        Proxy::spawn(Some((host.to_string(), Arc::new(answer))))
    }

    fn spawn(own: Option<(String, Answer)>) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let rules = Arc::new(Rules {
            own,
            seen: Default::default(),
            tunnelled: Default::default(),
        });
        let (seen, tunnelled) = (rules.seen.clone(), rules.tunnelled.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let rules = rules.clone();
                std::thread::spawn(move || serve(conn, &rules));
            }
        });
        Proxy {
            addr,
            seen,
            tunnelled,
        }
    }

    /// `http://127.0.0.1:PORT`, the value of a `proxy` setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// (request line, Host header) of every request so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }

    /// The first bytes sent into each tunnel that was opened.
    pub fn tunnelled(&self) -> Vec<Vec<u8>> {
        self.tunnelled.lock().unwrap().clone()
    }
}

/// Reads one request head: the request line and the header lines; `None` at the end of the
/// connection.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<String>)> {
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some((line.trim_end().to_string(), headers));
        }
        headers.push(h.to_string());
    }
}

fn serve(conn: TcpStream, rules: &Rules) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some((line, headers)) = read_head(&mut r) {
        let host = headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        rules.seen.lock().unwrap().push((line.clone(), host));
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let own = rules.own.as_ref();
        if method == "CONNECT" {
            if own.is_some_and(|(h, _)| target.starts_with(h.as_str())) {
                let _ = out.write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            } else {
                tunnel(r, out, target, &rules.tunnelled);
            }
            return;
        }
        // absolute form only: http://ADDRESS:PORT/path
        let Ok(u) = Url::parse(target) else {
            let _ = out.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        if let Some((_, answer)) = own.filter(|(h, _)| u.host_str() == Some(h.as_str())) {
            let _ = out.write_all(answer(&path).as_bytes());
            continue;
        }
        let Ok(mut up) = TcpStream::connect((
            u.host_str().unwrap_or("").trim_matches(['[', ']']),
            u.port_or_known_default().unwrap_or(80),
        )) else {
            let _ = out.write_all(BAD_GATEWAY);
            continue;
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        for h in &headers {
            let k = h.split(':').next().unwrap_or("").to_ascii_lowercase();
            if k != "connection" && k != "proxy-connection" {
                req.push_str(h);
                req.push_str("\r\n");
            }
        }
        req.push_str("Connection: close\r\n\r\n");
        if up.write_all(req.as_bytes()).is_err() {
            return;
        }
        let mut resp = Vec::new();
        let _ = up.read_to_end(&mut resp);
        if out.write_all(&resp).is_err() {
            return;
        }
    }
}

/// A `CONNECT` tunnel to `target`: records the first bytes sent into it, then relays both ways
/// until either side closes.
fn tunnel(
    mut r: BufReader<TcpStream>,
    mut out: TcpStream,
    target: &str,
    tunnelled: &Mutex<Vec<Vec<u8>>>,
) {
    let Ok(mut up) = TcpStream::connect(target) else {
        let _ = out.write_all(BAD_GATEWAY);
        return;
    };
    let _ = out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    let mut hello = vec![0u8; 4096];
    let n = r.read(&mut hello).unwrap_or(0);
    hello.truncate(n);
    let _ = up.write_all(&hello);
    tunnelled.lock().unwrap().push(hello);
    let mut down = up.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut r, &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut down, &mut out);
    let _ = out.shutdown(Shutdown::Both);
    let _ = t.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(proxy: &Proxy, target: &str, host: &str) -> String {
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        write!(
            c,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nProxy-Connection: keep-alive\r\n\r\n"
        )
        .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn forwards_by_address_answers_its_own_host_and_records_every_head() {
        // an upstream that echoes the request head it got
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in up.incoming().flatten() {
                let mut w = conn.try_clone().unwrap();
                let (line, headers) = read_head(&mut BufReader::new(conn)).unwrap();
                let body = format!("{line}|{}", headers.join("|"));
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let proxy = Proxy::answering("192.0.2.1", |path| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                path.len()
            )
        });
        let forwarded = get(&proxy, &format!("http://{up_addr}/a?b=1"), "site.test");
        assert!(
            forwarded.ends_with("GET /a?b=1 HTTP/1.1|Host: site.test|Connection: close"),
            "{forwarded}"
        );
        let own = get(&proxy, "http://192.0.2.1/x?y", "other.test");
        assert!(own.ends_with("\r\n\r\n/x?y"), "{own}");
        let origin_form = get(&proxy, "/no-absolute-form", "site.test");
        assert!(origin_form.starts_with("HTTP/1.1 502 "), "{origin_form}");
        assert_eq!(
            proxy.seen(),
            vec![
                (
                    format!("GET http://{up_addr}/a?b=1 HTTP/1.1"),
                    "site.test".to_string()
                ),
                (
                    "GET http://192.0.2.1/x?y HTTP/1.1".to_string(),
                    "other.test".to_string()
                ),
                (
                    "GET /no-absolute-form HTTP/1.1".to_string(),
                    "site.test".to_string()
                ),
            ]
        );
        assert!(proxy.tunnelled().is_empty());
    }
}

//! `[pipeline] proxy` through the binary (issue 22): the crawl of the demo site goes through a
//! loopback forwarding proxy that records what it is asked for. The proxy receives the checked
//! IP address in every request line (the name only in `Host`), so it never resolves a name
//! itself; with `allow_private_networks = false` the demo site's name (which resolves to
//! 127.0.0.1) is refused before anything reaches the proxy; a proxy that is not an http(s) URL
//! stops the run on load with the file, line and the fix.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A forwarding HTTP proxy on 127.0.0.1 recording (request line, Host) of every request.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<(String, String)>>> = Default::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || forward(conn, &log));
            }
        });
        Proxy { url, seen }
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

fn forward(conn: TcpStream, log: &Mutex<Vec<(String, String)>>) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            headers.push(h);
        }
        let host = headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        log.lock().unwrap().push((line.clone(), host));
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        // absolute form only: http://ADDRESS:PORT/path
        let Some(rest) = target.strip_prefix("http://") else {
            let _ = out.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Ok(mut up) = TcpStream::connect(authority) else {
            let _ = out.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
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

fn pipeline(dir: &Path, proxy: &str, allow_private: bool) {
    std::fs::write(
        dir.join("p.toml"),
        format!(
            r#"[pipeline]
name = "proxy"
proxy = "{proxy}"
workdir = "work"
allow_private_networks = {allow_private}

[demo_site]
dir = "site"
pages = 6

[crawl]
seeds = ["http://demo.openwit.test/"]
min_delay_ms = 0
max_attempts = 1
"#
        ),
    )
    .unwrap();
}

fn openwit(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap()
}

fn crawl_status(dir: &Path) -> serde_json::Value {
    let status = openwit(dir, &["status", "work", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let crawl = v["stages"][0].clone();
    assert_eq!(crawl["stage"], "crawl", "{v}");
    crawl
}

#[test]
fn the_crawl_goes_through_the_configured_proxy_by_checked_address() {
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &proxy.url, true);
    let out = openwit(dir.path(), &["run", "p.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let crawl = crawl_status(dir.path());
    assert_eq!(crawl["state"], "done", "{crawl}");
    assert!(crawl["items_out"].as_u64().unwrap() > 0, "{crawl}");

    let seen = proxy.seen();
    // robots.txt, the index and its six pages (one opted out, /private/ disallowed) at least
    assert!(seen.len() >= 6, "{seen:?}");
    for (line, host) in &seen {
        assert!(
            line.starts_with("GET http://127.0.0.1:") && line.ends_with(" HTTP/1.1"),
            "the proxy got a name to resolve: {line}"
        );
        assert_eq!(host, "demo.openwit.test", "{line}");
    }
    assert!(
        seen.iter().any(|(l, _)| l.contains("/robots.txt HTTP/1.1")),
        "{seen:?}"
    );
}

#[test]
fn names_resolving_to_loopback_are_refused_before_the_proxy() {
    let proxy = Proxy::start();
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &proxy.url, false);
    let out = openwit(dir.path(), &["run", "p.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    let crawl = crawl_status(dir.path());
    assert_eq!(
        crawl["items_out"].as_u64().unwrap_or(0),
        0,
        "{crawl}\n{stderr}"
    );
    assert!(
        crawl.to_string().contains("forbidden_address"),
        "{crawl}\n{stderr}"
    );
}

#[test]
fn a_proxy_that_is_not_an_http_url_stops_the_run_on_load() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), "socks5://127.0.0.1:1080", true);
    let out = openwit(dir.path(), &["run", "p.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("p.toml:3:"), "{stderr}");
    assert!(stderr.contains("http://HOST:PORT"), "{stderr}");
    assert!(!dir.path().join("work/crawl").exists());
}

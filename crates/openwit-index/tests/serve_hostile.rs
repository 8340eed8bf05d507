//! `openwit serve` under hostile requests: after each one the server still answers a normal
//! search with the very results it gave before. Each request goes over its own TCP connection to
//! the real connection loop ([`openwit_index::serve_on`]), written byte for byte, so malformed
//! requests reach the server as sent.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The name given with `--allow-host` in these tests.
const ALLOWED: &str = "openwit.test";

/// Starts the real server loop on 127.0.0.1 (a free port), accepting [`ALLOWED`] too.
fn start(workdir: &Path) -> SocketAddr {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let workdir = workdir.to_path_buf();
    std::thread::spawn(move || {
        let opts = openwit_index::ServeOptions {
            allow_hosts: vec![ALLOWED.into()],
            ..Default::default()
        };
        rt.block_on(openwit_index::serve_on(listener, &workdir, &opts))
            .unwrap();
    });
    addr
}

/// A response as read off the socket.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `req` as is over a new connection and reads until the server closes it. `None` when
/// the server closed it without an answer (what it may do to a malformed request).
fn send(addr: SocketAddr, req: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).unwrap();
    // A guard against a hung test, not a timing assertion.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer and close before reading a huge request whole.
    let _ = s.write_all(req);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some(Resp { status, head, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// A well-formed GET of `target` naming `host`.
fn get_as(addr: SocketAddr, host: &str, target: &str) -> Option<Resp> {
    send(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn get(addr: SocketAddr, target: &str) -> Resp {
    get_as(addr, &addr.to_string(), target).expect("an answer")
}

/// The normal search: the page and the JSON results.
#[derive(Debug, PartialEq)]
struct Normal {
    count: String,
    captions: Vec<String>,
    api_total: u64,
    api_keys: Vec<String>,
}

fn normal(addr: SocketAddr) -> Normal {
    let r = get(addr, "/?q=lighthouse");
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    let count = page
        .split("id=\"count\">")
        .nth(1)
        .and_then(|c| c.split(" in ").next())
        .expect("the match count")
        .to_string();
    let captions: Vec<String> = page
        .split("<div class=\"cap\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .collect();
    let r = get(addr, "/api/search?q=lighthouse&limit=100");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    Normal {
        count,
        captions,
        api_total: v["total"].as_u64().unwrap(),
        api_keys: v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| format!("{}/{}", h["shard"], h["key"]))
            .collect(),
    }
}

/// What a hostile request must get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// This status from the application (with its security headers).
    App(u16),
    /// One of these statuses from the application.
    AppAny(&'static [u16]),
    /// One of these statuses, or the connection closed, from the HTTP layer or the application.
    AnyOrClosed(&'static [u16]),
}

fn check_security_headers(label: &str, r: &Resp) {
    assert_eq!(
        r.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{label}: {}",
        r.head
    );
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{label}: no CSP: {}", r.head));
    assert!(csp.contains("frame-ancestors 'none'"), "{label}: {csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{label}: {csp}");
    // No script may run unless allowed by hash.
    if let Some(script) = csp.split(';').find(|d| d.trim().starts_with("script-src")) {
        assert!(
            script
                .split_whitespace()
                .skip(1)
                .all(|s| s.starts_with("'sha256-")),
            "{label}: {csp}"
        );
    } else {
        assert!(csp.contains("default-src 'none'"), "{label}: {csp}");
    }
}

/// Things that must never be in an answer: the run state, the logs, files outside the workdir.
fn check_no_secret(label: &str, r: &Resp) {
    let t = r.text();
    for secret in [
        "SQLite format 3",
        "LOG-SECRET-7c1f",
        "OUTSIDE-SECRET-51d2",
        "root:x:0:0",
    ] {
        assert!(!t.contains(secret), "{label}: the answer holds {secret}");
    }
}

fn req(host: &str, target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn hostile_requests_never_stop_the_server_nor_change_its_answers() {
    let dir = common::workdir();
    let w = dir.path();
    common::run(w, &common::index_stage());
    assert!(w.join("openwit.sqlite").is_file());
    // The run state's neighbours and ways to reach them.
    std::fs::create_dir_all(w.join("logs")).unwrap();
    std::fs::write(w.join("logs/openwit-1-1.log"), "LOG-SECRET-7c1f").unwrap();
    std::fs::write(w.join(".openwit.lock"), "LOG-SECRET-7c1f").unwrap();
    std::os::unix::fs::symlink(w.join("openwit.sqlite"), w.join("state-link")).unwrap();
    std::os::unix::fs::symlink(w.join("logs"), w.join("download/logs-link")).unwrap();
    let outside = w.parent().unwrap().join(format!(
        "openwit-hostile-outside-{}.txt",
        std::process::id()
    ));
    std::fs::write(&outside, "OUTSIDE-SECRET-51d2").unwrap();
    std::os::unix::fs::symlink(&outside, w.join("out-link")).unwrap();

    let addr = start(w);
    let me = addr.to_string();
    let port = addr.port();
    let baseline = normal(addr);
    assert!(baseline.api_total >= 2, "{baseline:?}");
    assert_eq!(baseline.captions.len() as u64, baseline.api_total);

    let long_query = "lighthouse ".repeat(400);
    let deep_query = format!("{}lighthouse{}", "(".repeat(300), ")".repeat(300));
    let huge_uri = format!("/?q={}", "a".repeat(300_000));
    let mut cases: Vec<(String, Vec<u8>, Want)> = Vec::new();
    let mut add =
        |label: &str, raw: Vec<u8>, want: Want| cases.push((label.to_string(), raw, want));

    // Paging far past anything.
    for t in [
        "/?q=red&page=1000000000000",
        "/?q=red&page=18446744073709551615",
        "/?q=red&page=99999999999999999999999999999",
        "/?q=red&page=-1",
        "/?q=red&page=1e9",
        "/?q=red&page=0x10",
        "/?q=red&page=%00",
        "/?q=red&page=%EF%BC%91",
        "/?q=red&page=167",
    ] {
        add(t, req(&me, t), Want::App(400));
    }
    for t in [
        "/api/search?q=red&page=10000000000",
        "/api/search?q=red&page=18446744073709551615&limit=18446744073709551615",
        "/api/search?q=red&offset=18446744073709551615",
        "/api/search?q=red&offset=10001",
        "/api/search?q=red&page=1&offset=1",
        "/api/search?q=red&limit=-5",
        "/api/search?q=red&page=11&limit=5000",
    ] {
        add(t, req(&me, t), Want::App(400));
    }
    // In the window but past the results: an empty page.
    for t in [
        "/?q=red&page=166",
        "/?q=lighthouse&page=1",
        "/api/search?q=red&offset=10000",
        "/api/search?q=red&limit=18446744073709551615",
        "/api/search?q=red&limit=0",
    ] {
        add(t, req(&me, t), Want::App(200));
    }
    // Long, deep and malformed queries.
    add(
        "long query",
        req(&me, &format!("/?q={}", long_query.replace(' ', "+"))),
        Want::App(400),
    );
    add(
        "long query (api)",
        req(
            &me,
            &format!("/api/search?q={}", long_query.replace(' ', "+")),
        ),
        Want::App(400),
    );
    add(
        "long entry",
        req(&me, &format!("/?q=&entry={}", "x".repeat(5000))),
        Want::App(400),
    );
    add(
        "deep query",
        req(&me, &format!("/?q={deep_query}")),
        Want::App(400),
    );
    add(
        "deep ranges",
        req(&me, &format!("/?q={}", "%5B".repeat(200))),
        Want::App(400),
    );
    for t in [
        "/?q=%22unclosed",
        "/?q=caption:(dog",
        "/?q=width:%5Ba+TO+b%5D",
        "/?q=*:*",
        "/?q=AND+OR+NOT",
        "/?q=a%5E99999999999999999999999",
        "/?q=-",
        "/?q=%2B",
        "/?q=~",
        "/?q=%5C",
        "/?q=caption:/(a%2B)%2Bb/",
        "/?q=%FF%FE%FD",
        "/?q=%C0%AE%C0%AE",
        "/?q=%00%01%02",
        "/?q=%E2%80%AE%F0%9F%A6%80",
        "/?q=lighthouse&q=red",
        "/?q=%",
        "/?q=%zz&entry=%",
        "/?q=entry:%22golden+retriever%22~999999999",
        "/api/search?q=%22a+b+c%22~4294967295",
        &format!("/?q={}", "a*+".repeat(300)),
        &format!("/?q={}", "NOT+".repeat(250)),
        &format!("/?q={}", "-".repeat(1000)),
    ] {
        add(t, req(&me, t), Want::AppAny(&[200, 400]));
    }
    // Bad UTF-8 and malformed requests.
    add(
        "raw bad UTF-8 in the target",
        b"GET /?q=\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(),
        Want::AnyOrClosed(&[200, 400]),
    );
    let mut bad_header = format!("GET / HTTP/1.1\r\nHost: {me}\r\nX-Junk: ").into_bytes();
    bad_header.extend_from_slice(b"\xff\xfe\x00\r\nConnection: close\r\n\r\n");
    add(
        "bad bytes in a header",
        bad_header,
        Want::AnyOrClosed(&[200, 400]),
    );
    for t in [
        "/sample/%FF/%FE",
        "/image/%C0%AE%C0%AE/x",
        "/sample/00000/%00",
    ] {
        add(t, req(&me, t), Want::AppAny(&[400, 404]));
    }
    add(
        "huge target",
        req(&me, &huge_uri),
        Want::AnyOrClosed(&[400, 414, 431]),
    );
    let mut many = format!("GET / HTTP/1.1\r\nHost: {me}\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: {}\r\n", "v".repeat(100)));
    }
    many.push_str("\r\n");
    add(
        "500 headers",
        many.into_bytes(),
        Want::AnyOrClosed(&[400, 431]),
    );
    add(
        "garbage",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n".to_vec(),
        Want::AnyOrClosed(&[400]),
    );
    add(
        "HTTP/0.9",
        b"GET /\r\n\r\n".to_vec(),
        Want::AnyOrClosed(&[400, 403, 505]),
    );
    // Traversal in every encoding, and the run state by name or by link.
    for t in [
        "/files/../openwit.sqlite",
        "/files/..%2fopenwit.sqlite",
        "/files/..%2Fopenwit.sqlite",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/files/%252e%252e/openwit.sqlite",
        "/files/..%5c..%5copenwit.sqlite",
        "/files/%c0%ae%c0%ae/openwit.sqlite",
        "/files/%c0%af..%c0%afopenwit.sqlite",
        "/files/.%2e/openwit.sqlite",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/openwit.sqlite",
        "/files/openwit.sqlite-wal",
        "/files/openwit.sqlite-shm",
        "/files/./openwit.sqlite",
        "/files/download/../openwit.sqlite",
        "/files/download/%2e%2e/openwit.sqlite",
        "/files/download/..;/openwit.sqlite",
        "/files/logs/openwit-1-1.log",
        "/files/logs",
        "/files/download/logs-link/openwit-1-1.log",
        "/files/.openwit.lock",
        "/files/state-link",
        "/files/out-link",
        "/files/download/00000.tar%00.json",
        "/files/%00",
        "/files/",
        "/image/..%2f..%2fopenwit.sqlite/x",
        "/sample/..%2fopenwit.sqlite/00000",
        "/report/../openwit.sqlite",
        "/%2e%2e/openwit.sqlite",
        "/openwit.sqlite",
    ] {
        add(t, req(&me, t), Want::AppAny(&[400, 403, 404]));
    }
    // Another name (DNS rebinding), or none.
    for host in [
        "attacker.example".to_string(),
        format!("attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        format!("127.0.0.1@attacker.example:{port}"),
        "[::1".to_string(),
        format!("{ALLOWED}.attacker.example"),
        String::new(),
        "127.0.0.2".to_string(),
        "0.0.0.0".to_string(),
    ] {
        for t in ["/?q=lighthouse", "/files/openwit.sqlite", "/report"] {
            add(&format!("Host {host:?} {t}"), req(&host, t), Want::App(403));
        }
    }
    add(
        "no Host (HTTP/1.0)",
        b"GET /?q=lighthouse HTTP/1.0\r\n\r\n".to_vec(),
        Want::App(403),
    );
    add(
        "no Host (HTTP/1.1)",
        b"GET /?q=lighthouse HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        Want::AnyOrClosed(&[400, 403]),
    );
    add(
        "two Hosts",
        format!(
            "GET / HTTP/1.1\r\nHost: {me}\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Want::AnyOrClosed(&[400, 403]),
    );
    add(
        "absolute-form target naming another host",
        format!(
            "GET http://attacker.example/files/openwit.sqlite HTTP/1.1\r\nHost: {me}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Want::App(403),
    );
    add(
        "CONNECT",
        format!("CONNECT {me} HTTP/1.1\r\nHost: {me}\r\n\r\n").into_bytes(),
        Want::AnyOrClosed(&[400, 403, 404, 405]),
    );
    // Other methods.
    for m in ["OPTIONS", "PUT", "DELETE", "TRACE", "PATCH", "BREW"] {
        add(
            m,
            format!("{m} / HTTP/1.1\r\nHost: {me}\r\nConnection: close\r\n\r\n").into_bytes(),
            Want::App(405),
        );
    }
    add(
        "POST with a body",
        format!(
            "POST /?q=red HTTP/1.1\r\nHost: {me}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\nConnection: close\r\n\r\nq=red&x=1"
        )
        .into_bytes(),
        Want::App(405),
    );
    add(
        "POST claiming a huge body",
        format!(
            "POST /api/search HTTP/1.1\r\nHost: {me}\r\nContent-Length: 100000000000\r\nConnection: close\r\n\r\nq=red"
        )
        .into_bytes(),
        Want::AnyOrClosed(&[405, 413]),
    );
    add(
        "POST with a broken chunked body",
        format!(
            "POST / HTTP/1.1\r\nHost: {me}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nx\r\n"
        )
        .into_bytes(),
        Want::AnyOrClosed(&[400, 405]),
    );

    for (label, raw, want) in &cases {
        let r = send(addr, raw);
        match (*want, &r) {
            (Want::App(code), Some(r)) => {
                assert_eq!(r.status, code, "{label}: {}\n{}", r.head, r.text());
                check_security_headers(label, r);
            }
            (Want::AppAny(codes), Some(r)) => {
                assert!(
                    codes.contains(&r.status),
                    "{label}: {}\n{}",
                    r.head,
                    r.text()
                );
                check_security_headers(label, r);
            }
            (Want::AnyOrClosed(codes), Some(r)) => {
                assert!(
                    codes.contains(&r.status),
                    "{label}: {}\n{}",
                    r.head,
                    r.text()
                );
            }
            (Want::AnyOrClosed(_), None) => {}
            (_, None) => panic!("{label}: no answer"),
        }
        if let Some(r) = &r {
            check_no_secret(label, r);
        }
        assert_eq!(normal(addr), baseline, "after {label}");
    }

    // Slow clients holding connections: half-sent headers, nothing sent, and full requests whose
    // answers are never read. The server still answers others meanwhile.
    let mut held = Vec::new();
    for i in 0..150 {
        let mut s = TcpStream::connect(addr).unwrap();
        match i % 3 {
            0 => s
                .write_all(format!("GET /?q=red HTTP/1.1\r\nHost: {me}\r\nX-Slow: ").as_bytes())
                .unwrap(),
            1 => {}
            _ => s
                .write_all(
                    format!("GET /report HTTP/1.1\r\nHost: {me}\r\n\r\nGET /report HTTP/1.1\r\nHost: {me}\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap(),
        }
        held.push(s);
    }
    assert_eq!(normal(addr), baseline, "with 150 slow clients connected");
    for s in &mut held {
        let _ = s.write_all(b"a");
    }
    assert_eq!(
        normal(addr),
        baseline,
        "with 150 slow clients still connected"
    );
    drop(held);
    assert_eq!(normal(addr), baseline, "after the slow clients left");

    // The names that are accepted.
    for host in [
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("{ALLOWED}:{port}"),
        "OpenWIT.test.".to_string(),
        "127.0.0.1".to_string(),
    ] {
        let r = get_as(addr, &host, "/?q=lighthouse").unwrap();
        assert_eq!(r.status, 200, "Host {host}");
        assert!(r.text().contains("White lighthouse on a rocky coast"));
    }
    // HEAD answers like GET, without a body.
    let r = send(
        addr,
        format!("HEAD /?q=lighthouse HTTP/1.1\r\nHost: {me}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    check_security_headers("HEAD", &r);
    std::fs::remove_file(&outside).unwrap();
}

#[test]
fn a_page_past_the_results_says_so_and_deep_paging_is_refused() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = start(dir.path());

    // 20 samples match everything: page 1 (the second) is past the end of 60 per page.
    let r = get(addr, "/?q=&page=1");
    assert_eq!(r.status, 200);
    let page = r.text();
    let count = page.split("id=\"count\">").nth(1).unwrap();
    let count = &count[..count.find("</p>").unwrap()];
    assert!(count.starts_with("20 match(es)"), "{count}");
    assert!(
        !count.contains('-'),
        "a range is shown for an empty page: {count}"
    );
    assert!(!page.contains("61-60"));
    assert!(page.contains("id=\"past-end\""));
    assert!(page.contains("href=\"/?q=&amp;entry=&amp;page=0\" id=\"last\""));
    assert!(!page.contains("class=\"card result\""));

    // The first page shows the range and no next link.
    let page = get(addr, "/?q=").text();
    assert!(page.contains("; 1-20</p>"), "{page}");
    assert!(!page.contains("id=\"next\""));
    assert!(!page.contains("id=\"past-end\""));

    // A page past the window is a 400 with a message, in HTML and JSON.
    let r = get(addr, "/?q=red&page=1000000000000");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("too large"), "{}", r.text());
    assert!(r.text().contains("paging reaches the first 10000 results"));
    let r = get(addr, "/api/search?q=red&page=10000000000");
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("page=10000000000"));

    // The API past the results: the total, no hits; a huge limit is lowered.
    let r = get(addr, "/api/search?q=&offset=10000&limit=5");
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["total"], 20);
    assert_eq!(v["hits"].as_array().unwrap().len(), 0);
    let r = get(addr, "/api/search?q=&limit=18446744073709551615");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 20);
    // Paging through the API covers every sample once.
    let mut keys = Vec::new();
    for page in 0..5 {
        let r = get(addr, &format!("/api/search?q=&limit=6&page={page}"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        for h in v["hits"].as_array().unwrap() {
            keys.push(format!("{}/{}", h["shard"], h["key"]));
        }
    }
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!((n, keys.len()), (20, 20));
}

/// Base64 of `b`, bit by bit (independent of the server's encoder).
fn b64(b: &[u8]) -> String {
    let alphabet: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['+', '/'])
        .collect();
    let bits: Vec<u8> = b
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1))
        .collect();
    let mut out: String = bits
        .chunks(6)
        .map(|c| {
            let v = c
                .iter()
                .chain(std::iter::repeat_n(&0, 6 - c.len()))
                .fold(0usize, |a, &bit| a * 2 + bit as usize);
            alphabet[v]
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// The inline blocks `<tag>...</tag>` of a page.
fn blocks<'a>(page: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    page.split(open.as_str())
        .skip(1)
        .map(|rest| &rest[..rest.find(close.as_str()).unwrap()])
        .collect()
}

#[test]
fn every_inline_script_and_style_of_the_ui_is_allowed_by_hash_and_nothing_else() {
    let dir = common::workdir();
    common::run(dir.path(), &common::index_stage());
    let addr = start(dir.path());

    let search = get(addr, "/?q=lighthouse");
    let first = search.text();
    let first = first.split("href=\"/sample/").nth(1).unwrap();
    let sample: String = first.chars().take_while(|&c| c != '"').collect();
    let mut scripts = 0;
    for target in [
        "/?q=lighthouse".to_string(),
        format!("/sample/{sample}"),
        "/?q=%22unclosed".to_string(),
        "/?q=&page=5".to_string(),
    ] {
        let r = get(addr, &target);
        let page = r.text();
        check_security_headers(&target, &r);
        let csp = r.header("content-security-policy").unwrap();
        for (tag, directive) in [("script", "script-src"), ("style", "style-src")] {
            for block in blocks(&page, tag) {
                let hash = format!("'sha256-{}'", b64(&Sha256::digest(block.as_bytes())));
                let allowed = csp
                    .split(';')
                    .find(|d| d.trim().starts_with(directive))
                    .unwrap_or_else(|| panic!("{target}: no {directive} in {csp}"));
                assert!(
                    allowed.split_whitespace().any(|s| s == hash),
                    "{target}: the inline {tag} {hash} is not allowed by {csp}"
                );
                scripts += usize::from(tag == "script");
            }
        }
        // No other inline code or style: attributes would be blocked.
        assert!(!page.contains(" style=\""), "{target}");
        assert!(
            !page.contains(" onload=") && !page.contains(" onerror="),
            "{target}"
        );
        assert!(!page.contains("javascript:"), "{target}");
    }
    assert_eq!(scripts, 1, "the detail view has one inline script");
    // The report runs no script at all; a workdir file is sandboxed.
    for target in ["/report", "/files/download/00000_stats.json"] {
        let r = get(addr, target);
        assert_eq!(r.status, 200, "{target}");
        check_security_headers(target, &r);
        let csp = r.header("content-security-policy").unwrap();
        assert!(!csp.contains("script-src"), "{csp}");
    }
    let r = get(addr, "/files/download/00000_stats.json");
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("sandbox")
    );
}

#[test]
fn the_server_refuses_an_allow_host_that_is_not_a_host() {
    let dir = common::workdir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let opts = openwit_index::ServeOptions {
        allow_hosts: vec!["evil.example/path".into()],
        ..Default::default()
    };
    let err = rt
        .block_on(openwit_index::serve_on(listener, dir.path(), &opts))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--allow-host"), "{err}");
}

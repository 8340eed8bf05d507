//! The one guarded HTTP client (`openwit_http`) against loopback servers and a loopback
//! forwarding proxy: the redirect policy, the address rules on every hop (IP literals in every
//! spelling, names resolving to non-public ranges), the configured proxy (names resolved and
//! checked before anything reaches it; http requests sent to it by checked IP), and the
//! robots.txt cache.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use openwit_http::net::override_host;
use openwit_http::{
    FailKind, HttpClient, HttpSettings, MAX_REDIRECTS, MAX_ROBOTS_BYTES, RobotsCache, RobotsTxt,
    fetch_robots,
};
use openwit_testkit::{Proxy, Response, TestServer};
use url::Url;

/// A public address (example.com's) that the test proxy answers for itself: nothing connects to
/// it, but the address rules let a name resolving to it through. The proxy (`openwit_testkit`)
/// records every request line and `Host` header it receives and answers requests for this
/// address with the test's raw response; `CONNECT` to it gets a 403, any other `CONNECT` a
/// tunnel whose first bytes (a TLS ClientHello) are recorded.
const FAKE_PUBLIC: &str = "93.184.216.34";

fn raw(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(allow_private: bool, proxy: Option<&Proxy>) -> HttpClient {
    HttpClient::new(&HttpSettings {
        allow_private,
        proxy: proxy.map(Proxy::url),
        ..Default::default()
    })
    .unwrap()
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// GET with redirects: (status, final URL) or the drop reason.
fn get(rt: &tokio::runtime::Runtime, c: &HttpClient, url: &str) -> Result<(u16, String), String> {
    rt.block_on(async {
        let f = c.get(&u(url), |_, r| r).await.map_err(|e| {
            assert_eq!(e.reason(), e.kind.reason());
            e.reason().to_string()
        })?;
        Ok((f.response.status().as_u16(), f.url.to_string()))
    })
}

#[test]
fn redirect_policy_limit_loop_scheme_and_location() {
    let srv = TestServer::start();
    for n in 1..=8 {
        srv.route(
            &format!("/r/{n}"),
            Response::redirect(302, &format!("/r/{}", n - 1)),
        );
    }
    srv.route("/r/0", Response::text("end"));
    srv.route("/loop-a", Response::redirect(301, "/loop-b"));
    srv.route("/loop-b", Response::redirect(308, "/loop-a"));
    srv.route("/self", Response::redirect(307, "/self"));
    srv.route("/ftp", Response::redirect(302, "ftp://example.org/x"));
    srv.route("/file", Response::redirect(302, "file:///etc/passwd"));
    srv.route("/no-location", Response::status(302));
    srv.route("/see-other", Response::redirect(303, "../r/0"));
    srv.route("/not-modified", Response::status(304));
    let rt = rt();
    let c = client(true, None);

    // exactly MAX_REDIRECTS hops are followed, one more is refused
    assert_eq!(MAX_REDIRECTS, 5);
    let (status, last) = get(&rt, &c, &srv.url("/r/5")).unwrap();
    assert_eq!((status, last), (200, srv.url("/r/0")));
    assert_eq!(
        get(&rt, &c, &srv.url("/r/6")).unwrap_err(),
        "too_many_redirects"
    );
    assert_eq!(srv.hits("/r/0"), 1, "the sixth hop was never requested");
    assert_eq!(
        get(&rt, &c, &srv.url("/loop-a")).unwrap_err(),
        "redirect_loop"
    );
    assert_eq!(
        get(&rt, &c, &srv.url("/self")).unwrap_err(),
        "redirect_loop"
    );
    assert_eq!(srv.hits("/self"), 1);
    assert_eq!(get(&rt, &c, &srv.url("/ftp")).unwrap_err(), "bad_url");
    assert_eq!(get(&rt, &c, &srv.url("/file")).unwrap_err(), "bad_url");
    assert_eq!(
        get(&rt, &c, &srv.url("/no-location")).unwrap_err(),
        "bad_redirect"
    );
    assert_eq!(
        get(&rt, &c, &srv.url("/see-other")).unwrap(),
        (200, srv.url("/r/0"))
    );
    // a 3xx that is not a redirect is an answer like any other
    assert_eq!(
        get(&rt, &c, &srv.url("/not-modified")).unwrap(),
        (304, srv.url("/not-modified"))
    );
    // non-http first URLs
    assert_eq!(get(&rt, &c, "ftp://example.org/").unwrap_err(), "bad_url");
    assert_eq!(get(&rt, &c, "data:text/plain,hi").unwrap_err(), "bad_url");
}

#[test]
fn each_hop_builds_its_own_request() {
    let srv = TestServer::start();
    srv.route("/a", Response::redirect(302, "/b"));
    srv.route("/b", Response::text("b"));
    let rt = rt();
    let c = client(true, None);
    let mut hops = Vec::new();
    let f = rt
        .block_on(c.get(&u(&srv.url("/a")), |hop, r| {
            hops.push(hop.path().to_string());
            r.header("Range", format!("bytes={}-", hops.len()))
        }))
        .unwrap();
    assert_eq!(f.redirects, 1);
    assert_eq!(hops, ["/a", "/b"]);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), Some("bytes=1-"));
    assert_eq!(reqs[1].header("range"), Some("bytes=2-"));
    assert_eq!(
        reqs[1].header("user-agent"),
        Some(openwit_http::DEFAULT_USER_AGENT)
    );
}

/// Every spelling of a non-public IP literal, and the loopback names, are refused before a
/// request is made, with and without a proxy.
#[test]
fn forbidden_literals_in_every_form_are_refused_with_and_without_a_proxy() {
    let proxy = Proxy::answering(FAKE_PUBLIC, |_| raw("200 OK", &[], "public"));
    let rt = rt();
    let forms = [
        "http://127.0.0.1/",
        "http://2130706433/",   // decimal
        "http://017700000001/", // octal, one number
        "http://0177.0.0.1/",   // octal dotted
        "http://0x7f.0.0.1/",   // hex dotted
        "http://0x7f000001/",   // hex, one number
        "http://127.1/",        // short form
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/", // IPv4-mapped
        "http://[::ffff:7f00:1]/",
        "http://[::ffff:a00:1]/",       // mapped 10.0.0.1
        "http://[::127.0.0.1]/",        // IPv4-compatible
        "http://[64:ff9b::7f00:1]/",    // NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/", // NAT64 of 169.254.169.254
        "http://[2002:7f00:1::1]/",     // 6to4 of 127.0.0.1
        "http://[2002:c0a8:101::1]/",   // 6to4 of 192.168.1.1
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/", // shared address space 100.64/10
        "http://100.127.255.254/",
        "http://224.0.0.1/", // multicast
        "http://[ff02::1]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
        "http://255.255.255.255/",
        "http://240.0.0.1/",
        "http://198.18.0.1/",
        "https://0x7f.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://app.localhost:8080/",
        "https://localhost/",
    ];
    for proxy in [None, Some(&proxy)] {
        let c = client(false, proxy);
        for f in forms {
            assert_eq!(
                get(&rt, &c, f).unwrap_err(),
                "forbidden_address",
                "{f} (proxy: {})",
                proxy.is_some()
            );
        }
    }
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    // public literals pass the check (answered by the proxy, never the internet)
    let c = client(false, Some(&proxy));
    assert_eq!(
        get(&rt, &c, &format!("http://{FAKE_PUBLIC}/x")).unwrap().0,
        200
    );
    assert_eq!(
        proxy.seen(),
        [(
            format!("GET http://{FAKE_PUBLIC}/x HTTP/1.1"),
            FAKE_PUBLIC.to_string()
        )]
    );
}

/// Names that resolve to loopback, private, link-local, shared or other reserved ranges are
/// refused with the proxy set and not set; the proxy sees nothing.
#[test]
fn names_resolving_to_reserved_ranges_are_refused_with_and_without_a_proxy() {
    let names = [
        ("loopback.reserved.test", "127.0.0.1:80"),
        ("private.reserved.test", "10.20.30.40:80"),
        ("private172.reserved.test", "172.20.0.5:80"),
        ("linklocal.reserved.test", "169.254.169.254:80"),
        ("cgnat.reserved.test", "100.100.0.1:80"),
        ("multicast.reserved.test", "239.1.2.3:80"),
        ("mapped.reserved.test", "[::ffff:192.168.1.1]:80"),
        ("nat64.reserved.test", "[64:ff9b::a00:1]:80"),
        ("ula.reserved.test", "[fd12::1]:80"),
        ("unspecified.reserved.test", "0.0.0.0:80"),
    ];
    for (n, a) in names {
        override_host(n, a.parse().unwrap());
    }
    let proxy = Proxy::answering(FAKE_PUBLIC, |_| raw("200 OK", &[], "public"));
    let rt = rt();
    for proxy in [None, Some(&proxy)] {
        let c = client(false, proxy);
        for (n, _) in names {
            for scheme in ["http", "https"] {
                assert_eq!(
                    get(&rt, &c, &format!("{scheme}://{n}/x")).unwrap_err(),
                    "forbidden_address",
                    "{scheme}://{n} (proxy: {})",
                    proxy.is_some()
                );
            }
        }
    }
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}

#[test]
fn through_the_proxy_names_are_resolved_and_checked_here_first() {
    let srv = TestServer::start();
    srv.route("/page", Response::text("hello"));
    override_host("site.proxytest.test", srv.addr());
    let proxy = Proxy::answering(FAKE_PUBLIC, |_| raw("200 OK", &[], "public"));
    let rt = rt();
    let port = srv.addr().port();

    // refused before anything reaches the proxy
    let c = client(false, Some(&proxy));
    for url in [
        "http://site.proxytest.test/page".to_string(),
        format!("http://localhost:{port}/page"),
        "https://site.proxytest.test/page".to_string(),
    ] {
        assert_eq!(
            get(&rt, &c, &url).unwrap_err(),
            "forbidden_address",
            "{url}"
        );
    }
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert_eq!(srv.requests().len(), 0);

    // allowed: through the proxy, which gets the checked address and never the name
    let c = client(true, Some(&proxy));
    let (status, last) = get(&rt, &c, "http://site.proxytest.test/page").unwrap();
    assert_eq!(
        (status, last.as_str()),
        (200, "http://site.proxytest.test/page")
    );
    let (status, _) = get(&rt, &c, &format!("http://localhost:{port}/page")).unwrap();
    assert_eq!(status, 200);
    let seen = proxy.seen();
    assert_eq!(
        seen,
        [
            (
                format!("GET http://127.0.0.1:{port}/page HTTP/1.1"),
                "site.proxytest.test".to_string()
            ),
            (
                format!("GET http://127.0.0.1:{port}/page HTTP/1.1"),
                format!("localhost:{port}")
            ),
        ]
    );
    // the server got both, with the original names as Host
    let hosts: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.header("host").unwrap_or("").to_string())
        .collect();
    assert_eq!(hosts, ["site.proxytest.test", &format!("localhost:{port}")]);

    // https: the tunnel goes to the checked address, never the name; TLS inside it names the
    // server (the test server here speaks plain HTTP, so the handshake fails after that)
    let err = rt
        .block_on(c.get(&u("https://site.proxytest.test/page"), |_, r| r))
        .unwrap_err();
    assert!(err.kind.is_transient(), "{err:?}");
    assert_eq!(
        proxy.seen().last().unwrap(),
        &(
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1"),
            format!("127.0.0.1:{port}")
        )
    );
    let hello = proxy.tunnelled().pop().expect("a tunnel was opened");
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
    assert!(
        hello
            .windows(b"site.proxytest.test".len())
            .any(|w| w == b"site.proxytest.test"),
        "the ClientHello names the server (SNI)"
    );
    assert!(
        proxy
            .seen()
            .iter()
            .all(|(line, _)| !line.contains("proxytest")),
        "the proxy never saw the name in a request line: {:?}",
        proxy.seen()
    );
    // a proxy that refuses the tunnel: its answer is the error
    override_host(
        "refused.proxytest.test",
        format!("{FAKE_PUBLIC}:443").parse().unwrap(),
    );
    let err = rt
        .block_on(c.get(&u("https://refused.proxytest.test/x"), |_, r| r))
        .unwrap_err();
    assert_eq!(err.kind, FailKind::ConnectError, "{err:?}");
    assert!(
        err.message.contains("refused CONNECT") && err.message.contains("403 Forbidden"),
        "{err:?}"
    );
    assert_eq!(
        proxy.seen().last().unwrap().0,
        format!("CONNECT {FAKE_PUBLIC}:443 HTTP/1.1")
    );

    // without a proxy the same client settings fetch directly
    let direct = client(true, None);
    assert_eq!(
        get(&rt, &direct, "http://site.proxytest.test/page")
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        proxy.seen().len(),
        4,
        "the direct client did not use the proxy"
    );
}

/// An HTTPS server on 127.0.0.1 with the test certificate for `tls.proxytest.test`
/// (`tests/data/tls`): answers `hello over tls` to any request; records (SNI, Host, request
/// line) of each.
fn tls_server() -> (SocketAddr, Arc<Mutex<Vec<(String, String, String)>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data.join("server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(data.join("server.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(tcp) = conn else { continue };
            let (cfg, log) = (cfg.clone(), log.clone());
            std::thread::spawn(move || {
                let sc = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(sc, tcp));
                let mut line = String::new();
                if tls.read_line(&mut line).is_err() {
                    return;
                }
                let mut host = String::new();
                loop {
                    let mut h = String::new();
                    if tls.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("host")
                    {
                        host = v.trim().to_string();
                    }
                }
                let sni = tls
                    .get_ref()
                    .conn
                    .server_name()
                    .unwrap_or_default()
                    .to_string();
                log.lock()
                    .unwrap()
                    .push((sni, host, line.trim_end().to_string()));
                let body = "hello over tls";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let s = tls.get_mut();
                let _ = s.write_all(resp.as_bytes());
                let _ = s.flush();
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
    (addr, seen)
}

#[test]
fn https_through_the_proxy_goes_to_the_checked_address_under_the_servers_name() {
    let (addr, served) = tls_server();
    override_host("tls.proxytest.test", addr);
    let proxy = Proxy::answering(FAKE_PUBLIC, |_| raw("200 OK", &[], "public"));
    let ca = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls/ca.pem"),
    )
    .unwrap();
    let settings = |allow_private, roots: Vec<Vec<u8>>| HttpSettings {
        allow_private,
        proxy: Some(proxy.url()),
        extra_root_certificates: roots,
        ..Default::default()
    };
    let rt = rt();
    let url = u("https://tls.proxytest.test/hello?x=1");

    // refused before the proxy sees anything: the name resolves to loopback
    let c = HttpClient::new(&settings(false, vec![ca.clone()])).unwrap();
    let err = rt.block_on(c.get(&url, |_, r| r)).unwrap_err();
    assert_eq!(err.kind, FailKind::ForbiddenAddress, "{err:?}");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());

    // allowed: a tunnel to the checked address, TLS with the server under its name, end to end
    let c = HttpClient::new(&settings(true, vec![ca.clone()])).unwrap();
    for _ in 0..2 {
        let (status, body, last) = rt.block_on(async {
            let f = c.get(&url, |_, r| r).await.unwrap();
            let status = f.response.status().as_u16();
            (status, f.response.text().await.unwrap(), f.url.to_string())
        });
        assert_eq!(
            (status, body.as_str(), last.as_str()),
            (200, "hello over tls", url.as_str())
        );
    }
    let connect = (format!("CONNECT {addr} HTTP/1.1"), addr.to_string());
    assert_eq!(proxy.seen(), [connect.clone(), connect]);
    let want = (
        "tls.proxytest.test".to_string(),
        "tls.proxytest.test".to_string(),
        "GET /hello?x=1 HTTP/1.1".to_string(),
    );
    assert_eq!(*served.lock().unwrap(), [want.clone(), want]);

    // the certificate is checked against the name: without the test CA it is refused
    let c = HttpClient::new(&settings(true, Vec::new())).unwrap();
    let err = rt.block_on(c.get(&url, |_, r| r)).unwrap_err();
    assert_eq!(err.kind, FailKind::ConnectError, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "{err:?}"
    );
    assert_eq!(
        served.lock().unwrap().len(),
        2,
        "nothing reached the server"
    );

    // a bad trusted certificate is a configuration error
    let err = HttpClient::new(&settings(true, vec![b"not a certificate".to_vec()])).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// A redirect hop to a forbidden literal or name is refused (with allow_private off), and
/// followed when allowed. The first hop is a public address the test proxy answers itself.
#[test]
fn redirect_hops_are_checked_like_the_first_request() {
    let srv = TestServer::start();
    srv.route("/inside", Response::text("internal"));
    let port = srv.addr().port();
    override_host(
        "public.hoptest.test",
        format!("{FAKE_PUBLIC}:80").parse().unwrap(),
    );
    override_host("internal.hoptest.test", srv.addr());
    let targets: Vec<(&str, String)> = vec![
        ("/to-literal", format!("http://127.0.0.1:{port}/inside")),
        ("/to-decimal", format!("http://2130706433:{port}/inside")),
        ("/to-hex", format!("http://0x7f.0.0.1:{port}/inside")),
        (
            "/to-mapped",
            format!("http://[::ffff:127.0.0.1]:{port}/inside"),
        ),
        (
            "/to-name",
            "http://internal.hoptest.test/inside".to_string(),
        ),
        ("/to-localhost", format!("http://localhost:{port}/inside")),
        (
            "/to-https-name",
            "https://internal.hoptest.test/inside".to_string(),
        ),
    ];
    let table = targets.clone();
    let proxy = Proxy::answering(FAKE_PUBLIC, move |path: &str| {
        match table.iter().find(|(p, _)| *p == path) {
            Some((_, to)) => raw("302 Found", &[("Location", to)], ""),
            None => raw("404 Not Found", &[], ""),
        }
    });
    let rt = rt();
    let c = client(false, Some(&proxy));
    for (path, to) in &targets {
        let err = rt
            .block_on(c.get(&u(&format!("http://public.hoptest.test{path}")), |_, r| r))
            .unwrap_err();
        assert_eq!(err.reason(), "forbidden_address", "{path} -> {to}: {err}");
        assert_eq!(Url::parse(&err.url).unwrap(), Url::parse(to).unwrap());
    }
    // only the first hops reached the proxy, by checked address
    let seen = proxy.seen();
    assert_eq!(seen.len(), targets.len());
    for ((line, host), (path, _)) in seen.iter().zip(&targets) {
        assert_eq!(line, &format!("GET http://{FAKE_PUBLIC}{path} HTTP/1.1"));
        assert_eq!(host, "public.hoptest.test");
    }
    assert_eq!(srv.requests().len(), 0);

    // allowed: the hops to loopback are followed through the proxy
    let c = client(true, Some(&proxy));
    for path in ["/to-literal", "/to-decimal", "/to-name", "/to-localhost"] {
        let (status, _) = get(&rt, &c, &format!("http://public.hoptest.test{path}")).unwrap();
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(srv.hits("/inside"), 4);
    let last = proxy.seen();
    assert_eq!(
        last.last().unwrap(),
        &(
            format!("GET http://127.0.0.1:{port}/inside HTTP/1.1"),
            format!("localhost:{port}")
        )
    );
}

#[test]
fn a_bad_proxy_is_a_configuration_error() {
    for bad in [
        "socks5://127.0.0.1:1080",
        "proxy.example:3128",
        "http://",
        "http://proxy.example:3128/path",
    ] {
        let err = HttpClient::new(&HttpSettings {
            proxy: Some(bad.into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, openwit_core::Error::Config(_)),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
    }
    for good in [
        "http://proxy.example:3128",
        "https://user:pw@proxy.example/",
    ] {
        HttpClient::new(&HttpSettings {
            proxy: Some(good.into()),
            ..Default::default()
        })
        .unwrap();
    }
}

fn robots_server(resp: Response) -> TestServer {
    let s = TestServer::start();
    s.route("/robots.txt", resp);
    s
}

#[test]
fn robots_cache_status_rules_caps_and_errors() {
    let rt = rt();
    let c = client(true, None);
    let cache = RobotsCache::new(c.clone(), "openwit");

    let ok = robots_server(Response::text(
        "User-agent: openwit\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n",
    ));
    let url = u(&ok.url("/private/a.jpg"));
    assert!(!rt.block_on(cache.allowed(&url)).unwrap());
    assert!(
        rt.block_on(cache.allowed(&u(&ok.url("/public?q=1"))))
            .unwrap()
    );
    assert!(rt.block_on(cache.allowed(&u(&ok.url("/x")))).unwrap());
    assert_eq!(ok.hits("/robots.txt"), 1, "fetched once per origin");
    assert_eq!(cache.len(), 1);

    // another product token matches the `*` group
    let other = RobotsCache::new(c.clone(), "otherbot");
    assert!(!rt.block_on(other.allowed(&u(&ok.url("/x")))).unwrap());

    let cases: Vec<(Response, bool, RobotsTxt)> = vec![
        (Response::status(404), true, RobotsTxt::AllowAll),
        (Response::status(403), true, RobotsTxt::AllowAll),
        (Response::status(410), true, RobotsTxt::AllowAll),
        (Response::status(429), false, RobotsTxt::DisallowAll),
        (Response::status(500), false, RobotsTxt::DisallowAll),
        (Response::status(503), false, RobotsTxt::DisallowAll),
    ];
    for (resp, allowed, txt) in cases {
        let status = resp.status;
        let s = robots_server(resp);
        let cache = RobotsCache::new(c.clone(), "openwit");
        assert_eq!(
            rt.block_on(cache.allowed(&u(&s.url("/a")))).unwrap(),
            allowed,
            "HTTP {status}"
        );
        assert_eq!(
            rt.block_on(fetch_robots(&c, &u(&s.url("/a")))).unwrap(),
            txt
        );
    }

    // redirects are followed; too many of them: unavailable (allow all)
    let moved = TestServer::start();
    moved.route("/robots.txt", Response::redirect(301, "/real-robots.txt"));
    moved.route(
        "/real-robots.txt",
        Response::text("User-agent: *\nDisallow: /no\n"),
    );
    let cache = RobotsCache::new(c.clone(), "openwit");
    assert!(!rt.block_on(cache.allowed(&u(&moved.url("/no/x")))).unwrap());
    assert!(rt.block_on(cache.allowed(&u(&moved.url("/yes")))).unwrap());
    let looping = robots_server(Response::redirect(302, "/robots.txt"));
    assert_eq!(
        rt.block_on(fetch_robots(&c, &u(&looping.url("/"))))
            .unwrap(),
        RobotsTxt::AllowAll
    );

    // a rule beyond MAX_ROBOTS_BYTES is not read
    let mut big = String::from("User-agent: *\nDisallow: /early\n");
    while big.len() < MAX_ROBOTS_BYTES + 10 {
        big.push_str("# padding padding padding padding padding padding padding\n");
    }
    big.push_str("Disallow: /late\n");
    let s = robots_server(Response::text(&big));
    let got = rt.block_on(fetch_robots(&c, &u(&s.url("/")))).unwrap();
    assert!(matches!(&got, RobotsTxt::Body(b) if b.len() == MAX_ROBOTS_BYTES));
    let cache = RobotsCache::new(c.clone(), "openwit");
    assert!(!rt.block_on(cache.allowed(&u(&s.url("/early")))).unwrap());
    assert!(rt.block_on(cache.allowed(&u(&s.url("/late")))).unwrap());

    // an unreachable host: disallow all
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    assert_eq!(
        rt.block_on(fetch_robots(&c, &u(&format!("http://127.0.0.1:{port}/"))))
            .unwrap(),
        RobotsTxt::DisallowAll
    );

    // a forbidden host is an error, cached like an answer
    let guarded = RobotsCache::new(client(false, None), "openwit");
    for _ in 0..2 {
        let err = rt.block_on(guarded.allowed(&u(&ok.url("/x")))).unwrap_err();
        assert_eq!(err.reason(), "forbidden_address");
    }
    assert_eq!(ok.hits("/robots.txt"), 2, "only the allowed caches fetched");
}

/// A client's own overrides name servers the stage runs itself (the crawl's demo site): they are
/// reached without `allow_private`, and nothing else is.
#[test]
fn own_overrides_are_trusted_and_nothing_else() {
    let srv = TestServer::start();
    srv.route("/x", Response::text("own"));
    let rt = rt();
    let c = HttpClient::new(&HttpSettings {
        overrides: vec![("own.site.test".into(), srv.addr())],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(get(&rt, &c, "http://own.site.test/x").unwrap().0, 200);
    assert_eq!(
        get(&rt, &c, &srv.url("/x")).unwrap_err(),
        "forbidden_address"
    );
    assert_eq!(srv.hits("/x"), 1);
}

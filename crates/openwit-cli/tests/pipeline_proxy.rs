//! `[pipeline] proxy` through the binary (issue 22): the crawl of the demo site goes through a
//! loopback forwarding proxy that records what it is asked for. The proxy receives the checked
//! IP address in every request line (the name only in `Host`), so it never resolves a name
//! itself; with `allow_private_networks = false` the demo site's name (which resolves to
//! 127.0.0.1) is refused before anything reaches the proxy; a proxy that is not an http(s) URL
//! stops the run on load with the file, line and the fix.

use std::path::Path;
use std::process::Command;

use openwit_testkit::Proxy;

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
    pipeline(dir.path(), &proxy.url(), true);
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
    pipeline(dir.path(), &proxy.url(), false);
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

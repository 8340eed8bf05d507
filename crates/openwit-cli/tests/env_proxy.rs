//! Proxy variables in the environment are ignored (issue 22): through a proxy, host names are
//! resolved by the proxy and the private-address check never runs. With `http_proxy`,
//! `HTTPS_PROXY` and `ALL_PROXY` pointing at a loopback listener, a crawl of the demo site still
//! connects to the checked address itself: the listener sees no connection, the crawl fetches its
//! pages, and one warning names the ignored variables.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[test]
fn environment_proxies_are_ignored_and_said_so() {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = proxy.local_addr().unwrap();
    let proxy_url = format!("http://{addr}");
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (hits, stop) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in proxy.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if conn.is_ok() {
                    hits.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        r#"
[pipeline]
name = "proxy-env"
workdir = "work"
allow_private_networks = true

[demo_site]
dir = "site"
pages = 6

[crawl]
seeds = ["http://demo.openwit.test/"]
min_delay_ms = 0
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(["run", "p.toml"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("http_proxy", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("HTTPS_PROXY", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(addr); // wakes the listener, not counted
    counter.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the proxy was used");
    assert_eq!(
        stderr.matches("ignoring the proxy set in").count(),
        1,
        "one warning: {stderr}"
    );
    assert!(stderr.contains("HTTP_PROXY"), "{stderr}");
    let crawled: Vec<_> = std::fs::read_dir(Path::new(dir.path()).join("work/crawl"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert!(!crawled.is_empty(), "the crawl wrote its candidates");
    let status = Command::new(env!("CARGO_BIN_EXE_openwit"))
        .args(["status", "work", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let crawl = &v["stages"][0];
    assert_eq!(crawl["stage"], "crawl", "{v}");
    assert_eq!(crawl["state"], "done", "{v}");
    assert!(crawl["items_out"].as_u64().unwrap() > 0, "{v}");
}

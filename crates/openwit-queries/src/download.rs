//! Downloads of URL sources into the workdir, resumed with HTTP range requests.
//!
//! `fetch(url, dir)` writes `dir/<file name>`; while it downloads, the bytes go to
//! `dir/<file name>.part`, and a rerun after an interruption asks the server for the rest
//! (`Range: bytes=N-`), appending on `206 Partial Content` and starting over on `200 OK`. A file
//! that is already complete is not fetched again. Private, loopback and link-local addresses are
//! refused unless `allow_private` (redirects are followed by hand, each hop checked).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openwit_core::net::{GuardedResolver, is_forbidden};

use crate::error::{QueriesError, Result};

fn err(url: &str, msg: impl Into<String>) -> QueriesError {
    QueriesError::Download {
        url: url.to_string(),
        msg: msg.into(),
    }
}

/// The local file name of a URL: its last path segment.
pub fn file_name(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let name = u.path_segments()?.next_back()?.to_string();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// Downloads `url` into `dir` (resuming a partial download); returns the local path.
pub fn fetch(url: &str, dir: &Path, allow_private: bool) -> Result<PathBuf> {
    let name = file_name(url).ok_or_else(|| err(url, "the URL has no file name"))?;
    let dest = dir.join(&name);
    if dest.is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(dir).map_err(|e| QueriesError::io(dir, e))?;
    let part = dir.join(format!("{name}.part"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(url, format!("cannot start a runtime: {e}")))?;
    rt.block_on(download(url, &part, allow_private))?;
    std::fs::rename(&part, &dest).map_err(|e| QueriesError::io(&dest, e))?;
    openwit_core::atomic::sync_dir(dir)?;
    tracing::info!(url, path = %dest.display(), "downloaded");
    Ok(dest)
}

async fn download(url: &str, part: &Path, allow_private: bool) -> Result<()> {
    let client = openwit_core::net::without_env_proxies(reqwest::Client::builder())
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("openwit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| err(url, e.to_string()))?;
    let mut target = url.to_string();
    for _hop in 0..10 {
        let u = url::Url::parse(&target).map_err(|e| err(&target, e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(err(&target, "only http and https URLs are supported"));
        }
        if let Some(host) = u.host_str() {
            let h = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = h.parse::<IpAddr>()
                && !allow_private
                && is_forbidden(&ip)
            {
                return Err(err(
                    &target,
                    format!(
                        "{ip} is not a public address; set allow_private_networks = true to allow it"
                    ),
                ));
            }
        }
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = client.get(u.clone());
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(|e| err(&target, chain(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| err(&target, format!("{status} without Location")))?;
            target = u
                .join(loc)
                .map_err(|e| err(&target, e.to_string()))?
                .to_string();
            continue;
        }
        let append = match status.as_u16() {
            206 if have > 0 => true,
            200 => false,
            416 if have > 0 => return Ok(()), // nothing left: the part file is complete
            _ => return Err(err(&target, format!("HTTP {status}"))),
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(part)
            .map_err(|e| QueriesError::io(part, e))?;
        let expected = resp
            .content_length()
            .map(|l| l + if append { have } else { 0 });
        let mut got = if append { have } else { 0 };
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let _ = f.sync_all();
                    return Err(err(
                        &target,
                        format!("{} at byte {got}; rerun to resume", chain(&e)),
                    ));
                }
            };
            f.write_all(&chunk).map_err(|e| QueriesError::io(part, e))?;
            got += chunk.len() as u64;
        }
        f.sync_all().map_err(|e| QueriesError::io(part, e))?;
        if let Some(exp) = expected
            && got != exp
        {
            return Err(err(
                &target,
                format!("the connection closed at byte {got} of {exp}; rerun to resume"),
            ));
        }
        return Ok(());
    }
    Err(err(url, "more than 10 redirects"))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

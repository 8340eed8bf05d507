//! Downloads of URL sources into the workdir, resumed with HTTP range requests.
//!
//! `fetch(url, dir)` writes `dir/<file name>`; while it downloads, the bytes go to
//! `dir/<file name>.part`, and a rerun after an interruption asks the server for the rest
//! (`Range: bytes=N-`), appending on `206 Partial Content` and starting over on `200 OK`. A file
//! that is already complete is not fetched again. Requests go through the one guarded client
//! ([`openwit_http`]): its user agent, its redirect policy (each hop checked, the `Range`
//! header sent again), private, loopback and link-local addresses refused unless
//! `allow_private_networks`, and the optional `[pipeline] proxy`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openwit_http::{HttpClient, HttpSettings};

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

/// The network settings of the pipeline that downloads use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Net {
    /// `allow_private_networks`.
    pub allow_private: bool,
    /// `[pipeline] proxy`.
    pub proxy: Option<String>,
}

/// Downloads `url` into `dir` (resuming a partial download); returns the local path.
pub fn fetch(url: &str, dir: &Path, net: &Net) -> Result<PathBuf> {
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
    rt.block_on(download(url, &part, net))?;
    std::fs::rename(&part, &dest).map_err(|e| QueriesError::io(&dest, e))?;
    openwit_core::atomic::sync_dir(dir)?;
    tracing::info!(url, path = %dest.display(), "downloaded");
    Ok(dest)
}

async fn download(url: &str, part: &Path, net: &Net) -> Result<()> {
    let client = HttpClient::new(&HttpSettings {
        // dumps are gigabytes: no limit on the whole request, only on connecting
        timeout: None,
        connect_timeout: Duration::from_secs(30),
        allow_private: net.allow_private,
        proxy: net.proxy.clone(),
        // the bytes as sent: `.bz2`/`.gz` files, resumed with Range
        decompress: false,
        ..Default::default()
    })
    .map_err(|e| err(url, e.to_string()))?;
    let first = url::Url::parse(url).map_err(|e| err(url, e.to_string()))?;
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let followed = client
        .get(&first, |_, req| {
            if have > 0 {
                req.header(reqwest::header::RANGE, format!("bytes={have}-"))
            } else {
                req
            }
        })
        .await
        .map_err(|e| err(&e.url, format!("{}: {}", e.reason(), e.message)))?;
    let target = followed.url.to_string();
    let mut resp = followed.response;
    let status = resp.status();
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
                    format!(
                        "{} at byte {got}; rerun to resume",
                        openwit_http::error_chain(&e)
                    ),
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
    Ok(())
}

//! Remote files of the `warc` stage: a blocking `Read` over a download made by the one guarded
//! client of openwit ([`openwit_http::HttpClient`]: address rules on every redirect hop,
//! one redirect policy, the optional `[pipeline] proxy`). The crawl uses that client directly.

use openwit_http::HttpClient;
use url::Url;

/// A blocking `Read` over a remote file, streamed on the tokio runtime (bounded buffer), with
/// redirects followed by hand and each hop checked against the address rules.
pub struct RemoteReader {
    rx: std::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    cur: bytes::Bytes,
    done: bool,
}

impl RemoteReader {
    pub fn open(
        rt: &tokio::runtime::Runtime,
        client: &HttpClient,
        url: &str,
    ) -> Result<Self, crate::SourcesError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(32);
        let client = client.clone();
        let first =
            Url::parse(url).map_err(|e| crate::SourcesError::Input(format!("{url}: {e}")))?;
        let resp = rt.block_on(async move {
            let f = client
                .get(&first, |_, r| r)
                .await
                .map_err(|e| format!("{}: {e}", e.reason()))?;
            if !f.response.status().is_success() {
                return Err(format!("{}: HTTP {}", f.url, f.response.status()));
            }
            Ok(f.response)
        });
        let mut resp = resp.map_err(crate::SourcesError::Http)?;
        rt.spawn(async move {
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        let tx = tx.clone();
                        // the blocking send runs off the async workers
                        let sent =
                            tokio::task::spawn_blocking(move || tx.send(Ok(c)).is_ok()).await;
                        if !matches!(sent, Ok(true)) {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.try_send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(RemoteReader {
            rx,
            cur: bytes::Bytes::new(),
            done: false,
        })
    }
}

impl std::io::Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e));
                }
                Err(_) => self.done = true,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// The guarded client for `settings`; a bad proxy is a configuration error.
pub(crate) fn client(
    settings: &openwit_http::HttpSettings,
) -> Result<HttpClient, crate::SourcesError> {
    HttpClient::new(settings).map_err(|e| match e {
        openwit_core::Error::Config(m) => crate::SourcesError::Config(m),
        e => crate::SourcesError::Http(e.to_string()),
    })
}

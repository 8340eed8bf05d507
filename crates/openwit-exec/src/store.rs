//! The storage layer: one interface over a local folder and an S3-compatible bucket, built on
//! the `object_store` crate.
//!
//! A workdir is a [`Store`]: `s3://bucket/prefix` or a local path. Keys are `/`-separated and
//! relative to the store's root. The calls are blocking (the store drives its own small tokio
//! runtime), because stage tasks run on plain worker threads.
//!
//! S3 settings come from the standard AWS environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` (an S3-compatible server such as Ceph RGW or MinIO; requests are
//! path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`), and when the keys are not in the
//! environment, the profile files `~/.aws/credentials` and `~/.aws/config` (profile
//! `AWS_PROFILE`, default `default`; `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` move
//! them). An `http://` endpoint is allowed as given.
//!
//! The one conditional operation the commit protocol relies on is [`Store::put_if_absent`]
//! (`If-None-Match: *` on S3; an exclusive link on a local folder).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use openwit_core::error::{Error, IoContext, Result};

/// Files up to this size go up in one request; larger ones as a multipart upload in parts of
/// this size.
pub const PART_SIZE: usize = 16 << 20;

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, relative to the store's root.
    pub key: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

/// A workdir's storage: a local folder or an S3 prefix.
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: String,
    url: String,
    local: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// Whether `location` names an object store rather than a local folder.
pub fn is_remote(location: &str) -> bool {
    location.starts_with("s3://")
}

impl Store {
    /// Opens `location`: `s3://bucket/prefix` or a local folder (created if missing).
    pub fn open(location: &str) -> Result<Store> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("openwit-store")
            .enable_all()
            .build()
            .map_err(|e| Error::Stage(format!("cannot start the storage runtime: {e}")))?;
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Config(format!(
                    "workdir `{location}`: no bucket; write it as s3://BUCKET/PREFIX"
                )));
            }
            let s3 = s3_from_env(bucket)?;
            Ok(Store {
                inner: Arc::new(s3),
                root: prefix.trim_matches('/').to_string(),
                url: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
                local: None,
                rt,
            })
        } else {
            let path = PathBuf::from(location);
            std::fs::create_dir_all(&path).at(&path)?;
            let abs = std::fs::canonicalize(&path).at(&path)?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
                .map_err(|e| store_err(location, e))?;
            Ok(Store {
                inner: Arc::new(fs),
                root: String::new(),
                url: abs.display().to_string(),
                local: Some(abs),
                rt,
            })
        }
    }

    /// An in-memory store (tests).
    pub fn memory() -> Store {
        Store {
            inner: Arc::new(object_store::memory::InMemory::new()),
            root: String::new(),
            url: "memory://".into(),
            local: None,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime"),
        }
    }

    /// The store as the user wrote it (`s3://bucket/prefix` or an absolute path).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local folder, for a local store.
    pub fn local_path(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    fn key(&self, key: &str) -> Key {
        if self.root.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{}/{key}", self.root))
        }
    }

    fn rel<'a>(&self, full: &'a str) -> &'a str {
        if self.root.is_empty() {
            full
        } else {
            full.strip_prefix(&self.root)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(full)
        }
    }

    /// Creates `key` with `data` unless it exists. Returns `true` when this call created it,
    /// `false` when the object was already there (its content is left as it was).
    pub fn put_if_absent(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let k = self.key(key);
        match self
            .rt
            .block_on(self.inner.put_opts(&k, PutPayload::from(data), opts))
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(&self.url, e)),
        }
    }

    /// Writes `key` (overwriting).
    pub fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let k = self.key(key);
        self.rt
            .block_on(self.inner.put(&k, PutPayload::from(data)))
            .map(|_| ())
            .map_err(|e| store_err(&self.url, e))
    }

    /// Reads `key`, or `None` when it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let k = self.key(key);
        self.rt.block_on(async {
            match self.inner.get(&k).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
            .map_err(|e| store_err(&self.url, e))
        })
    }

    /// Uploads the local file `src` to `key`: one request up to [`PART_SIZE`], a multipart
    /// upload beyond. Returns its size.
    pub fn upload(&self, src: &Path, key: &str) -> Result<u64> {
        let k = self.key(key);
        let mut f = std::fs::File::open(src).at(src)?;
        let size = f.metadata().at(src)?.len();
        if size as usize <= PART_SIZE {
            let mut buf = Vec::with_capacity(size as usize);
            f.read_to_end(&mut buf).at(src)?;
            self.rt
                .block_on(self.inner.put(&k, PutPayload::from(buf)))
                .map_err(|e| store_err(&self.url, e))?;
            return Ok(size);
        }
        let inner = self.inner.clone();
        self.rt.block_on(async move {
            let mut up = inner
                .put_multipart(&k)
                .await
                .map_err(|e| store_err(key, e))?;
            let mut done = 0u64;
            let res: Result<()> = async {
                loop {
                    let mut part = vec![0u8; PART_SIZE];
                    let mut n = 0;
                    while n < part.len() {
                        let r = f.read(&mut part[n..]).at(src)?;
                        if r == 0 {
                            break;
                        }
                        n += r;
                    }
                    if n == 0 {
                        break;
                    }
                    part.truncate(n);
                    done += n as u64;
                    up.put_part(PutPayload::from(part))
                        .await
                        .map_err(|e| store_err(key, e))?;
                }
                up.complete().await.map_err(|e| store_err(key, e))?;
                Ok(())
            }
            .await;
            if res.is_err() {
                let _ = up.abort().await;
            }
            res.map(|_| done)
        })
    }

    /// Downloads `key` into the local file `dest` (written under a temporary name, then renamed).
    pub fn download(&self, key: &str, dest: &Path) -> Result<u64> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).at(parent)?;
        }
        let tmp = dest.with_extension(format!("part{}", std::process::id()));
        let k = self.key(key);
        let n = self.rt.block_on(async {
            use std::io::Write;
            let r = self
                .inner
                .get(&k)
                .await
                .map_err(|e| store_err(&format!("{}/{key}", self.url), e))?;
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).at(&tmp)?);
            let mut s = r.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = s.next().await {
                let chunk = chunk.map_err(|e| store_err(key, e))?;
                n += chunk.len() as u64;
                f.write_all(&chunk).at(&tmp)?;
            }
            f.into_inner()
                .map_err(|e| Error::io(&tmp, e.into_error()))?
                .sync_all()
                .at(&tmp)?;
            Ok::<u64, Error>(n)
        });
        match n {
            Ok(n) => {
                std::fs::rename(&tmp, dest).at(dest)?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Every object under `prefix` (recursively), sorted by key.
    pub fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let p = self.key(prefix.trim_end_matches('/'));
        let mut out = self.rt.block_on(async {
            let mut s = self.inner.list(Some(&p));
            let mut out = Vec::new();
            while let Some(m) = s.next().await {
                let m = m.map_err(|e| store_err(&self.url, e))?;
                out.push(Entry {
                    key: self.rel(m.location.as_ref()).to_string(),
                    size: m.size,
                    modified: m.last_modified.timestamp(),
                });
            }
            Ok::<_, Error>(out)
        })?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Deletes `key` (a missing key is not an error).
    pub fn delete(&self, key: &str) -> Result<()> {
        let k = self.key(key);
        match self.rt.block_on(self.inner.delete(&k)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(&self.url, e)),
        }
    }
}

fn store_err(what: &str, e: object_store::Error) -> Error {
    Error::Stage(format!("storage {what}: {e}"))
}

/// An S3 client for `bucket` from the standard AWS environment and profile files.
fn s3_from_env(bucket: &str) -> Result<object_store::aws::AmazonS3> {
    use object_store::aws::AmazonS3Builder;
    // reqwest is built without a bundled TLS provider: use ring, as the rest of the binary does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_disable_tagging(true);
    if !env.contains_key("AWS_ACCESS_KEY_ID") {
        let profile = env
            .get("AWS_PROFILE")
            .cloned()
            .unwrap_or_else(|| "default".into());
        let home = env.get("HOME").cloned().unwrap_or_default();
        let creds = env
            .get("AWS_SHARED_CREDENTIALS_FILE")
            .cloned()
            .unwrap_or_else(|| format!("{home}/.aws/credentials"));
        let config = env
            .get("AWS_CONFIG_FILE")
            .cloned()
            .unwrap_or_else(|| format!("{home}/.aws/config"));
        let mut keys = read_profile(Path::new(&creds), &profile);
        for (k, v) in read_profile(Path::new(&config), &format!("profile {profile}"))
            .into_iter()
            .chain(read_profile(Path::new(&config), &profile))
        {
            keys.entry(k).or_insert(v);
        }
        if let Some(v) = keys.get("aws_access_key_id") {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = keys.get("aws_secret_access_key") {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = keys.get("aws_session_token") {
            b = b.with_token(v);
        }
        if !env.contains_key("AWS_REGION")
            && !env.contains_key("AWS_DEFAULT_REGION")
            && let Some(v) = keys.get("region")
        {
            b = b.with_region(v);
        }
        if !env.contains_key("AWS_ENDPOINT_URL")
            && let Some(v) = keys.get("endpoint_url")
        {
            b = b.with_endpoint(v);
        }
    }
    let endpoint = env
        .get("AWS_ENDPOINT_URL")
        .or_else(|| env.get("AWS_ENDPOINT"))
        .cloned();
    if let Some(e) = &endpoint {
        b = b.with_endpoint(e);
        if e.starts_with("http://") {
            b = b.with_allow_http(true);
        }
    }
    b.build().map_err(|e| {
        Error::Config(format!(
            "s3://{bucket}: {e}; set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and (for \
             a server other than AWS) AWS_ENDPOINT_URL, or a profile in ~/.aws/credentials"
        ))
    })
}

/// The `key = value` lines of `[section]` in an AWS INI file (missing file: nothing).
fn read_profile(path: &Path, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &Store) {
        assert!(s.put_if_absent("a/m.json", b"one".to_vec()).unwrap());
        assert!(!s.put_if_absent("a/m.json", b"two".to_vec()).unwrap());
        assert_eq!(s.get("a/m.json").unwrap().unwrap().as_ref(), b"one");
        assert_eq!(s.get("a/none").unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let data: Vec<u8> = (0..PART_SIZE + 12345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&big, &data).unwrap();
        assert_eq!(s.upload(&big, "b/big.bin").unwrap(), data.len() as u64);
        let back = dir.path().join("x/back");
        s.download("b/big.bin", &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), data);
        let keys: Vec<String> = s.list("").unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, vec!["a/m.json", "b/big.bin"]);
        assert_eq!(s.list("b").unwrap()[0].size, data.len() as u64);
        s.delete("b/big.bin").unwrap();
        s.delete("b/big.bin").unwrap();
        assert_eq!(s.list("b").unwrap(), vec![]);
    }

    #[test]
    fn memory_store_roundtrip() {
        roundtrip(&Store::memory());
    }

    #[test]
    fn local_store_roundtrip_and_exclusive_create() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("w").to_str().unwrap()).unwrap();
        roundtrip(&s);
        // Concurrent creators of one key: exactly one wins.
        let s = Arc::new(s);
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let s = s.clone();
                    sc.spawn(move || s.put_if_absent("race", vec![i as u8]).unwrap() as usize)
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    }

    #[test]
    fn s3_location_needs_a_bucket() {
        let e = Store::open("s3:///x").unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
    }

    #[test]
    fn profile_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials");
        std::fs::write(
            &p,
            "[default]\naws_access_key_id = A\n[other]\n# note\naws_access_key_id=B\naws_secret_access_key = S\n",
        )
        .unwrap();
        let o = read_profile(&p, "other");
        assert_eq!(o.get("aws_access_key_id").unwrap(), "B");
        assert_eq!(o.get("aws_secret_access_key").unwrap(), "S");
        assert_eq!(read_profile(&p, "default").len(), 1);
        assert!(read_profile(&dir.path().join("missing"), "default").is_empty());
    }
}

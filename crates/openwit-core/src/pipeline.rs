//! The `[pipeline]` table shared by every stage.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

fn default_workdir() -> PathBuf {
    PathBuf::from("work")
}
fn default_attempts() -> u32 {
    3
}
crate::config_ranges! {
    /// `jobs`: 0 (the number of cores) to 4096.
    fn jobs = crate::config::Range::new(0.0, 4096.0, "tasks at once");
}

/// Settings of the whole pipeline (the `[pipeline]` table of a pipeline file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// A name for people (reports, logs). Default: the pipeline file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where all outputs and the run state live, relative to the current directory.
    /// Default `work`. `--workdir` overrides it.
    #[serde(default = "default_workdir")]
    pub workdir: PathBuf,
    /// Tasks run at once; 0 means the number of cores. Default 0 (range 0 to 4096). `--jobs`
    /// overrides it.
    #[serde(default, deserialize_with = "jobs")]
    pub jobs: usize,
    /// Attempts per task before its stage fails. Default 3 (range 1 to 100).
    #[serde(
        default = "default_attempts",
        deserialize_with = "crate::config::range::attempts"
    )]
    pub max_attempts: u32,
    /// Seed of every random choice (sampling, shuffles), so runs are reproducible. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Allow requests to private, loopback and link-local addresses. Default false; tests and
    /// the bundled demo (which serves its site on 127.0.0.1) set it.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// The proxy every HTTP request goes through (crawl, WARC files, download, queries
    /// downloads): an `http://` or `https://` URL such as `http://proxy.example:3128`. Default:
    /// none (proxy environment variables are ignored). Host names are still resolved and checked
    /// by openwit before each request; see `openwit_http` for the `https://` caveat.
    #[serde(
        default,
        deserialize_with = "proxy_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy: Option<String>,
}

/// `proxy`: checked on load, so a bad value stops the run with `file:line:column`.
fn proxy_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    parse_proxy(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s.trim().to_string()))
}

/// Whether `proxy` is a usable `[pipeline] proxy` value: an `http://` or `https://` URL with a
/// host (user:password allowed), nothing after the port. The error says what to write.
pub fn parse_proxy(proxy: &str) -> Result<url::Url, String> {
    let fix = "write it as http://HOST:PORT or https://HOST:PORT (for example \"http://proxy.example:3128\")";
    let u = url::Url::parse(proxy.trim())
        .map_err(|e| format!("proxy `{proxy}` is not a URL ({e}); {fix}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "proxy `{proxy}`: only http:// and https:// proxies are supported; {fix}"
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("proxy `{proxy}` has no host; {fix}"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "proxy `{proxy}` has a path, query or fragment; {fix}"
        ));
    }
    Ok(u)
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            name: None,
            workdir: default_workdir(),
            jobs: 0,
            max_attempts: default_attempts(),
            seed: 0,
            allow_private_networks: false,
            proxy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_is_checked_on_load() {
        let p: PipelineSettings = toml::from_str("").unwrap();
        assert_eq!(p.proxy, None);
        let p: PipelineSettings = toml::from_str("proxy = \"http://proxy.example:3128\"").unwrap();
        assert_eq!(p.proxy.as_deref(), Some("http://proxy.example:3128"));
        for bad in ["socks5://h:1", "h:3128", "http://h:1/x", "\"\""] {
            let text = if bad.starts_with('"') {
                format!("proxy = {bad}")
            } else {
                format!("proxy = \"{bad}\"")
            };
            let err = toml::from_str::<PipelineSettings>(&text).unwrap_err();
            assert!(err.to_string().contains("http://HOST:PORT"), "{bad}: {err}");
        }
    }
}

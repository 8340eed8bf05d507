//! Strict TOML parsing with `file:line:column` errors, and configuration fingerprints.
//!
//! Stage configs are plain `serde` structs with `#[serde(deny_unknown_fields)]`; [`parse_toml`]
//! turns serde's message ("unknown field `x`, expected one of `a`, `b`") into an error that
//! names the file, the line and the column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Parses `text` (read from `path`) into `T`, rejecting unknown keys and wrong types with the
/// file, line and column of the offending key.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let msg = e.message().trim().to_string();
        let hint = if msg.contains("unknown field") {
            "\n  fix: remove or rename the key; pipelines/README.md lists every key and its default"
        } else if msg.contains("invalid type") || msg.contains("invalid value") {
            "\n  fix: give the key a value of the type named above (see pipelines/README.md)"
        } else {
            ""
        };
        let snippet = text.lines().nth(line - 1).unwrap_or("").trim_end();
        Error::Config(format!(
            "{}:{line}:{col}: {msg}\n  | {snippet}{hint}",
            path.display()
        ))
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before[i + 1..].chars().count())
        .unwrap_or_else(|| before.chars().count())
        + 1;
    (line, col)
}

/// Flattens a JSON value into dotted keys (`download.resize_mode`) with canonical JSON values.
/// Key order is sorted, whatever the map implementation.
pub fn flatten(value: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// A stable hash of a configuration value (sha256 of its flattened, sorted form).
pub fn fingerprint(value: &Value) -> String {
    let mut h = Sha256::new();
    for (k, v) in flatten(value) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The dotted keys whose values differ between two configurations (added and removed keys too).
pub fn changed_keys(old: &Value, new: &Value) -> Vec<String> {
    let a = flatten(old);
    let b = flatten(new);
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    for k in b.keys() {
        if !a.contains_key(k) {
            keys.push(k.clone());
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        name: String,
        #[serde(default)]
        size: u32,
    }

    #[test]
    fn unknown_key_names_file_line_and_valid_keys() {
        let text = "name = \"x\"\n\nsiz = 3\n";
        let err = parse_toml::<Cfg>(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:3:1: unknown field `siz`"), "{err}");
        assert!(err.contains("`name`") && err.contains("`size`"), "{err}");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = "name = \"x\"\nsize = \"big\"\n";
        let err = parse_toml::<Cfg>(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:2:8:"), "{err}");
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn changed_keys_and_fingerprint() {
        let a = serde_json::json!({"t": 20000, "lang": {"min": 0.5}, "x": [1, 2]});
        let b = serde_json::json!({"t": 100, "lang": {"min": 0.5}, "x": [1, 2], "new": true});
        assert_eq!(
            changed_keys(&a, &b),
            vec!["new".to_string(), "t".to_string()]
        );
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}

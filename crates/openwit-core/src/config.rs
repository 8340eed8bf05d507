//! Strict TOML parsing with `file:line:column` errors, checked numbers, and configuration
//! fingerprints.
//!
//! Stage configs are plain `serde` structs with `#[serde(deny_unknown_fields)]`; [`parse_toml`]
//! turns serde's message ("unknown field `x`, expected one of `a`, `b`") into an error that
//! names the file, the line and the column.
//!
//! Numbers are checked as they are read: every numeric key of a stage config names its range
//! with `#[serde(deserialize_with = "...")]`, either a shared class of [`range`] (timeouts,
//! delays, attempts, concurrency, counts, ...) or its own [`Range`] through [`in_range`]. A value
//! that is not finite (`inf`, `nan`) or lies outside the range fails deserialization with a
//! message naming the range, and TOML's deserializer locates that error at the value, so the
//! user sees `file:line:column`. [`reject_non_finite`] refuses `inf` and `nan` anywhere in a
//! document, for keys that have no range of their own.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use serde::Deserializer;
use serde::de::{self, DeserializeOwned, Unexpected, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Parses `text` (read from `path`) into `T`, rejecting unknown keys and wrong types with the
/// file, line and column of the offending key.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| located(path, text, &e))
}

/// A TOML (de)serialization error of `text` (read from `path`) as a configuration error that
/// starts with `file:line:column`, quotes the line and says how to fix it.
pub fn located(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    let msg = e.message().trim();
    let hint = if msg.contains(OUT_OF_RANGE) || msg.contains(NOT_FINITE) {
        "\n  fix: use a value in the range named above (pipelines/README.md gives every key's range)"
    } else if msg.contains("overflowed") || msg.contains("as i128") {
        "\n  fix: the number is too large for any key; pipelines/README.md gives every key's range"
    } else if msg.contains("unknown field") {
        "\n  fix: remove or rename the key; pipelines/README.md lists every key and its default"
    } else if msg.contains("invalid type") || msg.contains("invalid value") {
        "\n  fix: give the key a value of the type named above (see pipelines/README.md)"
    } else if msg.contains("missing field") {
        "\n  fix: add the key named above to the table (see pipelines/README.md)"
    } else {
        ""
    };
    let snippet = text.lines().nth(line - 1).unwrap_or("").trim_end();
    Error::Config(format!(
        "{}:{line}:{col}: {msg}\n  | {snippet}{hint}",
        path.display()
    ))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // An offset inside a multi-byte character counts as that character's start.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before[i + 1..].chars().count())
        .unwrap_or_else(|| before.chars().count())
        + 1;
    (line, col)
}

const OUT_OF_RANGE: &str = "out of range";
const NOT_FINITE: &str = "not a finite number";

/// The values a numeric key takes: from `min` to `max`, both included, finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
    /// What the number counts, for messages: `seconds`, `bytes`, `requests in flight`, ...
    pub unit: &'static str,
}

impl Range {
    pub const fn new(min: f64, max: f64, unit: &'static str) -> Range {
        Range { min, max, unit }
    }

    fn contains(&self, v: f64) -> bool {
        v >= self.min && v <= self.max
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} from {} to {}",
            self.unit,
            Number(self.min),
            Number(self.max)
        )
    }
}

/// A number written for people: `86400`, `0.001`, `1e12`, `inf`, `nan`.
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("nan")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "inf" } else { "-inf" })
        } else if v != 0.0 && !(1e-4..1e10).contains(&v.abs()) {
            write!(f, "{v:e}")
        } else {
            write!(f, "{v}")
        }
    }
}

/// A number as TOML gives it.
enum Raw {
    Int(i128),
    Float(f64),
}

struct RawVisitor<'r>(&'r Range);

impl Visitor<'_> for RawVisitor<'_> {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number: {}", self.0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
}

fn out_of_range<E: de::Error>(v: f64, shown: &dyn fmt::Display, range: &Range) -> E {
    let what = if v.is_finite() {
        OUT_OF_RANGE
    } else {
        NOT_FINITE
    };
    E::custom(format_args!("{what}: {shown}; expected {range}"))
}

/// A type a numeric key can have: the integers, `f32`, `f64`, and `Option`s of them (for keys
/// whose absence means "no limit").
pub trait ConfigNumber: Sized {
    /// Reads the value and checks it against `range`.
    fn deserialize_in<'de, D: Deserializer<'de>>(d: D, range: &Range) -> Result<Self, D::Error>;
}

macro_rules! config_int {
    ($($t:ty),*) => {$(
        impl ConfigNumber for $t {
            fn deserialize_in<'de, D: Deserializer<'de>>(
                d: D,
                range: &Range,
            ) -> Result<Self, D::Error> {
                match d.deserialize_any(RawVisitor(range))? {
                    Raw::Int(v) => {
                        // f64 rounds above 2^53, far beyond every key's maximum.
                        if !range.contains(v as f64) {
                            return Err(out_of_range(v as f64, &v, range));
                        }
                        <$t>::try_from(v).map_err(|_| out_of_range(v as f64, &v, range))
                    }
                    Raw::Float(v) if !v.is_finite() => Err(out_of_range(v, &Number(v), range)),
                    Raw::Float(v) => Err(de::Error::invalid_type(
                        Unexpected::Float(v),
                        &format!("a whole number: {range}").as_str(),
                    )),
                }
            }
        }
    )*};
}
config_int!(u8, u16, u32, u64, usize, i32, i64);

impl ConfigNumber for f64 {
    fn deserialize_in<'de, D: Deserializer<'de>>(d: D, range: &Range) -> Result<Self, D::Error> {
        let v = match d.deserialize_any(RawVisitor(range))? {
            Raw::Int(v) => v as f64,
            Raw::Float(v) => v,
        };
        if v.is_finite() && range.contains(v) {
            Ok(v)
        } else {
            Err(out_of_range(v, &Number(v), range))
        }
    }
}

impl ConfigNumber for f32 {
    fn deserialize_in<'de, D: Deserializer<'de>>(d: D, range: &Range) -> Result<Self, D::Error> {
        // The ranges of f32 keys lie well inside f32's.
        f64::deserialize_in(d, range).map(|v| v as f32)
    }
}

impl<T: ConfigNumber> ConfigNumber for Option<T> {
    fn deserialize_in<'de, D: Deserializer<'de>>(d: D, range: &Range) -> Result<Self, D::Error> {
        T::deserialize_in(d, range).map(Some)
    }
}

/// Reads a number and checks that it is finite and inside `range`; for a key's own range:
///
/// ```
/// # use openwit_core::config::{ConfigNumber, Range, in_range};
/// fn jpeg_quality<'de, D: serde::Deserializer<'de>, T: ConfigNumber>(d: D) -> Result<T, D::Error> {
///     in_range(d, Range::new(1.0, 100.0, "a JPEG quality"))
/// }
/// #[derive(serde::Deserialize)]
/// struct Cfg {
///     #[serde(deserialize_with = "jpeg_quality")]
///     quality: u8,
/// }
/// assert!(toml::from_str::<Cfg>("quality = 95").is_ok());
/// assert!(toml::from_str::<Cfg>("quality = 0").is_err());
/// ```
pub fn in_range<'de, D: Deserializer<'de>, T: ConfigNumber>(
    d: D,
    range: Range,
) -> Result<T, D::Error> {
    T::deserialize_in(d, &range)
}

/// The ranges shared by many keys, as `deserialize_with` functions
/// (`#[serde(deserialize_with = "openwit_core::config::range::timeout")]`). Each works for every
/// [`ConfigNumber`] type, so one class covers `f64` seconds and whole `u64` seconds alike.
/// `pipelines/README.md` gives every key's range.
pub mod range {
    use super::Range;

    /// One day, in seconds: the longest timeout or delay anyone means.
    pub const DAY_SECS: f64 = 86_400.0;
    /// The largest count (of pages, entries, rows, views, ...) a key takes: 10^12.
    pub const MAX_COUNT: f64 = 1e12;

    /// Timeouts: seconds above 0 (from 0.001) up to a day.
    pub const TIMEOUT: Range = Range::new(0.001, DAY_SECS, "seconds");
    /// Delays and waits: seconds from 0 up to a day.
    pub const DELAY: Range = Range::new(0.0, DAY_SECS, "seconds");
    /// Delays in milliseconds: from 0 up to a day.
    pub const DELAY_MS: Range = Range::new(0.0, DAY_SECS * 1000.0, "milliseconds");
    /// Attempts of one thing: 1 to 100.
    pub const ATTEMPTS: Range = Range::new(1.0, 100.0, "attempts");
    /// Retries after the first attempt: 0 to 100.
    pub const RETRIES: Range = Range::new(0.0, 100.0, "retries");
    /// Requests in flight at once: 1 to 10,000.
    pub const CONCURRENCY: Range = Range::new(1.0, 10_000.0, "requests in flight");
    /// A number of things that must be at least 1 (pages, entries, rows, files): up to 10^12.
    pub const COUNT: Range = Range::new(1.0, MAX_COUNT, "a count");
    /// A threshold on a count, where 0 means no threshold: 0 to 10^12.
    pub const MIN_COUNT: Range = Range::new(0.0, MAX_COUNT, "a count");
    /// A fraction or probability: 0 to 1.
    pub const FRACTION: Range = Range::new(0.0, 1.0, "a fraction");
    /// An image side in pixels: 0 to 65,535 (JPEG's limit).
    pub const PIXELS: Range = Range::new(0.0, 65_535.0, "pixels");

    crate::config_ranges! {
        /// [`TIMEOUT`]
        pub fn timeout = TIMEOUT;
        /// [`DELAY`]
        pub fn delay = DELAY;
        /// [`DELAY_MS`]
        pub fn delay_ms = DELAY_MS;
        /// [`ATTEMPTS`]
        pub fn attempts = ATTEMPTS;
        /// [`RETRIES`]
        pub fn retries = RETRIES;
        /// [`CONCURRENCY`]
        pub fn concurrency = CONCURRENCY;
        /// [`COUNT`]
        pub fn count = COUNT;
        /// [`MIN_COUNT`]
        pub fn min_count = MIN_COUNT;
        /// [`FRACTION`]
        pub fn fraction = FRACTION;
        /// [`PIXELS`]
        pub fn pixels = PIXELS;
    }
}

/// Defines `deserialize_with` functions that check a key's range (see [`config::in_range`]):
///
/// ```
/// use openwit_core::config::Range;
/// openwit_core::config_ranges! {
///     /// JPEG quality: 1 to 100.
///     fn jpeg_quality = Range::new(1.0, 100.0, "JPEG quality");
/// }
/// #[derive(serde::Deserialize)]
/// struct Cfg {
///     #[serde(deserialize_with = "jpeg_quality")]
///     quality: u8,
/// }
/// assert!(toml::from_str::<Cfg>("quality = 95").is_ok());
/// assert!(toml::from_str::<Cfg>("quality = 101").is_err());
/// ```
///
/// [`config::in_range`]: crate::config::in_range
#[macro_export]
macro_rules! config_ranges {
    ($($(#[$doc:meta])* $vis:vis fn $name:ident = $range:expr;)*) => {$(
        $(#[$doc])*
        $vis fn $name<'de, D, T>(d: D) -> ::std::result::Result<T, D::Error>
        where
            D: $crate::config::Deserializer<'de>,
            T: $crate::config::ConfigNumber,
        {
            $crate::config::in_range(d, $range)
        }
    )*};
}

/// Refuses `inf`, `-inf` and `nan` anywhere in the TOML document `text` (read from `path`),
/// with `file:line:column`: no key of a pipeline file means them, and a key without a range of
/// its own would otherwise pass them on to the code that uses it. Syntax errors are located too.
pub fn reject_non_finite(path: &Path, text: &str) -> Result<()> {
    use toml::de::{DeTable, DeValue};
    fn walk(v: &toml::Spanned<DeValue<'_>>, path: &Path, text: &str) -> Result<()> {
        match v.get_ref() {
            DeValue::Float(f) => {
                let s = f.as_str();
                // `inf`, `nan` and values too large for f64 (`1e400`) alike.
                if !s.parse::<f64>().is_ok_and(f64::is_finite) {
                    let (line, col) = line_col(text, v.span().start);
                    let snippet = text.lines().nth(line - 1).unwrap_or("").trim_end();
                    return Err(Error::Config(format!(
                        "{}:{line}:{col}: {NOT_FINITE}: {s}; numbers in a pipeline file must be finite\n  | {snippet}\n  fix: use a value in the key's range (pipelines/README.md gives every key's range)",
                        path.display()
                    )));
                }
                Ok(())
            }
            DeValue::Array(items) => items.iter().try_for_each(|i| walk(i, path, text)),
            DeValue::Table(t) => t.values().try_for_each(|i| walk(i, path, text)),
            _ => Ok(()),
        }
    }
    let doc = DeTable::parse(text).map_err(|e| located(path, text, &e))?;
    doc.get_ref().values().try_for_each(|v| walk(v, path, text))
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Checked {
        #[serde(default, deserialize_with = "range::timeout")]
        timeout: f64,
        #[serde(default, deserialize_with = "range::concurrency")]
        concurrency: usize,
        #[serde(default, deserialize_with = "range::count")]
        limit: Option<u64>,
        #[serde(default, deserialize_with = "range::fraction")]
        share: f32,
    }

    fn checked(text: &str) -> std::result::Result<Checked, String> {
        parse_toml::<Checked>(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_in_range_pass_and_keep_their_value() {
        let c = checked("timeout = 2.5\nconcurrency = 64\nlimit = 10\nshare = 1\n").unwrap();
        assert_eq!(
            (c.timeout, c.concurrency, c.limit, c.share),
            (2.5, 64, Some(10), 1.0)
        );
        // An integer where seconds are fractional, both ends of a range.
        let c = checked("timeout = 86400\nconcurrency = 1\nshare = 0.0\n").unwrap();
        assert_eq!((c.timeout, c.concurrency, c.limit), (86400.0, 1, None));
    }

    #[test]
    fn bad_numbers_are_located_and_name_the_range() {
        // (text, 1-based column of the value, what the message says)
        let cases = [
            (
                "timeout = inf",
                11,
                "not a finite number: inf; expected seconds from 0.001 to 86400",
            ),
            ("timeout = -inf", 11, "not a finite number: -inf"),
            ("timeout = nan", 11, "not a finite number: nan"),
            ("timeout = 1e20", 11, "out of range: 1e20; expected seconds"),
            (
                "timeout = 0",
                11,
                "out of range: 0; expected seconds from 0.001",
            ),
            ("timeout = -1", 11, "out of range: -1;"),
            (
                "concurrency = 0",
                15,
                "out of range: 0; expected requests in flight from 1 to 10000",
            ),
            (
                "concurrency = 9223372036854775807",
                15,
                "out of range: 9223372036854775807;",
            ),
            (
                "concurrency = 2.5",
                15,
                "invalid type: floating point `2.5`, expected a whole number",
            ),
            ("concurrency = inf", 15, "not a finite number: inf"),
            (
                "limit = 0",
                9,
                "out of range: 0; expected a count from 1 to 1e12",
            ),
            (
                "share = 1.5",
                9,
                "out of range: 1.5; expected a fraction from 0 to 1",
            ),
            (
                "share = \"half\"",
                9,
                "invalid type: string \"half\", expected a number: a fraction",
            ),
        ];
        for (text, col, want) in cases {
            let e = checked(&format!("\n{text}\n")).unwrap_err();
            assert!(e.starts_with(&format!("c.toml:2:{col}: ")), "{text}: {e}");
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains(&format!("| {text}")), "{text}: {e}");
        }
        let e = checked("timeout = inf").unwrap_err();
        assert!(e.contains("fix: use a value in the range"), "{e}");
    }

    #[test]
    fn non_finite_numbers_are_refused_anywhere_in_a_document() {
        let p = Path::new("d.toml");
        reject_non_finite(p, "[a]\nx = 1.5\ny = [1, 2.0]\nz = { w = -3e5 }\n").unwrap();
        for (text, at) in [
            ("[a]\nx = inf\n", "d.toml:2:5: not a finite number: inf"),
            (
                "[a]\nb = { c = [1.0, -nan] }\n",
                "d.toml:2:17: not a finite number: -nan",
            ),
            (
                "[a.b]\n\nc = +inf\n",
                "d.toml:3:5: not a finite number: +inf",
            ),
            ("[a]\nx = 1e400\n", "d.toml:2:5: not a finite number: 1e400"),
        ] {
            let e = reject_non_finite(p, text).unwrap_err().to_string();
            assert!(e.starts_with(at), "{text:?}: {e}");
        }
        // Syntax errors are located as well.
        let e = reject_non_finite(p, "[a]\nx = \n").unwrap_err().to_string();
        assert!(e.starts_with("d.toml:2:"), "{e}");
    }

    #[test]
    fn line_col_counts_characters_and_survives_an_offset_inside_one() {
        let text = "a = \"\u{e9}t\u{e9}\"\nb = 1\n";
        assert_eq!(line_col(text, text.find('b').unwrap()), (2, 1));
        // Byte 6 lies inside the first \u{e9} (bytes 5 and 6).
        assert_eq!(line_col(text, 6), (1, 6));
        assert_eq!(line_col(text, 8), (1, 8));
        assert_eq!(line_col(text, 1000), (3, 1));
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

//! HTML character references, decoded as Python's `html.unescape` does (open_clip runs it
//! twice after ftfy) and as ftfy's `unescape_html` does (only whole references that end in
//! `;`, plus upper-cased names of lower-case entities such as `&EACUTE;`).
//!
//! The names are WHATWG's HTML5 list, which `htmlize` ships (`htmlize::ENTITIES`, the same 2,231
//! names as Python's `html.entities.html5`, legacy ones without `;` included).

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{Captures, Regex};

use super::codecs::Charmap;

fn entity(name: &str) -> Option<&'static str> {
    // ENTITIES keys include the leading `&`.
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(b'&');
    key.extend_from_slice(name.as_bytes());
    htmlize::ENTITIES
        .get(&key[..])
        .map(|v| std::str::from_utf8(v).expect("entity values are UTF-8"))
}

/// What Python's `html.unescape` makes of a numeric reference to `num` (saturated).
fn numeric(num: u64) -> String {
    match num {
        0 => "\u{fffd}".into(),
        0x0d => "\r".into(),
        // Windows-1252's reading of C1 bytes, its holes kept as they are.
        0x80..=0x9f => Charmap::SloppyWindows1252.decode_table()[num as usize].to_string(),
        0xd800..=0xdfff => "\u{fffd}".into(),
        n if n > 0x10ffff => "\u{fffd}".into(),
        0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef => String::new(),
        n if n & 0xfffe == 0xfffe => String::new(),
        n => char::from_u32(n as u32).unwrap().to_string(),
    }
}

fn parse_saturating(digits: &str, radix: u32) -> u64 {
    digits.chars().fold(0u64, |acc, c| {
        acc.saturating_mul(radix as u64)
            .saturating_add(c.to_digit(radix).unwrap() as u64)
            .min(u64::MAX / 32)
    })
}

fn charref_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)").unwrap()
    })
}

fn replace_charref(s: &str) -> String {
    if let Some(num) = s.strip_prefix('#') {
        let num = num.trim_end_matches(';');
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => parse_saturating(hex, 16),
            None => parse_saturating(num, 10),
        };
        return numeric(n);
    }
    if let Some(v) = entity(s) {
        return v.to_string();
    }
    // The longest prefix (of at least two characters) that is a legacy name without `;`.
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(2).collect();
    for &x in bounds.iter().rev() {
        if let Some(v) = entity(&s[..x]) {
            return format!("{v}{}", &s[x..]);
        }
    }
    format!("&{s}")
}

/// Python's `html.unescape`.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    charref_regex()
        .replace_all(s, |c: &Captures<'_>| replace_charref(&c[1]))
        .into_owned()
}

/// ftfy's table: every HTML5 name ending in `;`, plus the all-capitals spelling of each
/// lower-case name when that spelling means nothing to `html.unescape` (`&EACUTE;` -> `É`).
fn ftfy_entities() -> &'static HashMap<String, String> {
    static MAP: OnceLock<HashMap<String, String>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for (k, v) in htmlize::ENTITIES.entries() {
            let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) else {
                continue;
            };
            if !k.ends_with(';') {
                continue;
            }
            m.insert(k.to_string(), v.to_string());
            if k == k.to_lowercase() {
                let upper = k.to_uppercase();
                if unescape(&upper) == upper {
                    m.insert(upper, v.to_uppercase());
                }
            }
        }
        m
    })
}

fn ftfy_entity_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").unwrap())
}

/// ftfy's `unescape_html`.
pub fn unescape_ftfy(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let table = ftfy_entities();
    ftfy_entity_regex()
        .replace_all(s, |c: &Captures<'_>| {
            let m = &c[0];
            if let Some(v) = table.get(m) {
                v.clone()
            } else if m.starts_with("&#") {
                let u = unescape(m);
                if u.contains(';') { m.to_string() } else { u }
            } else {
                m.to_string()
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_html_unescape() {
        assert_eq!(unescape("&amp;"), "&");
        assert_eq!(unescape("&AmP;"), "&AmP;");
        assert_eq!(unescape("&AMP;"), "&");
        assert_eq!(unescape("&ampx;"), "&x;");
        assert_eq!(unescape("&notit;"), "¬it;");
        assert_eq!(unescape("&notin;"), "∉");
        assert_eq!(unescape("&#233;&#xE9;&#XE9"), "ééé");
        assert_eq!(unescape("&#0;&#13;&#150;&#129;"), "\u{fffd}\r–\u{81}");
        assert_eq!(
            unescape("&#xD800;&#x110000;&#99999999999999999999;"),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(unescape("a&#1;b&#xFFFF;c&#xFDD0;"), "abc");
        assert_eq!(unescape("&bogus; & &;"), "&bogus; & &;");
        assert_eq!(unescape("&eacuteé"), "éé");
    }

    #[test]
    fn ftfy_unescape_html() {
        assert_eq!(unescape_ftfy("&lt;tag&gt;"), "<tag>");
        assert_eq!(unescape_ftfy("P&EACUTE;REZ"), "PÉREZ");
        assert_eq!(unescape_ftfy("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
        assert_eq!(
            unescape_ftfy("&ntilde; &Ntilde; &NTILDE; &nTILDE;"),
            "ñ Ñ Ñ &nTILDE;"
        );
        assert_eq!(
            unescape_ftfy("&amp &AmP; &#59; &#x41;"),
            "&amp &AmP; &#59; A"
        );
    }
}

//! A port of ftfy 6.3's `fix_text` with its default options, the first step of open_clip's text
//! cleaning: HTML entities (unless the line has a `<`), terminal escapes, mojibake (UTF-8 read
//! as Latin-1, Windows-125x, ISO 8859-2, Mac Roman or code page 437, also twice, also with its
//! non-breaking spaces turned into spaces or its unknown bytes into `�`/`?`, also embedded in
//! correct text), C1 controls, Latin ligatures, full-width forms, curly quotes, line breaks,
//! control characters and NFC, per line, repeated until nothing changes.
//!
//! This is our own implementation of the published algorithm (ftfy is Apache-2.0 Python; no
//! Rust crate reproduces it). The tables ftfy computes from Unicode data and Python's codecs
//! are computed here from `encoding_rs`, `unicode-normalization` and `htmlize` (and a code page
//! 437 table generated with Python's `codecs`, `scripts/gen_cp437.py`); the tokenizer parity
//! test compares the whole cleaning with open_clip's on 20,000 captions.

mod badness;
pub mod codecs;
mod cp437;
pub mod html;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use unicode_normalization::UnicodeNormalization;

pub use badness::is_bad;
use codecs::{Charmap, decode_utf8_variants, latin1_as_strict_windows_1252};

/// ftfy's `max_decode_length`: longer lines are fixed in pieces of this many characters.
const MAX_SEGMENT: usize = 1_000_000;

/// ftfy's `fix_text(text)` with the default `TextFixerConfig`.
pub fn fix_text(text: &str) -> String {
    if is_plain(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut unescape = true;
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        // (A line of at most MAX_SEGMENT bytes has at most that many characters.)
        let end = if line_end > MAX_SEGMENT {
            rest[..line_end]
                .char_indices()
                .nth(MAX_SEGMENT)
                .map_or(line_end, |(i, _)| i)
        } else {
            line_end
        };
        let segment = &rest[..end];
        // Once a line has a `<` (HTML), entities are kept in that line and all after it.
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
        rest = &rest[end..];
    }
    out
}

/// Text none of ftfy's fixes change: printable ASCII, tabs and newlines, and no `&`.
fn is_plain(text: &str) -> bool {
    text.bytes()
        .all(|b| ((0x20..0x7f).contains(&b) && b != b'&') || b == b'\n' || b == b'\t')
}

/// ftfy's `fix_and_explain` on one segment, without the explanation.
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = html::unescape_ftfy(&text);
        }
        text = fix_encoding(&text);
        text = fix_c1_controls(&text).into_owned();
        text = fix_simple(&text);
        text = remove_terminal_escapes(&text).into_owned();
        text.retain(|c| !is_control(c));
        if unicode_normalization::is_nfc_quick(text.chars())
            != unicode_normalization::IsNormalized::Yes
        {
            text = text.nfc().collect();
        }
        if text == orig {
            return text;
        }
    }
}

/// `fix_latin_ligatures`, `fix_character_width`, `uncurl_quotes`, `fix_line_breaks` (in that
/// order; none makes input for an earlier one except ligatures for `uncurl_quotes`, which
/// comes after them).
fn fix_simple(text: &str) -> String {
    let mut t = String::with_capacity(text.len());
    for c in text.chars() {
        match ligature(c) {
            Some(s) => t.extend(s.chars().map(uncurl)),
            None => width(c, &mut t),
        }
    }
    if t.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']) {
        t = t
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
    }
    t
}

fn uncurl(c: char) -> char {
    match c {
        '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        c => c,
    }
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// `fix_character_width` (U+3000 -> space, U+FF01..U+FFEF -> their NFKC form) and
/// `uncurl_quotes`, for one character.
fn width(c: char, out: &mut String) {
    if c == '\u{3000}' {
        out.push(' ');
    } else if ('\u{ff01}'..'\u{fff0}').contains(&c) {
        out.extend(std::iter::once(c).nfkc().map(uncurl));
    } else {
        out.push(uncurl(c));
    }
}

/// ftfy's `remove_control_chars`.
fn is_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{08}' | '\u{0b}' | '\u{0e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    static RE: OnceLock<Regex> = OnceLock::new();
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    RE.get_or_init(|| Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").unwrap())
        .replace_all(text, "")
}

/// ftfy's `fix_c1_controls`: each C1 control as its Windows-1252 character.
fn fix_c1_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_c1) {
        return Cow::Borrowed(text);
    }
    let t = Charmap::SloppyWindows1252.decode_table();
    Cow::Owned(
        text.chars()
            .map(|c| if is_c1(c) { t[c as usize] } else { c })
            .collect(),
    )
}

fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// ftfy's `fix_encoding`: mojibake repair steps until the text stops changing.
pub fn fix_encoding(text: &str) -> String {
    let mut text = text.to_string();
    loop {
        match fix_encoding_step(&text) {
            Some(fixed) if fixed != text => text = fixed,
            _ => return text,
        }
    }
}

/// One step of `fix_encoding`; `None` when nothing applies.
fn fix_encoding_step(text: &str) -> Option<String> {
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    let mut latin1 = false;
    for cm in Charmap::ALL {
        let Some(mut bytes) = cm.encode(text) else {
            continue;
        };
        latin1 |= cm == Charmap::Latin1;
        let re = regexes();
        if cm != Charmap::MacRoman && re.altered_utf8.is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if cm.is_sloppy() {
            bytes = re
                .lossy_utf8
                .replace_all(&bytes, "\u{fffd}".as_bytes())
                .into_owned();
        }
        if let Some(fixed) = decode_utf8_variants(&bytes) {
            return Some(fixed);
        }
    }
    if utf8_detector_matches(text).next().is_some() {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return Some(fixed);
        }
    }
    // Latin-1 text that is not valid in Windows-1252 (ftfy's check whether the text also fits
    // Windows-1252 looks for a codec name its list never has, so it never stops here).
    if latin1
        && let Some(fixed) = latin1_as_strict_windows_1252(text)
        && fixed != text
    {
        return Some(fixed);
    }
    if text.chars().any(is_c1) {
        return Some(fix_c1_controls(text).into_owned());
    }
    None
}

/// `restore_byte_a0`: spaces that stand for byte 0xA0 inside UTF-8 sequences, put back; `Ã `
/// as a word becomes `à ` (the space kept), except before the Portuguese contractions.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(bytes.len() + 4);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0xc3 && bytes.get(i + 1) == Some(&b' ') {
            let after = &bytes[i + 2..];
            let keep = [&b" "[..], b"quele", b"quela", b"quilo", b"s "]
                .iter()
                .any(|p| after.starts_with(p));
            if !keep {
                b.extend_from_slice(&[0xc3, 0xa0, b' ']);
                i += 2;
                continue;
            }
        }
        b.push(bytes[i]);
        i += 1;
    }
    regexes()
        .altered_utf8
        .replace_all(&b, |c: &regex::bytes::Captures<'_>| {
            c[0].iter()
                .map(|&x| if x == b' ' { 0xa0 } else { x })
                .collect::<Vec<u8>>()
        })
        .into_owned()
}

/// `decode_inconsistent_utf8`: UTF-8 mojibake embedded in other text, fixed piece by piece.
fn decode_inconsistent_utf8(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (s, e) in utf8_detector_matches(text) {
        out.push_str(&text[last..s]);
        let sub = &text[s..e];
        if sub.len() < text.len() && is_bad(sub) {
            out.push_str(&fix_encoding(sub));
        } else {
            out.push_str(sub);
        }
        last = e;
    }
    out.push_str(&text[last..]);
    out
}

/// The matches of ftfy's `UTF8_DETECTOR_RE`: runs of what look like UTF-8 sequences decoded
/// as a single-byte encoding, not preceded by a continuation-like character (Rust's `regex`
/// has no look-behind, so that condition is checked here).
fn utf8_detector_matches(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let re = regexes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at <= text.len() {
            let m = re.utf8_detector.find_at(text, at)?;
            let prev = text[..m.start()].chars().next_back();
            if prev.is_some_and(|p| re.continuation_strict.contains(&p)) {
                at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            at = m.end();
            return Some((m.start(), m.end()));
        }
        None
    })
}

struct Regexes {
    altered_utf8: BytesRegex,
    lossy_utf8: BytesRegex,
    utf8_detector: Regex,
    continuation_strict: HashSet<char>,
}

fn regexes() -> &'static Regexes {
    static RE: OnceLock<Regexes> = OnceLock::new();
    RE.get_or_init(build_regexes)
}

/// The characters that bytes `range` decode to in the encodings whose UTF-8 mojibake ftfy
/// looks for inside other text (Latin-1 and Windows-1250/1251/1252/1253/1254/1257).
fn decoded_as(range: std::ops::RangeInclusive<u8>) -> Vec<char> {
    let encodings = [
        Charmap::Latin1,
        Charmap::SloppyWindows1252,
        Charmap::SloppyWindows1251,
        Charmap::SloppyWindows1250,
        Charmap::SloppyWindows1253,
        Charmap::SloppyWindows1254,
        Charmap::SloppyWindows1257,
    ];
    // The sloppy tables' extra characters are Latin-1 ones, which Latin-1 itself contributes.
    let mut v: Vec<char> = encodings
        .iter()
        .flat_map(|e| range.clone().map(move |b| e.decode_table()[b as usize]))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn class(chars: &[char]) -> String {
    let mut s = String::from("[");
    for c in chars {
        s.push_str(&format!("\\x{{{:x}}}", *c as u32));
    }
    s.push(']');
    s
}

fn build_regexes() -> Regexes {
    let first2 = decoded_as(0xc2..=0xdf);
    let first3 = decoded_as(0xe0..=0xef);
    let mut first4 = decoded_as(0xf0..=0xf0);
    first4.extend(decoded_as(0xf3..=0xf3));
    let mut like_continuation = decoded_as(0x80..=0xbf);
    like_continuation.extend('\u{80}'..='\u{bf}');
    like_continuation.sort_unstable();
    like_continuation.dedup();
    // Punctuation that Windows code pages put at 0x80..0xBF and that stands for itself next to
    // mojibake (dashes, quotes, bullets, ellipses) does not prevent a match after it.
    let strict: Vec<char> = like_continuation
        .iter()
        .copied()
        .filter(|c| {
            !matches!(
                c,
                '\u{2013}'..='\u{2015}'
                    | '\u{2018}'..='\u{201a}'
                    | '\u{201c}'..='\u{201e}'
                    | '\u{2022}'
                    | '\u{2026}'
            )
        })
        .collect();
    // A space may stand for a 0xA0 continuation byte.
    let mut continuation = like_continuation;
    continuation.push(' ');
    let cont = class(&continuation);
    let detector = format!(
        "(?:{}{cont}|{}{cont}{{2}}|{}{cont}{{3}})+",
        class(&first2),
        class(&first3),
        class(&first4)
    );
    Regexes {
        altered_utf8: BytesRegex::new(
            r"(?-u)[\xc2\xc3\xc5\xce\xd0\xd9] |[\xe2\xe3] [\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf] |\xf0 [\x80-\xbf][\x80-\xbf]|\xf0[\x80-\xbf] [\x80-\xbf]|\xf0[\x80-\xbf][\x80-\xbf] ",
        )
        .unwrap(),
        lossy_utf8: BytesRegex::new(
            r"(?-u)[\xc2-\xdf]\x1a|[\xc2-\xc3]\?|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]|\x1a",
        )
        .unwrap(),
        utf8_detector: Regex::new(&detector).unwrap(),
        continuation_strict: strict.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_mojibake() {
        assert_eq!(
            fix_text("The Mona Lisa doesnâ€™t have eyebrows."),
            "The Mona Lisa doesn't have eyebrows."
        );
        assert_eq!(fix_text("âœ” No problems"), "✔ No problems");
        assert_eq!(fix_text("&macr;\\_(ã\u{83}\u{84})_/&macr;"), "¯\\_(ツ)_/¯");
        assert_eq!(
            fix_text("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"),
            "Broken text… it's flubberific!"
        );
        assert_eq!(fix_text("ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
        assert_eq!(fix_encoding("sÃ³"), "só");
        assert_eq!(fix_encoding("voilÃ le travail"), "voilà le travail");
        assert_eq!(fix_encoding("schÃ¶n"), "schön");
        assert_eq!(fix_encoding("&ATILDE;&SUP3;"), "&ATILDE;&SUP3;");
    }

    #[test]
    fn html_is_left_alone_after_a_tag() {
        assert_eq!(fix_text("a &amp; b\n<p>\n&amp;"), "a & b\n<p>\n&amp;");
    }
}

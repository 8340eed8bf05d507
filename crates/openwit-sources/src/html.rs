//! HTML detection (Content-Type and sniffing) and charset decoding (BOM, the HTTP charset,
//! `<meta charset>` prescan, then UTF-8 if valid, else windows-1252 as browsers do), and the
//! character an XML reference stands for (sitemaps, SVG metadata).

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// Whether a response is HTML: by its Content-Type when it names a type, else by sniffing
/// the first bytes for an HTML tag (as the WHATWG sniffing rules do).
pub fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    content_type
        .and_then(html_by_type)
        .unwrap_or_else(|| sniff_html(body))
}

/// What a Content-Type says alone: `Some(true)` for HTML, `Some(false)` for another type,
/// `None` when the body must be sniffed (no type, `text/plain`, `application/octet-stream`,
/// `unknown/unknown`). Lets a crawler refuse a body before reading it.
pub fn html_by_type(content_type: &str) -> Option<bool> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "" | "application/octet-stream" | "text/plain" | "unknown/unknown" => None,
        m => Some(m == "text/html" || m == "application/xhtml+xml"),
    }
}

/// The WHATWG "text/html" sniff: after whitespace, one of the HTML tag openers.
pub fn sniff_html(body: &[u8]) -> bool {
    let head = &body[..body.len().min(512)];
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let s = &head[start..];
    const TAGS: [&[u8]; 16] = [
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
    ];
    let s = if s.starts_with(b"\xef\xbb\xbf") {
        &s[3..]
    } else {
        s
    };
    TAGS.iter().any(|t| {
        s.len() > t.len()
            && s[..t.len()].eq_ignore_ascii_case(t)
            && matches!(s[t.len()], b' ' | b'>' | b'\t' | b'\n' | b'\r' | b'/')
    }) || s.starts_with(b"<!--")
}

fn charset_param(ct: &str) -> Option<&str> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']))
    })
}

/// `<meta charset="x">` or `<meta http-equiv="content-type" content="...; charset=x">` in the
/// first 1024 bytes (a simplified WHATWG prescan).
fn meta_charset(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(1024)];
    let lower: Vec<u8> = head.to_ascii_lowercase();
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&lower[i..], b"charset") {
        let mut j = i + p + 7;
        while j < lower.len() && matches!(lower[j], b' ' | b'\t' | b'\n' | b'\r') {
            j += 1;
        }
        if j < lower.len() && lower[j] == b'=' {
            j += 1;
            while j < lower.len() && matches!(lower[j], b' ' | b'"' | b'\'') {
                j += 1;
            }
            let end = lower[j..]
                .iter()
                .position(|b| matches!(b, b'"' | b'\'' | b' ' | b';' | b'>' | b'/'))
                .map(|e| j + e)
                .unwrap_or(lower.len());
            if let Some(enc) = Encoding::for_label(&lower[j..end]) {
                // A page that claims UTF-16 in a meta tag is really ASCII-compatible.
                return Some(
                    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
                        UTF_8
                    } else {
                        enc
                    },
                );
            }
        }
        i += p + 7;
    }
    None
}

/// Decodes an HTML body to text, choosing the encoding as browsers do (malformed sequences
/// become U+FFFD; decoding never fails).
pub fn decode_html(body: &[u8], content_type: Option<&str>) -> String {
    decode_html_cow(body, content_type).into_owned()
}

/// [`decode_html`] that borrows the body when it is already valid UTF-8 in the chosen
/// encoding (most pages): the extractor parses from it without a copy of the page.
pub fn decode_html_cow<'a>(body: &'a [u8], content_type: Option<&str>) -> Cow<'a, str> {
    if let Some((enc, bom)) = Encoding::for_bom(body) {
        return enc.decode_without_bom_handling(&body[bom..]).0;
    }
    let enc = content_type
        .and_then(charset_param)
        .and_then(|l| Encoding::for_label(l.as_bytes()))
        .or_else(|| meta_charset(body));
    match enc {
        Some(e) => e.decode_without_bom_handling(body).0,
        None => match std::str::from_utf8(body) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => WINDOWS_1252.decode_without_bom_handling(body).0,
        },
    }
}

/// The character an XML reference stands for: a character reference (`&#233;`, `&#xE9;`) or one
/// of XML's five predefined entities; `None` for any other entity (DTD-declared ones are not
/// resolved).
pub(crate) fn xml_ref_char(g: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if let Ok(Some(c)) = g.resolve_char_ref() {
        return Some(c);
    }
    match &**g {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_detection() {
        assert!(is_html(Some("text/html; charset=utf-8"), b""));
        assert!(is_html(Some("application/xhtml+xml"), b""));
        assert!(!is_html(Some("image/jpeg"), b"<html>"));
        assert!(is_html(None, b"  \n<!DOCTYPE html><html>"));
        assert!(is_html(Some("application/octet-stream"), b"<html lang=en>"));
        assert!(!is_html(None, b"\x89PNG\r\n"));
        assert!(!is_html(Some("text/plain"), b"hello"));
        assert!(is_html(Some("unknown/unknown"), b"<html>"));
        assert_eq!(html_by_type(" Text/HTML ; charset=x"), Some(true));
        assert_eq!(html_by_type("image/png"), Some(false));
        assert_eq!(html_by_type("text/plain; charset=utf-8"), None);
        assert_eq!(html_by_type(""), None);
    }

    #[test]
    fn cow_decoding_borrows_valid_utf8_only() {
        let ct = Some("text/html; charset=utf-8");
        assert!(matches!(
            decode_html_cow("naïve".as_bytes(), ct),
            Cow::Borrowed("naïve")
        ));
        assert!(matches!(
            decode_html_cow(b"plain", None),
            Cow::Borrowed("plain")
        ));
        assert!(matches!(decode_html_cow(b"caf\xe9", None), Cow::Owned(s) if s == "café"));
        let bom = decode_html_cow(b"\xef\xbb\xbfok", None);
        assert_eq!(bom, "ok");
    }

    #[test]
    fn charsets() {
        // header charset
        assert_eq!(
            decode_html(b"caf\xe9", Some("text/html; charset=ISO-8859-1")),
            "café"
        );
        // meta charset
        let b = b"<meta charset=\"windows-1251\"><p>\xcf\xf0\xe8\xe2\xe5\xf2";
        assert!(decode_html(b, Some("text/html")).ends_with("Привет"));
        let b = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=shift_jis\">\x93\xfa\x96\x7b";
        assert!(decode_html(b, None).ends_with("日本"));
        // BOM wins
        assert_eq!(
            decode_html(b"\xef\xbb\xbfok", Some("text/html; charset=latin1")),
            "ok"
        );
        // no label: UTF-8 if valid, else windows-1252
        assert_eq!(decode_html("naïve".as_bytes(), None), "naïve");
        assert_eq!(decode_html(b"na\xefve \x93q\x94", None), "naïve “q”");
        // unknown label falls through; broken UTF-8 never panics
        assert_eq!(
            decode_html(b"a\xff", Some("text/html; charset=bogus")),
            "aÿ"
        );
        assert_eq!(
            decode_html(b"\xf0\x28\x8c\x28", Some("text/html; charset=utf-8")),
            "\u{fffd}(\u{fffd}("
        );
    }
}

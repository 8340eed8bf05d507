//! URL normalization for the frontier: http(s) only, lower-case scheme and host, default port
//! removed, dot segments resolved, fragment dropped, an empty query removed, percent-escapes of
//! unreserved characters decoded and the others upper-cased, at most 2048 bytes.

use url::Url;

/// Longest URL kept in the frontier.
pub const MAX_URL_LEN: usize = 2048;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn norm_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let h = &s[i + 1..i + 3];
            if let Ok(v) = u8::from_str_radix(h, 16) {
                if unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push_str(&h.to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        // the url crate keeps paths and queries ASCII; copy any other char whole
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Normalizes `href` resolved against `base`; `None` for non-http(s) or invalid URLs.
pub fn normalize(base: &Url, href: &str) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.len() > MAX_URL_LEN {
        return None;
    }
    let mut u = base.join(href).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return None;
    }
    u.set_fragment(None);
    if u.query() == Some("") {
        u.set_query(None);
    }
    let path = norm_escapes(u.path());
    if path != u.path() {
        u.set_path(&path);
    }
    if let Some(q) = u.query() {
        let q2 = norm_escapes(q);
        if q2 != q {
            u.set_query(Some(&q2));
        }
    }
    (u.as_str().len() <= MAX_URL_LEN).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let b = Url::parse("http://Example.COM:80/a/b/c.html").unwrap();
        let n = |h: &str| normalize(&b, h).map(|u| u.to_string());
        assert_eq!(
            n("../d.html#top").as_deref(),
            Some("http://example.com/a/d.html")
        );
        assert_eq!(
            n("HTTPS://WWW.E.ORG:443/x?").as_deref(),
            Some("https://www.e.org/x")
        );
        assert_eq!(
            n("/%7euser/%2fx%2F?q=%41%2a").as_deref(),
            Some("http://example.com/~user/%2Fx%2F?q=A%2A")
        );
        assert_eq!(n("mailto:a@b.c"), None);
        assert_eq!(n("javascript:void(0)"), None);
        assert_eq!(n("http://"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("/a%"), Some("http://example.com/a%".into()));
        assert_eq!(n("/a%zz%4"), Some("http://example.com/a%zz%4".into()));
        assert_eq!(n("/é"), Some("http://example.com/%C3%A9".into()));
        // an escape at the very end is normalized too (`%7e` -> `~`, `%2f` -> `%2F`)
        assert_eq!(n("/a%7e"), Some("http://example.com/a~".into()));
        assert_eq!(n("/a?q=%2f"), Some("http://example.com/a?q=%2F".into()));
    }
}

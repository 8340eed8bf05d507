//! robots.txt parsing and matching (RFC 9309), shared by the crawler and the downloader.
//!
//! - Groups by user agent: a user-agent value is its product token, the prefix of `[a-zA-Z_-]`
//!   compared case-insensitively (`FOO BAR` and `Foo/2.0` are `foo`); the groups naming our
//!   token are combined if there are any, else the `*` groups. Runs of user-agent lines share a
//!   group; a rule (or a `Crawl-delay`) ends the run; blank lines and other records do not.
//! - `Allow` / `Disallow` with `*` (any run) and a trailing `$` (end of path); the longest matching
//!   pattern wins, `Allow` on ties; no match allows; an empty `Disallow:` allows everything.
//!   Patterns and the request path are compared in one normal form (RFC 9309 section 2.2.2):
//!   non-ASCII bytes percent-encoded, encoded unreserved characters decoded, hex digits upper
//!   case, so `Disallow: /café` blocks `/caf%C3%A9`.
//! - Google's leniencies: a missing colon (`disallow /x`), the misspellings `disalow`,
//!   `dissallow`, `dissalow`, `diasllow`, `disallaw`, `useragent`, `user agent`, `site-map`;
//!   `Allow: /d/index.html` also allows `/d/`; `User-agent: * x` is `*`; a UTF-8 BOM, whole or
//!   cut, is skipped; lines are cut at [`MAX_LINE_BYTES`]; `\n`, `\r` and `\r\n` end lines.
//! - `Crawl-delay` of the chosen groups (the first one given, capped at 60 s) and every `Sitemap`
//!   line, wherever it is.
//! - Unparseable lines are ignored, as the standard says. Only the first [`MAX_ROBOTS_BYTES`] are
//!   read. `/robots.txt` itself is always allowed.
//!
//! Fetching and caching stay with the callers; they map fetch outcomes as the standard says:
//! 4xx -> [`Robots::allow_all`], 5xx or unreachable -> [`Robots::disallow_all`].
//!
//! ```
//! use openwit_http::robots::Robots;
//!
//! let r = Robots::parse("User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n", "openwit");
//! assert!(!r.allowed("/private/a.jpg"));
//! assert!(r.allowed("/public/a.jpg"));
//! assert_eq!(r.crawl_delay, Some(2.0));
//! ```

/// Longest robots.txt read (RFC 9309 asks crawlers to parse at least 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 512 << 10;

/// Longest `Crawl-delay` honoured, in seconds.
const MAX_CRAWL_DELAY: f64 = 60.0;

/// The rules of one robots.txt that apply to one product token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// (allow, pattern), patterns never empty.
    rules: Vec<(bool, String)>,
    /// Everything disallowed (the file was unreachable).
    disallow_all: bool,
    /// Seconds between requests asked for (at most 60).
    pub crawl_delay: Option<f64>,
    /// The `Sitemap` URLs, as written.
    pub sitemaps: Vec<String>,
}

/// One group: its user agents (lowercase), its rules and its crawl delay.
#[derive(Default)]
struct Group {
    agents: Vec<String>,
    rules: Vec<(bool, String)>,
    delay: Option<f64>,
}

impl Robots {
    /// Everything allowed (no robots.txt, or a 4xx answer).
    pub fn allow_all() -> Self {
        Robots::default()
    }

    /// Everything disallowed (a 5xx answer or an unreachable host, per RFC 9309).
    pub fn disallow_all() -> Self {
        Robots {
            disallow_all: true,
            ..Default::default()
        }
    }

    /// Parses `text` for the product token `token` (e.g. `openwit`, case-insensitive).
    pub fn parse(text: &str, token: &str) -> Self {
        Self::parse_bytes(text.as_bytes(), token)
    }

    /// Parses a robots.txt body as fetched (any bytes: a UTF-8 BOM, whole or cut, is skipped;
    /// bytes that are not UTF-8 are percent-encoded in patterns as they are).
    pub fn parse_bytes(body: &[u8], token: &str) -> Self {
        let token = crate::optout::product_token(token);
        let body = body.get(..MAX_ROBOTS_BYTES).unwrap_or(body);
        let body = [&b"\xEF\xBB\xBF"[..], b"\xEF\xBB", b"\xEF"]
            .iter()
            .find_map(|bom| body.strip_prefix(*bom))
            .unwrap_or(body);
        let mut groups: Vec<Group> = Vec::new();
        let mut sitemaps = Vec::new();
        // Whether the last group record was a user-agent line (the next one joins the group).
        let mut in_agents = false;
        for raw in body.split(|&b| b == b'\n' || b == b'\r') {
            let line = raw.get(..MAX_LINE_BYTES).unwrap_or(raw);
            let Some((key, value)) = key_value(line) else {
                continue;
            };
            match key_kind(key) {
                Key::UserAgent => {
                    if !in_agents {
                        groups.push(Group::default());
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.agents.push(agent_of(value));
                    }
                }
                Key::Allow | Key::Disallow => {
                    let allow = key_kind(key) == Key::Allow;
                    in_agents = false;
                    // Rules before any user-agent line belong to no group.
                    if let Some(g) = groups.last_mut()
                        && !value.is_empty()
                    {
                        let pat = normalize(value);
                        if allow && let Some(dir) = index_html_dir(&pat) {
                            g.rules.push((true, dir));
                        }
                        g.rules.push((allow, pat));
                    }
                }
                Key::CrawlDelay => {
                    // A member of the group, as for the engines that honour it: it ends the
                    // run of user-agent lines, as a rule does.
                    in_agents = false;
                    let d = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<f64>().ok());
                    if let (Some(g), Some(d)) = (groups.last_mut(), d)
                        && d.is_finite()
                        && d >= 0.0
                        && g.delay.is_none()
                    {
                        g.delay = Some(d.min(MAX_CRAWL_DELAY));
                    }
                }
                Key::Sitemap if !value.is_empty() => {
                    sitemaps.push(String::from_utf8_lossy(value).into_owned());
                }
                // Unknown keys are ignored and do not end a group.
                _ => {}
            }
        }
        let names_token = |a: &String| !token.is_empty() && *a == token;
        let mut chosen: Vec<&Group> = groups
            .iter()
            .filter(|g| g.agents.iter().any(names_token))
            .collect();
        if chosen.is_empty() {
            chosen = groups
                .iter()
                .filter(|g| g.agents.iter().any(|a| a == "*"))
                .collect();
        }
        let mut rules = Vec::new();
        let mut crawl_delay = None;
        for g in chosen {
            rules.extend(g.rules.iter().cloned());
            crawl_delay = crawl_delay.or(g.delay);
        }
        Robots {
            rules,
            disallow_all: false,
            crawl_delay,
            sitemaps,
        }
    }

    /// Whether `path` (path and query of a URL, starting with `/`; percent-encoded or not) may
    /// be fetched. Both the path and the patterns are compared in the same normal form (RFC 9309
    /// section 2.2.2).
    pub fn allowed(&self, path: &str) -> bool {
        if self.disallow_all {
            return false;
        }
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            normalize(path.as_bytes())
        };
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pat) in &self.rules {
            if pattern_matches(pat.as_bytes(), path.as_bytes()) {
                let len = pat.len();
                best = match best {
                    Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                    _ => Some((len, *allow)),
                };
            }
        }
        best.is_none_or(|(_, a)| a)
    }
}

/// Longest line read, in bytes; the rest of a longer line is ignored (Google's limit of
/// 8 x 2083 bytes, the end of line included).
pub const MAX_LINE_BYTES: usize = 2083 * 8 - 1;

#[derive(PartialEq, Eq, Clone, Copy)]
enum Key {
    UserAgent,
    Allow,
    Disallow,
    CrawlDelay,
    Sitemap,
    Other,
}

/// The record a key names, case-insensitive, with the misspellings Google's crawler accepts.
fn key_kind(key: &[u8]) -> Key {
    let is = |names: &[&str]| names.iter().any(|n| key.eq_ignore_ascii_case(n.as_bytes()));
    if is(&["user-agent", "useragent", "user agent"]) {
        Key::UserAgent
    } else if is(&["allow"]) {
        Key::Allow
    } else if is(&[
        "disallow",
        "dissallow",
        "dissalow",
        "disalow",
        "diasllow",
        "disallaw",
    ]) {
        Key::Disallow
    } else if is(&["crawl-delay"]) {
        Key::CrawlDelay
    } else if is(&["sitemap", "site-map"]) {
        Key::Sitemap
    } else {
        Key::Other
    }
}

/// `key: value` of one line, comments and surrounding whitespace removed. Without a colon, a
/// line of exactly two words separated by whitespace is read as key and value (Google reads
/// `disallow /` so).
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = match memchr_byte(b'#', line) {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.trim_ascii();
    let (key, value) = match memchr_byte(b':', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let i = line.iter().position(|b| matches!(b, b' ' | b'\t'))?;
            let value = line[i..].trim_ascii_start();
            if value.iter().any(|b| matches!(b, b' ' | b'\t')) {
                return None;
            }
            (&line[..i], value)
        }
    };
    let key = key.trim_ascii();
    (!key.is_empty()).then_some((key, value.trim_ascii()))
}

fn memchr_byte(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// A user-agent line's value: `*` (also `* ...`) for every agent, else its product token.
fn agent_of(value: &[u8]) -> String {
    match value {
        [b'*'] => "*".into(),
        [b'*', next, ..] if next.is_ascii_whitespace() => "*".into(),
        _ => crate::optout::product_token(&String::from_utf8_lossy(value)),
    }
}

/// Google's leniency: `Allow: /dir/index.html` (or `.htm`) also allows `/dir/` itself.
fn index_html_dir(pat: &str) -> Option<String> {
    let slash = pat.rfind('/')?;
    pat.get(slash + 1..)?
        .starts_with("index.htm")
        .then(|| format!("{}$", &pat[..=slash]))
}

/// The normal form paths and patterns are compared in: bytes outside ASCII, controls, space and
/// `"<>`{}` percent-encoded; a percent-encoded unreserved character (`A-Za-z0-9-._~`) decoded;
/// other percent-escapes with upper-case hex digits.
fn normalize(s: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            let v = (h * 16 + l) as u8;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(v));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(v >> 4)]));
                out.push(char::from(HEX[usize::from(v & 15)]));
            }
            i += 3;
            continue;
        }
        if b >= 0x7f || b <= b' ' || matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}') {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    out
}

/// Whether robots pattern `pat` (`*` any run, a final `$` the end) matches the start of `path`.
fn pattern_matches(pat: &[u8], path: &[u8]) -> bool {
    let (pat, anchored) = match pat.strip_suffix(b"$") {
        Some(p) => (p, true),
        None => (pat, false),
    };
    let mut parts = pat.split(|&b| b == b'*');
    let first = parts.next().unwrap_or(b"");
    // The first part must be a prefix.
    let Some(rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&[u8]> = parts.collect();
    if parts.is_empty() {
        return !anchored || rest.is_empty();
    }
    // Leftmost matching of the middle parts; an anchored last part must end the path.
    let mut pos = 0usize;
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let Some(hay) = rest.get(pos..) else {
            return false;
        };
        if i == last && anchored {
            return hay.ends_with(part);
        }
        match find(hay, part) {
            Some(j) => pos += j + part.len(),
            None => return false,
        }
    }
    true
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(pat: &str, path: &str) -> bool {
        pattern_matches(pat.as_bytes(), path.as_bytes())
    }

    #[test]
    fn groups_longest_match_and_wildcards() {
        let text = "User-agent: *\nDisallow: /private\nAllow: /private/ok\n\n\
                    User-agent: OpenWIT\nUser-agent: other\nDisallow: /images/*.png$\nDisallow: /nope\n";
        let mine = Robots::parse(text, "openwit");
        assert!(!mine.allowed("/images/a.png"));
        assert!(mine.allowed("/images/a.png?x=1"));
        assert!(mine.allowed("/images/a.jpg"));
        assert!(!mine.allowed("/nope/x"));
        assert!(
            mine.allowed("/private/x"),
            "the specific group replaces `*`"
        );
        let other = Robots::parse(text, "somebot");
        assert!(!other.allowed("/private/x"));
        assert!(other.allowed("/private/ok/1"));
        assert!(other.allowed("/"));
    }

    #[test]
    fn groups_and_longest_match() {
        let r = Robots::parse(
            "# comment\nUser-agent: *\nDisallow: /private/\nAllow: /private/ok\nCrawl-delay: 2\n\n\
             User-agent: otherbot\nDisallow: /\n\nSitemap: https://e.com/sitemap.xml\n",
            "openwit",
        );
        assert!(r.allowed("/"));
        assert!(!r.allowed("/private/x"));
        assert!(r.allowed("/private/ok.html"));
        assert_eq!(r.crawl_delay, Some(2.0));
        assert_eq!(r.sitemaps, ["https://e.com/sitemap.xml"]);
        assert!(r.allowed("/robots.txt"));
    }

    #[test]
    fn our_group_wins_over_star_and_wildcards() {
        let t = "User-agent: *\nDisallow: /\n\nUser-agent: OpenWIT\nUser-agent: somebot\nDisallow: /*.gif$\nDisallow: /tmp*/x\nAllow: /\n";
        let r = Robots::parse(t, "openwit");
        assert!(r.allowed("/a.html"));
        assert!(!r.allowed("/img/a.gif"));
        assert!(r.allowed("/img/a.gif?x=1"));
        assert!(!r.allowed("/tmp123/x/y"));
        assert_eq!(r.crawl_delay, None);
        let other = Robots::parse(t, "someoneelse");
        assert!(!other.allowed("/a.html"));
    }

    #[test]
    fn a_named_group_without_rules_allows_everything() {
        let t = "User-agent: *\nDisallow: /\n\nUser-agent: openwit/2.1\nCrawl-delay: 5\n\nUser-agent: x\nDisallow: /x\n";
        let r = Robots::parse(t, "OpenWIT");
        assert!(
            r.allowed("/a.jpg"),
            "the version of a named agent is ignored"
        );
        assert!(r.allowed("/x"), "the `x` group is somebody else's");
        assert_eq!(r.crawl_delay, Some(5.0));
        assert!(!Robots::parse(t, "otherbot").allowed("/a.jpg"));
    }

    #[test]
    fn groups_combine_and_delays_are_capped() {
        let t = "User-agent: openwit\nDisallow: /a\n\nUser-agent: *\nDisallow: /\n\n\
                 User-agent: openwit\nDisallow: /b\nCrawl-delay: 3600\nSitemap: /s1.xml\nSitemap:\n";
        let r = Robots::parse(t, "openwit");
        assert!(!r.allowed("/a/1") && !r.allowed("/b/1"));
        assert!(r.allowed("/c/1"));
        assert_eq!(r.crawl_delay, Some(60.0));
        assert_eq!(r.sitemaps, ["/s1.xml"]);
        let r = Robots::parse(
            "User-agent: *\nCrawl-delay: -1\nCrawl-delay: inf\n",
            "openwit",
        );
        assert_eq!(r.crawl_delay, None);
        let r = Robots::parse("User-agent: *\nCrawl-delay: 0.5\n", "openwit");
        assert_eq!(r.crawl_delay, Some(0.5));
    }

    #[test]
    fn empty_disallow_allows_and_unreachable_disallows() {
        let r = Robots::parse("User-agent: *\nDisallow:\n", "openwit");
        assert!(r.allowed("/anything"));
        assert!(!Robots::disallow_all().allowed("/a.jpg"));
        assert!(Robots::allow_all().allowed("/a.jpg"));
        let all = Robots::parse("User-agent: *\nDisallow: /\n", "openwit");
        assert!(!all.allowed("/img/x.jpg"));
        assert!(all.allowed("/robots.txt"));
    }

    #[test]
    fn malformed_is_ignored() {
        let r = Robots::parse(
            "garbage\n\u{0}\nDisallow: /x\nUser-agent *\nCrawl-delay: banana\nUser-agent: *\nDisallow:\n",
            "openwit",
        );
        assert!(r.allowed("/x"));
        assert!(Robots::parse("", "openwit").allowed("/anything"));
        assert!(!Robots::disallow_all().allowed("/"));
        // ties: allow wins
        let r = Robots::parse("User-agent: *\nDisallow: /a\nAllow: /a\n", "openwit");
        assert!(r.allowed("/a"));
    }

    #[test]
    fn bom_carriage_returns_and_comments() {
        let r = Robots::parse(
            "\u{feff}User-agent: *\rDisallow: /a # not /b\r\nDisallow: /c#d\r",
            "openwit",
        );
        assert!(!r.allowed("/a/1"));
        assert!(r.allowed("/b"));
        assert!(!r.allowed("/c"));
    }

    #[test]
    fn only_the_first_512_kib_are_read() {
        // A multi-byte character straddles the cut: no panic, the rules before it count.
        let mut t = String::from("User-agent: *\nDisallow: /early\n#");
        while t.len() < MAX_ROBOTS_BYTES - 1 {
            t.push('x');
        }
        t.push_str("é\nDisallow: /late\n");
        assert!(!t.is_char_boundary(MAX_ROBOTS_BYTES));
        let r = Robots::parse(&t, "openwit");
        assert!(!r.allowed("/early"));
        assert!(r.allowed("/late"));
    }

    #[test]
    fn anchored_and_middle_wildcards() {
        assert!(pm("/a*b*c", "/a1b2c3"));
        assert!(!pm("/a*b*c$", "/a1b2c3"));
        assert!(pm("/a*b*c$", "/a1b2c"));
        assert!(pm("/*.jpg$", "/x/y.jpg"));
        assert!(!pm("/*.jpg$", "/x/y.jpg.html"));
        assert!(pm("/*", "/"));
        assert!(pm("/a$", "/a") && !pm("/a$", "/ab"));
        assert!(!pm("/x*y$", "/xy/z") && pm("/x*y$", "/xzy"));
    }
}

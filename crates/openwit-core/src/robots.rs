//! robots.txt parsing and matching (RFC 9309), shared by the crawler and the downloader.
//!
//! - Groups by user agent: the groups naming our product token (case-insensitive, a version such
//!   as `OpenWIT/1.0` ignored) are combined if there are any, else the `*` groups.
//! - `Allow` / `Disallow` with `*` (any run) and a trailing `$` (end of path); the longest matching
//!   pattern wins, `Allow` on ties; no match allows; an empty `Disallow:` allows everything.
//! - `Crawl-delay` of the chosen groups (the first one given, capped at 60 s) and every `Sitemap`
//!   line, wherever it is.
//! - Unparseable lines are ignored, as the standard says. Only the first [`MAX_ROBOTS_BYTES`] are
//!   read. `/robots.txt` itself is always allowed.
//!
//! Fetching and caching stay with the callers; they map fetch outcomes as the standard says:
//! 4xx -> [`Robots::allow_all`], 5xx or unreachable -> [`Robots::disallow_all`].
//!
//! ```
//! use openwit_core::robots::Robots;
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
        let token = token.to_ascii_lowercase();
        let text = &text[..text.floor_char_boundary(MAX_ROBOTS_BYTES)];
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut groups: Vec<Group> = Vec::new();
        let mut sitemaps = Vec::new();
        // Whether the last record was a user-agent line (the next one joins the same group).
        let mut in_agents = false;
        for raw in text.split(['\n', '\r']) {
            let line = raw.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            match k.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push(Group::default());
                        in_agents = true;
                    }
                    if let Some(g) = groups.last_mut() {
                        g.agents.push(v.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    // Rules before any user-agent line belong to no group.
                    if let Some(g) = groups.last_mut()
                        && !v.is_empty()
                    {
                        g.rules.push((k == "allow", v.to_string()));
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let (Some(g), Ok(d)) = (groups.last_mut(), v.parse::<f64>())
                        && d.is_finite()
                        && d >= 0.0
                    {
                        g.delay = Some(d.min(MAX_CRAWL_DELAY));
                    }
                }
                "sitemap" if !v.is_empty() => sitemaps.push(v.to_string()),
                // Unknown keys are ignored and do not end a group.
                _ => {}
            }
        }
        let names_token = |a: &String| {
            let a = a.split('/').next().unwrap_or("").trim();
            !a.is_empty() && a != "*" && token.starts_with(a)
        };
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

    /// Whether `path` (path and query of a URL, starting with `/`) may be fetched.
    pub fn allowed(&self, path: &str) -> bool {
        if self.disallow_all {
            return false;
        }
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pat) in &self.rules {
            if pattern_matches(pat, path) {
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

/// Whether robots pattern `pat` (`*` any run, trailing `$` end) matches the start of `path`.
fn pattern_matches(pat: &str, path: &str) -> bool {
    let (pat, anchored) = match pat.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pat, false),
    };
    let parts: Vec<&str> = pat.split('*').collect();
    // The first part must be a prefix.
    let Some(rest) = path.strip_prefix(parts[0]) else {
        return false;
    };
    if parts.len() == 1 {
        return !anchored || rest.is_empty();
    }
    // Leftmost matching of the middle parts; an anchored last part must end the path.
    let mut pos = 0usize;
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == last && anchored {
            return rest.len() >= pos + part.len() && rest[pos..].ends_with(part);
        }
        match rest[pos..].find(part) {
            Some(j) => pos += j + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(pattern_matches("/a*b*c", "/a1b2c3"));
        assert!(!pattern_matches("/a*b*c$", "/a1b2c3"));
        assert!(pattern_matches("/a*b*c$", "/a1b2c"));
        assert!(pattern_matches("/*.jpg$", "/x/y.jpg"));
        assert!(!pattern_matches("/*.jpg$", "/x/y.jpg.html"));
        assert!(pattern_matches("/*", "/"));
        assert!(pattern_matches("/a$", "/a") && !pattern_matches("/a$", "/ab"));
        assert!(!pattern_matches("/x*y$", "/xy/z") && pattern_matches("/x*y$", "/xzy"));
    }
}

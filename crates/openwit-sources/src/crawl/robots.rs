//! robots.txt (RFC 9309): groups by user agent (our product token, else `*`), `Allow` /
//! `Disallow` with `*` and `$`, the longest match wins (`Allow` on ties), `Crawl-delay`, and
//! `Sitemap` lines. Unparseable lines are ignored, as the standard says. Fetch outcomes map as
//! the standard says: 4xx -> allow everything, 5xx or unreachable -> disallow everything.

/// A parsed robots.txt for one agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// (allow, pattern)
    rules: Vec<(bool, String)>,
    /// Seconds between requests asked for.
    pub crawl_delay: Option<f64>,
    pub sitemaps: Vec<String>,
    /// Everything disallowed (the file was unreachable).
    pub disallow_all: bool,
    /// The host's address is forbidden by the address rules (nothing is fetched from it).
    pub forbidden: bool,
}

/// Longest robots.txt read (RFC 9309 asks crawlers to parse at least 500 KiB).
pub const MAX_ROBOTS_BYTES: usize = 512 << 10;

impl Robots {
    /// Everything allowed (no robots.txt, or a 4xx answer).
    pub fn allow_all() -> Self {
        Robots::default()
    }
    /// Everything disallowed (a 5xx answer or an unreachable host).
    pub fn disallow_all() -> Self {
        Robots {
            disallow_all: true,
            ..Default::default()
        }
    }

    /// Nothing fetched: the host's addresses are forbidden.
    pub fn forbidden() -> Self {
        Robots {
            disallow_all: true,
            forbidden: true,
            ..Default::default()
        }
    }

    /// Parses `text` for the agent whose product token is `agent` (e.g. `openwit`).
    pub fn parse(text: &str, agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        let text = &text[..floor_char_boundary(text, MAX_ROBOTS_BYTES)];
        // groups: (agents, rules, delay)
        let mut groups: Vec<(Vec<String>, Vec<(bool, String)>, Option<f64>)> = Vec::new();
        let mut sitemaps = Vec::new();
        let mut in_agents = false;
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            match k.as_str() {
                "user-agent" => {
                    if !in_agents {
                        groups.push((Vec::new(), Vec::new(), None));
                        in_agents = true;
                    }
                    groups.last_mut().unwrap().0.push(v.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    if let Some(g) = groups.last_mut() {
                        g.1.push((k == "allow", v.to_string()));
                    }
                }
                "crawl-delay" => {
                    in_agents = false;
                    if let (Some(g), Ok(d)) = (groups.last_mut(), v.parse::<f64>())
                        && d.is_finite()
                        && d >= 0.0
                    {
                        g.2 = Some(d.min(60.0));
                    }
                }
                "sitemap" => sitemaps.push(v.to_string()),
                _ => {}
            }
        }
        let matches_agent = |a: &String| !a.is_empty() && a != "*" && agent.starts_with(a.as_str());
        let mut chosen: Vec<&(Vec<String>, Vec<(bool, String)>, Option<f64>)> = groups
            .iter()
            .filter(|g| g.0.iter().any(matches_agent))
            .collect();
        if chosen.is_empty() {
            chosen = groups
                .iter()
                .filter(|g| g.0.iter().any(|a| a == "*"))
                .collect();
        }
        let mut rules = Vec::new();
        let mut crawl_delay = None;
        for g in chosen {
            rules.extend(g.1.iter().filter(|(_, p)| !p.is_empty()).cloned());
            crawl_delay = crawl_delay.or(g.2);
        }
        Robots {
            rules,
            crawl_delay,
            sitemaps,
            disallow_all: false,
            forbidden: false,
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

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Matches a robots pattern (`*` any run, trailing `$` end) against the start of `path`.
fn pattern_matches(pat: &str, path: &str) -> bool {
    let (pat, anchored) = match pat.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pat, false),
    };
    let parts: Vec<&str> = pat.split('*').collect();
    // first part must be a prefix
    let Some(rest) = path.strip_prefix(parts[0]) else {
        return false;
    };
    if parts.len() == 1 {
        return !anchored || rest.is_empty();
    }
    let mut pos = 0usize;
    let rest_b = rest;
    for (i, part) in parts[1..].iter().enumerate() {
        let last = i == parts.len() - 2;
        if last && anchored {
            return rest_b.len() >= pos + part.len() && rest_b[pos..].ends_with(part);
        }
        match rest_b[pos..].find(part) {
            Some(p) => pos += p + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

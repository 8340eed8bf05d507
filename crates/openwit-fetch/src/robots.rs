//! robots.txt (RFC 9309): groups by user agent, `Allow`/`Disallow` with `*` and `$`, the longest
//! matching rule wins, `Allow` wins ties.

/// The rules of one robots.txt that apply to one user agent token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Robots {
    /// (allow, pattern)
    rules: Vec<(bool, String)>,
}

impl Robots {
    /// Everything allowed (no robots.txt, or a 4xx).
    pub fn allow_all() -> Self {
        Robots::default()
    }

    /// Everything disallowed (robots.txt unreachable: 5xx or network error, per RFC 9309).
    pub fn disallow_all() -> Self {
        Robots {
            rules: vec![(false, "/".into())],
        }
    }

    /// Parses `text` for the product token `token` (case-insensitive). The groups naming the
    /// token are used if any, else the `*` groups.
    pub fn parse(text: &str, token: &str) -> Self {
        let token = token.to_ascii_lowercase();
        let mut specific: Vec<(bool, String)> = Vec::new();
        let mut star: Vec<(bool, String)> = Vec::new();
        let mut found_specific = false;
        // The agents of the group being read, and whether its rules have started.
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            match k.as_str() {
                "user-agent" => {
                    if in_rules {
                        agents.clear();
                        in_rules = false;
                    }
                    agents.push(v.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    let allow = k == "allow";
                    if v.is_empty() {
                        // `Disallow:` with no path allows everything; `Allow:` adds nothing.
                        continue;
                    }
                    let mine = agents.iter().any(|a| {
                        let a = a.split('/').next().unwrap_or("").trim();
                        !a.is_empty() && a != "*" && token.starts_with(a)
                    });
                    if mine {
                        found_specific = true;
                        specific.push((allow, v.to_string()));
                    }
                    if agents.iter().any(|a| a == "*") {
                        star.push((allow, v.to_string()));
                    }
                }
                _ => {
                    // sitemap, crawl-delay, unknown keys: ignored, and they do not end a group.
                }
            }
        }
        // A group that names the token but has no rules still selects it (allow all).
        if !found_specific {
            let named = text.lines().any(|l| {
                let l = l.split('#').next().unwrap_or("").trim();
                l.split_once(':').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("user-agent") && {
                        let a = v.trim().to_ascii_lowercase();
                        !a.is_empty() && a != "*" && token.starts_with(a.as_str())
                    }
                })
            });
            if named {
                return Robots { rules: specific };
            }
        }
        Robots {
            rules: if found_specific { specific } else { star },
        }
    }

    /// Whether `path` (path and query of the URL) may be fetched.
    pub fn allowed(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pat) in &self.rules {
            if matches(pat, path) {
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

/// Whether robots pattern `pat` (`*` any run, `$` end) matches the start of `path`.
fn matches(pat: &str, path: &str) -> bool {
    let (pat, anchored) = match pat.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pat, false),
    };
    let parts: Vec<&str> = pat.split('*').collect();
    // First part must be a prefix.
    let Some(rest) = path.strip_prefix(parts[0]) else {
        return false;
    };
    if parts.len() == 1 {
        return !anchored || rest.is_empty();
    }
    // Greedy-from-left matching of the middle parts; the last part must end the path if anchored.
    let mut pos = 0usize;
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == last && anchored {
            return rest[pos..].ends_with(part) && rest.len() - part.len() >= pos;
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
    fn anchored_and_middle_wildcards() {
        assert!(matches("/a*b*c", "/a1b2c3"));
        assert!(!matches("/a*b*c$", "/a1b2c3"));
        assert!(matches("/a*b*c$", "/a1b2c"));
        assert!(matches("/*.jpg$", "/x/y.jpg"));
        assert!(!matches("/*.jpg$", "/x/y.jpg.html"));
    }
}

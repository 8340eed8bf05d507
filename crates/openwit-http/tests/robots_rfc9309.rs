//! robots.txt as RFC 9309 defines it and as Google's crawler documents it (its "How Google
//! interprets the robots.txt specification" page), one table of (file, agent, path, allowed).
//! The cases were written for this project from those two texts; the list of behaviours they
//! cover follows the one google/robotstxt's own test suite checks.

use openwit_http::robots::{MAX_LINE_BYTES, Robots};

struct Case {
    what: &'static str,
    robots: &'static str,
    agent: &'static str,
    path: &'static str,
    allowed: bool,
}

const fn c(
    what: &'static str,
    robots: &'static str,
    agent: &'static str,
    path: &'static str,
    allowed: bool,
) -> Case {
    Case {
        what,
        robots,
        agent,
        path,
        allowed,
    }
}

const CASES: &[Case] = &[
    // nothing to obey
    c("empty file", "", "openwit", "/a", true),
    c(
        "no group for us and no `*` group",
        "User-agent: alpha\nDisallow: /\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "an empty agent matches no named group",
        "User-agent: alpha\nDisallow: /\n",
        "",
        "/a",
        true,
    ),
    // line syntax
    c(
        "key: value",
        "user-agent: openwit\ndisallow: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "unknown keys are not rules",
        "agent: openwit\nforbid: /img\nuser-agent: openwit\n",
        "openwit",
        "/img/1",
        true,
    ),
    c(
        "Google: a missing colon is read as whitespace",
        "user-agent openwit\ndisallow /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "Google: without a colon, only two words make a line",
        "user-agent: openwit\ndisallow /img /other\n",
        "openwit",
        "/img/1",
        true,
    ),
    c(
        "spaces and tabs around key, colon and value",
        "  User-agent \t:\t openwit  \n\tDisallow :  /img  \n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "keys are case-insensitive",
        "uSER-aGENT: openwit\nDISALLOW: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "Google: `disalow` typo",
        "User-agent: openwit\nDisalow: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "Google: `dissallow` typo",
        "User-agent: openwit\nDissallow: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "Google: `useragent` typo",
        "Useragent: openwit\nDisallow: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "Google: `user agent` typo",
        "User agent: openwit\nDisallow: /img\n",
        "openwit",
        "/img/1",
        false,
    ),
    c(
        "a comment ends the line",
        "User-agent: openwit # us\nDisallow: /a#b\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "a commented-out rule",
        "User-agent: openwit\n# Disallow: /\nDisallow: /x\n",
        "openwit",
        "/y",
        true,
    ),
    // groups
    c(
        "rules before any user-agent belong to no group",
        "Disallow: /a\nUser-agent: openwit\nDisallow: /b\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "consecutive user-agent lines share the group",
        "User-agent: alpha\nUser-agent: openwit\nDisallow: /a\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "blank lines do not end a run of user-agent lines",
        "User-agent: openwit\n\n\nUser-agent: alpha\nDisallow: /a\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "blank lines do not end a group's rules",
        "User-agent: openwit\nDisallow: /a\n\n\nDisallow: /b\n",
        "openwit",
        "/b",
        false,
    ),
    c(
        "a user-agent line after rules starts a new group",
        "User-agent: openwit\nDisallow: /a\nUser-agent: alpha\nDisallow: /b\n",
        "openwit",
        "/b",
        true,
    ),
    c(
        "groups for the same agent are combined",
        "User-agent: openwit\nDisallow: /a\nUser-agent: alpha\nDisallow: /\nUser-agent: openwit\nDisallow: /b\n",
        "openwit",
        "/b",
        false,
    ),
    c(
        "our group replaces `*`",
        "User-agent: *\nDisallow: /\nUser-agent: openwit\nDisallow: /private\n",
        "openwit",
        "/public",
        true,
    ),
    c(
        "our group with no rule allows everything",
        "User-agent: *\nDisallow: /\n\nUser-agent: openwit\n",
        "openwit",
        "/public",
        true,
    ),
    c(
        "`*` when nothing names us",
        "User-agent: alpha\nAllow: /\nUser-agent: *\nDisallow: /\n",
        "openwit",
        "/x",
        false,
    ),
    c(
        "`*` groups are combined",
        "User-agent: *\nDisallow: /a\nUser-agent: alpha\nDisallow: /\nUser-agent: *\nDisallow: /b\n",
        "openwit",
        "/b",
        false,
    ),
    c(
        "Google: `* ` with trailing words is still `*`",
        "User-agent: * everyone\nDisallow: /b\n",
        "openwit",
        "/b",
        false,
    ),
    c(
        "Sitemap lines do not end a run of user-agent lines",
        "User-agent: openwit\nSitemap: https://e.com/s.xml\nUser-agent: alpha\nDisallow: /a\n",
        "openwit",
        "/a",
        false,
    ),
    // user-agent tokens
    c(
        "agent values are case-insensitive",
        "User-agent: OPENWIT\nDisallow: /a\n",
        "OpenWit",
        "/a",
        false,
    ),
    c(
        "the product token ends at a space (`FOO BAR` is `foo`)",
        "User-agent: *\nDisallow: /\nUser-agent: OpenWIT Images\nAllow: /a\nDisallow: /\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "the product token ends at a slash",
        "User-agent: OpenWIT/2.0\nDisallow: /a\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "our own version is ignored",
        "User-agent: openwit\nDisallow: /a\n",
        "OpenWIT/0.1 (+https://example.org)",
        "/a",
        false,
    ),
    c(
        "a shorter name is not ours",
        "User-agent: *\nAllow: /\nUser-agent: open\nDisallow: /\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "a longer name is not ours",
        "User-agent: openwitty\nDisallow: /\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "`-` and `_` belong to the token",
        "User-agent: open-wit_x\nDisallow: /\n",
        "Open-Wit_X",
        "/a",
        false,
    ),
    c(
        "the token ends at any other character (`openwit*` is `openwit`)",
        "User-agent: openwit*\nDisallow: /\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "a token of digits is no token",
        "User-agent: 007\nDisallow: /\n",
        "openwit",
        "/a",
        true,
    ),
    // matching: case, longest match, ties
    c(
        "paths are case-sensitive",
        "User-agent: *\nDisallow: /Img\n",
        "openwit",
        "/img",
        true,
    ),
    c(
        "longest match: the longer disallow",
        "User-agent: *\nAllow: /a/\nDisallow: /a/b.html\n",
        "openwit",
        "/a/b.html",
        false,
    ),
    c(
        "longest match: the longer allow",
        "User-agent: *\nDisallow: /a/\nAllow: /a/b.html\n",
        "openwit",
        "/a/b.html",
        true,
    ),
    c(
        "longest match: the shorter rule still covers the rest",
        "User-agent: *\nDisallow: /a/\nAllow: /a/b.html\n",
        "openwit",
        "/a/c.html",
        false,
    ),
    c(
        "a tie goes to allow",
        "User-agent: *\nDisallow: /a\nAllow: /a\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "a tie of `/` goes to allow",
        "User-agent: *\nDisallow: /\nAllow: /\n",
        "openwit",
        "/x",
        true,
    ),
    c(
        "empty allow and disallow allow",
        "User-agent: *\nDisallow:\nAllow:\n",
        "openwit",
        "/x",
        true,
    ),
    c(
        "a wildcard rule can be the longest",
        "User-agent: *\nAllow: /pic\nDisallow: /*.gif\n",
        "openwit",
        "/pic.gif",
        false,
    ),
    c(
        "a tie of a literal and a wildcard rule goes to allow",
        "User-agent: *\nAllow: /pic.g\nDisallow: /*.gif\n",
        "openwit",
        "/pic.gif",
        true,
    ),
    c(
        "`/x` vs `/x/` at `/x`",
        "User-agent: *\nDisallow: /x\nAllow: /x/\n",
        "openwit",
        "/x",
        false,
    ),
    c(
        "`/x` vs `/x/` at `/x/`",
        "User-agent: *\nDisallow: /x\nAllow: /x/\n",
        "openwit",
        "/x/",
        true,
    ),
    c(
        "a query is part of the path",
        "User-agent: *\nDisallow: /\nAllow: /s?q=a&next=http://e.com/?x\n",
        "openwit",
        "/s?q=a&next=http://e.com/?x",
        true,
    ),
    c(
        "a rule does not match inside the path",
        "User-agent: *\nDisallow: /cat\n",
        "openwit",
        "/wildcat",
        true,
    ),
    // `*` and `$`
    c(
        "`*` matches any run",
        "User-agent: *\nDisallow: /a/*/c\n",
        "openwit",
        "/a/b1/b2/c/d",
        false,
    ),
    c(
        "`*` matches the empty run",
        "User-agent: *\nDisallow: /a*/c\n",
        "openwit",
        "/a/c",
        false,
    ),
    c(
        "a trailing `*` changes nothing",
        "User-agent: *\nDisallow: /\nAllow: /dog*\n",
        "openwit",
        "/dogs/1",
        true,
    ),
    c(
        "`$` ends the path",
        "User-agent: *\nDisallow: /*.png$\n",
        "openwit",
        "/i/a.png",
        false,
    ),
    c(
        "`$` does not match a longer path",
        "User-agent: *\nDisallow: /*.png$\n",
        "openwit",
        "/i/a.png?s=2",
        true,
    ),
    c(
        "`$` alone after the prefix",
        "User-agent: *\nAllow: /$\nDisallow: /\n",
        "openwit",
        "/",
        true,
    ),
    c(
        "`$` alone does not allow below",
        "User-agent: *\nAllow: /$\nDisallow: /\n",
        "openwit",
        "/x",
        false,
    ),
    c(
        "a `$` inside the pattern is a character",
        "User-agent: *\nDisallow: /a$b\n",
        "openwit",
        "/a$b/c",
        false,
    ),
    c(
        "several wildcards and an anchor",
        "User-agent: *\nDisallow: /*/x*y$\n",
        "openwit",
        "/p/q/x1y2y",
        false,
    ),
    c(
        "an anchored wildcard that misses",
        "User-agent: *\nDisallow: /*/x*y$\n",
        "openwit",
        "/p/q/x1y2",
        true,
    ),
    // percent-encoding (RFC 9309 section 2.2.2)
    c(
        "a non-ASCII rule blocks the encoded path",
        "User-agent: *\nDisallow: /café\n",
        "openwit",
        "/caf%C3%A9/menu",
        false,
    ),
    c(
        "a non-ASCII rule blocks the raw path",
        "User-agent: *\nDisallow: /café\n",
        "openwit",
        "/café",
        false,
    ),
    c(
        "an encoded rule blocks the encoded path",
        "User-agent: *\nDisallow: /caf%C3%A9\n",
        "openwit",
        "/caf%C3%A9",
        false,
    ),
    c(
        "hex digits compare case-insensitively",
        "User-agent: *\nDisallow: /caf%c3%a9\n",
        "openwit",
        "/caf%C3%A9",
        false,
    ),
    c(
        "a three-byte character",
        "User-agent: *\nDisallow: /\nAllow: /ツ/\n",
        "openwit",
        "/%E3%83%84/a",
        true,
    ),
    c(
        "RFC 9309: encoded unreserved characters are decoded",
        "User-agent: *\nDisallow: /%7Euser/%61\n",
        "openwit",
        "/~user/a",
        false,
    ),
    c(
        "an encoded `/` is not a `/`",
        "User-agent: *\nDisallow: /a/b\n",
        "openwit",
        "/a%2Fb",
        true,
    ),
    c(
        "a space in a rule matches `%20`",
        "User-agent: *\nDisallow: /my docs\n",
        "openwit",
        "/my%20docs/1",
        false,
    ),
    // Google: index.html
    c(
        "Google: allowing index.html allows its folder",
        "User-agent: *\nAllow: /d/index.html\nDisallow: /\n",
        "openwit",
        "/d/",
        true,
    ),
    c(
        "Google: ... and not what lies below it",
        "User-agent: *\nAllow: /d/index.html\nDisallow: /\n",
        "openwit",
        "/d/other",
        false,
    ),
    // line endings and BOM
    c(
        "CR line endings",
        "User-agent: *\rDisallow: /a\rAllow: /a/b\r",
        "openwit",
        "/a/c",
        false,
    ),
    c(
        "CRLF line endings",
        "User-agent: *\r\nDisallow: /a\r\nAllow: /a/b\r\n",
        "openwit",
        "/a/b",
        true,
    ),
    c(
        "mixed line endings, no final newline",
        "User-agent: alpha\r\nAllow: /\nUser-agent: *\rDisallow: /a",
        "openwit",
        "/a",
        false,
    ),
    c(
        "a BOM before the first line",
        "\u{feff}User-agent: *\nDisallow: /a\n",
        "openwit",
        "/a",
        false,
    ),
    c(
        "a BOM further on spoils its line only",
        "User-agent: *\n\u{feff}Disallow: /a\nDisallow: /b\n",
        "openwit",
        "/a",
        true,
    ),
    c(
        "... and the next line counts",
        "User-agent: *\n\u{feff}Disallow: /a\nDisallow: /b\n",
        "openwit",
        "/b",
        false,
    ),
    // the path itself
    c(
        "an empty path is `/`",
        "User-agent: *\nDisallow: /\n",
        "openwit",
        "",
        false,
    ),
    c(
        "robots.txt itself is always allowed",
        "User-agent: *\nDisallow: /\n",
        "openwit",
        "/robots.txt",
        true,
    ),
];

#[test]
fn rfc9309_and_google_table() {
    let mut failed = Vec::new();
    for case in CASES {
        let r = Robots::parse(case.robots, case.agent);
        if r.allowed(case.path) != case.allowed {
            failed.push(format!(
                "{}: {:?} as {:?} at {:?} should be {}",
                case.what,
                case.robots,
                case.agent,
                case.path,
                if case.allowed {
                    "allowed"
                } else {
                    "disallowed"
                }
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Google reads a partial UTF-8 BOM too (its bytes are not UTF-8, so this goes through bytes).
#[test]
fn partial_and_broken_boms() {
    for (bom, counts) in [
        (&b"\xEF\xBB\xBF"[..], true),
        (b"\xEF\xBB", true),
        (b"\xEF", true),
        (b"\xEF\x11\xBF", false),
    ] {
        let mut body = bom.to_vec();
        body.extend_from_slice(b"User-agent: *\nDisallow: /a\n");
        let r = Robots::parse_bytes(&body, "openwit");
        // with a broken BOM the first line is garbage: no group, so nothing is disallowed
        assert_eq!(!r.allowed("/a"), counts, "{bom:?}");
    }
    // Latin-1 bytes in a rule are percent-encoded as they are
    let r = Robots::parse_bytes(b"User-agent: *\nDisallow: /caf\xE9\n", "openwit");
    assert!(!r.allowed("/caf%E9"));
    assert!(r.allowed("/caf%C3%A9"));
}

/// Lines longer than Google's limit are cut there: the rule keeps its first bytes.
#[test]
fn long_lines_are_cut() {
    let key = "Disallow: ";
    let fill = "/long/".to_string() + &"z".repeat(MAX_LINE_BYTES - key.len() - 6);
    assert_eq!(key.len() + fill.len(), MAX_LINE_BYTES);
    let text = format!("User-agent: *\n{key}{fill}TAIL\nAllow: /ok\n");
    let r = Robots::parse(&text, "openwit");
    // the cut rule ends before TAIL, so it also matches a path going on otherwise
    assert!(!r.allowed(&format!("{fill}OTHER")));
    assert!(!r.allowed(&format!("{fill}TAIL")));
    assert!(r.allowed("/long/zz"));
    assert!(r.allowed("/ok"), "the next line is read");
    // a cut inside a multi-byte character does not panic
    let text = format!(
        "User-agent: *\n{key}/{}é\n",
        "y".repeat(MAX_LINE_BYTES - key.len() - 2)
    );
    let r = Robots::parse(&text, "openwit");
    let ys = "y".repeat(MAX_LINE_BYTES - key.len() - 2);
    assert!(
        r.allowed(&format!("/{ys}")),
        "the rule keeps the first byte of `é`"
    );
    assert!(!r.allowed(&format!("/{ys}é")));
}

#[test]
fn sitemaps_anywhere() {
    let r = Robots::parse(
        "Sitemap: https://e.com/a.xml\nUser-agent: *\nDisallow: /x\nSite-map: https://e.com/b.xml\n",
        "openwit",
    );
    assert_eq!(r.sitemaps, ["https://e.com/a.xml", "https://e.com/b.xml"]);
}

/// Real robots.txt files shipped in Debian packages (tests/data/robots/README.md).
#[test]
fn real_files() {
    let read = |name: &str| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/robots")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    // cgit: snapshots and blame pages of every repository are off limits, the rest is open
    let r = Robots::parse_bytes(&read("cgit.txt"), "openwit");
    assert!(!r.allowed("/linux.git/snapshot/linux-6.1.tar.gz"));
    assert!(!r.allowed("/cgit/blame/README?h=main"));
    assert!(r.allowed("/linux.git/tree/README"));
    assert!(
        r.allowed("/snapshot/x"),
        "`/*/snapshot/*` needs a folder before it"
    );
    assert!(r.allowed("/"));
    // phpMyAdmin: nothing may be crawled
    let r = Robots::parse_bytes(&read("phpmyadmin.txt"), "openwit");
    assert!(!r.allowed("/"));
    assert!(!r.allowed("/index.php?route=/sql"));
    assert!(r.allowed("/robots.txt"));
}

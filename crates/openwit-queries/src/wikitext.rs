//! Wikitext to plain text, the way a reader sees an article's prose.
//!
//! Removed: templates (`{{...}}`, nested, parser functions and template parameters too), tables
//! (`{| ... |}`, nested), comments, `<ref>`s and other tags whose content is not prose (`math`,
//! `gallery`, `timeline`, `score`, `syntaxhighlight`, ...), the remaining HTML tags (their text is
//! kept), `File:`/`Image:`/`Media:`/`Category:` links and interlanguage links (whole, with their
//! captions), behaviour switches (`__NOTOC__`), external-link URLs and bare URLs, bold/italic
//! quotes, heading `=` marks, list and indent marks.
//!
//! Kept: link labels (`[[Target|label]]` -> `label`, `[[Target]]s` -> `Targets`), external-link
//! labels (`[http://x label]` -> `label`), section titles and all prose. Common HTML entities are
//! decoded. Lines stay lines (one paragraph, heading or list item per line), so that callers can
//! keep bigrams inside a line.

use std::borrow::Cow;

use memchr::memmem;

/// Tags removed together with their content.
const DROP_CONTENT_TAGS: &[&str] = &[
    "ref",
    "references",
    "math",
    "chem",
    "ce",
    "gallery",
    "timeline",
    "score",
    "syntaxhighlight",
    "source",
    "pre",
    "code",
    "imagemap",
    "hiero",
    "graph",
    "mapframe",
    "maplink",
    "templatedata",
    "templatestyles",
    "inputbox",
    "categorytree",
    "charinsert",
    "section",
    "noinclude",
    "indicator",
    "style",
    "script",
];

/// Link namespaces whose links are removed whole (case-insensitive).
const DROP_LINK_NAMESPACES: &[&str] = &["file", "image", "media", "category"];

/// Cleans one article's wikitext into plain text (see the module docs).
pub fn clean(wikitext: &str) -> String {
    let s = strip_comments(wikitext);
    let s = strip_tags(&s);
    let s = strip_templates_and_tables(&s);
    let s = strip_links(&s);
    let s = strip_bare_urls(&s);
    finish_lines(&s)
}

/// Removes `<!-- ... -->` (an unclosed comment runs to the end, as MediaWiki renders it).
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    if memmem::find(s.as_bytes(), b"<!--").is_none() {
        return s.to_string();
    }
    while let Some(i) = memmem::find(rest.as_bytes(), b"<!--") {
        out.push_str(&rest[..i]);
        match memmem::find(&rest.as_bytes()[i + 4..], b"-->") {
            Some(j) => rest = &rest[i + 4 + j + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// ASCII-lower-cased tag name at the start of `s` (after `<` or `</`), and its length.
fn tag_name(s: &str) -> (String, usize) {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .count();
    (s[..n].to_ascii_lowercase(), n)
}

/// Removes content-less tags and tags (with their content) listed in [`DROP_CONTENT_TAGS`].
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut copied = 0;
    while let Some(off) = memchr::memchr(b'<', &bytes[i..]) {
        let lt = i + off;
        i = lt + 1;
        let after = &s[lt + 1..];
        let closing = after.starts_with('/');
        let name_start = if closing { &after[1..] } else { after };
        let (name, n) = tag_name(name_start);
        if name.is_empty() {
            continue; // a literal `<` (`a < b`)
        }
        // The tag ends at the next `>`; a tag without one is literal text.
        let Some(gt_rel) = name_start[n..].find('>') else {
            continue;
        };
        let inner = &name_start[n..n + gt_rel];
        if inner.contains('<') || inner.contains('\n') && inner.len() > 500 {
            continue;
        }
        // `<br>` etc. end a word: replace every tag by nothing but keep a space for `<br>`.
        let tag_end = lt + 1 + usize::from(closing) + n + gt_rel + 1;
        out.push_str(&s[copied..lt]);
        copied = tag_end;
        i = tag_end;
        if name == "br" || name == "hr" {
            out.push(' ');
        }
        let self_closing = inner.trim_end().ends_with('/');
        if !closing && !self_closing && DROP_CONTENT_TAGS.contains(&name.as_str()) {
            // Skip to the matching close tag (same name; not nested in practice).
            match find_close_tag(s, tag_end, &name) {
                Some(c) => {
                    let after_close = c;
                    let gt = s[after_close..]
                        .find('>')
                        .map(|g| after_close + g + 1)
                        .unwrap_or(s.len());
                    copied = gt;
                    i = gt;
                }
                None => {
                    // Unclosed `<ref>`: MediaWiki shows an error; drop to the end of the line.
                    let eol = s[tag_end..]
                        .find('\n')
                        .map(|e| tag_end + e)
                        .unwrap_or(s.len());
                    copied = eol;
                    i = eol;
                }
            }
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Byte offset of the next `</name` (case-insensitive) at or after `from`.
fn find_close_tag(s: &str, from: usize, name: &str) -> Option<usize> {
    let b = s.as_bytes();
    memmem::find_iter(&b[from..], b"</")
        .map(|i| from + i)
        .find(|&i| {
            let n = &b[i + 2..];
            n.len() >= name.len()
                && n[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && !n.get(name.len()).is_some_and(|c| c.is_ascii_alphanumeric())
        })
}

fn at_line_start(s: &[u8], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        match s[j - 1] {
            b'\n' => return true,
            b' ' | b'\t' | b':' => j -= 1,
            _ => return false,
        }
    }
    true
}

/// A bracketing construct: two-byte opener and closer, nested ones counted.
struct Brackets {
    open: [u8; 2],
    close: [u8; 2],
    /// Opener and closer count only at the start of a line (after spaces, tabs and colons).
    at_line_start: bool,
    /// An empty line (paragraph break) before the closer means it is not closed.
    within_paragraph: bool,
}

/// `{{...}}`.
const TEMPLATE: Brackets = Brackets {
    open: *b"{{",
    close: *b"}}",
    at_line_start: false,
    within_paragraph: false,
};
/// `{|` ... `|}` at line starts.
const TABLE: Brackets = Brackets {
    open: *b"{|",
    close: *b"|}",
    at_line_start: true,
    within_paragraph: false,
};
/// `[[...]]`: links never span paragraphs.
const LINK: Brackets = Brackets {
    open: *b"[[",
    close: *b"]]",
    at_line_start: false,
    within_paragraph: true,
};

/// The end (exclusive) of the construct whose opener is at `start`, or `None` if unclosed.
fn bracket_end(s: &[u8], start: usize, k: &Brackets) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < s.len() {
        let two = [s[i], s[i + 1]];
        let placed = || !k.at_line_start || at_line_start(s, i);
        if two == k.open && placed() {
            depth += 1;
            i += 2;
        } else if two == k.close && placed() {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else if k.within_paragraph && two == *b"\n\n" {
            return None;
        } else {
            i += 1;
        }
    }
    None
}

/// Removes templates and tables (nested in each other too). An unclosed `{{` or `{|` is text.
fn strip_templates_and_tables(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'{', &b[i..]) {
        let p = i + off;
        i = p + 1;
        if p + 1 >= b.len() {
            break;
        }
        let end = match b[p + 1] {
            b'{' => bracket_end(b, p, &TEMPLATE),
            b'|' if at_line_start(b, p) => bracket_end(b, p, &TABLE),
            _ => None,
        };
        if let Some(e) = end {
            out.push_str(&s[copied..p]);
            copied = e;
            i = e;
        }
    }
    out.push_str(&s[copied..]);
    out
}

fn is_language_prefix(p: &str) -> bool {
    // Interlanguage links: `[[de:Hund]]`, `[[zh-yue:...]]`, `[[simple:...]]`.
    let p = p.trim();
    (2..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_lowercase())
        || p.len() > 3 && p.contains('-') && p.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
        || p == "simple"
}

/// The label a wiki link shows, or `None` if the link is removed whole.
fn link_label(inner: &str) -> Option<String> {
    let (target, label) = match inner.find('|') {
        Some(i) => (&inner[..i], Some(&inner[i + 1..])),
        None => (inner, None),
    };
    let t = target.trim();
    if let Some(colon) = t.find(':') {
        let ns = t[..colon].trim().to_ascii_lowercase();
        if !t.starts_with(':')
            && (DROP_LINK_NAMESPACES.contains(&ns.as_str()) || is_language_prefix(&t[..colon]))
        {
            return None;
        }
    }
    match label {
        Some(l) if !l.trim().is_empty() => Some(strip_links(l)),
        Some(_) => {
            // The pipe trick: `[[Paris (band)|]]` shows `Paris`.
            let t = t.trim_start_matches(':');
            let t = t.split_once(':').map(|(_, r)| r).unwrap_or(t);
            let t = match t.find(" (") {
                Some(i) => &t[..i],
                None => t.split(',').next().unwrap_or(t),
            };
            Some(t.trim().to_string())
        }
        None => Some(t.trim_start_matches(':').to_string()),
    }
}

fn is_url_start(s: &str) -> bool {
    const SCHEMES: &[&str] = &["http://", "https://", "ftp://", "//", "mailto:", "irc://"];
    SCHEMES.iter().any(|p| {
        // Bytes, not `&s[..n]`: the n-th byte may fall inside a multi-byte character.
        s.as_bytes()
            .get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p.as_bytes()))
    })
}

/// Replaces wiki links by their labels, external links by their labels, removes bare URLs.
fn strip_links(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let Some(off) = memchr::memchr(b'[', &b[i..]) else {
            break;
        };
        let p = i + off;
        i = p + 1;
        match b[p] {
            b'[' if b.get(p + 1) == Some(&b'[') => {
                if let Some(e) = bracket_end(b, p, &LINK) {
                    out.push_str(&s[copied..p]);
                    if let Some(label) = link_label(&s[p + 2..e - 2]) {
                        out.push_str(&label);
                    }
                    copied = e;
                    i = e;
                } else {
                    i = p + 2;
                }
            }
            b'[' if is_url_start(&s[p + 1..]) => {
                let Some(close) = s[p + 1..].find([']', '\n']).map(|c| p + 1 + c) else {
                    continue;
                };
                if b[close] != b']' {
                    continue;
                }
                out.push_str(&s[copied..p]);
                let inner = &s[p + 1..close];
                if let Some(sp) = inner.find(' ') {
                    out.push_str(inner[sp + 1..].trim());
                }
                copied = close + 1;
                i = close + 1;
            }
            _ => {}
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// Removes bare `http://`, `https://` and `ftp://` URLs (to the next space, `]`, `<`, `|` or line end).
fn strip_bare_urls(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    for p in memmem::find_iter(b, b"://") {
        if p < copied {
            continue;
        }
        let mut start = p;
        while start > copied && b[start - 1].is_ascii_alphabetic() {
            start -= 1;
        }
        let scheme = &s[start..p];
        if !["http", "https", "ftp"]
            .iter()
            .any(|k| scheme.eq_ignore_ascii_case(k))
        {
            continue;
        }
        let end = s[p..]
            .find([' ', '\n', '\t', ']', '<', '|'])
            .map(|e| p + e)
            .unwrap_or(s.len());
        out.push_str(&s[copied..start]);
        copied = end;
    }
    out.push_str(&s[copied..]);
    out
}

/// Decodes the common HTML entities (the XML layer already decoded `&lt;` etc. once).
fn decode_entities(line: &str) -> String {
    if !line.contains('&') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        // Bytes, not `&tail[..12]`: the 12th byte may fall inside a multi-byte character.
        let semi = memchr::memchr(b';', &tail.as_bytes()[..tail.len().min(12)]);
        let decoded = semi.and_then(|j| {
            let name = &tail[1..j];
            let c = match name {
                "nbsp" | "ensp" | "emsp" | "thinsp" => Some(' '),
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "ndash" => Some('\u{2013}'),
                "mdash" => Some('\u{2014}'),
                "minus" => Some('\u{2212}'),
                "times" => Some('\u{d7}'),
                "deg" => Some('\u{b0}'),
                "hellip" => Some('\u{2026}'),
                "shy" | "zwj" | "zwnj" | "lrm" | "rlm" => Some('\u{0}'),
                _ => name.strip_prefix('#').and_then(|n| {
                    let v = match n.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => n.parse().ok(),
                    };
                    v.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, j + 1))
        });
        match decoded {
            Some((c, len)) => {
                if c != '\u{0}' {
                    out.push(c);
                }
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes `__MAGIC__` words.
fn strip_magic_words(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("__") {
        let after = &rest[i + 2..];
        let n = after
            .bytes()
            .take_while(|c| c.is_ascii_uppercase() || *c == b'_')
            .count();
        if n > 2
            && after[..n].ends_with("__")
            && after[..n - 2].bytes().all(|c| c.is_ascii_uppercase())
        {
            out.push_str(&rest[..i]);
            rest = &after[n..];
        } else {
            out.push_str(&rest[..i + 2]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Per line: heading marks, list marks, table-less pipes, quotes, entities, whitespace.
fn finish_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for raw in s.lines() {
        let mut line = raw.trim();
        if line.starts_with("----") {
            continue;
        }
        // Headings: `== Title ==`.
        if line.len() >= 2 && line.starts_with('=') && line.ends_with('=') {
            line = line.trim_matches('=').trim();
        }
        // List and indent marks.
        line = line.trim_start_matches(['*', '#', ':', ';']).trim_start();
        if line.starts_with("#REDIRECT") || line.starts_with("#redirect") {
            continue;
        }
        // Each rewrite only where its marker occurs (most lines have none).
        let has = |l: &str, m: &[u8]| memmem::find(l.as_bytes(), m).is_some();
        let line: Cow<'_, str> = if has(line, b"''") {
            Cow::Owned(line.replace("'''", "").replace("''", ""))
        } else {
            Cow::Borrowed(line)
        };
        let line = if has(&line, b"__") {
            Cow::Owned(strip_magic_words(&line))
        } else {
            line
        };
        let line = if has(&line, b"&") {
            Cow::Owned(decode_entities(&line))
        } else {
            line
        };
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_none() {
            continue;
        }
        let start = out.len();
        for w in words {
            if out.len() > start {
                out.push(' ');
            }
            out.push_str(w);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two panics a real dump hit (issue 17): `is_url_start` sliced `s[..7]` inside the IPA of
    /// *Alphabet*, `decode_entities` sliced `tail[..12]` inside the `ō` of `&nbsp;– dō&nbsp;`.
    #[test]
    fn real_multibyte_text_at_slice_points() {
        // From *Alphabet* (enwiki): `[` followed by IPA, whose 7th byte is inside `ɛ`.
        assert!(!is_url_start("ɑjbubɛn]"));
        assert_eq!(
            clean("Arabic ''alifbāʾ'', Hebrew ''alefbet'' [ɑjbubɛn] and so on"),
            "Arabic alifbāʾ, Hebrew alefbet [ɑjbubɛn] and so on\n"
        );
        // From a romanization line: the 12th byte after `&` falls inside `ō`.
        assert_eq!(decode_entities("&nbsp;– dō&nbsp;x"), " – dō x");
        assert_eq!(decode_entities("&amp–dō"), "&amp–dō");
        assert_eq!(clean("Kanji&nbsp;– dō&nbsp;(way)"), "Kanji – dō (way)\n");
    }

    /// Every marker the cleaner looks for, with a multi-byte character put at every position of it
    /// and around it: no byte offset the cleaner computes may fall inside a character.
    #[test]
    fn multibyte_characters_at_every_position_of_every_marker() {
        let markers = [
            "[http://a.example/x y]",
            "[//a.example z]",
            "[mailto:a@b c]",
            "https://a.example/p q",
            "&nbsp;&#x263A;&#9731;&amp;&bogus;&",
            "<ref name=a>r</ref>",
            "<ref>unclosed",
            "<br/>",
            "</ref>",
            "<!-- c -->",
            "{{t|a={{b}}}}",
            "{|\n|a\n|}",
            "[[a|b]]",
            "[[File:x.jpg|thumb|c]]",
            "[[de:x]]",
            "__NOTOC__",
            "'''b''' ''i''",
            "== h ==",
            "* l\n# m\n; n : o",
        ];
        for m in markers {
            for filler in ["ō", "ɛ", "日本", "😀", "\u{5d0}"] {
                for (i, _) in m.char_indices() {
                    let _ = clean(&format!("x{}{filler}{} y", &m[..i], &m[i..]));
                    let _ = clean(&format!("{}{filler}", &m[..i]));
                }
            }
        }
    }

    #[test]
    fn templates_nested_and_unclosed() {
        assert_eq!(clean("a {{b|{{c}}|d}} e"), "a e\n");
        assert_eq!(clean("a {{#if:{{{1|}}}|x|y}}b"), "a b\n");
        assert_eq!(clean("a {{ open"), "a {{ open\n");
    }

    #[test]
    fn tables_and_links() {
        let t = "before\n{| class=\"wikitable\"\n|-\n| [[Dog]] || {{flag|x}}\n{|\n| inner\n|}\n|}\nafter";
        assert_eq!(clean(t), "before\nafter\n");
        assert_eq!(
            clean("the [[Red fox|red fox]]es and [[cat]]s"),
            "the red foxes and cats\n"
        );
        assert_eq!(
            clean("x [[File:A.jpg|thumb|A [[dog]] sleeping]] y [[Category:Dogs]]"),
            "x y\n"
        );
        assert_eq!(clean("[[de:Hund]]"), "");
        assert_eq!(clean("[[:Category:Dogs|dog list]]"), "dog list\n");
        assert_eq!(clean("[[Paris (band)|]]"), "Paris\n");
    }

    #[test]
    fn bracket_rules() {
        // links end at a paragraph break, templates do not
        assert_eq!(bracket_end(b"[[a\n\nb]]", 0, &LINK), None);
        assert_eq!(bracket_end(b"[[a\nb]] c", 0, &LINK), Some(7));
        assert_eq!(bracket_end(b"{{a\n\nb}} c", 0, &TEMPLATE), Some(8));
        // table brackets count only at a line start
        assert_eq!(bracket_end(b"{|\n x |}\n|}", 0, &TABLE), Some(11));
        assert_eq!(bracket_end(b"{|\n x {| y\n|}", 0, &TABLE), Some(13));
        assert_eq!(bracket_end(b"{{a}", 0, &TEMPLATE), None);
    }

    #[test]
    fn tags_refs_urls() {
        let t = "A dog.<ref name=\"a\">{{cite web|url=http://x}}</ref> Bark<ref name=b/>s <small>small</small> \
                 <math>x^2</math> see [http://example.com the site] or http://example.org/x.";
        assert_eq!(clean(t), "A dog. Barks small see the site or\n");
        assert_eq!(clean("a<br/>b<!-- hidden -->c"), "a bc\n");
    }

    #[test]
    fn lines_headings_quotes_entities() {
        let t = "== History ==\n'''Dogs''' are ''great''&nbsp;pets &amp; friends.\n* one\n# two\n__NOTOC__\n----\n";
        assert_eq!(
            clean(t),
            "History\nDogs are great pets & friends.\none\ntwo\n"
        );
    }
}

//! The one escape function for text written into HTML, SVG and XML (the report, the web UI, the
//! charts, the demo site, the test dumps): `&`, `<`, `>`, `"` and `'` become entities, so the
//! result is safe in element content and in single- or double-quoted attributes.

/// `s` with `&`, `<`, `>`, `"` and `'` escaped.
pub fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_both_quotes() {
        assert_eq!(
            super::html(r#"a<b>&"c" 'd' é"#),
            "a&lt;b&gt;&amp;&quot;c&quot; &#39;d&#39; é"
        );
        assert_eq!(super::html(""), "");
    }
}

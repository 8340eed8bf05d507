//! Query matching with MetaCLIP's semantics: one Aho-Corasick automaton over `" " + entry + " "`
//! for every entry, searched with overlapping matches in the spaced text
//! ([`openwit_core::text::spaced`]); case-sensitive; the result is the set of matched entry ids.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::error::CurateError;

/// A compiled query list.
pub struct Matcher {
    ac: AhoCorasick,
    entries: usize,
}

impl Matcher {
    /// Builds the automaton over every entry (entry id = index, as in `metadata.json`).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, CurateError> {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .prefilter(false)
            .build(
                entries
                    .iter()
                    .map(|e| openwit_core::text::pattern(e.as_ref())),
            )
            .map_err(|e| CurateError::Automaton(e.to_string()))?;
        Ok(Matcher {
            ac,
            entries: entries.len(),
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the query list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The automaton's heap size in bytes.
    pub fn memory_usage(&self) -> usize {
        self.ac.memory_usage()
    }

    /// The sorted, distinct ids of the entries matching `text` (`buf` is scratch space for the
    /// spaced text).
    pub fn find(&self, text: &str, buf: &mut String, out: &mut Vec<u32>) {
        spaced_into(text, buf);
        self.find_spaced(buf, out);
    }

    /// Like [`Matcher::find`] on an already spaced text.
    pub fn find_spaced(&self, spaced: &str, out: &mut Vec<u32>) {
        out.clear();
        for m in self.ac.find_overlapping_iter(spaced) {
            out.push(m.pattern().as_u32());
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// [`openwit_core::text::spaced`] into a reused buffer (same output; tested against it).
pub fn spaced_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len() + 8);
    out.push(' ');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        // Every character that changes is ASCII, so scanning bytes is exact in UTF-8.
        match b {
            b'\t' | b'\r' | b'\n' => {
                out.push_str(&text[start..i]);
                out.push(' ');
                start = i + 1;
            }
            b',' | b'.' | b';' | b':' | b'?' | b'!' | b'`' => {
                out.push_str(&text[start..i]);
                out.push(' ');
                out.push(b as char);
                out.push(' ');
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push_str(&text[start..]);
    out.push(' ');
}

/// The obvious implementation, for tests and as the reference: every entry checked with
/// [`openwit_core::text::matches`].
pub fn brute_force<S: AsRef<str>>(entries: &[S], text: &str) -> Vec<u32> {
    let spaced = openwit_core::text::spaced(text);
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| spaced.contains(&openwit_core::text::pattern(e.as_ref())))
        .map(|(i, _)| i as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn spaced_into_equals_core() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let alphabet: Vec<char> = "ab ,.;:?!`\t\r\nÉé漢-'\"".chars().collect();
        let mut buf = String::new();
        for _ in 0..5000 {
            let n = rng.random_range(0..20);
            let s: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            spaced_into(&s, &mut buf);
            assert_eq!(buf, openwit_core::text::spaced(&s), "{s:?}");
        }
    }

    #[test]
    fn metaclip_semantics() {
        let entries = [
            "dog", "hot dog", "Dog", "dog dog", "New York", "York", "3.5", "a", "dog", "",
        ];
        let m = Matcher::new(&entries).unwrap();
        let (mut buf, mut out) = (String::new(), Vec::new());
        m.find("A hot dog, dog dog dog.", &mut buf, &mut out);
        // "dog" twice (duplicate entries both match), overlapping "dog dog", "hot dog";
        // not "Dog" nor "a" (case-sensitive); the empty entry matches the double space that
        // the spacing makes after a comma.
        assert_eq!(out, vec![0, 1, 3, 8, 9]);
        // The spacing leaves a double space after final punctuation.
        m.find("New York!", &mut buf, &mut out);
        assert_eq!(out, vec![4, 5, 9]);
        m.find("New York", &mut buf, &mut out);
        assert_eq!(out, vec![4, 5]);
        m.find("dogs", &mut buf, &mut out);
        assert!(out.is_empty());
        m.find("3.5 a", &mut buf, &mut out);
        assert_eq!(out, vec![7]);
    }

    /// The automaton against the brute force on random texts over a small vocabulary, so that
    /// matches (overlapping, nested, repeated, at punctuation and tabs) are frequent.
    #[test]
    fn automaton_equals_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let words = [
            "dog", "cat", "the", "The", "hot", "New", "York", "a", "é", "東京", "x.y",
        ];
        let seps = [
            " ", "  ", ", ", ". ", "\t", "!", "?", ":", ";", "`", "\n", "-",
        ];
        let mut entries: Vec<String> = Vec::new();
        for _ in 0..400 {
            let n = rng.random_range(1..4);
            let e: Vec<&str> = (0..n)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            entries.push(e.join(if rng.random_bool(0.9) { " " } else { "  " }));
        }
        entries.push(String::new());
        entries.push(",".into());
        entries.push(" dog".into());
        let m = Matcher::new(&entries).unwrap();
        let (mut buf, mut out) = (String::new(), Vec::new());
        let mut total = 0;
        for _ in 0..3000 {
            let n = rng.random_range(0..12);
            let mut text = String::new();
            for i in 0..n {
                if i > 0 || rng.random_bool(0.2) {
                    text.push_str(seps[rng.random_range(0..seps.len())]);
                }
                text.push_str(words[rng.random_range(0..words.len())]);
            }
            m.find(&text, &mut buf, &mut out);
            let expect = brute_force(&entries, &text);
            assert_eq!(out, expect, "{text:?}");
            total += out.len();
        }
        assert!(total > 10_000, "too few matches to test anything: {total}");
    }
}

//! Query matching with MetaCLIP's semantics: `" " + entry + " "` searched in the spaced text
//! ([`openwit_core::text::spaced`]), case-sensitive, every overlapping occurrence; the result is
//! the set of matched entry ids. Two engines give that same set: one Aho-Corasick automaton over
//! all patterns (the textbook way, as MetaCLIP's pyahocorasick) and a token trie ([`TokenTrie`],
//! several times faster on a 500,000-entry list); tests compare both with a brute force.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::error::CurateError;

/// Which matching engine runs (both give the same result; the tests check it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MatchEngine {
    /// A trie over the spaced text's tokens ([`TokenTrie`]): the fastest (`docs/BENCHMARKS.md`).
    #[default]
    TokenTrie,
    /// One Aho-Corasick automaton over `" " + entry + " "`, overlapping matches.
    AhoCorasick,
}

enum Inner {
    Ac(AhoCorasick),
    Trie(TokenTrie),
}

/// A compiled query list.
pub struct Matcher {
    inner: Inner,
    entries: usize,
}

/// Reused buffers for [`Matcher::find`].
#[derive(Default)]
pub struct Scratch {
    spaced: String,
    toks: Vec<(u32, u32, u64)>,
}

impl Matcher {
    /// Builds the default engine over every entry (entry id = index, as in `metadata.json`).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, CurateError> {
        Self::with_engine(entries, MatchEngine::default())
    }

    /// Builds the given engine.
    pub fn with_engine<S: AsRef<str>>(
        entries: &[S],
        engine: MatchEngine,
    ) -> Result<Self, CurateError> {
        let inner = match engine {
            MatchEngine::AhoCorasick => Inner::Ac(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .prefilter(false)
                    .build(
                        entries
                            .iter()
                            .map(|e| openwit_core::text::pattern(e.as_ref())),
                    )
                    .map_err(|e| CurateError::Automaton(e.to_string()))?,
            ),
            MatchEngine::TokenTrie => Inner::Trie(TokenTrie::new(entries)),
        };
        Ok(Matcher {
            inner,
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

    /// The engine's heap size in bytes.
    pub fn memory_usage(&self) -> usize {
        match &self.inner {
            Inner::Ac(ac) => ac.memory_usage(),
            Inner::Trie(t) => t.memory_usage(),
        }
    }

    /// The sorted, distinct ids of the entries matching `text`.
    pub fn find(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<u32>) {
        spaced_into(text, &mut scratch.spaced);
        match &self.inner {
            Inner::Ac(ac) => find_ac(ac, &scratch.spaced, out),
            Inner::Trie(t) => t.find_spaced(&scratch.spaced, &mut scratch.toks, out),
        }
    }
}

fn find_ac(ac: &AhoCorasick, spaced: &str, out: &mut Vec<u32>) {
    out.clear();
    for m in ac.find_overlapping_iter(spaced) {
        out.push(m.pattern().as_u32());
    }
    if out.len() > 1 {
        out.sort_unstable();
        out.dedup();
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

/// A faster engine with the same result as the automaton: a trie over space-separated tokens.
///
/// Why it is exact: the spaced text `S` starts and ends with a space, so splitting it on `' '`
/// gives tokens `t0 = "", t1, ..., tk = ""`. An occurrence of `" " + e + " "` starts at a space
/// and ends at a space, so `e` is exactly `t_i + " " + ... + " " + t_j` for some
/// `1 <= i <= j <= k-1`, and conversely. Entries are split on `' '` the same way (an entry with a
/// double space or a leading space has empty tokens), so walking the trie from every inner token
/// finds every entry the automaton finds (the tests check both against the brute force).
pub struct TokenTrie {
    /// (parent node, token hash) mixed -> node, probing on collisions. The value holds all a
    /// lookup needs (one cache line): the node, its parent and token (to verify), its entries.
    children: std::collections::HashMap<u64, Node, IdBuild>,
    /// One bit per key hash (a one-hash Bloom filter, 2 MiB): most lookups are misses, and a
    /// clear bit answers them without touching the big table.
    bits: Vec<u64>,
    arena: String,
    ids: Vec<u32>,
    nodes: u32,
    entries: usize,
}

#[derive(Clone, Copy)]
struct Node {
    id: u32,
    parent: u32,
    tok_start: u32,
    tok_len: u32,
    ids_start: u32,
    ids_len: u32,
}

#[derive(Default, Clone, Copy)]
struct IdBuild;
impl std::hash::BuildHasher for IdBuild {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}
struct IdHasher(u64);
impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[inline]
fn token_hash(t: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(t.as_bytes())
}

const BITS: usize = 1 << 24;

#[inline]
fn bit(k: u64) -> usize {
    (k >> 40) as usize & (BITS - 1)
}

#[inline]
fn mix(parent: u32, h: u64) -> u64 {
    (h ^ (parent as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(17)
}

impl TokenTrie {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let mut t = TokenTrie {
            children: std::collections::HashMap::with_capacity_and_hasher(
                entries.len() * 2,
                IdBuild,
            ),
            bits: vec![0; BITS / 64],
            arena: String::new(),
            ids: Vec::new(),
            nodes: 1,
            entries: entries.len(),
        };
        // Node id -> its key in `children`, and the entries ending there.
        let mut keys: Vec<u64> = vec![0];
        let mut per_node: Vec<Vec<u32>> = vec![Vec::new()];
        for (id, e) in entries.iter().enumerate() {
            let mut node = 0u32;
            for tok in e.as_ref().split(' ') {
                node = match t.child(node, tok, token_hash(tok)) {
                    Some(n) => n.id,
                    None => {
                        let n = t.nodes;
                        t.nodes += 1;
                        let mut k = mix(node, token_hash(tok));
                        while t.children.contains_key(&k) {
                            k = k.wrapping_add(1);
                        }
                        let b = bit(k);
                        t.bits[b / 64] |= 1 << (b % 64);
                        t.children.insert(
                            k,
                            Node {
                                id: n,
                                parent: node,
                                tok_start: t.arena.len() as u32,
                                tok_len: tok.len() as u32,
                                ids_start: 0,
                                ids_len: 0,
                            },
                        );
                        t.arena.push_str(tok);
                        keys.push(k);
                        per_node.push(Vec::new());
                        n
                    }
                };
            }
            per_node[node as usize].push(id as u32);
        }
        for (n, ids) in per_node.into_iter().enumerate() {
            if !ids.is_empty() {
                let node = t.children.get_mut(&keys[n]).expect("node key");
                node.ids_start = t.ids.len() as u32;
                node.ids_len = ids.len() as u32;
                t.ids.extend(ids);
            }
        }
        t.arena.shrink_to_fit();
        t
    }

    #[inline]
    fn child(&self, node: u32, tok: &str, h: u64) -> Option<&Node> {
        let mut k = mix(node, h);
        let b = bit(k);
        if self.bits[b / 64] & (1 << (b % 64)) == 0 {
            return None;
        }
        loop {
            let n = self.children.get(&k)?;
            if n.parent == node
                && n.tok_len as usize == tok.len()
                && &self.arena.as_bytes()[n.tok_start as usize..(n.tok_start + n.tok_len) as usize]
                    == tok.as_bytes()
            {
                return Some(n);
            }
            k = k.wrapping_add(1);
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the trie has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Approximate heap size in bytes.
    pub fn memory_usage(&self) -> usize {
        self.children.capacity() * (std::mem::size_of::<(u64, Node)>() + 1)
            + self.ids.capacity() * 4
            + self.bits.len() * 8
            + self.arena.capacity()
    }

    /// The sorted, distinct ids of the entries matching an already spaced text.
    pub fn find_spaced(&self, spaced: &str, toks: &mut Vec<(u32, u32, u64)>, out: &mut Vec<u32>) {
        out.clear();
        toks.clear();
        let mut start = 0usize;
        for i in memchr::memchr_iter(b' ', spaced.as_bytes()) {
            toks.push((start as u32, i as u32, 0));
            start = i + 1;
        }
        toks.push((start as u32, spaced.len() as u32, 0));
        let k = toks.len();
        if k < 3 {
            return;
        }
        for t in &mut toks[1..k - 1] {
            t.2 = token_hash(&spaced[t.0 as usize..t.1 as usize]);
        }
        for i in 1..k - 1 {
            let mut node = 0u32;
            for &(s, e, h) in &toks[i..k - 1] {
                match self.child(node, &spaced[s as usize..e as usize], h) {
                    Some(n) => {
                        node = n.id;
                        if n.ids_len > 0 {
                            let a = n.ids_start as usize;
                            out.extend_from_slice(&self.ids[a..a + n.ids_len as usize]);
                        }
                    }
                    None => break,
                }
            }
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
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
        for engine in [MatchEngine::AhoCorasick, MatchEngine::TokenTrie] {
            let m = Matcher::with_engine(&entries, engine).unwrap();
            let (mut buf, mut out) = (Scratch::default(), Vec::new());
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
        entries.push("dog ".into());
        entries.push("  ".into());
        entries.push(" ".into());
        entries.push("a\tb".into());
        entries.push("dog".into());
        let ac = Matcher::with_engine(&entries, MatchEngine::AhoCorasick).unwrap();
        let trie = Matcher::with_engine(&entries, MatchEngine::TokenTrie).unwrap();
        let (mut buf, mut out, mut out2) = (Scratch::default(), Vec::new(), Vec::new());
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
            ac.find(&text, &mut buf, &mut out);
            trie.find(&text, &mut buf, &mut out2);
            let expect = brute_force(&entries, &text);
            assert_eq!(out, expect, "{text:?}");
            assert_eq!(out2, expect, "{text:?}");
            total += out.len();
        }
        assert!(total > 10_000, "too few matches to test anything: {total}");
    }
}

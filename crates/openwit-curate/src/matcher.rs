//! Query matching with MetaCLIP's semantics: `" " + entry + " "` searched in the spaced text
//! ([`openwit_core::text::spaced`]), case-sensitive, every overlapping occurrence; the result is
//! the set of matched entry ids. Two engines give that same set: one Aho-Corasick automaton over
//! the bytes of all patterns (the textbook way, as MetaCLIP's pyahocorasick) and the default
//! [`TokenTrie`], one Aho-Corasick-style automaton over all entries whose symbols are the spaced
//! text's tokens instead of bytes (about 6x faster than the byte automaton on a 500,000-entry list,
//! `docs/BENCHMARKS.md`); tests compare both with a brute force.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use openwit_mem::{huge_vec, prefetch};

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
    trie: TrieScratch,
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
        // Entry and node ids are 31-bit in the token trie (a node per entry token at most), and
        // token ids 27-bit (they share a `u32` with a length class in the token slots).
        let tokens: usize = entries
            .iter()
            .map(|e| e.as_ref().bytes().filter(|&b| b == b' ').count() + 1)
            .sum();
        if tokens >= MAX_TOKENS {
            return Err(CurateError::Automaton(format!(
                "{} entries with {tokens} tokens: at most {} tokens",
                entries.len(),
                MAX_TOKENS - 1
            )));
        }
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
        match &self.inner {
            Inner::Ac(ac) => {
                spaced_into(text, &mut scratch.spaced);
                find_ac(ac, &scratch.spaced, out)
            }
            Inner::Trie(t) => t.find(text, &mut scratch.trie, out),
        }
    }
}

impl Matcher {
    /// [`Matcher::find`] for many texts: `out` gets each text's sorted, distinct ids one after
    /// the other and `ends[i]` is where text `i`'s end in `out`. Same result as `find` per text;
    /// faster with the token trie, which overlaps the cache misses of many texts.
    pub fn find_many<S: AsRef<str>>(
        &self,
        texts: &[S],
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
        ends: &mut Vec<usize>,
    ) {
        match &self.inner {
            Inner::Trie(t) => t.find_many(texts, &mut scratch.trie, out, ends),
            Inner::Ac(ac) => {
                out.clear();
                ends.clear();
                let mut ids = Vec::new();
                for t in texts {
                    spaced_into(t.as_ref(), &mut scratch.spaced);
                    find_ac(ac, &scratch.spaced, &mut ids);
                    out.extend_from_slice(&ids);
                    ends.push(out.len());
                }
            }
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

/// The default engine: an Aho-Corasick-style automaton over *tokens* instead of bytes, with the
/// same result as the byte automaton.
///
/// Why it is exact: the spaced text `S` starts and ends with a space, so splitting it on `' '`
/// gives tokens `t0 = "", t1, ..., tk = ""`. An occurrence of `" " + e + " "` starts at a space
/// and ends at a space, so `e` is exactly `t_i + " " + ... + " " + t_j` for some
/// `1 <= i <= j <= k-1`, and conversely. Entries are split on `' '` the same way (an entry with a
/// double space or a leading space has empty tokens), so following the trie of entries from every
/// inner token finds every entry the byte automaton finds. (A byte automaton needs failure links
/// because a match may start anywhere; here matches start only at token boundaries, and the
/// walks from all starts are done side by side, level by level, which is what the failure links
/// would compute.) The tests check it against the byte automaton and a brute force.
///
/// The inner tokens are read straight from the text ([`for_each_token`], equal to splitting
/// [`openwit_core::text::spaced`], tested), without building the spaced string. Layout, chosen
/// for cache misses (the tables are tens of MiB): each distinct entry token has one 16-byte slot
/// ([`TokSlot`], four to a cache line) in an open-addressing table holding its bytes inline (up
/// to 8, longer ones by hash and compared with an arena), its length, its id, which is also the
/// id of its depth-1 node, a "has children" bit and the entry ending there; every deeper edge
/// `(node, token id) -> node` is one 16-byte slot of a second table keyed by one `u64`. All the lookups of one level of a caption are independent, so their
/// slots are prefetched first and probed after, overlapping the misses.
pub struct TokenTrie {
    toks: Vec<TokSlot>,
    edges: Vec<EdgeSlot>,
    edge_shift: u32,
    /// One bit per hash of an edge key, set for every edge: most `(node, next token)` pairs of a
    /// caption are not edges, and this 8-bits-per-edge filter (small enough for the L2 cache)
    /// answers them without touching the edge table.
    filter: Vec<u64>,
    filter_mask: usize,
    /// The bytes of the tokens longer than 8 bytes: token id `t`'s are `arena[long[t]..long[t + 1]]`
    /// (an empty range for the others).
    arena: Vec<u8>,
    long: Vec<u32>,
    /// Entry ids of nodes where several (duplicate) entries end: `multi[i]` is a range of `ids`.
    multi: Vec<(u32, u32)>,
    ids: Vec<u32>,
    entries: usize,
}

/// The most tokens (counted with repeats) a query list may have, so that the token trie's ids
/// fit: 134 million, hundreds of times MetaCLIP's 500,000 entries.
const MAX_TOKENS: usize = 1 << ID_BITS;

/// No entry ends at the node.
const NONE: u32 = u32::MAX;
/// In a node id: the node has children. In an output: an index into `multi`.
const FLAG: u32 = 1 << 31;

/// In a token slot's node word: bits 27..31 are the token's length class (its length up to 8,
/// [`LONG`] above), bits 0..27 its id.
const ID_BITS: u32 = 27;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
const CLASS_MASK: u32 = 15 << ID_BITS;
/// The length class of tokens longer than 8 bytes.
const LONG: u32 = 9;

/// One distinct entry token, 16 bytes (four to a cache line): a token of up to 8 bytes is its
/// bytes and length class, exact; a longer one is its 64-bit hash, checked against `arena`.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct TokSlot {
    /// The token's bytes, zero padded, or its hash if longer than 8 bytes.
    key: u64,
    /// Token id (= its depth-1 node id, >= 1) | length class << 27 | FLAG if it has children;
    /// 0 = empty slot.
    node: u32,
    /// The entry ending at the token's node.
    out: u32,
}

#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct EdgeSlot {
    /// `parent << 32 | token`; 0 = empty slot (parents are never the root here).
    key: u64,
    /// Node id | FLAG if it has children.
    child: u32,
    out: u32,
}

/// What a token class is: part of a token, a separator, a one-byte token of its own.
const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    t[b' ' as usize] = 1;
    t[b'\t' as usize] = 1;
    t[b'\r' as usize] = 1;
    t[b'\n' as usize] = 1;
    let p = b",.;:?!`";
    let mut i = 0;
    while i < p.len() {
        t[p[i] as usize] = 2;
        i += 1;
    }
    t
}
static CLASS: [u8; 256] = classes();

/// Calls `f(start, end)` for every inner token of [`openwit_core::text::spaced`]`(text)` split on
/// `' '` (all tokens but the empty first and last), as byte ranges of `text`: the spacing puts
/// spaces around `, . ; : ? ! `` ` and turns tab, CR and LF into spaces, so those four and the
/// space separate tokens and each of the seven marks is a token of its own. Every byte that
/// matters is ASCII, so scanning bytes is exact in UTF-8.
#[inline]
pub fn for_each_token(text: &str, mut f: impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let mut start = 0;
    let mut at = |j: usize| match CLASS[b[j] as usize] {
        0 => {}
        1 => {
            f(start, j);
            start = j + 1;
        }
        _ => {
            f(start, j);
            f(j, j + 1);
            start = j + 1;
        }
    };
    // Eight bytes at a time: every separator and mark is below 0x40 or is '`' (0x60), so a mask
    // of those bytes ([`candidates`]) leaves only them to look up in `CLASS`, not every byte.
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut m = candidates(u64::from_le_bytes(b[i..i + 8].try_into().unwrap()));
        while m != 0 {
            at(i + (m.trailing_zeros() / 8) as usize);
            m &= m - 1;
        }
        i += 8;
    }
    for j in i..b.len() {
        at(j);
    }
    f(start, b.len());
}

/// The high bit of each byte of `x` that is below 0x40 or equal to 0x60 (bytes of 0x80 and up
/// never are: they are UTF-8 continuation or lead bytes).
#[inline]
fn candidates(x: u64) -> u64 {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte b, (b & 0x7f) + 0x40 has its high bit set iff b & 0x7f >= 0x40, and never
    // carries into the next byte: with b's own high bit, that is b >= 0x40.
    let below = !(((x & LOW) + 0x4040_4040_4040_4040) | x) & HIGH;
    // The same with + 0x7f: the bytes where b ^ 0x60 is zero.
    let y = x ^ 0x6060_6060_6060_6060;
    let tick = !(((y & LOW) + LOW) | y) & HIGH;
    below | tick
}

#[inline]
fn load(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().unwrap())
}

#[inline]
fn low_bytes(n: usize) -> u64 {
    if n >= 8 { !0 } else { (1u64 << (8 * n)) - 1 }
}

#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let m = (a as u128) * (b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A token's slot key and hash, and its length class shifted into place (see [`TokSlot`]).
/// `buf[s..s + n]` is the token and `buf` has at least 8 readable bytes from `s + n` on
/// (callers pad it).
#[inline]
fn tok_key(buf: &[u8], s: usize, n: usize) -> (u64, u64, u32) {
    let w0 = load(buf, s) & low_bytes(n);
    if n <= 8 {
        let h = mum(w0 ^ 0xa076_1d64_78bd_642f, 0xe703_7ed1_a0b4_28db ^ n as u64);
        return (w0, h, (n as u32) << ID_BITS);
    }
    let mut h = mum(w0 ^ 0xa076_1d64_78bd_642f, 0xe703_7ed1_a0b4_28db ^ n as u64);
    let mut at = s + 8;
    while at < s + n {
        let w = load(buf, at) & low_bytes(s + n - at);
        h = mum(h ^ 0x8ebc_6af0_9c88_c6e3, w ^ 0x5899_65cc_7537_4cc3);
        at += 8;
    }
    (h, h, LONG << ID_BITS)
}

#[inline]
fn edge_key(parent: u32, tok: u32) -> u64 {
    (parent as u64) << 32 | tok as u64
}

#[inline]
fn edge_index(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

#[inline]
fn filter_bit(key: u64, mask: usize) -> usize {
    mum(key ^ 0x2d35_8dcc_aa6c_78a5, 0x9fb2_1c65_1e98_df25) as usize & mask
}

/// Reused buffers of [`TokenTrie::find`] and [`TokenTrie::find_many`].
#[derive(Default)]
pub struct TrieScratch {
    /// The texts of a group one after the other, and 16 zero bytes.
    buf: Vec<u8>,
    /// Per inner token: start in `buf`, length, slot key, hash, length class ([`tok_key`]).
    toks: Vec<(u32, u32, u64, u64, u32)>,
    /// Per text: one past its last token.
    tok_ends: Vec<u32>,
    /// Per inner token: its token id, 0 if no entry has it.
    ids: Vec<u32>,
    /// Walks in progress: next token position, end of the text's tokens, node, text.
    walks: Vec<(u32, u32, u32, u32)>,
    /// Lookups of one level: token position, end of the text's tokens, text, first slot, key.
    pending: Vec<(u32, u32, u32, u32, u64)>,
    /// Matches: text << 32 | entry id.
    hits: Vec<u64>,
}

/// Texts matched together by [`TokenTrie::find_many`]: enough lookups to overlap many cache
/// misses, few enough that the prefetched slots are still in the L1/L2 cache when probed.
const GROUP: usize = 64;

fn encode_out(outs: &[u32], multi: &mut Vec<(u32, u32)>, ids: &mut Vec<u32>) -> u32 {
    match outs {
        [] => NONE,
        [one] => *one,
        many => {
            multi.push((ids.len() as u32, many.len() as u32));
            ids.extend_from_slice(many);
            FLAG | (multi.len() - 1) as u32
        }
    }
}

impl TokenTrie {
    /// Builds the trie. Entry ids and node ids are `u32` below `2^31` and token ids below
    /// `2^27`: [`Matcher::with_engine`] checks the list's size first.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        // Token ids first (1..=T, so that they fit the slot's 27 bits and index `long`), then
        // the deeper nodes.
        let mut tok_ids: std::collections::HashMap<&str, u32> = Default::default();
        let mut tok_list: Vec<&str> = vec![""];
        for e in entries {
            for tok in e.as_ref().split(' ') {
                tok_ids.entry(tok).or_insert_with(|| {
                    tok_list.push(tok);
                    (tok_list.len() - 1) as u32
                });
            }
        }
        let mut edges: std::collections::HashMap<u64, u32> = Default::default();
        // Per node (index = id; 0 is the root): has children, entries ending there.
        let mut has_children: Vec<bool> = vec![false; tok_list.len()];
        let mut outs: Vec<Vec<u32>> = vec![Vec::new(); tok_list.len()];
        for (id, e) in entries.iter().enumerate() {
            let mut node = 0u32;
            for tok in e.as_ref().split(' ') {
                let t = tok_ids[tok];
                has_children[node as usize] = true;
                node = if node == 0 {
                    t
                } else {
                    *edges.entry(edge_key(node, t)).or_insert_with(|| {
                        has_children.push(false);
                        outs.push(Vec::new());
                        (has_children.len() - 1) as u32
                    })
                };
            }
            outs[node as usize].push(id as u32);
        }
        // Checked by `Matcher::with_engine` (`MAX_TOKENS`): a node per token at most.
        assert!(has_children.len() < FLAG as usize && entries.len() < FLAG as usize);
        assert!(tok_list.len() <= ID_MASK as usize);
        let (mut multi, mut ids) = (Vec::new(), Vec::new());
        let node_word = |n: u32| n | if has_children[n as usize] { FLAG } else { 0 };

        let tcap = (tok_list.len() * 2).next_power_of_two().max(16);
        let mut toks: Vec<TokSlot> = huge_vec(tcap);
        let mut arena = Vec::new();
        let mut long = vec![0u32];
        let mut buf = Vec::new();
        for (t, tok) in tok_list.iter().enumerate().skip(1) {
            buf.clear();
            buf.extend_from_slice(tok.as_bytes());
            buf.extend_from_slice(&[0; 8]);
            let (key, h, class) = tok_key(&buf, 0, tok.len());
            let mut i = h as usize & (tcap - 1);
            while toks[i].node != 0 {
                i = (i + 1) & (tcap - 1);
            }
            if tok.len() > 8 {
                arena.extend_from_slice(tok.as_bytes());
            }
            long.push(arena.len() as u32);
            toks[i] = TokSlot {
                key,
                node: node_word(t as u32) | class,
                out: encode_out(&outs[t], &mut multi, &mut ids),
            };
        }

        let ecap = (edges.len() * 4 / 3 + 1).next_power_of_two().max(16);
        let edge_shift = 64 - ecap.trailing_zeros();
        let mut table: Vec<EdgeSlot> = huge_vec(ecap);
        let fbits = (edges.len() * 8).next_power_of_two().max(64);
        let filter_mask = fbits - 1;
        let mut filter = vec![0u64; fbits / 64];
        let mut sorted: Vec<(u64, u32)> = edges.into_iter().collect();
        sorted.sort_unstable();
        for (key, child) in sorted {
            let b = filter_bit(key, filter_mask);
            filter[b >> 6] |= 1 << (b & 63);
            let mut i = edge_index(key, edge_shift);
            while table[i].key != 0 {
                i = (i + 1) & (ecap - 1);
            }
            table[i] = EdgeSlot {
                key,
                child: node_word(child),
                out: encode_out(&outs[child as usize], &mut multi, &mut ids),
            };
        }
        TokenTrie {
            toks,
            edges: table,
            edge_shift,
            filter,
            filter_mask,
            arena,
            long,
            multi,
            ids,
            entries: entries.len(),
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

    /// Heap size in bytes.
    pub fn memory_usage(&self) -> usize {
        self.toks.len() * std::mem::size_of::<TokSlot>()
            + self.edges.len() * std::mem::size_of::<EdgeSlot>()
            + self.filter.len() * 8
            + self.arena.capacity()
            + self.long.capacity() * 4
            + self.multi.capacity() * 8
            + self.ids.capacity() * 4
    }

    #[inline]
    fn emit(&self, text: u32, o: u32, hits: &mut Vec<u64>) {
        let t = (text as u64) << 32;
        if o == NONE {
        } else if o & FLAG == 0 {
            hits.push(t | o as u64);
        } else {
            let (a, n) = self.multi[(o & !FLAG) as usize];
            for &id in &self.ids[a as usize..(a + n) as usize] {
                hits.push(t | id as u64);
            }
        }
    }

    /// The slot of the token `buf[s..s + n]` with the given key, hash and class
    /// ([`tok_key`]), if an entry has that token.
    #[inline]
    fn token(
        &self,
        buf: &[u8],
        s: usize,
        n: usize,
        key: u64,
        h: u64,
        class: u32,
    ) -> Option<&TokSlot> {
        let mask = self.toks.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let t = &self.toks[i];
            if t.node == 0 {
                return None;
            }
            if t.key == key
                && t.node & CLASS_MASK == class
                && (class != LONG << ID_BITS || self.long_eq(t.node & ID_MASK, &buf[s..s + n]))
            {
                return Some(t);
            }
            i = (i + 1) & mask;
        }
    }

    /// Whether token id `t`, longer than 8 bytes, is `tok`.
    #[cold]
    fn long_eq(&self, t: u32, tok: &[u8]) -> bool {
        let t = t as usize;
        self.arena[self.long[t - 1] as usize..self.long[t] as usize] == *tok
    }

    #[inline]
    fn edge(&self, key: u64, i: usize) -> Option<&EdgeSlot> {
        let mask = self.edges.len() - 1;
        let mut i = i;
        loop {
            let e = &self.edges[i];
            if e.key == key {
                return Some(e);
            }
            if e.key == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The sorted, distinct ids of the entries matching `text` (not spaced: the spacing is
    /// implied by [`for_each_token`]).
    pub fn find(&self, text: &str, s: &mut TrieScratch, out: &mut Vec<u32>) {
        self.find_group(&[text], s);
        out.clear();
        out.extend(s.hits.iter().map(|&h| h as u32));
    }

    /// [`TokenTrie::find`] for many texts: `out` gets each text's ids one after the other and
    /// `ends[i]` is where text `i`'s end. The texts are matched in groups whose lookups overlap.
    pub fn find_many<S: AsRef<str>>(
        &self,
        texts: &[S],
        s: &mut TrieScratch,
        out: &mut Vec<u32>,
        ends: &mut Vec<usize>,
    ) {
        out.clear();
        ends.clear();
        for group in texts.chunks(GROUP) {
            self.find_group(group, s);
            let mut hits = s.hits.iter().peekable();
            for t in 0..group.len() as u64 {
                while let Some(&&h) = hits.peek() {
                    if h >> 32 != t {
                        break;
                    }
                    out.push(h as u32);
                    hits.next();
                }
                ends.push(out.len());
            }
        }
    }

    /// Matches a group of texts into `s.hits`, sorted and distinct.
    fn find_group<S: AsRef<str>>(&self, texts: &[S], s: &mut TrieScratch) {
        s.buf.clear();
        for t in texts {
            s.buf.extend_from_slice(t.as_ref().as_bytes());
        }
        s.buf.extend_from_slice(&[0; 8]);
        s.toks.clear();
        s.tok_ends.clear();
        let tmask = self.toks.len() - 1;
        let mut base = 0;
        for t in texts {
            let text = t.as_ref();
            let (buf, toks) = (&s.buf, &mut s.toks);
            for_each_token(text, |a, b| {
                let (key, h, class) = tok_key(buf, base + a, b - a);
                prefetch(&self.toks[h as usize & tmask]);
                toks.push(((base + a) as u32, (b - a) as u32, key, h, class));
            });
            base += text.len();
            s.tok_ends.push(s.toks.len() as u32);
        }
        // Depth 1: every token on its own (every text has at least one token).
        s.ids.clear();
        s.walks.clear();
        s.hits.clear();
        let mut text = 0usize;
        for (p, &(a, n, key, h, class)) in s.toks.iter().enumerate() {
            while p as u32 >= s.tok_ends[text] {
                text += 1;
            }
            match self.token(&s.buf, a as usize, n as usize, key, h, class) {
                Some(t) => {
                    self.emit(text as u32, t.out, &mut s.hits);
                    s.ids.push(t.node & ID_MASK);
                    if t.node & FLAG != 0 {
                        let end = s.tok_ends[text];
                        s.walks
                            .push((p as u32 + 1, end, t.node & ID_MASK, text as u32));
                    }
                }
                None => s.ids.push(0),
            }
        }
        // Deeper levels: each walk goes one token further; the lookups of a level are
        // independent, so all their slots are prefetched before the first is probed.
        while !s.walks.is_empty() {
            s.pending.clear();
            for &(p, end, node, text) in &s.walks {
                if p < end && s.ids[p as usize] != 0 {
                    let key = edge_key(node, s.ids[p as usize]);
                    let b = filter_bit(key, self.filter_mask);
                    if self.filter[b >> 6] >> (b & 63) & 1 == 0 {
                        continue;
                    }
                    let i = edge_index(key, self.edge_shift);
                    prefetch(&self.edges[i]);
                    s.pending.push((p, end, text, i as u32, key));
                }
            }
            s.walks.clear();
            for &(p, end, text, i, key) in &s.pending {
                if let Some(e) = self.edge(key, i as usize) {
                    self.emit(text, e.out, &mut s.hits);
                    if e.child & FLAG != 0 {
                        s.walks.push((p + 1, end, e.child & !FLAG, text));
                    }
                }
            }
        }
        if s.hits.len() > 1 {
            s.hits.sort_unstable();
            s.hits.dedup();
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

    /// The tokens read from the text are the inner tokens of the spaced text split on spaces.
    #[test]
    fn tokens_equal_core_spacing() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let alphabet: Vec<char> = "ab ,.;:?!`\t\r\nÉé漢-'\"".chars().collect();
        let check = |s: &str| {
            let spaced = openwit_core::text::spaced(s);
            let all: Vec<&str> = spaced.split(' ').collect();
            let mut got = Vec::new();
            for_each_token(s, |a, b| got.push(&s[a..b]));
            assert_eq!(got, all[1..all.len() - 1], "{s:?}");
        };
        for s in [
            "", " ", "a", ",", "a,b", "a, b", "..", "\t\t", "a \r\nb", "x.y ", "漢,漢",
        ] {
            check(s);
        }
        for _ in 0..5000 {
            let n = rng.random_range(0..24);
            let s: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            check(&s);
        }
    }

    /// Tokens around the 8- and 16-byte limits of the inline key and longer ones (compared in
    /// the arena), differing only in their last byte.
    #[test]
    fn long_and_boundary_tokens() {
        let mut words: Vec<String> = Vec::new();
        for n in [1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 40] {
            let base: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"[..n].into();
            let mut other = base.clone();
            other.pop();
            other.push('Z');
            words.push(base);
            words.push(other);
        }
        // Entries: every even word, and pairs of them; the odd words (one byte off) must not match.
        let mut entries: Vec<String> = words.iter().step_by(2).cloned().collect();
        for w in words.iter().step_by(2) {
            entries.push(format!("{w} {}", words[0]));
        }
        entries.push("ééééééééééé漢字".into());
        let trie = Matcher::with_engine(&entries, MatchEngine::TokenTrie).unwrap();
        let (mut buf, mut out) = (Scratch::default(), Vec::new());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..2000 {
            let n = rng.random_range(1..6);
            let mut text: Vec<&str> = (0..n)
                .map(|_| words[rng.random_range(0..words.len())].as_str())
                .collect();
            if rng.random_bool(0.1) {
                text.push("ééééééééééé漢字");
            }
            let text = text.join(if rng.random_bool(0.5) { " " } else { ", " });
            trie.find(&text, &mut buf, &mut out);
            assert_eq!(out, brute_force(&entries, &text), "{text:?}");
        }
    }

    /// Tokens that differ only in trailing NUL bytes or in their length (the 8 inline bytes are
    /// zero padded, so the length class must tell them apart), tokens longer than 8 bytes that
    /// share their first 8, and the empty token.
    #[test]
    fn inline_key_lengths_and_nul_bytes() {
        let entries = [
            "ab",
            "ab\0",
            "ab\0\0\0\0\0\0",
            "ab\0\0\0\0\0\0\0",
            "\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefghij",
            "abcdefghij ab",
            "abcdefgh abcdefgh\0",
            "",
        ];
        let words: Vec<&str> = entries[..11].to_vec();
        let trie = Matcher::with_engine(&entries, MatchEngine::TokenTrie).unwrap();
        let (mut buf, mut out) = (Scratch::default(), Vec::new());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let n = rng.random_range(1..5);
            let text: Vec<&str> = (0..n)
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            let text = text.join(if rng.random_bool(0.8) { " " } else { ", " });
            trie.find(&text, &mut buf, &mut out);
            assert_eq!(out, brute_force(&entries, &text), "{text:?}");
            seen.extend(out.iter().copied());
        }
        // Every entry matched somewhere, so each was told apart from its neighbours.
        assert_eq!(seen.len(), entries.len());
    }

    /// Query lists with more tokens than the trie's ids can hold are refused, not truncated.
    #[test]
    fn too_many_tokens_is_an_error() {
        let entry = " ".repeat(MAX_TOKENS / 2);
        let err = Matcher::with_engine(&[&entry, &entry], MatchEngine::TokenTrie);
        assert!(matches!(err, Err(CurateError::Automaton(_))));
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
            "dog",
            "cat",
            "the",
            "The",
            "hot",
            "New",
            "York",
            "a",
            "é",
            "東京",
            "x.y",
            "a_rather_long_token_of_30_bytes",
            "a_rather_long_token_of_30_byteZ",
        ];
        let seps = [
            " ", "  ", ", ", ". ", "\t", "!", "?", ":", ";", "`", "\n", "-", "\r\n", "?! ", ",,",
            " . ",
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
        entries.push("dog dog dog".into());
        entries.push("dog dog dog".into());
        entries.push("New York".into());
        entries.push(". .".into());
        entries.push("? !".into());
        entries.push("!".into());
        let ac = Matcher::with_engine(&entries, MatchEngine::AhoCorasick).unwrap();
        let trie = Matcher::with_engine(&entries, MatchEngine::TokenTrie).unwrap();
        let (mut buf, mut out, mut out2) = (Scratch::default(), Vec::new(), Vec::new());
        let mut total = 0;
        let (mut texts, mut expected) = (Vec::new(), Vec::new());
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
            texts.push(text);
            expected.push(expect);
        }
        // Many texts at once (groups of 64 and a partial one) give the same sets.
        for m in [&ac, &trie] {
            let mut ends = Vec::new();
            for n in [texts.len(), 1, 65] {
                m.find_many(&texts[..n], &mut buf, &mut out, &mut ends);
                assert_eq!(ends.len(), n);
                let mut start = 0;
                for (i, &end) in ends.iter().enumerate() {
                    assert_eq!(out[start..end], expected[i], "{:?}", texts[i]);
                    start = end;
                }
            }
        }
        assert!(total > 10_000, "too few matches to test anything: {total}");
    }
}

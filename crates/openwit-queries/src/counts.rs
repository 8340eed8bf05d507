//! Token counting with bounded memory: unigrams in memory (interned to ids, [`crate::vocab`]),
//! bigrams as id pairs sorted in batches and spilled to sorted run files when over budget;
//! sorted count files and their k-way merge. A task's final bigrams are written as pairs of
//! word indexes ([`crate::pairs`]).
//!
//! A count file (`.cnt`) is a sorted list of `(key, count)` records, front-coded: each record is
//! the number of bytes its key shares with the previous key, the length of the rest, the rest
//! (UTF-8) and the count (LEB128 varints); the file starts with `OWCNT2\n` and ends with the
//! marker varint `u32::MAX` followed by the number of records and the sum of counts (`u64` LE
//! each), so a truncated file is detected. Bigram keys are the two tokens joined by one space
//! (tokens never contain spaces), which is also the query entry.

use std::path::{Path, PathBuf};

use crate::binfile::{BufFile, BufOut, END, put_varint};
use crate::error::{QueriesError, Result};
use crate::pairs::PairWriter;
use crate::vocab::{Head, Vocab};

/// The reduce's word table (string keys): rustc's Fx hash, fast on short keys.
pub type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Whether a token is one of the punctuation marks MetaCLIP's spacing isolates (`,` `.` ...).
/// Such tokens are counted as unigrams but end a bigram chain.
pub fn is_break(token: &str) -> bool {
    token.len() == 1 && openwit_core::text::SPACED_PUNCT.contains(&(token.as_bytes()[0] as char))
}

const OTHER: u8 = 0;
const SPACE: u8 = 1;
const PUNCT: u8 = 2;
const NEWLINE: u8 = 3;

/// Byte classes of the tokenizer: the separators of `openwit_core::text::spaced` (tab, CR, LF
/// and space), its isolated punctuation (`SPACED_PUNCT`) and line ends.
const fn classes() -> [u8; 256] {
    let mut t = [OTHER; 256];
    t[b' ' as usize] = SPACE;
    t[b'\t' as usize] = SPACE;
    t[b'\r' as usize] = SPACE;
    t[b'\n' as usize] = NEWLINE;
    let p = b",.;:?!`";
    let mut i = 0;
    while i < p.len() {
        t[p[i] as usize] = PUNCT;
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = classes();

/// The ASCII characters of `openwit_core::text::STRIP`.
#[inline]
fn is_strip_ascii(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>' | b'"' | b'\''
    )
}

/// The second byte of `«` / `»` (`C2 AB`, `C2 BB`).
#[inline]
fn is_guillemet_tail(b: u8) -> bool {
    matches!(b, 0xAB | 0xBB)
}

/// The third byte of `‘ ’ “ ”` (`E2 80 98/99/9C/9D`).
#[inline]
fn is_quote_tail(b: u8) -> bool {
    matches!(b, 0x98 | 0x99 | 0x9C | 0x9D)
}

/// `trim_matches(STRIP)` on the byte range `s..e` of `b` (UTF-8; cuts only around whole
/// characters).
#[inline]
fn trim_strip(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e {
        let c = b[s];
        if is_strip_ascii(c) {
            s += 1;
        } else if c == 0xC2 && s + 1 < e && is_guillemet_tail(b[s + 1]) {
            s += 2;
        } else if c == 0xE2 && s + 2 < e && b[s + 1] == 0x80 && is_quote_tail(b[s + 2]) {
            s += 3;
        } else {
            break;
        }
    }
    while e > s {
        let c = b[e - 1];
        if is_strip_ascii(c) {
            e -= 1;
        } else if e - s >= 2 && b[e - 2] == 0xC2 && is_guillemet_tail(c) {
            e -= 2;
        } else if e - s >= 3 && b[e - 3] == 0xE2 && b[e - 2] == 0x80 && is_quote_tail(c) {
            e -= 3;
        } else {
            break;
        }
    }
    (s, e)
}

/// Calls `f(token, is_break)` for each token of `text`: for each of `text.lines()`, the tokens of
/// `openwit_core::text::tokens(&spaced(line))` in order, without building the spaced text. A
/// line end is reported as `f("", true)` (it ends a bigram chain but is no token).
#[inline]
pub fn for_each_token(text: &str, mut f: impl FnMut(&str, bool)) {
    for_each_token_at(text.as_bytes(), |s, e, brk| f(&text[s..e], brk));
}

/// [`for_each_token`] by byte range: `f(start, end, is_break)`, a line end as an empty range.
/// Ranges fall on character boundaries of the UTF-8 text `b`.
#[inline]
fn for_each_token_at(b: &[u8], mut f: impl FnMut(usize, usize, bool)) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let k = CLASS[c as usize];
        if k == OTHER {
            continue;
        }
        if start < i {
            let (s, e) = trim_strip(b, start, i);
            if s < e {
                f(s, e, false);
            }
        }
        match k {
            PUNCT => f(i, i + 1, true),
            NEWLINE => f(i, i, true),
            _ => {}
        }
        start = i + 1;
    }
    if start < b.len() {
        let (s, e) = trim_strip(b, start, b.len());
        if s < e {
            f(s, e, false);
        }
    }
}

/// Bytes a pending bigram costs (its key; the radix sort's scratch copy, which also holds the
/// batch's counts, is as long and counted on its own).
const PENDING_BYTES: usize = 8;
/// Bytes a counted bigram costs (key and count, sorted).
const AGG_BYTES: usize = 16;
/// No id: the start of a bigram chain.
const NO_ID: u32 = u32::MAX;
/// Tokens whose interning slots are read together before they are counted (see
/// [`Counter::count_text`]).
const TOKEN_WINDOW: usize = 256;
/// Pending bigrams are sorted and added to the counted ones in batches of at least this many.
const MIN_BATCH: usize = 1 << 22;

/// Counts the unigrams and bigrams of one task, spilling bigrams to sorted runs in `spill_dir`
/// when the estimated memory goes over `budget` bytes.
///
/// Tokens are interned to dense ids and counted ([`Vocab`]: an open-addressed table with the
/// first 15 bytes and the count of each token inline, the words in one arena). Bigrams are appended as `id_a << 32 | id_b` to a pending batch, which is
/// radix-sorted, collapsed and merged into the sorted `(key, count)` list of counted bigrams:
/// sequential memory traffic instead of a hash-table miss per token.
pub struct Counter {
    vocab: Vocab,
    /// A text's tokens (`start`, `end`, ends a chain); a line end is an empty range.
    toks: Vec<(usize, usize, bool)>,
    /// A window's tokens' heads and hashes.
    hashed: Vec<(Head, u64)>,
    pending: Vec<u64>,
    scratch: Vec<u64>,
    agg: Vec<(u64, u64)>,
    /// Pending bigrams are added in batches of at least this many.
    batch: usize,
    budget: usize,
    spill_dir: PathBuf,
    runs: Vec<PathBuf>,
    /// Tokens counted (N).
    pub tokens: u64,
    /// Bigram occurrences counted.
    pub bigrams: u64,
}

/// Sorts `v` by its low `bits` bits (LSD radix, 11 bits a pass), using `scratch`.
fn radix_sort(v: &mut Vec<u64>, scratch: &mut Vec<u64>, bits: u32) {
    const D: u32 = 11;
    let n = v.len();
    if n < 256 {
        v.sort_unstable();
        return;
    }
    scratch.clear();
    scratch.resize(n, 0);
    let mut shift = 0;
    while shift < bits {
        let mut count = vec![0usize; 1 << D];
        for &x in v.iter() {
            count[((x >> shift) & ((1 << D) - 1)) as usize] += 1;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            let k = *c;
            *c = sum;
            sum += k;
        }
        for &x in v.iter() {
            let d = ((x >> shift) & ((1 << D) - 1)) as usize;
            scratch[count[d]] = x;
            count[d] += 1;
        }
        std::mem::swap(v, scratch);
        shift += D;
    }
}

/// The orders of a task's vocabulary that sort its bigram keys `a + " " + b` by bytes: the first
/// word by `a + " "` (which differs from the order of `a` only when a word continues another
/// with a byte below the space), the second by `b`.
pub(crate) struct Ranks {
    /// Ids in the order of the first word (`w + " "`).
    by1: Vec<u32>,
    /// Rank of each id in that order.
    pub(crate) rank1: Vec<u32>,
    /// Ids in byte order.
    by2: Vec<u32>,
    /// Rank of each id in byte order.
    rank2: Vec<u32>,
}

/// The first eight bytes, big-endian, zero-padded: a prefix that orders like the bytes.
#[inline]
fn prefix8(w: &[u8], then_space: bool) -> u64 {
    let mut p = [0u8; 8];
    let n = w.len().min(8);
    p[..n].copy_from_slice(&w[..n]);
    if then_space && n < 8 {
        p[n] = b' ';
    }
    u64::from_be_bytes(p)
}

/// Compares `a + " "` with `b + " "` (neither contains a space).
fn cmp_first(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Equal => {}
        o => return o,
    }
    match a.len().cmp(&b.len()) {
        Equal => Equal,
        Less => b' '.cmp(&b[n]),
        Greater => a[n].cmp(&b' '),
    }
}

fn invert(by: &[u32]) -> Vec<u32> {
    let mut r = vec![0u32; by.len()];
    for (i, &id) in by.iter().enumerate() {
        r[id as usize] = i as u32;
    }
    r
}

impl Ranks {
    pub(crate) fn new(words: &Vocab) -> Self {
        let word = |i: u32| words.word(i as usize);
        let mut v: Vec<(u64, u32)> = (0..words.len() as u32)
            .map(|i| (prefix8(word(i), false), i))
            .collect();
        v.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| word(x.1).cmp(word(y.1))));
        let by2: Vec<u32> = v.iter().map(|x| x.1).collect();
        let by1 = if (0..words.len() as u32).any(|i| word(i).iter().any(|&c| c < b' ')) {
            for x in v.iter_mut() {
                x.0 = prefix8(word(x.1), true);
            }
            v.sort_unstable_by(|x, y| x.0.cmp(&y.0).then_with(|| cmp_first(word(x.1), word(y.1))));
            v.iter().map(|x| x.1).collect()
        } else {
            by2.clone()
        };
        Ranks {
            rank1: invert(&by1),
            rank2: invert(&by2),
            by1,
            by2,
        }
    }
}

/// Bigrams of a task in key order. `v` holds one contiguous group per first word (id order),
/// each sorted by `rank2` (keys `rank1 << 32 | rank2`); the groups are visited in `by1` order
/// through `starts`, so the whole list never needs a global sort or a scratch copy.
struct SortedBigrams<'a> {
    v: &'a [(u64, u64)],
    /// Start of the group of each first-word id in `v`, plus the end (`words.len() + 1` items).
    starts: &'a [usize],
    /// Next position in `by1`.
    next_group: usize,
    i: usize,
    end: usize,
    /// Start of the current group, and the length of its `a + " "` at the front of `key`.
    group_start: usize,
    first_len: usize,
    words: &'a Vocab,
    ranks: &'a Ranks,
    key: Vec<u8>,
    count: u64,
}

/// The counted bigrams of a task, grouped by first word (see `Counter::sorted_bigrams`).
struct Grouped {
    v: Vec<(u64, u64)>,
    starts: Vec<usize>,
}

impl<'a> SortedBigrams<'a> {
    fn new(g: &'a Grouped, words: &'a Vocab, ranks: &'a Ranks) -> Self {
        SortedBigrams {
            v: &g.v,
            starts: &g.starts,
            next_group: 0,
            i: 0,
            end: 0,
            group_start: 0,
            first_len: 0,
            words,
            ranks,
            key: Vec::with_capacity(64),
            count: 0,
        }
    }
}

impl SortedCounts for SortedBigrams<'_> {
    fn advance(&mut self) -> Result<bool> {
        while self.i >= self.end {
            let Some(&id) = self.ranks.by1.get(self.next_group) else {
                return Ok(false);
            };
            self.next_group += 1;
            let id = id as usize;
            self.i = self.starts[id];
            self.group_start = self.i;
            self.end = self.starts[id + 1];
        }
        let Some(&(k, c)) = self.v.get(self.i) else {
            return Ok(false);
        };
        self.i += 1;
        let b = self
            .words
            .word(self.ranks.by2[(k & 0xffff_ffff) as usize] as usize);
        if self.i == self.group_start + 1 {
            let a = self.words.word(self.ranks.by1[(k >> 32) as usize] as usize);
            self.key.clear();
            self.key.extend_from_slice(a);
            self.key.push(b' ');
            self.first_len = self.key.len();
        } else {
            // Same first word as the previous record: keep `a + " "`.
            self.key.truncate(self.first_len);
        }
        self.key.extend_from_slice(b);
        self.count = c;
        Ok(true)
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn count(&self) -> u64 {
        self.count
    }
}

impl Counter {
    pub fn new(budget: usize, spill_dir: &Path) -> Self {
        Counter {
            vocab: Vocab::default(),
            toks: Vec::new(),
            hashed: Vec::with_capacity(TOKEN_WINDOW),
            pending: Vec::new(),
            scratch: Vec::new(),
            agg: Vec::new(),
            batch: MIN_BATCH,
            budget,
            spill_dir: spill_dir.to_path_buf(),
            runs: Vec::new(),
            tokens: 0,
            bigrams: 0,
        }
    }

    /// Counts a plain text: each of its lines spaced with MetaCLIP's rule and split into tokens;
    /// bigrams do not cross line ends or isolated punctuation.
    ///
    /// The tokens are found first, then counted [`TOKEN_WINDOW`] at a time: each window's
    /// interning slots are prefetched before the window is counted, so their cache misses
    /// overlap instead of stalling one token after the other.
    pub fn count_text(&mut self, text: &str) -> Result<()> {
        let mut prev = NO_ID;
        let b = text.as_bytes();
        let mut toks = std::mem::take(&mut self.toks);
        toks.clear();
        for_each_token_at(b, |s, e, brk| toks.push((s, e, brk)));
        let mut hashed = std::mem::take(&mut self.hashed);
        for window in toks.chunks(TOKEN_WINDOW) {
            hashed.clear();
            for &(s, e, _) in window {
                let h = Head::at(b, s, e);
                let x = crate::vocab::hash(h, &b[s..e]);
                self.vocab.prefetch(x);
                hashed.push((h, x));
            }
            for (&(s, e, brk), &(h, x)) in window.iter().zip(&hashed) {
                if s == e {
                    prev = NO_ID;
                    continue;
                }
                let id = self.vocab.count_hashed(h, x, &b[s..e]);
                self.tokens += 1;
                if brk {
                    prev = NO_ID;
                    continue;
                }
                if prev != NO_ID {
                    self.pending.push((u64::from(prev) << 32) | u64::from(id));
                    self.bigrams += 1;
                }
                prev = id;
            }
        }
        self.toks = toks;
        self.hashed = hashed;
        if self.pending.len() >= self.batch.max(self.agg.len() / 2) {
            self.add_pending();
        }
        if self.memory() > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Sorts the pending bigrams and adds them to the counted ones.
    fn add_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Sort on a compact key `a << nb | b` (same order as `a << 32 | b`).
        let nb = 32 - (self.vocab.len() as u32).leading_zeros();
        for x in self.pending.iter_mut() {
            *x = ((*x >> 32) << nb) | (*x & 0xffff_ffff);
        }
        // The scratch copy stays allocated for the next batch (its pages are already mapped; the
        // memory estimate counts it with the pending batch), and holds the run's counts.
        radix_sort(&mut self.pending, &mut self.scratch, 2 * nb);
        let mask = (1u64 << nb) - 1;
        // Collapse equal keys in place: keys at the front of `pending`, counts in `scratch`.
        let n = self.pending.len();
        self.scratch.resize(n, 0);
        let (p, cnt) = (&mut self.pending, &mut self.scratch);
        let (mut i, mut r) = (0, 0);
        while i < n {
            let k = p[i];
            let mut j = i + 1;
            while j < n && p[j] == k {
                j += 1;
            }
            p[r] = ((k >> nb) << 32) | (k & mask);
            cnt[r] = (j - i) as u64;
            r += 1;
            i = j;
        }
        // Merge the run into the counted bigrams, from the back, in place.
        let (run, cnt) = (&self.pending[..r], &self.scratch[..r]);
        let m = self.agg.len();
        self.agg.reserve_exact(r);
        self.agg.resize(m + r, (0, 0));
        let (mut a, mut b, mut w) = (m, r, m + r);
        while b > 0 {
            if a > 0 && self.agg[a - 1].0 > run[b - 1] {
                w -= 1;
                self.agg[w] = self.agg[a - 1];
                a -= 1;
            } else if a > 0 && self.agg[a - 1].0 == run[b - 1] {
                w -= 1;
                self.agg[w] = (run[b - 1], self.agg[a - 1].1 + cnt[b - 1]);
                a -= 1;
                b -= 1;
            } else {
                w -= 1;
                self.agg[w] = (run[b - 1], cnt[b - 1]);
                b -= 1;
            }
        }
        self.pending.clear();
        // The old entries left are in place at the front; close the gap that shared keys left.
        if w > a {
            self.agg.copy_within(w.., a);
            self.agg.truncate(a + m + r - w);
        }
    }

    /// Estimated bytes in use.
    pub fn memory(&self) -> usize {
        self.vocab.memory()
            + (self.pending.capacity() + self.scratch.capacity()) * PENDING_BYTES
            + self.agg.capacity() * AGG_BYTES
    }

    /// Number of bigram runs spilled so far.
    pub fn spills(&self) -> usize {
        self.runs.len()
    }

    /// Takes the counted bigrams as `(rank1 << 32 | rank2, count)`, grouped by first word.
    ///
    /// The counted list is sorted by `id1 << 32 | id2`, so each first word's bigrams already
    /// sit together: only each group needs sorting (by `rank2`), and the groups are then read
    /// in `rank1` order through their starts. Cheaper than sorting the whole list, and it needs
    /// no second copy of it.
    fn sorted_bigrams(&mut self, ranks: &Ranks) -> Grouped {
        self.add_pending();
        self.pending = Vec::new();
        self.scratch = Vec::new();
        let mut v = std::mem::take(&mut self.agg);
        let n = self.vocab.len();
        let mut starts = vec![0usize; n + 1];
        for x in &v {
            // Ids come from `words`; `min` only keeps a broken invariant from indexing out.
            starts[((x.0 >> 32) as usize).min(n - 1) + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        for id in 0..n {
            let g = &mut v[starts[id]..starts[id + 1]];
            let a = u64::from(ranks.rank1[id]) << 32;
            for x in g.iter_mut() {
                x.0 = a | u64::from(ranks.rank2[(x.0 & 0xffff_ffff) as usize]);
            }
            g.sort_unstable_by_key(|x| x.0);
        }
        Grouped { v, starts }
    }

    /// Writes the in-memory bigrams to a sorted run file and frees them.
    pub fn spill(&mut self) -> Result<()> {
        if self.agg.is_empty() && self.pending.is_empty() {
            return Ok(());
        }
        let ranks = Ranks::new(&self.vocab);
        self.spill_ranked(&ranks)
    }

    /// [`Counter::spill`] with the vocabulary's current ranks.
    fn spill_ranked(&mut self, ranks: &Ranks) -> Result<()> {
        if self.agg.is_empty() && self.pending.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.spill_dir)
            .map_err(|e| QueriesError::io(&self.spill_dir, e))?;
        let path = self
            .spill_dir
            .join(format!("run-{:05}.cnt", self.runs.len()));
        let v = self.sorted_bigrams(ranks);
        let mut w = CountWriter::create(&path)?;
        let mut src = SortedBigrams::new(&v, &self.vocab, ranks);
        while src.advance()? {
            w.push_bytes(src.key(), src.count())?;
        }
        w.finish()?;
        tracing::debug!(run = %path.display(), records = v.v.len(), "spilled bigram counts");
        self.runs.push(path);
        Ok(())
    }

    /// Writes the task's sorted unigram count file and its bigram pair file (see
    /// [`crate::pairs`]: bigrams as indexes into the unigram file, in key order). Consumes the
    /// counter; returns the records of each.
    pub fn finish(mut self, unigram_out: &Path, bigram_out: &Path) -> Result<(u64, u64)> {
        let ranks = Ranks::new(&self.vocab);
        let counts = self.vocab.counts();
        let mut w = CountWriter::create(unigram_out)?;
        for &id in &ranks.by2 {
            w.push_bytes(self.vocab.word(id as usize), counts[id as usize])?;
        }
        drop(counts);
        let n_uni = w.finish()?;
        if self.runs.is_empty() {
            // Only spilled keys (text) need the words' ids again.
            self.vocab.drop_table();
        } else {
            // Spill the rest too, so that its memory is free before the merge needs the table.
            self.spill_ranked(&ranks)?;
        }
        let mut w = PairWriter::create(bigram_out)?;
        if self.runs.is_empty() {
            let last = self.sorted_bigrams(&ranks);
            // Each first word's group, in key order; its keys' low half is the second word's
            // byte-order rank, which is its index in the unigram file.
            for &id in &ranks.by1 {
                let a = ranks.rank2[id as usize];
                let (s, e) = (last.starts[id as usize], last.starts[id as usize + 1]);
                for &(k, c) in &last.v[s..e] {
                    w.push(a, (k & 0xffff_ffff) as u32, c)?;
                }
            }
        } else {
            // Spilled runs hold keys as text: merge them, then find the words.
            let mut sources: Vec<Box<dyn SortedCounts + '_>> = Vec::new();
            for r in &self.runs {
                sources.push(Box::new(CountReader::open(r)?));
            }
            let vocab = &self.vocab;
            let index = |word: &[u8]| {
                vocab
                    .get(word)
                    .map(|id| ranks.rank2[id as usize])
                    .ok_or_else(|| QueriesError::Broken {
                        path: bigram_out.to_path_buf(),
                        offset: 0,
                        msg: "a spilled bigram has a word the task never counted".into(),
                        fix: "rerun with --restart queries".into(),
                    })
            };
            merge(sources, |k, c| {
                let sp = memchr::memchr(b' ', k).unwrap_or(k.len());
                let b = k.get(sp + 1..).unwrap_or_default();
                w.push(index(&k[..sp])?, index(b)?, c)
            })?;
        }
        let n_bi = w.finish()?;
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
        Ok((n_uni, n_bi))
    }
}

const MAGIC: &[u8; 7] = b"OWCNT2\n";

/// Length of the common prefix of `a` and `b`, compared eight bytes at a time (front coding
/// runs this once per record, and sorted neighbours often share long prefixes).
#[inline]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        let d = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Writes a count file (keys must come sorted and unique).
pub struct CountWriter {
    out: BufOut,
    prev: Vec<u8>,
}

impl CountWriter {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(CountWriter {
            out: BufOut::create(path, MAGIC)?,
            prev: Vec::new(),
        })
    }

    pub fn push(&mut self, key: &str, count: u64) -> Result<()> {
        self.push_bytes(key.as_bytes(), count)
    }

    /// Adds a record whose key is UTF-8 (the bytes of a `&str`).
    #[inline]
    pub fn push_bytes(&mut self, key: &[u8], count: u64) -> Result<()> {
        debug_assert!(self.out.records() == 0 || self.prev.as_slice() < key);
        let shared = common_prefix(&self.prev, key);
        let buf = &mut self.out.buf;
        put_varint(buf, shared as u64);
        put_varint(buf, (key.len() - shared) as u64);
        buf.extend_from_slice(&key[shared..]);
        self.prev.truncate(shared);
        self.prev.extend_from_slice(&key[shared..]);
        self.out.end_record(count)
    }

    /// Writes the trailer and flushes; returns the number of records.
    pub fn finish(self) -> Result<u64> {
        self.out.finish()
    }
}

/// A sorted stream of `(key, count)` records, read one at a time.
pub trait SortedCounts {
    /// Moves to the next record; `false` at the end.
    fn advance(&mut self) -> Result<bool>;
    /// The current record's key (UTF-8).
    fn key(&self) -> &[u8];
    /// The current record's count.
    fn count(&self) -> u64;
}

/// Reads a count file in order.
pub struct CountReader {
    src: BufFile,
    key: Vec<u8>,
    count: u64,
    records: u64,
    sum: u64,
    done: bool,
}

impl CountReader {
    pub fn open(path: &Path) -> Result<Self> {
        let mut src = BufFile::open(path)?;
        src.expect_magic(MAGIC, "not a count file")?;
        Ok(CountReader {
            src,
            key: Vec::new(),
            count: 0,
            records: 0,
            sum: 0,
            done: false,
        })
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn broken(&self, msg: &str) -> QueriesError {
        self.src
            .broken(&format!("{msg} after {} records", self.records))
    }

    fn read_next(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let shared = self.src.varint()?;
        if shared == END {
            let (records, sum) = self.src.trailer()?;
            if records != self.records || sum != self.sum {
                return Err(self.broken("record count mismatch"));
            }
            self.done = true;
            return Ok(false);
        }
        let len = self.src.varint()?;
        if shared > self.key.len() as u64 || len > u64::from(u32::MAX) {
            return Err(self.broken("bad record"));
        }
        let rest = match self.src.bytes(len as usize) {
            Ok(b) => b,
            Err(_) => return Err(self.broken("truncated")),
        };
        self.key.truncate(shared as usize);
        self.key.extend_from_slice(rest);
        self.count = self.src.varint()?;
        self.records += 1;
        self.sum = self.sum.wrapping_add(self.count);
        Ok(true)
    }

    /// The current key as text.
    pub fn key_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.key).map_err(|_| self.broken("key not UTF-8"))
    }
}

impl SortedCounts for CountReader {
    fn advance(&mut self) -> Result<bool> {
        self.read_next()
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn count(&self) -> u64 {
        self.count
    }
}

/// Sorted `(key, count)` records from memory (tests and small inputs).
pub struct VecCounts {
    v: std::vec::IntoIter<(String, u64)>,
    cur: (String, u64),
}

impl VecCounts {
    pub fn new(v: Vec<(String, u64)>) -> Self {
        VecCounts {
            v: v.into_iter(),
            cur: (String::new(), 0),
        }
    }
}

impl SortedCounts for VecCounts {
    fn advance(&mut self) -> Result<bool> {
        match self.v.next() {
            Some(x) => {
                self.cur = x;
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn key(&self) -> &[u8] {
        self.cur.0.as_bytes()
    }
    fn count(&self) -> u64 {
        self.cur.1
    }
}

/// Whether source `a` comes before source `b` (by key, then by index, so that the merge is
/// deterministic).
#[inline]
fn before(sources: &[Box<dyn SortedCounts + '_>], a: usize, b: usize) -> bool {
    match sources[a].key().cmp(sources[b].key()) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => a < b,
    }
}

fn sift_down(heap: &mut [usize], sources: &[Box<dyn SortedCounts + '_>], mut i: usize) {
    loop {
        let l = 2 * i + 1;
        if l >= heap.len() {
            return;
        }
        let r = l + 1;
        let c = if r < heap.len() && before(sources, heap[r], heap[l]) {
            r
        } else {
            l
        };
        if before(sources, heap[c], heap[i]) {
            heap.swap(c, i);
            i = c;
        } else {
            return;
        }
    }
}

/// k-way merge of sorted sources, summing the counts of equal keys; calls `sink` once per key in
/// byte order.
pub fn merge<'a>(
    sources: Vec<Box<dyn SortedCounts + 'a>>,
    mut sink: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    merge_tracked(sources, |k, c, _| sink(k, c))
}

/// [`merge`] that also tells `sink` which sources (indexes, ascending) had the key.
pub fn merge_tracked<'a>(
    mut sources: Vec<Box<dyn SortedCounts + 'a>>,
    mut sink: impl FnMut(&[u8], u64, &[usize]) -> Result<()>,
) -> Result<()> {
    let mut heap: Vec<usize> = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter_mut().enumerate() {
        if s.advance()? {
            heap.push(i);
        }
    }
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, &sources, i);
    }
    let mut cur: Vec<u8> = Vec::with_capacity(64);
    let mut cur_count = 0u64;
    let mut from: Vec<usize> = Vec::new();
    while let Some(&top) = heap.first() {
        let s = &sources[top];
        if !from.is_empty() && s.key() == cur.as_slice() {
            // saturating: counts read from files (pageview sums can be u64::MAX) must not overflow
            cur_count = cur_count.saturating_add(s.count());
        } else {
            if !from.is_empty() {
                sink(&cur, cur_count, &from)?;
                from.clear();
            }
            cur.clear();
            cur.extend_from_slice(s.key());
            cur_count = s.count();
        }
        from.push(top);
        if sources[top].advance()? {
            sift_down(&mut heap, &sources, 0);
        } else {
            heap.swap_remove(0);
            sift_down(&mut heap, &sources, 0);
        }
    }
    if !from.is_empty() {
        sink(&cur, cur_count, &from)?;
    }
    Ok(())
}

/// A merged key as text (count files hold UTF-8 keys; anything else is a damaged file).
pub fn key_str<'k>(key: &'k [u8], what: &Path) -> Result<&'k str> {
    std::str::from_utf8(key).map_err(|_| QueriesError::Broken {
        path: what.to_path_buf(),
        offset: 0,
        msg: "a count key is not UTF-8".into(),
        fix: "the count files are damaged; rerun with --restart queries".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(p: &Path) -> Vec<(String, u64)> {
        let mut r = CountReader::open(p).unwrap();
        let mut out = Vec::new();
        while r.advance().unwrap() {
            out.push((r.key_str().unwrap().to_string(), r.count()));
        }
        out
    }

    /// A task's bigram pair file, as `(a + " " + b, count)` through its unigram file.
    fn read_bigrams(u: &Path, b: &Path) -> Vec<(String, u64)> {
        let words = read_all(u);
        let mut r = crate::pairs::PairReader::open(b, words.len() as u64).unwrap();
        let mut out = Vec::new();
        while r.advance().unwrap() {
            let key = format!("{} {}", words[r.a as usize].0, words[r.b as usize].0);
            out.push((key, r.count));
        }
        out
    }

    /// The reference: `openwit_core::text` spacing and tokens, line by line.
    fn reference_tokens(text: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let s = openwit_core::text::spaced(line);
            for t in openwit_core::text::tokens(&s) {
                out.push((t.to_string(), is_break(t)));
            }
            out.push((String::new(), true));
        }
        out
    }

    fn fast_tokens(text: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for_each_token(text, |t, b| out.push((t.to_string(), b)));
        if !text.is_empty() && !text.ends_with('\n') {
            out.push((String::new(), true));
        }
        out
    }

    #[test]
    fn tokenizer_matches_core_spacing_and_tokens() {
        let fixed = [
            "The (dog) said \"hi\", [ok].",
            "a dog, running.\r\nnext line\ttab",
            "«quoted» “curly” ‘single’ (((x))) '' \"\" ()",
            "“” « » ‘’ a.b,c;d:e?f!g`h",
            "x\u{201c}y\u{201d} \u{201c}\u{201c}z\u{2019}\u{2019}",
            "   leading and trailing   \n\n\nblank lines\n",
            "émoji 🐕 and ü, ß. ‚low‘ „low“",
            "ctrl\u{1}chars\u{b}\u{c}here",
            "",
            "\n",
            "\r",
            "a\rb",
        ];
        for t in fixed {
            assert_eq!(fast_tokens(t), reference_tokens(t), "{t:?}");
        }
        // Pseudo-random strings over an alphabet full of separators and strip characters.
        let alphabet: Vec<char> = "ab (){}[]<>\"',.;:?!`\t\r\n«»“”‘’é\u{1}x".chars().collect();
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let mut s = String::new();
            let mut x = state;
            for _ in 0..len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            assert_eq!(fast_tokens(&s), reference_tokens(&s), "{s:?}");
        }
    }

    #[test]
    fn counts_lines_with_breaks_and_spills() {
        let dir = tempfile::tempdir().unwrap();
        // A tiny budget forces a spill after every text.
        let mut c = Counter::new(0, &dir.path().join("spill"));
        c.count_text("the dog, the (dog).").unwrap();
        c.count_text("the dog").unwrap();
        assert!(c.spills() >= 1);
        // A line end ends the chain: no `dog the` bigram.
        c.count_text("the dog\nthe cat").unwrap();
        assert_eq!(c.tokens, 12);
        let (u, b) = (dir.path().join("u.cnt"), dir.path().join("b.cnt"));
        c.finish(&u, &b).unwrap();
        assert_eq!(
            read_all(&u),
            vec![
                (",".into(), 1),
                (".".into(), 1),
                ("cat".into(), 1),
                ("dog".into(), 4),
                ("the".into(), 5)
            ]
        );
        // `dog ,` and `, the` are not bigrams: punctuation ends the chain.
        assert_eq!(
            read_bigrams(&u, &b),
            vec![("the cat".into(), 1), ("the dog".into(), 4)]
        );
    }

    #[test]
    fn batched_counts_equal_a_plain_count() {
        let words = [
            "the",
            "a",
            "dog",
            "Cat",
            "ran",
            "(x)",
            "é",
            "longer-than-seven",
            "z",
        ];
        let mut state = 7u64;
        let mut texts = Vec::new();
        let mut want_u: std::collections::BTreeMap<String, u64> = Default::default();
        let mut want_b: std::collections::BTreeMap<String, u64> = Default::default();
        for _ in 0..400 {
            let mut t = String::new();
            for _ in 0..(state % 40) {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let w = words[(state >> 40) as usize % words.len()];
                t.push_str(w);
                t.push(if (state >> 20).is_multiple_of(9) {
                    '\n'
                } else {
                    ' '
                });
            }
            state ^= state >> 17;
            for line in t.lines() {
                let s = openwit_core::text::spaced(line);
                let mut prev: Option<&str> = None;
                for tok in openwit_core::text::tokens(&s) {
                    *want_u.entry(tok.to_string()).or_insert(0) += 1;
                    if let Some(p) = prev {
                        *want_b.entry(format!("{p} {tok}")).or_insert(0) += 1;
                    }
                    prev = Some(tok);
                }
            }
            texts.push(t);
        }
        let dir = tempfile::tempdir().unwrap();
        for (batch, budget) in [
            (1, usize::MAX),
            (5, usize::MAX),
            (64, usize::MAX),
            (5, 3000),
        ] {
            let mut c = Counter::new(budget, &dir.path().join("spill"));
            c.batch = batch;
            for t in &texts {
                c.count_text(t).unwrap();
            }
            if budget < usize::MAX {
                assert!(c.spills() > 1);
            }
            assert_eq!(c.bigrams, want_b.values().sum::<u64>());
            let (u, b) = (dir.path().join("u.cnt"), dir.path().join("b.cnt"));
            c.finish(&u, &b).unwrap();
            assert_eq!(read_all(&u), want_u.clone().into_iter().collect::<Vec<_>>());
            assert_eq!(
                read_bigrams(&u, &b),
                want_b.clone().into_iter().collect::<Vec<_>>(),
                "{batch}"
            );
        }
    }

    #[test]
    fn radix_sort_sorts() {
        for (n, bits) in [(10_000usize, 40u32), (5000, 11), (3000, 64), (300, 23)] {
            let mut x = 99u64;
            let mut v: Vec<u64> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if bits == 64 { x } else { x & ((1 << bits) - 1) }
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            radix_sort(&mut v, &mut Vec::new(), bits);
            assert_eq!(v, want, "{n} {bits}");
        }
    }

    #[test]
    fn bigram_files_are_in_byte_order_of_the_joined_key() {
        // `a\u{1} b` sorts before `a c` (0x01 < 0x20) although `a` < `a\u{1}`.
        let words = ["a", "a\u{1}", "ab", "b", "a\u{1f}x", "Z", "é"];
        let mut text = String::new();
        for x in words {
            for y in words {
                text.push_str(&format!("{x} {y}\n"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        for budget in [usize::MAX, 0] {
            let mut c = Counter::new(budget, &dir.path().join("spill"));
            for line in text.lines() {
                c.count_text(line).unwrap();
            }
            let (u, b) = (dir.path().join("u.cnt"), dir.path().join("b.cnt"));
            c.finish(&u, &b).unwrap();
            let got = read_bigrams(&u, &b);
            let mut want: Vec<(String, u64)> = words
                .iter()
                .flat_map(|x| words.iter().map(move |y| (format!("{x} {y}"), 1)))
                .collect();
            want.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
            assert_eq!(got, want, "budget {budget}");
            let mut uw: Vec<(String, u64)> = words.iter().map(|w| (w.to_string(), 14)).collect();
            uw.sort();
            assert_eq!(read_all(&u), uw);
        }
    }

    #[test]
    fn merge_sums_equal_keys() {
        let a = VecCounts::new(vec![("a".into(), 1), ("c".into(), 2)]);
        let b = VecCounts::new(vec![("a".into(), 5), ("b".into(), 1)]);
        let c = VecCounts::new(vec![]);
        let d = VecCounts::new(vec![("c".into(), 7)]);
        let mut out = Vec::new();
        merge(
            vec![Box::new(a), Box::new(b), Box::new(c), Box::new(d)],
            |k, c| {
                out.push((String::from_utf8(k.to_vec()).unwrap(), c));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out, vec![("a".into(), 6), ("b".into(), 1), ("c".into(), 9)]);
    }

    #[test]
    fn count_files_round_trip_with_long_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.cnt");
        let long = "k".repeat(3 << 20);
        let mut keys: Vec<String> = (0..5000).map(|i| format!("key{i:06}")).collect();
        keys.push(long.clone());
        keys.push(format!("{long}z"));
        keys.sort();
        let mut w = CountWriter::create(&p).unwrap();
        for (i, k) in keys.iter().enumerate() {
            w.push(k, i as u64 * 1_000_003).unwrap();
        }
        assert_eq!(w.finish().unwrap(), keys.len() as u64);
        let got = read_all(&p);
        let want: Vec<(String, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u64 * 1_000_003))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn truncated_count_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.cnt");
        let mut w = CountWriter::create(&p).unwrap();
        w.push("a", 1).unwrap();
        w.push("b", 2).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        for cut in 1..bytes.len() - MAGIC.len() {
            std::fs::write(&p, &bytes[..bytes.len() - cut]).unwrap();
            let mut r = CountReader::open(&p).unwrap();
            let err = loop {
                match r.advance() {
                    Ok(true) => {}
                    Ok(false) => panic!("cut {cut}: read to the end"),
                    Err(e) => break e,
                }
            };
            assert!(err.to_string().contains("truncated"), "cut {cut}: {err}");
        }
    }
}

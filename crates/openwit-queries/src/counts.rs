//! Token counting with bounded memory: unigrams in memory (interned to ids), bigrams as id pairs
//! in a hash map that is spilled to sorted run files when over budget; sorted count files and
//! their k-way merge.
//!
//! A count file (`.cnt`) is a sorted list of `(key, count)` records: `u32` key length (LE), the
//! key bytes (UTF-8), `u64` count (LE); it ends with the record `u32::MAX` followed by the
//! number of records and the sum of counts (`u64` LE each), so a truncated file is detected.
//! Bigram keys are the two tokens joined by one space (tokens never contain spaces), which is
//! also the query entry.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{QueriesError, Result};

/// A small fast hasher (FxHash's multiply-rotate, with a final mix) for in-memory counting.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let r = chunks.remainder();
        if !r.is_empty() {
            let mut b = [0u8; 8];
            b[..r.len()].copy_from_slice(r);
            self.add(u64::from_le_bytes(b) ^ ((r.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// A splitmix64 finalizer: the multiply-rotate state alone has low bits that depend only on
    /// the low bits of the input, and hashbrown picks buckets by the low bits (bigram keys
    /// `a << 32 | b` would all collide per second word).
    #[inline]
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;
pub type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// Whether a token is one of the punctuation marks MetaCLIP's spacing isolates (`,` `.` ...).
/// Such tokens are counted as unigrams but end a bigram chain.
pub fn is_break(token: &str) -> bool {
    token.len() == 1 && openwit_core::text::SPACED_PUNCT.contains(&(token.as_bytes()[0] as char))
}

/// Bytes a bigram map entry costs (key, value, control byte, load-factor slack).
const BIGRAM_ENTRY_BYTES: usize = 24;
/// Bytes a vocabulary entry costs beyond its text.
const VOCAB_ENTRY_BYTES: usize = 56;

/// Counts the unigrams and bigrams of one task, spilling bigrams to sorted runs in `spill_dir`
/// when the estimated memory goes over `budget` bytes.
pub struct Counter {
    vocab: FxMap<Box<str>, u32>,
    words: Vec<Box<str>>,
    unigram: Vec<u64>,
    bigram: FxMap<u64, u64>,
    vocab_bytes: usize,
    budget: usize,
    spill_dir: PathBuf,
    runs: Vec<PathBuf>,
    /// Tokens counted (N).
    pub tokens: u64,
    /// Bigram occurrences counted.
    pub bigrams: u64,
}

impl Counter {
    pub fn new(budget: usize, spill_dir: &Path) -> Self {
        Counter {
            vocab: FxMap::default(),
            words: Vec::new(),
            unigram: Vec::new(),
            bigram: FxMap::default(),
            vocab_bytes: 0,
            budget,
            spill_dir: spill_dir.to_path_buf(),
            runs: Vec::new(),
            tokens: 0,
            bigrams: 0,
        }
    }

    #[inline]
    fn id(&mut self, t: &str) -> u32 {
        if let Some(&id) = self.vocab.get(t) {
            return id;
        }
        let id = self.words.len() as u32;
        let b: Box<str> = t.into();
        self.vocab_bytes += t.len() * 2 + VOCAB_ENTRY_BYTES;
        self.words.push(b.clone());
        self.vocab.insert(b, id);
        self.unigram.push(0);
        id
    }

    /// Counts one line of plain text (spaced with MetaCLIP's rule, split into tokens).
    pub fn count_line(&mut self, line: &str) -> Result<()> {
        let spaced = openwit_core::text::spaced(line);
        let mut prev: Option<u32> = None;
        for t in openwit_core::text::tokens(&spaced) {
            let id = self.id(t);
            self.unigram[id as usize] += 1;
            self.tokens += 1;
            if is_break(t) {
                prev = None;
                continue;
            }
            if let Some(p) = prev {
                *self
                    .bigram
                    .entry((u64::from(p) << 32) | u64::from(id))
                    .or_insert(0) += 1;
                self.bigrams += 1;
            }
            prev = Some(id);
        }
        if self.memory() > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Estimated bytes in use.
    pub fn memory(&self) -> usize {
        self.vocab_bytes + self.bigram.capacity() * BIGRAM_ENTRY_BYTES
    }

    /// Number of bigram runs spilled so far.
    pub fn spills(&self) -> usize {
        self.runs.len()
    }

    fn sorted_bigrams(&mut self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .bigram
            .drain()
            .map(|(k, c)| {
                let a = &self.words[(k >> 32) as usize];
                let b = &self.words[(k & 0xffff_ffff) as usize];
                let mut s = String::with_capacity(a.len() + b.len() + 1);
                s.push_str(a);
                s.push(' ');
                s.push_str(b);
                (s, c)
            })
            .collect();
        self.bigram.shrink_to(0);
        v.sort_unstable_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        v
    }

    /// Writes the in-memory bigrams to a sorted run file and frees them.
    pub fn spill(&mut self) -> Result<()> {
        if self.bigram.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.spill_dir)
            .map_err(|e| QueriesError::io(&self.spill_dir, e))?;
        let path = self
            .spill_dir
            .join(format!("run-{:05}.cnt", self.runs.len()));
        let v = self.sorted_bigrams();
        let mut w = CountWriter::create(&path)?;
        for (k, c) in &v {
            w.push(k, *c)?;
        }
        w.finish()?;
        tracing::debug!(run = %path.display(), records = v.len(), "spilled bigram counts");
        self.runs.push(path);
        Ok(())
    }

    /// Writes the sorted unigram and bigram count files. Consumes the counter.
    pub fn finish(mut self, unigram_out: &Path, bigram_out: &Path) -> Result<(u64, u64)> {
        let mut u: Vec<(&str, u64)> = self
            .words
            .iter()
            .zip(&self.unigram)
            .map(|(w, c)| (&**w, *c))
            .collect();
        u.sort_unstable_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        let mut w = CountWriter::create(unigram_out)?;
        for (k, c) in &u {
            w.push(k, *c)?;
        }
        let n_uni = w.finish()?;
        drop(u);
        let last = self.sorted_bigrams();
        let mut w = CountWriter::create(bigram_out)?;
        let n_bi = if self.runs.is_empty() {
            for (k, c) in &last {
                w.push(k, *c)?;
            }
            w.finish()?
        } else {
            let mut sources: Vec<Box<dyn CountSource>> = Vec::new();
            for r in &self.runs {
                sources.push(Box::new(CountReader::open(r)?));
            }
            sources.push(Box::new(last.into_iter().map(Ok)));
            merge(sources, |k, c| w.push(k, c))?;
            w.finish()?
        };
        for r in &self.runs {
            let _ = std::fs::remove_file(r);
        }
        Ok((n_uni, n_bi))
    }
}

/// Writes a count file (keys must come sorted and unique).
pub struct CountWriter {
    w: BufWriter<File>,
    path: PathBuf,
    records: u64,
    sum: u64,
}

impl CountWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).map_err(|e| QueriesError::io(path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(b"OWCNT1\n")
            .map_err(|e| QueriesError::io(path, e))?;
        Ok(CountWriter {
            w,
            path: path.to_path_buf(),
            records: 0,
            sum: 0,
        })
    }

    pub fn push(&mut self, key: &str, count: u64) -> Result<()> {
        let io = |e| QueriesError::io(&self.path, e);
        self.w
            .write_all(&(key.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.w.write_all(key.as_bytes()).map_err(io)?;
        self.w.write_all(&count.to_le_bytes()).map_err(io)?;
        self.records += 1;
        self.sum += count;
        Ok(())
    }

    /// Writes the trailer and flushes; returns the number of records.
    pub fn finish(mut self) -> Result<u64> {
        let io = |e| QueriesError::io(&self.path, e);
        self.w.write_all(&u32::MAX.to_le_bytes()).map_err(io)?;
        self.w.write_all(&self.records.to_le_bytes()).map_err(io)?;
        self.w.write_all(&self.sum.to_le_bytes()).map_err(io)?;
        self.w.flush().map_err(io)?;
        Ok(self.records)
    }
}

/// Reads a count file in order.
pub struct CountReader {
    r: BufReader<File>,
    path: PathBuf,
    records: u64,
    done: bool,
}

impl CountReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut magic = [0u8; 7];
        r.read_exact(&mut magic)
            .map_err(|e| QueriesError::io(path, e))?;
        if &magic != b"OWCNT1\n" {
            return Err(QueriesError::Broken {
                path: path.to_path_buf(),
                offset: 0,
                msg: "not a count file".into(),
                fix: "rerun with --restart queries".into(),
            });
        }
        Ok(CountReader {
            r,
            path: path.to_path_buf(),
            records: 0,
            done: false,
        })
    }

    fn broken(&self, msg: &str) -> QueriesError {
        QueriesError::Broken {
            path: self.path.clone(),
            offset: 0,
            msg: format!("{msg} after {} records", self.records),
            fix: "the count file is damaged; rerun with --restart queries".into(),
        }
    }

    fn read_next(&mut self) -> Result<Option<(String, u64)>> {
        if self.done {
            return Ok(None);
        }
        let mut b4 = [0u8; 4];
        self.r
            .read_exact(&mut b4)
            .map_err(|_| self.broken("truncated"))?;
        let len = u32::from_le_bytes(b4);
        let mut b8 = [0u8; 8];
        if len == u32::MAX {
            self.r
                .read_exact(&mut b8)
                .map_err(|_| self.broken("truncated trailer"))?;
            if u64::from_le_bytes(b8) != self.records {
                return Err(self.broken("record count mismatch"));
            }
            self.done = true;
            return Ok(None);
        }
        let mut key = vec![0u8; len as usize];
        self.r
            .read_exact(&mut key)
            .map_err(|_| self.broken("truncated"))?;
        self.r
            .read_exact(&mut b8)
            .map_err(|_| self.broken("truncated"))?;
        let key = String::from_utf8(key).map_err(|_| self.broken("key not UTF-8"))?;
        self.records += 1;
        Ok(Some((key, u64::from_le_bytes(b8))))
    }
}

impl Iterator for CountReader {
    type Item = Result<(String, u64)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.read_next().transpose()
    }
}

/// A sorted stream of `(key, count)`.
pub trait CountSource: Iterator<Item = Result<(String, u64)>> {}
impl<T: Iterator<Item = Result<(String, u64)>>> CountSource for T {}

/// k-way merge of sorted sources, summing the counts of equal keys; calls `sink` once per key in
/// byte order.
pub fn merge(
    mut sources: Vec<Box<dyn CountSource>>,
    mut sink: impl FnMut(&str, u64) -> Result<()>,
) -> Result<()> {
    let mut heap: BinaryHeap<Reverse<(Vec<u8>, usize, u64)>> = BinaryHeap::new();
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(r) = s.next() {
            let (k, c) = r?;
            heap.push(Reverse((k.into_bytes(), i, c)));
        }
    }
    let mut cur: Option<(Vec<u8>, u64)> = None;
    while let Some(Reverse((k, i, c))) = heap.pop() {
        if let Some(r) = sources[i].next() {
            let (nk, nc) = r?;
            heap.push(Reverse((nk.into_bytes(), i, nc)));
        }
        match &mut cur {
            Some((ck, cc)) if *ck == k => *cc += c,
            _ => {
                if let Some((ck, cc)) = cur.take() {
                    sink(std::str::from_utf8(&ck).unwrap_or_default(), cc)?;
                }
                cur = Some((k, c));
            }
        }
    }
    if let Some((ck, cc)) = cur {
        sink(std::str::from_utf8(&ck).unwrap_or_default(), cc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(p: &Path) -> Vec<(String, u64)> {
        CountReader::open(p).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn counts_lines_with_breaks_and_spills() {
        let dir = tempfile::tempdir().unwrap();
        // A tiny budget forces a spill after every line.
        let mut c = Counter::new(0, &dir.path().join("spill"));
        c.count_line("the dog, the (dog).").unwrap();
        c.count_line("the dog").unwrap();
        assert!(c.spills() >= 1);
        assert_eq!(c.tokens, 8);
        let (u, b) = (dir.path().join("u.cnt"), dir.path().join("b.cnt"));
        c.finish(&u, &b).unwrap();
        assert_eq!(
            read_all(&u),
            vec![
                (",".into(), 1),
                (".".into(), 1),
                ("dog".into(), 3),
                ("the".into(), 3)
            ]
        );
        // `dog ,` and `, the` are not bigrams: punctuation ends the chain.
        assert_eq!(read_all(&b), vec![("the dog".into(), 3)]);
    }

    #[test]
    fn merge_sums_equal_keys() {
        let a: Vec<Result<(String, u64)>> = vec![Ok(("a".into(), 1)), Ok(("c".into(), 2))];
        let b: Vec<Result<(String, u64)>> = vec![Ok(("a".into(), 5)), Ok(("b".into(), 1))];
        let mut out = Vec::new();
        merge(
            vec![Box::new(a.into_iter()), Box::new(b.into_iter())],
            |k, c| {
                out.push((k.to_string(), c));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out, vec![("a".into(), 6), ("b".into(), 1), ("c".into(), 2)]);
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
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let r: Result<Vec<_>> = CountReader::open(&p).unwrap().collect();
        assert!(r.unwrap_err().to_string().contains("truncated"));
    }
}

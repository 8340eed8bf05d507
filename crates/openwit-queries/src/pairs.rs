//! A task's bigram counts as pairs of word indexes (`.bi.cnt`, format `OWBIG1`).
//!
//! A task writes its unigrams as a sorted count file (`.uni.cnt`); its bigrams refer to those
//! words by their index in that file, and come in the byte order of the joined key `a + " " +
//! b`. The reduce learns, while it merges the unigram files, where each task's word lands in
//! the merged word list; that map preserves order, so every task's bigrams stay sorted after
//! mapping and the bigram merge compares integers instead of strings. Neither side builds or
//! compares a bigram's text except to write the final table.
//!
//! Records, in key order: `tag`, `b`, `count` (LEB128 varints). `tag` 0 means "same first word
//! as the previous record" and `b` is then the increase of the second word's index (second
//! words of one first word come in index order); otherwise the first word's index is `tag - 1`
//! and `b` is the second word's index. The file starts with `OWBIG1\n` and ends with the varint
//! `u32::MAX`, the number of records and the sum of counts (`u64` LE each), so that a truncated
//! file is detected.

use std::path::Path;

use crate::binfile::{BufFile, BufOut, END, put_varint};
use crate::error::{QueriesError, Result};

pub(crate) const PAIR_MAGIC: &[u8; 7] = b"OWBIG1\n";

/// Writes a task's bigram pairs (they must come in key order).
pub struct PairWriter {
    out: BufOut,
    prev: Option<(u32, u32)>,
}

impl PairWriter {
    pub fn create(path: &Path) -> Result<Self> {
        Ok(PairWriter {
            out: BufOut::create(path, PAIR_MAGIC)?,
            prev: None,
        })
    }

    /// Adds the bigram of words `a` and `b` (indexes in the task's unigram file).
    #[inline]
    pub fn push(&mut self, a: u32, b: u32, count: u64) -> Result<()> {
        let buf = &mut self.out.buf;
        match self.prev {
            Some((pa, pb)) if pa == a && b > pb => {
                put_varint(buf, 0);
                put_varint(buf, u64::from(b - pb));
            }
            _ => {
                put_varint(buf, u64::from(a) + 1);
                put_varint(buf, u64::from(b));
            }
        }
        self.prev = Some((a, b));
        self.out.end_record(count)
    }

    /// Writes the trailer and flushes; returns the number of records.
    pub fn finish(self) -> Result<u64> {
        self.out.finish()
    }
}

/// Reads a task's bigram pairs in order.
pub struct PairReader {
    src: BufFile,
    /// Words in the task's unigram file: every index must be below.
    words: u64,
    pub a: u32,
    pub b: u32,
    pub count: u64,
    records: u64,
    sum: u64,
    done: bool,
}

impl PairReader {
    /// Opens `path`, whose indexes refer to a unigram file of `words` records.
    pub fn open(path: &Path, words: u64) -> Result<Self> {
        let mut src = BufFile::open(path)?;
        src.expect_magic(PAIR_MAGIC, "not a bigram pair file")?;
        Ok(PairReader {
            src,
            words,
            a: 0,
            b: 0,
            count: 0,
            records: 0,
            sum: 0,
            done: false,
        })
    }

    pub(crate) fn broken(&self, msg: &str) -> QueriesError {
        self.src
            .broken(&format!("{msg} after {} records", self.records))
    }

    /// Moves to the next record; `false` at the end.
    pub fn advance(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let tag = self.src.varint()?;
        if tag == END {
            let (records, sum) = self.src.trailer()?;
            if records != self.records || sum != self.sum {
                return Err(self.broken("record count mismatch"));
            }
            self.done = true;
            return Ok(false);
        }
        let b = self.src.varint()?;
        if tag == 0 {
            if self.records == 0 || b == 0 {
                return Err(self.broken("bad record"));
            }
            let b = u64::from(self.b) + b;
            if b >= self.words {
                return Err(self.broken("word index out of range"));
            }
            self.b = b as u32;
        } else {
            if tag > self.words || b >= self.words {
                return Err(self.broken("word index out of range"));
            }
            self.a = (tag - 1) as u32;
            self.b = b as u32;
        }
        self.count = self.src.varint()?;
        self.records += 1;
        self.sum = self.sum.wrapping_add(self.count);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.cnt");
        let recs = [
            (3u32, 1u32, 5u64),
            (3, 2, 1),
            (3, 9, 300),
            (0, 0, 1),
            (7, 2, 2),
        ];
        let mut w = PairWriter::create(&p).unwrap();
        for &(a, b, c) in &recs {
            w.push(a, b, c).unwrap();
        }
        assert_eq!(w.finish().unwrap(), recs.len() as u64);
        let read = |words: u64| -> Result<Vec<(u32, u32, u64)>> {
            let mut r = PairReader::open(&p, words)?;
            let mut out = Vec::new();
            while r.advance()? {
                out.push((r.a, r.b, r.count));
            }
            Ok(out)
        };
        assert_eq!(read(10).unwrap(), recs);
        // An index beyond the unigram file is an error, not a wrong word.
        assert!(read(9).is_err());
        // Every truncation is an error.
        let full = std::fs::read(&p).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&p, &full[..cut]).unwrap();
            assert!(read(10).is_err(), "cut at {cut}");
        }
    }
}

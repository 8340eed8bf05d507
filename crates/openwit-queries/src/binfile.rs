//! The buffered binary files of the counting stage: varints, a writer that ends each file with
//! a trailer (end marker, records, sum of counts) and a reader of the same. The count files
//! (`counts.rs`) and the bigram pair files (`pairs.rs`) are both written and read through these.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{QueriesError, Result};

/// The varint that ends the records.
pub(crate) const END: u64 = u32::MAX as u64;
const WRITE_BUF: usize = 1 << 20;

#[inline]
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Decodes a varint at the start of `b`: `(value, bytes)`, or `None` if `b` ends inside it.
#[inline]
pub(crate) fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A count or pair file written through a buffer: the magic, records, and the trailer (end
/// marker, number of records, sum of counts).
pub(crate) struct BufOut {
    f: File,
    pub(crate) buf: Vec<u8>,
    path: PathBuf,
    records: u64,
    sum: u64,
}

impl BufOut {
    pub(crate) fn create(path: &Path, magic: &[u8]) -> Result<Self> {
        let f = File::create(path).map_err(|e| QueriesError::io(path, e))?;
        let mut buf = Vec::with_capacity(WRITE_BUF + 4096);
        buf.extend_from_slice(magic);
        Ok(BufOut {
            f,
            buf,
            path: path.to_path_buf(),
            records: 0,
            sum: 0,
        })
    }

    /// Ends a record (already in `buf`) of `count`.
    #[inline]
    pub(crate) fn end_record(&mut self, count: u64) -> Result<()> {
        put_varint(&mut self.buf, count);
        self.records += 1;
        self.sum = self.sum.wrapping_add(count);
        if self.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        self.f
            .write_all(&self.buf)
            .map_err(|e| QueriesError::io(&self.path, e))?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the trailer and flushes; returns the number of records.
    pub(crate) fn finish(mut self) -> Result<u64> {
        put_varint(&mut self.buf, END);
        self.buf.extend_from_slice(&self.records.to_le_bytes());
        self.buf.extend_from_slice(&self.sum.to_le_bytes());
        self.flush()?;
        Ok(self.records)
    }
}

/// A count or pair file read through a buffer: varints, the magic and the trailer.
pub(crate) struct BufFile {
    f: File,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    path: PathBuf,
}

impl BufFile {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
        Ok(BufFile {
            f,
            buf: vec![0u8; 1 << 20],
            pos: 0,
            end: 0,
            eof: false,
            path: path.to_path_buf(),
        })
    }

    /// Reads the file's first bytes, which must be `magic`.
    pub(crate) fn expect_magic(&mut self, magic: &[u8], what: &str) -> Result<()> {
        self.fill(magic.len())?;
        if self.end < magic.len() || &self.buf[..magic.len()] != magic {
            return Err(QueriesError::Broken {
                path: self.path.clone(),
                offset: 0,
                msg: what.into(),
                fix: "rerun with --restart queries".into(),
            });
        }
        self.pos = magic.len();
        Ok(())
    }

    pub(crate) fn broken(&self, msg: &str) -> QueriesError {
        QueriesError::Broken {
            path: self.path.clone(),
            offset: 0,
            msg: msg.into(),
            fix: "the count file is damaged; rerun with --restart queries".into(),
        }
    }

    /// Makes at least `n` bytes available from `pos` unless the file ends first.
    pub(crate) fn fill(&mut self, n: usize) -> Result<()> {
        if self.end - self.pos >= n || self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n {
            let k = self
                .f
                .read(&mut self.buf[self.end..])
                .map_err(|e| QueriesError::io(&self.path, e))?;
            if k == 0 {
                self.eof = true;
                break;
            }
            self.end += k;
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64> {
        self.fill(10)?;
        let (v, k) =
            get_varint(&self.buf[self.pos..self.end]).ok_or_else(|| self.broken("truncated"))?;
        self.pos += k;
        Ok(v)
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        self.fill(n)?;
        if self.end - self.pos < n {
            return Err(self.broken("truncated"));
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    /// The trailer after the end marker: `(records, sum of counts)`.
    pub(crate) fn trailer(&mut self) -> Result<(u64, u64)> {
        let b = self.bytes(16)?;
        let records = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let sum = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
        Ok((records, sum))
    }
}

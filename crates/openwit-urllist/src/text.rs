//! A byte stream for the text formats: its own buffer (so bytes can be put back in front of it
//! when a broken CSV record is re-read), the absolute offset and line of the next byte, and the
//! I/O error (a truncated gzip member, a failing disk) that ended it.

use std::io::Read;

/// Bytes read from the inner reader at a time.
const CHUNK: usize = 1 << 16;

pub(crate) struct ByteSource {
    inner: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// The I/O error that ended the stream early, if one did.
    pub error: Option<String>,
    /// Offset (in the decompressed text) of the next byte.
    pub offset: u64,
    /// 1-based line of the next byte.
    pub line: u64,
    /// Counts a lone CR as a line break (CSV/TSV), besides LF.
    cr_breaks: bool,
}

impl ByteSource {
    pub fn new(inner: Box<dyn Read + Send>, offset: u64, line: u64, cr_breaks: bool) -> Self {
        ByteSource {
            inner,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            eof: false,
            error: None,
            offset,
            line,
            cr_breaks,
        }
    }

    /// Makes sure a byte is buffered; false at the end of the stream (or after an I/O error).
    fn fill(&mut self) -> bool {
        if self.pos < self.buf.len() {
            return true;
        }
        if self.eof {
            return false;
        }
        self.buf.clear();
        self.pos = 0;
        self.buf.resize(CHUNK, 0);
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.buf.clear();
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.truncate(n);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.clear();
                    self.eof = true;
                    self.error = Some(e.to_string());
                    return false;
                }
            }
        }
    }

    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        if self.fill() {
            Some(self.buf[self.pos])
        } else {
            None
        }
    }

    /// Consumes and returns the next byte, keeping the offset and line.
    #[inline]
    pub fn bump(&mut self) -> Option<u8> {
        if !self.fill() {
            return None;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.offset += 1;
        let cr_break = b == b'\r' && self.cr_breaks && self.peek() != Some(b'\n');
        if b == b'\n' || cr_break {
            self.line += 1;
        }
        Some(b)
    }

    /// Puts `bytes` back in front of the stream; they start at `offset`, on `line`.
    pub fn replay(&mut self, bytes: &[u8], offset: u64, line: u64) {
        let mut b = Vec::with_capacity(bytes.len() + self.buf.len() - self.pos);
        b.extend_from_slice(bytes);
        b.extend_from_slice(&self.buf[self.pos..]);
        self.buf = b;
        self.pos = 0;
        self.offset = offset;
        self.line = line;
    }

    /// Skips a UTF-8 byte order mark at the current position.
    pub fn skip_bom(&mut self) {
        let mut head = Vec::with_capacity(3);
        while head.len() < 3 {
            match self.peek() {
                Some(b) => {
                    head.push(b);
                    self.pos += 1;
                }
                None => break,
            }
        }
        if head == [0xEF, 0xBB, 0xBF] {
            self.offset += 3;
        } else {
            let (offset, line) = (self.offset, self.line);
            self.replay(&head, offset, line);
        }
    }

    /// Consumes a line break that starts with `first` (already consumed): CR LF counts once.
    pub fn finish_break(&mut self, first: u8) {
        if first == b'\r' && self.peek() == Some(b'\n') {
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(data: &[u8]) -> ByteSource {
        ByteSource::new(Box::new(std::io::Cursor::new(data.to_vec())), 0, 1, true)
    }

    #[test]
    fn offsets_lines_bom_and_replay() {
        let mut s = src(b"\xEF\xBB\xBFa\r\nb\rc\n");
        s.skip_bom();
        assert_eq!(s.offset, 3);
        let mut got = Vec::new();
        while let Some(b) = s.bump() {
            got.push((b, s.offset, s.line));
        }
        assert_eq!(got[0], (b'a', 4, 1));
        assert_eq!(got[2], (b'\n', 6, 2), "CR LF is one break");
        assert_eq!(got[4], (b'\r', 8, 3), "a lone CR is a break");
        assert_eq!(got.last(), Some(&(b'\n', 10, 4)));
        s.replay(b"xy", 4, 2);
        assert_eq!((s.bump(), s.offset, s.line), (Some(b'x'), 5, 2));
        assert_eq!(s.bump(), Some(b'y'));
        assert_eq!(s.bump(), None);
        // a stream shorter than a BOM
        let mut s = src(b"\xEF\xBB");
        s.skip_bom();
        assert_eq!(
            (s.bump(), s.bump(), s.bump()),
            (Some(0xEF), Some(0xBB), None)
        );
        let mut s = src(b"");
        s.skip_bom();
        assert_eq!(s.peek(), None);
    }

    #[test]
    fn an_io_error_ends_the_stream_and_is_kept() {
        struct Failing(u8);
        impl Read for Failing {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                b[0] = b'z';
                Ok(1)
            }
        }
        let mut s = ByteSource::new(Box::new(Failing(2)), 0, 1, false);
        assert_eq!(
            (s.bump(), s.bump(), s.bump()),
            (Some(b'z'), Some(b'z'), None)
        );
        assert_eq!(s.error.as_deref(), Some("disk on fire"));
    }
}

//! A big-endian bit reader over any `Read`, with its own buffer.
//!
//! bzip2 is a bit stream with no byte alignment inside a stream, so the hot loops want "peek up
//! to 20 bits, consume k" to be a shift and a mask. The accumulator is left-aligned (the next bit
//! is bit 63). Past the end of the input it is padded with zero bits, and `overrun` says whether
//! any padding was consumed: the decoder checks it at its loop boundaries, so a truncated input
//! becomes an error instead of garbage, and every loop stays bounded by the format's own limits.

use std::io::{self, Read};

const BUF: usize = 1 << 18;

pub(crate) struct Bits<R> {
    r: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Next bits at the top. Bits below the `n` valid ones may hold the following input bits
    /// (the fast refill loads 8 bytes and counts 7), never anything else.
    acc: u64,
    n: u32,
    eof: bool,
    /// Bytes of the input before `buf`.
    base: u64,
    /// Zero bits appended after the end of the input.
    pad: u64,
}

impl<R: Read> Bits<R> {
    pub(crate) fn new(r: R) -> Self {
        Bits {
            r,
            buf: vec![0u8; BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
            acc: 0,
            n: 0,
            eof: false,
            base: 0,
            pad: 0,
        }
    }

    /// Makes at least 57 bits available (zero padded past the end of the input).
    #[inline(always)]
    pub(crate) fn refill(&mut self) -> io::Result<()> {
        if self.pos + 8 <= self.len {
            let mut w = [0u8; 8];
            w.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
            let v = u64::from_be_bytes(w);
            self.acc |= v >> self.n;
            let take = (63 - self.n) >> 3;
            self.pos += take as usize;
            self.n += take << 3;
            Ok(())
        } else {
            self.refill_slow()
        }
    }

    #[cold]
    fn refill_slow(&mut self) -> io::Result<()> {
        while self.n <= 56 {
            if self.pos < self.len {
                self.acc |= u64::from(self.buf[self.pos]) << (56 - self.n);
                self.pos += 1;
                self.n += 8;
            } else if !self.eof {
                self.base += self.len as u64;
                self.pos = 0;
                self.len = loop {
                    match self.r.read(&mut self.buf) {
                        Ok(k) => break k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                if self.len == 0 {
                    self.eof = true;
                }
            } else {
                // The bits below `n` are zero here: no real byte is left to have filled them.
                self.n += 8;
                self.pad += 8;
            }
        }
        Ok(())
    }

    /// Ensures `k` (<= 57) bits are available.
    #[inline(always)]
    pub(crate) fn need(&mut self, k: u32) -> io::Result<()> {
        if self.n < k { self.refill() } else { Ok(()) }
    }

    /// The next 32 bits, not consumed (call `need` first).
    #[inline(always)]
    pub(crate) fn peek32(&self) -> u32 {
        (self.acc >> 32) as u32
    }

    #[inline(always)]
    pub(crate) fn skip(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// Reads `k` bits, 1 <= k <= 32.
    #[inline(always)]
    pub(crate) fn get(&mut self, k: u32) -> io::Result<u32> {
        self.need(k)?;
        let v = (self.acc >> (64 - k)) as u32;
        self.skip(k);
        Ok(v)
    }

    #[inline(always)]
    pub(crate) fn bit(&mut self) -> io::Result<bool> {
        Ok(self.get(1)? == 1)
    }

    /// Whether bits past the end of the input have been consumed.
    #[inline(always)]
    pub(crate) fn overrun(&self) -> bool {
        self.pad > u64::from(self.n)
    }

    /// Drops the bits up to the next byte boundary.
    pub(crate) fn align(&mut self) {
        let k = self.n & 7;
        self.skip(k);
    }

    /// Whether the input is exhausted at the current (byte-aligned) position.
    pub(crate) fn at_eof(&mut self) -> io::Result<bool> {
        if u64::from(self.n) > self.pad {
            return Ok(false);
        }
        self.refill()?;
        Ok(u64::from(self.n) <= self.pad)
    }

    /// Input bytes consumed (rounded up to whole bytes).
    pub(crate) fn byte_pos(&self) -> u64 {
        let real_bits_left = u64::from(self.n).saturating_sub(self.pad);
        (self.base + self.pos as u64).saturating_sub(real_bits_left / 8)
    }
}

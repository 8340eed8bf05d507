//! A bzip2 decoder written for the dump reader's throughput.
//!
//! Why not only the `bzip2` crate: the stage's speed goal is relative to `bzip2 -dc` itself, and
//! libbz2 (C or its Rust port) spends most of its time in two places this decoder does
//! differently:
//! - Huffman symbols are decoded through a 10-bit lookup table per coding table (one load per
//!   symbol for all codes up to 10 bits, which is nearly every symbol of text), not bit by bit;
//! - the inverse BWT is a chain of dependent loads over a block of up to 900k entries, bound by
//!   memory latency. The decoder parses the Huffman stage of up to [`LANES`] consecutive blocks
//!   (across stream boundaries: a multistream dump is many small streams) and follows their
//!   chains in one interleaved loop, so the cache misses of the chains overlap.
//!
//! The format: a stream is `BZh` + level `1`-`9` (block size in 100k), blocks that start with the
//! 48-bit magic 0x314159265359 (bit aligned), and an end marker 0x177245385090 with the combined
//! CRC, padded to a byte; streams may be concatenated. Every block CRC and stream CRC is checked.
//! Any malformed, truncated or corrupt input is an `io::Error` (kind `InvalidData`, or
//! `UnexpectedEof` when the input ends early) carrying a [`Bz2Error`]; no input panics, loops
//! without bound or allocates more than a few blocks' worth of memory. The `bzip2` crate stays
//! the oracle of the tests.

mod bits;
mod crc;

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::huge::TtBuf;
use bits::Bits;

/// Blocks whose inverse BWT runs interleaved, at most (see [`Decoder::with_lanes`]).
pub const MAX_LANES: usize = 8;
/// The default number of lanes: on huge pages, 8 lanes decode ~11% faster than 4 (memory: ~60
/// MB per decoder instead of ~31; 12-16 lanes gain little more).
pub const LANES: usize = 8;

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const END_MAGIC: u64 = 0x1772_4538_5090;
const MAX_GROUPS: usize = 6;
const MAX_SELECTORS: usize = 18002;
const MAX_ALPHA: usize = 258;
const MAX_CODE_LEN: u32 = 20;
/// Bits of the Huffman lookup tables.
const LUT_BITS: u32 = 10;

/// What is wrong with a bzip2 input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bz2Error {
    #[error("not a bzip2 stream (no `BZh1`-`BZh9` header)")]
    BadHeader,
    #[error("bad block magic")]
    BadMagic,
    #[error("randomised blocks (bzip2 < 0.9.5) are not supported")]
    Randomised,
    #[error("corrupt block: {0}")]
    Corrupt(&'static str),
    #[error("block CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    BlockCrc { stored: u32, computed: u32 },
    #[error("stream CRC mismatch (stored {stored:08x}, computed {computed:08x})")]
    StreamCrc { stored: u32, computed: u32 },
    #[error("the bzip2 input ends early")]
    Truncated,
}

impl From<Bz2Error> for io::Error {
    fn from(e: Bz2Error) -> Self {
        let kind = if e == Bz2Error::Truncated {
            io::ErrorKind::UnexpectedEof
        } else {
            io::ErrorKind::InvalidData
        };
        io::Error::new(kind, e)
    }
}

/// One coding table: a lookup on the next [`LUT_BITS`] bits, and canonical-code ranges for the
/// longer codes.
struct Table {
    /// `sym << 5 | len` for codes of up to `LUT_BITS` bits; 0 where the code is longer (or
    /// unassigned).
    lut: [u16; 1 << LUT_BITS],
    /// For length `l`: the first code, the number of codes and where their symbols start in
    /// `syms`.
    first: [u32; MAX_CODE_LEN as usize + 1],
    count: [u32; MAX_CODE_LEN as usize + 1],
    start: [u16; MAX_CODE_LEN as usize + 1],
    syms: [u16; MAX_ALPHA],
}

impl Table {
    fn new() -> Self {
        Table {
            lut: [0; 1 << LUT_BITS],
            first: [0; MAX_CODE_LEN as usize + 1],
            count: [0; MAX_CODE_LEN as usize + 1],
            start: [0; MAX_CODE_LEN as usize + 1],
            syms: [0; MAX_ALPHA],
        }
    }

    /// Builds the canonical code of bzip2 (codes in order of length, then symbol).
    fn build(&mut self, lens: &[u8]) -> Result<(), Bz2Error> {
        self.count = [0; MAX_CODE_LEN as usize + 1];
        for &l in lens {
            self.count[l as usize] += 1;
        }
        let mut code = 0u32;
        let mut at = 0u16;
        for l in 1..=MAX_CODE_LEN as usize {
            self.first[l] = code;
            self.start[l] = at;
            code += self.count[l];
            at += self.count[l] as u16;
            if code > 1 << l {
                return Err(Bz2Error::Corrupt("over-subscribed Huffman code"));
            }
            code <<= 1;
        }
        let mut next = self.start;
        for (s, &l) in lens.iter().enumerate() {
            let l = l as usize;
            self.syms[next[l] as usize] = s as u16;
            next[l] += 1;
        }
        self.lut = [0; 1 << LUT_BITS];
        for l in 1..=LUT_BITS as usize {
            for k in 0..self.count[l] {
                let c = self.first[l] + k;
                let sym = self.syms[(self.start[l] as u32 + k) as usize];
                let lo = (c as usize) << (LUT_BITS as usize - l);
                let hi = lo + (1 << (LUT_BITS as usize - l));
                self.lut[lo..hi].fill(sym << 5 | l as u16);
            }
        }
        Ok(())
    }

    /// The symbol and code length at the top of `bits` (32 bits, left-aligned).
    #[inline(always)]
    fn decode(&self, bits: u32) -> Result<(u32, u32), Bz2Error> {
        let e = self.lut[(bits >> (32 - LUT_BITS)) as usize];
        if e != 0 {
            return Ok((u32::from(e >> 5), u32::from(e & 31)));
        }
        self.decode_long(bits)
    }

    #[cold]
    fn decode_long(&self, bits: u32) -> Result<(u32, u32), Bz2Error> {
        for l in LUT_BITS + 1..=MAX_CODE_LEN {
            let c = bits >> (32 - l);
            let k = c.wrapping_sub(self.first[l as usize]);
            if k < self.count[l as usize] {
                let sym = self.syms[(u32::from(self.start[l as usize]) + k) as usize];
                return Ok((u32::from(sym), l));
            }
        }
        Err(Bz2Error::Corrupt("invalid Huffman code"))
    }
}

/// A block after its Huffman/MTF stage: `tt` holds the BWT vector (byte in the low 8 bits, the
/// link in the high 24).
struct Parsed {
    tt: TtBuf,
    /// Entries of `tt` in use.
    len: usize,
    orig: u32,
    crc: u32,
}

enum Item {
    Block(usize),
    StreamEnd { crc: u32, end: u64 },
    Error(io::Error),
}

enum Out {
    Data(Vec<u8>),
    StreamEnd { end: u64 },
    Error(io::Error),
}

/// Decodes a bzip2 file (one stream or concatenated streams). As a `Read` it yields the
/// decompressed bytes of all streams; [`Decoder::read_stream`] stops at each stream's end.
pub struct Decoder<R> {
    bits: Bits<R>,
    /// Block size limit of the current stream; 0 before a stream header was read.
    limit: usize,
    in_stream: bool,
    done: bool,
    stream_crc: u32,
    tables: Vec<Table>,
    selectors: Vec<u8>,
    /// Runs (start, length) of 2 or more equal bytes in the block being parsed.
    runs: Vec<(u32, u32)>,
    slots: Vec<Parsed>,
    scratch: Vec<Vec<u8>>,
    free: Vec<Vec<u8>>,
    out: VecDeque<Out>,
    /// Read position in the front `Out::Data`.
    at: usize,
    /// A stored error, returned again on later calls.
    failed: Option<(io::ErrorKind, String)>,
    last_end: Option<u64>,
}

impl<R: Read> Decoder<R> {
    pub fn new(r: R) -> Self {
        Self::with_lanes(r, LANES)
    }

    /// A decoder that runs the inverse BWT of `lanes` (1 to [`MAX_LANES`]) blocks together.
    pub fn with_lanes(r: R, lanes: usize) -> Self {
        let lanes = lanes.clamp(1, MAX_LANES);
        Decoder {
            bits: Bits::new(r),
            limit: 0,
            in_stream: false,
            done: false,
            stream_crc: 0,
            tables: (0..MAX_GROUPS).map(|_| Table::new()).collect(),
            selectors: Vec::new(),
            runs: Vec::new(),
            slots: (0..lanes)
                .map(|_| Parsed {
                    tt: TtBuf::default(),
                    len: 0,
                    orig: 0,
                    crc: 0,
                })
                .collect(),
            scratch: (0..lanes).map(|_| Vec::new()).collect(),
            free: Vec::new(),
            out: VecDeque::new(),
            at: 0,
            failed: None,
            last_end: None,
        }
    }

    /// Reads the decompressed bytes of the current stream; `Ok(0)` at its end (then the next
    /// call reads the next stream) and at the end of the input ([`Decoder::finished`]).
    pub fn read_stream(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((kind, msg)) = &self.failed {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            match self.out.front_mut() {
                Some(Out::Data(d)) => {
                    let k = (d.len() - self.at).min(buf.len());
                    buf[..k].copy_from_slice(&d[self.at..self.at + k]);
                    self.at += k;
                    if self.at == d.len()
                        && let Some(Out::Data(d)) = self.out.pop_front()
                    {
                        self.at = 0;
                        self.free.push(d);
                    }
                    if k > 0 || buf.is_empty() {
                        return Ok(k);
                    }
                }
                Some(&mut Out::StreamEnd { end }) => {
                    self.out.pop_front();
                    self.last_end = Some(end);
                    return Ok(0);
                }
                Some(Out::Error(_)) => {
                    if let Some(Out::Error(e)) = self.out.pop_front() {
                        self.failed = Some((e.kind(), e.to_string()));
                        return Err(e);
                    }
                }
                None if self.done => return Ok(0),
                None => self.fill(),
            }
        }
    }

    /// Whether the whole input has been decoded and read.
    pub fn finished(&self) -> bool {
        self.done && self.out.is_empty() && self.failed.is_none()
    }

    /// The input offset (bytes) just past the last stream whose end [`Decoder::read_stream`]
    /// returned.
    pub fn last_stream_end(&self) -> Option<u64> {
        self.last_end
    }

    /// Parses up to `LANES` blocks, then runs their inverse BWTs together and queues the output.
    fn fill(&mut self) {
        let lanes = self.slots.len();
        let mut items: Vec<Item> = Vec::with_capacity(lanes + 2);
        let mut used = 0;
        while used < lanes {
            match self.parse_next(used) {
                Ok(Some(it @ Item::Block(_))) => {
                    items.push(it);
                    used += 1;
                }
                Ok(Some(it)) => items.push(it),
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    items.push(Item::Error(e));
                    self.done = true;
                    break;
                }
            }
        }
        self.inverse_bwt(used);
        for it in items {
            match it {
                Item::Block(s) => {
                    let mut o = self.free.pop().unwrap_or_default();
                    o.clear();
                    let p = &self.slots[s];
                    un_rle(&self.scratch[s], &mut o);
                    let computed = !crc::update(!0, &o);
                    if computed != p.crc {
                        self.out.push_back(Out::Error(
                            Bz2Error::BlockCrc {
                                stored: p.crc,
                                computed,
                            }
                            .into(),
                        ));
                        self.done = true;
                        return;
                    }
                    self.stream_crc = self.stream_crc.rotate_left(1) ^ computed;
                    if o.is_empty() {
                        self.free.push(o);
                    } else {
                        self.out.push_back(Out::Data(o));
                    }
                }
                Item::StreamEnd { crc, end } => {
                    if crc != self.stream_crc {
                        self.out.push_back(Out::Error(
                            Bz2Error::StreamCrc {
                                stored: crc,
                                computed: self.stream_crc,
                            }
                            .into(),
                        ));
                        self.done = true;
                        return;
                    }
                    self.stream_crc = 0;
                    self.out.push_back(Out::StreamEnd { end });
                }
                Item::Error(e) => {
                    self.out.push_back(Out::Error(e));
                    return;
                }
            }
        }
    }

    /// The next block (parsed into slot `slot`), stream end, or `None` at the end of the input.
    fn parse_next(&mut self, slot: usize) -> io::Result<Option<Item>> {
        if !self.in_stream {
            self.bits.align();
            if self.bits.at_eof()? {
                return Ok(None);
            }
            let h = self.bits.get(24)?;
            if h != u32::from_be_bytes([0, b'B', b'Z', b'h']) {
                return Err(Bz2Error::BadHeader.into());
            }
            let level = self.bits.get(8)?;
            if self.bits.overrun() {
                return Err(Bz2Error::Truncated.into());
            }
            if !(u32::from(b'1')..=u32::from(b'9')).contains(&level) {
                return Err(Bz2Error::BadHeader.into());
            }
            self.limit = (level - u32::from(b'0')) as usize * 100_000;
            // (`stream_crc` is reset when `fill` checks the previous stream's end: parsing runs
            // ahead of it.)
            self.in_stream = true;
        }
        let magic = u64::from(self.bits.get(24)?) << 24 | u64::from(self.bits.get(24)?);
        let crc = self.bits.get(32)?;
        if self.bits.overrun() {
            return Err(Bz2Error::Truncated.into());
        }
        match magic {
            END_MAGIC => {
                self.in_stream = false;
                self.bits.align();
                Ok(Some(Item::StreamEnd {
                    crc,
                    end: self.bits.byte_pos(),
                }))
            }
            BLOCK_MAGIC => {
                self.parse_block(slot, crc)?;
                Ok(Some(Item::Block(slot)))
            }
            _ => Err(Bz2Error::BadMagic.into()),
        }
    }

    fn parse_block(&mut self, slot: usize, crc: u32) -> io::Result<()> {
        let b = &mut self.bits;
        let trunc = |b: &Bits<R>| -> io::Result<()> {
            if b.overrun() {
                Err(Bz2Error::Truncated.into())
            } else {
                Ok(())
            }
        };
        if b.bit()? {
            return Err(Bz2Error::Randomised.into());
        }
        let orig = b.get(24)?;
        // The symbol map: 16 ranges of 16 bytes.
        let ranges = b.get(16)?;
        let mut seq = [0u8; 256];
        let mut n_used = 0usize;
        for r in 0..16 {
            if ranges & (0x8000 >> r) != 0 {
                let m = b.get(16)?;
                for k in 0..16 {
                    if m & (0x8000 >> k) != 0 {
                        seq[n_used] = (r * 16 + k) as u8;
                        n_used += 1;
                    }
                }
            }
        }
        trunc(b)?;
        if n_used == 0 {
            return Err(Bz2Error::Corrupt("no symbols in use").into());
        }
        let alpha = n_used + 2;
        let n_groups = b.get(3)? as usize;
        if !(2..=MAX_GROUPS).contains(&n_groups) {
            return Err(Bz2Error::Corrupt("bad number of Huffman tables").into());
        }
        let n_sel = b.get(15)? as usize;
        if n_sel == 0 {
            return Err(Bz2Error::Corrupt("no selectors").into());
        }
        // Selectors, MTF coded; like bzip2 1.0.8, those past the maximum are read and dropped.
        let mut mtf_g = [0u8, 1, 2, 3, 4, 5];
        self.selectors.clear();
        for _ in 0..n_sel {
            let mut j = 0usize;
            while b.bit()? {
                j += 1;
                if j >= n_groups {
                    return Err(Bz2Error::Corrupt("bad selector").into());
                }
            }
            let v = mtf_g[j];
            mtf_g.copy_within(0..j, 1);
            mtf_g[0] = v;
            if self.selectors.len() < MAX_SELECTORS {
                self.selectors.push(v);
            }
            trunc(b)?;
        }
        // Code lengths, delta coded.
        let mut lens = [0u8; MAX_ALPHA];
        for t in 0..n_groups {
            let mut cur = b.get(5)?;
            for len in lens.iter_mut().take(alpha) {
                loop {
                    if !(1..=MAX_CODE_LEN).contains(&cur) {
                        return Err(Bz2Error::Corrupt("bad code length").into());
                    }
                    if !b.bit()? {
                        break;
                    }
                    if b.bit()? {
                        cur -= 1;
                    } else {
                        cur += 1;
                    }
                }
                *len = cur as u8;
            }
            trunc(b)?;
            self.tables[t].build(&lens[..alpha])?;
        }

        // Huffman + RUNA/RUNB + MTF, writing the bytes into `tt`.
        let limit = self.limit;
        let p = &mut self.slots[slot];
        // Every entry below the block's length is written before it is read.
        let tt = p.tt.get_mut(limit);
        self.runs.clear();
        let mut count = 0usize;
        let mut freq = [0u32; 256];
        // The MTF list as 16 128-bit words, entry k in byte k % 16 of word k / 16: a move to
        // the front shifts whole words (no loop whose length the branch predictor must guess).
        let mut mtf = [0u128; 16];
        for (k, chunk) in seq[..256].chunks_exact(16).enumerate() {
            let mut b = [0u8; 16];
            b.copy_from_slice(chunk);
            mtf[k] = u128::from_le_bytes(b);
        }
        let eob = (n_used + 1) as u32;
        let mut run = 0usize;
        let mut run_bit = 0u32;
        let mut group = 0usize;
        'groups: loop {
            let Some(&sel) = self.selectors.get(group) else {
                return Err(Bz2Error::Corrupt("more groups than selectors").into());
            };
            group += 1;
            let table = &self.tables[sel as usize];
            for _ in 0..50 {
                b.need(MAX_CODE_LEN)?;
                let (sym, len) = table.decode(b.peek32())?;
                b.skip(len);
                if sym <= 1 {
                    // RUNA/RUNB: a bijective base-2 run length.
                    if run_bit > 20 {
                        return Err(Bz2Error::Corrupt("run too long").into());
                    }
                    run += ((sym + 1) as usize) << run_bit;
                    run_bit += 1;
                    continue;
                }
                if run > 0 {
                    let v = mtf[0] as u8;
                    if count + run > limit {
                        return Err(Bz2Error::Corrupt("block larger than its level").into());
                    }
                    tt[count..count + run].fill(u32::from(v));
                    if run >= 2 {
                        self.runs.push((count as u32, run as u32));
                    }
                    freq[v as usize] += run as u32;
                    count += run;
                    run = 0;
                    run_bit = 0;
                }
                if sym == eob {
                    break 'groups;
                }
                if sym > eob {
                    return Err(Bz2Error::Corrupt("symbol out of range").into());
                }
                let i = (sym - 1) as usize;
                let (q, r) = (i >> 4, i & 15);
                let v = (mtf[q] >> (8 * r)) as u8;
                let mut carry = u128::from(v);
                for w in &mut mtf[..q] {
                    let out = *w >> 120;
                    *w = (*w << 8) | carry;
                    carry = out;
                }
                // In word `q`, bytes 0..=r move up by one; the rest stays.
                let moved = u128::MAX >> (8 * (15 - r));
                let w = mtf[q];
                mtf[q] = (((w << 8) | carry) & moved) | (w & !moved);
                if count >= limit {
                    return Err(Bz2Error::Corrupt("block larger than its level").into());
                }
                tt[count] = u32::from(v);
                freq[v as usize] += 1;
                count += 1;
            }
            trunc(b)?;
        }
        trunc(b)?;
        if orig as usize >= count {
            return Err(Bz2Error::Corrupt("BWT origin out of range").into());
        }
        // Link the BWT vector: the i-th occurrence of byte c in the last column points back to
        // row i of the rows starting with c.
        let mut next = [0u32; 256];
        let mut sum = 0u32;
        for (n, f) in next.iter_mut().zip(freq) {
            *n = sum;
            sum += f;
        }
        // A run of equal bytes links to consecutive rows: its loop keeps the row in a register
        // instead of reloading the counter the previous step just stored.
        let link = |tt: &mut [u32], next: &mut [u32; 256], from: usize, to: usize| {
            for i in from..to {
                let c = (tt[i] & 0xff) as usize;
                let j = next[c] as usize;
                tt[j] |= (i as u32) << 8;
                next[c] += 1;
            }
        };
        let mut i = 0usize;
        for &(s, len) in &self.runs {
            let (s, len) = (s as usize, len as usize);
            link(tt, &mut next, i, s);
            let c = (tt[s] & 0xff) as usize;
            let j = next[c] as usize;
            for (k, e) in tt[j..j + len].iter_mut().enumerate() {
                *e |= ((s + k) as u32) << 8;
            }
            next[c] += len as u32;
            i = s + len;
        }
        link(tt, &mut next, i, count);
        p.len = count;
        p.orig = orig;
        p.crc = crc;
        Ok(())
    }

    /// Follows the BWT chains of slots `0..n` together into `scratch`.
    fn inverse_bwt(&mut self, n: usize) {
        let mut lanes: Vec<Lane<'_>> = Vec::with_capacity(n);
        for (p, out) in self.slots.iter().zip(self.scratch.iter_mut()).take(n) {
            out.clear();
            let tt = p.tt.get(p.len);
            out.resize(tt.len(), 0);
            lanes.push(Lane {
                tt,
                pos: tt[p.orig as usize] >> 8,
                out,
                off: 0,
            });
        }
        loop {
            lanes.retain(|l| l.off < l.out.len());
            let Some(m) = lanes.iter().map(|l| l.out.len() - l.off).min() else {
                break;
            };
            match lanes.len() {
                1 => chase_slice::<1>(&mut lanes, m),
                2 => chase_slice::<2>(&mut lanes, m),
                3 => chase_slice::<3>(&mut lanes, m),
                4 => chase_slice::<4>(&mut lanes, m),
                5 => chase_slice::<5>(&mut lanes, m),
                6 => chase_slice::<6>(&mut lanes, m),
                7 => chase_slice::<7>(&mut lanes, m),
                _ => chase_slice::<8>(&mut lanes, m),
            }
        }
    }
}

/// One block's inverse BWT in progress.
struct Lane<'a> {
    tt: &'a [u32],
    pos: u32,
    out: &'a mut [u8],
    off: usize,
}

/// [`chase`] over a slice of exactly `N` lanes (the caller matches on the length).
fn chase_slice<const N: usize>(lanes: &mut [Lane<'_>], m: usize) {
    let lanes: &mut [Lane<'_>; N] = lanes.try_into().unwrap_or_else(|_| unreachable!());
    chase::<N>(lanes, m)
}

/// Follows `N` independent BWT chains for `m` steps. The loads of one step do not depend on each
/// other, so their cache misses overlap.
// `i` indexes the N outputs in lock-step; N zipped iterators would not be clearer.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn chase<const N: usize>(lanes: &mut [Lane<'_>; N], m: usize) {
    let tt: [&[u32]; N] = std::array::from_fn(|k| lanes[k].tt);
    let mut p: [u32; N] = std::array::from_fn(|k| lanes[k].pos);
    {
        let out = lanes.each_mut().map(|l| {
            let off = l.off;
            &mut l.out[off..off + m]
        });
        for i in 0..m {
            for k in 0..N {
                let e = tt[k][p[k] as usize];
                out[k][i] = e as u8;
                p[k] = e >> 8;
            }
        }
    }
    for (l, q) in lanes.iter_mut().zip(p) {
        l.pos = q;
        l.off += m;
    }
}

/// Undoes bzip2's first run-length stage: 4 equal bytes are followed by a count (0-255) of
/// further copies.
fn un_rle(src: &[u8], dst: &mut Vec<u8>) {
    dst.reserve(src.len() + src.len() / 4);
    let mut i = 0;
    let n = src.len();
    while i < n {
        // Copy up to the next position where 4 equal bytes end.
        let start = i;
        let mut run = 0u32;
        let mut prev = None;
        while i < n {
            let c = src[i];
            run = if Some(c) == prev { run + 1 } else { 1 };
            prev = Some(c);
            i += 1;
            if run == 4 {
                break;
            }
        }
        dst.extend_from_slice(&src[start..i]);
        if run == 4 && i < n {
            let k = src[i] as usize;
            i += 1;
            let c = src[i - 2];
            dst.resize(dst.len() + k, c);
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    /// All streams' bytes, one after the other.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let k = self.read_stream(buf)?;
            if k > 0 || buf.is_empty() || self.finished() {
                return Ok(k);
            }
        }
    }
}

/// Reads one stream of a [`Decoder`]: EOF at the stream's end.
pub struct Stream<'a, R>(pub &'a mut Decoder<R>);

impl<R: Read> Read for Stream<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_stream(buf)
    }
}

#[cfg(test)]
mod tests;

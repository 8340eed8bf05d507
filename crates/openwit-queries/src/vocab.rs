//! A task's vocabulary: token -> dense id and count, the tokens' bytes in one arena.
//!
//! Counting interns every token of the dump, so the lookup is the counter's inner loop. The
//! table is open-addressed (linear probing) with 32-byte slots (two to a cache line, never
//! across one) that hold a token's first 15 bytes, its length and its count inline, so counting
//! a token of up to 15 bytes (nearly all of them) touches one slot and nothing else: no key
//! behind a pointer, no `memcmp` call, no count array indexed by id. Longer tokens compare
//! their remaining bytes with the arena. The words themselves live in one byte arena
//! (no allocation per word, and nothing to free one by one when the task ends).

use openwit_mem::{HugeVec, prefetch};

/// The inline part of a token: bytes 0-7, bytes 8-14 and the length (capped at 255) in the top
/// byte of the second word. Two tokens with equal heads are equal when both are shorter than 16
/// bytes; otherwise their bytes from 15 on decide.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Head(pub(crate) u64, pub(crate) u64);

/// Bytes kept inline.
const INLINE: usize = 15;

#[inline]
fn low_bytes(w: u64, n: usize) -> u64 {
    if n >= 8 {
        w
    } else {
        w & ((1u64 << (8 * n)) - 1)
    }
}

impl Head {
    /// The head of `t`, which is `b[s..e]`: reads 16 bytes at once when `b` has them past `s`.
    #[inline]
    pub(crate) fn at(b: &[u8], s: usize, e: usize) -> Head {
        let n = e - s;
        let len = (n.min(255) as u64) << 56;
        if let Some(w) = b.get(s..s + 16) {
            let k0 = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            let k1 = u64::from_le_bytes([w[8], w[9], w[10], w[11], w[12], w[13], w[14], 0]);
            Head(
                low_bytes(k0, n),
                low_bytes(k1, n.saturating_sub(8).min(7)) | len,
            )
        } else {
            Head::of(&b[s..e])
        }
    }

    /// The head of a token (the slow path: copies its first bytes).
    #[inline]
    pub(crate) fn of(t: &[u8]) -> Head {
        let mut p = [0u8; 16];
        let k = t.len().min(INLINE);
        p[..k].copy_from_slice(&t[..k]);
        p[15] = t.len().min(255) as u8;
        let (a, b) = p.split_at(8);
        Head(
            u64::from_le_bytes(a.try_into().unwrap_or([0; 8])),
            u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        )
    }

    #[inline]
    fn is_long(self) -> bool {
        (self.1 >> 56) as usize > INLINE
    }
}

/// The table's hash of a token: its head, then (long tokens) the rest 8 bytes at a time.
#[inline]
pub(crate) fn hash(h: Head, t: &[u8]) -> u64 {
    const K0: u64 = 0x9e37_79b9_7f4a_7c15;
    const K1: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let mut x = h.0.wrapping_mul(K0) ^ h.1.rotate_left(29).wrapping_mul(K1);
    if h.is_long() {
        for c in t[INLINE..].chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            x = (x.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K0);
        }
    }
    x ^= x >> 32;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^ (x >> 32)
}

/// Slot: head words, `hash32 << 32 | (id + 1)` (0: an empty slot), the token's count.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    head: [u64; 2],
    tag: u64,
    count: u64,
}

/// Token -> id (ids dense from 0 in order of first sight) and count, with the tokens' bytes.
#[derive(Default)]
pub(crate) struct Vocab {
    /// On huge pages: the table is read at random, and at a few million words spans far
    /// more 4 KiB pages than the TLB holds.
    slots: HugeVec<Slot>,
    arena: Vec<u8>,
    /// Word `i` is `arena[ends[i - 1]..ends[i]]` (`ends[-1]` = 0).
    ends: Vec<usize>,
}

impl Vocab {
    /// Number of words.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of word `id` (UTF-8: every word came from a `&str`).
    #[inline]
    pub(crate) fn word(&self, id: usize) -> &[u8] {
        let s = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.arena[s..self.ends[id]]
    }

    /// Bytes held (capacities).
    pub(crate) fn memory(&self) -> usize {
        self.slots.memory()
            + self.arena.capacity()
            + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Asks the CPU to bring in the slot where a token of hash `x` starts its probe, ahead of
    /// [`Vocab::count_hashed`] (a hint: no effect on results).
    #[inline]
    pub(crate) fn prefetch(&self, x: u64) {
        if !self.slots.is_empty() {
            let i = (x >> 32) as usize & (self.slots.len() - 1);
            prefetch(&self.slots[i]);
        }
    }

    /// Counts one occurrence of token `t` (with head `h`, see [`Head::at`], and [`hash`] `x`),
    /// added if new; returns its id.
    #[inline]
    pub(crate) fn count_hashed(&mut self, h: Head, x: u64, t: &[u8]) -> u32 {
        if self.len() * 8 >= self.slots.len() * 5 {
            self.grow();
        }
        match self.find(h, x, t) {
            Ok(i) => {
                let s = &mut self.slots[i];
                s.count += 1;
                (s.tag & 0xffff_ffff) as u32 - 1
            }
            Err(i) => {
                let id = self.len() as u32;
                self.arena.extend_from_slice(t);
                self.ends.push(self.arena.len());
                self.slots[i] = Slot {
                    head: [h.0, h.1],
                    tag: (x >> 32) << 32 | u64::from(id + 1),
                    count: 1,
                };
                id
            }
        }
    }

    /// Every counted word's count, by id (words added by [`Vocab::push`] have none).
    pub(crate) fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.len()];
        for s in self.slots.iter().filter(|s| s.tag != 0) {
            c[(s.tag & 0xffff_ffff) as usize - 1] = s.count;
        }
        c
    }

    /// Appends a word without indexing it (a word list read back in order; [`Vocab::count_hashed`] and
    /// [`Vocab::get`] do not see it).
    pub(crate) fn push(&mut self, w: &[u8]) {
        self.arena.extend_from_slice(w);
        self.ends.push(self.arena.len());
    }

    /// The id of token `t`, if it is in the vocabulary.
    pub(crate) fn get(&self, t: &[u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let h = Head::of(t);
        let i = self.find(h, hash(h, t), t).ok()?;
        Some((self.slots[i].tag & 0xffff_ffff) as u32 - 1)
    }

    /// `Ok(slot)` of token `t` (head `h`, hash `x`), or `Err(slot)`: the empty slot where it
    /// goes.
    #[inline]
    fn find(&self, h: Head, x: u64, t: &[u8]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = (x >> 32) as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.tag == 0 {
                return Err(i);
            }
            if s.head == [h.0, h.1] {
                let id = (s.tag & 0xffff_ffff) as usize - 1;
                if !h.is_long() || self.word(id)[INLINE..] == t[INLINE..] {
                    return Ok(i);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (from 1024 slots), re-placing every word by its stored hash bits.
    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(1024);
        let mut table = HugeVec::<Slot>::new(n);
        let slots = &mut table[..];
        let mask = n - 1;
        for s in self.slots.iter().filter(|s| s.tag != 0) {
            let mut i = (s.tag >> 32) as usize & mask;
            while slots[i].tag != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = *s;
        }
        self.slots = table;
    }

    /// Frees the lookup table and the counts (the words stay readable).
    pub(crate) fn drop_table(&mut self) {
        self.slots = HugeVec::default();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Tokens of every length around the inline limit, with NUL and high bytes, looked up in
    /// texts where 16 bytes follow the token and where they do not: ids and counts equal a
    /// plain map's.
    #[test]
    fn ids_equal_a_hash_map() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[u8] = b"ab\0\xc3\xa9z";
        let mut words: Vec<Vec<u8>> = Vec::new();
        for len in 1..=40usize {
            for _ in 0..60 {
                let w: Vec<u8> = (0..len)
                    .map(|_| alphabet[next() as usize % alphabet.len()])
                    .collect();
                words.push(w);
            }
        }
        // Prefix pairs: equal first 15 bytes, different rest or length.
        words.push(b"abcdefghijklmno".to_vec());
        words.push(b"abcdefghijklmnop".to_vec());
        words.push(b"abcdefghijklmnoq".to_vec());
        words.push(b"abcdefghijklmno\0".to_vec());
        words.push(b"abcdefg".to_vec());
        words.push(b"abcdefg\0".to_vec());
        let mut v = Vocab::default();
        let mut want: HashMap<Vec<u8>, (u32, u64)> = HashMap::new();
        for round in 0..3 {
            for (i, w) in words.iter().enumerate() {
                // The token inside a text: padded after it (fast head) or at the very end.
                let mut text = b"x ".to_vec();
                text.extend_from_slice(w);
                if (i + round) % 2 == 0 {
                    text.extend_from_slice(b" and more than sixteen bytes");
                }
                let (s, e) = (2, 2 + w.len());
                let h = Head::at(&text, s, e);
                assert_eq!(h, Head::of(w), "{w:?}");
                let n = want.len() as u32;
                let id = want.entry(w.clone()).or_insert((n, 0));
                id.1 += 1;
                assert_eq!(
                    v.count_hashed(h, hash(h, &text[s..e]), &text[s..e]),
                    id.0,
                    "{w:?}"
                );
            }
        }
        assert_eq!(v.len(), want.len());
        let counts = v.counts();
        for (w, &(id, n)) in &want {
            assert_eq!(v.word(id as usize), &w[..]);
            assert_eq!(v.get(w), Some(id));
            assert_eq!(counts[id as usize], n, "{w:?}");
        }
        assert_eq!(v.get(b"not a word"), None);
        assert_eq!(v.get(b"abcdefghijklmnor"), None);
        assert!(v.memory() > 0);
    }
}

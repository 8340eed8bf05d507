//! Differential tests against the `bzip2` crate (libbz2): the same bytes out for inputs of many
//! shapes, and a clean error (no panic) for truncated and corrupted inputs.

use std::io::{Read, Write};

use super::*;

fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn oracle(z: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(z).read_to_end(&mut out)?;
    Ok(out)
}

fn ours(z: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Decoder::new(z).read_to_end(&mut out)?;
    Ok(out)
}

/// A reader that hands out at most 3 bytes per call (buffer refills at every position).
struct Slow<'a>(&'a [u8]);
impl Read for Slow<'_> {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(3).min(b.len());
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn text(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        "the",
        "of",
        "and",
        "in",
        "a",
        "wikipedia",
        "[[link]]",
        "{{cite",
        "web}}",
        "1999,",
        "is",
        "was",
        "river",
        "city",
        "population",
        "\n",
        "==History==",
        "'''bold'''",
        "é",
        "naïve",
    ];
    let mut r = Rng(seed | 1);
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        let w = words[(r.next() % words.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

fn shapes() -> Vec<(&'static str, Vec<u8>)> {
    let mut r = Rng(42);
    let random: Vec<u8> = (0..300_000).map(|_| r.next() as u8).collect();
    let mut runs = Vec::new();
    for (i, len) in [1usize, 2, 3, 4, 5, 6, 250, 255, 256, 259, 260, 1000, 70_000]
        .iter()
        .enumerate()
    {
        runs.extend(std::iter::repeat_n(b'a' + i as u8, *len));
        runs.push(b'z');
    }
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
    let mut mixed = text(200_000, 9);
    mixed.extend_from_slice(&random[..50_000]);
    mixed.extend(std::iter::repeat_n(0u8, 100_000));
    vec![
        ("empty", vec![]),
        ("one byte", vec![b'x']),
        ("four equal", vec![7; 4]),
        ("five equal", vec![7; 5]),
        ("run of 300", vec![b'q'; 300]),
        ("run of 1M", vec![0; 1_000_000]),
        ("runs", runs),
        ("random", random),
        ("all bytes", all),
        ("text", text(100_000, 1)),
        ("mixed", mixed),
        (
            "two symbols",
            (0..100_000).map(|i| b'a' + (i % 7 == 0) as u8).collect(),
        ),
    ]
}

#[test]
fn matches_libbz2_on_many_shapes_and_levels() {
    for (name, data) in shapes() {
        for level in [1, 5, 9] {
            let z = compress(&data, level);
            let got = ours(&z).unwrap_or_else(|e| panic!("{name} level {level}: {e}"));
            assert_eq!(got.len(), data.len(), "{name} level {level}");
            assert!(got == data, "{name} level {level}");
            assert_eq!(oracle(&z).unwrap(), got);
        }
    }
}

#[test]
fn every_level_and_many_blocks() {
    // 5 MB of text: 6 blocks at level 9, 50 at level 1.
    let data = text(5_000_000, 3);
    for level in 1..=9 {
        let z = compress(&data, level);
        assert!(ours(&z).unwrap() == data, "level {level}");
    }
}

#[test]
fn concatenated_streams_and_stream_boundaries() {
    let parts: Vec<Vec<u8>> = vec![
        text(1000, 1),
        vec![],
        text(2_000_000, 2),
        vec![b'a'; 5000],
        text(10, 4),
    ];
    let mut z = Vec::new();
    let mut ends = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        z.extend(compress(p, 1 + (i as u32 * 2) % 9));
        ends.push(z.len() as u64);
    }
    let want: Vec<u8> = parts.concat();
    assert!(ours(&z).unwrap() == want);
    assert!(oracle(&z).unwrap() == want);
    let mut slow = Vec::new();
    Decoder::new(Slow(&z)).read_to_end(&mut slow).unwrap();
    assert!(slow == want);
    for lanes in 1..=MAX_LANES {
        let mut got = Vec::new();
        Decoder::with_lanes(&z[..], lanes)
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == want, "{lanes} lanes");
    }
    // Stream by stream.
    let mut d = Decoder::new(&z[..]);
    for (i, p) in parts.iter().enumerate() {
        let mut got = Vec::new();
        Stream(&mut d).read_to_end(&mut got).unwrap();
        assert!(&got == p, "stream {i}");
        assert_eq!(d.last_stream_end(), Some(ends[i]), "stream {i}");
    }
    let mut rest = Vec::new();
    Stream(&mut d).read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && d.finished());
}

/// Lanes take a new block as soon as theirs is done, so short blocks finish before the long
/// ones parsed earlier: the output and each stream's end still come in input order, for every
/// number of lanes.
#[test]
fn blocks_of_mixed_lengths_come_out_in_order() {
    let mut r = Rng(13);
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for i in 0..40u64 {
        let n = match r.next() % 4 {
            0 => 250_000 + (r.next() % 200_000) as usize,
            1 => (r.next() % 2000) as usize,
            2 => 60_000,
            _ => 0,
        };
        parts.push(text(n, 100 + i));
    }
    let mut z = Vec::new();
    let mut ends = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        // Level 1 and 2: blocks of 100k and 200k, so the long parts have several.
        z.extend(compress(p, 1 + i as u32 % 2));
        ends.push(z.len() as u64);
    }
    for lanes in 1..=MAX_LANES {
        let mut d = Decoder::with_lanes(&z[..], lanes);
        for (i, p) in parts.iter().enumerate() {
            let mut got = Vec::new();
            Stream(&mut d).read_to_end(&mut got).unwrap();
            assert!(&got == p, "{lanes} lanes, stream {i}");
            assert_eq!(
                d.last_stream_end(),
                Some(ends[i]),
                "{lanes} lanes, stream {i}"
            );
        }
        let mut rest = Vec::new();
        Stream(&mut d).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty() && d.finished(), "{lanes} lanes");
    }
}

#[test]
fn empty_input_is_empty_output() {
    assert_eq!(ours(&[]).unwrap(), Vec::<u8>::new());
}

#[test]
fn truncated_inputs_are_errors() {
    let data = text(300_000, 5);
    let z = compress(&data, 1);
    // Every cut in the first and last 300 bytes, and a stride through the middle.
    let cuts: Vec<usize> = (1..300)
        .chain((300..z.len() - 300).step_by(997))
        .chain(z.len() - 300..z.len())
        .collect();
    for cut in cuts {
        let e = ours(&z[..cut]).expect_err(&format!("cut at {cut}"));
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ),
            "cut at {cut}: {e}"
        );
        assert!(oracle(&z[..cut]).is_err(), "the oracle accepts cut {cut}");
    }
}

#[test]
fn corrupted_inputs_error_or_decode_what_libbz2_decodes() {
    let data = text(200_000, 6);
    let z = compress(&data, 2);
    let mut r = Rng(7);
    for _ in 0..400 {
        let mut c = z.clone();
        let i = 4 + (r.next() % (c.len() as u64 - 4)) as usize;
        c[i] ^= 1 << (r.next() % 8);
        // A flipped bit almost always fails a CRC or the format; if both decoders accept it the
        // bytes must agree (the flip hit padding).
        match (ours(&c), oracle(&c)) {
            (Ok(a), Ok(b)) => assert!(a == b, "flip at {i}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!(
                "flip at {i}: ours {:?}, libbz2 {:?}",
                a.map(|v| v.len()),
                b.map(|v| v.len())
            ),
        }
    }
    // Garbage that is not bzip2 at all, and a header with a bad level.
    assert!(ours(b"hello world").is_err());
    assert!(ours(b"BZh0\x31\x41\x59\x26\x53\x59").is_err());
    let mut rnd = Rng(11);
    for _ in 0..200 {
        let mut g = b"BZh9".to_vec();
        g.extend((0..2000).map(|_| rnd.next() as u8));
        assert!(ours(&g).is_err());
    }
}

#[test]
fn errors_come_after_the_good_blocks_and_stay() {
    let a = text(1_500_000, 8);
    let mut z = compress(&a, 1);
    let good = z.len();
    let mut bad = compress(&text(1000, 9), 1);
    bad[20] ^= 0x10;
    z.extend(bad);
    let mut d = Decoder::new(&z[..]);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let err = loop {
        match d.read(&mut buf) {
            Ok(0) => panic!("no error"),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => break e,
        }
    };
    assert!(got == a, "the first stream was decoded before the error");
    assert!(d.last_stream_end() == Some(good as u64));
    assert_eq!(d.read(&mut buf).unwrap_err().to_string(), err.to_string());
}

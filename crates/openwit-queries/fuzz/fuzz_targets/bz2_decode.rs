//! The project's bzip2 decoder against the `bzip2` crate (libbzip2). The first byte picks the
//! mode: odd -> the rest is compressed by libbzip2 (level from the byte) and must decode back
//! exactly; even -> the rest is decoded as is by both, and when libbzip2 decodes it whole, ours
//! must give the same bytes (ours may stop earlier only with an error, never with other bytes).
#![no_main]
use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;
use openwit_queries::bz2::Decoder;

fn ours(input: &[u8], lanes: usize) -> (Vec<u8>, bool) {
    let mut d = Decoder::with_lanes(input, lanes);
    let mut out = Vec::new();
    let ok = d.read_to_end(&mut out).is_ok();
    (out, ok)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let lanes = 1 + (mode as usize >> 4) % 8;
    if mode & 1 == 1 {
        let level = bzip2::Compression::new(1 + u32::from(mode >> 1) % 9);
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), level);
        enc.write_all(rest).unwrap();
        let compressed = enc.finish().unwrap();
        let (out, ok) = ours(&compressed, lanes);
        assert!(ok, "our decoder failed on libbzip2's output");
        assert_eq!(out, rest, "round trip differs");
    } else {
        let mut reference = Vec::new();
        let theirs_ok = bzip2::read::MultiBzDecoder::new(rest)
            .read_to_end(&mut reference)
            .is_ok();
        let (out, ok) = ours(rest, lanes);
        if theirs_ok && ok {
            assert_eq!(out, reference, "both decoded, to different bytes");
        }
        if ok && !theirs_ok {
            // Ours accepted what libbzip2 rejects: it may only be a prefix of what libbzip2
            // decoded before its error (e.g. trailing garbage after the last stream).
            assert!(reference.starts_with(&out) || out.starts_with(&reference));
        }
    }
});

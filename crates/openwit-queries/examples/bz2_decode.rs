//! Decodes a bzip2 file and prints the decompressed size, to time the decoder alone against
//! `bzip2 -dc`: `bz2_decode FILE [ours|crate]` (`crate`: the `bzip2` crate, libbz2-rs).

use std::io::Read;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let Some(path) = a.get(1) else {
        eprintln!("usage: bz2_decode FILE [ours|crate]");
        std::process::exit(2);
    };
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut r: Box<dyn Read> = match a.get(2).map(String::as_str) {
        Some("crate") => Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(f))),
        _ => {
            // BZ2_LANES: blocks whose inverse BWT runs interleaved (default 4).
            let lanes = std::env::var("BZ2_LANES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(openwit_queries::bz2::LANES);
            Box::new(openwit_queries::bz2::Decoder::with_lanes(f, lanes))
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                eprintln!("error after {n} bytes: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("{n}");
}

//! Times the parts of counting one dump (decode, split+parse, clean, count) on one core:
//! `profile_parts DUMP.xml.bz2 [MAX_MB_COMPRESSED]`.

use std::io::Read;
use std::time::Instant;

use openwit_core::Drops;
use openwit_queries::counts::Counter;
use openwit_queries::dump::{parse_page, split_pages};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let max: u64 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(20) << 20;
    let open = || {
        let f = std::fs::File::open(&a[1]).unwrap();
        openwit_queries::bz2::Decoder::new(f.take(max))
    };
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut r = open();
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k as u64,
        }
    }
    println!(
        "decode: {:.2}s ({} MB xml)",
        t.elapsed().as_secs_f64(),
        n >> 20
    );
    let mut drops = Drops::default();
    let t = Instant::now();
    let mut texts = Vec::new();
    let _ = split_pages(open(), 1 << 26, &mut drops, |b| {
        if let Ok(p) = parse_page(b) {
            texts.push(p.text);
        }
        Ok(())
    });
    println!(
        "decode+split+parse: {:.2}s ({} pages)",
        t.elapsed().as_secs_f64(),
        texts.len()
    );
    let t = Instant::now();
    let clean: Vec<String> = texts
        .iter()
        .map(|t| openwit_queries::wikitext::clean(t))
        .collect();
    println!("clean: {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut toks = 0;
    for c in &clean {
        openwit_queries::counts::for_each_token(c, |t, _| toks += usize::from(!t.is_empty()));
    }
    println!(
        "space+tokenize: {:.2}s ({toks} tokens)",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let dir = tempfile_dir();
    let mut c = Counter::new(8 << 30, &dir);
    for s in &clean {
        c.count_text(s).unwrap();
    }
    println!("count (incl. tokenize): {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    c.finish(&dir.join("u.cnt"), &dir.join("b.cnt")).unwrap();
    println!("sort+write counts: {:.2}s", t.elapsed().as_secs_f64());
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("profile-parts-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

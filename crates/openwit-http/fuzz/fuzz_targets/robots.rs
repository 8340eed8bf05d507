//! robots.txt parsing and matching on arbitrary bytes: the first line is the request path, the
//! rest the robots.txt body (read for two product tokens).
#![no_main]
use libfuzzer_sys::fuzz_target;
use openwit_http::robots::Robots;

fuzz_target!(|data: &[u8]| {
    let (path, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/"[..], data),
    };
    let path = String::from_utf8_lossy(path);
    for token in ["openwit", "OpenWIT/1.0 (+https://example.org)"] {
        let r = Robots::parse_bytes(body, token);
        let allowed = r.allowed(&path);
        // robots.txt itself is never refused by a parsed file
        assert!(r.allowed("/robots.txt"));
        // the same path with its non-ASCII bytes percent-encoded gets the same answer
        let mut encoded = String::new();
        for &b in path.as_bytes() {
            if b.is_ascii() {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        assert_eq!(allowed, r.allowed(&encoded), "{path:?} vs {encoded:?}");
        if let Some(d) = r.crawl_delay {
            assert!((0.0..=60.0).contains(&d));
        }
    }
});

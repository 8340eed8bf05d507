//! The WAT JSON record parser on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(p)) = openwit_sources::wat::parse_wat(data) {
        for img in &p.extraction.images {
            let u = url::Url::parse(&img.url).expect("resolved URLs are absolute");
            assert!(matches!(u.scheme(), "http" | "https"));
        }
    }
});

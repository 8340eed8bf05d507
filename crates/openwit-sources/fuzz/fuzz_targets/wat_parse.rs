//! The WAT JSON record parser on arbitrary bytes, checked against the previous parser (JSON
//! into `serde_json::Value`): the same page, or an error from both.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let new = openwit_sources::wat::parse_wat(data);
    let old = openwit_sources::wat_reference::parse_wat_value(data);
    match (&new, &old) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        _ => panic!("parse_wat {new:?} but the Value parser {old:?}"),
    }
    if let Ok(Some(p)) = new {
        for img in &p.extraction.images {
            let u = url::Url::parse(&img.url).expect("resolved URLs are absolute");
            assert!(matches!(u.scheme(), "http" | "https"));
        }
    }
});

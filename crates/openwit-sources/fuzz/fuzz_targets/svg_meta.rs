//! The clip-art demo's SVG metadata reader (`clipart::parse_svg_meta`) on arbitrary bytes: no
//! panic, and every text it returns is non-empty with its whitespace collapsed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = openwit_sources::clipart::parse_svg_meta(data);
    let texts = m
        .title
        .iter()
        .chain(m.description.iter())
        .chain(m.creator.iter())
        .chain(m.keywords.iter());
    for t in texts {
        assert!(!t.is_empty());
        assert_eq!(t, &t.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    assert_eq!(m, openwit_sources::clipart::parse_svg_meta(data));
});

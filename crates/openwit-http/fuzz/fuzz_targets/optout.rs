//! The `X-Robots-Tag` / robots `<meta>` reader on arbitrary text: each line one header value;
//! also every `unavailable_after` date form through `parse_date`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use openwit_http::optout::{Directives, OPT_OUT_DIRECTIVES, parse_date};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let d = Directives::from_headers(text.lines(), "openwit");
    let now = 1_700_000_000.0;
    let out = d.opt_out(&OPT_OUT_DIRECTIVES, now);
    if let Some(o) = &out {
        assert!(OPT_OUT_DIRECTIVES.contains(&o.as_str()) || o == "unavailable_after");
    }
    // a later clock can only add the date's opt-out
    if out.is_some() {
        assert!(d.opt_out(&OPT_OUT_DIRECTIVES, f64::MAX).is_some());
    }
    let _ = d.nofollow();
    let mut m = Directives::default();
    m.add_meta("robots", &text, "openwit");
    assert_eq!(m, Directives::from_header(&text, "openwit"));
    let _ = parse_date(&text);
});

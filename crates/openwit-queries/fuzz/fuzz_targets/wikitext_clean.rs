//! The wikitext cleaner on arbitrary text (bytes decoded lossily, as a page's text would be after
//! the dump reader's UTF-8 check): no panic, and the output is never longer than the input plus
//! one space per `<br>`-like tag and one newline per line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let out = openwit_queries::wikitext::clean(&text);
    assert!(
        out.len() <= 2 * text.len() + 1,
        "{} -> {}",
        text.len(),
        out.len()
    );
});

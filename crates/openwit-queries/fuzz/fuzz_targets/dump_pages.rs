//! The dump XML reader on arbitrary bytes: `<page>` splitting (with a small page cap so the
//! over-long path runs), each page parsed and its text cleaned, as the counting tasks do.
#![no_main]
use libfuzzer_sys::fuzz_target;
use openwit_queries::dump::{parse_page, split_pages};
use openwit_queries::wikitext::clean;

fuzz_target!(|data: &[u8]| {
    let mut drops = Default::default();
    let mut parsed = 0u64;
    let found = split_pages(data, 4096, &mut drops, |page| {
        if let Ok(p) = parse_page(page) {
            let _ = clean(&p.text);
            parsed += 1;
        }
        Ok(())
    })
    .expect("reading from memory does not fail");
    assert!(parsed <= found);
});

//! The WordNet readers on arbitrary bytes: one WNDB data line (`parse_data_line`), and the same
//! bytes as a whole file through the WN-LMF XML reader. Errors are fine, panics are not.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use openwit_queries::wordnet::{parse_data_line, read_lmf};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = parse_data_line(line);
        }
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    let _ = read_lmf(f.path());
});

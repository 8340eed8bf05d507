//! An image folder's `captions.tsv` (`openwit-clip/src/captions_tsv.rs`) on arbitrary bytes: the
//! lines as `EvalSet::image_folder` reads them (lossy UTF-8, trimmed), parsed into (file,
//! caption) pairs or a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/captions_tsv.rs"]
mod captions_tsv;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    match captions_tsv::parse_captions_tsv(&lines) {
        Ok(pairs) => {
            for (file, _caption) in &pairs {
                assert!(!file.is_empty());
            }
            assert!(pairs.len() <= lines.len());
        }
        Err((line, msg)) => {
            assert!(line >= 1 && line <= lines.len());
            assert!(!msg.is_empty());
        }
    }
});

//! The pageview reader on arbitrary bytes as a whole file (plain, or gzip/bzip2 by its first
//! bytes): counted drops and errors are fine, panics are not; no title with `:` is summed.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use openwit_queries::pageviews::read_file;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    let mut drops = Default::default();
    if let Ok((sums, _)) = read_file(f.path(), 0, &mut drops) {
        assert!(sums.keys().all(|t| !t.contains(':') && !t.is_empty()));
    }
});

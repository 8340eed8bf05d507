//! The WARC/WAT stream reader (gzip and plain) and the record processing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0usize;
    let _ = openwit_sources::warc_stage::process_file(
        Box::new(std::io::Cursor::new(data.to_vec())),
        "fuzz",
        &mut |_c| n += 1,
        &|_| false,
    );
    for ev in openwit_sources::warc::WarcReader::new(data, false) {
        let _ = ev;
    }
});

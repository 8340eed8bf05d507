//! The URL-list reader on arbitrary bytes in every format: no panic, no loop; every entry's
//! position resumes at that same entry; entries = rows + drops.
#![no_main]
use libfuzzer_sys::fuzz_target;
use openwit_urllist::{Columns, Extra, Format, Keys, Position, Reader};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let format = [
        Format::Csv,
        Format::Tsv,
        Format::Jsonl,
        Format::Json,
        Format::Parquet,
    ][sel as usize % 5];
    let cols = Columns {
        url: "url".into(),
        caption: Some("caption".into()),
        caption_required: sel & 8 != 0,
        extra: if sel & 16 != 0 {
            Extra::All
        } else {
            Extra::Named(vec!["n".into()])
        },
        keys: Keys {
            table: "[fuzz]",
            format: "format",
            url: "url_col",
            caption: "caption_col",
        },
    };
    let Ok(r) = Reader::from_bytes(
        "fuzz",
        body.to_vec(),
        format,
        false,
        &cols,
        Position::default(),
    ) else {
        return;
    };
    let mut r = r;
    let mut entries = Vec::new();
    while let Some(e) = r.next_entry() {
        entries.push(e);
    }
    let drops: u64 = r.drops().values().sum();
    assert_eq!(r.rows() + drops, entries.len() as u64);
    for e in entries.iter().step_by(3) {
        let mut again =
            Reader::from_bytes("fuzz", body.to_vec(), format, false, &cols, e.at).expect("reopens");
        assert_eq!(again.next_entry().as_ref(), Some(e));
    }
});

//! The reader on real lists (tests/data, see its README) against Python's csv/json modules and
//! pyarrow (tests/reference.py), every drop reason per format on corrupted copies of them, empty
//! files, and resuming at every recorded position.

use std::path::{Path, PathBuf};
use std::process::Command;

use openwit_urllist::{Columns, Drop, Entry, Extra, Format, Keys, ListFile, Position, Reader};
use serde_json::Value;

const KEYS: Keys = Keys {
    table: "[test]",
    format: "format",
    url: "url_col",
    caption: "caption_col",
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn cols(url: &str, caption: &str) -> Columns {
    Columns {
        url: url.into(),
        caption: Some(caption.into()),
        caption_required: true,
        extra: Extra::All,
        keys: KEYS,
    }
}

fn list_file(path: &Path, format: Format) -> ListFile {
    ListFile {
        path: path.to_path_buf(),
        format,
        gzip: path.extension().is_some_and(|e| e == "gz"),
    }
}

fn read_all(path: &Path, format: Format, c: &Columns) -> (Vec<Entry>, Reader) {
    let mut r = Reader::open(&list_file(path, format), c).unwrap();
    let mut v = Vec::new();
    while let Some(e) = r.next_entry() {
        v.push(e);
    }
    (v, r)
}

/// What our reader gives, in reference.py's terms.
fn ours(entries: &[Entry]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| match &e.row {
            Ok(r) => serde_json::json!({"url": r.url, "caption": r.caption, "extra": r.extra}),
            Err(d) => serde_json::json!({"drop": d.reason.reason()}),
        })
        .collect()
}

fn python(path: &Path, fmt: &str, url: &str, caption: &str) -> Result<Vec<Value>, String> {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py"))
        .args([path.to_str().unwrap(), fmt, url, caption])
        .output()
        .expect("python3 runs (with pyarrow, .ci/requirements.txt)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

/// Every recorded position resumes at its own entry.
fn check_positions(path: &Path, format: Format, c: &Columns, entries: &[Entry]) {
    let f = list_file(path, format);
    let mut plan = Reader::open(&f, c).unwrap();
    let mut positions = Vec::new();
    while let Some(p) = plan.next_position() {
        positions.push(p);
    }
    assert_eq!(positions.len(), entries.len(), "{}", path.display());
    let step = (entries.len() / 7).max(1);
    for (i, p) in positions.iter().enumerate().step_by(step) {
        assert_eq!(*p, entries[i].at);
        let mut r = Reader::open_at(&f, c, *p).unwrap();
        let e = r.next_entry().unwrap();
        assert_eq!(e, entries[i], "resumed at {p:?}");
    }
}

#[test]
fn real_lists_read_as_python_reads_them() {
    let cases: [(&str, Format, &str, &str, usize); 5] = [
        ("airports.csv", Format::Csv, "iata", "name", 3376),
        ("unemployment.tsv", Format::Tsv, "id", "rate", 3218),
        ("simple-icons.json", Format::Json, "source", "title", 3470),
        ("country-flags.json", Format::Json, "image", "name", 261),
        (
            "pyarrow-v0.7.1.parquet",
            Format::Parquet,
            "cut",
            "color",
            10,
        ),
    ];
    for (name, format, url, caption, n) in cases {
        let path = data(name);
        let c = cols(url, caption);
        let (entries, r) = read_all(&path, format, &c);
        let want = python(&path, format.name(), url, caption).unwrap();
        assert_eq!(entries.len(), n, "{name}");
        assert_eq!(ours(&entries), want, "{name}");
        assert_eq!(r.rows() as usize, n, "{name}: every row is good");
        check_positions(&path, format, &c, &entries);
    }
}

/// A corrupted copy of a real file: our rows are Python's rows of the file without the broken
/// records, and each broken record is one drop of the expected reason.
fn corrupt_case(
    src: &str,
    format: Format,
    url: &str,
    caption: &str,
    edit: impl Fn(&mut Vec<Vec<u8>>) -> Vec<usize>,
    reasons: &[Drop],
    python_rejects: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(data(src)).unwrap();
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    let clean_lines = lines.clone();
    let broken = edit(&mut lines);
    let ext = src.rsplit('.').next().unwrap();
    let bad = dir.path().join(format!("bad.{ext}"));
    std::fs::write(&bad, lines.join(&b'\n')).unwrap();
    let clean: Vec<Vec<u8>> = clean_lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !broken.contains(i))
        .map(|(_, l)| l.clone())
        .collect();
    let good = dir.path().join(format!("good.{ext}"));
    std::fs::write(&good, clean.join(&b'\n')).unwrap();
    let c = cols(url, caption);
    let (entries, r) = read_all(&bad, format, &c);
    let fmt = format.name();
    assert_eq!(
        python(&bad, fmt, url, caption).is_err(),
        python_rejects,
        "{src}: python rejects the corrupted file"
    );
    let want = python(&good, fmt, url, caption).unwrap();
    let got: Vec<Value> = ours(&entries)
        .into_iter()
        .filter(|v| {
            v.get("drop")
                .is_none_or(|d| !reasons.iter().any(|r| r.reason() == d))
        })
        .collect();
    assert_eq!(got, want, "{src}: {reasons:?}");
    for reason in reasons {
        assert_eq!(
            r.drops().get(reason).copied().unwrap_or(0),
            reasons.iter().filter(|x| *x == reason).count() as u64,
            "{src}: {reason:?}"
        );
    }
    for e in &entries {
        if let Err(d) = &e.row {
            assert!(d.message.contains("bad."), "names the file: {}", d.message);
        }
    }
    check_positions(&bad, format, &c, &entries);
}

#[test]
fn csv_drops_on_a_real_file() {
    // the first line of airports.csv with a quoted field (`35A,"Union County, Troy Shelton",...`)
    let text = std::fs::read(data("airports.csv")).unwrap();
    let quoted = text
        .split(|&b| b == b'\n')
        .position(|l| l.contains(&b'"'))
        .unwrap();
    assert!(quoted > 1 && quoted + 100 < text.len());
    // a byte that is not UTF-8
    corrupt_case(
        "airports.csv",
        Format::Csv,
        "iata",
        "name",
        |l| {
            l[quoted + 40].insert(5, 0xff);
            vec![quoted + 40]
        },
        &[Drop::InvalidUtf8],
        true,
    );
    // an unterminated quote (in the last quoted line, so no later quote closes it): only its
    // own line is lost, the rest of the file is read
    let all: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let last = all.iter().rposition(|l| l.contains(&b'"')).unwrap();
    corrupt_case(
        "airports.csv",
        Format::Csv,
        "iata",
        "name",
        |l| {
            let s = l[last].iter().rposition(|&b| b == b'"').unwrap();
            l[last].remove(s);
            vec![last]
        },
        &[Drop::UnterminatedQuote],
        true,
    );
    // text after the closing quote
    corrupt_case(
        "airports.csv",
        Format::Csv,
        "iata",
        "name",
        |l| {
            let s = l[quoted].iter().rposition(|&b| b == b'"').unwrap();
            l[quoted].insert(s + 1, b'x');
            vec![quoted]
        },
        &[Drop::BadQuote],
        true,
    );
    // a missing field, an extra one, an empty URL, an empty caption
    corrupt_case(
        "airports.csv",
        Format::Csv,
        "iata",
        "name",
        |l| {
            let cut = l[50].iter().rposition(|&b| b == b',').unwrap();
            l[50].truncate(cut);
            l[60].extend_from_slice(b",extra");
            let c = l[70].iter().position(|&b| b == b',').unwrap();
            l[70].drain(..c);
            l[80] = b"XYZ,,c,s,USA,1,2".to_vec();
            vec![50, 60, 70, 80]
        },
        &[
            Drop::FieldCount,
            Drop::FieldCount,
            Drop::MissingUrl,
            Drop::MissingCaption,
        ],
        false,
    );
}

#[test]
fn tsv_and_jsonl_drops_on_real_files() {
    corrupt_case(
        "unemployment.tsv",
        Format::Tsv,
        "id",
        "rate",
        |l| {
            l[9].insert(1, 0xc3);
            l[19].push(b'\t');
            l[29] = b"\t.1".to_vec();
            vec![9, 19, 29]
        },
        &[Drop::InvalidUtf8, Drop::FieldCount, Drop::MissingUrl],
        true,
    );
    // simple-icons as JSON Lines (one element per line, as Python's json.dumps writes them)
    let dir = tempfile::tempdir().unwrap();
    let v: Vec<Value> =
        serde_json::from_slice(&std::fs::read(data("simple-icons.json")).unwrap()).unwrap();
    let mut text = String::new();
    for x in &v {
        text.push_str(&x.to_string());
        text.push('\n');
    }
    let p = dir.path().join("si.jsonl");
    std::fs::write(&p, &text).unwrap();
    let c = cols("source", "title");
    let (entries, _) = read_all(&p, Format::Jsonl, &c);
    assert_eq!(
        ours(&entries),
        python(&p, "jsonl", "source", "title").unwrap()
    );
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    lines[3].insert(12, 0xfe);
    lines[7].truncate(20);
    lines[11] = b"[1, 2]".to_vec();
    lines[13] = br#"{"title": "x", "source": ["https://a"]}"#.to_vec();
    lines[17] = br#"{"title": "no source"}"#.to_vec();
    lines[19] = br#"{"source": "https://a/b.svg", "title": null}"#.to_vec();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join(&b'\n')).unwrap();
    let (entries, r) = read_all(&bad, Format::Jsonl, &c);
    assert_eq!(entries.len(), v.len());
    let reason = |i: usize| entries[i].row.as_ref().err().map(|d| d.reason);
    assert_eq!(reason(3), Some(Drop::InvalidUtf8));
    assert_eq!(reason(7), Some(Drop::MalformedJson));
    assert_eq!(reason(11), Some(Drop::NotAnObject));
    assert_eq!(reason(13), Some(Drop::NotText));
    assert_eq!(reason(17), Some(Drop::MissingUrl));
    assert_eq!(reason(19), Some(Drop::MissingCaption));
    assert_eq!(r.rows() as usize, v.len() - 6);
    assert!(
        entries[7]
            .row
            .as_ref()
            .unwrap_err()
            .message
            .contains("bad.jsonl:8:")
    );
    check_positions(&bad, Format::Jsonl, &c, &entries);
}

#[test]
fn json_array_and_gzip_breaks_are_counted_once_and_keep_the_rows_before() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read(data("country-flags.json")).unwrap();
    let c = cols("image", "name");
    // cut in the middle: the rows before are read, the break is one drop
    let p = dir.path().join("cut.json");
    std::fs::write(&p, &text[..text.len() / 2]).unwrap();
    let (entries, r) = read_all(&p, Format::Json, &c);
    assert_eq!(r.drops().get(&Drop::TruncatedFile), Some(&1));
    assert!(
        entries.len() > 100 && entries.len() < 261,
        "{}",
        entries.len()
    );
    // a non-object element and one with invalid UTF-8 inside a string
    let s = String::from_utf8(text.clone()).unwrap().replacen(
        "{\"name\":\"Andorra\"",
        "7,{\"name\":\"Andorra\"",
        1,
    );
    let mut b = s.into_bytes();
    let at = b.windows(6).position(|w| w == b"Angola").unwrap();
    b[at + 2] = 0xff;
    let p = dir.path().join("odd.json");
    std::fs::write(&p, &b).unwrap();
    let (entries, r) = read_all(&p, Format::Json, &c);
    assert_eq!(entries.len(), 262);
    assert_eq!(r.drops().get(&Drop::NotAnObject), Some(&1));
    assert_eq!(r.drops().get(&Drop::InvalidUtf8), Some(&1));
    check_positions(&p, Format::Json, &c, &entries);
    // gzip cut short: CSV rows before the break, then one truncated_file
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &std::fs::read(data("airports.csv")).unwrap()).unwrap();
    let z = gz.finish().unwrap();
    let p = dir.path().join("cut.csv.gz");
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    let (entries, r) = read_all(&p, Format::Csv, &cols("iata", "name"));
    assert_eq!(r.drops().get(&Drop::TruncatedFile), Some(&1));
    assert!(entries.len() > 500, "{}", entries.len());
    assert_eq!(
        entries.last().unwrap().row.as_ref().unwrap_err().reason,
        Drop::TruncatedFile
    );
}

#[test]
fn empty_files_say_so_and_missing_columns_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let c = cols("url", "caption");
    for (name, body, format, why) in [
        ("a.csv", "", Format::Csv, "not even a header line"),
        (
            "b.csv",
            "url,caption\n\n",
            Format::Csv,
            "a header line and no rows",
        ),
        ("c.jsonl", "\n \n", Format::Jsonl, "no JSON lines"),
        ("d.json", " [ ] ", Format::Json, "empty JSON array"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let (entries, r) = read_all(&p, format, &c);
        assert!(entries.is_empty());
        assert!(r.empty().unwrap().contains(why), "{name}: {:?}", r.empty());
    }
    let e = Reader::open(&list_file(&data("airports.csv"), Format::Csv), &c)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("airports.csv:1: no column `url` (columns: iata, name,")
            && e.ends_with("fix: set [test] url_col"),
        "{e}"
    );
    let e = Reader::open(
        &list_file(&data("pyarrow-v0.7.1.parquet"), Format::Parquet),
        &cols("cut", "nope"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("no column `nope`") && e.contains("caption_col"),
        "{e}"
    );
}

#[test]
fn multibyte_text_is_never_cut_inside_a_character() {
    // country flags are 8-byte emoji: messages and fields around them must stay whole
    let c = Columns {
        extra: Extra::Named(vec!["emoji".into(), "absent".into()]),
        ..cols("image", "name")
    };
    let (entries, _) = read_all(&data("country-flags.json"), Format::Json, &c);
    let r = entries[1].row.as_ref().unwrap();
    assert_eq!(r.extra["emoji"], Value::String("🇦🇩".into()));
    assert_eq!(r.extra["absent"], Value::Null);
    let bytes = "url,caption\nhttp://a/é.jpg,\"🇦🇩\"x\nhttp://b/1.jpg,ok\n"
        .as_bytes()
        .to_vec();
    let mut r = Reader::from_bytes(
        "m.csv",
        bytes,
        Format::Csv,
        false,
        &c_plain(),
        Position::default(),
    )
    .unwrap();
    let e = r.next_entry().unwrap();
    assert_eq!(e.row.unwrap_err().reason, Drop::BadQuote);
    assert_eq!(r.next_entry().unwrap().row.unwrap().url, "http://b/1.jpg");
}

fn c_plain() -> Columns {
    Columns {
        extra: Extra::Named(vec![]),
        ..cols("url", "caption")
    }
}

/// Found by `fuzz/fuzz_targets/reader.rs` (minimized: `[,,}`): a `}` or the end of the file right
/// after a `,` gave an empty element and an error at the same offset, so a reader resumed there
/// read the error instead of the element. Every entry must start at its own offset and resume to
/// itself, for every odd separator.
#[test]
fn json_array_odd_separators_resume_at_every_entry() {
    let el = r#"{"url":"http://a/1.jpg","caption":"x"}"#;
    let cases: Vec<(String, usize, usize)> = vec![
        // (file, entries, rows)
        ("[,,}".into(), 3, 0),
        (format!("[{el}}}"), 2, 1),
        (format!("[{el} , }}"), 2, 1),
        (format!("[{el},]"), 1, 1),
        (format!("[{el}, ]"), 1, 1),
        (format!("[{el},"), 2, 1),
        (format!("[{el}, "), 2, 1),
        (format!("[{el},,{el}]"), 3, 2),
        (format!("[{el}] x"), 2, 1),
        (format!("[{el},] x"), 2, 1),
        ("[,]".into(), 1, 0),
        ("[}".into(), 1, 0),
        ("[]x".into(), 1, 0),
    ];
    for (text, n, rows) in cases {
        let open = |at: Position| {
            Reader::from_bytes(
                "odd.json",
                text.clone().into_bytes(),
                Format::Json,
                false,
                &c_plain(),
                at,
            )
            .unwrap()
        };
        let mut r = open(Position::default());
        let mut entries = Vec::new();
        while let Some(e) = r.next_entry() {
            entries.push(e);
        }
        assert_eq!(entries.len(), n, "{text}: {entries:?}");
        assert_eq!(r.rows() as usize, rows, "{text}");
        let drops: u64 = r.drops().values().sum();
        assert_eq!(r.rows() + drops, n as u64, "{text}");
        let mut offsets: Vec<_> = entries.iter().map(|e| e.at.offset).collect();
        offsets.dedup();
        assert_eq!(offsets.len(), n, "{text}: {entries:?}");
        for e in &entries {
            assert_eq!(open(e.at).next_entry().as_ref(), Some(e), "{text}");
        }
    }
}

/// Found by `fuzz/fuzz_targets/reader.rs`: a parquet footer whose thrift `bool` field carries
/// another wire type made the parquet crate panic (`Option::unwrap()` on `None`, apache/arrow-rs
/// issue 9839). It must be an input error naming the file, from bytes and from a file.
#[test]
fn a_corrupt_parquet_footer_is_an_error_not_a_panic() {
    let path = data("fuzz-bad-thrift-bool.parquet");
    let bytes = std::fs::read(&path).unwrap();
    let from_bytes = Reader::from_bytes(
        "bad.parquet",
        bytes,
        Format::Parquet,
        false,
        &c_plain(),
        Position::default(),
    );
    let e = from_bytes.err().expect("an error").to_string();
    assert!(e.contains("bad.parquet") && e.contains("parquet"), "{e}");
    let from_file = Reader::open(&list_file(&path, Format::Parquet), &c_plain());
    let e = from_file.err().expect("an error").to_string();
    assert!(e.contains("fuzz-bad-thrift-bool.parquet"), "{e}");
}

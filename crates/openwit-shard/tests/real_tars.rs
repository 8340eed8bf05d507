//! The shard reader on real tar files that nobody on this project wrote (`tests/data/tars`, with
//! their sources and licences in the README there: Go's `archive/tar` and CPython's `tarfile`
//! test archives, from Debian packages), checked against Python's `tarfile`
//! (`tests/real_tars/tarfile_oracle.py`): every regular file tarfile reads is a member with the
//! same name, size, data offset and bytes; every other member (folders, links, devices, fifos,
//! sparse files) is skipped and counted under its kind; every archive tarfile refuses is an
//! error. Also the fuzz target's checks (`fuzz/fuzz_targets/check.rs`) on every committed seed and on every
//! real tar cut at each 512-byte block and inside blocks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use openwit_shard::{ShardReader, Skipped, TarMember};
use sha2::{Digest, Sha256};

#[path = "../fuzz/fuzz_targets/check.rs"]
mod check;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tars")
}

/// Every real tar, as `dir/name`, sorted.
fn corpus() -> Vec<String> {
    let listing = |dir: &'static str| {
        std::fs::read_dir(data_dir().join(dir))
            .unwrap()
            .map(move |e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
    };
    let mut out: Vec<String> = listing("go").chain(listing("cpython")).collect();
    out.sort();
    // 42 of Go's, 2 of CPython's (README.md).
    assert_eq!(out.len(), 44, "{out:?}");
    out
}

/// tarfile's view of one member.
#[derive(Debug, Clone, serde::Deserialize)]
struct OracleMember {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    size: u64,
    sparse: bool,
    offset_data: u64,
    sha256: Option<String>,
}

/// tarfile's view of one file.
#[derive(Debug, Clone, serde::Deserialize)]
struct Oracle {
    file: String,
    error: Option<String>,
    members: Vec<OracleMember>,
}

/// tarfile's view of every file, by file. Python 3 is required (CI has it): without it the
/// test fails rather than passing unchecked.
fn tarfile(files: &[String]) -> BTreeMap<String, Oracle> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut python = Command::new("python3");
    python.arg(format!("{dir}/tests/real_tars/tarfile_oracle.py"));
    python.args(files).current_dir(data_dir());
    let run = python.output();
    let out = run.expect("python3 runs (the standard library's tarfile)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tarfile_oracle.py: {stderr}");
    let mut by_file = BTreeMap::new();
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let o: Oracle = serde_json::from_slice(line).unwrap();
        by_file.insert(o.file.clone(), o);
    }
    assert_eq!(by_file.len(), files.len());
    by_file
}

/// What our reader gives for one file.
#[derive(Debug)]
struct Ours {
    members: Vec<TarMember>,
    skipped: Skipped,
    error: Option<String>,
}

fn ours(path: &Path) -> Ours {
    let mut it = ShardReader::open(path).unwrap().members();
    let mut members = Vec::new();
    let mut error = None;
    for m in it.by_ref() {
        match m {
            Ok(m) => members.push(m),
            Err(e) => error = Some(e.to_string()),
        }
    }
    Ours {
        members,
        skipped: it.skipped(),
        error,
    }
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where our reader and tarfile read a real file differently, on purpose: the file and what we
/// give instead (the regular members' names, or `error: ` and what the error says).
const DISAGREE: &[(&str, &str)] = &[
    // A pax global header's `path` record: tarfile gives every later member that name (two
    // members come out named "global1", two with an empty name); Go's archive/tar and the tar
    // crate keep each member's own name, as we do.
    ("go/pax-global-records.tar", "file1 file2 file3 file4"),
    // A GNU incremental dump: its headers hold access and change times where POSIX has the
    // name prefix; tarfile reads the times as a prefix ("12574544345/test2/foo"), Go's
    // archive/tar and GNU tar do not.
    ("go/gnu-incremental.tar", "test2/foo"),
    // A pax record whose length counts a newline that is not there (a NUL instead): tarfile
    // takes the path anyway, Go's archive/tar refuses the header (its test expects ErrHeader);
    // POSIX requires the newline, and a record we cannot delimit is an error here too.
    ("go/pax-bad-hdr-file.tar", "error: malformed pax header"),
    // A pax path with a NUL in it: tarfile keeps the NUL in the name, Go refuses the header;
    // no file system takes such a name, so it is an error here too.
    ("go/pax-nul-path.tar", "error: a NUL in a pax path"),
];

/// Expected skipped counts from tarfile's member types.
fn skipped_from(o: &Oracle) -> Skipped {
    let mut s = Skipped::default();
    for m in &o.members {
        if m.sparse {
            s.sparse += 1;
            continue;
        }
        match m.kind.as_str() {
            "0" | "7" | "\0" => {}
            "5" => s.folders += 1,
            "1" | "2" => s.links += 1,
            "3" | "4" | "6" => s.special += 1,
            _ => s.other += 1,
        }
    }
    s
}

#[test]
fn real_tars_read_as_tarfile_reads_them() {
    let mut regular = 0;
    for (f, o) in &tarfile(&corpus()) {
        let mut got = ours(&data_dir().join(f));
        // A member the tar ends inside of (given with what was there, then the error) is not
        // one tarfile lists.
        if got.members.last().is_some_and(|m| !m.complete) {
            assert!(got.error.is_some(), "{f}");
            got.members.pop();
        }
        let names: Vec<&str> = got.members.iter().map(|m| m.name.as_str()).collect();
        if let Some((_, want)) = DISAGREE.iter().find(|(d, _)| d == f) {
            match want.strip_prefix("error: ") {
                Some(e) => assert!(got.error.as_ref().is_some_and(|g| g.contains(e)), "{f}"),
                None => {
                    assert_eq!(names.join(" "), *want, "{f}");
                    assert_eq!(got.error, None, "{f}");
                }
            }
            continue;
        }
        if let Some(e) = &o.error {
            assert!(
                got.error.is_some(),
                "{f}: tarfile fails ({e}), we read {names:?} without an error"
            );
        } else {
            assert_eq!(got.error, None, "{f}");
        }
        let want: Vec<&OracleMember> = o.members.iter().filter(|m| m.sha256.is_some()).collect();
        assert_eq!(
            names,
            want.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            "{f}"
        );
        for (m, w) in got.members.iter().zip(&want) {
            assert!(m.complete, "{f} {}", m.name);
            assert_eq!(m.member.size, w.size, "{f} {}", m.name);
            assert_eq!(m.member.offset, w.offset_data, "{f} {}", m.name);
            assert_eq!(Some(sha256(&m.member.data)), w.sha256, "{f} {}", m.name);
            let at = ShardReader::read_at(&data_dir().join(f), m.member.offset, m.member.size);
            assert_eq!(at.unwrap(), m.member.data, "{f} {}", m.name);
        }
        assert_eq!(got.skipped, skipped_from(o), "{f}");
        regular += want.len();
    }
    // Every regular file of the corpus compared (the disagreements aside).
    assert_eq!(regular, 50);
}

/// Members tarfile cannot read as files are counted, never silent: a few files spelled out.
#[test]
fn unsupported_members_are_counted_by_kind() {
    let s = |f: &str| ours(&data_dir().join(f)).skipped;
    let hdr_only = s("go/hdr-only.tar");
    assert_eq!(
        (hdr_only.folders, hdr_only.links, hdr_only.special),
        (2, 6, 6)
    );
    let sparse = s("go/sparse-formats.tar");
    assert_eq!(sparse.sparse, 4);
    assert_eq!(sparse.total(), 4);
    assert_eq!(s("go/gnu-incremental.tar").other, 1);
    let end = ours(&data_dir().join("go/sparse-formats.tar"));
    assert_eq!(end.members.len(), 1);
    assert_eq!(end.members[0].name, "end");
    assert_eq!(end.members[0].member.data, b"end\n");
}

/// Damaged real tars: a clear error naming the file, never a panic.
#[test]
fn damaged_real_tars_are_errors() {
    for (f, says) in [
        ("go/neg-size.tar", "bad member size"),
        ("go/issue10968.tar", "bad member size"),
        ("go/writer-big.tar", "truncated"),
        ("cpython/recursion.tar", "truncated"),
    ] {
        let got = ours(&data_dir().join(f));
        let e = got.error.unwrap_or_else(|| panic!("{f}: no error"));
        assert!(e.contains(says), "{f}: {e}");
        assert!(e.contains(f.rsplit('/').next().unwrap()), "{f}: {e}");
    }
}

/// The fuzz target's checks on every committed seed, and on every real tar cut at every block
/// boundary and in the middle of each block.
#[test]
fn fuzz_checks_hold_on_seeds_and_cuts() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/shard_reader");
    let mut n = 0;
    for e in std::fs::read_dir(&seeds).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            continue;
        }
        check::check(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n >= 40, "{n} seeds");
    for f in corpus() {
        let data = std::fs::read(data_dir().join(&f)).unwrap();
        // CPython's 435 KB testtar: its first 64 KB (the cuts are quadratic in its size).
        let data = &data[..data.len().min(64 << 10)];
        for cut in (0..data.len()).step_by(256) {
            check::check(&data[..cut]);
        }
    }
}

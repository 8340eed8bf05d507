//! Reading input files that may be compressed, whole or line by line: gzip (`1f 8b`) and bzip2
//! (`BZh`) are recognized by their first bytes, not by the file name; anything else is read as
//! it is. Multi-member gzip and multistream bzip2 files are read to their end.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{QueriesError, Result};

/// The compression of a file, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Plain,
}

/// Sniffs the compression of `path` from its first three bytes.
pub fn compression(path: &Path) -> Result<Compression> {
    let f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
    let mut head = Vec::with_capacity(3);
    f.take(3)
        .read_to_end(&mut head)
        .map_err(|e| QueriesError::io(path, e))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else {
        Compression::Plain
    })
}

/// Opens `path` and decompresses it if it is gzip or bzip2.
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    let kind = compression(path)?;
    let f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
    let raw = BufReader::with_capacity(1 << 16, f);
    Ok(match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
        Compression::Plain => Box::new(raw),
    })
}

/// The lines of a file, plain or compressed, as bytes (callers decide about UTF-8).
pub struct Lines {
    reader: BufReader<Box<dyn Read>>,
    path: PathBuf,
    fix: &'static str,
    line: Vec<u8>,
    read: u64,
}

impl Lines {
    /// Opens `path`; `fix` is what a read error tells the user to do (e.g. download it again).
    pub fn open(path: &Path, fix: &'static str) -> Result<Self> {
        Ok(Lines {
            reader: BufReader::with_capacity(1 << 20, open(path)?),
            path: path.to_path_buf(),
            fix,
            line: Vec::new(),
            read: 0,
        })
    }

    /// The next line, with its `\n` if it has one; `None` at the end. A read or decoding error
    /// (a damaged or truncated file) names the file and the line it came after.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>> {
        self.line.clear();
        let k =
            self.reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| QueriesError::Broken {
                    path: self.path.clone(),
                    offset: 0,
                    msg: format!("after line {}: {e}", self.read),
                    fix: self.fix.into(),
                })?;
        if k == 0 {
            return Ok(None);
        }
        self.read += 1;
        Ok(Some(&self.line))
    }

    /// The number of lines returned so far (the 1-based number of the last one).
    pub fn lines_read(&self) -> u64 {
        self.read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const TEXT: &[u8] = b"first line\n\nthird \xff line\nlast, no newline";

    fn all(path: &Path) -> Result<Vec<Vec<u8>>> {
        let mut lines = Lines::open(path, "make it again")?;
        let mut out = Vec::new();
        while let Some(l) = lines.next_line()? {
            out.push(l.to_vec());
        }
        assert_eq!(lines.lines_read(), out.len() as u64);
        Ok(out)
    }

    fn expected() -> Vec<Vec<u8>> {
        vec![
            b"first line\n".to_vec(),
            b"\n".to_vec(),
            b"third \xff line\n".to_vec(),
            b"last, no newline".to_vec(),
        ]
    }

    /// One gzip member per part, concatenated.
    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        let member = |p: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
            e.write_all(p).unwrap();
            e.finish().unwrap()
        };
        parts.iter().flat_map(|p| member(p)).collect()
    }

    /// One bzip2 stream per part, concatenated.
    fn bzip2(parts: &[&[u8]]) -> Vec<u8> {
        let stream = |p: &[u8]| {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), Default::default());
            e.write_all(p).unwrap();
            e.finish().unwrap()
        };
        parts.iter().flat_map(|p| stream(p)).collect()
    }

    #[test]
    fn plain_gzip_and_bzip2_give_the_same_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = TEXT.split_at(15);
        // names that lie about the content: sniffing decides
        for (name, bytes, kind) in [
            ("plain.gz", TEXT.to_vec(), Compression::Plain),
            ("gzip.txt", gzip(&[a, b]), Compression::Gzip),
            ("bzip2.gz", bzip2(&[a, b]), Compression::Bzip2),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(compression(&p).unwrap(), kind, "{name}");
            assert_eq!(all(&p).unwrap(), expected(), "{name}");
            let mut whole = Vec::new();
            open(&p).unwrap().read_to_end(&mut whole).unwrap();
            assert_eq!(whole, TEXT, "{name}");
        }
    }

    #[test]
    fn short_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty");
        std::fs::write(&p, b"").unwrap();
        assert_eq!(compression(&p).unwrap(), Compression::Plain);
        assert!(all(&p).unwrap().is_empty());
        std::fs::write(&p, b"\x1f").unwrap();
        assert_eq!(all(&p).unwrap(), vec![b"\x1f".to_vec()]);
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i} {}\n", i * 7919 % 1000).into_bytes())
            .collect();
        for (name, bytes) in [("cut.gz", gzip(&[&body])), ("cut.bz2", bzip2(&[&body]))] {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            let err = all(&p).unwrap_err();
            match &err {
                QueriesError::Broken { path, msg, fix, .. } => {
                    assert_eq!(path, &p);
                    assert!(msg.starts_with("after line "), "{msg}");
                    assert_eq!(fix, "make it again");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let missing = dir.path().join("missing");
        assert!(matches!(
            Lines::open(&missing, "x"),
            Err(QueriesError::Io { .. })
        ));
    }
}

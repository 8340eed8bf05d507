//! The shard reader: iterates a webdataset tar sample by sample (members grouped by key, as
//! webdataset does), with each member's data offset in the tar so indexes can point into it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::{Result, ShardError};

/// One tar member of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The extension after the key (`jpg`, `txt`, `json`, `seg.png`, ...).
    pub ext: String,
    /// Byte offset of the member's data in the tar.
    pub offset: u64,
    /// Data length in bytes.
    pub size: u64,
    pub data: Vec<u8>,
}

/// A sample: the members sharing a key, in tar order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: String,
    pub members: Vec<Member>,
}

impl Sample {
    /// The member with extension `ext`.
    pub fn get(&self, ext: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.ext == ext)
    }
    /// The image member: the first of `jpg`, `png`, `jpeg`, `webp` (OpenCLIP's order).
    pub fn image(&self) -> Option<&Member> {
        ["jpg", "png", "jpeg", "webp"]
            .iter()
            .find_map(|e| self.get(e))
    }
    /// The caption (`txt`), as UTF-8 (lossy).
    pub fn text(&self) -> Option<String> {
        self.get("txt")
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
    }
    /// The metadata (`json`), parsed.
    pub fn json(&self) -> Option<serde_json::Value> {
        self.get("json")
            .and_then(|m| serde_json::from_slice(&m.data).ok())
    }
}

/// One regular-file member as it stands in the tar, before members are grouped into samples.
#[derive(Debug, Clone, PartialEq)]
pub struct TarMember {
    /// Its path in the tar.
    pub name: String,
    /// Its key (`dir/KEY` of `dir/KEY.ext.ext2`), `None` when the last part of the name has no
    /// dot (webdataset leaves such members out of every sample).
    pub key: Option<String>,
    /// Its extension (as stored, empty without a dot), offset, size and data.
    pub member: Member,
    /// False for a member the tar ends inside of: `data` holds the bytes that were there, and
    /// the member stream's next item is the error.
    pub complete: bool,
}

/// The read buffer of [`ShardReader::open`]: large enough that reading a shard costs few
/// system calls.
pub const READ_BUFFER: usize = 1 << 20;

/// Reads a shard tar.
pub struct ShardReader {
    path: PathBuf,
    file: BufReader<File>,
}

impl ShardReader {
    /// Opens a tar with a [`READ_BUFFER`] buffer.
    pub fn open(path: &Path) -> Result<Self> {
        Self::with_buffer(path, READ_BUFFER)
    }

    /// Opens a tar with a read buffer of `capacity` bytes.
    pub fn with_buffer(path: &Path, capacity: usize) -> Result<Self> {
        let f = File::open(path).map_err(|e| ShardError::io(path, e))?;
        Ok(ShardReader {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(capacity, f),
        })
    }

    /// Iterates the samples: the members grouped by key. A damaged tar ends the samples with
    /// an error, the sample it was reading left out.
    pub fn samples(self) -> Samples {
        Samples {
            members: self.members(),
            pending: None,
            done: false,
        }
    }

    /// Iterates the regular-file members one by one, in tar order (folders, links and
    /// extended headers skipped, long names applied). A tar that ends inside a member gives
    /// that member with what was there ([`TarMember::complete`] false), then an error; any
    /// other damage (a cut or corrupt header, a bad checksum) gives an error; after an error
    /// the stream ends.
    pub fn members(self) -> Members {
        Members {
            path: self.path,
            file: self.file,
            pos: 0,
            failed: None,
            done: false,
        }
    }

    /// Reads `size` bytes at `offset` of a tar (a member's data, from an index).
    pub fn read_at(path: &Path, offset: u64, size: u64) -> Result<Vec<u8>> {
        let mut f = File::open(path).map_err(|e| ShardError::io(path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| ShardError::io(path, e))?;
        let mut buf = vec![0u8; size as usize];
        f.read_exact(&mut buf)
            .map_err(|e| ShardError::io(path, e))?;
        Ok(buf)
    }
}

/// Iterator over a tar's regular-file members ([`ShardReader::members`]).
pub struct Members {
    path: PathBuf,
    file: BufReader<File>,
    pos: u64,
    /// The error that follows a member the tar ends inside of.
    failed: Option<ShardError>,
    done: bool,
}

/// Iterator over a tar's samples ([`ShardReader::samples`]).
pub struct Samples {
    members: Members,
    pending: Option<(String, Member)>,
    done: bool,
}

/// A numeric header field: octal text, or GNU's base-256 (high bit of the first byte set) for
/// values octal cannot hold.
fn octal(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        return rest.iter().try_fold(u64::from(first & 0x7f), |n, &b| {
            n.checked_mul(256).map(|n| n | u64::from(b))
        });
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Whether a header's checksum holds: the sum of its bytes with the checksum field read as
/// spaces (what tar and the `tar` crate check).
fn checksum_ok(h: &[u8; 512]) -> bool {
    let sum: u64 = h[..148]
        .iter()
        .chain(&h[156..])
        .map(|&b| u64::from(b))
        .sum::<u64>()
        + 8 * u64::from(b' ');
    octal(&h[148..156]) == Some(sum)
}

/// Its regular members' data, a header's or a skipped member's data.
enum Data {
    /// All of it (its padding too).
    Whole(Vec<u8>),
    /// The tar ends inside the data (`Vec`: what was there) or inside its padding (the data
    /// is whole).
    Cut(Vec<u8>, bool),
}

impl Members {
    fn read_block(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.file.read(&mut buf[got..])?;
            if n == 0 {
                return if got == 0 {
                    Ok(false)
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "truncated tar",
                    ))
                };
            }
            got += n;
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }

    /// A member's `size` bytes of data and its padding to the next 512-byte block.
    fn read_data(&mut self, size: u64) -> Result<Data> {
        let mut data = Vec::with_capacity(size as usize);
        let got = (&mut self.file)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| ShardError::io(&self.path, e))? as u64;
        self.pos += got;
        if got < size {
            return Ok(Data::Cut(data, false));
        }
        let pad = ((512 - size % 512) % 512) as usize;
        let mut skip = [0u8; 512];
        if self.file.read_exact(&mut skip[..pad]).is_err() {
            return Ok(Data::Cut(data, true));
        }
        self.pos += pad as u64;
        Ok(Data::Whole(data))
    }

    /// The data of a member that is not a regular file: a cut one is an error.
    fn read_whole(&mut self, size: u64) -> Result<Vec<u8>> {
        match self.read_data(size)? {
            Data::Whole(d) => Ok(d),
            Data::Cut(..) => Err(self.cut()),
        }
    }

    fn cut(&self) -> ShardError {
        ShardError::format(&self.path, "truncated member: the tar ends inside it")
    }

    /// The next regular file member.
    fn next_member(&mut self) -> Result<Option<TarMember>> {
        let mut long_name: Option<String> = None;
        // An extension header (long name, long link, pax) was read: a member must follow.
        let mut extended = false;
        loop {
            let mut h = [0u8; 512];
            let ok = self
                .read_block(&mut h)
                .map_err(|e| ShardError::format(&self.path, e.to_string()))?;
            if !ok || h.iter().all(|&b| b == 0) {
                if extended {
                    return Err(ShardError::format(
                        &self.path,
                        "truncated tar: an extension header with no member after it",
                    ));
                }
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return Err(ShardError::format(
                    &self.path,
                    format!("bad header checksum at byte {}", self.pos - 512),
                ));
            }
            let size = octal(&h[124..136]).ok_or_else(|| {
                ShardError::format(
                    &self.path,
                    format!("bad member size at byte {}", self.pos - 512),
                )
            })?;
            let kind = h[156];
            let data_offset = self.pos;
            match kind {
                b'L' => {
                    let d = self.read_whole(size)?;
                    long_name = Some(cstr(&d));
                    extended = true;
                }
                b'K' => {
                    // A long link name: links are skipped.
                    self.read_whole(size)?;
                    extended = true;
                }
                b'x' => {
                    extended = true;
                    let d = self.read_whole(size)?;
                    for rec in String::from_utf8_lossy(&d).lines() {
                        if let Some((_, kv)) = rec.split_once(' ')
                            && let Some(p) = kv.strip_prefix("path=")
                        {
                            long_name = Some(p.to_string());
                        }
                    }
                }
                b'0' | b'7' | 0 => {
                    let name = long_name.take().unwrap_or_else(|| {
                        let n = cstr(&h[0..100]);
                        // POSIX ustar's name prefix (GNU headers keep other fields there).
                        let prefix = if &h[257..263] == b"ustar\0" {
                            cstr(&h[345..500])
                        } else {
                            String::new()
                        };
                        if prefix.is_empty() {
                            n
                        } else {
                            format!("{prefix}/{n}")
                        }
                    });
                    let (data, complete) = match self.read_data(size)? {
                        Data::Whole(d) => (d, true),
                        Data::Cut(d, whole) => {
                            self.failed = Some(self.cut());
                            (d, whole)
                        }
                    };
                    let (key, ext) = match split_key(&name) {
                        (key, Some(ext)) => (Some(key), ext),
                        (_, None) => (None, String::new()),
                    };
                    return Ok(Some(TarMember {
                        name,
                        key,
                        member: Member {
                            ext,
                            offset: data_offset,
                            size,
                            data,
                        },
                        complete,
                    }));
                }
                _ => {
                    // Folders, links, global headers: skipped.
                    self.read_whole(size)?;
                    long_name = None;
                    extended = false;
                }
            }
        }
    }
}

impl Iterator for Members {
    type Item = Result<TarMember>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.failed.take() {
            self.done = true;
            return Some(Err(e));
        }
        match self.next_member() {
            Ok(Some(m)) => Some(Ok(m)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Splits `dir/KEY.ext.ext2` into (`dir/KEY`, `ext.ext2`) as webdataset does; the extension is
/// `None` when the last part of the name has no dot.
fn split_key(name: &str) -> (String, Option<String>) {
    let base_start = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[base_start..].find('.') {
        Some(d) => (
            name[..base_start + d].to_string(),
            Some(name[base_start + d + 1..].to_string()),
        ),
        None => (name.to_string(), None),
    }
}

impl Iterator for Samples {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut sample: Option<Sample> = None;
        loop {
            let next = match self.pending.take() {
                Some(p) => Some(p),
                None => match self.members.next() {
                    // A member the tar ends inside of: the error that follows it.
                    Some(Ok(m)) if !m.complete => {
                        self.done = true;
                        return self.members.failed.take().map(Err);
                    }
                    // Samples group by the whole name where it has no dot.
                    Some(Ok(m)) => Some((m.key.unwrap_or(m.name), m.member)),
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                    None => None,
                },
            };
            match (next, sample.as_mut()) {
                (None, _) => {
                    self.done = true;
                    return sample.map(Ok);
                }
                (Some((key, m)), None) => {
                    sample = Some(Sample {
                        key,
                        members: vec![m],
                    })
                }
                (Some((key, m)), Some(s)) if s.key == key => s.members.push(m),
                (Some(p), Some(_)) => {
                    self.pending = Some(p);
                    return sample.map(Ok);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_like_webdataset() {
        assert_eq!(
            split_key("000010005.jpg"),
            ("000010005".into(), Some("jpg".into()))
        );
        assert_eq!(
            split_key("a/b.c/k.seg.png"),
            ("a/b.c/k".into(), Some("seg.png".into()))
        );
        assert_eq!(split_key("d.x/k"), ("d.x/k".into(), None));
        assert_eq!(split_key("k."), ("k".into(), Some(String::new())));
    }

    #[test]
    fn reads_tars_written_by_the_tar_crate_with_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        let long = format!("{}/k1.jpg", "d".repeat(120));
        for (name, data) in [
            ("k0.jpg", &b"abc"[..]),
            ("k0.txt", b"hello"),
            (long.as_str(), &[7u8; 600][..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let samples: Vec<Sample> = ShardReader::open(&p)
            .unwrap()
            .samples()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].key, "k0");
        assert_eq!(samples[0].text().unwrap(), "hello");
        assert_eq!(samples[1].key, format!("{}/k1", "d".repeat(120)));
        let m = samples[1].image().unwrap();
        assert_eq!(ShardReader::read_at(&p, m.offset, m.size).unwrap(), m.data);
        let m0 = samples[0].get("jpg").unwrap();
        assert_eq!(ShardReader::read_at(&p, m0.offset, 3).unwrap(), b"abc");
    }

    #[test]
    fn truncated_tar_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tar");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2000);
        b.append_data(&mut h, "k.jpg", &[1u8; 2000][..]).unwrap();
        let bytes = b.into_inner().unwrap();
        std::fs::write(&p, &bytes[..1200]).unwrap();
        let r: Vec<Result<Sample>> = ShardReader::open(&p).unwrap().samples().collect();
        assert!(r.last().unwrap().is_err());
    }
}

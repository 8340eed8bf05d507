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
    /// Byte offset of its first header block in the tar: its extension headers (GNU long name,
    /// pax) when it has any, else its own header. The member's blocks in the tar are
    /// `header_offset..member.offset`, then the data and its padding to 512 bytes.
    pub header_offset: u64,
    /// False for a member the tar ends inside of: `data` holds the bytes that were there, and
    /// the member stream's next item is the error.
    pub complete: bool,
}

/// Members that are not regular files, counted by kind as the reader skips them (webdataset
/// reads regular files only). Extension headers (GNU long names, pax) are not members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Folders (type `5`, or a v7 name ending in `/`).
    pub folders: u64,
    /// Hard and symbolic links (`1`, `2`).
    pub links: u64,
    /// Sparse files (GNU `S`, or pax `GNU.sparse.*` records): their data is a map of holes,
    /// not the file.
    pub sparse: u64,
    /// Character and block devices and fifos (`3`, `4`, `6`).
    pub special: u64,
    /// Any other type (GNU dump folders, volume labels, multi-volume parts, unknown flags).
    pub other: u64,
}

impl Skipped {
    /// Every skipped member.
    pub fn total(&self) -> u64 {
        self.folders + self.links + self.sparse + self.special + self.other
    }
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
        self.members().into_samples()
    }

    /// Iterates the regular-file members one by one, in tar order (folders, links and other
    /// non-file members skipped and counted in [`Members::skipped`], long names and pax
    /// records applied). A tar that ends inside a member gives that member with what was
    /// there ([`TarMember::complete`] false), then an error; any other damage (a cut or
    /// corrupt header, a bad checksum or size) gives an error; after an error the stream ends.
    pub fn members(self) -> Members {
        Members::from_reader(self.path, self.file)
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

/// Iterator over a tar's regular-file members ([`ShardReader::members`], or
/// [`Members::from_reader`] over any reader).
pub struct Members<R = BufReader<File>> {
    path: PathBuf,
    file: R,
    pos: u64,
    skipped: Skipped,
    /// The error that follows a member the tar ends inside of.
    failed: Option<ShardError>,
    done: bool,
}

/// Iterator over a tar's samples ([`ShardReader::samples`]).
pub struct Samples<R = BufReader<File>> {
    members: Members<R>,
    pending: Option<(String, Member)>,
    done: bool,
}

impl<R> Samples<R> {
    /// The members skipped so far (see [`Members::skipped`]).
    pub fn skipped(&self) -> Skipped {
        self.members.skipped
    }
}

/// A numeric header field: octal text, or GNU's base-256 (high bit of the first byte set) for
/// values octal cannot hold; `None` for a negative base-256 value or text that is not octal.
fn octal(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        // The bit after the marker is the sign (two's complement): sizes are never negative.
        if first & 0x40 != 0 {
            return None;
        }
        return rest.iter().try_fold(u64::from(first & 0x3f), |n, &b| {
            n.checked_mul(256).map(|n| n | u64::from(b))
        });
    }
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let s = field[..end].trim_ascii();
    if s.is_empty() {
        return Some(0);
    }
    if !s.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        n.checked_mul(8)?.checked_add(u64::from(b - b'0'))
    })
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Whether a header's checksum holds: the sum of its bytes with the checksum field read as
/// spaces, as unsigned bytes or (some old tars) signed ones, as tar, Python's tarfile and Go
/// accept.
fn checksum_ok(h: &[u8; 512]) -> bool {
    let Some(want) = octal(&h[148..156]) else {
        return false;
    };
    let bytes = || h[..148].iter().chain(&h[156..]);
    let unsigned: u64 = bytes().map(|&b| u64::from(b)).sum::<u64>() + 8 * u64::from(b' ');
    let signed: i64 = bytes().map(|&b| i64::from(b as i8)).sum::<i64>() + 8 * i64::from(b' ');
    want == unsigned || i64::try_from(want) == Ok(signed)
}

/// Whether a header's bytes 345..500 are POSIX ustar's name prefix: in a ustar header; in a
/// GNU one (which keeps access and change times there) only when those are not numbers and the
/// bytes are ASCII, as Go 1.7 and older wrote the prefix into GNU headers (Go's archive/tar and
/// Python's tarfile read it so).
fn name_prefix(h: &[u8; 512]) -> bool {
    match &h[257..265] {
        [b'u', b's', b't', b'a', b'r', 0, ..] => true,
        b"ustar  \0" => {
            (octal(&h[345..357]).is_none() || octal(&h[357..369]).is_none())
                && h[345..500].is_ascii()
        }
        _ => false,
    }
}

/// The records of a pax extended header (`LEN key=value\n` each); `None` when it is not one.
fn pax_records(d: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = d;
    // Trailing NULs pad some writers' headers.
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return None;
        }
        let kv = &rest[sp + 1..len - 1];
        let eq = kv.iter().position(|&b| b == b'=')?;
        out.push((&kv[..eq], &kv[eq + 1..]));
        rest = &rest[len..];
    }
    Some(out)
}

/// Largest buffer reserved ahead for a member's data: a corrupt header's size must not
/// allocate more than the tar holds (the buffer grows as data arrives).
const RESERVE_MAX: u64 = 16 << 20;

/// Its regular members' data, a header's or a skipped member's data.
enum Data {
    /// All of it (its padding too).
    Whole(Vec<u8>),
    /// The tar ends inside the data (`Vec`: what was there) or inside its padding (the data
    /// is whole).
    Cut(Vec<u8>, bool),
}

/// What the extension headers before a member said.
#[derive(Default)]
struct Extended {
    /// A header was read: a member must follow.
    any: bool,
    name: Option<String>,
    size: Option<u64>,
    sparse: bool,
}

impl<R: Read> Members<R> {
    /// The members of the tar `reader` reads (from its start); `path` names it in errors.
    pub fn from_reader(path: impl Into<PathBuf>, reader: R) -> Self {
        Members {
            path: path.into(),
            file: reader,
            pos: 0,
            skipped: Skipped::default(),
            failed: None,
            done: false,
        }
    }

    /// The members grouped into samples.
    pub fn into_samples(self) -> Samples<R> {
        Samples {
            members: self,
            pending: None,
            done: false,
        }
    }

    /// The members skipped so far because they are not regular files, by kind.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    fn read_block(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = match self.file.read(&mut buf[got..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
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
        let mut data = Vec::with_capacity(size.min(RESERVE_MAX) as usize);
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

    /// Skips `size` bytes of data and its padding without keeping them: a cut is an error.
    fn skip_data(&mut self, size: u64) -> Result<()> {
        let padded = size
            .div_ceil(512)
            .checked_mul(512)
            .ok_or_else(|| self.cut())?;
        let got = std::io::copy(&mut (&mut self.file).take(padded), &mut std::io::sink())
            .map_err(|e| ShardError::io(&self.path, e))?;
        self.pos += got;
        if got < padded {
            return Err(self.cut());
        }
        Ok(())
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

    fn bad(&self, what: &str, at: u64) -> ShardError {
        ShardError::format(&self.path, format!("{what} at byte {at}"))
    }

    /// The next regular file member.
    fn next_member(&mut self) -> Result<Option<TarMember>> {
        let mut ext = Extended::default();
        let mut header_offset = self.pos;
        loop {
            let mut h = [0u8; 512];
            let ok = self
                .read_block(&mut h)
                .map_err(|e| ShardError::format(&self.path, e.to_string()))?;
            if !ok || h.iter().all(|&b| b == 0) {
                if ext.any {
                    return Err(ShardError::format(
                        &self.path,
                        "truncated tar: an extension header with no member after it",
                    ));
                }
                return Ok(None);
            }
            let at = self.pos - 512;
            if !checksum_ok(&h) {
                return Err(self.bad("bad header checksum", at));
            }
            let size = octal(&h[124..136]).ok_or_else(|| self.bad("bad member size", at))?;
            let kind = h[156];
            match kind {
                b'L' | b'K' | b'x' | b'X' if size > RESERVE_MAX => {
                    return Err(self.bad("extension header too large", at));
                }
                b'L' => {
                    let d = self.read_whole(size)?;
                    ext.name = Some(cstr(&d));
                    ext.any = true;
                }
                b'K' => {
                    // A long link name: links are skipped.
                    self.read_whole(size)?;
                    ext.any = true;
                }
                // pax, and Solaris tar's older spelling of it.
                b'x' | b'X' => {
                    ext.any = true;
                    let d = self.read_whole(size)?;
                    let records =
                        pax_records(&d).ok_or_else(|| self.bad("malformed pax header", at))?;
                    for (k, v) in records {
                        match k {
                            b"path" if v.contains(&0) => {
                                return Err(self.bad("a NUL in a pax path", at));
                            }
                            b"path" => ext.name = Some(String::from_utf8_lossy(v).into_owned()),
                            b"size" => {
                                let n = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                                ext.size = Some(n.ok_or_else(|| self.bad("bad pax size", at))?);
                            }
                            _ if k.starts_with(b"GNU.sparse.") => ext.sparse = true,
                            _ => {}
                        }
                    }
                }
                b'g' => {
                    // A pax global header: its records are not applied to member names (as
                    // Go's archive/tar and the tar crate do; Python's tarfile applies `path`).
                    self.skip_data(size)?;
                    if !ext.any {
                        header_offset = self.pos;
                    }
                }
                b'0' | b'7' | 0 => {
                    let size = ext.size.unwrap_or(size);
                    let name = ext.name.take().unwrap_or_else(|| {
                        let n = cstr(&h[0..100]);
                        let prefix = if name_prefix(&h) {
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
                    // A v7 folder is a plain member whose name ends in `/`.
                    if ext.sparse || (kind == 0 && name.ends_with('/')) {
                        if ext.sparse {
                            self.skipped.sparse += 1;
                        } else {
                            self.skipped.folders += 1;
                        }
                        self.skip_data(size)?;
                        ext = Extended::default();
                        header_offset = self.pos;
                        continue;
                    }
                    let data_offset = self.pos;
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
                        header_offset,
                        complete,
                    }));
                }
                _ => {
                    let counter = match kind {
                        b'5' => &mut self.skipped.folders,
                        b'1' | b'2' => &mut self.skipped.links,
                        b'3' | b'4' | b'6' => &mut self.skipped.special,
                        b'S' => &mut self.skipped.sparse,
                        _ => &mut self.skipped.other,
                    };
                    *counter += 1;
                    // An old GNU sparse header continues its map in extra 512-byte blocks
                    // (while the "extended" byte of the last one read is set).
                    if kind == b'S' && h[482] != 0 {
                        loop {
                            let mut b = [0u8; 512];
                            if !self
                                .read_block(&mut b)
                                .map_err(|e| ShardError::format(&self.path, e.to_string()))?
                            {
                                return Err(self.cut());
                            }
                            if b[504] == 0 {
                                break;
                            }
                        }
                    }
                    // Links and devices carry no data whatever their size field says (as
                    // tarfile and GNU tar read them); the others' data is skipped.
                    let size = ext.size.unwrap_or(size);
                    if !matches!(kind, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
                        self.skip_data(size)?;
                    }
                    ext = Extended::default();
                    header_offset = self.pos;
                }
            }
        }
    }
}

impl<R: Read> Iterator for Members<R> {
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

impl<R: Read> Iterator for Samples<R> {
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

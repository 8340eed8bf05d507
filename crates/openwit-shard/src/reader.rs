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

/// Reads a shard tar.
pub struct ShardReader {
    path: PathBuf,
    file: BufReader<File>,
}

impl ShardReader {
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| ShardError::io(path, e))?;
        Ok(ShardReader {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(1 << 20, f),
        })
    }

    /// Iterates the samples.
    pub fn samples(self) -> Samples {
        Samples {
            path: self.path,
            file: self.file,
            pos: 0,
            pending: None,
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

/// Iterator over a tar's samples.
pub struct Samples {
    path: PathBuf,
    file: BufReader<File>,
    pos: u64,
    pending: Option<(String, Member)>,
    done: bool,
}

fn octal(field: &[u8]) -> Option<u64> {
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

impl Samples {
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

    fn read_data(&mut self, size: u64) -> Result<Vec<u8>> {
        let mut data = vec![0u8; size as usize];
        self.file
            .read_exact(&mut data)
            .map_err(|e| ShardError::format(&self.path, format!("truncated member: {e}")))?;
        let pad = (512 - size % 512) % 512;
        let mut skip = vec![0u8; pad as usize];
        self.file
            .read_exact(&mut skip)
            .map_err(|e| ShardError::format(&self.path, format!("truncated member: {e}")))?;
        self.pos += size + pad;
        Ok(data)
    }

    /// The next regular file member: (path, member).
    fn next_member(&mut self) -> Result<Option<(String, Member)>> {
        let mut long_name: Option<String> = None;
        loop {
            let mut h = [0u8; 512];
            let ok = self
                .read_block(&mut h)
                .map_err(|e| ShardError::format(&self.path, e.to_string()))?;
            if !ok || h.iter().all(|&b| b == 0) {
                return Ok(None);
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
                    let d = self.read_data(size)?;
                    long_name = Some(cstr(&d));
                }
                b'x' => {
                    let d = self.read_data(size)?;
                    for rec in String::from_utf8_lossy(&d).lines() {
                        if let Some((_, kv)) = rec.split_once(' ')
                            && let Some(p) = kv.strip_prefix("path=")
                        {
                            long_name = Some(p.to_string());
                        }
                    }
                }
                b'0' | 0 => {
                    let name = long_name.take().unwrap_or_else(|| {
                        let n = cstr(&h[0..100]);
                        let prefix = if &h[257..262] == b"ustar" {
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
                    let data = self.read_data(size)?;
                    return Ok(Some((
                        name,
                        Member {
                            ext: String::new(),
                            offset: data_offset,
                            size,
                            data,
                        },
                    )));
                }
                _ => {
                    // Folders, links, global headers: skipped.
                    self.read_data(size)?;
                    long_name = None;
                }
            }
        }
    }
}

/// Splits `dir/KEY.ext.ext2` into (`dir/KEY`, `ext.ext2`) as webdataset does.
fn split_key(name: &str) -> (String, String) {
    let base_start = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[base_start..].find('.') {
        Some(d) => (
            name[..base_start + d].to_string(),
            name[base_start + d + 1..].to_string(),
        ),
        None => (name.to_string(), String::new()),
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
                None => match self.next_member() {
                    Ok(m) => m.map(|(name, mut m)| {
                        let (key, ext) = split_key(&name);
                        m.ext = ext;
                        (key, m)
                    }),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
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
            ("000010005".into(), "jpg".into())
        );
        assert_eq!(
            split_key("a/b.c/k.seg.png"),
            ("a/b.c/k".into(), "seg.png".into())
        );
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

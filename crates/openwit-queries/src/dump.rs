//! MediaWiki export XML (`pages-articles`): splitting a decompressed byte stream into `<page>`
//! elements, reading one page, the multistream index, and counting a dump's tokens.
//!
//! Pages are found by their `<page>` / `</page>` tags: inside a well-formed export every `<` in
//! text is escaped, so the tags cannot occur in content. Each page is then read on its own, so a
//! malformed page (unescaped `<`, a bad entity, a missing `<title>`, `<ns>` or `<text>`) or a page
//! with invalid UTF-8 is one counted drop and the next page is read normally.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use memchr::memmem;
use openwit_core::Drops;
use serde::{Deserialize, Serialize};

use crate::counts::Counter;
use crate::error::{QueriesError, Result};
use crate::lines::Lines;

/// Drop reasons (keys of [`Drops`]).
pub mod reason {
    pub const MALFORMED_XML: &str = "page_malformed_xml";
    pub const INVALID_UTF8: &str = "page_invalid_utf8";
    pub const TOO_LARGE: &str = "page_too_large";
    pub const TRUNCATED: &str = "page_truncated";
    pub const CORRUPT_STREAM: &str = "bz2_stream_corrupt";
    pub const PAGES_IN_CORRUPT_STREAM: &str = "pages_lost_in_corrupt_bz2_stream";
}

/// One page of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub title: String,
    pub ns: i64,
    pub redirect: bool,
    pub text: String,
}

fn between<'a>(b: &'a [u8], open: &[u8], close: &[u8]) -> Option<&'a [u8]> {
    let s = memmem::find(b, open)? + open.len();
    let e = memmem::find(&b[s..], close)? + s;
    Some(&b[s..e])
}

/// Decodes XML character content: the five predefined entities and numeric references. A raw
/// `<` or an unknown entity is malformed.
pub fn unescape_xml(b: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    if memchr::memchr(b'<', b).is_some() {
        return Err(reason::MALFORMED_XML);
    }
    if memchr::memchr(b'&', b).is_none() {
        return Ok(b.to_vec());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'&', &b[i..]) {
        let p = i + off;
        out.extend_from_slice(&b[i..p]);
        let semi = b[p..b.len().min(p + 12)]
            .iter()
            .position(|&c| c == b';')
            .ok_or(reason::MALFORMED_XML)?;
        let name = &b[p + 1..p + semi];
        match name {
            b"lt" => out.push(b'<'),
            b"gt" => out.push(b'>'),
            b"amp" => out.push(b'&'),
            b"quot" => out.push(b'"'),
            b"apos" => out.push(b'\''),
            _ => {
                let n = name.strip_prefix(b"#").ok_or(reason::MALFORMED_XML)?;
                let n = std::str::from_utf8(n).map_err(|_| reason::MALFORMED_XML)?;
                let v = match n.strip_prefix(['x', 'X']) {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => n.parse().ok(),
                };
                let c = v.and_then(char::from_u32).ok_or(reason::MALFORMED_XML)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        i = p + semi + 1;
    }
    out.extend_from_slice(&b[i..]);
    Ok(out)
}

fn text_of(b: &[u8]) -> std::result::Result<String, &'static str> {
    let v = unescape_xml(b)?;
    String::from_utf8(v).map_err(|_| reason::INVALID_UTF8)
}

/// Reads one `<page>...</page>` element. The error is the drop reason.
pub fn parse_page(b: &[u8]) -> std::result::Result<Page, &'static str> {
    let title = between(b, b"<title>", b"</title>").ok_or(reason::MALFORMED_XML)?;
    let ns = between(b, b"<ns>", b"</ns>").ok_or(reason::MALFORMED_XML)?;
    let ns: i64 = std::str::from_utf8(ns)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(reason::MALFORMED_XML)?;
    let rev = memmem::find(b, b"<revision").unwrap_or(b.len());
    let redirect = memmem::find(&b[..rev], b"<redirect").is_some();
    let t = memmem::find(b, b"<text").ok_or(reason::MALFORMED_XML)?;
    let gt = memchr::memchr(b'>', &b[t..]).ok_or(reason::MALFORMED_XML)? + t;
    let text = if b[gt - 1] == b'/' {
        String::new()
    } else {
        let e = memmem::find(&b[gt + 1..], b"</text>").ok_or(reason::MALFORMED_XML)? + gt + 1;
        text_of(&b[gt + 1..e])?
    };
    Ok(Page {
        title: text_of(title)?,
        ns,
        redirect,
        text,
    })
}

/// Splits a byte stream into `<page>` elements and calls `f` on each one. Pages over
/// `max_page` bytes are skipped (counted). A page cut off by the end of the stream is counted as
/// truncated. Returns the number of pages found (including dropped ones).
pub fn split_pages<R: Read>(
    mut r: R,
    max_page: usize,
    drops: &mut Drops,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> std::io::Result<u64> {
    const OPEN: &[u8] = b"<page>";
    const CLOSE: &[u8] = b"</page>";
    let open_f = memmem::Finder::new(OPEN);
    let close_f = memmem::Finder::new(CLOSE);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 21);
    let mut pos = 0usize; // scanned up to here
    let mut page_start: Option<usize> = None;
    let mut skipping = false; // inside an over-long page
    let mut pages = 0u64;
    let mut eof = false;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        // Consume what is in the buffer.
        loop {
            match page_start {
                None => match open_f.find(&buf[pos..]) {
                    Some(i) => {
                        page_start = Some(pos + i);
                        pos += i + OPEN.len();
                    }
                    None => {
                        pos = buf.len().saturating_sub(OPEN.len() - 1).max(pos);
                        break;
                    }
                },
                Some(s) => match close_f.find(&buf[pos..]) {
                    Some(i) => {
                        let e = pos + i + CLOSE.len();
                        pages += 1;
                        if skipping {
                            drops.inc(reason::TOO_LARGE);
                            skipping = false;
                        } else {
                            f(&buf[s..e]).map_err(std::io::Error::other)?;
                        }
                        page_start = None;
                        pos = e;
                    }
                    None => {
                        pos = buf.len().saturating_sub(CLOSE.len() - 1).max(pos);
                        if buf.len() - s > max_page && !skipping {
                            skipping = true;
                        }
                        break;
                    }
                },
            }
        }
        if eof {
            if page_start.is_some() {
                pages += 1;
                drops.inc(if skipping {
                    reason::TOO_LARGE
                } else {
                    reason::TRUNCATED
                });
            }
            return Ok(pages);
        }
        // Drop what is no longer needed, then read more.
        let keep_from = match page_start {
            Some(s) if skipping => {
                // Keep only the tail where `</page>` may start.
                let k = pos;
                page_start = Some(k);
                let _ = s;
                k
            }
            Some(s) => s,
            None => pos,
        };
        if keep_from > 0 {
            buf.drain(..keep_from);
            pos -= keep_from;
            if let Some(s) = page_start.as_mut() {
                *s -= keep_from;
            }
        }
        let n = loop {
            match r.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            eof = true;
        } else {
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A reader that counts the bytes read through it (shared, so it can be read after the reader
/// moved into a decoder).
pub struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let n = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                n: n.clone(),
            },
            n,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// What counting a dump (or part of one) saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DumpStats {
    /// `<page>` elements found.
    pub pages: u64,
    /// Pages whose text was counted (article namespaces, not redirects).
    pub articles: u64,
    pub redirects: u64,
    pub other_namespace: u64,
    /// Compressed bytes read (the file's bytes for plain XML).
    pub bytes_in: u64,
    /// Decompressed XML bytes.
    pub bytes_xml: u64,
    /// Plain-text bytes after cleaning.
    pub bytes_text: u64,
    pub tokens: u64,
    pub bigrams: u64,
    pub drops: Drops,
}

/// Counts the pages of a decompressed stream into `counter`.
pub struct PageCounter<'a> {
    pub counter: &'a mut Counter,
    pub stats: &'a mut DumpStats,
    pub namespaces: &'a [i64],
    pub max_page: usize,
    /// Blocks the bzip2 decoder chases at once (see [`crate::bz2::Decoder::with_lanes`]).
    pub bz2_lanes: usize,
    pub cancel: &'a dyn Fn() -> bool,
    pub progress: &'a dyn Fn(u64),
}

impl PageCounter<'_> {
    /// Counts every page of `r`; returns the pages found.
    pub fn run<R: Read>(&mut self, r: R) -> std::io::Result<u64> {
        let mut drops = Drops::default();
        let xml = Counting::new(r);
        let (xml, xml_bytes) = xml;
        let counter = &mut *self.counter;
        let stats = &mut *self.stats;
        let namespaces = self.namespaces;
        let cancel = self.cancel;
        let progress = self.progress;
        let mut since = 0u64;
        let pages = split_pages(xml, self.max_page, &mut drops, |b| {
            match parse_page(b) {
                Err(reason) => stats.drops.inc(reason),
                Ok(p) if p.redirect => stats.redirects += 1,
                Ok(p) if !namespaces.contains(&p.ns) => stats.other_namespace += 1,
                Ok(p) => {
                    stats.articles += 1;
                    let text = crate::wikitext::clean(&p.text);
                    stats.bytes_text += text.len() as u64;
                    counter.count_text(&text)?;
                }
            }
            since += 1;
            if since == 1000 {
                progress(since);
                since = 0;
                if cancel() {
                    return Err(QueriesError::Interrupted);
                }
            }
            Ok(())
        })?;
        progress(since);
        stats.pages += pages;
        stats.drops.merge(&drops);
        stats.bytes_xml += xml_bytes.load(Ordering::Relaxed);
        stats.tokens = counter.tokens;
        stats.bigrams = counter.bigrams;
        Ok(pages)
    }
}

/// The kind of a dump file, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpKind {
    Bzip2,
    Xml,
}

/// Sniffs a dump file: `BZh` is bzip2, `<` (after a BOM or spaces) is XML.
pub fn sniff(path: &Path) -> Result<DumpKind> {
    let mut f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        let k = f
            .read(&mut head[n..])
            .map_err(|e| QueriesError::io(path, e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let h = &head[..n];
    if h.starts_with(b"BZh") {
        // The XML inside must be UTF-8 too: look at the first bytes of the first stream.
        let mut inner = [0u8; 64];
        let mut m = 0;
        if let Ok(f) = File::open(path) {
            let mut d = bzip2::read::BzDecoder::new(std::io::BufReader::new(f));
            while m < inner.len() {
                match d.read(&mut inner[m..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => m += k,
                }
            }
        }
        check_not_utf16(path, &inner[..m])?;
        return Ok(DumpKind::Bzip2);
    }
    check_not_utf16(path, h)?;
    let t = h.strip_prefix(b"\xef\xbb\xbf").unwrap_or(h);
    if t.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<') {
        return Ok(DumpKind::Xml);
    }
    Err(QueriesError::Input {
        path: path.to_path_buf(),
        line: 1,
        msg: "neither bzip2 (BZh) nor XML".into(),
        fix:
            "give an English Wikipedia pages-articles dump: .xml, .xml.bz2 or -multistream.xml.bz2"
                .into(),
    })
}

/// Wikimedia publishes dumps in UTF-8; a dump saved as UTF-16 (a byte-order mark, or every other
/// byte NUL) would be counted as garbage: refuse it and say how to convert it.
fn check_not_utf16(path: &Path, head: &[u8]) -> Result<()> {
    let bom = head.starts_with(b"\xff\xfe") || head.starts_with(b"\xfe\xff");
    let nuls = head.len() >= 8 && head.iter().filter(|&&b| b == 0).count() * 3 >= head.len();
    if bom || nuls {
        return Err(QueriesError::Input {
            path: path.to_path_buf(),
            line: 1,
            msg: "the XML is UTF-16; Wikipedia dumps are UTF-8".into(),
            fix: "convert it: `bzcat DUMP | iconv -f UTF-16 -t UTF-8 | bzip2 > DUMP-utf8.xml.bz2` \
                  (or use the dump as Wikimedia publishes it)"
                .into(),
        });
    }
    Ok(())
}

/// The streams of a multistream dump: byte offset and number of pages, in file order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamIndex {
    pub offsets: Vec<u64>,
    pub pages: Vec<u64>,
}

/// The index file that belongs to a multistream dump, if it exists:
/// `X-multistream.xml.bz2` -> `X-multistream-index.txt.bz2` (or `.txt`).
pub fn index_for(dump: &Path) -> Option<PathBuf> {
    let name = dump.file_name()?.to_str()?;
    let stem = name.strip_suffix(".xml.bz2")?;
    if !stem.contains("multistream") {
        return None;
    }
    ["-index.txt.bz2", "-index.txt"]
        .iter()
        .map(|s| dump.with_file_name(format!("{stem}{s}")))
        .find(|p| p.is_file())
}

/// Reads a multistream index (`offset:page_id:title` lines, bzip2, gzip or plain).
pub fn read_index(path: &Path) -> Result<StreamIndex> {
    let mut lines = Lines::open(path, "download the index file again")?;
    let mut idx = StreamIndex::default();
    let mut n = 0usize;
    while let Some(line) = lines.next_line()? {
        n += 1;
        let colon = memchr::memchr(b':', line);
        let off = colon
            .and_then(|c| std::str::from_utf8(&line[..c]).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| QueriesError::Input {
                path: path.to_path_buf(),
                line: n,
                msg: "expected `offset:page_id:title`".into(),
                fix: "give the `-multistream-index.txt.bz2` that belongs to the dump".into(),
            })?;
        match idx.offsets.last() {
            Some(&last) if last == off => *idx.pages.last_mut().unwrap_or(&mut 0) += 1,
            Some(&last) if off < last => {
                return Err(QueriesError::Input {
                    path: path.to_path_buf(),
                    line: n,
                    msg: format!("offset {off} goes backwards (previous {last})"),
                    fix: "give the `-multistream-index.txt.bz2` that belongs to the dump".into(),
                });
            }
            _ => {
                idx.offsets.push(off);
                idx.pages.push(1);
            }
        }
    }
    Ok(idx)
}

/// Counts the streams `[first, last)` of a multistream dump (bytes `offsets[i]..offsets[i+1]`,
/// the final one to `end`). A corrupt stream is skipped and counted with the pages it held.
///
/// One decoder runs through consecutive streams (it decodes several blocks at once, across
/// stream boundaries, see [`crate::bz2`]); it is restarted at the index's offset after a corrupt
/// stream, or where a stream does not end where the index says the next one starts.
pub fn count_streams(
    path: &Path,
    streams: &[(u64, u64)],
    end: u64,
    pc: &mut PageCounter<'_>,
) -> Result<()> {
    let lanes = pc.bz2_lanes;
    let open_at = |off: u64| -> Result<crate::bz2::Decoder<std::io::Take<File>>> {
        let mut f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
        f.seek(SeekFrom::Start(off))
            .map_err(|e| QueriesError::io(path, e))?;
        Ok(crate::bz2::Decoder::with_lanes(
            f.take(end.saturating_sub(off)),
            lanes,
        ))
    };
    // The decoder and the file offset it started at.
    let mut dec: Option<(u64, crate::bz2::Decoder<std::io::Take<File>>)> = None;
    for (i, &(off, pages)) in streams.iter().enumerate() {
        let next = streams.get(i + 1).map(|s| s.0).unwrap_or(end);
        let at = dec
            .as_ref()
            .map(|(base, d)| base + d.last_stream_end().unwrap_or(0));
        let d = match &mut dec {
            Some((_, d)) if at == Some(off) => d,
            _ => &mut dec.insert((off, open_at(off)?)).1,
        };
        let before = pc.stats.pages;
        let res = pc.run(crate::bz2::Stream(d));
        pc.stats.bytes_in += next - off;
        match res {
            Ok(_) => {}
            Err(e) if e.get_ref().is_some_and(|i| i.is::<QueriesError>()) => {
                let inner = e
                    .into_inner()
                    .and_then(|b| b.downcast::<QueriesError>().ok());
                return Err(inner.map(|b| *b).unwrap_or(QueriesError::Interrupted));
            }
            Err(e) => {
                dec = None;
                let seen = pc.stats.pages - before;
                tracing::warn!(file = %path.display(), offset = off, error = %e, "skipping a corrupt bzip2 stream");
                pc.stats.drops.inc(reason::CORRUPT_STREAM);
                pc.stats
                    .drops
                    .add(reason::PAGES_IN_CORRUPT_STREAM, pages.saturating_sub(seen));
            }
        }
    }
    Ok(())
}

/// Counts a whole file streamed: single-stream (or multistream without index) bzip2, or XML.
/// A decoding error is an error naming the file and the compressed byte offset.
pub fn count_file(path: &Path, kind: DumpKind, pc: &mut PageCounter<'_>) -> Result<()> {
    let f = File::open(path).map_err(|e| QueriesError::io(path, e))?;
    let (raw, read) = Counting::new(f);
    let res = match kind {
        DumpKind::Bzip2 => pc.run(crate::bz2::Decoder::with_lanes(raw, pc.bz2_lanes)),
        DumpKind::Xml => pc.run(BufReader::with_capacity(1 << 16, raw)),
    };
    let at = read.load(Ordering::Relaxed);
    pc.stats.bytes_in += at;
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.get_ref().is_some_and(|i| i.is::<QueriesError>()) => {
            let inner = e
                .into_inner()
                .and_then(|b| b.downcast::<QueriesError>().ok());
            Err(inner.map(|b| *b).unwrap_or(QueriesError::Interrupted))
        }
        Err(e) => Err(QueriesError::Broken {
            path: path.to_path_buf(),
            offset: at,
            msg: format!("{e} (decoded {} pages before it)", pc.stats.pages),
            fix:
                "the file is damaged or truncated: download it again (`bzip2 -t FILE` checks it); \
                  a multistream dump with its index file skips a damaged stream instead"
                    .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<page>\n    <title>Dog &amp; cat</title>\n    <ns>0</ns>\n    <id>7</id>\n    <revision>\n      <id>1</id>\n      <text bytes=\"20\" xml:space=\"preserve\">A &lt;b&gt;dog&lt;/b&gt; &#233;</text>\n    </revision>\n  </page>";

    #[test]
    fn parses_a_page() {
        let p = parse_page(PAGE.as_bytes()).unwrap();
        assert_eq!(p.title, "Dog & cat");
        assert_eq!(p.ns, 0);
        assert!(!p.redirect);
        assert_eq!(p.text, "A <b>dog</b> \u{e9}");
        let r = PAGE.replace("<id>7</id>", "<id>7</id><redirect title=\"Dog\" />");
        assert!(parse_page(r.as_bytes()).unwrap().redirect);
        let bad = PAGE.replace("&lt;b&gt;", "<b>");
        assert_eq!(parse_page(bad.as_bytes()), Err(reason::MALFORMED_XML));
        let bad = PAGE.replace("&#233;", "&eacute;");
        assert_eq!(parse_page(bad.as_bytes()), Err(reason::MALFORMED_XML));
        let mut bytes = PAGE.as_bytes().to_vec();
        let i = PAGE.find("dog").unwrap();
        bytes[i] = 0xff;
        assert_eq!(parse_page(&bytes), Err(reason::INVALID_UTF8));
        let empty = PAGE.replace(
            "<text bytes=\"20\" xml:space=\"preserve\">A &lt;b&gt;dog&lt;/b&gt; &#233;</text>",
            "<text bytes=\"0\" />",
        );
        assert_eq!(parse_page(empty.as_bytes()).unwrap().text, "");
    }

    #[test]
    fn splits_pages_across_reads_and_counts_truncation() {
        let doc = format!("<mediawiki>\n  {PAGE}\n  {PAGE}\n  {}", &PAGE[..40]);
        // A reader that returns 7 bytes at a time.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(7).min(b.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut drops = Drops::default();
        let mut got = Vec::new();
        let n = split_pages(Slow(doc.as_bytes()), 1 << 20, &mut drops, |b| {
            got.push(b.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], PAGE.as_bytes());
        assert_eq!(drops.get(reason::TRUNCATED), 1);
        // Over-long pages are skipped, the next one is read.
        let big = PAGE.replace("Dog", &"x".repeat(5000));
        let doc = format!("{big}{PAGE}");
        let mut drops = Drops::default();
        let mut got = 0;
        split_pages(Slow(doc.as_bytes()), 1000, &mut drops, |_| {
            got += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((got, drops.get(reason::TOO_LARGE)), (1, 1));
    }

    /// One decoder runs through a task's streams; where the index skips a stream (or a stream
    /// is corrupt) it restarts at the index's next offset, so only the listed streams count.
    #[test]
    fn count_streams_follows_the_index_offsets() {
        use crate::testdata::{PageSpec, page_xml};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.xml.bz2");
        let mut file = Vec::new();
        let mut offsets = Vec::new();
        for (s, word) in ["alpha", "beta", "gamma", "delta"].iter().enumerate() {
            offsets.push(file.len() as u64);
            let mut xml = String::new();
            for k in 0..3u64 {
                let p = PageSpec::article(s as u64 * 10 + k, &format!("T{s}{k}"), word);
                xml.push_str(&page_xml(&p));
            }
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(1));
            e.write_all(xml.as_bytes()).unwrap();
            let mut z = e.finish().unwrap();
            if s == 3 {
                z[12] ^= 0x40; // the block CRC: a corrupt last stream
            }
            file.extend(z);
        }
        std::fs::write(&path, &file).unwrap();
        let mut counter = Counter::new(1 << 24, dir.path());
        let mut stats = DumpStats::default();
        let mut pc = PageCounter {
            counter: &mut counter,
            stats: &mut stats,
            namespaces: &[0],
            max_page: 1 << 20,
            bz2_lanes: 3,
            cancel: &|| false,
            progress: &|_| {},
        };
        // The index lists streams 0, 2 and 3 (not 1).
        let streams = [(offsets[0], 3), (offsets[2], 3), (offsets[3], 3)];
        count_streams(&path, &streams, file.len() as u64, &mut pc).unwrap();
        assert_eq!(stats.articles, 6);
        assert_eq!(stats.drops.get(reason::CORRUPT_STREAM), 1);
        assert_eq!(stats.drops.get(reason::PAGES_IN_CORRUPT_STREAM), 3);
        assert_eq!(stats.bytes_in, file.len() as u64 - offsets[0]);
        assert_eq!(counter.tokens, 6);
    }
}

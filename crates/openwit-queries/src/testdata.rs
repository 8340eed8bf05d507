//! Writers of MediaWiki export dumps in the real formats (single-stream and multistream bzip2
//! with the index file), used by the tests, the bench script's generator and to build the
//! bundled demo dump. Nothing here is read by the stage itself.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bzip2::Compression;
use bzip2::write::BzEncoder;

/// A page to write.
#[derive(Debug, Clone)]
pub struct PageSpec {
    pub id: u64,
    pub title: String,
    pub ns: i64,
    pub redirect: Option<String>,
    pub text: String,
}

impl PageSpec {
    pub fn article(id: u64, title: &str, text: &str) -> Self {
        PageSpec {
            id,
            title: title.into(),
            ns: 0,
            redirect: None,
            text: text.into(),
        }
    }
}

/// Escapes XML character content (`openwit_core::escape::html`).
pub use openwit_core::escape::html as escape;

/// The `<mediawiki>` opening and `<siteinfo>` of an English Wikipedia export.
pub const HEADER: &str = r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.11/ http://www.mediawiki.org/xml/export-0.11.xsd" version="0.11" xml:lang="en">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>enwiki</dbname>
    <base>https://en.wikipedia.org/wiki/Main_Page</base>
    <generator>MediaWiki 1.45.0-wmf.1</generator>
    <case>first-letter</case>
    <namespaces>
      <namespace key="-2" case="first-letter">Media</namespace>
      <namespace key="-1" case="first-letter">Special</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Talk</namespace>
      <namespace key="2" case="first-letter">User</namespace>
      <namespace key="4" case="first-letter">Wikipedia</namespace>
      <namespace key="6" case="first-letter">File</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>
"#;

/// One `<page>` element as the export writes it.
pub fn page_xml(p: &PageSpec) -> String {
    let redirect = p
        .redirect
        .as_ref()
        .map(|r| format!("    <redirect title=\"{}\" />\n", escape(r)))
        .unwrap_or_default();
    format!(
        "  <page>\n    <title>{title}</title>\n    <ns>{ns}</ns>\n    <id>{id}</id>\n{redirect}    <revision>\n      <id>{rev}</id>\n      <parentid>{parent}</parentid>\n      <timestamp>2024-05-01T12:00:00Z</timestamp>\n      <contributor>\n        <username>OpenWIT</username>\n        <id>1</id>\n      </contributor>\n      <model>wikitext</model>\n      <format>text/x-wiki</format>\n      <text bytes=\"{bytes}\" sha1=\"0000000000000000000000000000000\" xml:space=\"preserve\">{text}</text>\n      <sha1>0000000000000000000000000000000</sha1>\n    </revision>\n  </page>\n",
        title = escape(&p.title),
        ns = p.ns,
        id = p.id,
        rev = p.id * 10 + 1,
        parent = p.id * 10,
        bytes = p.text.len(),
        text = escape(&p.text),
    )
}

fn bz(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = BzEncoder::new(Vec::new(), Compression::best());
    e.write_all(data)?;
    e.finish()
}

/// Writes a single-stream `.xml.bz2` dump (or plain XML if `path` ends in `.xml`).
pub fn write_single(path: &Path, pages: &[PageSpec]) -> std::io::Result<()> {
    let mut xml = String::from(HEADER);
    for p in pages {
        xml.push_str(&page_xml(p));
    }
    xml.push_str("</mediawiki>\n");
    if path.extension().is_some_and(|e| e == "xml") {
        std::fs::write(path, xml)
    } else {
        std::fs::write(path, bz(xml.as_bytes())?)
    }
}

/// The index path of a multistream dump path (`X-multistream.xml.bz2` ->
/// `X-multistream-index.txt.bz2`).
pub fn index_path(dump: &Path) -> PathBuf {
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".xml.bz2").unwrap_or(&name);
    dump.with_file_name(format!("{stem}-index.txt.bz2"))
}

/// Streams a multistream dump to disk page by page, as Wikimedia writes them: the header in its
/// own stream, then `per_stream` pages per bzip2 stream, then `</mediawiki>` in the last stream;
/// the index lists `offset:id:title` per page.
pub struct MultistreamWriter {
    out: BufWriter<File>,
    index: BzEncoder<BufWriter<File>>,
    offset: u64,
    per_stream: usize,
    pending: String,
    pending_index: Vec<(u64, String)>,
    level: Compression,
}

impl MultistreamWriter {
    pub fn create(path: &Path, per_stream: usize, level: Compression) -> std::io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let idx = BufWriter::new(File::create(index_path(path))?);
        let head = {
            let mut e = BzEncoder::new(Vec::new(), level);
            e.write_all(HEADER.as_bytes())?;
            e.finish()?
        };
        out.write_all(&head)?;
        Ok(MultistreamWriter {
            out,
            index: BzEncoder::new(idx, level),
            offset: head.len() as u64,
            per_stream: per_stream.max(1),
            pending: String::new(),
            pending_index: Vec::new(),
            level,
        })
    }

    pub fn push(&mut self, p: &PageSpec) -> std::io::Result<()> {
        self.pending.push_str(&page_xml(p));
        self.pending_index.push((p.id, p.title.clone()));
        if self.pending_index.len() >= self.per_stream {
            self.flush_stream(false)?;
        }
        Ok(())
    }

    /// Writes the raw bytes of a stream (tests use it to plant a corrupt stream).
    pub fn flush_stream_with(&mut self, f: impl FnOnce(Vec<u8>) -> Vec<u8>) -> std::io::Result<()> {
        let data = {
            let mut e = BzEncoder::new(Vec::new(), self.level);
            e.write_all(self.pending.as_bytes())?;
            e.finish()?
        };
        let data = f(data);
        for (id, title) in self.pending_index.drain(..) {
            writeln!(self.index, "{}:{id}:{title}", self.offset)?;
        }
        self.out.write_all(&data)?;
        self.offset += data.len() as u64;
        self.pending.clear();
        Ok(())
    }

    fn flush_stream(&mut self, last: bool) -> std::io::Result<()> {
        if last {
            self.pending.push_str("</mediawiki>\n");
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush_stream_with(|d| d)
    }

    /// Writes the last stream and the index.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush_stream(true)?;
        self.out.flush()?;
        self.index.finish()?.flush()?;
        Ok(())
    }
}

/// Writes a multistream dump and its index.
pub fn write_multistream(
    path: &Path,
    pages: &[PageSpec],
    per_stream: usize,
) -> std::io::Result<()> {
    let mut w = MultistreamWriter::create(path, per_stream, Compression::best())?;
    for p in pages {
        w.push(p)?;
    }
    w.finish()
}

/// A deterministic generator of article-like wikitext over a Zipf-ish vocabulary, for
/// benchmarks and scale tests.
pub struct ArticleGen {
    state: u64,
    vocab: Vec<String>,
}

impl ArticleGen {
    pub fn new(seed: u64, vocab_size: usize) -> Self {
        let mut g = ArticleGen {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            vocab: Vec::new(),
        };
        const SYL: &[&str] = &[
            "ka", "lo", "mi", "ne", "ru", "ta", "ve", "so", "pi", "da", "gen", "tor", "bal", "fin",
            "rus", "mel", "dor", "san", "lin", "qua",
        ];
        for i in 0..vocab_size {
            let n = 1 + (i % 3) + usize::from(i > 1000);
            let mut w = String::new();
            for _ in 0..n {
                w.push_str(SYL[g.next() as usize % SYL.len()]);
            }
            if i % 7 == 0 {
                w[..1].make_ascii_uppercase();
            }
            g.vocab.push(w);
        }
        g
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn word_index(&mut self) -> usize {
        // Zipf-like: the cube of a uniform draw favours small ranks.
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let r = ((u * u * u) * self.vocab.len() as f64) as usize;
        r.min(self.vocab.len() - 1)
    }

    fn word(&mut self) -> &str {
        let i = self.word_index();
        &self.vocab[i]
    }

    /// An article of about `words` words with an infobox, links, refs, a table and a category.
    pub fn article(&mut self, title: &str, words: usize) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(words * 12 + 256);
        let first = self.word_index();
        let _ = write!(
            s,
            "{{{{Infobox thing\n| name = {title}\n| image = {title}.jpg\n| caption = A {{{{lang|la|{}}}}}\n}}}}\n'''{title}''' is a ",
            self.vocab[first]
        );
        let mut n = 0;
        while n < words {
            let k = self.next() % 20;
            let wi = self.word_index();
            let w = self.vocab[wi].as_str();
            let _ = match k {
                0 => write!(s, "[[{w}]] "),
                1 => write!(s, "[[{w} (thing)|{w}]] "),
                2 => write!(
                    s,
                    "{w}.<ref name=\"r{n}\">{{{{cite web|url=http://example.org/{w}|title={w}}}}}</ref> "
                ),
                3 => write!(s, "{w}, "),
                4 => write!(s, "{w}.\n\n"),
                5 if n % 97 == 0 => write!(s, "\n== {w} ==\n"),
                6 if n % 89 == 0 => write!(
                    s,
                    "\n{{| class=\"wikitable\"\n|-\n! {w} !! value\n|-\n| {w} || 12\n|}}\n"
                ),
                _ => {
                    s.push_str(w);
                    s.push(' ');
                    Ok(())
                }
            };
            n += 1;
        }
        s.push_str(&format!(
            "\n\n== References ==\n{{{{Reflist}}}}\n\n[[Category:{}]]\n",
            self.word()
        ));
        s
    }
}

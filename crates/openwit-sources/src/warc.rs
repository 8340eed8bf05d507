//! WARC and WAT reading, streamed: gzip member by member (or a plain `.warc`), one record at a
//! time with bounded memory. Records that fail to parse are reported and skipped (the next
//! gzip member, or the next `WARC/` line in a plain file); a truncated file yields the records
//! read before the break and then [`Event::Truncated`] with the offset of the broken member.
//!
//! ```
//! use openwit_sources::warc::{Event, WarcReader};
//! let rec = b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n";
//! let mut r = WarcReader::new(&rec[..], false);
//! match r.next() { Some(Event::Record(rec)) => assert_eq!(rec.body, b"hi"), _ => panic!() }
//! assert!(r.next().is_none());
//! ```

use std::io::{self, BufRead, BufReader, Read};

/// Largest header block of one record; longer is a parse failure.
pub const MAX_HEADER_BYTES: usize = 256 << 10;
/// Bytes of a record body kept; the rest is skipped (`Record::body_truncated`).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// One WARC record.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// WARC named fields in order (names as written).
    pub headers: Vec<(String, String)>,
    /// The block (at most [`MAX_BODY_BYTES`]).
    pub body: Vec<u8>,
    /// Whether the block was longer than kept.
    pub body_truncated: bool,
    /// Offset of the record (compressed offset of its gzip member, or byte offset in a plain file).
    pub offset: u64,
}

impl Record {
    /// The first value of a named field (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn warc_type(&self) -> &str {
        self.header("WARC-Type").unwrap_or("")
    }
}

/// What the reader yields.
#[derive(Debug)]
pub enum Event {
    Record(Record),
    /// A record (or gzip member) that could not be parsed, skipped.
    Bad {
        offset: u64,
        reason: String,
    },
    /// The file ends in the middle of a record or gzip member; nothing follows.
    Truncated {
        offset: u64,
        error: String,
    },
}

/// A `BufRead` that counts consumed bytes (the compressed offset).
struct Counting<R> {
    inner: BufReader<R>,
    pos: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
impl<R: Read> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.pos += amt as u64;
        self.inner.consume(amt)
    }
}

/// The decoder's input: the raw stream while a gzip member is decoded, nothing in between
/// (the raw stream is then in [`State::Raw`]). Lets one decoder be reset and reused for every
/// member instead of building a decoder and its buffer per member (one per record in Common
/// Crawl files).
struct Slot<R>(Option<Counting<R>>);

impl<R: Read> Read for Slot<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(r) => r.read(buf),
            None => Ok(0),
        }
    }
}
impl<R: Read> BufRead for Slot<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match &mut self.0 {
            Some(r) => r.fill_buf(),
            None => Ok(&[]),
        }
    }
    fn consume(&mut self, amt: usize) {
        if let Some(r) = &mut self.0 {
            r.consume(amt)
        }
    }
}

enum State<R: Read> {
    /// Between gzip members (or the plain stream).
    Raw(Counting<R>),
    /// Inside a gzip member that starts at this offset; the raw stream is in the decoder.
    Member(u64),
    Done,
}

type Decoder<R> = BufReader<flate2::bufread::GzDecoder<Slot<R>>>;

/// Streams records out of a WARC or WAT file (gzip member by member when `gzip`).
pub struct WarcReader<R: Read> {
    state: State<R>,
    /// The gzip decoder and its 64 KiB output buffer, reset for each member.
    dec: Decoder<R>,
    gzip: bool,
    /// Plain files: byte offset of the decoded stream.
    plain_pos: u64,
}

fn is_eof_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

impl<R: Read> WarcReader<R> {
    pub fn new(inner: R, gzip: bool) -> Self {
        WarcReader {
            state: State::Raw(Counting {
                inner: BufReader::with_capacity(1 << 16, inner),
                pos: 0,
            }),
            dec: BufReader::with_capacity(
                if gzip { 1 << 16 } else { 0 },
                flate2::bufread::GzDecoder::new(Slot(None)),
            ),
            gzip,
            plain_pos: 0,
        }
    }

    /// Takes the raw stream back from the decoder at the end of a member (or after a failure),
    /// dropping what the decoder still buffers.
    fn take_raw(&mut self) -> Option<Counting<R>> {
        let buffered = self.dec.buffer().len();
        self.dec.consume(buffered);
        self.dec.get_mut().reset(Slot(None)).0
    }

    fn next_gzip(&mut self) -> Option<Event> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return None,
                State::Raw(mut raw) => {
                    match raw.fill_buf() {
                        Ok([]) => return None,
                        Ok(_) => {}
                        Err(e) => {
                            return Some(Event::Truncated {
                                offset: raw.pos,
                                error: e.to_string(),
                            });
                        }
                    }
                    let off = raw.pos;
                    // `reset` clears the header parser, CRC and inflate state; the buffer
                    // in front of the decoder is empty (the last member was read to its end).
                    self.dec.get_mut().reset(Slot(Some(raw)));
                    self.state = State::Member(off);
                }
                State::Member(off) => {
                    // skip blank lines between records
                    match skip_blank(&mut self.dec) {
                        Ok(true) => {}
                        Ok(false) => {
                            // end of member
                            self.state = self.take_raw().map_or(State::Done, State::Raw);
                            continue;
                        }
                        Err(e) => return Some(self.member_failed(off, e)),
                    }
                    match read_record(&mut self.dec, off) {
                        Ok(Ok(rec)) => {
                            self.state = State::Member(off);
                            return Some(Event::Record(rec));
                        }
                        Ok(Err(reason)) => {
                            // unparseable record: skip the rest of this member
                            let mut sink = io::sink();
                            match io::copy(&mut self.dec, &mut sink) {
                                Ok(_) => {
                                    self.state = self.take_raw().map_or(State::Done, State::Raw)
                                }
                                Err(e) => return Some(self.member_failed(off, e)),
                            }
                            return Some(Event::Bad {
                                offset: off,
                                reason,
                            });
                        }
                        Err(e) => return Some(self.member_failed(off, e)),
                    }
                }
            }
        }
    }

    /// A gzip member failed to decode: truncated at the end of the file, or corrupt (then
    /// resynchronize on the next gzip magic).
    fn member_failed(&mut self, off: u64, e: io::Error) -> Event {
        self.state = State::Done;
        let Some(mut raw) = self.take_raw() else {
            return Event::Truncated {
                offset: off,
                error: e.to_string(),
            };
        };
        let at_end = matches!(raw.fill_buf(), Ok([]));
        if is_eof_error(&e) || at_end {
            return Event::Truncated {
                offset: off,
                error: e.to_string(),
            };
        }
        // scan for the next member header 1f 8b 08
        loop {
            let buf = match raw.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(b) => b,
            };
            let n = buf.len();
            if let Some(p) = memchr::memmem::find(buf, b"\x1f\x8b\x08") {
                raw.consume(p);
                self.state = State::Raw(raw);
                break;
            }
            // Keep the last 2 bytes for the next round unless the buffer is that short (a
            // magic that straddles two buffer fills is missed: at most one more member lost).
            raw.consume(if n > 2 { n - 2 } else { n });
        }
        Event::Bad {
            offset: off,
            reason: format!("corrupt gzip member: {e}"),
        }
    }

    fn next_plain(&mut self) -> Option<Event> {
        let State::Raw(raw) = &mut self.state else {
            return None;
        };
        let start = self.plain_pos;
        match skip_blank(raw) {
            Ok(true) => {}
            Ok(false) => {
                self.state = State::Done;
                return None;
            }
            Err(e) => {
                self.state = State::Done;
                return Some(Event::Truncated {
                    offset: start,
                    error: e.to_string(),
                });
            }
        }
        let before = raw.pos;
        let res = read_record(raw, before);
        match res {
            Ok(Ok(rec)) => {
                self.plain_pos = raw.pos;
                Some(Event::Record(rec))
            }
            Ok(Err(reason)) => {
                // resynchronize on the next line that starts with "WARC/"
                let mut line = Vec::new();
                while let Ok(buf) = raw.fill_buf() {
                    if buf.is_empty() || buf.starts_with(b"WARC/") {
                        break;
                    }
                    line.clear();
                    if raw.take(1 << 20).read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        break;
                    }
                }
                self.plain_pos = raw.pos;
                Some(Event::Bad {
                    offset: before,
                    reason,
                })
            }
            Err(e) => {
                self.state = State::Done;
                Some(Event::Truncated {
                    offset: before,
                    error: e.to_string(),
                })
            }
        }
    }
}

impl<R: Read> Iterator for WarcReader<R> {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        if self.gzip {
            self.next_gzip()
        } else {
            self.next_plain()
        }
    }
}

/// Skips blank lines (`\r\n`); returns whether data follows.
fn skip_blank(r: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let n = buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if n == 0 {
            return Ok(true);
        }
        r.consume(n);
    }
}

/// Reads one record. `Ok(Err(reason))`: malformed header (data consumed up to the problem);
/// `Err`: an I/O error (a truncated stream gives `UnexpectedEof`).
fn read_record(r: &mut impl BufRead, offset: u64) -> io::Result<Result<Record, String>> {
    let mut line = Vec::with_capacity(128);
    let mut total = 0usize;
    let mut read_line = |r: &mut dyn BufRead, line: &mut Vec<u8>| -> io::Result<usize> {
        line.clear();
        let n = r
            .take((MAX_HEADER_BYTES + 1) as u64)
            .read_until(b'\n', line)?;
        total += n;
        Ok(n)
    };
    if read_line(r, &mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "end of data before a record",
        ));
    }
    if !line.starts_with(b"WARC/") {
        return Ok(Err("missing WARC/ version line".into()));
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(16);
    loop {
        let n = read_line(r, &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of data inside the WARC headers",
            ));
        }
        if !line.ends_with(b"\n") {
            return Ok(Err("WARC header line too long".into()));
        }
        let l = line.trim_ascii_end();
        if l.is_empty() {
            break;
        }
        if (l[0] == b' ' || l[0] == b'\t') && !headers.is_empty() {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1
                .push_str(String::from_utf8_lossy(l.trim_ascii()).as_ref());
            continue;
        }
        let Some(colon) = memchr::memchr(b':', l) else {
            return Ok(Err(format!(
                "malformed WARC header line `{}`",
                String::from_utf8_lossy(&l[..l.len().min(80)])
            )));
        };
        headers.push((
            String::from_utf8_lossy(l[..colon].trim_ascii()).into_owned(),
            String::from_utf8_lossy(l[colon + 1..].trim_ascii()).into_owned(),
        ));
        if headers.len() > 1000 {
            return Ok(Err("too many WARC header fields".into()));
        }
    }
    let _ = total;
    let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    else {
        return Ok(Err("missing or invalid Content-Length".into()));
    };
    let keep = len.min(MAX_BODY_BYTES as u64);
    let mut body = Vec::with_capacity(keep as usize);
    let got = r.take(keep).read_to_end(&mut body)? as u64;
    if got < keep {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "end of data inside a record body",
        ));
    }
    let rest = len - keep;
    if rest > 0 {
        let skipped = io::copy(&mut r.take(rest), &mut io::sink())?;
        if skipped < rest {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of data inside a record body",
            ));
        }
    }
    Ok(Ok(Record {
        headers,
        body,
        body_truncated: rest > 0,
        offset,
    }))
}

/// Parses a WARC-Date (`2024-03-01T12:34:56Z`, optional fraction) into ms since the epoch.
pub fn parse_warc_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut ms = 0i64;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &frac[digits.len()..];
        let d3 = format!("{:0<3}", &digits[..digits.len().min(3)]);
        ms = d3.parse().ok()?;
    }
    if rest != "Z" {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rec(ty: &str, body: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "WARC/1.0\r\nWARC-Type: {ty}\r\nWARC-Target-URI: http://e.com/\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        v.extend_from_slice(body);
        v.extend_from_slice(b"\r\n\r\n");
        v
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Record(r) => format!("rec:{}", String::from_utf8_lossy(&r.body)),
                Event::Bad { .. } => "bad".into(),
                Event::Truncated { .. } => "truncated".into(),
            })
            .collect()
    }

    #[test]
    fn gzip_members_bad_member_and_truncation() {
        let mut file = Vec::new();
        file.extend(gz(&rec("warcinfo", b"one")));
        file.extend(gz(&rec("response", b"two")));
        file.extend(gz(b"NOT A WARC RECORD\r\n\r\n"));
        let third = file.len() as u64;
        file.extend(gz(&rec("response", b"three")));
        let fourth = file.len() as u64;
        file.extend(gz(&rec("response", b"four and some more bytes")));
        let evs: Vec<Event> = WarcReader::new(&file[..], true).collect();
        assert_eq!(
            kinds(&evs),
            [
                "rec:one",
                "rec:two",
                "bad",
                "rec:three",
                "rec:four and some more bytes"
            ]
        );
        match &evs[3] {
            Event::Record(r) => assert_eq!(r.offset, third),
            _ => unreachable!(),
        }
        // cut in the middle of the last member
        let cut = &file[..(fourth as usize + file.len()) / 2];
        let evs: Vec<Event> = WarcReader::new(cut, true).collect();
        assert_eq!(
            kinds(&evs),
            ["rec:one", "rec:two", "bad", "rec:three", "truncated"]
        );
        match &evs[4] {
            Event::Truncated { offset, .. } => assert_eq!(*offset, fourth),
            _ => unreachable!(),
        }
    }

    #[test]
    fn corrupt_member_resyncs_on_next_member() {
        let mut file = Vec::new();
        file.extend(gz(&rec("response", b"one")));
        let mut bad = gz(&rec("response", b"two two two two two two two two"));
        for b in bad.iter_mut().skip(12).take(12) {
            *b ^= 0x5a;
        }
        file.extend(bad);
        file.extend(gz(&rec("response", b"three")));
        let evs: Vec<Event> = WarcReader::new(&file[..], true).collect();
        let k = kinds(&evs);
        assert_eq!(k.first().map(String::as_str), Some("rec:one"));
        assert_eq!(k.last().map(String::as_str), Some("rec:three"), "{k:?}");
        assert!(k.contains(&"bad".to_string()));
    }

    #[test]
    fn single_member_many_records_and_plain() {
        let mut plain = Vec::new();
        for i in 0..5 {
            plain.extend(rec("response", format!("r{i}").as_bytes()));
        }
        let evs: Vec<Event> = WarcReader::new(&gz(&plain)[..], true).collect();
        assert_eq!(
            kinds(&evs),
            ["rec:r0", "rec:r1", "rec:r2", "rec:r3", "rec:r4"]
        );
        // plain file with garbage in the middle resyncs on the next WARC/ line
        let mut p2 = rec("response", b"a");
        p2.extend(b"garbage line\r\nmore garbage\r\n");
        p2.extend(rec("response", b"b"));
        let evs: Vec<Event> = WarcReader::new(&p2[..], false).collect();
        assert_eq!(kinds(&evs), ["rec:a", "bad", "rec:b"]);
        // truncated plain file
        let evs: Vec<Event> = WarcReader::new(&plain[..plain.len() - 6], false).collect();
        assert_eq!(
            kinds(&evs),
            ["rec:r0", "rec:r1", "rec:r2", "rec:r3", "truncated"]
        );
    }

    #[test]
    fn big_bodies_are_capped() {
        let body = vec![b'x'; MAX_BODY_BYTES + 100];
        let mut file = gz(&rec("response", &body));
        file.extend(gz(&rec("response", b"next")));
        let evs: Vec<Event> = WarcReader::new(&file[..], true).collect();
        match &evs[0] {
            Event::Record(r) => {
                assert!(r.body_truncated);
                assert_eq!(r.body.len(), MAX_BODY_BYTES);
            }
            _ => panic!(),
        }
        assert_eq!(kinds(&evs[1..]), ["rec:next"]);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_warc_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_warc_date("2024-03-01T12:34:56Z"),
            Some(1_709_296_496_000)
        );
        assert_eq!(
            parse_warc_date("2024-03-01T12:34:56.5Z"),
            Some(1_709_296_496_500)
        );
        assert_eq!(parse_warc_date("2024-13-01T12:34:56Z"), None);
        assert_eq!(parse_warc_date("yesterday"), None);
    }
}

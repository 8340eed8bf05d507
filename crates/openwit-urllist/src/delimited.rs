//! CSV (RFC 4180) and TSV records, byte by byte.
//!
//! CSV: fields are separated by `,`; a field that starts with `"` is quoted, `""` inside it is one
//! `"`, and it may hold commas and line breaks; a `"` inside an unquoted field is an ordinary
//! character (as every common reader takes it). Records end at LF, CR LF or a lone CR. Blank
//! lines are not records. Two RFC 4180 violations break a record, and each is a counted drop
//! whose following rows are kept: text after a closing quote (`"a"b`, `bad_quote`), and a quoted
//! field still open at the end of the file or longer than [`crate::MAX_RECORD_BYTES`]
//! (`unterminated_quote`). In both cases the record is dropped and reading goes on at the line
//! after the one where the broken quoted field opened, so an unterminated quote swallows nothing
//! but its own record.
//!
//! TSV (IANA `text/tab-separated-values`): one record per line, fields separated by tabs, no
//! quoting (a `"` is an ordinary character).

use crate::text::ByteSource;
use crate::{Drop, MAX_RECORD_BYTES};

/// One record: its fields (as byte ranges of `data`) or what broke it.
pub(crate) struct Record {
    pub offset: u64,
    pub line: u64,
    pub problem: Option<(Drop, String)>,
}

pub(crate) struct Delimited {
    pub src: ByteSource,
    delim: u8,
    quoting: bool,
    /// The current record's field bytes, concatenated; `ends[i]` is where field i ends.
    pub data: Vec<u8>,
    pub ends: Vec<usize>,
    /// The current record's raw bytes, kept to re-read them after a broken quote.
    raw: Vec<u8>,
    /// The I/O error has been returned as a record.
    error_reported: bool,
}

enum Step {
    /// The field ended at a delimiter: another follows.
    Field,
    /// The record ended (line break or end of the stream).
    End,
}

impl Delimited {
    pub fn new(src: ByteSource, tsv: bool) -> Self {
        Delimited {
            src,
            delim: if tsv { b'\t' } else { b',' },
            quoting: !tsv,
            data: Vec::new(),
            ends: Vec::new(),
            raw: Vec::new(),
            error_reported: false,
        }
    }

    pub fn field(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    #[inline]
    fn bump(&mut self) -> Option<u8> {
        let b = self.src.bump()?;
        self.raw.push(b);
        Some(b)
    }

    /// The next record; `None` at the end of the stream.
    pub fn next_record(&mut self) -> Option<Record> {
        // Blank lines are not records.
        loop {
            match self.src.peek() {
                None => {
                    if let Some(e) = &self.src.error
                        && !self.error_reported
                    {
                        self.error_reported = true;
                        return Some(Record {
                            offset: self.src.offset,
                            line: self.src.line,
                            problem: Some((
                                Drop::TruncatedFile,
                                format!("the file breaks off here: {e}"),
                            )),
                        });
                    }
                    return None;
                }
                Some(b @ (b'\n' | b'\r')) => {
                    self.src.bump();
                    self.src.finish_break(b);
                }
                Some(_) => break,
            }
        }
        let offset = self.src.offset;
        let line = self.src.line;
        self.data.clear();
        self.ends.clear();
        self.raw.clear();
        loop {
            let step = if self.quoting && self.src.peek() == Some(b'"') {
                match self.quoted(offset) {
                    Ok(s) => s,
                    Err(problem) => {
                        return Some(Record {
                            offset,
                            line,
                            problem: Some(problem),
                        });
                    }
                }
            } else {
                match self.unquoted() {
                    Some(s) => s,
                    None => {
                        return Some(Record {
                            offset,
                            line,
                            problem: Some((
                                Drop::RecordTooLong,
                                format!("a record longer than {MAX_RECORD_BYTES} bytes"),
                            )),
                        });
                    }
                }
            };
            self.ends.push(self.data.len());
            if let Step::End = step {
                break;
            }
        }
        let ended_at_break = matches!(self.raw.last(), Some(b'\n' | b'\r'));
        if !ended_at_break && self.src.error.is_some() && !self.error_reported {
            // The stream broke inside this record: it may be cut short.
            self.error_reported = true;
            let e = self.src.error.clone().unwrap_or_default();
            return Some(Record {
                offset,
                line,
                problem: Some((
                    Drop::TruncatedFile,
                    format!("the file breaks off in this record: {e}"),
                )),
            });
        }
        Some(Record {
            offset,
            line,
            problem: None,
        })
    }

    /// An unquoted field; `None` when the record grows past the limit (the rest of its line is
    /// skipped).
    fn unquoted(&mut self) -> Option<Step> {
        loop {
            match self.src.peek() {
                None => return Some(Step::End),
                Some(b) if b == self.delim => {
                    self.bump();
                    return Some(Step::Field);
                }
                Some(b @ (b'\n' | b'\r')) => {
                    self.bump();
                    self.src.finish_break(b);
                    return Some(Step::End);
                }
                Some(b) => {
                    self.bump();
                    self.data.push(b);
                    if self.raw.len() > MAX_RECORD_BYTES {
                        self.skip_line();
                        return None;
                    }
                }
            }
        }
    }

    /// Skips to the start of the next line.
    fn skip_line(&mut self) {
        while let Some(b) = self.src.bump() {
            if b == b'\n' || b == b'\r' {
                self.src.finish_break(b);
                return;
            }
        }
    }

    /// A quoted field (the next byte is its opening quote). A broken one is returned as the
    /// record's problem, after the stream has been set to the line after the quote's.
    fn quoted(&mut self, record_offset: u64) -> Result<Step, (Drop, String)> {
        let quote_at = self.raw.len();
        let quote_line = self.src.line;
        self.bump();
        loop {
            let Some(b) = self.bump() else {
                if let Some(e) = &self.src.error {
                    self.error_reported = true;
                    return Err((
                        Drop::TruncatedFile,
                        format!("the file breaks off inside a quoted field: {e}"),
                    ));
                }
                let swallowed = self.src.line - quote_line;
                self.recover(quote_at, quote_line, record_offset);
                return Err((
                    Drop::UnterminatedQuote,
                    format!(
                        "the quoted field opened on line {quote_line} is never closed (it would run to the end of the file, {swallowed} more lines); reading goes on at line {}",
                        quote_line + 1
                    ),
                ));
            };
            if b != b'"' {
                self.data.push(b);
                if self.raw.len() > MAX_RECORD_BYTES {
                    self.recover(quote_at, quote_line, record_offset);
                    return Err((
                        Drop::UnterminatedQuote,
                        format!(
                            "the quoted field opened on line {quote_line} runs past {MAX_RECORD_BYTES} bytes; reading goes on at line {}",
                            quote_line + 1
                        ),
                    ));
                }
                continue;
            }
            match self.src.peek() {
                Some(b'"') => {
                    self.bump();
                    self.data.push(b'"');
                }
                Some(d) if d == self.delim => {
                    self.bump();
                    return Ok(Step::Field);
                }
                Some(b @ (b'\n' | b'\r')) => {
                    self.bump();
                    self.src.finish_break(b);
                    return Ok(Step::End);
                }
                None => return Ok(Step::End),
                Some(c) => {
                    let at_line = self.src.line;
                    self.recover(quote_at, quote_line, record_offset);
                    return Err((
                        Drop::BadQuote,
                        format!(
                            "text after the closing quote on line {at_line} ({}) of the quoted field opened on line {quote_line}; a quote inside a quoted field is written \"\"",
                            describe(c)
                        ),
                    ));
                }
            }
        }
    }

    /// Drops the current record: reading goes on after the line break that follows the quote at
    /// `raw[quote_at]` (the bytes read past it are put back), or after the current line if the
    /// quote's line has not ended yet.
    fn recover(&mut self, quote_at: usize, quote_line: u64, record_offset: u64) {
        let tail = &self.raw[quote_at..];
        match tail.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(p) => {
                let mut resume = quote_at + p + 1;
                if self.raw[resume - 1] == b'\r' {
                    if resume < self.raw.len() {
                        if self.raw[resume] == b'\n' {
                            resume += 1;
                        }
                    } else if self.src.peek() == Some(b'\n') {
                        self.bump();
                        resume = self.raw.len();
                    }
                }
                let rest = self.raw[resume..].to_vec();
                let offset = record_offset + resume as u64;
                if !rest.is_empty() || self.src.offset != offset {
                    self.src.replay(&rest, offset, quote_line + 1);
                } else {
                    self.src.line = quote_line + 1;
                }
            }
            None => self.skip_line(),
        }
    }
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

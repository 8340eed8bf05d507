//! JSON Lines (one object per line) and JSON arrays of objects, cut into one slice per row before
//! any is parsed, so a broken row is one counted drop and the rows after it are still read.

use crate::text::ByteSource;
use crate::{Drop, MAX_RECORD_BYTES};

/// JSON's whitespace (RFC 8259): space, tab, LF, CR.
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub(crate) fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_ws(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_ws(*last)
    {
        s = rest;
    }
    s
}

/// One row's bytes (`text`), or what broke it.
pub(crate) struct Slice {
    pub offset: u64,
    pub line: u64,
    pub problem: Option<(Drop, String)>,
}

/// JSON Lines: rows are lines (LF; a CR before it is whitespace); blank lines are not rows.
pub(crate) struct Lines {
    pub src: ByteSource,
    pub text: Vec<u8>,
    error_reported: bool,
}

impl Lines {
    pub fn new(src: ByteSource) -> Self {
        Lines {
            src,
            text: Vec::new(),
            error_reported: false,
        }
    }

    pub fn next_slice(&mut self) -> Option<Slice> {
        loop {
            if self.src.peek().is_none() {
                if let Some(e) = &self.src.error
                    && !self.error_reported
                {
                    self.error_reported = true;
                    return Some(Slice {
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
            let offset = self.src.offset;
            let line = self.src.line;
            self.text.clear();
            let mut too_long = false;
            let mut ended = false;
            while let Some(b) = self.src.bump() {
                if b == b'\n' {
                    ended = true;
                    break;
                }
                if self.text.len() < MAX_RECORD_BYTES {
                    self.text.push(b);
                } else {
                    too_long = true;
                }
            }
            if !ended
                && !self.error_reported
                && let Some(e) = &self.src.error
            {
                self.error_reported = true;
                return Some(Slice {
                    offset,
                    line,
                    problem: Some((
                        Drop::TruncatedFile,
                        format!("the file breaks off in this line: {e}"),
                    )),
                });
            }
            if too_long {
                return Some(Slice {
                    offset,
                    line,
                    problem: Some((
                        Drop::RecordTooLong,
                        format!("a line longer than {MAX_RECORD_BYTES} bytes"),
                    )),
                });
            }
            if trim_ws(&self.text).is_empty() {
                continue;
            }
            return Some(Slice {
                offset,
                line,
                problem: None,
            });
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// After `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    After,
    Done,
}

/// A JSON array: rows are its elements, cut at top-level commas (strings and nesting tracked).
pub(crate) struct Array {
    pub src: ByteSource,
    pub text: Vec<u8>,
    state: State,
}

impl Array {
    /// `src` is positioned just after the opening `[`, or at an element's first byte (a reader
    /// resumed at a recorded offset): either way no separator comes first.
    pub fn new(src: ByteSource) -> Self {
        Array {
            src,
            text: Vec::new(),
            state: State::First,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.src.peek() {
            if !is_ws(b) {
                break;
            }
            self.src.bump();
        }
    }

    fn end_of_stream(&mut self, what: &str) -> Option<Slice> {
        self.state = State::Done;
        let msg = match &self.src.error {
            Some(e) => format!("the file breaks off {what}: {e}"),
            None => format!("the file ends {what} (no closing `]`)"),
        };
        Some(Slice {
            offset: self.src.offset,
            line: self.src.line,
            problem: Some((Drop::TruncatedFile, msg)),
        })
    }

    /// Every entry starts at a distinct offset and a reader resumed there (state `First`) reads
    /// the same entry: after a `,` the reader is in that very state, a stray `}` and the text
    /// after `]` are reported where a resumed reader finds them (found by fuzzing: a `}` or the
    /// end of the file right after a `,` gave an empty element and an error at one offset).
    pub fn next_slice(&mut self) -> Option<Slice> {
        if self.state == State::Done {
            return None;
        }
        self.skip_ws();
        let first = self.state == State::First;
        match self.src.peek() {
            None => return self.end_of_stream("inside the array"),
            Some(b']') => {
                let (offset, line) = (self.src.offset, self.src.line);
                self.src.bump();
                self.state = State::Done;
                self.skip_ws();
                if self.src.peek().is_some() {
                    return Some(Slice {
                        offset,
                        line,
                        problem: Some((
                            Drop::MalformedJson,
                            "text after the closing `]` of the array (ignored)".into(),
                        )),
                    });
                }
                return None;
            }
            Some(b'}') => {
                self.state = State::Done;
                return Some(Slice {
                    offset: self.src.offset,
                    line: self.src.line,
                    problem: Some((
                        Drop::MalformedJson,
                        "a `}` that closes no object, where `,`, `]` or an element should be; the rest of the file is not read".into(),
                    )),
                });
            }
            Some(b',') if !first => {
                // what follows a separator reads as it does for a reader resumed there: an
                // element, or `]` (a trailing comma, tolerated), or the end of the file
                self.src.bump();
                self.state = State::First;
                return self.next_slice();
            }
            Some(c) if !first => {
                self.state = State::Done;
                return Some(Slice {
                    offset: self.src.offset,
                    line: self.src.line,
                    problem: Some((
                        Drop::MalformedJson,
                        format!(
                            "expected `,` or `]` after an element, found `{}`; the rest of the file is not read",
                            c.escape_ascii()
                        ),
                    )),
                });
            }
            Some(_) => {}
        }
        self.state = State::After;
        let offset = self.src.offset;
        let line = self.src.line;
        self.text.clear();
        let (mut depth, mut in_str, mut esc, mut too_long) = (0usize, false, false, false);
        loop {
            let Some(b) = self.src.peek() else {
                if depth == 0 && !in_str && self.src.error.is_none() {
                    // An element that ends the file without `]`: read it, then report the end.
                    break;
                }
                self.state = State::Done;
                let msg = match &self.src.error {
                    Some(e) => format!("the file breaks off inside this element: {e}"),
                    None if in_str => "a string in this element is never closed".to_string(),
                    None => "this element is never closed".to_string(),
                };
                return Some(Slice {
                    offset,
                    line,
                    problem: Some((Drop::TruncatedFile, msg)),
                });
            };
            if in_str {
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                }
            } else {
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => break,
                    b'}' | b']' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            self.src.bump();
            if self.text.len() < MAX_RECORD_BYTES {
                self.text.push(b);
            } else {
                too_long = true;
            }
        }
        if too_long {
            return Some(Slice {
                offset,
                line,
                problem: Some((
                    Drop::RecordTooLong,
                    format!("an element longer than {MAX_RECORD_BYTES} bytes"),
                )),
            });
        }
        Some(Slice {
            offset,
            line,
            problem: None,
        })
    }
}

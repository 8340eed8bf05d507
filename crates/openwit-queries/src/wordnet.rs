//! WordNet synset names, as NLTK gives them, in NLTK's `all_synsets()` order.
//!
//! Two inputs:
//! - a WordNet 3.0 database folder (`data.adj`, `data.adv`, `data.noun`, `data.verb`; Debian's
//!   `wordnet-base` installs one at `/usr/share/wordnet`). NLTK reads the files in that order
//!   (`adj` first: its `_FILEMAP`), each line in file order, adjective satellites (`s`) with the
//!   adjectives. A synset's name is its first lemma, lower-cased, with an adjective marker
//!   (`(a)`, `(p)`, `(ip)`) removed;
//! - Open English WordNet's WN-LMF XML (`english-wordnet-2024.xml`, optionally `.gz`): a synset's
//!   name is the written form of its first member (the `members` attribute, else the first sense
//!   that points at it), lower-cased; synsets in the same part-of-speech order (a/s, r, n, v),
//!   document order within.
//!
//! The query entry is the name up to its first `.` with `_` turned into a space, as MetaCLIP's
//! `build_metadata.py` does (`dog.n.01` -> `dog`, `st._john's_wort` -> `st`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::error::QueriesError;

/// One synset: its part of speech (`n`, `v`, `a`, `s`, `r`) and NLTK's lemma name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synset {
    pub pos: char,
    /// The first lemma as NLTK names the synset: lower-cased, marker removed, `_` kept.
    pub lemma: String,
}

impl Synset {
    /// The query entry: the lemma up to its first `.`, `_` -> space.
    pub fn entry(&self) -> String {
        let name = match self.lemma.find('.') {
            Some(i) => &self.lemma[..i],
            None => &self.lemma,
        };
        name.replace('_', " ")
    }
}

/// The data files in NLTK's order.
pub const DATA_FILES: &[&str] = &["data.adj", "data.adv", "data.noun", "data.verb"];

/// Removes a trailing adjective marker (`(a)`, `(p)`, `(ip)`), as NLTK's `(.*?)(\(.*\))?$`.
pub fn strip_marker(lemma: &str) -> &str {
    if lemma.ends_with(')')
        && let Some(i) = lemma.find('(')
    {
        return &lemma[..i];
    }
    lemma
}

/// Parses one data-file line into a synset. Header lines (starting with spaces) give `Ok(None)`.
///
/// Line format (wndb(5)): `offset lex_filenum ss_type w_cnt word lex_id [word lex_id...]
/// p_cnt [ptr...] [frames...] | gloss`, with `w_cnt` two hex digits.
pub fn parse_data_line(line: &str) -> Result<Option<Synset>, String> {
    if line.starts_with(' ') || line.trim().is_empty() {
        return Ok(None);
    }
    let mut f = line.split(' ');
    let offset = f.next().unwrap_or("");
    if offset.len() != 8 || !offset.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("synset offset `{offset}` is not 8 digits"));
    }
    let lex = f.next().ok_or("missing lex_filenum")?;
    if lex.parse::<u32>().is_err() {
        return Err(format!("lex_filenum `{lex}` is not a number"));
    }
    let pos = f.next().ok_or("missing ss_type")?;
    let pos = match pos {
        "n" | "v" | "a" | "s" | "r" => pos.chars().next().unwrap_or('n'),
        other => return Err(format!("ss_type `{other}` is not one of n, v, a, s, r")),
    };
    let w_cnt = f.next().ok_or("missing w_cnt")?;
    let w_cnt =
        u32::from_str_radix(w_cnt, 16).map_err(|_| format!("w_cnt `{w_cnt}` is not hex"))?;
    if w_cnt == 0 {
        return Err("w_cnt is 0: a synset has at least one word".into());
    }
    let word = f.next().ok_or("missing the first word")?;
    let lex_id = f.next().ok_or("missing the first lex_id")?;
    if u32::from_str_radix(lex_id, 16).is_err() {
        return Err(format!("lex_id `{lex_id}` is not hex"));
    }
    if !line.contains(" | ") && !line.trim_end().ends_with('|') {
        return Err("no ` | ` before the gloss".into());
    }
    Ok(Some(Synset {
        pos,
        lemma: strip_marker(word).to_lowercase(),
    }))
}

/// Reads a WordNet database folder (the four `data.*` files, all required).
pub fn read_wndb(dir: &Path) -> Result<Vec<Synset>, QueriesError> {
    let mut out = Vec::new();
    for name in DATA_FILES {
        let path = dir.join(name);
        let f = std::fs::File::open(&path).map_err(|e| QueriesError::Io {
            path: path.clone(),
            source: e,
        })?;
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        let mut n = 0usize;
        loop {
            line.clear();
            let got = r
                .read_until(b'\n', &mut line)
                .map_err(|e| QueriesError::Io {
                    path: path.clone(),
                    source: e,
                })?;
            if got == 0 {
                break;
            }
            n += 1;
            let text = std::str::from_utf8(&line).map_err(|_| QueriesError::Input {
                path: path.clone(),
                line: n,
                msg: "not UTF-8".into(),
                fix: "WordNet 3.0 data files are ASCII; is this the right file?".into(),
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            match parse_data_line(text) {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(msg) => {
                    return Err(QueriesError::Input {
                        path: path.clone(),
                        line: n,
                        msg,
                        fix: "give a WordNet 3.0 database folder (data.noun, data.verb, data.adj, \
                              data.adv in the wndb(5) format), e.g. /usr/share/wordnet"
                            .into(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn lmf_pos_rank(p: char) -> u8 {
    match p {
        'a' | 's' => 0,
        'r' => 1,
        'n' => 2,
        'v' => 3,
        _ => 4,
    }
}

/// Reads Open English WordNet's WN-LMF XML (plain, gzip or bzip2, by its first bytes).
pub fn read_lmf(path: &Path) -> Result<Vec<Synset>, QueriesError> {
    use quick_xml::events::Event;
    let raw = crate::lines::open(path)?;
    let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(1 << 16, raw));
    let mut buf = Vec::new();
    // entry id -> written form; synset id -> (pos, members, first sense entry); synset order.
    let mut entry_form: HashMap<String, String> = HashMap::new();
    let mut cur_entry: Option<String> = None;
    let mut synsets: Vec<(String, char, Vec<String>)> = Vec::new();
    let mut first_sense: HashMap<String, String> = HashMap::new();
    let bad = |reader: &quick_xml::Reader<_>, msg: String| QueriesError::Input {
        path: path.to_path_buf(),
        line: 0,
        msg: format!("at byte {}: {msg}", reader_pos(reader)),
        fix: "give an Open English WordNet WN-LMF file (english-wordnet-YYYY.xml[.gz])".into(),
    };
    fn reader_pos<R>(r: &quick_xml::Reader<R>) -> u64 {
        r.buffer_position()
    }
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(&reader, e.to_string()))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let attr = |name: &[u8]| -> Option<String> {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                };
                match e.name().as_ref() {
                    b"LexicalEntry" => cur_entry = attr(b"id"),
                    b"Lemma" => {
                        if let (Some(id), Some(form)) = (cur_entry.clone(), attr(b"writtenForm")) {
                            entry_form.entry(id).or_insert(form);
                        }
                    }
                    b"Sense" => {
                        if let (Some(id), Some(ss)) = (cur_entry.clone(), attr(b"synset")) {
                            first_sense.entry(ss).or_insert(id);
                        }
                    }
                    b"Synset" => {
                        let id = attr(b"id")
                            .ok_or_else(|| bad(&reader, "a Synset without id".into()))?;
                        let pos = attr(b"partOfSpeech")
                            .and_then(|p| p.chars().next())
                            .unwrap_or('n');
                        let members = attr(b"members")
                            .map(|m| m.split_whitespace().map(str::to_string).collect())
                            .unwrap_or_default();
                        synsets.push((id, pos, members));
                    }
                    _ => {}
                }
            }
            Event::End(ref e) if e.name().as_ref() == b"LexicalEntry" => cur_entry = None,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let mut out: Vec<(u8, usize, Synset)> = Vec::with_capacity(synsets.len());
    for (i, (id, pos, members)) in synsets.into_iter().enumerate() {
        let entry = members
            .first()
            .cloned()
            .or_else(|| first_sense.get(&id).cloned());
        let Some(form) = entry.and_then(|e| entry_form.get(&e).cloned()) else {
            continue; // a synset without lexical entries has no name
        };
        let lemma = strip_marker(&form.replace(' ', "_")).to_lowercase();
        out.push((lmf_pos_rank(pos), i, Synset { pos, lemma }));
    }
    out.sort_by_key(|(r, i, _)| (*r, *i));
    Ok(out.into_iter().map(|(_, _, s)| s).collect())
}

/// Reads a WordNet source: a database folder or a WN-LMF file.
pub fn read_source(path: &Path) -> Result<Vec<Synset>, QueriesError> {
    if path.is_dir() {
        read_wndb(path)
    } else {
        read_lmf(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_as_nltk_names_them() {
        let l = "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | a member of the genus Canis";
        let s = parse_data_line(l).unwrap().unwrap();
        assert_eq!(s.pos, 'n');
        assert_eq!(s.lemma, "dog");
        let l = "00001740 00 a 01 able 0 005 = 05207437 n 0000 | (usually followed by `to') having the necessary means";
        assert_eq!(parse_data_line(l).unwrap().unwrap().entry(), "able");
        // An adjective marker and a satellite.
        let l = "00019731 00 s 02 used_to(p) 0 wont_to(p) 0 001 & 00019131 a 0000 | in the habit";
        let s = parse_data_line(l).unwrap().unwrap();
        assert_eq!(
            (s.pos, s.lemma.as_str(), s.entry().as_str()),
            ('s', "used_to", "used to")
        );
        // Capitals are lower-cased; the name stops at the first period.
        let l = "10998305 18 n 02 Einstein 0 Albert_Einstein 0 001 @i 10505613 n 0000 | physicist";
        assert_eq!(parse_data_line(l).unwrap().unwrap().entry(), "einstein");
        let l = "12345678 20 n 01 St._John's_wort 0 000 | a plant";
        assert_eq!(parse_data_line(l).unwrap().unwrap().entry(), "st");
        assert_eq!(
            parse_data_line("  1 This software and database").unwrap(),
            None
        );
        assert!(parse_data_line("dog n 01").is_err());
    }
}

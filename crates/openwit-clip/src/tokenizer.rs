//! CLIP's byte-level BPE tokenizer, as OpenAI released it and open_clip's `SimpleTokenizer` runs it.
//!
//! Vocabulary 49,408 = 256 byte symbols + their 256 `</w>` variants + 48,894 merges +
//! `<start_of_text>` (49406) + `<end_of_text>` (49407). Text cleaning before BPE: ftfy's
//! `fix_text` (the fixes that apply to well-formed text: HTML entities, C1 controls, ligatures,
//! full-width forms, curly quotes, line breaks, terminal escapes, control characters, NFC), HTML
//! unescaping twice, whitespace collapsing, lower-casing. ftfy's mojibake repair (text that was
//! UTF-8 decoded as Latin-1/Windows-1252) is not reproduced: such captions can tokenize
//! differently from open_clip.
//!
//! No Rust crate reproduces open_clip's cleaning (ftfy + double HTML unescape), so this is our
//! own implementation of the published algorithm; the merges file is OpenAI's
//! `bpe_simple_vocab_16e6.txt.gz`, which `scripts/setup-libtorch.sh` takes from the
//! `open_clip_torch` wheel (it is not in this repository).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::error::{ClipError, IoAt, Result};

/// `<start_of_text>`.
pub const SOT: i64 = 49406;
/// `<end_of_text>`.
pub const EOT: i64 = 49407;
/// Tokens per caption in OpenAI's models.
pub const CONTEXT_LENGTH: usize = 77;
const N_MERGES: usize = 49152 - 256 - 2;
const CACHE_MAX: usize = 1 << 16;

/// The environment variable naming the merges file (`bpe_simple_vocab_16e6.txt.gz`).
pub const VOCAB_ENV: &str = "OPENWIT_CLIP_VOCAB";

/// CLIP's tokenizer. Cheap to share between threads (`&self` everywhere).
pub struct Tokenizer {
    byte_encoder: [char; 256],
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    pat: Regex,
    entity: Regex,
    ansi: Regex,
    cache: Mutex<HashMap<String, Vec<i64>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.encoder.len())
            .finish()
    }
}

/// GPT-2's reversible byte -> printable character map.
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (b as u8, char::from_u32(c).unwrap()))
        .collect()
}

impl Tokenizer {
    /// Finds the merges file: `$OPENWIT_CLIP_VOCAB`, else the copy `scripts/setup-libtorch.sh`
    /// puts in its cache folder.
    pub fn default_vocab_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os(VOCAB_ENV) {
            return Ok(PathBuf::from(p));
        }
        let cache = std::env::var_os("OPENWIT_LIBTORCH_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/openwit/libtorch"))
            });
        if let Some(c) = cache {
            let p = c.join("bpe_simple_vocab_16e6.txt.gz");
            if p.exists() {
                return Ok(p);
            }
        }
        Err(ClipError::Config(format!(
            "CLIP's BPE merges file was not found; run `eval \"$(scripts/setup-libtorch.sh)\"` (it sets {VOCAB_ENV}) or set `vocab` in the [train]/[eval] table to a bpe_simple_vocab_16e6.txt.gz"
        )))
    }

    /// Loads the tokenizer from `$OPENWIT_CLIP_VOCAB` or the setup script's cache.
    pub fn from_default() -> Result<Tokenizer> {
        Tokenizer::from_file(&Tokenizer::default_vocab_path()?)
    }

    /// Loads `bpe_simple_vocab_16e6.txt.gz` (or its uncompressed text).
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let raw = std::fs::read(path).at(path)?;
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .at(path)?;
            s
        } else {
            String::from_utf8(raw).map_err(|_| {
                ClipError::Config(format!(
                    "{}: the BPE merges file is not UTF-8",
                    path.display()
                ))
            })?
        };
        Tokenizer::from_merges_text(&text)
            .map_err(|m| ClipError::Config(format!("{}: {m}", path.display())))
    }

    /// Builds the tokenizer from the merges file's text (first line a header, then `a b` pairs).
    pub fn from_merges_text(text: &str) -> std::result::Result<Tokenizer, String> {
        let merges: Vec<(String, String)> = text
            .split('\n')
            .skip(1)
            .take(N_MERGES)
            .enumerate()
            .map(|(i, l)| {
                let mut it = l.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => Err(format!(
                        "line {}: expected a merge `a b`, found {l:?}",
                        i + 2
                    )),
                }
            })
            .collect::<std::result::Result<_, _>>()?;
        if merges.len() != N_MERGES {
            return Err(format!(
                "{} merges, CLIP's vocabulary has {N_MERGES}; is this bpe_simple_vocab_16e6.txt.gz?",
                merges.len()
            ));
        }
        let b2u = bytes_to_unicode();
        let mut byte_encoder = ['\0'; 256];
        for (b, c) in &b2u {
            byte_encoder[*b as usize] = *c;
        }
        let mut vocab: Vec<String> = b2u.iter().map(|(_, c)| c.to_string()).collect();
        vocab.extend(b2u.iter().map(|(_, c)| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<start_of_text>".into());
        vocab.push("<end_of_text>".into());
        let encoder = vocab
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i as i64))
            .collect();
        let ranks = merges
            .into_iter()
            .enumerate()
            .map(|(i, m)| (m, i))
            .collect();
        Ok(Tokenizer {
            byte_encoder,
            encoder,
            ranks,
            pat: Regex::new(
                r"<start_of_text>|<end_of_text>|(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+",
            )
            .unwrap(),
            entity: Regex::new(r"&#?[0-9A-Za-z]{1,24};").unwrap(),
            ansi: Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").unwrap(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Vocabulary size (49,408).
    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    fn bpe(&self, token: &str) -> Vec<i64> {
        if let Some(v) = self.cache.lock().unwrap().get(token) {
            return v.clone();
        }
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|w| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, w))
                })
                .min_by_key(|(r, _)| *r);
            let Some((_, pair)) = best else { break };
            let (first, second) = (pair[0].clone(), pair[1].clone());
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        let ids: Vec<i64> = word.iter().map(|w| self.encoder[w.as_str()]).collect();
        let mut cache = self.cache.lock().unwrap();
        if cache.len() < CACHE_MAX {
            cache.insert(token.to_string(), ids.clone());
        }
        ids
    }

    /// The token ids of `text` (without start/end tokens).
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let text = clean(self, text);
        let mut out = Vec::new();
        for m in self.pat.find_iter(&text) {
            let t = m.as_str();
            if t == "<start_of_text>" {
                out.push(SOT);
                continue;
            }
            if t == "<end_of_text>" {
                out.push(EOT);
                continue;
            }
            let enc: String = t.bytes().map(|b| self.byte_encoder[b as usize]).collect();
            out.extend(self.bpe(&enc));
        }
        out
    }

    /// `[SOT] + encode(text) + [EOT]`, truncated to `context` (the last kept token set to EOT)
    /// and zero-padded, as open_clip's `tokenize`.
    pub fn tokenize(&self, text: &str, context: usize) -> Vec<i64> {
        let mut t = Vec::with_capacity(context);
        t.push(SOT);
        t.extend(self.encode(text));
        t.push(EOT);
        if t.len() > context {
            t.truncate(context);
            t[context - 1] = EOT;
        }
        t.resize(context, 0);
        t
    }

    /// Tokenizes a batch into an `(N, context)` int64 tensor.
    pub fn tokenize_batch(&self, texts: &[String], context: usize) -> tch::Tensor {
        let flat: Vec<i64> = texts
            .iter()
            .flat_map(|t| self.tokenize(t, context))
            .collect();
        tch::Tensor::from_slice(&flat).reshape([texts.len() as i64, context as i64])
    }
}

/// open_clip's `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`.
fn clean(tok: &Tokenizer, text: &str) -> String {
    let t = fix_text(tok, text);
    let t = html_unescape(&html_unescape(&t));
    let t = python_split_join(python_strip(&t));
    t.to_lowercase()
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn python_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

fn python_split_join(s: &str) -> String {
    s.split(is_py_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `html.unescape` (HTML5 character references, with and without semicolons).
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    htmlize::unescape(s).into_owned()
}

/// The parts of ftfy 6's `fix_text` that apply to text that is not mojibake, per line, repeated
/// until nothing changes.
fn fix_text(tok: &Tokenizer, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&fix_segment(tok, line));
    }
    out
}

fn fix_segment(tok: &Tokenizer, seg: &str) -> String {
    let unescape = !seg.contains('<');
    let mut text = seg.to_string();
    loop {
        let orig = text.clone();
        if unescape {
            text = tok
                .entity
                .replace_all(&text, |c: &regex::Captures<'_>| ftfy_entity(&c[0]))
                .into_owned();
        }
        text = text.chars().map(c1_to_cp1252).collect();
        let mut t = String::with_capacity(text.len());
        for c in text.chars() {
            match ligature(c) {
                Some(s) => t.push_str(s),
                None => width(c, &mut t),
            }
        }
        text = t
            .chars()
            .map(|c| match c {
                '\u{02bc}' | '\u{2018}'..='\u{201b}' => '\'',
                '\u{201c}'..='\u{201f}' => '"',
                c => c,
            })
            .collect();
        text = text
            .replace("\r\n", "\n")
            .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n");
        text = tok.ansi.replace_all(&text, "").into_owned();
        text.retain(|c| !is_control(c));
        text = text.nfc().collect();
        if text == orig {
            return text;
        }
    }
}

/// ftfy's `_unescape_fixup`: named references ending in `;` (complete ones only), and numeric
/// ones unless they decode to a `;`.
fn ftfy_entity(m: &str) -> String {
    let u = htmlize::unescape(m);
    if m.starts_with("&#") {
        if u.contains(';') {
            m.to_string()
        } else {
            u.into_owned()
        }
    } else if complete_entity(m, &u) {
        u.into_owned()
    } else if u == m && m[1..].chars().any(|c| c.is_ascii_uppercase()) {
        // ftfy also decodes lower-case entities written in capitals (`&EACUTE;` -> `É`) when
        // the capitalized name is no entity itself.
        let lower = m.to_lowercase();
        let ul = htmlize::unescape(&lower);
        if complete_entity(&lower, &ul) {
            ul.to_uppercase()
        } else {
            m.to_string()
        }
    } else {
        m.to_string()
    }
}

/// Whether `m` (`&name;`) is a whole named reference that decodes to `u`: htmlize also decodes
/// a prefix (`&ampx;` -> `&x;`), which ftfy keeps as it is.
fn complete_entity(m: &str, u: &str) -> bool {
    u != m && (!u.ends_with(';') || m == "&semi;")
}

/// ftfy's `fix_c1_controls`: C1 control characters decoded as Windows-1252.
fn c1_to_cp1252(c: char) -> char {
    const MAP: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{0192}', '\u{201e}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02c6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8d}',
        '\u{017d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}',
        '\u{2013}', '\u{2014}', '\u{02dc}', '\u{2122}', '\u{0161}', '\u{203a}', '\u{0153}',
        '\u{9d}', '\u{017e}', '\u{0178}',
    ];
    if ('\u{80}'..='\u{9f}').contains(&c) {
        MAP[c as usize - 0x80]
    } else {
        c
    }
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy's `fix_character_width`: U+3000 -> space, U+FF01..U+FFEF -> their NFKC form.
fn width(c: char, out: &mut String) {
    if c == '\u{3000}' {
        out.push(' ');
    } else if ('\u{ff01}'..'\u{fff0}').contains(&c) {
        out.extend(std::iter::once(c).nfkc());
    } else {
        out.push(c);
    }
}

/// ftfy's `remove_control_chars`.
fn is_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{08}' | '\u{0b}' | '\u{0e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        let m = bytes_to_unicode();
        assert_eq!(m.len(), 256);
        let mut cs: Vec<char> = m.iter().map(|(_, c)| *c).collect();
        cs.sort();
        cs.dedup();
        assert_eq!(cs.len(), 256);
        assert_eq!(m[0], (b'!', '!'));
    }

    #[test]
    fn python_whitespace_rules() {
        assert_eq!(
            python_split_join(python_strip("  a\u{1c}b\t\n c\u{3000}")),
            "a b c"
        );
    }

    #[test]
    fn ftfy_entity_rules() {
        assert_eq!(ftfy_entity("&amp;"), "&");
        assert_eq!(ftfy_entity("&#233;"), "é");
        assert_eq!(ftfy_entity("&bogus;"), "&bogus;");
    }
}

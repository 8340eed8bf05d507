//! CLIP's byte-level BPE tokenizer, as OpenAI released it and open_clip's `SimpleTokenizer` runs it.
//!
//! Vocabulary 49,408 = 256 byte symbols + their 256 `</w>` variants + 48,894 merges +
//! `<start_of_text>` (49406) + `<end_of_text>` (49407). Text cleaning before BPE ([`clean`]):
//! ftfy 6.3's `fix_text` with its default options ([`crate::ftfy`]: HTML entities, terminal
//! escapes, mojibake repair, C1 controls, ligatures, full-width forms, curly quotes, line breaks,
//! control characters, NFC), Python's `html.unescape` twice, whitespace collapsing, lower-casing.
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

use crate::error::{ClipError, IoAt, Result};
use crate::ftfy;

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
            // open_clip compiles its pattern with IGNORECASE: that changes nothing for the
            // contractions of lower-cased text or the positive classes, but the negated class
            // excludes U+0345 (whose case folding is a letter), which then matches nothing.
            pat: Regex::new(
                r"<start_of_text>|<end_of_text>|(?i:'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|(?i:[^\s\p{L}\p{N}])+",
            )
            .unwrap(),
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
        let text = clean(text);
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

/// open_clip's `_clean_lower`: `whitespace_clean(basic_clean(text)).lower()`, where
/// `basic_clean` is ftfy's `fix_text`, Python's `html.unescape` twice and `strip`.
pub fn clean(text: &str) -> String {
    let t = ftfy::fix_text(text);
    let t = ftfy::html::unescape(&ftfy::html::unescape(&t));
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
    fn ypogegrammeni_is_no_token() {
        let tok = Tokenizer::from_merges_text(&format!("h\n{}", "a b\n".repeat(N_MERGES))).unwrap();
        let parts: Vec<&str> = tok
            .pat
            .find_iter("ab\u{345}c \u{345} x\u{345}\u{301} !")
            .map(|m| m.as_str())
            .collect();
        assert_eq!(parts, ["ab", "c", "x", "\u{301}", "!"]);
    }

    #[test]
    fn python_whitespace_rules() {
        assert_eq!(
            python_split_join(python_strip("  a\u{1c}b\t\n c\u{3000}")),
            "a b c"
        );
    }
}

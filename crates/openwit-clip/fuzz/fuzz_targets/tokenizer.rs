//! CLIP's tokenizer (`openwit-clip/src/tokenizer.rs`) on arbitrary captions: text cleaning (ftfy's
//! fixes, double HTML unescaping, whitespace, lower-casing), the pre-tokenizing regex, byte-level
//! BPE with the real merges file, and `tokenize`'s truncation to a context length.
//!
//! The tokenizer source is compiled here on its own (`#[path]`): the `openwit-clip` crate links
//! libtorch. Two stand-ins make it compile: `error` (the three items it imports from
//! `crate::error`) and `Tensor` (the return type of `tokenize_batch`, reached as `tch::Tensor`;
//! the target never calls it).
//!
//! Needs `bpe_simple_vocab_16e6.txt.gz`: `$OPENWIT_CLIP_VOCAB`, else
//! `~/.cache/openwit/libtorch/` where `scripts/setup-libtorch.sh` puts it.
#![no_main]

extern crate self as tch;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/tokenizer.rs"]
mod tokenizer;

/// The tokenizer's text cleaning (the ftfy 6.3 port), compiled from the crate's own files.
#[allow(dead_code)]
#[path = "../../src/ftfy/mod.rs"]
mod ftfy;

use tokenizer::{CONTEXT_LENGTH, EOT, SOT, Tokenizer};

/// Stand-in for `openwit_clip::error`: the same shapes, without tch.
mod error {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    #[allow(dead_code)]
    pub enum ClipError {
        Config(String),
        Io {
            path: PathBuf,
            source: std::io::Error,
        },
    }

    pub type Result<T, E = ClipError> = std::result::Result<T, E>;

    pub trait IoAt<T> {
        fn at(self, path: &Path) -> Result<T>;
    }

    impl<T> IoAt<T> for std::io::Result<T> {
        fn at(self, path: &Path) -> Result<T> {
            self.map_err(|source| ClipError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

/// Stand-in for `tch::Tensor` (only `tokenize_batch` names it; never called here).
pub struct Tensor;

impl Tensor {
    pub fn from_slice(_: &[i64]) -> Tensor {
        Tensor
    }
    pub fn reshape(self, _: [i64; 2]) -> Tensor {
        self
    }
}

fn tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        Tokenizer::from_default()
            .unwrap_or_else(|e| panic!("the fuzz target needs CLIP's merges file: {e:?}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tok();
    let vocab = t.vocab_size() as i64;
    assert_eq!(vocab, 49408);
    let text = String::from_utf8_lossy(data);

    let ids = t.encode(&text);
    assert!(ids.iter().all(|&i| (0..vocab).contains(&i)), "{ids:?}");
    // the BPE cache gives what a fresh computation gave
    assert_eq!(t.encode(&text), ids);

    // CLIP's context, the smallest ones, and both sides of the truncation boundary
    for ctx in [CONTEXT_LENGTH, 1, 2, ids.len() + 1, ids.len() + 2] {
        let row = t.tokenize(&text, ctx);
        assert_eq!(row.len(), ctx);
        if ctx >= 2 {
            assert_eq!(row[0], SOT);
        }
        if ids.len() + 2 <= ctx {
            // not truncated: SOT, the ids, EOT, zeros
            assert_eq!(&row[1..=ids.len()], &ids[..]);
            assert_eq!(row[ids.len() + 1], EOT);
            assert!(row[ids.len() + 2..].iter().all(|&i| i == 0));
        } else if ctx >= 2 {
            // truncated: the first ids, then the end token kept as the last one
            assert_eq!(&row[1..ctx - 1], &ids[..ctx - 2]);
            assert_eq!(row[ctx - 1], EOT);
        } else {
            assert_eq!(row, [EOT]);
        }
    }

    // a merges file that is not CLIP's is an error, never a panic
    if data.len() < 4096 {
        assert!(Tokenizer::from_merges_text(&text).is_err());
    }
});

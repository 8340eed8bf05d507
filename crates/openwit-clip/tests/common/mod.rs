//! Shared helpers: running the Python reference (open_clip_torch) for parity tests, reading
//! safetensors, whether CLIP's vocabulary is here.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder with torch + open_clip_torch for Python (`scripts/setup-libtorch.sh --python`
/// prints it as `OPENWIT_CLIP_PYTHONPATH`). Without it the parity tests are skipped, except in
/// CI (`CI` set), where they fail.
pub fn python_path() -> Option<PathBuf> {
    match std::env::var_os("OPENWIT_CLIP_PYTHONPATH") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the parity tests: eval \"$(scripts/setup-libtorch.sh --python)\" first"
            );
            eprintln!("OPENWIT_CLIP_PYTHONPATH is not set: skipping the open_clip parity test");
            None
        }
    }
}

/// Runs `tests/py/openclip_ref.py ARGS` with the reference environment.
pub fn reference(py: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/openclip_ref.py");
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .args(args)
        .env("PYTHONPATH", py)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("cannot run python3");
    assert!(
        out.status.success(),
        "the open_clip reference failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a safetensors file into a name -> tensor map.
pub fn read(path: &Path) -> std::collections::HashMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// The largest absolute difference.
pub fn max_diff(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Whether CLIP's vocabulary is here (`OPENWIT_CLIP_VOCAB`); tests that tokenize return early
/// without it, except in CI (`CI` set), where they fail.
pub fn have_vocab() -> bool {
    let ok = openwit_clip::Tokenizer::default_vocab_path().is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have the vocabulary"
    );
    ok
}

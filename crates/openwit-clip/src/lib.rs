//! `openwit-clip`: the bundled CLIP trainer (tch / libtorch 2.11) and zero-shot evaluation.
//!
//! - [`model`]: CLIP's ViT and ModifiedResNet image towers and the text transformer, as presets,
//!   with OpenAI/OpenCLIP state-dict names, saved as safetensors.
//! - [`tokenizer`]: CLIP's byte-level BPE with open_clip's text cleaning ([`ftfy`]: a port of
//!   ftfy's `fix_text`, mojibake repair included).
//! - [`loss`], [`optim`]: symmetric contrastive loss, AdamW with CLIP's parameter groups, cosine
//!   schedule with warmup.
//! - [`data`]: webdataset shards (brace patterns), shuffling, decode/augment worker threads, prefetch.
//! - [`train`], [`eval`]: the training loop with resumable checkpoints, JSONL metrics and an SVG
//!   plot; zero-shot classification and retrieval.
//! - [`measures`]: zero-shot and retrieval measures on computed features, below [`bench`],
//!   [`probe`], [`overlap`] and [`eval`].
//! - [`bench`]: evaluation sets (clip_benchmark's webdataset layout, ImageFolder, OpenWIT
//!   shards); [`probe`]: the linear probe (L2-regularized logistic regression by L-BFGS).
//! - [`stage`]: the `train` and `eval` stages of the pipeline.
//!
//! Building needs libtorch: `eval "$(scripts/setup-libtorch.sh)"` sets `LIBTORCH` and the library path.

pub mod accum;
pub mod bench;
pub mod captions_tsv;
pub mod data;
// The one module with `unsafe`: the FFI to the c10d shim (csrc/dist.cpp), which tch lacks.
#[allow(unsafe_code)]
pub mod dist;
pub mod error;
pub mod eval;
pub mod ftfy;
pub mod hostlist;
pub mod loss;
pub mod measures;
pub mod model;
pub mod optim;
pub mod overlap;
pub mod plot;
pub mod probe;
pub mod stage;
pub mod synth;
pub mod tokenizer;
pub mod train;

pub use error::{ClipError, Result};
pub use model::{Clip, Fwd, ModelConfig, Precision};
pub use tokenizer::Tokenizer;

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
pub fn parse_device(s: &str) -> Result<tch::Device> {
    match s {
        "cpu" => Ok(tch::Device::Cpu),
        "auto" => {
            let d = tch::Device::cuda_if_available();
            if d == tch::Device::Cpu && std::path::Path::new("/proc/driver/nvidia/version").exists()
            {
                tracing::warn!(
                    "an NVIDIA driver is loaded but libtorch sees no CUDA device: running on the CPU; a binary for GPUs is built with OPENWIT_CLIP_CUDA=1 (links libtorch_cuda, see crates/openwit-clip/README.md)"
                );
            }
            Ok(d)
        }
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(tch::Device::Cuda(0))
            } else {
                Err(ClipError::Config(
                    "device `cuda` asked but libtorch sees no CUDA device; check the driver and that the binary was built with the `-ltorch_cuda` link argument (see crates/openwit-clip/README.md), or use `auto`/`cpu`".into(),
                ))
            }
        }
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if (n as i64) < tch::Cuda::device_count() => Ok(tch::Device::Cuda(n)),
            _ => Err(ClipError::Config(format!(
                "unknown or unavailable device `{other}`; use `cpu`, `cuda`, `cuda:N` or `auto`"
            ))),
        },
    }
}

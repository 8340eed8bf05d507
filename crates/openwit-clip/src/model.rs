//! CLIP models (Radford et al., 2021, <https://arxiv.org/abs/2103.00020>) with OpenAI/OpenCLIP
//! state-dict names, so a checkpoint saved here loads in OpenCLIP (`load_state_dict`) and back.
//!
//! - [`ModelConfig::preset`]: `ViT-B-32`, `ViT-B-16`, `ViT-L-14`, `ViT-L-14-336`, `RN50`, `RN101`,
//!   `RN50x4`, `RN50x16`, `RN50x64` (OpenCLIP's configs: exact GELU), each with a `-quickgelu`
//!   variant (OpenAI's released models), and `tiny-vit` / `tiny-rn` for tests.
//! - [`Clip::new`] builds the model in a `tch` `VarStore` with CLIP's initialization;
//!   [`Clip::save`] / [`Clip::load`] write and read safetensors with the same names.
//! - Mixed precision: with [`Precision::Bf16`] matrix products and convolutions run in bfloat16
//!   while layer norms, softmax statistics, the transformers' residual stream and the loss stay
//!   in float32; batch norm runs on the convolution's bfloat16 output with fp32 statistics and
//!   parameters, so the ResNets' feature maps stay bfloat16 — the split CUDA autocast makes
//!   (tch 0.24 can only switch autocast to float16).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::error::{ClipError, Result};

/// The transformer MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU (OpenCLIP's plain configs).
    Gelu,
    /// `x * sigmoid(1.702 x)` (OpenAI's released models, OpenCLIP's `-quickgelu` configs).
    QuickGelu,
}

/// The image tower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VisionConfig {
    /// Vision transformer: patch embedding, class token, `ln_pre`, pre-LN blocks, `ln_post`, `proj`.
    Vit {
        image_size: i64,
        patch_size: i64,
        width: i64,
        layers: i64,
        heads: i64,
    },
    /// ModifiedResNet: 3-conv stem, anti-aliased strided blocks, attention pooling.
    ResNet {
        image_size: i64,
        layers: [i64; 4],
        width: i64,
        heads: i64,
    },
}

impl VisionConfig {
    pub fn image_size(&self) -> i64 {
        match self {
            VisionConfig::Vit { image_size, .. } | VisionConfig::ResNet { image_size, .. } => {
                *image_size
            }
        }
    }
}

/// The text tower (a GPT-2-style causal transformer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub context_length: i64,
    pub vocab_size: i64,
    pub width: i64,
    pub heads: i64,
    pub layers: i64,
}

/// A whole CLIP model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub embed_dim: i64,
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub activation: Activation,
}

fn text(width: i64, heads: i64) -> TextConfig {
    TextConfig {
        context_length: 77,
        vocab_size: 49408,
        width,
        heads,
        layers: 12,
    }
}

impl ModelConfig {
    /// The preset names [`ModelConfig::preset`] knows (each also with `-quickgelu`).
    pub const PRESETS: [&'static str; 11] = [
        "ViT-B-32",
        "ViT-B-16",
        "ViT-L-14",
        "ViT-L-14-336",
        "RN50",
        "RN101",
        "RN50x4",
        "RN50x16",
        "RN50x64",
        "tiny-vit",
        "tiny-rn",
    ];

    /// A named preset: OpenCLIP's configuration of the same name (`ViT-B-32`, `RN50`, ...).
    /// A `-quickgelu` suffix selects QuickGELU as in OpenAI's release.
    pub fn preset(name: &str) -> Option<ModelConfig> {
        let (base, activation) = match name.strip_suffix("-quickgelu") {
            Some(b) => (b, Activation::QuickGelu),
            None => (name, Activation::Gelu),
        };
        let vit = |image_size, patch_size, width, layers| VisionConfig::Vit {
            image_size,
            patch_size,
            width,
            layers,
            heads: width / 64,
        };
        let rn = |image_size, layers, width: i64| VisionConfig::ResNet {
            image_size,
            layers,
            width,
            heads: width * 32 / 64,
        };
        let (embed_dim, vision, text) = match base {
            "ViT-B-32" => (512, vit(224, 32, 768, 12), text(512, 8)),
            "ViT-B-16" => (512, vit(224, 16, 768, 12), text(512, 8)),
            "ViT-L-14" => (768, vit(224, 14, 1024, 24), text(768, 12)),
            "ViT-L-14-336" => (768, vit(336, 14, 1024, 24), text(768, 12)),
            "RN50" => (1024, rn(224, [3, 4, 6, 3], 64), text(512, 8)),
            "RN101" => (512, rn(224, [3, 4, 23, 3], 64), text(512, 8)),
            "RN50x4" => (640, rn(288, [4, 6, 10, 6], 80), text(640, 10)),
            "RN50x16" => (768, rn(384, [6, 8, 18, 8], 96), text(768, 12)),
            "RN50x64" => (1024, rn(448, [3, 15, 36, 10], 128), text(1024, 16)),
            "tiny-vit" => (
                64,
                VisionConfig::Vit {
                    image_size: 32,
                    patch_size: 8,
                    width: 64,
                    layers: 2,
                    heads: 2,
                },
                TextConfig {
                    context_length: 32,
                    vocab_size: 49408,
                    width: 64,
                    heads: 2,
                    layers: 2,
                },
            ),
            "tiny-rn" => (
                64,
                VisionConfig::ResNet {
                    image_size: 32,
                    layers: [1, 1, 1, 1],
                    width: 8,
                    heads: 2,
                },
                TextConfig {
                    context_length: 32,
                    vocab_size: 49408,
                    width: 64,
                    heads: 2,
                    layers: 2,
                },
            ),
            _ => return None,
        };
        Some(ModelConfig {
            name: name.to_string(),
            embed_dim,
            vision,
            text,
            activation,
        })
    }

    /// The preset, or a configuration error listing the valid names.
    pub fn preset_or_err(name: &str) -> Result<ModelConfig> {
        ModelConfig::preset(name).ok_or_else(|| {
            ClipError::Config(format!(
                "unknown model `{name}`; valid models: {} (each also with `-quickgelu`)",
                ModelConfig::PRESETS.join(", ")
            ))
        })
    }
}

/// Numeric precision of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    /// bfloat16 matrix products and convolutions, float32 elsewhere (autocast's split).
    Bf16,
}

impl Precision {
    fn mm(self, t: &Tensor) -> Tensor {
        match self {
            Precision::Fp32 => t.to_kind(Kind::Float),
            Precision::Bf16 => t.to_kind(Kind::BFloat16),
        }
    }
}

/// Forward-pass settings.
#[derive(Debug, Clone, Copy)]
pub struct Fwd {
    pub precision: Precision,
    /// Training mode (batch norm uses batch statistics and updates its running ones).
    pub train: bool,
}

impl Fwd {
    pub fn eval() -> Fwd {
        Fwd {
            precision: Precision::Fp32,
            train: false,
        }
    }
}

fn linear_bound(fan_in: i64) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

fn normal(std: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

#[derive(Debug)]
struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// PyTorch's default `nn.Linear` initialization, optionally overriding the weight's.
    fn new(p: nn::Path, din: i64, dout: i64, w_init: Option<Init>) -> Linear {
        let w = p.var("weight", &[dout, din], w_init.unwrap_or(linear_bound(din)));
        let b = Some(p.var("bias", &[dout], linear_bound(din)));
        Linear { w, b }
    }
    fn forward(&self, x: &Tensor, f: Fwd) -> Tensor {
        let pr = f.precision;
        pr.mm(x)
            .linear(&pr.mm(&self.w), self.b.as_ref().map(|b| pr.mm(b)))
    }
}

#[derive(Debug)]
struct LayerNorm {
    w: Tensor,
    b: Tensor,
    dim: i64,
}

impl LayerNorm {
    fn new(p: nn::Path, dim: i64) -> LayerNorm {
        LayerNorm {
            w: p.var("weight", &[dim], Init::Const(1.0)),
            b: p.var("bias", &[dim], Init::Const(0.0)),
            dim,
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float)
            .layer_norm([self.dim], Some(&self.w), Some(&self.b), 1e-5, true)
    }
}

/// `nn.MultiheadAttention` (packed `in_proj_weight`, `out_proj`), batch first.
#[derive(Debug)]
struct Attention {
    in_w: Tensor,
    in_b: Tensor,
    out: Linear,
    heads: i64,
}

impl Attention {
    fn forward(&self, x: &Tensor, causal: bool, f: Fwd) -> Tensor {
        let (n, l, d) = x.size3().unwrap();
        let pr = f.precision;
        let qkv = pr.mm(x).linear(&pr.mm(&self.in_w), Some(pr.mm(&self.in_b)));
        let qkv = qkv
            .reshape([n, l, 3, self.heads, d / self.heads])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let o = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, causal, None, false,
        );
        let o = o.transpose(1, 2).reshape([n, l, d]);
        self.out.forward(&o, f)
    }
}

#[derive(Debug)]
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    act: Activation,
}

impl Block {
    fn forward(&self, x: &Tensor, causal: bool, f: Fwd) -> Tensor {
        let x = x + self
            .attn
            .forward(&self.ln_1.forward(x), causal, f)
            .to_kind(Kind::Float);
        let h = self.c_fc.forward(&self.ln_2.forward(&x), f);
        let h = match self.act {
            Activation::Gelu => h.gelu("none"),
            Activation::QuickGelu => &h * (&h * 1.702).sigmoid(),
        };
        x + self.c_proj.forward(&h, f).to_kind(Kind::Float)
    }
}

/// Initialization of a transformer's blocks.
#[derive(Debug, Clone, Copy)]
enum BlockInit {
    /// PyTorch's defaults (OpenCLIP's vision transformer).
    Default,
    /// CLIP's text init: attention `width^-0.5`, projections `width^-0.5 (2 layers)^-0.5`, fc `(2 width)^-0.5`.
    Clip,
}

#[derive(Debug)]
struct Transformer {
    blocks: Vec<Block>,
}

impl Transformer {
    fn new(
        p: nn::Path,
        width: i64,
        layers: i64,
        heads: i64,
        act: Activation,
        init: BlockInit,
    ) -> Transformer {
        let w = width as f64;
        let attn_std = w.powf(-0.5);
        let proj_std = w.powf(-0.5) * (2.0 * layers as f64).powf(-0.5);
        let fc_std = (2.0 * w).powf(-0.5);
        let blocks = (0..layers)
            .map(|i| {
                let b = &p / "resblocks" / i;
                let a = &b / "attn";
                let (in_init, out_init, fc_init, proj_init) = match init {
                    BlockInit::Clip => (
                        normal(attn_std),
                        Some(normal(proj_std)),
                        Some(normal(fc_std)),
                        Some(normal(proj_std)),
                    ),
                    BlockInit::Default => {
                        let xb = (6.0 / (4.0 * w)).sqrt();
                        (Init::Uniform { lo: -xb, up: xb }, None, None, None)
                    }
                };
                let in_w = a.var("in_proj_weight", &[3 * width, width], in_init);
                let in_b = a.var("in_proj_bias", &[3 * width], Init::Const(0.0));
                let out = Linear::new(&a / "out_proj", width, width, out_init);
                tch::no_grad(|| {
                    let _ = out.b.as_ref().map(|b| b.shallow_clone().zero_());
                });
                let m = &b / "mlp";
                Block {
                    ln_1: LayerNorm::new(&b / "ln_1", width),
                    attn: Attention {
                        in_w,
                        in_b,
                        out,
                        heads,
                    },
                    ln_2: LayerNorm::new(&b / "ln_2", width),
                    c_fc: Linear::new(&m / "c_fc", width, 4 * width, fc_init),
                    c_proj: Linear::new(&m / "c_proj", 4 * width, width, proj_init),
                    act,
                }
            })
            .collect();
        Transformer { blocks }
    }
    fn forward(&self, x: &Tensor, causal: bool, f: Fwd) -> Tensor {
        let mut x = x.shallow_clone();
        for b in &self.blocks {
            x = b.forward(&x, causal, f);
        }
        x
    }

    /// The plain pass, or with a tape the checkpointed one.
    fn run<'m>(
        &'m self,
        x: &Tensor,
        causal: bool,
        f: Fwd,
        tape: Option<&mut Vec<Segment<'m>>>,
    ) -> Tensor {
        match tape {
            None => self.forward(x, causal, f),
            Some(t) => self.forward_checkpointed(x, causal, f, t),
        }
    }

    /// The blocks without autograd, keeping only each block's input; the output is a fresh
    /// leaf that collects its gradient from the rest of the model. `x` keeps its graph: it is
    /// where [`Recompute::backward`] sends the gradient last.
    fn forward_checkpointed<'m>(
        &'m self,
        x: &Tensor,
        causal: bool,
        f: Fwd,
        tape: &mut Vec<Segment<'m>>,
    ) -> Tensor {
        let mut inputs = Vec::with_capacity(self.blocks.len());
        let out = tch::no_grad(|| {
            let mut h = x.detach();
            for b in &self.blocks {
                let next = b.forward(&h, causal, f);
                inputs.push(h);
                h = next;
            }
            h
        });
        let exit = out.detach().set_requires_grad(true);
        tape.push(Segment {
            transformer: self,
            causal,
            f,
            inputs,
            entry: x.shallow_clone(),
            exit: exit.shallow_clone(),
        });
        exit
    }
}

/// One checkpointed transformer: the inputs of its blocks, the tensor that fed it (with its
/// graph) and the leaf standing for its output.
struct Segment<'m> {
    transformer: &'m Transformer,
    causal: bool,
    f: Fwd,
    inputs: Vec<Tensor>,
    entry: Tensor,
    exit: Tensor,
}

/// What a checkpointed forward pass ([`Clip::forward_checkpointed`]) kept of its transformer
/// blocks: only each block's input, not the activations inside the blocks (attention, MLP).
///
/// Activation checkpointing by hand, because tch has no `torch.utils.checkpoint` and no custom
/// autograd functions: the blocks ran under `no_grad`; their output entered the rest of the graph
/// as a leaf, so `loss.backward()` stops there and leaves the gradient in that leaf's `grad`.
/// [`Recompute::backward`] then walks the blocks from the last: it runs each block again with
/// autograd on a leaf copy of its saved input and back-propagates the incoming gradient `g`
/// through it as `sum(block(x) * g)` (whose gradient with respect to the block's output is
/// exactly `g`), which adds the block's parameter gradients and leaves the gradient of its
/// input for the block before. The first block's input gradient finally goes into the graph
/// that produced it (embeddings, `ln_pre`). Only one block's activations are alive at a time.
pub struct Recompute<'m> {
    segments: Vec<Segment<'m>>,
}

impl Recompute<'_> {
    /// The backward pass through the checkpointed blocks; call it right after
    /// `loss.backward()` on the loss of the same forward pass. Parameter gradients accumulate
    /// as with the plain pass.
    pub fn backward(self) {
        self.f_backward()
            .expect("the backward pass through the checkpointed blocks");
    }

    /// [`Recompute::backward`] that returns libtorch's error instead of panicking (a
    /// distributed job's gradient all-reduce runs inside the backward pass and can fail there).
    pub fn f_backward(self) -> std::result::Result<(), tch::TchError> {
        for seg in self.segments.into_iter().rev() {
            let mut g = seg.exit.grad();
            if !g.defined() {
                continue; // the output took no part in the loss
            }
            for (block, x) in seg.transformer.blocks.iter().zip(&seg.inputs).rev() {
                let x = x.detach().set_requires_grad(true);
                let y = block.forward(&x, seg.causal, seg.f);
                (y * &g).sum(Kind::Float).f_backward()?;
                g = x.grad();
            }
            if seg.entry.requires_grad() {
                (&seg.entry * &g).sum(Kind::Float).f_backward()?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct VisionTransformer {
    conv1: Tensor,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    transformer: Transformer,
    ln_post: LayerNorm,
    proj: Tensor,
    patch: i64,
}

impl VisionTransformer {
    fn forward<'m>(&'m self, x: &Tensor, f: Fwd, tape: Option<&mut Vec<Segment<'m>>>) -> Tensor {
        let pr = f.precision;
        let x = pr
            .mm(x)
            .conv2d::<Tensor>(
                &pr.mm(&self.conv1),
                None,
                [self.patch, self.patch],
                [0, 0],
                [1, 1],
                1,
            )
            .to_kind(Kind::Float);
        let (n, c, _, _) = x.size4().unwrap();
        let x = x.reshape([n, c, -1]).permute([0, 2, 1]);
        let cls = self
            .class_embedding
            .reshape([1, 1, c])
            .expand([n, 1, c], true);
        let x = Tensor::cat(&[cls, x], 1) + &self.positional_embedding;
        let x = self.ln_pre.forward(&x);
        let x = self.transformer.run(&x, false, f, tape);
        let x = self.ln_post.forward(&x.select(1, 0));
        pr.mm(&x).matmul(&pr.mm(&self.proj)).to_kind(Kind::Float)
    }
}

#[derive(Debug)]
struct BatchNorm {
    w: Tensor,
    b: Tensor,
    mean: Tensor,
    var: Tensor,
    tracked: Tensor,
}

impl BatchNorm {
    fn new(p: nn::Path, c: i64, zero_gain: bool) -> BatchNorm {
        let tracked = p.zeros_no_train("num_batches_tracked", &[]);
        BatchNorm {
            w: p.var(
                "weight",
                &[c],
                Init::Const(if zero_gain { 0.0 } else { 1.0 }),
            ),
            b: p.var("bias", &[c], Init::Const(0.0)),
            mean: p.zeros_no_train("running_mean", &[c]),
            var: p.ones_no_train("running_var", &[c]),
            tracked,
        }
    }
    fn forward(&self, x: &Tensor, f: Fwd) -> Tensor {
        if f.train {
            tch::no_grad(|| {
                let _ = self.tracked.shallow_clone().g_add_scalar_(1.0);
            });
        }
        // In the input's precision, as autocast leaves batch norm: with bf16 the convolution's
        // output goes in as it is (the kernel keeps its statistics in fp32 and the affine
        // parameters stay fp32), so what it saves for the backward pass, and the ReLU after it,
        // are bf16 rather than an fp32 copy of every feature map (2.5x the activations of RN50).
        x.batch_norm(
            Some(&self.w),
            Some(&self.b),
            Some(&self.mean),
            Some(&self.var),
            f.train,
            0.1,
            1e-5,
            true,
        )
    }
}

/// A variable at a dotted name below `p` (`conv1.weight`): tch paths cannot hold dots.
fn dotted(p: &nn::Path, name: &str, dims: &[i64], init: Init) -> Tensor {
    let (dirs, last) = name.rsplit_once('.').unwrap_or(("", name));
    let mut q: Option<nn::Path> = None;
    for part in dirs.split('.').filter(|s| !s.is_empty()) {
        q = Some(match q {
            None => p / part,
            Some(q) => q / part,
        });
    }
    match q {
        Some(q) => q.var(last, dims, init),
        None => p.var(last, dims, init),
    }
}

fn conv(p: &nn::Path, name: &str, cin: i64, cout: i64, k: i64) -> Tensor {
    let b = 1.0 / ((cin * k * k) as f64).sqrt();
    dotted(p, name, &[cout, cin, k, k], Init::Uniform { lo: -b, up: b })
}

fn conv_fwd(x: &Tensor, w: &Tensor, stride: i64, pad: i64, f: Fwd) -> Tensor {
    let pr = f.precision;
    pr.mm(x)
        .conv2d::<Tensor>(&pr.mm(w), None, [stride, stride], [pad, pad], [1, 1], 1)
}

fn avg_pool(x: &Tensor, s: i64) -> Tensor {
    if s <= 1 {
        return x.shallow_clone();
    }
    x.avg_pool2d([s, s], [s, s], [0, 0], false, true, None)
}

#[derive(Debug)]
struct Bottleneck {
    conv1: Tensor,
    bn1: BatchNorm,
    conv2: Tensor,
    bn2: BatchNorm,
    conv3: Tensor,
    bn3: BatchNorm,
    stride: i64,
    downsample: Option<(Tensor, BatchNorm)>,
}

impl Bottleneck {
    fn new(p: nn::Path, inplanes: i64, planes: i64, stride: i64) -> Bottleneck {
        let downsample = (stride > 1 || inplanes != planes * 4).then(|| {
            let d = &p / "downsample";
            (
                conv(&d, "0.weight", inplanes, planes * 4, 1),
                BatchNorm::new(&d / "1", planes * 4, false),
            )
        });
        Bottleneck {
            conv1: conv(&p, "conv1.weight", inplanes, planes, 1),
            bn1: BatchNorm::new(&p / "bn1", planes, false),
            conv2: conv(&p, "conv2.weight", planes, planes, 3),
            bn2: BatchNorm::new(&p / "bn2", planes, false),
            conv3: conv(&p, "conv3.weight", planes, planes * 4, 1),
            // CLIP zero-initializes the last BN gain of each block.
            bn3: BatchNorm::new(&p / "bn3", planes * 4, true),
            stride,
            downsample,
        }
    }
    fn forward(&self, x: &Tensor, f: Fwd) -> Tensor {
        let out = self
            .bn1
            .forward(&conv_fwd(x, &self.conv1, 1, 0, f), f)
            .relu();
        let out = self
            .bn2
            .forward(&conv_fwd(&out, &self.conv2, 1, 1, f), f)
            .relu();
        let out = avg_pool(&out, self.stride);
        let out = self.bn3.forward(&conv_fwd(&out, &self.conv3, 1, 0, f), f);
        let identity = match &self.downsample {
            Some((w, bn)) => bn.forward(&conv_fwd(&avg_pool(x, self.stride), w, 1, 0, f), f),
            None => x.shallow_clone(),
        };
        (out + identity).relu()
    }
}

#[derive(Debug)]
struct AttentionPool {
    pos: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    c: Linear,
    heads: i64,
}

impl AttentionPool {
    fn forward(&self, x: &Tensor, f: Fwd) -> Tensor {
        let (n, c, _, _) = x.size4().unwrap();
        // fp32 from here, as OpenCLIP's pool (its fp32 positional embedding promotes the sum).
        let x = x.to_kind(Kind::Float).flatten(2, 3).permute([2, 0, 1]); // (HW, N, C)
        let x = Tensor::cat(&[x.mean_dim(0, true, Kind::Float), x], 0) + self.pos.unsqueeze(1);
        let hd = c / self.heads;
        let split = |t: Tensor| {
            let l = t.size()[0];
            t.reshape([l, n, self.heads, hd]).permute([1, 2, 0, 3])
        };
        let q = split(self.q.forward(&x.narrow(0, 0, 1), f));
        let k = split(self.k.forward(&x, f));
        let v = split(self.v.forward(&x, f));
        let o = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, false, None, false,
        );
        let o = o.permute([2, 0, 1, 3]).reshape([n, c]);
        self.c.forward(&o, f).to_kind(Kind::Float)
    }
}

#[derive(Debug)]
struct ModifiedResNet {
    stem: Vec<(Tensor, BatchNorm, i64)>,
    layers: Vec<Bottleneck>,
    attnpool: AttentionPool,
}

impl ModifiedResNet {
    fn new(
        p: nn::Path,
        layers: [i64; 4],
        width: i64,
        heads: i64,
        image_size: i64,
        output_dim: i64,
    ) -> Self {
        let stem = vec![
            (
                conv(&p, "conv1.weight", 3, width / 2, 3),
                BatchNorm::new(&p / "bn1", width / 2, false),
                2,
            ),
            (
                conv(&p, "conv2.weight", width / 2, width / 2, 3),
                BatchNorm::new(&p / "bn2", width / 2, false),
                1,
            ),
            (
                conv(&p, "conv3.weight", width / 2, width, 3),
                BatchNorm::new(&p / "bn3", width, false),
                1,
            ),
        ];
        let mut inplanes = width;
        let mut blocks = Vec::new();
        for (li, &n) in layers.iter().enumerate() {
            let planes = width * (1 << li);
            let stride = if li == 0 { 1 } else { 2 };
            for bi in 0..n {
                let s = if bi == 0 { stride } else { 1 };
                blocks.push(Bottleneck::new(
                    &p / format!("layer{}", li + 1) / bi,
                    inplanes,
                    planes,
                    s,
                ));
                inplanes = planes * 4;
            }
        }
        let embed = width * 32;
        let spacial = image_size / 32;
        let a = &p / "attnpool";
        let std = (embed as f64).powf(-0.5);
        let attnpool = AttentionPool {
            pos: a.var(
                "positional_embedding",
                &[spacial * spacial + 1, embed],
                normal((embed as f64).powf(-0.5)),
            ),
            q: Linear::new(&a / "q_proj", embed, embed, Some(normal(std))),
            k: Linear::new(&a / "k_proj", embed, embed, Some(normal(std))),
            v: Linear::new(&a / "v_proj", embed, embed, Some(normal(std))),
            c: Linear::new(&a / "c_proj", embed, output_dim, Some(normal(std))),
            heads,
        };
        ModifiedResNet {
            stem,
            layers: blocks,
            attnpool,
        }
    }
    fn forward(&self, x: &Tensor, f: Fwd) -> Tensor {
        let mut x = x.shallow_clone();
        for (w, bn, stride) in &self.stem {
            x = bn.forward(&conv_fwd(&x, w, *stride, 1, f), f).relu();
        }
        x = avg_pool(&x, 2);
        for b in &self.layers {
            x = b.forward(&x, f);
        }
        self.attnpool.forward(&x, f)
    }
}

#[derive(Debug)]
enum Visual {
    Vit(VisionTransformer),
    ResNet(ModifiedResNet),
}

/// A CLIP model whose parameters live in a `tch` `VarStore` under OpenCLIP's names.
pub struct Clip {
    pub config: ModelConfig,
    pub vs: nn::VarStore,
    visual: Visual,
    token_embedding: Tensor,
    positional_embedding: Tensor,
    transformer: Transformer,
    ln_final: LayerNorm,
    text_projection: Tensor,
    /// The learned temperature, stored as ln(scale).
    pub logit_scale: Tensor,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("config", &self.config)
            .finish()
    }
}

impl Clip {
    /// Builds the model on `device` with CLIP's initialization (seed with `tch::manual_seed`).
    pub fn new(config: &ModelConfig, device: tch::Device) -> Clip {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let t = &config.text;
        let v = &root / "visual";
        let visual = match &config.vision {
            VisionConfig::Vit {
                image_size,
                patch_size,
                width,
                layers,
                heads,
            } => {
                let scale = (*width as f64).powf(-0.5);
                let grid = image_size / patch_size;
                let b = 1.0 / ((3 * patch_size * patch_size) as f64).sqrt();
                Visual::Vit(VisionTransformer {
                    conv1: dotted(
                        &v,
                        "conv1.weight",
                        &[*width, 3, *patch_size, *patch_size],
                        Init::Uniform { lo: -b, up: b },
                    ),
                    class_embedding: v.var("class_embedding", &[*width], normal(scale)),
                    positional_embedding: v.var(
                        "positional_embedding",
                        &[grid * grid + 1, *width],
                        normal(scale),
                    ),
                    ln_pre: LayerNorm::new(&v / "ln_pre", *width),
                    transformer: Transformer::new(
                        &v / "transformer",
                        *width,
                        *layers,
                        *heads,
                        config.activation,
                        BlockInit::Default,
                    ),
                    ln_post: LayerNorm::new(&v / "ln_post", *width),
                    proj: v.var("proj", &[*width, config.embed_dim], normal(scale)),
                    patch: *patch_size,
                })
            }
            VisionConfig::ResNet {
                image_size,
                layers,
                width,
                heads,
            } => Visual::ResNet(ModifiedResNet::new(
                v,
                *layers,
                *width,
                *heads,
                *image_size,
                config.embed_dim,
            )),
        };
        let token_embedding = dotted(
            &root,
            "token_embedding.weight",
            &[t.vocab_size, t.width],
            normal(0.02),
        );
        let positional_embedding = root.var(
            "positional_embedding",
            &[t.context_length, t.width],
            normal(0.01),
        );
        let transformer = Transformer::new(
            &root / "transformer",
            t.width,
            t.layers,
            t.heads,
            config.activation,
            BlockInit::Clip,
        );
        let ln_final = LayerNorm::new(&root / "ln_final", t.width);
        let text_projection = root.var(
            "text_projection",
            &[t.width, config.embed_dim],
            normal((t.width as f64).powf(-0.5)),
        );
        let logit_scale = root.var("logit_scale", &[], Init::Const((1.0f64 / 0.07).ln()));
        Clip {
            config: config.clone(),
            vs,
            visual,
            token_embedding,
            positional_embedding,
            transformer,
            ln_final,
            text_projection,
            logit_scale,
        }
    }

    /// Builds the model with libtorch's generator seeded with `seed`. libtorch's generator is
    /// global to the process: the seeding and the initialization hold a lock, so models built at
    /// the same time on other threads cannot change each other's weights.
    pub fn new_seeded(config: &ModelConfig, device: tch::Device, seed: u64) -> Clip {
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        Clip::new(config, device)
    }

    pub fn device(&self) -> tch::Device {
        self.vs.device()
    }

    pub fn image_size(&self) -> i64 {
        self.config.vision.image_size()
    }

    /// Image features (not normalized), `images` is `(N, 3, S, S)` float, normalized with CLIP's mean/std.
    pub fn encode_image(&self, images: &Tensor, f: Fwd) -> Tensor {
        self.encode_image_with(images, f, None)
    }

    fn encode_image_with<'m>(
        &'m self,
        images: &Tensor,
        f: Fwd,
        tape: Option<&mut Vec<Segment<'m>>>,
    ) -> Tensor {
        match &self.visual {
            Visual::Vit(v) => v.forward(images, f, tape),
            // No transformer blocks in the ResNet tower (its attention pool is one layer).
            Visual::ResNet(r) => r.forward(images, f),
        }
    }

    /// Text features (not normalized), `tokens` is `(N, L)` int64 with the end-of-text token the largest id.
    pub fn encode_text(&self, tokens: &Tensor, f: Fwd) -> Tensor {
        self.encode_text_with(tokens, f, None)
    }

    fn encode_text_with<'m>(
        &'m self,
        tokens: &Tensor,
        f: Fwd,
        tape: Option<&mut Vec<Segment<'m>>>,
    ) -> Tensor {
        let l = tokens.size()[1];
        let x = Tensor::embedding(&self.token_embedding, tokens, -1, false, false)
            + self.positional_embedding.narrow(0, 0, l);
        let x = self.transformer.run(&x, true, f, tape);
        let x = self.ln_final.forward(&x);
        let eot = tokens.argmax(-1, false);
        let n = tokens.size()[0];
        let rows = Tensor::arange(n, (Kind::Int64, tokens.device()));
        let pooled = x.index(&[Some(rows), Some(eot)]);
        let pr = f.precision;
        pr.mm(&pooled)
            .matmul(&pr.mm(&self.text_projection))
            .to_kind(Kind::Float)
    }

    /// L2-normalized image and text features and `exp(logit_scale)`, as OpenCLIP's `CLIP.forward`.
    pub fn forward(&self, images: &Tensor, tokens: &Tensor, f: Fwd) -> (Tensor, Tensor, Tensor) {
        let i = normalize(&self.encode_image(images, f));
        let t = normalize(&self.encode_text(tokens, f));
        (i, t, self.logit_scale.exp())
    }

    /// [`Clip::forward`] with activation checkpointing of the transformer blocks (the ViT
    /// image tower's and the text tower's): the blocks keep only their inputs, and the returned
    /// [`Recompute`] runs them again during the backward pass. Train with
    /// `loss.backward(); recompute.backward();` — the gradients are those of the plain pass.
    pub fn forward_checkpointed(
        &self,
        images: &Tensor,
        tokens: &Tensor,
        f: Fwd,
    ) -> (Tensor, Tensor, Tensor, Recompute<'_>) {
        let mut segments = Vec::new();
        let i = normalize(&self.encode_image_with(images, f, Some(&mut segments)));
        let t = normalize(&self.encode_text_with(tokens, f, Some(&mut segments)));
        (i, t, self.logit_scale.exp(), Recompute { segments })
    }

    /// Saves every parameter and buffer under OpenCLIP's names as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let named: Vec<(String, Tensor)> = named
            .into_iter()
            .map(|(k, v)| {
                let v = if k.ends_with("num_batches_tracked") {
                    v.to_kind(Kind::Int64)
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        Tensor::write_safetensors(&named, path).map_err(|e| ClipError::torch(path, e))
    }

    /// Loads a safetensors state dict (ours or OpenCLIP's); every parameter must be present
    /// with the right shape. Keys the model does not have are ignored (logged).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let tensors = Tensor::read_safetensors(path).map_err(|e| ClipError::torch(path, e))?;
        let file: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let vars = self.vs.variables();
        let mut missing = Vec::new();
        tch::no_grad(|| -> Result<()> {
            for (name, var) in &vars {
                match file.get(name) {
                    Some(t) if t.size() == var.size() => {
                        var.shallow_clone().copy_(&t.to_kind(var.kind()));
                    }
                    Some(t) => {
                        return Err(ClipError::Checkpoint(format!(
                            "{}: `{name}` has shape {:?}, the model `{}` expects {:?}; the file holds another model",
                            path.display(),
                            t.size(),
                            self.config.name,
                            var.size()
                        )));
                    }
                    None => missing.push(name.clone()),
                }
            }
            Ok(())
        })?;
        if !missing.is_empty() {
            missing.sort();
            return Err(ClipError::Checkpoint(format!(
                "{}: {} tensor(s) of model `{}` are missing (first: {}); the file holds another model",
                path.display(),
                missing.len(),
                self.config.name,
                missing[0]
            )));
        }
        let extra = file.keys().filter(|k| !vars.contains_key(*k)).count();
        if extra > 0 {
            tracing::debug!(extra, "ignored tensors the model does not have");
        }
        Ok(())
    }

    /// The trainable parameters by name, sorted.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Divides each row by its L2 norm.
pub fn normalize(x: &Tensor) -> Tensor {
    let n = x.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12);
    x / n
}

/// OpenCLIP's weight-decay exclusion: gains, biases, embeddings, batch norm and the logit scale.
pub fn excluded_from_decay(name: &str, ndim: usize) -> bool {
    ndim < 2
        || name.contains("bn")
        || name.contains("ln")
        || name.contains("bias")
        || name.contains("logit_scale")
        || name.contains("embedding")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(m: &Clip) -> (Tensor, Tensor) {
        let s = m.image_size();
        let images = Tensor::randn([4, 3, s, s], (Kind::Float, tch::Device::Cpu));
        let tokens = Tensor::randint(1000, [4, 8], (Kind::Int64, tch::Device::Cpu));
        let _ = tokens.select(1, 7).fill_(49407);
        (images, tokens)
    }

    #[test]
    fn bf16_features_follow_fp32_and_train_both_towers() {
        for name in ["tiny-vit", "tiny-rn"] {
            let m = Clip::new_seeded(&ModelConfig::preset(name).unwrap(), tch::Device::Cpu, 0);
            let (images, tokens) = inputs(&m);
            let f32 = Fwd {
                precision: Precision::Fp32,
                train: false,
            };
            let bf = Fwd {
                precision: Precision::Bf16,
                train: false,
            };
            let (i32_, t32, _) = tch::no_grad(|| m.forward(&images, &tokens, f32));
            let (ib, tb, _) = tch::no_grad(|| m.forward(&images, &tokens, bf));
            assert_eq!(ib.kind(), Kind::Float);
            let ci = (&i32_ * &ib)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                .min()
                .double_value(&[]);
            let ct = (&t32 * &tb)
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                .min()
                .double_value(&[]);
            assert!(
                ci > 0.98 && ct > 0.98,
                "{name}: cosine fp32/bf16 image {ci} text {ct}"
            );

            // One training step in bf16 reaches every parameter.
            let (i, t, s) = m.forward(
                &images,
                &tokens,
                Fwd {
                    precision: Precision::Bf16,
                    train: true,
                },
            );
            crate::loss::clip_loss(&i, &t, &s).backward();
            for (n, p) in m.named_parameters() {
                let g = p.grad();
                assert!(g.defined(), "{name}: no gradient for {n}");
            }
        }
    }

    /// Parameter gradients and loss of one step, plain or with checkpointed blocks; with
    /// `skip_recompute` the checkpointed pass stops after `loss.backward()`.
    fn step_grads(
        m: &Clip,
        images: &Tensor,
        tokens: &Tensor,
        f: Fwd,
        checkpointed: bool,
        skip_recompute: bool,
    ) -> (f64, Vec<(String, Tensor)>) {
        for (_, mut p) in m.named_parameters() {
            p.zero_grad();
        }
        let loss = if checkpointed {
            let (i, t, s, recompute) = m.forward_checkpointed(images, tokens, f);
            let loss = crate::loss::clip_loss(&i, &t, &s);
            loss.backward();
            if !skip_recompute {
                recompute.backward();
            }
            loss
        } else {
            let (i, t, s) = m.forward(images, tokens, f);
            let loss = crate::loss::clip_loss(&i, &t, &s);
            loss.backward();
            loss
        };
        let grads = m
            .named_parameters()
            .into_iter()
            .map(|(n, p)| {
                let g = p.grad();
                let g = if g.defined() {
                    g.copy()
                } else {
                    p.zeros_like()
                };
                (n, g)
            })
            .collect();
        (loss.double_value(&[]), grads)
    }

    #[test]
    fn checkpointed_blocks_give_the_plain_gradients() {
        for name in ["tiny-vit", "tiny-rn"] {
            let m = Clip::new_seeded(&ModelConfig::preset(name).unwrap(), tch::Device::Cpu, 3);
            let (images, tokens) = inputs(&m);
            let f = Fwd {
                precision: Precision::Fp32,
                train: true,
            };
            // The parameters of the checkpointed blocks and of the layers before them.
            let mut upstream = vec![
                "transformer.resblocks.",
                "token_embedding.",
                "positional_embedding",
            ];
            if name == "tiny-vit" {
                upstream.extend([
                    "visual.transformer.",
                    "visual.conv1.",
                    "visual.class_embedding",
                    "visual.positional_embedding",
                    "visual.ln_pre.",
                ]);
            }
            let is_upstream = |n: &str| upstream.iter().any(|p| n.starts_with(p));
            let (l0, plain) = step_grads(&m, &images, &tokens, f, false, false);
            let (l1, ckpt) = step_grads(&m, &images, &tokens, f, true, false);
            assert!((l0 - l1).abs() < 1e-6, "{name}: loss {l0} vs {l1}");
            assert_eq!(plain.len(), ckpt.len());
            for ((n, a), (_, b)) in plain.iter().zip(&ckpt) {
                let scale = a.abs().max().double_value(&[]);
                // (Some ResNet batch norms get none: the zero-initialized gain after them.)
                assert!(
                    scale > 0.0 || !is_upstream(n),
                    "{name}: {n} has no gradient at all"
                );
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(
                    diff <= 1e-5,
                    "{name}: {n}: checkpointed gradient differs by {diff} (max |g| {scale})"
                );
            }
            // The recompute is what reaches the blocks and everything before them: without
            // it they get nothing, while the layers after the blocks do.
            let (_, partial) = step_grads(&m, &images, &tokens, f, true, true);
            for ((n, g), (_, full)) in partial.iter().zip(&ckpt) {
                let zero = g.abs().max().double_value(&[]) == 0.0;
                let full_zero = full.abs().max().double_value(&[]) == 0.0;
                assert_eq!(is_upstream(n) || full_zero, zero, "{name}: {n}");
            }
        }
        // bf16: the recomputed blocks run the same kernels on the same inputs.
        let m = Clip::new_seeded(
            &ModelConfig::preset("tiny-vit").unwrap(),
            tch::Device::Cpu,
            4,
        );
        let (images, tokens) = inputs(&m);
        let f = Fwd {
            precision: Precision::Bf16,
            train: true,
        };
        let (_, plain) = step_grads(&m, &images, &tokens, f, false, false);
        let (_, ckpt) = step_grads(&m, &images, &tokens, f, true, false);
        for ((n, a), (_, b)) in plain.iter().zip(&ckpt) {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(
                diff <= 1e-5,
                "bf16 {n}: checkpointed gradient differs by {diff}"
            );
        }
    }

    #[test]
    fn presets_have_openai_shapes() {
        let rn = ModelConfig::preset("RN50x4-quickgelu").unwrap();
        assert_eq!(rn.activation, Activation::QuickGelu);
        assert_eq!(rn.vision.image_size(), 288);
        assert_eq!(rn.text.width, 640);
        let l = ModelConfig::preset("ViT-L-14-336").unwrap();
        assert!(matches!(
            l.vision,
            VisionConfig::Vit {
                patch_size: 14,
                width: 1024,
                layers: 24,
                heads: 16,
                ..
            }
        ));
        assert!(
            ModelConfig::preset_or_err("ViT-X")
                .unwrap_err()
                .to_string()
                .contains("ViT-B-32")
        );
        assert!(excluded_from_decay(
            "visual.transformer.resblocks.0.ln_1.weight",
            1
        ));
        assert!(!excluded_from_decay("visual.proj", 2));
        assert!(excluded_from_decay("token_embedding.weight", 2));
        assert!(excluded_from_decay("visual.layer1.0.bn1.weight", 1));
    }
}

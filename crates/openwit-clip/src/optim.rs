//! AdamW with CLIP's parameter groups, gradient clipping, and the cosine schedule with warmup.
//!
//! The moments are two flat buffers (in parameter order; plain tensors that checkpoints save),
//! fp32 by default or bf16 ([`Moments`], `[train] adam_moments`).
//!
//! fp32 moments: a step gathers the gradients into one flat buffer, clips and folds it into the
//! moments in place, turns the second moment's square root into the update in a second buffer
//! (the first is gone by then), and applies it to each parameter in place, with its weight
//! decay: at most one gradient-sized buffer beside the moments at any time, as PyTorch's own
//! AdamW, and a few dozen kernel launches plus one or two per parameter, whatever the model's
//! size.
//!
//! bf16 moments (the CLIP paper's memory saver: half the optimizer state): the arithmetic is
//! fp32, the storage bf16. The global gradient norm is taken first from every parameter's
//! gradient (on the device, unread); then the step walks the flat space in chunks of whole
//! consecutive parameters of at most [`CHUNK_ELEMENTS`] values (one parameter alone when it is
//! larger): the chunk's gradients gathered and clipped, its moments upcast, updated and stored
//! back rounded, the update built from the unrounded fp32 moments and applied. The temporaries
//! are three chunk-sized fp32 buffers, not model-sized ones, so the step's peak memory falls
//! with the state instead of giving the saving back.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{ClipError, Result};
use crate::model::excluded_from_decay;

/// AdamW settings (OpenCLIP's defaults for ViT training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            weight_decay: 0.2,
        }
    }
}

/// How AdamW stores its two moments (`[train] adam_moments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Moments {
    /// fp32, as PyTorch's AdamW: 8 bytes per parameter.
    #[default]
    Fp32,
    /// bf16 storage, fp32 arithmetic: 4 bytes per parameter.
    Bf16,
}

impl Moments {
    /// `fp32` or `bf16`; None for anything else.
    pub fn parse(s: &str) -> Option<Moments> {
        match s {
            "fp32" => Some(Moments::Fp32),
            "bf16" => Some(Moments::Bf16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Moments::Fp32 => "fp32",
            Moments::Bf16 => "bf16",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Moments::Fp32 => Kind::Float,
            Moments::Bf16 => Kind::BFloat16,
        }
    }

    /// Bytes of optimizer state (both moments) for `params` parameters.
    pub fn state_bytes(self, params: u64) -> u64 {
        match self {
            Moments::Fp32 => 2 * 4 * params,
            Moments::Bf16 => 2 * 2 * params,
        }
    }
}

/// The most values a chunk of the bf16-moments step holds (unless one parameter alone is larger):
/// its three fp32 temporaries take 12 bytes a value, 192 MiB at this size.
pub const CHUNK_ELEMENTS: i64 = 1 << 24;

/// Consecutive parameters `params` whose values lie at `off..off + len` in the flat buffers.
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    params: std::ops::Range<usize>,
    off: i64,
    len: i64,
}

/// Groups consecutive parameters of `sizes` values into chunks of at most `limit` values; a
/// parameter larger than `limit` is a chunk by itself.
fn chunks(sizes: &[i64], limit: i64) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut off = 0;
    for (i, &n) in sizes.iter().enumerate() {
        match out.last_mut() {
            Some(c) if c.len + n <= limit => {
                c.params.end = i + 1;
                c.len += n;
            }
            _ => out.push(Chunk {
                params: i..i + 1,
                off,
                len: n,
            }),
        }
        off += n;
    }
    out
}

/// AdamW over named parameters; weight decay skips gains, biases, embeddings, batch norm and
/// the logit scale ([`excluded_from_decay`]).
pub struct AdamW {
    pub cfg: AdamWConfig,
    params: Vec<(String, Tensor)>,
    /// Per parameter: whether weight decay applies ([`excluded_from_decay`]).
    decays: Vec<bool>,
    moments: Moments,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// The bf16 step's chunks ([`CHUNK_ELEMENTS`]).
    chunks: Vec<Chunk>,
    /// Optimizer steps taken.
    pub step: i64,
}

impl AdamW {
    /// fp32 moments.
    pub fn new(params: Vec<(String, Tensor)>, cfg: AdamWConfig) -> AdamW {
        AdamW::with_moments(params, cfg, Moments::Fp32)
    }

    /// Moments stored as `moments` says.
    pub fn with_moments(
        params: Vec<(String, Tensor)>,
        cfg: AdamWConfig,
        moments: Moments,
    ) -> AdamW {
        let device = params[0].1.device();
        let decays: Vec<bool> = params
            .iter()
            .map(|(n, p)| !excluded_from_decay(n, p.dim()))
            .collect();
        let sizes: Vec<i64> = params.iter().map(|(_, p)| p.numel() as i64).collect();
        let total: i64 = sizes.iter().sum();
        AdamW {
            cfg,
            params,
            decays,
            moments,
            exp_avg: Tensor::zeros([total], (moments.kind(), device)),
            exp_avg_sq: Tensor::zeros([total], (moments.kind(), device)),
            chunks: chunks(&sizes, CHUNK_ELEMENTS),
            step: 0,
        }
    }

    /// Another chunk size for the bf16 step (tests: several chunks on a small model).
    #[cfg(test)]
    pub(crate) fn set_chunk_limit(&mut self, limit: i64) {
        let sizes: Vec<i64> = self.params.iter().map(|(_, p)| p.numel() as i64).collect();
        self.chunks = chunks(&sizes, limit);
    }

    pub fn moments(&self) -> Moments {
        self.moments
    }

    /// Parameter names with (true) and without (false) weight decay.
    pub fn groups(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut d, mut nd) = (Vec::new(), Vec::new());
        for (n, p) in &self.params {
            if excluded_from_decay(n, p.dim()) {
                nd.push(n.as_str());
            } else {
                d.push(n.as_str());
            }
        }
        (d, nd)
    }

    /// Zeroes the gradients in place (tch's `zero_grad` detaches them first, which a data-parallel
    /// job's gradients, views into the all-reduce buckets, do not allow).
    pub fn zero_grad(&mut self) {
        tch::no_grad(|| {
            for (_, p) in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
        });
    }

    fn flat_grad(&self) -> Tensor {
        let gs: Vec<Tensor> = self.params.iter().map(|(_, p)| grad_f32(p)).collect();
        Tensor::cat(&gs, 0)
    }

    /// One update at learning rate `lr`, clipping the global gradient norm to `clip` (if > 0)
    /// after scaling gradients by `grad_scale` (1 / accumulation steps). Returns the norm
    /// before clipping as a 0-dim tensor on the parameters' device: nothing here waits for the
    /// device, so read it (a synchronization) together with the step's other figures.
    pub fn step(&mut self, lr: f64, clip: f64, grad_scale: f64) -> Tensor {
        match self.moments {
            Moments::Fp32 => self.step_fp32(lr, clip, grad_scale),
            Moments::Bf16 => self.step_chunked(lr, clip, grad_scale),
        }
    }

    fn step_fp32(&mut self, lr: f64, clip: f64, grad_scale: f64) -> Tensor {
        tch::no_grad(|| {
            let mut g = self.flat_grad();
            if grad_scale != 1.0 {
                g *= grad_scale;
            }
            // Clipped on the device, as torch's clip_grad_norm_: reading the norm here would stall
            // the host until the backward pass has finished, once per step.
            let norm = g.norm();
            if clip > 0.0 {
                let coef = (clip / (&norm + 1e-6)).clamp_max(1.0);
                g *= coef;
            }
            self.step += 1;
            let c = &self.cfg;
            let _ = self.exp_avg.lerp_(&g, 1.0 - c.beta1);
            // v <- b2 v + (1 - b2) g^2, with g squared in place (its last use).
            let _ = g.square_();
            let _ = self.exp_avg_sq.lerp_(&g, 1.0 - c.beta2);
            drop(g);
            let bc1 = 1.0 - c.beta1.powi(self.step as i32);
            let bc2 = 1.0 - c.beta2.powi(self.step as i32);
            // update = lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), built in one buffer.
            let mut update = self.exp_avg_sq.sqrt();
            let _ = update.g_div_scalar_(bc2.sqrt());
            let _ = update.g_add_scalar_(c.eps);
            let _ = self.exp_avg.div_out(&update, &update);
            let _ = update.g_mul_scalar_(lr / bc1);
            let keep = 1.0 - lr * c.weight_decay;
            apply_update(&mut self.params, &self.decays, &update, keep);
            norm
        })
    }

    /// The bf16-moments step, chunk by chunk (module documentation).
    fn step_chunked(&mut self, lr: f64, clip: f64, grad_scale: f64) -> Tensor {
        tch::no_grad(|| {
            // The norm over all the gradients before any chunk moves, from each parameter's
            // norm: no model-sized buffer, nothing read on the host.
            let norms: Vec<Tensor> = self
                .params
                .iter()
                .map(|(_, p)| grad_f32(p).norm())
                .collect();
            let mut norm = Tensor::stack(&norms, 0).norm();
            drop(norms);
            if grad_scale != 1.0 {
                norm *= grad_scale;
            }
            let coef = (clip > 0.0).then(|| (clip / (&norm + 1e-6)).clamp_max(1.0));
            self.step += 1;
            let c = &self.cfg;
            let bc1 = 1.0 - c.beta1.powi(self.step as i32);
            let bc2 = 1.0 - c.beta2.powi(self.step as i32);
            let keep = 1.0 - lr * c.weight_decay;
            for ch in &self.chunks {
                let params = &mut self.params[ch.params.clone()];
                let gs: Vec<Tensor> = params.iter().map(|(_, p)| grad_f32(p)).collect();
                let mut g = Tensor::cat(&gs, 0);
                drop(gs);
                if grad_scale != 1.0 {
                    g *= grad_scale;
                }
                if let Some(coef) = &coef {
                    g *= coef;
                }
                let mut m_store = self.exp_avg.narrow(0, ch.off, ch.len);
                let mut v_store = self.exp_avg_sq.narrow(0, ch.off, ch.len);
                let mut m = m_store.to_kind(Kind::Float);
                let _ = m.lerp_(&g, 1.0 - c.beta1);
                let _ = g.square_();
                let mut v = v_store.to_kind(Kind::Float);
                let _ = v.lerp_(&g, 1.0 - c.beta2);
                drop(g);
                // Stored rounded to bf16; this step's update from the fp32 values.
                m_store.copy_(&m);
                v_store.copy_(&v);
                let _ = v.sqrt_();
                let _ = v.g_div_scalar_(bc2.sqrt());
                let _ = v.g_add_scalar_(c.eps);
                let _ = m.div_out(&v, &v);
                drop(m);
                let _ = v.g_mul_scalar_(lr / bc1);
                apply_update(params, &self.decays[ch.params.clone()], &v, keep);
            }
            norm
        })
    }

    /// The optimizer state as named tensors (for a checkpoint); the moments in their kind.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            ("exp_avg".into(), self.exp_avg.shallow_clone()),
            ("exp_avg_sq".into(), self.exp_avg_sq.shallow_clone()),
            ("step".into(), Tensor::from_slice(&[self.step])),
        ]
    }

    /// Restores [`AdamW::state`]. Moments of the other kind (a run that changed
    /// `adam_moments`) are converted, and a log line says so.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| {
                    ClipError::Checkpoint(format!(
                        "{}: no `{name}` in the optimizer state",
                        path.display()
                    ))
                })
        };
        let m = get("exp_avg")?;
        let v = get("exp_avg_sq")?;
        if m.size() != self.exp_avg.size() || v.size() != self.exp_avg_sq.size() {
            return Err(ClipError::Checkpoint(format!(
                "{}: the optimizer state has {} values, the model {}; the checkpoint is of another model",
                path.display(),
                m.size()[0],
                self.exp_avg.size()[0]
            )));
        }
        for (name, t) in [("exp_avg", &m), ("exp_avg_sq", &v)] {
            if !matches!(t.kind(), Kind::Float | Kind::BFloat16) {
                return Err(ClipError::Checkpoint(format!(
                    "{}: `{name}` is {:?}, neither fp32 nor bf16",
                    path.display(),
                    t.kind()
                )));
            }
        }
        let want = self.moments.kind();
        if m.kind() != want || v.kind() != want {
            tracing::info!(
                checkpoint = ?m.kind(),
                now = self.moments.name(),
                "{}: the checkpoint's AdamW moments are of another kind than `adam_moments` asks; converted",
                path.display()
            );
        }
        // copy_ converts (bf16 to fp32 exactly, fp32 to bf16 rounded to nearest).
        tch::no_grad(|| {
            self.exp_avg.copy_(&m);
            self.exp_avg_sq.copy_(&v);
        });
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
    }
}

/// Applies `update` (flat, the parameters' values in order) to `params` with their weight decay
/// (`keep` = 1 - lr * weight_decay where `decays`).
fn apply_update(params: &mut [(String, Tensor)], decays: &[bool], update: &Tensor, keep: f64) {
    let mut off = 0;
    for ((_, p), &decays) in params.iter_mut().zip(decays) {
        let n = p.numel() as i64;
        let u = update.narrow(0, off, n).view_as(p);
        if p.kind() == Kind::Float {
            if decays && keep != 1.0 {
                let _ = p.g_mul_scalar_(keep);
            }
            let _ = p.g_sub_(&u);
        } else {
            // Parameters kept in another precision: the update in fp32, stored back.
            let mut f = p.detach().to_kind(Kind::Float);
            if decays {
                let _ = f.g_mul_scalar_(keep);
            }
            let _ = f.g_sub_(&u);
            p.copy_(&f.to_kind(p.kind()));
        }
        off += n;
    }
}

/// OpenCLIP's `cosine_lr`: linear warmup to `base` over `warmup` steps, then a cosine decay to 0
/// at `total` steps.
pub fn cosine_lr(base: f64, warmup: u64, total: u64, step: u64) -> f64 {
    if step < warmup {
        base * (step + 1) as f64 / warmup as f64
    } else {
        let e = (step - warmup) as f64;
        let es = (total.saturating_sub(warmup)).max(1) as f64;
        0.5 * (1.0 + (std::f64::consts::PI * e / es).cos()) * base
    }
}

/// A parameter's gradient as a flat fp32 vector (zeros when it has none): the layout of the
/// optimizer's flat buffers and of the data-parallel all-reduce buckets.
pub(crate) fn grad_f32(p: &Tensor) -> Tensor {
    let g = p.grad();
    if g.defined() {
        g.to_kind(Kind::Float).reshape([-1])
    } else {
        Tensor::zeros([p.numel() as i64], (Kind::Float, p.device()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((cosine_lr(1.0, 10, 110, 0) - 0.1).abs() < 1e-12);
        assert!((cosine_lr(1.0, 10, 110, 9) - 1.0).abs() < 1e-12);
        assert!((cosine_lr(1.0, 10, 110, 10) - 1.0).abs() < 1e-12);
        assert!((cosine_lr(1.0, 10, 110, 60) - 0.5).abs() < 1e-12);
        assert!(cosine_lr(1.0, 10, 110, 110).abs() < 1e-12);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn matches_a_plain_adamw_on_one_tensor() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 3.0])
            .reshape([3, 1])
            .set_requires_grad(true);
        let mut opt = AdamW::new(
            vec![("w".into(), p.shallow_clone())],
            AdamWConfig::default(),
        );
        let g = [0.5f64, -1.0, 2.0];
        for _ in 0..3 {
            opt.zero_grad();
            let loss =
                (&p * Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([3, 1])).sum(Kind::Float);
            loss.backward();
            let _ = opt.step(0.1, 0.0, 1.0);
        }
        // The same three steps written out.
        let (b1, b2, eps, wd, lr) = (0.9f64, 0.98f64, 1e-6, 0.2, 0.1);
        let mut w = [1.0f64, -2.0, 3.0];
        let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
        for t in 1..=3 {
            for i in 0..3 {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = (v[i] / (1.0 - b2.powi(t))).sqrt() + eps;
                w[i] = w[i] * (1.0 - lr * wd) - lr * mh / vh;
            }
        }
        let got: Vec<f64> = Vec::<f64>::try_from(p.reshape([-1]).to_kind(Kind::Double)).unwrap();
        for i in 0..3 {
            assert!((got[i] - w[i]).abs() < 1e-5, "{got:?} vs {w:?}");
        }
    }

    /// Gives each parameter the gradient `grads[i]` (through `sum(p * g)`).
    fn set_grads(opt: &mut AdamW, params: &[Tensor], grads: &[Vec<f32>]) {
        opt.zero_grad();
        let loss = params
            .iter()
            .zip(grads)
            .map(|(p, g)| (p * Tensor::from_slice(g).view_as(p)).sum(Kind::Float))
            .reduce(|a, b| a + b)
            .unwrap();
        loss.backward();
    }

    fn values(p: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(p.reshape([-1]).to_kind(Kind::Double)).unwrap()
    }

    const LR: f64 = 0.1;

    /// AdamW written out in f64 (AdamWConfig's defaults, learning rate [`LR`]), clipping the
    /// global norm of each step's gradients to `clip` (0: off), or each group's own norm when
    /// `per_group` (the wrong way, to show a test tells them apart).
    fn written_out(
        w0: &[Vec<f64>],
        decays: &[bool],
        grads: &[Vec<Vec<f64>>],
        clip: f64,
        per_group: bool,
    ) -> Vec<Vec<f64>> {
        let (b1, b2, eps, wd) = (0.9f64, 0.98f64, 1e-6, 0.2);
        let mut w = w0.to_vec();
        let mut m: Vec<Vec<f64>> = w0.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut v = m.clone();
        for (t, gs) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            let sq = |g: &Vec<f64>| g.iter().map(|x| x * x).sum::<f64>();
            let global = gs.iter().map(sq).sum::<f64>().sqrt();
            for (j, g) in gs.iter().enumerate() {
                let norm = if per_group { sq(g).sqrt() } else { global };
                let coef = if clip > 0.0 {
                    (clip / (norm + 1e-6)).min(1.0)
                } else {
                    1.0
                };
                for i in 0..g.len() {
                    let gi = g[i] * coef;
                    m[j][i] = b1 * m[j][i] + (1.0 - b1) * gi;
                    v[j][i] = b2 * v[j][i] + (1.0 - b2) * gi * gi;
                    let mh = m[j][i] / (1.0 - b1.powi(t));
                    let vh = (v[j][i] / (1.0 - b2.powi(t))).sqrt() + eps;
                    let keep = if decays[j] { 1.0 - LR * wd } else { 1.0 };
                    w[j][i] = w[j][i] * keep - LR * mh / vh;
                }
            }
        }
        w
    }

    /// bf16 storage rounds each moment to 8 significant bits: a relative error of at most
    /// u = 2^-8 in m and in v, so at most about u + u/2 in m / sqrt(v) (the gradients here keep
    /// their signs, m does not cancel, and |m^| / sqrt(v^) stays near 1), i.e. about 1.5 u LR
    /// per step and parameter value; allowed: 2 u LR per step, summed over the steps.
    fn bf16_tolerance(steps: usize) -> f64 {
        steps as f64 * LR * 2.0 / 256.0
    }

    #[test]
    fn bf16_moments_match_a_plain_adamw_on_one_tensor() {
        let w0 = [1.0f32, -2.0, 3.0];
        let p = Tensor::from_slice(&w0)
            .reshape([3, 1])
            .set_requires_grad(true);
        let mut opt = AdamW::with_moments(
            vec![("w".into(), p.shallow_clone())],
            AdamWConfig::default(),
            Moments::Bf16,
        );
        // Gradients that grow a little each step, none representable in bf16.
        let grads: Vec<Vec<f32>> = (0..5)
            .map(|t| {
                [0.37f32, -1.13, 2.71]
                    .iter()
                    .map(|g| g * (1.0 + 0.3 * t as f32))
                    .collect()
            })
            .collect();
        for g in &grads {
            set_grads(&mut opt, std::slice::from_ref(&p), std::slice::from_ref(g));
            let _ = opt.step(LR, 0.0, 1.0);
        }
        assert_eq!(opt.state()[0].1.kind(), Kind::BFloat16);
        assert_eq!(opt.state()[1].1.kind(), Kind::BFloat16);
        let want = written_out(
            &[w0.iter().map(|&x| x as f64).collect()],
            &[true],
            &grads
                .iter()
                .map(|g| vec![g.iter().map(|&x| x as f64).collect()])
                .collect::<Vec<_>>(),
            0.0,
            false,
        );
        let got = values(&p);
        let tol = bf16_tolerance(grads.len());
        for (g, w) in got.iter().zip(&want[0]) {
            assert!(
                (g - w).abs() < tol,
                "{got:?} vs {:?} (tolerance {tol})",
                want[0]
            );
        }
    }

    /// Five parameters (with and without weight decay), their gradients for `steps` steps.
    fn several(steps: usize) -> (Vec<(String, Vec<i64>)>, Vec<Vec<Vec<f32>>>) {
        let shapes: Vec<(String, Vec<i64>)> = vec![
            ("a.weight".into(), vec![4, 3]),
            ("a.bias".into(), vec![4]),
            ("b.weight".into(), vec![2, 5]),
            ("ln.weight".into(), vec![5]),
            ("c.weight".into(), vec![3, 3]),
        ];
        let grads = (0..steps)
            .map(|t| {
                shapes
                    .iter()
                    .enumerate()
                    .map(|(j, (_, s))| {
                        let n: i64 = s.iter().product();
                        (0..n)
                            .map(|i| {
                                ((i * 7 + j as i64 * 3 + t as i64 * 5) % 11) as f32 / 3.0 - 1.5
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        (shapes, grads)
    }

    fn init(shapes: &[(String, Vec<i64>)]) -> Vec<Tensor> {
        shapes
            .iter()
            .enumerate()
            .map(|(j, (_, s))| {
                let n: i64 = s.iter().product();
                let v: Vec<f32> = (0..n)
                    .map(|i| ((i + j as i64) % 5) as f32 * 0.4 - 0.8)
                    .collect();
                Tensor::from_slice(&v)
                    .reshape(s.as_slice())
                    .set_requires_grad(true)
            })
            .collect()
    }

    fn bf16_run(limit: Option<i64>, clip: f64, grad_scale: f64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let (shapes, grads) = several(4);
        let params = init(&shapes);
        let named = shapes
            .iter()
            .zip(&params)
            .map(|((n, _), p)| (n.clone(), p.shallow_clone()))
            .collect();
        let mut opt = AdamW::with_moments(named, AdamWConfig::default(), Moments::Bf16);
        match limit {
            Some(l) => {
                opt.set_chunk_limit(l);
                assert!(opt.chunks.len() >= 3, "{:?}", opt.chunks);
            }
            None => assert_eq!(opt.chunks.len(), 1),
        }
        let mut norms = Vec::new();
        for g in &grads {
            set_grads(&mut opt, &params, g);
            norms.push(opt.step(LR, clip, grad_scale).double_value(&[]));
        }
        (params.iter().map(values).collect(), norms)
    }

    #[test]
    fn chunked_and_unchunked_bf16_steps_give_the_same_parameters() {
        // 12 + 4 | 10 + 5 | 9: three chunks of at most 16 values.
        let (whole, whole_norms) = bf16_run(None, 1.0, 0.5);
        let (chunked, chunked_norms) = bf16_run(Some(16), 1.0, 0.5);
        assert_eq!(whole_norms, chunked_norms);
        assert!(
            whole_norms.iter().all(|&n| n > 1.0),
            "{whole_norms:?} (clipping must act)"
        );
        // The same fp32 arithmetic on each value, whatever the chunks.
        assert_eq!(whole, chunked);
    }

    #[test]
    fn bf16_clipping_uses_the_global_norm_across_chunks() {
        // `a` (chunk 1) has gradients growing 4x per step, `b` (chunk 2) constant small ones: the
        // global norm clips `b`'s gradients more every step; `b`'s own norm (0.37) never would.
        let a = Tensor::from_slice(&[0.5f32, -0.5, 1.0, 2.0])
            .reshape([2, 2])
            .set_requires_grad(true);
        let b = Tensor::from_slice(&[0.3f32, -0.6, 0.9])
            .reshape([3, 1])
            .set_requires_grad(true);
        let mut opt = AdamW::with_moments(
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            AdamWConfig::default(),
            Moments::Bf16,
        );
        opt.set_chunk_limit(4);
        assert_eq!(opt.chunks.len(), 2);
        let grads: Vec<Vec<Vec<f32>>> = (0..4)
            .map(|t| {
                let s = 4f32.powi(t);
                vec![
                    vec![3.0 * s, -4.0 * s, 1.0 * s, 2.0 * s],
                    vec![0.1, -0.2, 0.3],
                ]
            })
            .collect();
        let grads64: Vec<Vec<Vec<f64>>> = grads
            .iter()
            .map(|gs| {
                gs.iter()
                    .map(|g| g.iter().map(|&x| x as f64).collect())
                    .collect()
            })
            .collect();
        let w0 = vec![values(&a), values(&b)];
        for (g, g64) in grads.iter().zip(&grads64) {
            set_grads(&mut opt, &[a.shallow_clone(), b.shallow_clone()], g);
            let norm = opt.step(LR, 1.0, 1.0).double_value(&[]);
            let want = g64.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
            assert!(
                (norm - want).abs() < 1e-5 * want,
                "norm {norm}, want {want}"
            );
        }
        let decays = [true, true];
        let global = written_out(&w0, &decays, &grads64, 1.0, false);
        let per_chunk = written_out(&w0, &decays, &grads64, 1.0, true);
        let tol = bf16_tolerance(grads.len());
        // The test tells the two apart.
        let apart = global[1]
            .iter()
            .zip(&per_chunk[1])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(apart > 5.0 * tol, "{apart}");
        for (got, want) in [values(&a), values(&b)].iter().zip(&global) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < tol, "{got:?} vs {want:?} (tolerance {tol})");
            }
        }
    }

    #[test]
    fn chunks_hold_whole_consecutive_parameters() {
        let c = chunks(&[3, 4, 10, 2, 2, 1], 8);
        let got: Vec<_> = c.iter().map(|c| (c.params.clone(), c.off, c.len)).collect();
        assert_eq!(got, [(0..2, 0, 7), (2..3, 7, 10), (3..6, 17, 5)]);
    }

    #[test]
    fn moments_of_the_other_kind_are_converted_on_load() {
        let p = || {
            Tensor::from_slice(&[1.0f32, 2.0, 3.0])
                .reshape([3, 1])
                .set_requires_grad(true)
        };
        let cfg = AdamWConfig::default;
        let mut fp32 = AdamW::new(vec![("w".into(), p())], cfg());
        let x = 1.0f32 + 1.0 / 1024.0; // not a bf16 value: rounds to 1.0
        tch::no_grad(|| {
            fp32.exp_avg.copy_(&Tensor::from_slice(&[x, -0.5, 0.25]));
            fp32.exp_avg_sq.copy_(&Tensor::from_slice(&[x, 0.5, 0.125]));
        });
        fp32.step = 7;
        let mut bf16 = AdamW::with_moments(vec![("w".into(), p())], cfg(), Moments::Bf16);
        bf16.load_state(&fp32.state(), Path::new("fp32")).unwrap();
        assert_eq!(bf16.step, 7);
        assert_eq!(bf16.exp_avg.kind(), Kind::BFloat16);
        assert_eq!(values(&bf16.exp_avg), [1.0, -0.5, 0.25]);
        assert_eq!(values(&bf16.exp_avg_sq), [1.0, 0.5, 0.125]);
        // and back: bf16 values are fp32 values
        let mut again = AdamW::new(vec![("w".into(), p())], cfg());
        again.load_state(&bf16.state(), Path::new("bf16")).unwrap();
        assert_eq!(again.exp_avg.kind(), Kind::Float);
        assert_eq!(values(&again.exp_avg), [1.0, -0.5, 0.25]);
        assert_eq!(again.step, 7);
        // another kind is refused
        let bad = vec![
            (
                "exp_avg".into(),
                Tensor::zeros([3], (Kind::Half, tch::Device::Cpu)),
            ),
            (
                "exp_avg_sq".into(),
                Tensor::zeros([3], (Kind::Half, tch::Device::Cpu)),
            ),
            ("step".into(), Tensor::from_slice(&[1i64])),
        ];
        assert!(again.load_state(&bad, Path::new("half")).is_err());
    }
}

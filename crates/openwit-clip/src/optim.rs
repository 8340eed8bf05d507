//! AdamW with CLIP's parameter groups, gradient clipping, and the cosine schedule with warmup.
//!
//! The moments are two flat fp32 buffers (in parameter order; plain tensors that checkpoints
//! save). A step gathers the gradients into one flat buffer, clips and folds it into the moments
//! in place, turns the second moment's square root into the update in a second buffer (the first
//! is gone by then), and applies it to each parameter in place, with its weight decay: at most
//! one gradient-sized buffer beside the moments at any time, as PyTorch's own AdamW, and a few
//! dozen kernel launches plus one or two per parameter, whatever the model's size.

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

/// AdamW over named parameters; weight decay skips gains, biases, embeddings, batch norm and
/// the logit scale ([`excluded_from_decay`]).
pub struct AdamW {
    pub cfg: AdamWConfig,
    params: Vec<(String, Tensor)>,
    /// Per parameter: whether weight decay applies ([`excluded_from_decay`]).
    decays: Vec<bool>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// Optimizer steps taken.
    pub step: i64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Tensor)>, cfg: AdamWConfig) -> AdamW {
        let device = params[0].1.device();
        let decays: Vec<bool> = params
            .iter()
            .map(|(n, p)| !excluded_from_decay(n, p.dim()))
            .collect();
        let total: i64 = params.iter().map(|(_, p)| p.numel() as i64).sum();
        AdamW {
            cfg,
            params,
            decays,
            exp_avg: Tensor::zeros([total], (Kind::Float, device)),
            exp_avg_sq: Tensor::zeros([total], (Kind::Float, device)),
            step: 0,
        }
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

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
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
            let mut off = 0;
            for ((_, p), &decays) in self.params.iter_mut().zip(&self.decays) {
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
            norm
        })
    }

    /// The optimizer state as named tensors (for a checkpoint).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            ("exp_avg".into(), self.exp_avg.shallow_clone()),
            ("exp_avg_sq".into(), self.exp_avg_sq.shallow_clone()),
            ("step".into(), Tensor::from_slice(&[self.step])),
        ]
    }

    /// Restores [`AdamW::state`].
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
        tch::no_grad(|| {
            self.exp_avg.copy_(&m);
            self.exp_avg_sq.copy_(&v);
        });
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
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
}

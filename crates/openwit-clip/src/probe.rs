//! Linear probe, as the CLIP paper evaluates representations: multinomial logistic regression
//! with an L2 penalty on frozen image features, fitted by full-batch L-BFGS on libtorch tensors
//! (float64, on the model's device), the penalty chosen on a validation split by a sweep over a
//! log grid, then refitted on train + validation and measured on the test images.
//!
//! The objective is scikit-learn's `LogisticRegression(C=c)` (multinomial, intercept not
//! penalized): `C * sum_i CE(x_i W + b, y_i) + ||W||^2 / 2`, here divided by `C * n` (same
//! minimizer, gradients of order one). Features are the model's L2-normalized image embeddings,
//! not standardized.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::{ClipError, Result};
use crate::measures::{ClassMetrics, classification_metrics};

/// A fitted multinomial logistic regression.
#[derive(Debug)]
pub struct LogReg {
    /// `(D, C)`, float64.
    pub weight: Tensor,
    /// `(C)`, float64.
    pub bias: Tensor,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Whether the largest gradient entry fell below the tolerance before `max_iter`.
    pub converged: bool,
}

impl LogReg {
    /// Logits `(N, C)` of features `(N, D)` (any float kind; computed in float64).
    pub fn logits(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Double)
            .to_device(self.weight.device())
            .matmul(&self.weight)
            + &self.bias
    }
}

/// Settings of the L-BFGS fit.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub max_iter: usize,
    /// Stop when every gradient entry of the scaled objective is below this.
    pub tol: f64,
    /// Pairs kept by L-BFGS.
    pub history: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            max_iter: 1000,
            tol: 1e-9,
            history: 10,
        }
    }
}

struct Problem {
    x: Tensor,
    onehot: Tensor,
    n: f64,
    d: i64,
    k: i64,
    c: f64,
}

impl Problem {
    /// The scaled objective `mean CE + ||W||^2 / (2 C n)` and its gradient, at flat `theta`
    /// (`W` row-major, then `b`).
    fn eval(&self, theta: &Tensor) -> (f64, Tensor) {
        let w = theta.narrow(0, 0, self.d * self.k).view([self.d, self.k]);
        let b = theta.narrow(0, self.d * self.k, self.k);
        let logits = self.x.matmul(&w) + &b;
        let lse = logits.logsumexp([1i64].as_slice(), false);
        let picked =
            (&logits * &self.onehot).sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let reg = 1.0 / (self.c * self.n);
        let loss =
            (lse - picked).sum(Kind::Double) / self.n + w.square().sum(Kind::Double) * (0.5 * reg);
        let r = (logits.softmax(1, Kind::Double) - &self.onehot) / self.n;
        let gw = self.x.tr().matmul(&r) + &w * reg;
        let gb = r.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        (
            loss.double_value(&[]),
            Tensor::cat(&[gw.reshape([-1]), gb], 0),
        )
    }
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[])
}

/// Fits `C`-regularized multinomial logistic regression of `labels` (in `0..classes`) on
/// features `x` `(N, D)` by L-BFGS (two-loop recursion, backtracking Armijo line search),
/// starting from `init` (a warm start) or zero.
pub fn fit_logistic(
    x: &Tensor,
    labels: &[i64],
    classes: usize,
    c: f64,
    init: Option<&LogReg>,
    opts: FitOptions,
) -> LogReg {
    let device = x.device();
    let x = x.to_kind(Kind::Double);
    let (n, d) = (x.size()[0], x.size()[1]);
    let k = classes as i64;
    let y = Tensor::from_slice(labels).to_device(device);
    let onehot = y.one_hot(k).to_kind(Kind::Double);
    let p = Problem {
        x,
        onehot,
        n: n.max(1) as f64,
        d,
        k,
        c,
    };
    let mut theta = match init {
        Some(m) => Tensor::cat(&[m.weight.reshape([-1]), m.bias.shallow_clone()], 0)
            .to_device(device)
            .to_kind(Kind::Double),
        None => Tensor::zeros([d * k + k], (Kind::Double, device)),
    };
    let (mut f, mut g) = p.eval(&theta);
    let mut hist: VecDeque<(Tensor, Tensor, f64)> = VecDeque::new();
    let mut iterations = 0;
    let mut converged = false;
    while iterations < opts.max_iter {
        if g.abs().max().double_value(&[]) < opts.tol {
            converged = true;
            break;
        }
        iterations += 1;
        // Two-loop recursion: r = H g.
        let mut q = g.copy();
        let mut alphas = Vec::with_capacity(hist.len());
        for (s, yv, rho) in hist.iter().rev() {
            let a = rho * dot(s, &q);
            q -= yv * a;
            alphas.push(a);
        }
        let gamma = match hist.back() {
            Some((s, yv, _)) => dot(s, yv) / dot(yv, yv),
            // First step: length 1 in the gradient's direction at most.
            None => 1.0_f64.min(1.0 / dot(&g, &g).sqrt().max(1e-300)),
        };
        let mut r = q * gamma;
        for ((s, yv, rho), a) in hist.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &r);
            r += s * (a - b);
        }
        let mut dir = -r;
        let mut gd = dot(&g, &dir);
        if gd.is_nan() || gd >= 0.0 {
            // Not a descent direction (numerical trouble): restart from the gradient.
            hist.clear();
            dir = -&g;
            gd = -dot(&g, &g);
        }
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            let cand = &theta + &dir * t;
            let (fc, gc) = p.eval(&cand);
            if fc.is_finite() && fc <= f + 1e-4 * t * gd {
                accepted = Some((cand, fc, gc));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, fc, gc)) = accepted else {
            break; // no decrease possible at float64 precision
        };
        let s = &cand - &theta;
        let yv = &gc - &g;
        let sy = dot(&s, &yv);
        if sy > 1e-300 {
            if hist.len() == opts.history {
                hist.pop_front();
            }
            hist.push_back((s, yv, 1.0 / sy));
        }
        let stalled = (f - fc).abs() <= 1e-16 * f.abs().max(1.0);
        theta = cand;
        f = fc;
        g = gc;
        if stalled {
            converged = g.abs().max().double_value(&[]) < opts.tol.sqrt();
            break;
        }
    }
    LogReg {
        weight: theta.narrow(0, 0, d * k).view([d, k]).copy(),
        bias: theta.narrow(0, d * k, k).copy(),
        iterations,
        converged,
    }
}

/// The validation split carved from training images: per class, in reading order, every
/// `every`-th image (the `every`-th, `2*every`-th, ...) goes to validation. Returns
/// (train indices, validation indices).
pub fn validation_split(labels: &[i64], every: usize) -> (Vec<i64>, Vec<i64>) {
    let every = every.max(2);
    let mut seen: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, l) in labels.iter().enumerate() {
        let n = seen.entry(*l).or_default();
        *n += 1;
        if n.is_multiple_of(every) {
            val.push(i as i64);
        } else {
            train.push(i as i64);
        }
    }
    (train, val)
}

/// The `[eval.linear_probe]` sweep settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Smallest inverse regularization strength `C` of the grid.
    #[serde(default = "default_c_min")]
    pub c_min: f64,
    #[serde(default = "default_c_max")]
    pub c_max: f64,
    /// Grid points, log-spaced from `c_min` to `c_max` inclusive.
    #[serde(default = "default_c_steps")]
    pub c_steps: usize,
    /// L-BFGS iterations per fit at most.
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Every `validation_every`-th training image of each class validates the sweep.
    #[serde(default = "default_validation_every")]
    pub validation_every: usize,
}

fn default_c_min() -> f64 {
    1e-6
}
fn default_c_max() -> f64 {
    1e6
}
fn default_c_steps() -> usize {
    25
}
fn default_max_iter() -> usize {
    1000
}
fn default_validation_every() -> usize {
    5
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            c_min: default_c_min(),
            c_max: default_c_max(),
            c_steps: default_c_steps(),
            max_iter: default_max_iter(),
            validation_every: default_validation_every(),
        }
    }
}

impl SweepConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.c_min > 0.0 && self.c_max >= self.c_min && self.c_steps >= 1) {
            return Err(ClipError::Config(
                "[eval.linear_probe] needs 0 < c_min <= c_max and c_steps >= 1".into(),
            ));
        }
        if self.validation_every < 2 {
            return Err(ClipError::Config(
                "[eval.linear_probe] validation_every must be at least 2".into(),
            ));
        }
        Ok(())
    }

    /// The log-spaced grid of `C`, ascending.
    pub fn grid(&self) -> Vec<f64> {
        if self.c_steps == 1 {
            return vec![self.c_min];
        }
        let (a, b) = (self.c_min.log10(), self.c_max.log10());
        (0..self.c_steps)
            .map(|i| 10f64.powf(a + (b - a) * i as f64 / (self.c_steps - 1) as f64))
            .collect()
    }
}

/// What the linear probe measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinearProbe {
    pub train_set: String,
    pub test_set: String,
    /// Training images the sweep fitted on, validation images it chose `C` on.
    pub train_images: u64,
    pub validation_images: u64,
    pub test_images: u64,
    pub classes: usize,
    /// What was regressed on.
    pub features: String,
    /// The grid of `C` (inverse L2 strength, scikit-learn's `C`) and the validation top-1 of each.
    pub c_grid: Vec<f64>,
    pub validation_top1: Vec<f64>,
    /// The chosen `C` (best validation top-1; the smallest `C` among equals).
    pub c: f64,
    /// L-BFGS iterations of the final fit on train + validation, and whether it converged.
    pub iterations: usize,
    pub converged: bool,
    /// On the test images.
    #[serde(flatten)]
    pub test: ClassMetrics,
}

/// The sweep, the refit and the test: features `(N, D)` with labels in `0..classes`. Returns the
/// probe's results and its final classifier (to measure it on a subset of the test images: the
/// overlap analysis).
#[allow(clippy::too_many_arguments)]
pub fn linear_probe_fit(
    train_x: &Tensor,
    train_y: &[i64],
    test_x: &Tensor,
    test_y: &[i64],
    class_names: &[String],
    cfg: &SweepConfig,
    train_set: &str,
    test_set: &str,
) -> Result<(LinearProbe, LogReg)> {
    let classes = class_names.len();
    let (tr, va) = validation_split(train_y, cfg.validation_every);
    if va.is_empty() || tr.is_empty() {
        return Err(ClipError::Data(format!(
            "the linear probe's training set has {} images: too few to carve a validation split (every {}th image of a class)",
            train_y.len(),
            cfg.validation_every
        )));
    }
    let device = train_x.device();
    let pick = |idx: &[i64]| {
        (
            train_x.index_select(0, &Tensor::from_slice(idx).to_device(device)),
            idx.iter()
                .map(|&i| train_y[i as usize])
                .collect::<Vec<i64>>(),
        )
    };
    let (xt, yt) = pick(&tr);
    let (xv, yv) = pick(&va);
    let opts = FitOptions {
        max_iter: cfg.max_iter,
        ..FitOptions::default()
    };
    let grid = cfg.grid();
    let mut val_top1 = Vec::with_capacity(grid.len());
    let mut prev: Option<LogReg> = None;
    for &c in &grid {
        // Ascending C: each fit starts from the previous (more regularized) solution.
        let m = fit_logistic(&xt, &yt, classes, c, prev.as_ref(), opts);
        let acc = classification_metrics(&m.logits(&xv), &yv, class_names).top1;
        tracing::info!(
            c,
            validation_top1 = acc,
            iterations = m.iterations,
            "linear probe"
        );
        val_top1.push(acc);
        prev = Some(m);
    }
    let best = val_top1
        .iter()
        .enumerate()
        .fold(0, |b, (i, &a)| if a > val_top1[b] { i } else { b });
    let c = grid[best];
    let full = fit_logistic(train_x, train_y, classes, c, None, opts);
    let test = classification_metrics(&full.logits(test_x), test_y, class_names);
    let probe = LinearProbe {
        train_set: train_set.into(),
        test_set: test_set.into(),
        train_images: tr.len() as u64,
        validation_images: va.len() as u64,
        test_images: test_y.len() as u64,
        classes,
        features: "L2-normalized image embeddings (not standardized)".into(),
        c_grid: grid,
        validation_top1: val_top1,
        c,
        iterations: full.iterations,
        converged: full.converged,
        test,
    };
    Ok((probe, full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn separates_two_blobs_and_the_gradient_vanishes() {
        // Class 0 around (1, 0), class 1 around (-1, 0), class 2 around (0, 1), with overlap.
        let pts: Vec<f64> = vec![
            1.0, 0.1, 0.9, -0.2, 1.2, 0.3, 0.2, 0.1, // 0
            -1.0, 0.0, -0.8, 0.2, -1.1, -0.3, -0.1, 0.2, // 1
            0.0, 1.0, 0.1, 0.8, -0.2, 1.1, 0.3, 0.2, // 2
        ];
        let x = Tensor::from_slice(&pts).view([12, 2]);
        let y = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
        let m = fit_logistic(&x, &y, 3, 1.0, None, FitOptions::default());
        assert!(m.converged, "{} iterations", m.iterations);
        // At the optimum the penalty's gradient balances the data's: W = C X^T (Y - P), so
        // every column of W sums to zero over the classes and the biases' gradient is zero.
        let p = m.logits(&x).softmax(1, Kind::Double);
        let onehot = Tensor::from_slice(&y).one_hot(3).to_kind(Kind::Double);
        let w = x.to_kind(Kind::Double).tr().matmul(&(onehot - &p));
        assert!((w - &m.weight).abs().max().double_value(&[]) < 1e-7);
        assert!(
            m.weight
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
                .abs()
                .max()
                .double_value(&[])
                < 1e-8
        );
        let acc =
            classification_metrics(&m.logits(&x), &y, &["a".into(), "b".into(), "c".into()]).top1;
        assert!(acc >= 0.75, "{acc}");
        let _ = Device::Cpu;
    }

    #[test]
    fn validation_split_takes_every_nth_image_of_each_class() {
        let y = [0, 1, 0, 0, 1, 0, 1, 1, 0];
        let (tr, va) = validation_split(&y, 2);
        assert_eq!(va, vec![2, 4, 5, 7]);
        assert_eq!(tr, vec![0, 1, 3, 6, 8]);
    }

    #[test]
    fn grid_is_log_spaced_and_inclusive() {
        let g = SweepConfig {
            c_min: 1e-2,
            c_max: 1e2,
            c_steps: 5,
            ..SweepConfig::default()
        }
        .grid();
        for (a, b) in g.iter().zip([1e-2, 1e-1, 1.0, 1e1, 1e2]) {
            assert!((a / b - 1.0).abs() < 1e-12, "{g:?}");
        }
    }
}

//! Contrastive accumulation (`[train] accum_freq = k`, OpenCLIP's `--accum-freq`): one
//! optimizer step over a contrastive batch of k micro-batches, every image scored against every
//! caption of all k x b pairs (times the ranks in a data-parallel job), with the memory of one
//! micro-batch's graph.
//!
//! 1. Each micro-batch is encoded without autograd (`no_grad`); its features are cached.
//! 2. Each micro-batch is encoded again with autograd; its live features replace its cached
//!    slice, the loss over the whole k x b batch (the cached slices are constants) is taken and
//!    its backward pass run at once, which frees that micro-batch's graph before the next one.
//!    The parameter gradients add up over the k passes.
//!
//! Why that is the gradient of one batch of k x b: the loss L depends on the parameters only
//! through the features, and micro-batch j's pass gives dL/df_j . df_j/dθ (its slice is the
//! only live one). The sum over j is the whole chain rule. The features are the same numbers
//! in both passes (the forward pass is deterministic for the same weights and inputs), so the
//! cached slices are exactly the values the big batch would hold. The one exception is the
//! logit scale: it multiplies every logit, so each of the k passes already has the whole
//! dL/dscale; its sum is divided by k here. (OpenCLIP's `train_one_epoch` leaves it summed, so
//! its logit scale gets k times the big batch's gradient; everything else is the same as here,
//! which `tests/accum.rs` checks against its own step.)
//!
//! Data parallel ([`crate::dist`]): the cached features of every rank are all-gathered once per
//! step (rank-major: rank r's k micro-batches at rows r·k·b ..), and each pass splices its live
//! slice into that global set and takes [`Dist::loss_over`] with this rank's rows, so N ranks
//! with k micro-batches of b take the step of one process with a batch of N·k·b. The gradients
//! of the first k - 1 passes add up on each rank; the last pass is armed on the [`GradSync`], so
//! the sums are all-reduced while its backward pass runs (DDP's `no_sync` for the others).
//!
//! Memory. What stays alive across the micro-batches is the cached features, 2 x k x b x
//! embed_dim numbers per rank (times N after the gather): for CLIP's 32,768 batch at 512
//! dimensions in fp32, 128 MiB. No graph is kept from one pass to the next: the caching pass
//! runs under `no_grad` (no activations saved), and each gradient pass calls `backward` before
//! the next starts, which releases its activations. The inputs are not cached on the device
//! either: [`accumulated_backward`] asks its caller for micro-batch j's inputs each time, and the
//! trainer keeps the loader's uint8 batches in host memory and normalizes them on the device
//! again for the second pass.

use tch::Tensor;

use crate::dist::{Dist, GradSync};
use crate::error::{ClipError, Result};
use crate::loss::clip_loss;
use crate::model::{Clip, Fwd};

/// `all` with rows `at .. at + live.rows` replaced by `live` (which keeps its graph).
fn splice(all: &Tensor, live: &Tensor, at: i64) -> Tensor {
    let n = live.size()[0];
    let total = all.size()[0];
    let mut parts = Vec::with_capacity(3);
    if at > 0 {
        parts.push(all.narrow(0, 0, at));
    }
    parts.push(live.to_kind(all.kind()));
    if at + n < total {
        parts.push(all.narrow(0, at + n, total - at - n));
    }
    Tensor::cat(&parts, 0)
}

/// Runs the forward and backward passes of one optimizer step over `k` micro-batches and
/// leaves the step's gradients in the parameters, which must hold none (zeroed) before. `inputs(j)` gives
/// micro-batch j's device images (normalized) and tokens; it is called twice per micro-batch
/// when `k > 1`. With `checkpointed`, the gradient passes use
/// [`Clip::forward_checkpointed`]. In a data-parallel job, `sync` all-reduces the gradients
/// during the last backward pass. Returns the step's loss (0-dim, detached): the loss over the
/// whole contrastive batch as every rank reports it.
///
/// With `k == 1` this is the plain step: one forward pass with autograd, no cache.
pub fn accumulated_backward(
    model: &Clip,
    k: usize,
    inputs: &mut dyn FnMut(usize) -> Result<(Tensor, Tensor)>,
    fwd: Fwd,
    checkpointed: bool,
    sync: Option<&GradSync<'_>>,
) -> Result<Tensor> {
    assert!(k >= 1, "accum_freq >= 1");
    let dist: Option<&Dist> = sync.map(GradSync::dist);
    // A failed backward pass: in a job, the gradient all-reduce inside it lost a peer.
    let failed = |e: tch::TchError| -> ClipError {
        match dist {
            Some(d) => d.failed("the gradient all-reduce", e.to_string()),
            None => ClipError::Data(format!("the backward pass failed: {e}")),
        }
    };
    let live_pass = |images: &Tensor,
                     tokens: &Tensor,
                     last: bool,
                     loss_of: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor|
     -> Result<Tensor> {
        let arm = || {
            if last && let Some(s) = sync {
                s.arm();
            }
        };
        if checkpointed {
            let (i, t, s, recompute) = model.forward_checkpointed(images, tokens, fwd);
            let loss = loss_of(&i, &t, &s);
            arm();
            loss.f_backward().map_err(failed)?;
            recompute.f_backward().map_err(failed)?;
            Ok(loss)
        } else {
            let (i, t, s) = model.forward(images, tokens, fwd);
            let loss = loss_of(&i, &t, &s);
            arm();
            loss.f_backward().map_err(failed)?;
            Ok(loss)
        }
    };
    let reported = |loss: &Tensor| match dist {
        Some(d) => d.reported_loss(loss).detach(),
        None => loss.detach(),
    };
    let finish = || match sync {
        Some(s) => s.finish(),
        None => Ok(()),
    };
    if k == 1 {
        let (images, tokens) = inputs(0)?;
        let loss = live_pass(&images, &tokens, true, &|i, t, s| match dist {
            Some(d) => d.clip_loss(i, t, s),
            None => clip_loss(i, t, s),
        })?;
        finish()?;
        return Ok(reported(&loss));
    }

    // 1. The features of every micro-batch, without a graph.
    let mut cached_i = Vec::with_capacity(k);
    let mut cached_t = Vec::with_capacity(k);
    let mut offsets = Vec::with_capacity(k);
    let mut rows = 0i64;
    for j in 0..k {
        let (images, tokens) = inputs(j)?;
        let (i, t, _) = tch::no_grad(|| model.forward(&images, &tokens, fwd));
        offsets.push(rows);
        rows += i.size()[0];
        cached_i.push(i);
        cached_t.push(t);
    }
    let local_i = Tensor::cat(&cached_i, 0);
    let local_t = Tensor::cat(&cached_t, 0);
    drop((cached_i, cached_t));
    // Every rank's cache, gathered once: the other ranks' slices do not change during the step.
    let (all_i, all_t, start) = match dist {
        Some(d) => (
            d.all_gather(&local_i),
            d.all_gather(&local_t),
            d.rank() as i64 * rows,
        ),
        None => (local_i, local_t, 0),
    };

    // 2. Each micro-batch again, with its gradient; backward at once.
    let mut first = None;
    for (j, &off) in offsets.iter().enumerate() {
        let (images, tokens) = inputs(j)?;
        let at = start + off;
        let loss = live_pass(&images, &tokens, j + 1 == k, &|i, t, s| {
            let gi = splice(&all_i, i, at);
            let gt = splice(&all_t, t, at);
            match dist {
                Some(d) => d.loss_over(&gi, &gt, s, start, rows),
                None => clip_loss(&gi, &gt, s),
            }
        })?;
        if first.is_none() {
            first = Some(reported(&loss));
        }
    }
    // Each pass had the whole dL/dscale: the sum counted it k times.
    tch::no_grad(|| {
        let mut g = model.logit_scale.grad();
        if g.defined() {
            let _ = g.g_div_scalar_(k as f64);
        }
    });
    finish()?;
    Ok(first.expect("k >= 1"))
}

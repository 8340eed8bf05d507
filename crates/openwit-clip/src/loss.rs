//! CLIP's symmetric contrastive loss (OpenCLIP's `ClipLoss`, one process).

use tch::{Kind, Tensor};

/// ln(100): the largest logit scale CLIP allows.
pub const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_091;

/// `logits = scale * image @ text^T`; the mean of the image->text and text->image cross-entropies
/// with the matching pairs on the diagonal. `image` and `text` are L2-normalized `(N, D)`,
/// `scale` is `exp(logit_scale)`.
pub fn clip_loss(image: &Tensor, text: &Tensor, scale: &Tensor) -> Tensor {
    let logits = scale
        * image
            .to_kind(Kind::Float)
            .matmul(&text.to_kind(Kind::Float).tr());
    let n = logits.size()[0];
    let labels = Tensor::arange(n, (Kind::Int64, logits.device()));
    let a = logits.cross_entropy_for_logits(&labels);
    let b = logits.tr().cross_entropy_for_logits(&labels);
    (a + b) / 2.0
}

/// Clamps `logit_scale` to `[0, ln(100)]` in place, as OpenCLIP does after each step.
pub fn clamp_logit_scale(logit_scale: &Tensor) {
    tch::no_grad(|| {
        let _ = logit_scale.shallow_clone().clamp_(0.0, MAX_LOGIT_SCALE);
    });
}

//! Contrastive accumulation (`accum_freq`, issue 19 req. 4) on the CPU in fp32, `tiny-vit`:
//!
//! - k micro-batches of b give the gradients of one batch of k x b (<= 1e-4, every parameter,
//!   the logit scale included), with and without activation checkpointing;
//! - the same as OpenCLIP's own `--accum-freq` step (`open_clip_train.train.train_one_epoch`)
//!   on the same weights and inputs, except the logit scale, whose gradient OpenCLIP sums over
//!   the k passes (k times the big batch's: see `openwit_clip::accum`).
//!
//! The data-parallel case (2 ranks x k micro-batches = one process with 2·k·b) is in
//! `tests/dist.rs`.

mod common;

use std::collections::HashMap;

use openwit_clip::accum::accumulated_backward;
use openwit_clip::loss::clip_loss;
use openwit_clip::{Clip, Fwd, ModelConfig, Precision};
use tch::{Device, Kind, Tensor};

const FWD: Fwd = Fwd {
    precision: Precision::Fp32,
    train: true,
};

fn inputs(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let images = Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu));
    let tokens = Tensor::randint_low(1, 49000, [n, 32], (Kind::Int64, Device::Cpu));
    let lens =
        Vec::<i64>::try_from(Tensor::randint_low(2, 32, [n], (Kind::Int64, Device::Cpu))).unwrap();
    for (row, len) in lens.into_iter().enumerate() {
        let _ = tokens
            .get(row as i64)
            .get(len)
            .fill_(openwit_clip::tokenizer::EOT);
    }
    (images, tokens)
}

fn zero_grad(model: &Clip) {
    for (_, p) in model.named_parameters() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

fn grads(model: &Clip) -> HashMap<String, Tensor> {
    model
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, p.grad().copy()))
        .collect()
}

/// The step's gradients with `k` micro-batches of `b` rows of `images`/`tokens`.
fn accumulated(
    model: &Clip,
    k: usize,
    b: i64,
    images: &Tensor,
    tokens: &Tensor,
    checkpointed: bool,
) -> (f64, HashMap<String, Tensor>) {
    zero_grad(model);
    let mut calls = 0;
    let loss = accumulated_backward(
        model,
        k,
        &mut |j| {
            calls += 1;
            let j = j as i64;
            Ok((images.narrow(0, j * b, b), tokens.narrow(0, j * b, b)))
        },
        FWD,
        checkpointed,
        None,
    )
    .unwrap();
    // The cache pass and the gradient pass each asked for every micro-batch once.
    assert_eq!(calls, if k == 1 { 1 } else { 2 * k });
    (loss.double_value(&[]), grads(model))
}

/// The largest difference over all parameters, and where.
fn worst(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> (f64, String) {
    let mut w = (0.0f64, String::new());
    for (name, x) in a {
        let d = (x - &b[name]).abs().max().double_value(&[]);
        if d > w.0 {
            w = (d, name.clone());
        }
    }
    w
}

#[test]
fn k_micro_batches_give_the_gradients_of_one_batch_of_k_times_b() {
    let (k, b) = (4usize, 4i64);
    let cfg = ModelConfig::preset("tiny-vit").unwrap();
    let model = Clip::new_seeded(&cfg, Device::Cpu, 11);
    let (images, tokens) = inputs(k as i64 * b, 5);

    zero_grad(&model);
    let (i, t, s) = model.forward(&images, &tokens, FWD);
    let big = clip_loss(&i, &t, &s);
    big.backward();
    let want = grads(&model);
    let want_loss = big.double_value(&[]);

    for checkpointed in [false, true] {
        let (loss, got) = accumulated(&model, k, b, &images, &tokens, checkpointed);
        let (d, name) = worst(&got, &want);
        eprintln!(
            "accum_freq {k} x {b} (checkpointed: {checkpointed}): loss {loss} vs {want_loss}, largest gradient difference {d:.2e} ({name})"
        );
        assert!(
            (loss - want_loss).abs() <= 1e-5,
            "loss {loss} vs {want_loss} over one batch of {}",
            k as i64 * b
        );
        assert!(
            d <= 1e-4,
            "`{name}`: the gradient differs by {d} from one batch of {}",
            k as i64 * b
        );
    }

    // Not a comparison that cannot fail: one micro-batch's own loss (the old `accum_steps`,
    // each micro-batch its own contrastive batch) has other gradients.
    zero_grad(&model);
    for j in 0..k as i64 {
        let (i, t, s) = model.forward(
            &images.narrow(0, j * b, b),
            &tokens.narrow(0, j * b, b),
            FWD,
        );
        (clip_loss(&i, &t, &s) / k as f64).backward();
    }
    let (d, _) = worst(&grads(&model), &want);
    assert!(
        d > 1e-3,
        "independent micro-batch losses should not match the big batch ({d})"
    );
}

#[test]
fn accum_freq_matches_open_clip_train_step() {
    let Some(py) = common::python_path() else {
        return;
    };
    let (k, b) = (3usize, 4i64);
    let dir = tempfile::tempdir().unwrap();
    common::reference(
        &py,
        &[
            "accum",
            dir.path().to_str().unwrap(),
            &k.to_string(),
            &b.to_string(),
        ],
    );
    let mut model = Clip::new(&ModelConfig::preset("tiny-vit").unwrap(), Device::Cpu);
    model.load(&dir.path().join("weights.safetensors")).unwrap();
    let r = common::read(&dir.path().join("accum.safetensors"));
    let (_, got) = accumulated(&model, k, b, &r["images"], &r["texts"], false);
    let mut checked = 0;
    let mut w = (0.0f64, String::new());
    for (name, g) in &got {
        let theirs = &r[&format!("grad.{name}")];
        let d = if name == "logit_scale" {
            // OpenCLIP's k passes each add the whole dL/dscale.
            common::max_diff(&(g * k as f64), theirs)
        } else {
            common::max_diff(g, theirs)
        };
        if d > w.0 {
            w = (d, name.clone());
        }
        checked += 1;
    }
    eprintln!(
        "accum_freq {k} x {b} vs open_clip_train: {checked} gradients, largest difference {:.2e} ({})",
        w.0, w.1
    );
    assert_eq!(checked, r.len() - 2, "a parameter is missing on one side");
    assert!(
        w.0 <= 1e-4,
        "`{}`: the gradient differs by {} from open_clip_train's --accum-freq {k} step",
        w.1,
        w.0
    );
    // The step had gradients to compare.
    assert!(
        common::max_diff(
            &got["logit_scale"],
            &Tensor::zeros_like(&got["logit_scale"])
        ) > 0.0
    );
}

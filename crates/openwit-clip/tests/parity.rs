//! Parity with OpenCLIP (open_clip_torch 3.3.0 on torch 2.11, CPU, fp32): a randomly initialized
//! OpenCLIP model saved as safetensors loads into ours by name and gives the same features and
//! logits; `ClipLoss` and its gradients match ours.

mod common;

use openwit_clip::loss::clip_loss;
use openwit_clip::{Clip, Fwd, ModelConfig};
use tch::{Device, Tensor};

fn model_parity(name: &str) {
    let Some(py) = common::python_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::reference(&py, &["model", name, dir.path().to_str().unwrap()]);
    let mut model = Clip::new(&ModelConfig::preset(name).unwrap(), Device::Cpu);
    model.load(&dir.path().join("weights.safetensors")).unwrap();
    let io = common::read(&dir.path().join("io.safetensors"));
    let f = Fwd::eval();
    let (img, txt, logits) = tch::no_grad(|| {
        let img = model.encode_image(&io["images"], f);
        let txt = model.encode_text(&io["texts"], f);
        let (i, t, s) = model.forward(&io["images"], &io["texts"], f);
        (img, txt, s * i.matmul(&t.tr()))
    });
    let di = common::max_diff(&img, &io["image_features"]);
    let dt = common::max_diff(&txt, &io["text_features"]);
    let dl = common::max_diff(&logits, &io["logits"]);
    eprintln!("{name}: image {di:.2e}, text {dt:.2e}, logits {dl:.2e}");
    assert!(di < 1e-4, "{name}: image features differ by {di}");
    assert!(dt < 1e-4, "{name}: text features differ by {dt}");
    assert!(dl < 1e-4, "{name}: logits differ by {dl}");

    // And back: our safetensors export holds exactly OpenCLIP's keys and shapes.
    let ours = dir.path().join("ours.safetensors");
    model.save(&ours).unwrap();
    let a = common::read(&ours);
    let b = common::read(&dir.path().join("weights.safetensors"));
    let mut ka: Vec<_> = a.keys().collect();
    let mut kb: Vec<_> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb, "{name}: state-dict names differ");
    for k in ka {
        assert_eq!(a[k].size(), b[k].size(), "{name}: {k}");
        assert_eq!(a[k].kind(), b[k].kind(), "{name}: {k}");
    }
}

#[test]
fn vit_b_32_matches_open_clip() {
    model_parity("ViT-B-32");
}

#[test]
fn rn50_matches_open_clip() {
    model_parity("RN50");
}

#[test]
fn quickgelu_vit_matches_open_clip() {
    model_parity("ViT-B-32-quickgelu");
}

#[test]
fn clip_loss_and_gradients_match_open_clip() {
    let Some(py) = common::python_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::reference(&py, &["loss", dir.path().to_str().unwrap()]);
    let r = common::read(&dir.path().join("loss.safetensors"));
    let img = r["image"].copy().set_requires_grad(true);
    let txt = r["text"].copy().set_requires_grad(true);
    let scale = r["scale"].copy().set_requires_grad(true);
    let loss = clip_loss(&img, &txt, &scale);
    loss.backward();
    assert!(common::max_diff(&loss, &r["loss"]) < 1e-5);
    assert!(common::max_diff(&img.grad(), &r["grad_image"]) < 1e-6);
    assert!(common::max_diff(&txt.grad(), &r["grad_text"]) < 1e-6);
    assert!(common::max_diff(&scale.grad(), &r["grad_scale"]) < 1e-6);
    let _ = Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
}

"""Reference results for openwit-clip's evaluation tests: clip_benchmark's own zero-shot and
retrieval code, and scikit-learn's logistic regression (lbfgs), on inputs the Rust test wrote.

    python3 bench_ref.py zeroshot WEIGHTS ROOT SPLIT OUT.json    # clip_benchmark wds set
    python3 bench_ref.py retrieval WEIGHTS ROOT SPLIT OUT.json
    python3 bench_ref.py probe IN.safetensors OUT.safetensors    # LogisticRegression(C, lbfgs)
    python3 bench_ref.py imagefolder ROOT OUT.json   # torchvision's ImageFolder: classes, samples

WEIGHTS are the Rust `tiny-vit` preset's weights (OpenCLIP names), loaded strictly into an
open_clip CLIP of the same shape. Run with PYTHONPATH=$OPENWIT_CLIP_PYTHONPATH (see
scripts/setup-libtorch.sh --python).
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file


def tiny_vit(weights):
    """open_clip's CLIP with the shape of openwit's `tiny-vit` preset."""
    import open_clip

    model = open_clip.CLIP(
        embed_dim=64,
        vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32),
        text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=2),
    )
    model.load_state_dict(load_file(weights), strict=True)
    model.eval()
    preprocess = open_clip.image_transform(32, is_train=False)
    tokenizer = lambda texts: open_clip.tokenize(texts, context_length=32)  # noqa: E731
    return model, preprocess, tokenizer


def benchmark(task, weights, root, split, out):
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification, zeroshot_retrieval

    # clip_benchmark 1.6.2's `accuracy` converts a 1-element array with float(), which NumPy 2
    # refuses: the module's `float` takes the element (its arithmetic is untouched).
    import builtins

    import numpy as np

    zeroshot_classification.float = lambda x: builtins.float(
        x.item() if isinstance(x, np.ndarray) else x
    )
    model, preprocess, tokenizer = tiny_vit(weights)
    ds = build_dataset(
        "wds/openwit_test",
        root=root,
        transform=preprocess,
        split=split,
        download=False,
        task="zeroshot_" + task,
    )
    # As clip_benchmark's command line loads a wds set (an odd batch size, so batches straddle
    # shards and the last one is short).
    loader = torch.utils.data.DataLoader(
        ds.batched(7), batch_size=None, shuffle=False, num_workers=0
    )
    with torch.no_grad():
        if task == "classification":
            metrics = zeroshot_classification.evaluate(
                model, loader, tokenizer, ds.classes, ds.templates, device="cpu", amp=False
            )
        else:
            metrics = zeroshot_retrieval.evaluate(
                model, loader, tokenizer, device="cpu", amp=False, recall_k_list=[1, 5, 10]
            )
    with open(out, "w") as f:
        json.dump(metrics, f)


def probe(inp, out):
    from sklearn.linear_model import LogisticRegression

    t = load_file(inp)
    c = float(t["c"].item())
    clf = LogisticRegression(C=c, solver="lbfgs", max_iter=100000, tol=1e-12)
    clf.fit(t["train_x"].double().numpy(), t["train_y"].numpy())
    pred = clf.predict(t["test_x"].double().numpy())
    save_file(
        {
            "coef": torch.from_numpy(clf.coef_).contiguous(),
            "intercept": torch.from_numpy(clf.intercept_).contiguous(),
            "test_pred": torch.from_numpy(pred).long(),
            "iterations": torch.tensor([int(clf.n_iter_.max())]),
        },
        out,
    )


def imagefolder(root, out):
    """The classes and (file, class index) samples torchvision's ImageFolder finds, and whether
    PIL decodes each file (what the DataLoader would do with it)."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(root)
    decodes = []
    for path, _ in folder.samples:
        try:
            Image.open(path).convert("RGB")
            decodes.append(True)
        except Exception:  # noqa: BLE001 - a refusal is the answer
            decodes.append(False)
    json.dump(
        {"classes": folder.classes, "samples": folder.samples, "decodes": decodes},
        open(out, "w"),
    )


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd in ("zeroshot", "retrieval"):
        task = "classification" if cmd == "zeroshot" else "retrieval"
        benchmark(task, *sys.argv[2:6])
    elif cmd == "probe":
        probe(sys.argv[2], sys.argv[3])
    elif cmd == "imagefolder":
        imagefolder(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")

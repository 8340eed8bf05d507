"""Reference outputs from open_clip_torch for openwit-clip's parity tests (CPU, fp32, no download).

    python3 openclip_ref.py model MODEL OUT_DIR      # weights + inputs + features, as safetensors
    python3 openclip_ref.py tokens CAPTIONS.json OUT.json [CONTEXT]
    python3 openclip_ref.py clean CAPTIONS.json OUT.json   # the cleaned texts (ftfy, html, lower)
    python3 openclip_ref.py codecs OUT.json        # the single-byte codecs ftfy re-encodes with
    python3 openclip_ref.py loss OUT_DIR             # ClipLoss value and gradients
    python3 openclip_ref.py accum OUT_DIR K B        # open_clip_train's --accum-freq K step, tiny ViT

Run with PYTHONPATH=$OPENWIT_CLIP_PYTHONPATH (see scripts/setup-libtorch.sh).
"""
import json
import sys

import torch
from safetensors.torch import save_file


def model(name, out):
    import open_clip

    torch.manual_seed(0)
    m = open_clip.create_model(name, pretrained=None)
    m.eval()
    # Non-trivial batch-norm statistics and gains so a wrong buffer or a zeroed bn3 is noticed.
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.normal_(1, 0.2)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, f"{out}/weights.safetensors")
    size = m.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, size, size, generator=g)
    tok = open_clip.get_tokenizer(name)
    texts = tok(["a photo of a red circle", "Zwei Hunde &amp; eine Katze im Schnee!"])
    with torch.no_grad():
        img = m.encode_image(images)
        txt = m.encode_text(texts)
        imgn, txtn, scale = m(images, texts)[:3]
        logits = scale * imgn @ txtn.T
    save_file(
        {"images": images, "texts": texts, "image_features": img, "text_features": txt, "logits": logits},
        f"{out}/io.safetensors",
    )


def tokens(captions, out, context=77):
    import open_clip

    tok = open_clip.get_tokenizer("ViT-B-32")
    with open(captions) as f:
        texts = json.load(f)
    ids = tok(texts, context_length=context) if context != 77 else tok(texts)
    with open(out, "w") as f:
        json.dump(ids.tolist(), f)


def clean(captions, out):
    from open_clip.tokenizer import _clean_lower

    with open(captions) as f:
        texts = json.load(f)
    with open(out, "w") as f:
        json.dump([_clean_lower(t) for t in texts], f)


def codecs(out):
    import ftfy  # noqa: F401 (registers the sloppy codecs)
    from ftfy.chardata import CHARMAP_ENCODINGS

    tables = {e: [ord(c) for c in bytes(range(256)).decode(e)] for e in CHARMAP_ENCODINGS}
    with open(out, "w") as f:
        json.dump({"ftfy": ftfy.__version__, "tables": tables}, f)


def loss(out):
    from open_clip.loss import ClipLoss

    g = torch.Generator().manual_seed(2)
    img = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1).requires_grad_()
    txt = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=-1).requires_grad_()
    scale = torch.tensor(14.285714).requires_grad_()
    value = ClipLoss()(img, txt, scale)
    value.backward()
    save_file(
        {
            "image": img.detach(),
            "text": txt.detach(),
            "scale": scale.detach(),
            "loss": value.detach(),
            "grad_image": img.grad,
            "grad_text": txt.grad,
            "grad_scale": scale.grad,
        },
        f"{out}/loss.safetensors",
    )


def accum(out, k, b):
    """One optimizer step of open_clip_train's own `train_one_epoch` with `accum_freq = k` over k
    micro-batches of b pairs, on a tiny ViT CLIP (openwit-clip's `tiny-vit`); the gradients are
    read after the step (SGD at lr 0 leaves the weights and the gradients as they are)."""
    from types import SimpleNamespace

    from open_clip.loss import ClipLoss
    from open_clip.model import CLIP
    from open_clip_train.train import train_one_epoch

    torch.manual_seed(0)
    m = CLIP(
        embed_dim=64,
        vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=32),
        text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=2),
        output_dict=True,
    )
    sd = {k2: v.contiguous() for k2, v in m.state_dict().items()}
    save_file(sd, f"{out}/weights.safetensors")
    g = torch.Generator().manual_seed(3)
    n = k * b
    images = torch.randn(n, 3, 32, 32, generator=g)
    texts = torch.randint(1, 49000, (n, 32), generator=g)
    for row, length in enumerate(torch.randint(2, 32, (n,), generator=g).tolist()):
        texts[row, length] = 49407  # the end of text, the pooled position
    batches = [(images[j * b:(j + 1) * b], texts[j * b:(j + 1) * b]) for j in range(k)]

    class Loader:
        num_batches = k
        num_samples = n

        def __iter__(self):
            return iter(batches)

    data = {"train": SimpleNamespace(set_epoch=lambda e: None, dataloader=Loader())}
    args = SimpleNamespace(
        device="cpu", precision="fp32", distill=False, accum_freq=k, skip_scheduler=True,
        grad_clip_norm=None, horovod=False, log_every_n_steps=1, batch_size=b, world_size=1,
        rank=0, local_rank=0, wandb=False,
    )
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    train_one_epoch(m, data, ClipLoss(), 0, opt, None, None, None, args)
    grads = {f"grad.{name}": p.grad.contiguous() for name, p in m.named_parameters() if p.grad is not None}
    save_file({"images": images, "texts": texts, **grads}, f"{out}/accum.safetensors")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "model":
        model(sys.argv[2], sys.argv[3])
    elif cmd == "tokens":
        tokens(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 77)
    elif cmd == "clean":
        clean(sys.argv[2], sys.argv[3])
    elif cmd == "codecs":
        codecs(sys.argv[2])
    elif cmd == "loss":
        loss(sys.argv[2])
    elif cmd == "accum":
        accum(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")

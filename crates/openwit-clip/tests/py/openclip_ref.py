"""Reference outputs from open_clip_torch for openwit-clip's parity tests (CPU, fp32, no download).

    python3 openclip_ref.py model MODEL OUT_DIR      # weights + inputs + features, as safetensors
    python3 openclip_ref.py tokens CAPTIONS.json OUT.json [CONTEXT]
    python3 openclip_ref.py clean CAPTIONS.json OUT.json   # the cleaned texts (ftfy, html, lower)
    python3 openclip_ref.py codecs OUT.json        # the single-byte codecs ftfy re-encodes with
    python3 openclip_ref.py loss OUT_DIR             # ClipLoss value and gradients

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
    else:
        sys.exit(f"unknown command {cmd}")

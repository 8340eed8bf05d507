"""Reference for openwit-clip's image preprocessing test: how OpenCLIP reads and transforms a
picture for evaluation, on the files the Rust test names.

    python3 preprocess_ref.py MANIFEST.json OUT_DIR SIZE

MANIFEST maps a name to a file. For each, PIL opens and loads the file as OpenCLIP's loaders do
(`Image.open(...).load()`), composites transparency on white (what openwit does to every picture,
as `download` stores them; PIL's own `convert("RGB")` drops alpha instead), and applies
`open_clip.image_transform(SIZE, is_train=False)`'s resize and center crop (torchvision's
`Resize(SIZE)`, bicubic, and `CenterCrop(SIZE)`). It writes OUT_DIR/NAME.png (the transformed
RGB picture) and OUT_DIR/result.json: per name, PIL's mode and the error where PIL refuses the
file. Run with PYTHONPATH=$OPENWIT_CLIP_PYTHONPATH (see scripts/setup-libtorch.sh --python).
"""
import json
import os
import sys
import warnings

import open_clip
from PIL import Image


def on_white(im):
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La")
    if has_alpha or "transparency" in im.info:
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB")


def main(manifest, out_dir, size):
    transform = open_clip.image_transform(size, is_train=False)
    # Resize and CenterCrop; the rest converts to a normalized tensor.
    resize, crop = transform.transforms[0], transform.transforms[1]
    files = json.load(open(manifest))
    result = {}
    for name, path in files.items():
        try:
            with warnings.catch_warnings():
                # PIL warns between 89M and 179M pixels and decodes the picture.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
                im.load()
                mode = im.mode
                crop(resize(on_white(im))).save(os.path.join(out_dir, name + ".png"))
            result[name] = {"mode": mode, "error": None}
        except Exception as e:  # noqa: BLE001 - every refusal is a result here
            result[name] = {"mode": None, "error": f"{type(e).__name__}: {e}"}
    json.dump(result, open(os.path.join(out_dir, "result.json"), "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))

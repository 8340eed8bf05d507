"""Pillow's decode of each image named on the command line, as one JSON object per line.

Used by `tests/real_images.rs` as the reference for the download stage's decoding: the size after
EXIF orientation (`ImageOps.exif_transpose`) and the mean colour of the first frame with alpha
composited on white, overall and over a 4 x 4 grid of cells (row by row; cell (cx, cy) covers
columns cx * w // 4 up to (cx + 1) * w // 4, rows likewise), which tells a rotation or flip apart.
CMYK is rendered as (255 - C) * (255 - K) / 255; 16-bit greyscale is scaled to 8 bits (v / 257)
rather than clipped as Pillow's own I;16 -> L conversion does. Also the format and stored size
that `Image.open` reads from the header, even where decoding then fails.
"""

import json
import sys

import numpy as np
from PIL import Image, ImageOps


def rgb_of(im):
    if im.mode == "CMYK":
        # Ink amounts (Pillow undoes Adobe's inversion) to RGB: (255 - C) * (255 - K) / 255. Pillow's
        # own convert("RGB") ignores K's interaction and renders these JPEGs far too dark.
        a = np.asarray(im, dtype=np.float64)
        k = 255.0 - a[:, :, 3:4]
        return (255.0 - a[:, :, :3]) * k / 255.0
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "I" and a.max() <= 255:
            g = a
        else:
            g = a / 257.0
        if "transparency" in im.info:
            # A tRNS colour key: those pixels are transparent, white once composited.
            g = np.where(a == im.info["transparency"], 255.0, g)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    ) or (im.mode in ("L", "RGB", "1") and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        a = rgba[:, :, 3:4] / 255.0
        return rgba[:, :, :3] * a + 255.0 * (1.0 - a)
    return np.asarray(im.convert("RGB"), dtype=np.float64)


for path in sys.argv[1:]:
    out = {"file": path}
    try:
        with Image.open(path) as im:
            out["format"] = im.format
            out["stored"] = list(im.size)
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            px = rgb_of(im)
            out["ok"] = True
            out["width"], out["height"] = im.size
            out["mean"] = [float(v) for v in px.reshape(-1, 3).mean(axis=0)]
            w, h = im.size
            out["grid"] = [
                [float(v) for v in cell.reshape(-1, 3).mean(axis=0)]
                for cell in (
                    px[cy * h // 4 : (cy + 1) * h // 4, cx * w // 4 : (cx + 1) * w // 4]
                    for cy in range(4)
                    for cx in range(4)
                )
            ] if w >= 16 and h >= 16 else []
    except Exception as e:  # noqa: BLE001 - any failure is "Pillow cannot decode it"
        out["ok"] = False
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))

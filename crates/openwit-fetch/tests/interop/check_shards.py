"""Reads every shard of a download folder with the `webdataset` package and pyarrow, as OpenCLIP
and img2dataset users do, and checks the layout: keys, members, json fields, parquet columns,
_stats.json and sizes.json. Usage: python3 check_shards.py DOWNLOAD_DIR [IMAGE_SIZE]"""

import glob
import json
import os
import re
import sys

import pyarrow.parquet as pq
import webdataset as wds

# The fields img2dataset writes in each sample's json and each shard's parquet.
IMG2DATASET_FIELDS = {
    "url", "caption", "key", "status", "error_message", "width", "height",
    "original_width", "original_height", "exif", "sha256",
}
STATS_FIELDS = {
    "count", "successes", "failed_to_download", "failed_to_resize", "duration",
    "start_time", "end_time", "status_dict",
}


def main(folder, image_size):
    sizes = json.load(open(os.path.join(folder, "sizes.json")))
    tars = sorted(glob.glob(os.path.join(folder, "[0-9]*.tar")))
    assert tars, "no shards"
    assert sorted(sizes) == [os.path.basename(t) for t in tars], (sizes, tars)
    checked = 0
    for tar in tars:
        name = os.path.basename(tar)[: -len(".tar")]
        ds = wds.WebDataset(tar, shardshuffle=False, empty_check=False).decode("pil")
        n = 0
        keys = []
        for sample in ds:
            key = sample["__key__"]
            assert re.fullmatch(r"\d+", key), key
            assert key.startswith(name), (key, name)
            img = sample["jpg"]
            img.load()
            meta = sample["json"]
            assert IMG2DATASET_FIELDS <= set(meta), set(meta) ^ IMG2DATASET_FIELDS
            assert meta["key"] == key and meta["status"] == "success"
            assert (meta["width"], meta["height"]) == img.size, (meta, img.size)
            if image_size:
                assert img.size == (image_size, image_size), img.size
            assert sample["txt"] == meta["caption"], (sample["txt"], meta["caption"])
            keys.append(key)
            n += 1
        assert n == sizes[os.path.basename(tar)], (tar, n, sizes)
        table = pq.read_table(os.path.join(folder, name + ".parquet"))
        cols = set(table.column_names)
        assert IMG2DATASET_FIELDS <= cols, IMG2DATASET_FIELDS - cols
        rows = table.to_pylist()
        ok = [r["key"] for r in rows if r["status"] == "success"]
        assert sorted(ok) == sorted(keys), (ok, keys)
        assert all(r["status"] in ("success", "failed_to_download", "failed_to_resize") for r in rows)
        assert all(r["error_message"] for r in rows if r["status"] != "success")
        stats = json.load(open(os.path.join(folder, name + "_stats.json")))
        assert STATS_FIELDS <= set(stats), STATS_FIELDS - set(stats)
        assert stats["count"] == len(rows) and stats["successes"] == n
        checked += n
    print(f"checked {checked} samples in {len(tars)} shards")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)

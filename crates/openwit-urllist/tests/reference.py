"""Reference reading of a URL list with Python's csv and json modules and pyarrow.

Usage: reference.py FILE FORMAT URL_COL CAPTION_COL
Prints one JSON line per row: {"url": ..., "caption": ..., "extra": {every other column}} or
{"drop": reason} for rows the stages must drop (field_count, not_an_object, missing_url,
missing_caption, not_text). CSV is read with strict=True (RFC 4180: it raises on an unterminated
quote or text after a closing quote); TSV with no quoting; JSON rejects NaN/Infinity.
"""

import csv
import io
import json
import sys


def no_constants(name):
    raise ValueError(f"not JSON: {name}")


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        raise TypeError
    return str(v)


def emit(rec, url_col, cap_col):
    try:
        url = text(rec.get(url_col))
        cap = text(rec.get(cap_col))
    except TypeError:
        return {"drop": "not_text"}
    if url is None or not url.strip():
        return {"drop": "missing_url"}
    if cap is None or not cap.strip():
        return {"drop": "missing_caption"}
    extra = {k: v for k, v in rec.items() if k not in (url_col, cap_col)}
    return {"url": url.strip(), "caption": cap, "extra": extra}


def main():
    path, fmt, url_col, cap_col = sys.argv[1:5]
    out = []
    if fmt in ("csv", "tsv"):
        with open(path, encoding="utf-8-sig", newline="") as f:
            if fmt == "csv":
                rows = csv.reader(f, strict=True)
            else:
                rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
            rows = [r for r in rows if r]
        header = [h.strip() for h in rows[0]]
        for r in rows[1:]:
            if len(r) != len(header):
                out.append({"drop": "field_count"})
                continue
            rec = {}
            for k, v in zip(header, r):
                rec.setdefault(k, v)
            out.append(emit(rec, url_col, cap_col))
    elif fmt == "jsonl":
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                line = line.strip(b" \t\r\n")
                if not line:
                    continue
                v = json.loads(line.decode("utf-8"), parse_constant=no_constants)
                out.append(emit(v, url_col, cap_col) if isinstance(v, dict) else {"drop": "not_an_object"})
    elif fmt == "json":
        with open(path, encoding="utf-8-sig") as f:
            for v in json.load(f, parse_constant=no_constants):
                out.append(emit(v, url_col, cap_col) if isinstance(v, dict) else {"drop": "not_an_object"})
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for rec in pq.read_table(path).to_pylist():
            out.append(emit(rec, url_col, cap_col))
    for o in out:
        print(json.dumps(o, default=str))


main()

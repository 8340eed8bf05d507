#!/usr/bin/env python3
"""Python reference for scripts/bench-sources.sh: the stack LAION's cc2dataset and MetaCLIP use.

WARC: warcio streams the records; each HTML response is parsed with selectolax (lexbor); every
<img> with a src (resolved with urljoin) and a non-empty alt is a pair. WAT: warcio + json;
Links entries with path IMG@/src and an alt are pairs. One process, one core.
`--parse-only FILE`: CPU seconds of selectolax's parse alone over the WARC's HTML pages held in
memory (the parser-vs-parser figure for `bench_sources parse-only`).
"""
import json
import os
import sys
import time
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser
from warcio.archiveiterator import ArchiveIterator


def warc_pairs(path):
    pairs = records = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            records += 1
            if rec.rec_type != "response":
                continue
            ct = rec.http_headers.get_header("Content-Type") or ""
            if "html" not in ct:
                continue
            robots = (rec.http_headers.get_header("X-Robots-Tag") or "").lower()
            if "noai" in robots or "noimageai" in robots:
                continue
            page = rec.rec_headers.get_header("WARC-Target-URI")
            html = rec.content_stream().read().decode("utf-8", "replace")
            tree = LexborHTMLParser(html)
            for img in tree.css("img"):
                src = img.attributes.get("src")
                alt = (img.attributes.get("alt") or "").strip()
                if not src or not alt or src.startswith("data:"):
                    continue
                pairs += 1
                urljoin(page, src)
    return records, pairs


def wat_pairs(path):
    pairs = records = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            records += 1
            if rec.rec_type != "metadata":
                continue
            j = json.loads(rec.content_stream().read())
            env = j.get("Envelope", {})
            page = env.get("WARC-Header-Metadata", {}).get("WARC-Target-URI")
            meta = env.get("Payload-Metadata", {}).get("HTTP-Response-Metadata", {}).get("HTML-Metadata", {})
            metas = meta.get("Head", {}).get("Metas", [])
            if any(m.get("name", "").lower() == "robots" and "noimageai" in m.get("content", "").lower() for m in metas):
                continue
            for link in meta.get("Links", []):
                if link.get("path") == "IMG@/src" and link.get("alt") and link.get("url"):
                    pairs += 1
                    urljoin(page, link["url"])
    return records, pairs


def parse_only(path):
    """The parser's share alone: the HTML responses are read into memory first (warcio not
    counted), then decoded, then decoded and parsed by selectolax (lexbor)."""
    bodies = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            if "html" not in (rec.http_headers.get_header("Content-Type") or ""):
                continue
            bodies.append(rec.content_stream().read())
    size = os.path.getsize(path)
    c = time.process_time()
    for b in bodies:
        b.decode("utf-8", "replace")
    decode = time.process_time() - c
    c = time.process_time()
    for b in bodies:
        LexborHTMLParser(b.decode("utf-8", "replace"))
    both = time.process_time() - c
    for step, cpu in (("decode", decode), ("decode + parse (selectolax LexborHTMLParser)", both)):
        print(json.dumps({"impl": "python-selectolax", "step": step, "file": path, "pages": len(bodies),
                          "html_mb": round(sum(map(len, bodies)) / 1e6, 1), "cpu_secs": round(cpu, 3),
                          "file_mb_per_cpu_s": round(size / 1e6 / cpu, 1)}))


def main():
    if sys.argv[1] == "--parse-only":
        return parse_only(sys.argv[2])
    path = sys.argv[1]
    size = os.path.getsize(path)
    t = time.perf_counter()
    c = time.process_time()
    records, pairs = (wat_pairs if ".wat" in path else warc_pairs)(path)
    secs = time.perf_counter() - t
    cpu = time.process_time() - c
    print(json.dumps({"impl": "python-warcio-selectolax", "file": path, "mb": round(size / 1e6, 1), "records": records,
                      "pairs": pairs, "secs": round(secs, 3), "cpu_secs": round(cpu, 3),
                      "mb_per_s": round(size / 1e6 / secs, 2), "pairs_per_s": round(pairs / secs),
                      "mb_per_cpu_s": round(size / 1e6 / cpu, 2), "pairs_per_cpu_s": round(pairs / cpu)}))


if __name__ == "__main__":
    main()

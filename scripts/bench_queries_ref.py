"""Python reference for the queries bench: counts the same tokens as `openwit queries` on a
multistream dump with mwparserfromhell (wikitext -> text) and MetaCLIP's spacing rule.

usage: bench_queries_ref.py DUMP.xml.bz2 MAX_PAGES
prints one JSON line: seconds (wall), cpu_seconds (this process), pages, tokens, bigrams,
bytes_in (compressed bytes read)."""
import bz2
import collections
import json
import os
import re
import sys
import time

import mwparserfromhell

# the token rule is the queries tests' oracle's (one definition)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "openwit-queries",
                                "tests", "py"))
from ref_counts import SPACED, line_tokens  # noqa: E402

PAGE = re.compile(rb"<page>.*?</page>", re.S)
TEXT = re.compile(rb"<text[^>]*>(.*?)</text>", re.S)
NS = re.compile(rb"<ns>(-?\d+)</ns>")


def unescape(b):
    s = b.decode("utf-8")
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def main():
    path, max_pages = sys.argv[1], int(sys.argv[2])
    uni = collections.Counter()
    bi = collections.Counter()
    pages = tokens = 0
    t0 = time.time()
    c0 = time.process_time()
    raw = open(path, "rb")
    dec = bz2.BZ2Decompressor()
    buf = b""
    done = False
    while not done:
        chunk = raw.read(1 << 20)
        if not chunk:
            break
        while chunk:
            if dec.eof:
                rest = dec.unused_data
                dec = bz2.BZ2Decompressor()
                chunk = rest + chunk if rest else chunk
            buf += dec.decompress(chunk)
            chunk = dec.unused_data if dec.eof else b""
            if dec.eof:
                dec = bz2.BZ2Decompressor()
        last = 0
        for m in PAGE.finditer(buf):
            last = m.end()
            page = m.group(0)
            if b"<redirect" in page or NS.search(page).group(1) != b"0":
                pages += 1
                continue
            t = TEXT.search(page)
            text = mwparserfromhell.parse(unescape(t.group(1))).strip_code() if t else ""
            for line in text.splitlines():
                prev = None
                for tok in line_tokens(line):
                    uni[tok] += 1
                    tokens += 1
                    if len(tok) == 1 and tok in SPACED:
                        prev = None
                        continue
                    if prev is not None:
                        bi[(prev, tok)] += 1
                    prev = tok
            pages += 1
            if pages >= max_pages:
                done = True
                break
        buf = buf[last:]
    secs = time.time() - t0
    cpu = time.process_time() - c0
    print(json.dumps({"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "pages": pages, "tokens": tokens,
                      "unigram_types": len(uni), "bigram_types": len(bi), "bytes_in": raw.tell()}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference matcher: MetaCLIP's substring matching with pyahocorasick, same semantics as
openwit-curate's Matcher (spacing, " " + entry + " " patterns, case-sensitive, overlapping,
set of entry ids). Usage: metaclip_match.py ENTRIES.json CAPTIONS.txt OUT.txt
Prints {"captions", "cpu_seconds", "wall_seconds", "captions_per_s" (per CPU second),
"build_seconds"} as JSON on stdout; OUT.txt has
one line per caption: the sorted matched ids separated by spaces."""
import json
import sys
import time

import ahocorasick

PUNCTS = [",", ".", ";", ":", "?", "!", "`"]
SPACES = ["\t", "\n", "\r"]


def spacing(text):
    spaced = f" {text} "
    for p in PUNCTS:
        spaced = spaced.replace(p, f" {p} ")
    for c in SPACES:
        spaced = spaced.replace(c, " ")
    return spaced


def main():
    entries_path, captions_path, out_path = sys.argv[1:4]
    with open(entries_path, encoding="utf-8") as f:
        entries = json.load(f)
    with open(captions_path, encoding="utf-8", newline="\n") as f:
        captions = f.read().split("\n")
    if captions and captions[-1] == "":
        captions.pop()
    t0 = time.perf_counter()
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
    for i, e in enumerate(entries):
        automaton.add_word(f" {e} ", i)
    automaton.make_automaton()
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    c0 = time.thread_time()
    results = []
    for text in captions:
        ids = set()
        for _, i in automaton.iter(spacing(text)):
            ids.add(i)
        results.append(sorted(ids))
    wall = time.perf_counter() - t0
    seconds = time.thread_time() - c0
    with open(out_path, "w", encoding="utf-8") as f:
        for ids in results:
            f.write(" ".join(map(str, ids)))
            f.write("\n")
    print(json.dumps({
        "captions": len(captions),
        "wall_seconds": wall,
        "cpu_seconds": seconds,
        "captions_per_s": len(captions) / seconds,
        "build_seconds": build,
    }))


if __name__ == "__main__":
    main()

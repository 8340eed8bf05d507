"""Independent reference for the queries stage's word counts on real dumps (the tests' oracle).

Reads MediaWiki XML export files (.xml or .xml.bz2) with Python's own XML parser, keeps the pages
of namespace 0 that are not redirects, turns their wikitext into plain text with mwparserfromhell
(`strip_code`), splits it as MetaCLIP spaces texts (tab/CR/LF -> space; , . ; : ? ! ` wrapped in
spaces), strips quotes and brackets from the ends of each token, and counts.

usage: ref_counts.py TOP_N DUMP [DUMP ...]
prints one JSON object: pages (counted), redirects, other_namespaces, tokens, top ([token, count]
pairs, most frequent first).
"""
import bz2
import collections
import json
import re
import sys
import xml.etree.ElementTree as ET

import mwparserfromhell

SPACED = ",.;:?!`"
STRIP = "()[]{}<>\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"


NON_PROSE_TAGS = {
    "ref", "references", "math", "chem", "ce", "gallery", "timeline", "score", "syntaxhighlight",
    "source", "pre", "code", "imagemap", "hiero", "graph", "mapframe", "maplink", "templatedata",
    "templatestyles", "inputbox", "categorytree", "charinsert", "section", "indicator", "style",
    "script",
    # wiki tables: the cleaner counts prose only (as WikiExtractor does), not table cells
    "table",
}
HIDDEN_LINK_PREFIXES = {"category", "file", "image", "media"}
# interlanguage prefixes: `de`, `zh-yue`, `simple`
LANG = re.compile(r"[a-z]{2,3}|[a-z]+(-[a-z]+)+|simple")


def spaced(t):
    out = [" "]
    for c in t:
        if c in "\t\r\n":
            out.append(" ")
        elif c in SPACED:
            out.append(" " + c + " ")
        else:
            out.append(c)
    out.append(" ")
    return "".join(out)


def line_tokens(line):
    """The tokens of one line of plain text: spaced as MetaCLIP does, split on spaces, quotes and
    brackets stripped from the ends, empty ones dropped (also the queries bench's reference,
    `scripts/bench_queries_ref.py`)."""
    for tok in spaced(line).split(" "):
        tok = tok.strip(STRIP)
        if tok:
            yield tok


def local(tag):
    return tag.rsplit("}", 1)[-1]


def main():
    top_n = int(sys.argv[1])
    uni = collections.Counter()
    pages = redirects = other_ns = tokens = 0
    for path in sys.argv[2:]:
        f = bz2.open(path, "rb") if path.endswith(".bz2") else open(path, "rb")
        for _, el in ET.iterparse(f, events=("end",)):
            if local(el.tag) != "page":
                continue
            ns = redirect = text = None
            for child in el:
                name = local(child.tag)
                if name == "ns":
                    ns = child.text
                elif name == "redirect":
                    redirect = True
                elif name == "revision":
                    for r in child:
                        if local(r.tag) == "text":
                            text = r.text or ""
            el.clear()
            if redirect:
                redirects += 1
                continue
            if ns != "0":
                other_ns += 1
                continue
            pages += 1
            code = mwparserfromhell.parse(text or "")
            # MediaWiki shows no text for category, file and interlanguage links (strip_code would
            # keep their titles and `thumb|...` parameters): remove them as the page renders.
            for link in code.filter_wikilinks(recursive=True):
                title = str(link.title).strip()
                prefix = title.split(":", 1)[0].strip().lower() if ":" in title else None
                if prefix is not None and not title.startswith(":") and (
                        prefix in HIDDEN_LINK_PREFIXES or LANG.fullmatch(prefix)):
                    try:
                        code.remove(link)
                    except ValueError:
                        pass
            # Footnotes, formulas, code and other extension tags are not running text (the
            # cleaner's rule): strip_code would keep a `<ref>`'s citation inline.
            for tag in code.filter_tags(recursive=True):
                if str(tag.tag).strip().lower() in NON_PROSE_TAGS:
                    try:
                        code.remove(tag)
                    except ValueError:
                        pass
            plain = code.strip_code()
            for line in plain.splitlines():
                for tok in line_tokens(line):
                    uni[tok] += 1
                    tokens += 1
    print(json.dumps({"pages": pages, "redirects": redirects, "other_namespaces": other_ns,
                      "tokens": tokens, "top": uni.most_common(top_n)}, ensure_ascii=False))


if __name__ == "__main__":
    main()

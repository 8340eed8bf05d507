"""Python's tarfile on tar files: one JSON line per file (the oracle of tests/real_tars.rs).

Usage: tarfile_oracle.py FILE...  (paths relative to the working directory)

Each line: {"file", "error" (tarfile's exception as text, or null), "members": [{"name", "type"
(the type flag as tarfile reports it: "0" regular, "1" hard link, "2" symlink, "3"/"4" devices,
"5" folder, "6" fifo, "S" GNU sparse, ...), "size", "sparse" (tarfile expanded a GNU or pax
sparse map), "offset_data", "sha256" (of the data tarfile extracts, regular files that are not sparse)}]}.
"""
import hashlib
import json
import sys
import tarfile


def member(tf, m):
    out = {
        "name": m.name,
        "type": m.type.decode("latin-1"),
        "size": m.size,
        "sparse": m.sparse is not None,
        "offset_data": m.offset_data,
        "sha256": None,
    }
    if m.isreg() and m.sparse is None:
        out["sha256"] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
    return out


def main():
    for path in sys.argv[1:]:
        members, error = [], None
        try:
            with tarfile.open(path, mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
                for m in tf:
                    members.append(member(tf, m))
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            error = f"{type(e).__name__}: {e}"
        for m in members:
            m["name"] = m["name"].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        print(json.dumps({"file": path, "error": error, "members": members}))


if __name__ == "__main__":
    main()

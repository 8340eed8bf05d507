"""Writes the shard_reader fuzz seeds (seeds/shard_reader/) from the real tars in
../tests/data/tars (sources and licences in the README there).

Run from this folder: python3 make_seeds.py. Deterministic: the same seeds every time.

- every real tar of 16 KiB or less, whole (name: <dir>-<file>);
- CPython's testtar.tar (435 KB): its first 16 KiB;
- of five small tars with regular files (go/gnu.tar, go/ustar.tar, go/pax.tar, go/v7.tar,
  go/star.tar), four variants each: cut 3 bytes into its fourth 512-byte block (`cut`), one
  byte of the first header's name changed so the checksum fails (`badsum`), the first size field
  set to octal 77777777777 with the checksum fixed (`hugesize`), and the first size field in
  GNU base-256 with the sign bit set, checksum fixed (`negsize`).
"""
import os

SRC = os.path.join("..", "tests", "data", "tars")
OUT = os.path.join("seeds", "shard_reader")
LIMIT = 16 << 10


def fix_checksum(h):
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h[:512])
    return h


def main():
    os.makedirs(OUT, exist_ok=True)
    for d in ("go", "cpython"):
        for name in sorted(os.listdir(os.path.join(SRC, d))):
            data = open(os.path.join(SRC, d, name), "rb").read()
            stem = f"{d}-{name[:-4]}"
            if len(data) <= LIMIT:
                open(os.path.join(OUT, stem), "wb").write(data)
            elif name == "testtar.tar":
                open(os.path.join(OUT, stem + "-16k"), "wb").write(data[:LIMIT])
    for name in ("gnu", "ustar", "pax", "v7", "star"):
        data = bytearray(open(os.path.join(SRC, "go", name + ".tar"), "rb").read())
        open(os.path.join(OUT, f"go-{name}-cut"), "wb").write(data[: 512 * 3 + 3])
        bad = bytearray(data)
        bad[0] ^= 1
        open(os.path.join(OUT, f"go-{name}-badsum"), "wb").write(bad)
        huge = bytearray(data)
        huge[124:136] = b"77777777777\0"
        huge[:512] = fix_checksum(huge[:512])
        open(os.path.join(OUT, f"go-{name}-hugesize"), "wb").write(huge)
        neg = bytearray(data)
        neg[124:136] = b"\xff" * 11 + b"\xfe"
        neg[:512] = fix_checksum(neg[:512])
        open(os.path.join(OUT, f"go-{name}-negsize"), "wb").write(neg)


if __name__ == "__main__":
    main()

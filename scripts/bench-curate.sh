#!/usr/bin/env bash
# Benchmarks of the curate stage (numbers go to docs/BENCHMARKS.md, `## curate`):
#  1. language identifiers on the labelled 22-language caption set: English precision/recall,
#     captions/s on one core;
#  2. matching: 500,000 entries, 1M captions, one core (taskset -c 0), the Rust engines (the token
#     trie batched as the stage calls it and one caption at a time, the byte automaton) and the Python
#     reference (pyahocorasick, MetaCLIP's semantics) on the same captions; the matched sets
#     must be identical, and the ratio is reported (goal >= 20x);
#  3. the whole stage on a generated pool (POOL candidates, default 10M; POOL=0 skips it).
# Usage: scripts/bench-curate.sh [OUT_DIR]   (needs python3 with pyahocorasick, see .ci/requirements.txt)
# BENCH_PASSES=n also times n passes of each Rust engine over the captions (the first is the reported rate).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/bench-curate}"
POOL="${POOL:-10000000}"
ENTRIES="${ENTRIES:-500000}"
CAPTIONS="${CAPTIONS:-1000000}"
mkdir -p "$OUT"

cargo build --release -p openwit-curate --examples >&2
BIN="${CARGO_TARGET_DIR:-target}/release/examples"

echo "== language identification (langset: 22 languages)"
"$BIN"/langid_eval | tee "$OUT/langid.tsv"

echo "== matching: $ENTRIES entries, $CAPTIONS captions, one core"
# Both sides pinned to the same core (taskset), measured per CPU second of the matching thread.
PIN=""; command -v taskset >/dev/null && PIN="taskset -c 0"
$PIN "$BIN"/bench_match "$OUT/match" "$ENTRIES" "$CAPTIONS" | tee "$OUT/match_rust.json"
$PIN python3 crates/openwit-curate/tools/metaclip_match.py \
  "$OUT/match/entries.json" "$OUT/match/captions.txt" "$OUT/match/python.txt" | tee "$OUT/match_python.json"
if cmp -s "$OUT/match/rust.txt" "$OUT/match/python.txt"; then
  echo "matched sets: identical ($CAPTIONS captions)"
else
  echo "matched sets DIFFER: diff $OUT/match/rust.txt $OUT/match/python.txt" >&2
  exit 1
fi
python3 - "$OUT/match_rust.json" "$OUT/match_python.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
py = p["captions_per_s"]
print(f"python pyahocorasick: {py:,.0f} captions per CPU second")
for name, e in r["engines"].items():
    print(f"rust {name}: {e['captions_per_s']:,.0f} captions per CPU second = {e['captions_per_s']/py:.1f}x python "
          f"(build {e['build_seconds']:.2f} s, {e['memory_mib']:.0f} MiB)")
    if len(e.get("pass_captions_per_s", [])) > 1:
        print("  passes (BENCH_PASSES): " + ", ".join(f"{x:,.0f} = {x/py:.1f}x" for x in e["pass_captions_per_s"]))
PY

if [ "$POOL" != "0" ]; then
  echo "== the curate stage on a generated pool of $POOL candidates (jobs 2)"
  "$BIN"/bench_pool "$OUT/pool" "$POOL" 2 | tee "$OUT/pool.json"
  python3 - "$OUT/pool.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n, cpu = r["candidates"], r["cpu_seconds"]
rate = n / cpu
print(f"{n:,} candidates: {r['wall_seconds']:.0f} s wall, {cpu:.0f} CPU s ({rate:,.0f} candidates per CPU second), "
      f"map tasks {r['map_task_seconds_sum']:.0f} s (sum), reduce {r['reduce_seconds']:.0f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
big = 1.6e9
print(f"extrapolated to 1.6B candidates: {big/rate/3600:,.0f} CPU hours "
      f"({big/rate/3600/16:,.1f} h on 16 cores)")
PY
fi

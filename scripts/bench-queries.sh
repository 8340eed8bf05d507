#!/usr/bin/env bash
# Benchmark of the queries stage (numbers go to docs/BENCHMARKS.md, `## queries`).
#
# On a generated multistream dump (article-like wikitext, 100 pages per bzip2 stream, as
# Wikimedia writes them) it measures, in the same run:
#   - `bzip2 -dc` alone: the floor, MB/s of compressed input on one core;
#   - `openwit queries` counting (count_dump example: plan, tasks, reduce) with 1 and 2 jobs:
#     MB/s of compressed input, tokens/s per core, peak RSS;
#   - the same with a small memory budget (bigram counts spill to disk): peak RSS stays bounded;
#   - a Python reference (mwparserfromhell + the same token rule) on the first pages.
#
# usage: scripts/bench-queries.sh [MIB_OF_XML (default 300)] [PY_PAGES (default 2000)]
# needs: bzip2, /usr/bin/time, python3 with mwparserfromhell (.ci/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-300}
PY_PAGES=${2:-2000}
DIR=${BENCH_DIR:-/tmp/openwit-bench-queries}
mkdir -p "$DIR"
cargo build --release -q -p openwit-queries --example gen_dump --example count_dump
EX=target/release/examples
DUMP="$DIR/enwiki-gen${MIB}-pages-articles-multistream.xml.bz2"
if [ ! -f "$DUMP" ]; then
  "$EX/gen_dump" "$DUMP" "$MIB" 2000000 1 >/dev/null
fi
SIZE=$(stat -c %s "$DUMP")
echo "dump: $DUMP ($((SIZE >> 20)) MiB compressed)"
echo "cpu: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

t() { /usr/bin/time -f "%e %M" "$@" 2>"$DIR/time.txt" >"$DIR/out.txt"; cat "$DIR/time.txt" | tail -1; }

read -r BZ_S BZ_KB < <(t bzip2 -dc "$DUMP")
echo "bzip2 -dc: ${BZ_S}s, $(python3 -c "print(round($SIZE/1048576/$BZ_S,2))") MiB/s compressed, peak ${BZ_KB} KB"

for JOBS in 1 2; do
  rm -rf "$DIR/work$JOBS"
  read -r S KB < <(t "$EX/count_dump" "$DUMP" "$DIR/work$JOBS" "$JOBS" 8192)
  J=$(cat "$DIR/out.txt")
  python3 - "$J" "$S" "$KB" "$JOBS" "$SIZE" "$BZ_S" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); s = float(sys.argv[2]); kb = int(sys.argv[3]); jobs = int(sys.argv[4])
size = int(sys.argv[5]); bz = float(sys.argv[6])
mbs = size / 1048576 / s
print(f"openwit jobs={jobs}: {s:.1f}s, {mbs:.2f} MiB/s compressed ({mbs/jobs:.2f} per core; "
      f"bzip2 -dc per core {size/1048576/bz:.2f}: {100*mbs/jobs/(size/1048576/bz):.0f}%), "
      f"{j['tokens']/s/jobs/1e6:.2f} M tokens/s per core, {j['tokens']} tokens, "
      f"{j['bigram_types']} distinct bigrams, peak RSS {kb/1024:.0f} MiB")
PY
done

rm -rf "$DIR/worksmall"
read -r S KB < <(t "$EX/count_dump" "$DUMP" "$DIR/worksmall" 2 256)
echo "openwit jobs=2 memory_budget_mb=256: ${S}s, peak RSS $((KB / 1024)) MiB, $(python3 -c "import json;print(json.loads(open('$DIR/out.txt').read())['spills'])") spills"
cmp "$DIR/work2/queries/metadata.json" "$DIR/worksmall/queries/metadata.json" && echo "  same metadata.json as the unbounded run"

read -r S KB < <(t python3 scripts/bench_queries_ref.py "$DUMP" "$PY_PAGES")
J=$(cat "$DIR/out.txt")
python3 - "$J" "$S" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); s = float(sys.argv[2])
print(f"python reference (mwparserfromhell), {j['pages']} pages: {s:.1f}s, "
      f"{j['tokens']/s/1e6:.3f} M tokens/s, {j['tokens']} tokens")
PY

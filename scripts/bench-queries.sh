#!/usr/bin/env bash
# Benchmark of the queries stage (numbers go to docs/BENCHMARKS.md, `## queries`).
#
# On a generated multistream dump (article-like wikitext, 100 pages per bzip2 stream, as
# Wikimedia writes them) it measures, in the same run:
#   - `bzip2 -dc` alone, pinned to one core: the floor, MiB/s of compressed input per CPU second;
#   - `openwit queries` counting (count_dump example: plan, tasks, reduce) with 1 job (pinned to
#     one core) and 2 jobs: MiB/s of compressed input and tokens/s per CPU second, peak RSS;
#   - the same with a small memory budget (bigram counts spill to disk): peak RSS stays bounded
#     and metadata.json is byte-identical;
#   - a Python reference (mwparserfromhell + the same token rule) on the first pages, pinned to
#     the same core: tokens per CPU second.
# Rates are per CPU second (user + sys) of the measured process, so that a shared machine does
# not distort them; wall times are printed too.
#
# usage: scripts/bench-queries.sh [MIB_OF_XML (default 300)] [PY_PAGES (default 2000)]
# needs: bzip2, taskset, /usr/bin/time, python3 with mwparserfromhell (.ci/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-300}
PY_PAGES=${2:-2000}
DIR=${BENCH_DIR:-/tmp/openwit-bench-queries}
SMALL_MB=${SMALL_MB:-256}
mkdir -p "$DIR"
cargo build --release -q -p openwit-queries --example gen_dump --example count_dump
EX=${CARGO_TARGET_DIR:-target}/release/examples
DUMP="$DIR/enwiki-gen${MIB}-pages-articles-multistream.xml.bz2"
if [ ! -f "$DUMP" ]; then
  "$EX/gen_dump" "$DUMP" "$MIB" 2000000 1 >/dev/null
fi
SIZE=$(stat -c %s "$DUMP")
echo "dump: $DUMP ($((SIZE >> 20)) MiB compressed)"
echo "cpu: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# t CMD...: runs CMD, stdout to $DIR/out.txt; prints "wall cpu(user+sys) peak_kb"
t() {
  /usr/bin/time -f "%e %U %S %M" "$@" 2>"$DIR/time.txt" >"$DIR/out.txt"
  tail -1 "$DIR/time.txt" | awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}'
}
rate() { python3 -c "print(round($1/1048576/max($2,0.01),2))"; }

read -r BZ_S BZ_CPU BZ_KB < <(t taskset -c 0 bzip2 -dc "$DUMP")
BZ_RATE=$(rate "$SIZE" "$BZ_CPU")
echo "bzip2 -dc (1 core): ${BZ_S}s wall, ${BZ_CPU}s cpu, ${BZ_RATE} MiB/s compressed per CPU second, peak ${BZ_KB} KB"

report() { # label wall cpu kb
  python3 - "$(cat "$DIR/out.txt")" "$@" "$SIZE" "$BZ_RATE" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); label = sys.argv[2]
wall, cpu, kb = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
size, bz = int(sys.argv[6]), float(sys.argv[7])
mbs = size / 1048576 / cpu
print(f"openwit {label}: {wall:.1f}s wall, {cpu:.1f}s cpu, {size/1048576/wall:.2f} MiB/s wall, "
      f"{mbs:.2f} MiB/s per CPU second ({100*mbs/bz:.0f}% of bzip2 -dc's {bz}), "
      f"{j['tokens']/cpu/1e6:.2f} M tokens per CPU second, {j['tokens']} tokens, "
      f"{j['bigram_types']} distinct bigrams, {j['spills']} spills, peak RSS {kb/1024:.0f} MiB")
PY
}

rm -rf "$DIR/work1"
read -r S CPU KB < <(t taskset -c 0 "$EX/count_dump" "$DUMP" "$DIR/work1" 1 8192)
report "jobs=1 (1 core)" "$S" "$CPU" "$KB"
OW_TOK=$(python3 -c "import json;j=json.load(open('$DIR/out.txt'));print(j['tokens']/$CPU)")

rm -rf "$DIR/work2"
read -r S CPU KB < <(t "$EX/count_dump" "$DUMP" "$DIR/work2" 2 8192)
report "jobs=2" "$S" "$CPU" "$KB"
cmp "$DIR/work1/queries/metadata.json" "$DIR/work2/queries/metadata.json" && echo "  same metadata.json as jobs=1"

rm -rf "$DIR/worksmall"
read -r S CPU KB < <(t "$EX/count_dump" "$DUMP" "$DIR/worksmall" 2 "$SMALL_MB")
report "jobs=2 memory_budget_mb=$SMALL_MB" "$S" "$CPU" "$KB"
cmp "$DIR/work2/queries/metadata.json" "$DIR/worksmall/queries/metadata.json" && echo "  same metadata.json as the unbounded run"

read -r S CPU KB < <(t taskset -c 0 python3 scripts/bench_queries_ref.py "$DUMP" "$PY_PAGES")
python3 - "$(cat "$DIR/out.txt")" "$S" "$CPU" "$OW_TOK" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); wall, cpu, ow = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
py = j['tokens'] / cpu
print(f"python reference (mwparserfromhell, 1 core), {j['pages']} pages: {wall:.1f}s wall, "
      f"{cpu:.1f}s cpu, {py/1e6:.3f} M tokens per CPU second, {j['tokens']} tokens; "
      f"openwit jobs=1 is {ow/py:.1f}x")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

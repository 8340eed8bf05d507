#!/usr/bin/env bash
# The queries and download stages of two builds, run alternately on the same inputs, per CPU second
# of the stage pinned to core 0, and whether their outputs are byte-identical (docs/benchmarks-history.md,
# "the redesign against the tree before it").
#
#   BEFORE=/path/to/old-target/release/examples AFTER=target/release/examples scripts/bench-before-after.sh
#
# Each target needs the release examples `gen_dump`, `count_dump` (openwit-queries) and
# `bench_fixture`, `bench_download` (openwit-fetch):
#   cargo build --release -p openwit-queries --example gen_dump --example count_dump
#   cargo build --release -p openwit-fetch --example bench_fixture --example bench_download
# (in each tree, with its own CARGO_TARGET_DIR). MIB: XML size of the generated dump (default 150);
# N: generated images (default 2000); ROUNDS (default 5). Needs taskset, /usr/bin/time, python3.
set -euo pipefail
ROUNDS=${ROUNDS:-5}
D=${BENCH_DIR:-/tmp/openwit-bench-before-after}
B=${BEFORE:?set BEFORE to the old build release/examples folder}
A=${AFTER:?set AFTER to the new build release/examples folder}
mkdir -p $D
t() { /usr/bin/time -f "%e %U %S %M" -o $D/time.txt "$@" > $D/out.txt 2> $D/err.txt; awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' $D/time.txt; }
echo "# $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"
# queries
DUMP=$D/enwiki-gen${MIB:-150}-pages-articles-multistream.xml.bz2
[ -f $DUMP ] || $A/gen_dump $DUMP ${MIB:-150} 2000000 1 > /dev/null
echo "# dump $(stat -c %s $DUMP) bytes"
for r in $(seq $ROUNDS); do
  for which in before after; do
    if [ $which = before ]; then EX=$B; else EX=$A; fi
    rm -rf $D/q-$which
    read -r S CPU KB < <(t taskset -c 0 $EX/count_dump $DUMP $D/q-$which 1 8192)
    TOK=$(python3 -c "import json;print(json.load(open('$D/out.txt'))['tokens'])")
    python3 -c "print('queries $which round $r: wall ${S}s cpu ${CPU}s peak ${KB}KB tokens $TOK -> %.3f M tokens per CPU s' % ($TOK/$CPU/1e6))"
  done
  cmp $D/q-before/queries/metadata.json $D/q-after/queries/metadata.json && echo "  metadata.json identical"
  for f in $(cd $D/q-before/queries && find . -type f | sort); do cmp -s $D/q-before/queries/$f $D/q-after/queries/$f || echo "  differs: queries/$f"; done
done
# download
N=${N:-2000}
if [ ! -s $D/corpus/paths.txt ]; then $A/bench_fixture generate $D/corpus $N 7; fi
rm -f $D/port
$A/bench_fixture serve $D/corpus $D/port &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s $D/port ] && break; sleep 0.1; done
PORT=$(cat $D/port)
{ echo "url,caption"; awk -v p="$PORT" '{printf "http://127.0.0.1:%s%s,a generated picture number %d\n", p, $0, NR}' $D/corpus/paths.txt; } > $D/urls.csv
for r in $(seq $ROUNDS); do
  for which in before after; do
    if [ $which = before ]; then EX=$B; else EX=$A; fi
    rm -rf $D/d-$which; mkdir -p $D/d-$which
    read -r S CPU KB < <(cd $D/d-$which && t taskset -c 0 $EX/bench_download $D/d-$which/work $D/urls.csv 1)
    OK=$(python3 -c "import json,sys; print(sum(json.load(open(sys.argv[1])).values()))" $D/d-$which/work/download/sizes.json)
    python3 -c "print('download $which round $r: wall ${S}s cpu ${CPU}s peak ${KB}KB ok $OK -> %.1f images per CPU s, %.1f images/s' % ($OK/$CPU, $OK/$S))"
  done
  # Shards and tables byte for byte (the _stats.json files hold the run's times).
  for f in $(cd $D/d-before/work/download && ls | grep -v _stats.json); do
    cmp -s $D/d-before/work/download/$f $D/d-after/work/download/$f && echo "  same download/$f" || echo "  differs: download/$f"
  done
done
echo "# end $(date -u) load $(cut -d' ' -f1-3 /proc/loadavg)"

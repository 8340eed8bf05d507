#!/usr/bin/env bash
# Stage speeds on the real corpus (docs/BENCHMARKS.md, "Real corpus"): every stage of the release
# binary on the real test data that ships with the repository (nobody on this project wrote it;
# each folder's README gives the package and licence):
#   queries  gensim's enwiki excerpts      crates/openwit-queries/tests/data/wikipedia (2 files)
#   warc     pywb / wget / Warcat WARCs    crates/openwit-sources/tests/data/*.warc*   (4 files)
#   import   npm / PyPI URL lists          crates/openwit-urllist/tests/data           (5 files)
#   curate   the warc and import candidates above, against the queries above
#   download the 56 real images            crates/openwit-fetch/tests/data/images, served on
#            127.0.0.1 by the testkit's server (openwit-fetch's bench_fixture example), each
#            under REPEAT URLs (?r=N), no dedup, no robots.txt
#   index    the download's shards
# Each stage runs RUNS times (`--restart STAGE`, so only it reruns) and the median is kept. Per
# stage: wall seconds of the command (process start included), the stage's own seconds
# (`openwit status --json` elapsed_s: planning, tasks and reduce, no process start or config
# load), CPU seconds of the command (user + sys, every thread), items and MB of input, and the
# rates over each. "startup" is the wall time of a rerun
# that finds the stage done (process start, config, run state): the fixed cost in every wall time.
#
# Usage: scripts/bench-real.sh [OUT_DIR]     env: RUNS (5), REPEAT (20), OPENWIT_BIN, BENCH_FIXTURE,
#   COMMIT (the commit the binary was built from, for the header; default: the repository's HEAD)
# Build first: cargo build --release -p openwit-cli   (without the `train` feature is fine); the
# script builds the bench_fixture example if BENCH_FIXTURE does not name one. Needs jq, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${OPENWIT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/openwit}
OUT=${1:-$(mktemp -d /tmp/openwit-bench-real.XXXXXX)}
RUNS=${RUNS:-5}
REPEAT=${REPEAT:-20}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p openwit-cli" >&2; exit 2; }
FIXTURE=${BENCH_FIXTURE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_fixture}
[ -x "$FIXTURE" ] || (cd "$ROOT" && cargo build -q --release -p openwit-fetch --example bench_fixture)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$OUT"
rm -rf work import-* dl dlsrv images.csv

Q=$ROOT/crates/openwit-queries/tests/data/wikipedia
S=$ROOT/crates/openwit-sources/tests/data
L=$ROOT/crates/openwit-urllist/tests/data
I=$ROOT/crates/openwit-fetch/tests/data/images

mb() { du -cb "$@" | tail -1 | awk '{printf "%.3f", $1 / 1e6}'; }
stat_of() { # WORKDIR STAGE FIELD
  "$BIN" status "$1" --json | jq -r --arg s "$2" --arg f "$3" '.stages[] | select(.stage == $s) | .[$f]'
}
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# run_timed CMD...: runs CMD, prints "WALL_S CPU_S" (CPU = user + sys of CMD and its children).
run_timed() {
  python3 -c '
import resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)
if r.returncode:
    sys.exit(r.returncode)
print(f"{wall:.4f} {u.ru_utime + u.ru_stime:.4f}")
' "$@"
}

# time_stage NAME PIPELINE WORKDIR ITEMS_FIELD MB: runs the stage RUNS times, prints one table row.
# ITEMS_FIELD is items_in or items_out of `openwit status --json`, or a number.
time_stage() {
  local name=$1 pipe=$2 wd=$3 items=$4 mbytes=$5 walls=() owns=() cpus=()
  for r in $(seq "$RUNS"); do
    local extra=() wc
    [ "$r" -gt 1 ] && extra=(--restart "$name")
    # queries keeps its count tables in WORKDIR/.cache so that a rerun does not recount: clear it
    rm -rf "$wd/.cache"
    wc=$(run_timed "$BIN" "$name" "$pipe" -q "${extra[@]}")
    walls+=("${wc% *}")
    cpus+=("${wc#* }")
    owns+=("$(stat_of "$wd" "$name" elapsed_s)")
  done
  local startup wall own cpu n
  startup=$(run_timed "$BIN" "$name" "$pipe" -q)
  startup=${startup% *}
  wall=$(printf '%s\n' "${walls[@]}" | median)
  own=$(printf '%s\n' "${owns[@]}" | median)
  cpu=$(printf '%s\n' "${cpus[@]}" | median)
  case $items in
    items_in | items_out) n=$(stat_of "$wd" "$name" "$items") ;;
    *) n=$items ;;
  esac
  awk -v s="$name" -v n="$n" -v m="$mbytes" -v w="$wall" -v o="$own" -v c="$cpu" -v u="$startup" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    o = (o > 0.0005 ? o : 0.0005); c = (c > 0.0005 ? c : 0.0005)
    printf "| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | %.0f | %.0f | %.2f | %.2f | %s |\n", s, n, m, w, o, c, u, n / w, n / o, n / c, m / o, m / c, l
  }'
}

cat > p.toml <<EOF
[pipeline]
name = "bench-real"
workdir = "work"
seed = 0
allow_private_networks = true

[queries]
wikipedia = ["$Q/enwiki-articles1-shortened.xml.bz2", "$Q/enwiki-table-markup.xml.bz2"]
unigram_min_count = 3
bigram_mode = "top_k"
bigram_top_k = 2000

[warc]
inputs = ["$S/iana.warc.gz", "$S/example2.warc.gz", "$S/at.warc", "$S/bad_http_chunked_content.warc"]

[curate]
from = ["warc"]
candidates = ["import-simple-icons/import/00000-simple-icons.parquet", "import-country-flags/import/00000-country-flags.parquet"]
partitions = 2
EOF

# One import pipeline per list (each names its own URL and caption columns).
import_pipe() { # NAME FILE URL CAPTION
  cat > "import-$1.toml" <<EOF
[pipeline]
name = "bench-real-import-$1"
workdir = "import-$1"

[import]
inputs = ["$L/$2"]
url_col = "$3"
caption_col = "$4"
EOF
}
import_pipe simple-icons simple-icons.json source title
import_pipe country-flags country-flags.json image name
import_pipe airports airports.csv iata name
import_pipe unemployment unemployment.tsv id rate
import_pipe pyarrow pyarrow-v0.7.1.parquet cut color

# The real images on 127.0.0.1 (the testkit's server, through openwit-fetch's bench_fixture
# example, as scripts/bench-download.sh), each under REPEAT URLs.
mkdir -p dlsrv/img
find "$I" -type f ! -name README.md -exec cp {} dlsrv/img/ \;
"$FIXTURE" serve dlsrv dlsrv/port &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -s dlsrv/port ] && break
  sleep 0.1
done
PORT=$(cat dlsrv/port)
echo "url,caption" > images.csv
for r in $(seq "$REPEAT"); do
  for f in dlsrv/img/*; do
    b=$(basename "$f")
    echo "http://127.0.0.1:$PORT/img/$b?r=$r,$b" >> images.csv
  done
done
cat > dl.toml <<EOF
[pipeline]
name = "bench-real-download"
workdir = "dl"
seed = 0
allow_private_networks = true

[download]
input = "images.csv"
shard_size = 1000
dedup_sha256 = false
respect_robots = false

[index]
EOF

echo "# openwit $("$BIN" --version | cut -d' ' -f2) ($BIN), commit ${COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo '+local changes')}"
echo "# machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -m), $(date -u '+%F %H:%M UTC'), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# runs per stage: $RUNS (median); download: $(find dlsrv/img -type f | wc -l) images x $REPEAT URLs"
echo "# the image server's ceiling (plain reqwest, 64 in flight, no decoding): $("$FIXTURE" fetch images.csv 64)"
echo
echo "| stage | items | input MB | wall s | stage s | CPU s | startup s | items/s (wall) | items/s (stage) | items per CPU s | MB/s (stage) | MB per CPU s | load |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
time_stage queries p.toml work items_in "$(mb "$Q"/enwiki-*.xml.bz2)"
time_stage warc p.toml work items_in "$(mb "$S"/*.warc*)"
for l in simple-icons:simple-icons.json country-flags:country-flags.json airports:airports.csv unemployment:unemployment.tsv pyarrow:pyarrow-v0.7.1.parquet; do
  n=${l%%:*}
  f=${l#*:}
  time_stage import "import-$n.toml" "import-$n" items_in "$(mb "$L/$f")" | sed "s/^| import |/| import ($f) |/"
done
time_stage curate p.toml work items_in "$(mb work/warc/*.parquet import-simple-icons/import/*.parquet import-country-flags/import/*.parquet)"
# download's MB: the image bytes fetched (the served files x REPEAT)
time_stage download dl.toml dl items_in "$(awk -v r="$REPEAT" -v m="$(mb dlsrv/img)" 'BEGIN {printf "%.3f", r * m}')"
time_stage index dl.toml dl items_in "$(mb dl/download/*.tar)"
echo
echo "# items: queries = pages read, warc = records, import = rows, curate = candidates, download = URLs, index = samples"
echo "# MB: compressed dumps, WARC files, list files, candidate parquet files, image bytes fetched, shard tars"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

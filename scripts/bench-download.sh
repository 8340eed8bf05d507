#!/usr/bin/env bash
# Benchmark `openwit download` against img2dataset 1.47 on the same generated corpus, served from
# 127.0.0.1 by one server, same settings (image_size 256, border, jpg 95, webdataset output),
# back to back on the same machine, with 1 and 2 cores.
#
#   scripts/bench-download.sh            # N=2000 images
#   N=4000 ROUNDS=1 I2D=/path/to/venv/bin/img2dataset scripts/bench-download.sh
#
# Needs: img2dataset 1.47 (`pip install img2dataset==1.47.0`, in a venv: I2D=venv/bin/img2dataset),
# /usr/bin/time, taskset. Prints one line per run: tool, cores, successes, seconds, images/s, peak RSS
# of the largest process (/usr/bin/time), CPU seconds (user+sys of the tool and the children it
# waited for) and successes per CPU second, the load average, then the peak RSS of the whole
# process tree (sampled).
set -euo pipefail

N=${N:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/openwit-bench-download}
I2D=${I2D:-img2dataset}
THREADS=${THREADS:-32}

cd "$ROOT"
# The stage runs through the executor exactly as in `openwit download`; the example avoids
# building the whole CLI (tantivy, the trainer) just for this.
cargo build --release --quiet -p openwit-fetch --example bench_fixture --example bench_download
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release/examples/bench_download"
FIX="$TARGET/release/examples/bench_fixture"

rm -rf "$WORK"
mkdir -p "$WORK"
"$FIX" generate "$WORK/corpus" "$N" 7

# The server gets the last core when a tool is pinned to one; with two cores all share both.
"$FIX" serve "$WORK/corpus" "$WORK/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")

{
  echo "url,caption"
  awk -v p="$PORT" '{printf "http://127.0.0.1:%s%s,a generated picture number %d\n", p, $0, NR}' "$WORK/corpus/paths.txt"
} > "$WORK/urls.csv"

echo "# corpus: $N rows, $(du -sh "$WORK/corpus/img" | cut -f1) of JPEGs; cores: $(nproc)"
echo "# server ceiling (plain reqwest, no decoding, 64 in flight):"
"$FIX" fetch "$WORK/urls.csv" 64
"$FIX" fetch "$WORK/urls.csv" 64

report() { # tool cores successes timefile
  local secs rss cpu
  secs=$(awk '{print $1}' "$4")
  rss=$(awk '{print $2}' "$4")
  cpu=$(awk '{print $3 + $4}' "$4")
  awk -v t="$1" -v c="$2" -v s="$3" -v e="$secs" -v r="$rss" -v u="$cpu" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" \
    'BEGIN {printf "%-11s cores=%d successes=%d seconds=%.2f images/s=%.1f peak_rss_MiB=%.0f cpu_s=%.2f images_per_cpu_s=%.1f load=%s\n", t, c, s, e, s/e, r/1024, u, s/u, l}'
}

run_openwit() { # cores cpu-list
  local d="$WORK/openwit-$1"
  rm -rf "$d"; mkdir -p "$d"
  (cd "$d" && /usr/bin/time -f "%e %M %U %S" -o "$d/time" taskset -c "$2" "$BIN" "$d/work" "$WORK/urls.csv" "$1" > "$d/log" 2>&1)
  local ok
  ok=$(python3 -c "import json,sys; print(sum(json.load(open(sys.argv[1])).values()))" "$d/work/download/sizes.json")
  report openwit "$1" "$ok" "$d/time"
}

run_i2d() { # cores cpu-list
  local d="$WORK/img2dataset-$1"
  rm -rf "$d"; mkdir -p "$d"
  (cd "$d" && /usr/bin/time -f "%e %M %U %S" -o "$d/time" taskset -c "$2" "$I2D" \
      --url_list "$WORK/urls.csv" --input_format csv --url_col url --caption_col caption \
      --output_format webdataset --output_folder "$d/out" \
      --processes_count "$1" --thread_count "$THREADS" --number_sample_per_shard 1000 \
      --image_size 256 --resize_mode border --encode_format jpg --encode_quality 95 \
      --retries 0 --timeout 10 --enable_wandb False --distributor multiprocessing > "$d/log" 2>&1)
  local ok
  ok=$(python3 -c "import json,glob,sys; print(sum(json.load(open(f))['successes'] for f in glob.glob(sys.argv[1] + '/*_stats.json')))" "$d/out")
  report img2dataset "$1" "$ok" "$d/time"
}

# Peak total RSS of a process tree (img2dataset forks workers), sampled every 50 ms.
tree_peak() { # pid -> prints MiB once the process has ended
  local pid=$1 peak=0 cur
  while kill -0 "$pid" 2>/dev/null; do
    cur=$(ps -eo pid=,ppid=,rss= | awk -v root="$pid" '{p[$1]=$2; r[$1]=$3}
      END {for (k in p) {x=k; n=0; while ((x in p) && x!=root && n<64) {x=p[x]; n++} if (x==root) s+=r[k]} print s+0}')
    [ "$cur" -gt "$peak" ] && peak=$cur
    sleep 0.05
  done
  echo $((peak / 1024))
}

with_tree_peak() { # label cmd...
  local label=$1; shift
  "$@" &
  local pid=$!
  local peak
  peak=$(tree_peak "$pid")
  wait "$pid"
  echo "#   $label: peak RSS of the whole process tree ${peak} MiB"
}

for round in $(seq "${ROUNDS:-2}"); do
  echo "# round $round"
  with_tree_peak "openwit 2 cores" run_openwit 2 0,1
  with_tree_peak "img2dataset 2 cores" run_i2d 2 0,1
  with_tree_peak "openwit 1 core" run_openwit 1 0
  with_tree_peak "img2dataset 1 core" run_i2d 1 0
done

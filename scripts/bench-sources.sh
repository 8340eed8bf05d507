#!/usr/bin/env bash
# Benchmarks of openwit-sources (numbers go to docs/BENCHMARKS.md, section "sources"):
#  - WARC and WAT extraction, one core: MB/s (compressed input) and pairs/s, openwit vs the Python
#    reference (warcio + selectolax, as LAION's cc2dataset / MetaCLIP) on the same generated files;
#  - crawl: pages/s and CPU ms per page against a local generated site, politeness off.
# Usage: scripts/bench-sources.sh [PAGES_WARC=20000] [PAGES_CRAWL=10000]
#   env: BENCH_DIR (default target/bench-sources), ROUNDS (3), SKIP_CRAWL=1, CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES=${1:-20000}
CRAWL=${2:-10000}
DIR=${BENCH_DIR:-target/bench-sources}
mkdir -p "$DIR"
python3 -c "import warcio, selectolax" 2>/dev/null || pip install -q warcio==1.8.1 selectolax==1.0.2
cargo build -q --release -p openwit-sources --example bench_sources
BIN=${CARGO_TARGET_DIR:-target}/release/examples/bench_sources
echo "# machine: $(nproc) cores, $(uname -m), $(date -u +%F), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -f "$DIR/bench.warc.gz" ] || "$BIN" gen "$DIR" "$PAGES"
# Per core = per CPU second of the process (user+sys; mb_per_cpu_s, pairs_per_cpu_s), both pinned
# to core 0 and run back to back, ROUNDS times, so the reference shares the machine's state.
for f in "$DIR/bench.warc.gz" "$DIR/bench.wat.gz"; do
  for _ in $(seq "${ROUNDS:-3}"); do
    taskset -c 0 "$BIN" extract "$f"
    taskset -c 0 python3 scripts/bench_sources_ref.py "$f"
  done
  if [[ $f == *.warc.gz ]]; then
    # The parsers alone (pages read into memory first): scraper/html5ever vs selectolax/lexbor,
    # right after the full runs above, to compare with the reference's total CPU time.
    for _ in $(seq "${ROUNDS:-3}"); do
      taskset -c 0 "$BIN" parse-only "$f"
      taskset -c 0 python3 scripts/bench_sources_ref.py --parse-only "$f"
    done
  fi
  taskset -c 0 "$BIN" split "$f"
done
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "${SKIP_CRAWL:-0}" = 1 ] && exit 0
"$BIN" crawl "$DIR/crawl" "$CRAWL"

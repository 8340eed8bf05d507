#!/usr/bin/env bash
# Benchmarks of openwit-sources (numbers go to docs/BENCHMARKS.md, section "sources"):
#  - WARC and WAT extraction, one core: MB/s (compressed input) and pairs/s, openwit vs the Python
#    reference (warcio + selectolax, as LAION's cc2dataset / MetaCLIP) on the same generated files;
#  - crawl: pages/s and CPU ms per page against a local generated site, politeness off.
# Usage: scripts/bench-sources.sh [PAGES_WARC=20000] [PAGES_CRAWL=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES=${1:-20000}
CRAWL=${2:-10000}
DIR=${BENCH_DIR:-target/bench-sources}
mkdir -p "$DIR"
python3 -c "import warcio, selectolax" 2>/dev/null || pip install -q warcio==1.8.1 selectolax==1.0.2
cargo build -q --release -p openwit-sources --example bench_sources
BIN=target/release/examples/bench_sources
echo "# machine: $(nproc) cores, $(uname -m), $(date -u +%F)"
[ -f "$DIR/bench.warc.gz" ] || "$BIN" gen "$DIR" "$PAGES"
for f in "$DIR/bench.warc.gz" "$DIR/bench.wat.gz"; do
  taskset -c 0 "$BIN" extract "$f"
  taskset -c 0 python3 scripts/bench_sources_ref.py "$f"
done
"$BIN" crawl "$DIR/crawl" "$CRAWL"

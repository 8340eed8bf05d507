#!/usr/bin/env bash
# Benchmark of `openwit index` and search: SAMPLES generated captions (default 1,000,000) in
# 10,000-sample shards, indexed with the real index stage; then 1,000 queries (words, two-word
# conjunctions, phrases, entry filters) timed one after another. Prints JSON; numbers go to
# docs/BENCHMARKS.md `## index`.
#   scripts/bench-index.sh [SAMPLES] [WORKDIR]   (WORKDIR is kept when given; needs ~3 GB per 1M)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p openwit-index --example bench_index -- "${1:-1000000}" ${2:+"$2"}

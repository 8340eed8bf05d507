#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent GPU machine's short time (issues 19 and 20):
# `openwit eval` on the device against the CPU (scripts/gpu-eval.sh), then the trainer's benchmarks
# against OpenCLIP (scripts/gpu-bench.sh: contrastive accumulation to 32,768, one NCCL rank, RN50,
# ViT-B/32 with the data pipeline), most wanted first. Results land in $OUT as each run ends.
#
#   here:            scripts/gpu-all.sh --prepare        (builds, strips, fetches wheels)
#   on the device:   OUT=$OUT scripts/gpu-all.sh          (carry target/gpu-bench-bin, target/gpu-bench-wheels)
#
# BUDGET (seconds, default 480): no new benchmark run starts after it (gpu-bench.sh's DEADLINE
# counts from its own start, so it gets what gpu-eval.sh left). The eval takes EVAL_MODEL and
# EVAL_STEPS; the benchmarks MODEL, STEPS and the rest of gpu-bench.sh's settings. A check of the
# script on a CPU machine: DEVICE=cpu PRECISION=fp32 EVAL_MODEL=tiny-vit EVAL_STEPS=10 BATCH=4
# STEPS=3 ACCUM_FREQ=2 ACCUM_STEPS=2 RN50_STEPS=2 BUDGET=3000 scripts/gpu-all.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  exec scripts/gpu-bench.sh --prepare
fi
BUDGET="${BUDGET:-480}"
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
echo "=== gpu-eval.sh"
eval_rc=0
# The eval's own settings (gpu-eval.sh reads MODEL and STEPS too): EVAL_MODEL, EVAL_STEPS.
MODEL="${EVAL_MODEL:-ViT-B-32}" STEPS="${EVAL_STEPS:-60}" timeout 240 scripts/gpu-eval.sh || eval_rc=$?
echo "gpu-eval.sh exit $eval_rc after $((SECONDS - start)) s"
left=$((BUDGET - (SECONDS - start)))
echo "=== gpu-bench.sh (deadline ${left} s)"
bench_rc=0
DEADLINE="$left" PARTS="${PARTS:-accum nccl rn50 vit}" scripts/gpu-bench.sh || bench_rc=$?
echo "gpu-bench.sh exit $bench_rc after $((SECONDS - start)) s"
[ "$eval_rc" = 0 ] && [ "$bench_rc" = 0 ]

#!/usr/bin/env bash
# GPU benchmark of the CLIP trainer against OpenCLIP (requirement 11 of issue 9): ViT-B/32,
# batch 256, bf16, on one GPU — openwit-clip on synthetic tensors and on real webdataset shards
# (generated JPEGs through the whole data pipeline), and OpenCLIP's own training step (autocast
# bf16, AdamW with its parameter groups, ClipLoss, grad clipping) on the same GPU, batch and
# precision. Prints samples/s for each and the ratio.
#
# Two steps, because the GPU machine has no network:
#   1. here (network, Rust, libtorch cache):   scripts/gpu-bench.sh --prepare
#      builds the examples bench and make_shards with libtorch_cuda linked (OPENWIT_CLIP_CUDA=1),
#      strips them into target/gpu-bench-bin/ and puts the wheels OpenCLIP needs into
#      target/gpu-bench-wheels/
#   2. on the GPU machine (PyTorch 2.11 + CUDA 13 in its Python): scripts/gpu-bench.sh
#      (carry target/gpu-bench-bin and target/gpu-bench-wheels along). Env: STEPS (default 40),
#      BATCH (256), MODEL (ViT-B-32), PY (python3), BENCH_BIN_DIR (target/gpu-bench-bin),
#      GRAD_CKPT_RUN (1: also the synthetic run with activation checkpointing).
#      Results also go to $OUT/gpu-bench.jsonl (+ $OUT/gpumem.jsonl, peak GPU memory per run
#      from nvidia-smi) when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
MODEL="${MODEL:-ViT-B-32}"
BATCH="${BATCH:-256}"
STEPS="${STEPS:-40}"
DEVICE="${DEVICE:-cuda}"          # DEVICE=cpu PRECISION=fp32 runs the same comparison on CPU
PRECISION="${PRECISION:-bf16}"
BENCH_BIN_DIR="${BENCH_BIN_DIR:-target/gpu-bench-bin}"
wheels=target/gpu-bench-wheels

if [ "${1:-}" = "--prepare" ]; then
  eval "$(scripts/setup-libtorch.sh --quiet)"
  OPENWIT_CLIP_CUDA=1 cargo build --release -p openwit-clip --example bench --example make_shards
  rm -rf "$wheels" && mkdir -p "$wheels"
  # Pure-Python wheels OpenCLIP imports (torch itself is on the GPU machine); regex and
  # safetensors are binary: fetch them for the usual CPython versions.
  "$PY" -m pip download --quiet --no-deps -d "$wheels" open_clip_torch==3.3.0 ftfy wcwidth tqdm \
    huggingface_hub filelock fsspec packaging pyyaml typing_extensions timm torchvision==0.26.0
  for v in 3.10 3.11 3.12 3.13; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$v" \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$wheels" regex safetensors || true
  done
  cp "$(scripts/setup-libtorch.sh --quiet | sed -n 's/^export OPENWIT_CLIP_VOCAB=//p')" "$wheels/"
  # Stripped copies to carry (the release examples keep debug info: ~130 MB each).
  mkdir -p target/gpu-bench-bin
  strip -o target/gpu-bench-bin/bench target/release/examples/bench
  strip -o target/gpu-bench-bin/make_shards target/release/examples/make_shards
  ls -la target/gpu-bench-bin "$wheels"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
source scripts/gpu-lib.sh
gpu_torch_env

# OpenCLIP: use the installed one, else install the carried wheels into a temporary folder.
# The GPU images hold torch, torchvision, timm, regex, safetensors and huggingface_hub already, so
# try OpenCLIP's own small set first, and the whole carried set only if that does not import.
if ! "$PY" -c 'import open_clip' 2>/dev/null; then
  export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" -m pip install --quiet --no-index --no-deps --find-links "$wheels" --target "$tmp/site" \
    open_clip_torch ftfy wcwidth 2>&1 | tail -3 || true
  if ! "$PY" -c 'import open_clip' 2>/dev/null; then
    "$PY" -m pip install --quiet --no-index --no-deps --find-links "$wheels" --target "$tmp/site" \
      open_clip_torch ftfy wcwidth tqdm huggingface_hub timm regex safetensors torchvision \
      filelock fsspec packaging pyyaml typing_extensions 2>&1 | tail -3 || true
  fi
fi

# Peak GPU memory of each run (all processes, MiB) from nvidia-smi, sampled every 100 ms.
gpu_mem_start() {
  if command -v nvidia-smi >/dev/null && [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$tmp/gpumem" 2>/dev/null &
    gpu_mem_pid=$!
  fi
}
gpu_mem_stop() { # LABEL
  if [ -n "${gpu_mem_pid:-}" ]; then
    kill "$gpu_mem_pid" 2>/dev/null || true
    wait "$gpu_mem_pid" 2>/dev/null || true
    gpu_mem_pid=
    echo "{\"gpu_mem_peak_mib\": $(sort -n "$tmp/gpumem" | tail -1), \"run\": \"$1\"}" | tee -a "$tmp/gpumem.jsonl"
  fi
}
vocab="$(ls "$wheels"/bpe_simple_vocab_16e6.txt.gz 2>/dev/null || true)"
if [ -z "$vocab" ]; then
  vocab="$("$PY" -c 'import open_clip, os; print(os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz"))')"
fi
export OPENWIT_CLIP_VOCAB="$vocab"

bench="$BENCH_BIN_DIR/bench"
results="$tmp/results.jsonl"

echo "== OpenCLIP $MODEL batch $BATCH $PRECISION on $DEVICE, synthetic tensors"
gpu_mem_start
"$PY" - "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" <<'PYEOF' | tee -a "$results"
import json, math, sys, time
import torch, open_clip
from open_clip.loss import ClipLoss
name, B, steps, dev, prec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.manual_seed(0)
m = open_clip.create_model(name, pretrained=None, device=dev)
m.train()
excl = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
opt = torch.optim.AdamW(
    [{"params": [p for n, p in named if excl(n, p)], "weight_decay": 0.0},
     {"params": [p for n, p in named if not excl(n, p)], "weight_decay": 0.2}],
    lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
size = m.visual.image_size
size = size[0] if isinstance(size, (tuple, list)) else size
images = torch.randn(B, 3, size, size, device=dev)
texts = torch.randint(0, 49000, (B, 77), device=dev)
texts[:, -1] = 49407
loss_fn = ClipLoss()
warm = min(5, steps // 2)
for step in range(steps):
    if step == warm:
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.time()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev, dtype=torch.bfloat16, enabled=prec == "bf16"):
        i, t, s = m(images, texts)[:3]
        loss = loss_fn(i, t, s)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        m.logit_scale.clamp_(0, math.log(100))
if dev == "cuda":
    torch.cuda.synchronize()
dt = time.time() - t0
print(json.dumps({"impl": "open_clip", "mode": "synthetic", "model": name, "batch": B, "precision": "amp_bf16" if prec == "bf16" else "fp32", "device": dev,
                  "samples_per_s": (steps - warm) * B / dt, "step_ms": 1000 * dt / (steps - warm),
                  "max_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None}))
PYEOF
gpu_mem_stop open_clip-synthetic

echo "== openwit-clip $MODEL batch $BATCH $PRECISION on $DEVICE, synthetic tensors"
gpu_mem_start
"$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic | tee -a "$results"
gpu_mem_stop openwit-clip-synthetic

if [ "${GRAD_CKPT_RUN:-1}" = 1 ]; then
  echo "== openwit-clip $MODEL batch $BATCH $PRECISION on $DEVICE, synthetic tensors, activation checkpointing"
  gpu_mem_start
  GRAD_CKPT=1 "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic | tee -a "$results"
  gpu_mem_stop openwit-clip-synthetic-grad-ckpt
fi

echo "== openwit-clip $MODEL batch $BATCH $PRECISION on $DEVICE, generated JPEG shards through the data pipeline"
"$BENCH_BIN_DIR/make_shards" "$tmp/shards" 8 $(( (BATCH * STEPS / 8) + 1 )) 256 >/dev/null
gpu_mem_start
"$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" shards "$tmp/shards" | tee -a "$results"
gpu_mem_stop openwit-clip-shards

"$PY" - "$results" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ref = next((r for r in rows if r["impl"] == "open_clip"), None)
for r in rows:
    ratio = r["samples_per_s"] / ref["samples_per_s"] if ref else float("nan")
    ck = " (activation checkpointing)" if r.get("grad_checkpointing") else ""
    print(f'{r["impl"]:13s} {r["mode"]:9s} {r["samples_per_s"]:9.1f} samples/s  ratio vs OpenCLIP {ratio:.3f}{ck}')
PYEOF
if [ -n "${OUT:-}" ]; then cp "$results" "$OUT/gpu-bench.jsonl"; cp "$tmp/gpumem.jsonl" "$OUT/" 2>/dev/null || true; fi

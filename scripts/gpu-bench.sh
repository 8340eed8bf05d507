#!/usr/bin/env bash
# GPU benchmark of the CLIP trainer against OpenCLIP (issue 9 req. 11, issue 19 reqs. 9 and 11), on
# one GPU, each OpenCLIP figure taken in the same run on the same GPU, batch and precision:
#
#   vit      ViT-B/32, batch 256, bf16: OpenCLIP's training step (autocast bf16, AdamW with its parameter
#            groups, ClipLoss, clipping) and openwit-clip's on synthetic tensors, openwit-clip with
#            activation checkpointing, and the whole trainer on generated JPEG shards (the data
#            pipeline: the loader's faster resize is measured there)
#   nccl     openwit-clip's step as rank 0 of a one-rank job on NCCL (features all-gathered, the loss
#            over the gathered batch, gradients all-reduced in buckets by c10d's Reducer during the
#            backward pass; its JSON's grad_sync says how many buckets started before the last
#            gradient), next to the plain step
#   accum    CLIP's 32,768 contrastive batch on one GPU: openwit-clip's contrastive accumulation
#            (ACCUM_FREQ micro-batches of BATCH) against OpenCLIP's own `train_one_epoch` with
#            `--accum-freq` (open_clip_train), samples/s and memory
#   rn50     RN50, batch 256, bf16, synthetic: OpenCLIP and openwit-clip
#
# Two steps, because the GPU machine has no network:
#   1. here (network, Rust, libtorch cache):   scripts/gpu-bench.sh --prepare
#      builds the examples bench and make_shards and the `openwit` binary (for scripts/gpu-eval.sh)
#      with libtorch_cuda linked and NCCL compiled in (OPENWIT_CLIP_CUDA=1, the headers from
#      `scripts/setup-libtorch.sh --cuda`), checks that NCCL is in, strips them into
#      target/gpu-bench-bin/ and puts the wheels OpenCLIP needs into target/gpu-bench-wheels/
#   2. on the GPU machine (PyTorch 2.11 + CUDA 13 in its Python): scripts/gpu-bench.sh
#      (carry target/gpu-bench-bin and target/gpu-bench-wheels along). Env: PARTS (default
#      "vit nccl accum rn50", in that order), STEPS (30), BATCH (256), MODEL (ViT-B-32), ACCUM_FREQ
#      (128: 128 x 256 = 32,768), ACCUM_STEPS (3, the first not timed), RN50_STEPS (20), PY (python3),
#      BENCH_BIN_DIR (target/gpu-bench-bin), GRAD_CKPT_RUN (1), DEADLINE (seconds from the start
#      after which no new run begins, default 420; each run also has PART_TIMEOUT, default 240 s).
#      Results go to $OUT/gpu-bench.jsonl (+ $OUT/gpumem.jsonl, peak GPU memory per run from
#      nvidia-smi) as each run ends, when OUT is set.
#   DEVICE=cpu PRECISION=fp32 BATCH=4 STEPS=3 ACCUM_FREQ=2 ACCUM_STEPS=2 RN50_STEPS=2 runs the same
#   script on a CPU-only machine (Gloo in place of NCCL): a check of the script, not of speed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
MODEL="${MODEL:-ViT-B-32}"
BATCH="${BATCH:-256}"
STEPS="${STEPS:-30}"
DEVICE="${DEVICE:-cuda}"
PRECISION="${PRECISION:-bf16}"
PARTS="${PARTS:-vit nccl accum rn50}"
ACCUM_FREQ="${ACCUM_FREQ:-128}"
ACCUM_STEPS="${ACCUM_STEPS:-3}"
RN50_STEPS="${RN50_STEPS:-20}"
DEADLINE="${DEADLINE:-420}"
PART_TIMEOUT="${PART_TIMEOUT:-240}"
BENCH_BIN_DIR="${BENCH_BIN_DIR:-target/gpu-bench-bin}"
wheels=target/gpu-bench-wheels

if [ "${1:-}" = "--prepare" ]; then
  eval "$(scripts/setup-libtorch.sh --cuda --quiet)"
  export OPENWIT_CLIP_CUDA=1
  cargo build --release -p openwit-clip --example bench --example make_shards
  cargo build --release -p openwit-cli --features train
  target_dir="${CARGO_TARGET_DIR:-target}"
  # NCCL must be in: a build without its headers only warns. The check loads libtorch_cuda, whose
  # libraries (cuDNN, cuBLAS, NCCL...) are the Python side's CUDA wheels.
  py_nv="$(dirname "$LIBTORCH")/../python/nvidia"
  nv_ld="$(ls -d "$py_nv"/*/lib | tr '\n' ':')$(dirname "$LIBTORCH")/../python/torch/lib"
  if ! LD_LIBRARY_PATH="$nv_ld:$LD_LIBRARY_PATH" "$target_dir/release/examples/bench" --nccl-compiled; then
    echo "gpu-bench.sh: the bench binary has no NCCL (see the build's warnings)" >&2
    exit 1
  fi
  rm -rf "$wheels" && mkdir -p "$wheels"
  # Pure-Python wheels OpenCLIP imports (torch itself is on the GPU machine); regex and
  # safetensors are binary: fetch them for the usual CPython versions.
  # (torchvision and timm are in the GPU images; carrying them would pass the 64 MiB.)
  "$PY" -m pip download --quiet --no-deps -d "$wheels" open_clip_torch==3.3.0 ftfy wcwidth tqdm \
    huggingface_hub filelock fsspec packaging pyyaml typing_extensions
  for v in 3.10 3.11 3.12 3.13; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$v" \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$wheels" regex safetensors || true
  done
  # Stripped copies to carry (the release builds keep debug info: ~130 MB each), packed with xz:
  # the device tool carries 64 MiB with the tree (`openwit` alone is ~38 MB stripped).
  rm -rf "$BENCH_BIN_DIR" && mkdir -p "$BENCH_BIN_DIR"
  for b in examples/bench examples/make_shards openwit; do
    strip -o "$BENCH_BIN_DIR/$(basename "$b")" "$target_dir/release/$b"
    xz -T0 -6 "$BENCH_BIN_DIR/$(basename "$b")"
  done
  cp "$OPENWIT_CLIP_VOCAB" "$BENCH_BIN_DIR/"
  ls -la "$BENCH_BIN_DIR" "$wheels"
  du -sh "$BENCH_BIN_DIR" "$wheels"
  echo "carry: target/gpu-bench-bin target/gpu-bench-wheels"
  exit 0
fi

started=$SECONDS
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
source scripts/gpu-lib.sh
gpu_torch_env
BENCH_BIN_DIR="$(gpu_bins "$BENCH_BIN_DIR" "$tmp/bin")"

# OpenCLIP: use the installed one, else install the carried wheels into a temporary folder.
# The GPU images hold torch, torchvision, timm, regex, safetensors and huggingface_hub already, so
# try OpenCLIP's own small set first, and the whole carried set only if that does not import.
if ! "$PY" -c 'import open_clip, open_clip_train' 2>/dev/null; then
  export PYTHONPATH="$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" -m pip install --quiet --no-index --no-deps --find-links "$wheels" --target "$tmp/site" \
    open_clip_torch ftfy wcwidth 2>&1 | tail -3 || true
  if ! "$PY" -c 'import open_clip' 2>/dev/null; then
    "$PY" -m pip install --quiet --no-index --no-deps --find-links "$wheels" --target "$tmp/site" \
      open_clip_torch ftfy wcwidth tqdm huggingface_hub regex safetensors \
      filelock fsspec packaging pyyaml typing_extensions 2>&1 | tail -3 || true
  fi
fi

vocab="$(ls "$BENCH_BIN_DIR"/bpe_simple_vocab_16e6.txt.gz "$wheels"/bpe_simple_vocab_16e6.txt.gz 2>/dev/null | head -1 || true)"
if [ -z "$vocab" ]; then
  vocab="$("$PY" -c 'import open_clip, os; print(os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz"))')"
fi
export OPENWIT_CLIP_VOCAB="$vocab"
bench="$BENCH_BIN_DIR/bench"
results="$tmp/results.jsonl"
touch "$tmp/gpumem.jsonl"

# Results leave as each run ends: a run cut short by the device's time limit keeps the others.
save() {
  if [ -n "${OUT:-}" ]; then
    cp "$results" "$OUT/gpu-bench.jsonl"
    cp "$tmp/gpumem.jsonl" "$OUT/gpumem.jsonl"
  fi
}
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
# run LABEL COMMAND...: one measured run, unless the deadline has passed; its JSON line is kept.
run() {
  local label="$1"; shift
  local elapsed=$((SECONDS - started))
  if [ "$elapsed" -ge "$DEADLINE" ]; then
    echo "== skipped $label: ${elapsed} s gone, DEADLINE=$DEADLINE"
    echo "{\"run\": \"$label\", \"skipped\": \"deadline\"}" >>"$results"
    save
    return 0
  fi
  echo "== $label"
  gpu_mem_start
  local rc=0
  timeout "$PART_TIMEOUT" "$@" >"$tmp/run.out" || rc=$?
  gpu_mem_stop "$label"
  grep '^{' "$tmp/run.out" | sed "s/^{/{\"run\": \"$label\", /" | tee -a "$results" || true
  if [ "$rc" != 0 ]; then
    echo "{\"run\": \"$label\", \"failed\": $rc}" | tee -a "$results"
  fi
  save
}

# OpenCLIP's step: MODEL BATCH STEPS DEVICE PRECISION ACCUM (ACCUM > 1: open_clip_train's
# train_one_epoch with accum_freq, fed synthetic batches made on the device as a loader would).
cat >"$tmp/openclip.py" <<'PYEOF'
import json, math, resource, sys, time
from types import SimpleNamespace
import torch, open_clip
from open_clip.loss import ClipLoss
name, B, steps, dev, prec, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
torch.manual_seed(0)
m = open_clip.create_model(name, pretrained=None, device=dev, output_dict=k > 1)
m.train()
excl = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
opt = torch.optim.AdamW(
    [{"params": [p for n, p in named if excl(n, p)], "weight_decay": 0.0},
     {"params": [p for n, p in named if not excl(n, p)], "weight_decay": 0.2}],
    lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
size = m.visual.image_size
size = size[0] if isinstance(size, (tuple, list)) else size
sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)
loss_fn = ClipLoss()
if k == 1:
    images = torch.randn(B, 3, size, size, device=dev)
    texts = torch.randint(0, 49000, (B, 77), device=dev)
    texts[:, -1] = 49407
    warm = min(5, steps // 2)
    for step in range(steps):
        if step == warm:
            sync()
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
    timed = steps - warm
else:
    from open_clip_train.train import train_one_epoch
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD, device=dev).view(1, 3, 1, 1)

    class Loader:
        def __init__(self, n, first):
            self.num_batches, self.num_samples, self.first = n, n * B, first

        def __iter__(self):
            for j in range(self.first, self.first + self.num_batches):
                g = torch.Generator(device=dev).manual_seed(1 + j)
                x = torch.randint(0, 256, (B, 3, size, size), device=dev, dtype=torch.uint8, generator=g)
                t = torch.randint(0, 49000, (B, 77), device=dev, generator=g)
                t[:, -1] = 49407
                yield (x.float() / 255 - mean) / std, t

    args = SimpleNamespace(
        device=dev, precision="amp_bf16" if prec == "bf16" else "fp32", distill=False, accum_freq=k,
        skip_scheduler=True, grad_clip_norm=1.0, horovod=False, log_every_n_steps=10**9, batch_size=B,
        world_size=1, rank=0, local_rank=0, wandb=False, distributed=False)
    run = lambda n, first: train_one_epoch(
        m, {"train": SimpleNamespace(set_epoch=lambda e: None, dataloader=Loader(n, first))},
        loss_fn, 0, opt, None, None, None, args)
    run(k, 0)  # the first step, not timed
    sync()
    t0 = time.time()
    timed = steps - 1
    run(k * timed, k)
sync()
dt = time.time() - t0
print(json.dumps({"impl": "open_clip", "mode": "synthetic", "model": name, "batch": B, "accum_freq": k,
                  "contrastive_batch": B * k, "precision": "amp_bf16" if prec == "bf16" else "fp32", "device": dev,
                  "samples_per_s": timed * B * k / dt, "step_ms": 1000 * dt / timed,
                  "max_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None,
                  "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
PYEOF
openclip() { echo "$PY" "$tmp/openclip.py" "$1" "$2" "$3" "$DEVICE" "$PRECISION" "$4"; }

# The runs, each a command for `run`: OpenCLIP's (openclip MODEL BATCH STEPS ACCUM) and ours
# (env KNOBS... bench MODEL BATCH STEPS DEVICE PRECISION synthetic|shards [DIR]).
for part in $PARTS; do
  case "$part" in
    vit)
      run open_clip-synthetic $(openclip "$MODEL" "$BATCH" "$STEPS" 1)
      run openwit-clip-synthetic "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic
      if [ "${GRAD_CKPT_RUN:-1}" = 1 ]; then
        run openwit-clip-synthetic-grad-ckpt env GRAD_CKPT=1 \
          "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic
      fi
      "$BENCH_BIN_DIR/make_shards" "$tmp/shards" 8 $(( (BATCH * STEPS / 8) + 1 )) 256 >/dev/null
      run openwit-clip-shards "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" shards "$tmp/shards"
      ;;
    nccl)
      run openwit-clip-synthetic-plain "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic
      run openwit-clip-synthetic-one-rank env DIST=1 MASTER_PORT=29531 \
        "$bench" "$MODEL" "$BATCH" "$STEPS" "$DEVICE" "$PRECISION" synthetic
      ;;
    accum)
      run openwit-clip-accum env ACCUM="$ACCUM_FREQ" \
        "$bench" "$MODEL" "$BATCH" "$ACCUM_STEPS" "$DEVICE" "$PRECISION" synthetic
      run open_clip-accum $(openclip "$MODEL" "$BATCH" "$ACCUM_STEPS" "$ACCUM_FREQ")
      ;;
    rn50)
      run open_clip-rn50 $(openclip RN50 "$BATCH" "$RN50_STEPS" 1)
      run openwit-clip-rn50 "$bench" RN50 "$BATCH" "$RN50_STEPS" "$DEVICE" "$PRECISION" synthetic
      ;;
    *) echo "gpu-bench.sh: unknown part $part (vit, nccl, accum, rn50)" >&2; exit 2 ;;
  esac
done

"$PY" - "$results" "$tmp/gpumem.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
mem = {r["run"]: r["gpu_mem_peak_mib"] for r in map(json.loads, open(sys.argv[2])) if r.get("gpu_mem_peak_mib")}
ref = {}
for r in rows:
    if r.get("impl") == "open_clip":
        ref[(r["model"], r.get("accum_freq", 1))] = r
for r in rows:
    if "samples_per_s" not in r:
        print(f'{r["run"]:36s} {"skipped: " + r["skipped"] if "skipped" in r else "failed: exit " + str(r.get("failed"))}')
        continue
    o = ref.get((r["model"], r.get("accum_freq", 1)))
    ratio = r["samples_per_s"] / o["samples_per_s"] if o else float("nan")
    m = mem.get(r["run"])
    print(f'{r["run"]:36s} {r["model"]:9s} batch {r.get("contrastive_batch", r["batch"]):6d} {r["samples_per_s"]:9.1f} samples/s'
          f'  vs OpenCLIP {ratio:.3f}' + (f'  GPU peak {m} MiB' if m else ""))
PYEOF
save

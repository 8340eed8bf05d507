#!/usr/bin/env bash
# `openwit eval` on a GPU, checked against the same evaluation on the CPU (issue 20 req. 3): trains a
# small CLIP on generated shards on the device, evaluates it there (zero-shot with prompts, retrieval,
# linear probe, overlap analysis against its training shards), evaluates the same weights on the CPU,
# and compares every figure. Prints one JSON line per device and the differences; exits 1 when a
# figure differs by more than TOL (percentage points, default 1; 3 for the linear probe, whose
# L-BFGS fit amplifies the features' rounding).
#
# Two steps, because the GPU machine has no network:
#   1. here (Rust, libtorch cache):   scripts/gpu-eval.sh --prepare  (= scripts/gpu-bench.sh --prepare)
#      builds `openwit` (with libtorch_cuda kept in the link: OPENWIT_CLIP_CUDA=1) and the examples
#      make_shards and bench, strips them into target/gpu-bench-bin/ with CLIP's vocabulary
#   2. on the GPU machine (PyTorch 2.11 + CUDA in its Python, for the libraries):
#      scripts/gpu-eval.sh   (carry target/gpu-bench-bin). Env: DEVICE (cuda), MODEL (ViT-B-32),
#      STEPS (60), BATCH (64), BIN_DIR (target/gpu-bench-bin), PY (python3), TOL (1.0).
#      Results also go to $OUT/gpu-eval.jsonl when OUT is set.
#   DEVICE=cpu MODEL=tiny-vit STEPS=10 runs the same script on a CPU-only machine (the comparison is
#   then CPU against CPU: a check of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
DEVICE="${DEVICE:-cuda}"
MODEL="${MODEL:-ViT-B-32}"
STEPS="${STEPS:-60}"
BATCH="${BATCH:-64}"
TOL="${TOL:-1.0}"
BIN_DIR="${BIN_DIR:-target/gpu-bench-bin}"

if [ "${1:-}" = "--prepare" ]; then
  # One prepared folder for both GPU scripts: `openwit`, make_shards and bench, CUDA + NCCL.
  BENCH_BIN_DIR="$BIN_DIR" exec scripts/gpu-bench.sh --prepare
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
source scripts/gpu-lib.sh
gpu_torch_env
BIN_DIR="$(gpu_bins "$BIN_DIR" "$tmp/bin")"
vocab="$(ls "$BIN_DIR"/bpe_simple_vocab_16e6.txt.gz 2>/dev/null || true)"
if [ -n "$vocab" ]; then export OPENWIT_CLIP_VOCAB="$vocab"; fi

# Training shards (4 x 256) and a held-out set of other pictures (240, another seed).
"$BIN_DIR/make_shards" "$tmp/train" 4 256 64 0 >/dev/null
"$BIN_DIR/make_shards" "$tmp/test" 1 240 64 1 >/dev/null
classes="$("$PY" -c 'import json, sys; print(json.dumps([l.strip() for l in open(sys.argv[1]) if l.strip()]))' "$tmp/train/classnames.txt")"
sets() { # DEVICE
  cat <<TOML
[eval]
shards = ["$tmp/test"]
classes = $classes
retrieval_shards = ["$tmp/test"]
overlap_shards = ["$tmp/train"]
device = "$1"
batch_size = 128

[eval.linear_probe]
train = { shards = ["$tmp/train/00000.tar", "$tmp/train/00001.tar"] }
test = { shards = ["$tmp/test"] }
TOML
}
cat >"$tmp/device.toml" <<TOML
[pipeline]
workdir = "$tmp/work"

[train]
model = "$MODEL"
shards = ["$tmp/train"]
steps = $STEPS
batch_size = $BATCH
lr = 5e-4
warmup = 5
checkpoint_every = $STEPS
device = "$DEVICE"

$(sets "$DEVICE")
TOML
cat >"$tmp/cpu.toml" <<TOML
[pipeline]
workdir = "$tmp/work-cpu"

$(sets cpu | sed "s|^\[eval\]$|[eval]\nweights = \"$tmp/work/train/model.safetensors\"\nmodel = \"$MODEL\"|")
TOML

echo "== train and eval on $DEVICE"
"$BIN_DIR/openwit" run "$tmp/device.toml" -q
cat "$tmp/work/eval/results.txt"
echo "== eval of the same weights on the CPU"
"$BIN_DIR/openwit" run "$tmp/cpu.toml" -q
"$PY" - "$tmp/work/eval/results.json" "$tmp/work-cpu/eval/results.json" "$DEVICE" "$MODEL" "$TOL" "${OUT:-}" <<'PYEOF'
import json, sys
dev_path, cpu_path, device, model, tol, out = sys.argv[1:7]
tol = float(tol)
def figures(r):
    z, t, p, o = r["zero_shot"], r["retrieval"], r["linear_probe"], r.get("overlap") or {}
    f = {"zero_shot_top1": z["top1"], "zero_shot_top5": z["top5"],
         "zero_shot_mean_per_class_recall": z["mean_per_class_recall"]}
    for k, name in ((0, "r1"), (1, "r5"), (2, "r10")):
        f["image_to_text_" + name] = t["image_to_text"][k]
        f["text_to_image_" + name] = t["text_to_image"][k]
    f["linear_probe_top1"] = p["top1"]
    f["overlap_zero_shot_items"] = (o.get("zero_shot") or {}).get("overlapping")
    return f
a = figures(json.load(open(dev_path)))
b = figures(json.load(open(cpu_path)))
worst = {}
bad = []
for k in a:
    if a[k] is None or b[k] is None:
        continue
    d = abs(a[k] - b[k]) * (1 if k.startswith("overlap") else 100)
    worst[k] = round(d, 3)
    limit = 0 if k.startswith("overlap") else (3 * tol if k.startswith("linear_probe") else tol)
    if d > limit:
        bad.append(f"{k}: {device} {a[k]} vs cpu {b[k]}")
line = {"check": "eval_device_vs_cpu", "device": device, "model": model,
        "device_figures": a, "cpu_figures": b, "abs_diff_points": worst, "ok": not bad}
print(json.dumps(line))
if out:
    with open(out.rstrip("/") + "/gpu-eval.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
if bad:
    print("differences beyond the tolerance:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PYEOF

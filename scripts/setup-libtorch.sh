#!/usr/bin/env bash
# Installs libtorch 2.11.0 for the CLIP trainer (crate openwit-clip, `tch` 0.24.0) from PyPI
# wheels into a cache folder, idempotently, and prints the environment to export.
#
#   scripts/setup-libtorch.sh            # libtorch for building and running on CPU (~1.3 GB)
#   scripts/setup-libtorch.sh --python   # + the whole CUDA runtime the wheel needs to import in
#                                        #   Python, open_clip_torch and safetensors: the parity
#                                        #   tests' reference implementation (~5 GB)
#   scripts/setup-libtorch.sh --cuda     # + the CUDA and NCCL headers that ProcessGroupNCCL needs
#                                        #   (implies --python, whose CUDA wheels hold most of them):
#                                        #   builds with OPENWIT_CLIP_CUDA=1 then train on GPUs with NCCL
#   eval "$(scripts/setup-libtorch.sh --python --quiet)"   # export the variables in this shell
#
# Folder: $OPENWIT_LIBTORCH_CACHE (default ~/.cache/openwit/libtorch). Layout:
#   rust/    torch==2.11.0 + nvidia-cuda-runtime/cupti (CUDA 13.0) wheels, --no-deps: LIBTORCH and
#            the libraries a CPU run of the binary needs (libtorch_cpu needs libcudart and libcupti)
#   python/  torch==2.11.0 with all its dependencies + open_clip_torch + safetensors (--python)
#   cuda-headers/  nvidia-cuda-crt + nvidia-cuda-cccl (--cuda, headers only, ~20 MB)
#
# Why PyPI wheels: the registries are the only network the project's machines reach, and the
# torch wheel ships the C++ headers and shared libraries tch builds against (the same libtorch the
# GPU machines have in their Python environment).
set -euo pipefail

TORCH_VERSION=2.11.0
TORCHVISION_VERSION=0.26.0
OPEN_CLIP_VERSION=3.3.0
SAFETENSORS_VERSION=0.8.0
# open_clip cleans captions with ftfy's fix_text; crates/openwit-clip/src/ftfy is a port of 6.3.
FTFY_VERSION=6.3.1
# The CUDA 13.0 runtime pinned by the torch 2.11.0 wheel (through cuda-toolkit==13.0.2).
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
# --cuda: the headers of CUDA 13.0 that torch's CUDA headers include and no torch dependency ships
# (crt/host_config.h, nv/target), for compiling the NCCL part of openwit-clip's c10d shim; NCCL's
# own header comes with torch's nvidia-nccl-cu13 dependency on the Python side.
CUDA_CRT_VERSION=13.0.88
CUDA_CCCL_VERSION=13.0.85
# The eval tests' reference (`openwit eval` against clip_benchmark's own zero-shot and retrieval
# code and scikit-learn's L-BFGS logistic regression), installed --no-deps with every dependency
# pinned: clip_benchmark's own requirements also pull pycocoevalcap and transformers, which the
# metrics and the webdataset reader never import.
CLIP_BENCHMARK_PINS="clip_benchmark==1.6.2 webdataset==1.0.2 braceexpand==0.1.7 scikit-learn==1.9.1
  scipy==1.17.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.29.0 requests==2.34.2 urllib3==2.8.0
  certifi==2026.10.19.post1 charset_normalizer==3.5.3"

python_side=0
cuda_headers=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    --python) python_side=1 ;;
    --cuda) python_side=1; cuda_headers=1 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "setup-libtorch.sh: unknown argument $arg (use --python, --cuda, --quiet)" >&2; exit 2 ;;
  esac
done

cache="${OPENWIT_LIBTORCH_CACHE:-$HOME/.cache/openwit/libtorch}"
py="${PYTHON:-python3}"
log() { if [ "$quiet" = 0 ]; then echo "setup-libtorch: $*" >&2; fi; }

pip_target() { # DIR STAMP ARGS...: installs ARGS into DIR unless DIR/STAMP says it is done
  local dir="$1" stamp="$2"; shift 2
  if [ -f "$dir/.openwit-$stamp" ]; then
    log "$dir is ready ($stamp)"
    return
  fi
  log "installing into $dir: $*"
  rm -rf "$dir.partial"
  mkdir -p "$dir.partial"
  "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$dir.partial" "$@" >&2
  touch "$dir.partial/.openwit-$stamp"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}

require() { # WHAT FILE...: each FILE exists after the install, else says to remove WHAT and rerun
  local what="$1" f
  shift
  for f in "$@"; do
    if [ ! -e "$f" ]; then
      echo "setup-libtorch.sh: $f is missing after the install; remove $what and rerun" >&2
      exit 1
    fi
  done
}

mkdir -p "$cache"
rust_stamp="torch-$TORCH_VERSION-cudart-$CUDART_VERSION-cupti-$CUPTI_VERSION"
pip_target "$cache/rust" "$rust_stamp" --no-deps \
  "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"

# CLIP's BPE merges file (OpenAI's bpe_simple_vocab_16e6.txt.gz) from the open_clip_torch wheel.
vocab="$cache/bpe_simple_vocab_16e6.txt.gz"
if [ ! -s "$vocab" ]; then
  log "extracting $vocab from the open_clip_torch==$OPEN_CLIP_VERSION wheel"
  tmp="$(mktemp -d)"
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
    "open_clip_torch==$OPEN_CLIP_VERSION" >&2
  "$py" - "$tmp" "$vocab" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/open_clip_torch-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
with open(sys.argv[2] + ".partial", "wb") as f:
    f.write(data)
PY
  mv "$vocab.partial" "$vocab"
  rm -rf "$tmp"
fi

libtorch="$cache/rust/torch"
ld="$cache/rust/torch/lib:$cache/rust/nvidia/cu13/lib"
pythonpath=""
if [ "$python_side" = 1 ]; then
  old_stamp="torch-$TORCH_VERSION-open_clip-$OPEN_CLIP_VERSION-safetensors-$SAFETENSORS_VERSION"
  py_stamp="$old_stamp-ftfy-$FTFY_VERSION"
  # A folder installed before ftfy was pinned that happens to hold the pinned version is kept.
  if [ -f "$cache/python/.openwit-$old_stamp" ] && [ -d "$cache/python/ftfy-$FTFY_VERSION.dist-info" ]; then
    touch "$cache/python/.openwit-$py_stamp"
  fi
  pip_target "$cache/python" "$py_stamp" \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
    "open_clip_torch==$OPEN_CLIP_VERSION" "safetensors==$SAFETENSORS_VERSION" \
    "ftfy==$FTFY_VERSION" regex numpy
  bench_stamp="bench-$(echo $CLIP_BENCHMARK_PINS | tr ' ' '_' | md5sum | cut -c1-12)"
  if [ ! -f "$cache/python/.openwit-$bench_stamp" ]; then
    log "installing the eval reference into $cache/python: $CLIP_BENCHMARK_PINS"
    # shellcheck disable=SC2086 # one word per pin
    "$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --no-deps --upgrade --target "$cache/python" $CLIP_BENCHMARK_PINS >&2
    touch "$cache/python/.openwit-$bench_stamp"
  fi
  pythonpath="$cache/python"
fi
nccl_include=""
if [ "$cuda_headers" = 1 ]; then
  pip_target "$cache/cuda-headers" "crt-$CUDA_CRT_VERSION-cccl-$CUDA_CCCL_VERSION" --no-deps \
    "nvidia-cuda-crt==$CUDA_CRT_VERSION" "nvidia-cuda-cccl==$CUDA_CCCL_VERSION"
  nccl_include="$cache/python/nvidia/nccl/include:$cache/python/nvidia/cu13/include:$cache/cuda-headers/nvidia/cu13/include"
  require "$cache/python and $cache/cuda-headers" \
    "$cache/python/nvidia/nccl/include/nccl.h" "$cache/python/nvidia/cu13/include/cuda_runtime_api.h" \
    "$cache/cuda-headers/nvidia/cu13/include/crt/host_config.h" "$cache/cuda-headers/nvidia/cu13/include/nv/target"
fi

require "$cache" "$libtorch/lib/libtorch_cpu.so" "$libtorch/include/torch/csrc/api/include/torch/torch.h" \
  "$cache/rust/nvidia/cu13/lib/libcudart.so.13" "$cache/rust/nvidia/cu13/lib/libcupti.so.13"

# LIBTORCH: what torch-sys builds against. LIBTORCH_BYPASS_VERSION_CHECK: the wheel's
# version.py says 2.11.0, which torch-sys 0.24 accepts, but its check also rejects "+cuXXX"
# local versions some environments report. LD_LIBRARY_PATH: what a CPU run of the binary loads.
# OPENWIT_CLIP_VOCAB: CLIP's BPE merges. OPENWIT_CLIP_PYTHONPATH: the Python side of the parity tests (open_clip_torch on this torch).
echo "export LIBTORCH=$libtorch"
echo "export LIBTORCH_BYPASS_VERSION_CHECK=1"
echo "export OPENWIT_CLIP_VOCAB=$vocab"
echo "export LD_LIBRARY_PATH=$ld\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
if [ -n "$pythonpath" ]; then
  echo "export OPENWIT_CLIP_PYTHONPATH=$pythonpath"
fi
# OPENWIT_NCCL_INCLUDE: the include folders (a path list) openwit-clip's build script adds to compile
# ProcessGroupNCCL into its shim when OPENWIT_CLIP_CUDA=1.
if [ -n "$nccl_include" ]; then
  echo "export OPENWIT_NCCL_INCLUDE=$nccl_include"
fi

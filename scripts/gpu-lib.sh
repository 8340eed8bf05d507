# Sourced by scripts/gpu-bench.sh and scripts/gpu-eval.sh on the GPU machine (no network there).
#
# gpu_torch_env: libtorch and CUDA's libraries from the machine's PyTorch ($PY): the binaries'
# RPATH names this project's libtorch cache, which the GPU machine does not have. Prints the
# torch version and the device.
gpu_torch_env() {
  local torch_dir site ld d
  torch_dir="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  site="$(dirname "$torch_dir")"
  ld="$torch_dir/lib"
  for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do [ -d "$d" ] && ld="$ld:$d"; done
  export LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
}

# gpu_bins DIR OUT: the folder of the carried binaries to run. `--prepare` packs them with xz (the
# device tool carries 64 MiB with the tree); they are unpacked into OUT here (Python's lzma, no xz
# needed). Prints DIR itself when it holds unpacked binaries (a build on this machine).
gpu_bins() {
  local dir="$1" out="$2" f name
  if ! ls "$dir"/*.xz >/dev/null 2>&1; then
    echo "$dir"
    return
  fi
  mkdir -p "$out"
  for f in "$dir"/*; do
    name="$(basename "$f")"
    case "$name" in
      *.xz)
        "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
          "$f" "$out/${name%.xz}"
        chmod +x "$out/${name%.xz}" ;;
      *) cp "$f" "$out/" ;;
    esac
  done
  echo "$out"
}

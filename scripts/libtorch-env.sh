# Sourced by scripts/test.sh (and usable by hand: `source scripts/libtorch-env.sh`): installs
# libtorch 2.11 + the Python reference (open_clip_torch) into the cache if needed and exports
# LIBTORCH, LD_LIBRARY_PATH, OPENWIT_CLIP_VOCAB and OPENWIT_CLIP_PYTHONPATH for openwit-clip.
eval "$("$(dirname "${BASH_SOURCE[0]}")/setup-libtorch.sh" --python --quiet)"

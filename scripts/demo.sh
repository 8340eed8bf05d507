#!/usr/bin/env bash
# Runs the bundled demo end to end: `openwit run pipelines/demo.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# libtorch 2.11 and CLIP's vocabulary for the `train` feature (LIBTORCH, LD_LIBRARY_PATH,
# OPENWIT_CLIP_VOCAB): the demo trains and evaluates a tiny CLIP.
if [ -f scripts/libtorch-env.sh ]; then source scripts/libtorch-env.sh; fi
# Cargo features of the openwit binary: `train` unless OPENWIT_FEATURES says otherwise (without
# it the demo's [train] and [eval] tables are refused with a message saying how to rebuild).
export OPENWIT_FEATURES="${OPENWIT_FEATURES-train}"
features=()
if [ -n "$OPENWIT_FEATURES" ]; then features=(--features "$OPENWIT_FEATURES"); fi
cargo build --release -p openwit-cli "${features[@]}"
exec "${CARGO_TARGET_DIR:-target}/release/openwit" run pipelines/demo.toml "$@"

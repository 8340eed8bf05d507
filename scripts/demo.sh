#!/usr/bin/env bash
# Runs the bundled demo end to end: `openwit run pipelines/demo.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f scripts/libtorch-env.sh ]; then source scripts/libtorch-env.sh; fi
features=()
if [ -n "${OPENWIT_FEATURES:-}" ]; then features=(--features "$OPENWIT_FEATURES"); fi
cargo build --release -p openwit-cli "${features[@]}"
exec target/release/openwit run pipelines/demo.toml "$@"

#!/usr/bin/env bash
# The test command: formatting, lints and the whole test suite. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
if [ -f scripts/libtorch-env.sh ]; then source scripts/libtorch-env.sh; fi
# Cargo features of the openwit binary: `train` (the CLIP trainer, libtorch) unless
# OPENWIT_FEATURES says otherwise (OPENWIT_FEATURES= builds without). Exported: the test
# harness (openwit-testkit's openwit_bin) builds the binary with the same features.
export OPENWIT_FEATURES="${OPENWIT_FEATURES-train}"
features=()
if [ -n "$OPENWIT_FEATURES" ]; then features=(--features "$OPENWIT_FEATURES"); fi
cargo fmt --all --check
# No unused dependency in any crate (fuzz crates included). cargo-machete reads the manifests and
# sources, no build; installed once per machine.
if ! command -v cargo-machete >/dev/null; then
  cargo install --quiet --locked cargo-machete@0.9.2
fi
cargo machete
cargo clippy --workspace --all-targets "${features[@]}" -- -D warnings
log=$(mktemp)
set +e
cargo test --workspace --no-fail-fast "${features[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Close with one summary line over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$status"

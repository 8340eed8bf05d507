#!/usr/bin/env bash
# Runs the bundled demo end to end: builds `openwit`, puts it on the PATH (a copy in
# ${CARGO_HOME:-~/.cargo}/bin, where rustup put cargo), then `openwit run pipelines/demo.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# libtorch 2.11 and CLIP's vocabulary for the `train` feature (LIBTORCH for the build; the binary
# finds the libraries by its RPATH and the vocabulary in the same cache, so no variable is needed
# to run it): the demo trains and evaluates a tiny CLIP.
if [ -x scripts/setup-libtorch.sh ]; then eval "$(scripts/setup-libtorch.sh --quiet)"; fi
# Cargo features of the openwit binary: `train` unless OPENWIT_FEATURES says otherwise (without
# it the demo's [train] and [eval] tables are refused with a message saying how to rebuild).
export OPENWIT_FEATURES="${OPENWIT_FEATURES-train}"
features=()
if [ -n "$OPENWIT_FEATURES" ]; then features=(--features "$OPENWIT_FEATURES"); fi
cargo build --release -p openwit-cli "${features[@]}"
bin="${CARGO_TARGET_DIR:-target}/release/openwit"
dest="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$dest"
install -m 755 "$bin" "$dest/openwit.partial" && mv -f "$dest/openwit.partial" "$dest/openwit"
case ":$PATH:" in
  *":$dest:"*) echo "demo: installed openwit in $dest" >&2 ;;
  *) echo "demo: installed openwit in $dest, which is not on your PATH: add it (export PATH=\"$dest:\$PATH\")" >&2 ;;
esac
exec "$dest/openwit" run pipelines/demo.toml "$@"

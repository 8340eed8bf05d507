#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh machine (Rust toolchain, Python 3.11 + pip
# and gcc are assumed). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python packages used by the tests' reference implementations and interop checks.
if [ -s .ci/requirements.txt ] && grep -qv '^\s*#' .ci/requirements.txt; then
  python3 -m pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
fi

# Debian packages some tests drive (only when missing; needs root, as on CI).
need_apt=()
for p in $(grep -v '^\s*#' .ci/apt-packages.txt 2>/dev/null || true); do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages: ${need_apt[*]}" >&2
  fi
fi

# libtorch for the CLIP trainer (the `train` feature), when its setup script exists.
if [ -x scripts/setup-libtorch.sh ]; then
  scripts/setup-libtorch.sh >/dev/null
fi

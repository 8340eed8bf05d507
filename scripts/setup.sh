#!/usr/bin/env bash
# Installs what the build and the demo need on a fresh machine (Rust toolchain, Python 3.11 + pip
# and gcc are assumed); with --tests, also what only the tests need. Idempotent: a second run only
# checks.
#
#   scripts/setup.sh           # the demo: cmake, nasm and WordNet 3.0 (Debian), libtorch 2.11 for the
#                              # Rust side (~1.3 GB from PyPI into ~/.cache/openwit/libtorch), CLIP's
#                              # vocabulary, and the demo's drawings (Debian's openclipart packages,
#                              # 156 MB, into ~/.cache/openwit/openclipart)
#   scripts/setup.sh --tests   # + the tests' Python packages (.ci/requirements.txt), their Debian
#                              # packages (.ci/apt-packages.txt: Chromium, Slurm, Ceph) and
#                              # the Python side of the trainer's parity tests (torch + open_clip, ~5 GB)
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg (use --tests)" >&2; exit 2 ;;
  esac
done

# Python packages used by the tests' reference implementations and interop checks.
if [ "$tests" = 1 ] && [ -s .ci/requirements.txt ] && grep -qv '^\s*#' .ci/requirements.txt; then
  python3 -m pip install --quiet --disable-pip-version-check -r .ci/requirements.txt
fi

# Debian packages (only when missing; needs root, as on CI).
lists=(.ci/apt-packages-build.txt)
if [ "$tests" = 1 ]; then lists+=(.ci/apt-packages.txt); fi
need_apt=()
for p in $(cat "${lists[@]}" 2>/dev/null | grep -v '^\s*#' || true); do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these Debian packages: ${need_apt[*]}" >&2
  fi
fi

# libtorch for the CLIP trainer (the `train` feature); with --tests also its Python reference.
if [ -x scripts/setup-libtorch.sh ]; then
  if [ "$tests" = 1 ]; then
    scripts/setup-libtorch.sh --python >/dev/null
  else
    scripts/setup-libtorch.sh >/dev/null
  fi
fi

# The demo's world of real pictures (pipelines/demo.toml): the Open Clip Art Library's drawings.
if [ -x scripts/setup-clipart.sh ]; then
  scripts/setup-clipart.sh
fi

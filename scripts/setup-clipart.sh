#!/usr/bin/env bash
# Fetches the demo's world of real pictures: the Open Clip Art Library's drawings as Debian ships
# them (openclipart-svg: 25 MB, the SVGs with their authors' titles, descriptions and keywords;
# openclipart-png: 131 MB, the same drawings rendered; public domain), extracted without
# installing them (no root needed) into a cache folder. Idempotent.
#
#   scripts/setup-clipart.sh     # -> ~/.cache/openwit/openclipart/usr/share/openclipart/{svg,png}
#
# Used by pipelines/demo-clipart.toml (`[demo_site] world = "openclipart"`), which also finds the
# drawings in /usr/share/openclipart when the two packages are installed.
set -euo pipefail

VERSION="1:0.18+dfsg-19"
cache="${OPENWIT_OPENCLIPART_CACHE:-$HOME/.cache/openwit/openclipart}"
stamp="$cache/.openwit-openclipart-$VERSION"

if [ -f "$stamp" ]; then
  echo "setup-clipart: $cache is ready" >&2
  exit 0
fi
for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "setup-clipart: needs $tool (Debian or Ubuntu); or install openclipart-svg and openclipart-png from your distribution and point [demo_site] openclipart at /usr/share/openclipart" >&2
    exit 1
  fi
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "setup-clipart: downloading openclipart-svg and openclipart-png ($VERSION, 156 MB)" >&2
(cd "$tmp" && apt-get download -qq "openclipart-svg=$VERSION" "openclipart-png=$VERSION") || {
  echo "setup-clipart: apt-get download failed; run \`apt-get update\` (as root) and try again" >&2
  exit 1
}
rm -rf "$cache.partial"
mkdir -p "$cache.partial"
for deb in "$tmp"/*.deb; do
  dpkg-deb -x "$deb" "$cache.partial"
done
touch "$cache.partial/.openwit-openclipart-$VERSION"
rm -rf "$cache"
mv "$cache.partial" "$cache"
echo "setup-clipart: $(find "$cache" -name '*.svg' | wc -l) drawings in $cache/usr/share/openclipart" >&2

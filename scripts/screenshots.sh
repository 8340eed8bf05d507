#!/usr/bin/env bash
# The README's screenshots (docs/img/) of the demo's real run: the web UI (`openwit serve`) and the
# report of work/demo, taken with headless Chromium. Run the demo first (scripts/demo.sh).
#
#   scripts/screenshots.sh [WORKDIR]     # default work/demo; needs `openwit` on the PATH and chromium
set -euo pipefail
cd "$(dirname "$0")/.."
workdir="${1:-work/demo}"
bin="${OPENWIT_BIN:-openwit}"
chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$chrome" ]; then
  echo "screenshots: needs chromium (Debian: apt-get install chromium)" >&2
  exit 1
fi
if [ ! -f "$workdir/report/report.html" ]; then
  echo "screenshots: $workdir has no report; run the demo first (scripts/demo.sh)" >&2
  exit 1
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" serve "$workdir" --port "$port" >/dev/null 2>&1 &
server=$!
profile="$(mktemp -d)"
trap 'kill $server 2>/dev/null || true; rm -rf "$profile"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('$base/')" 2>/dev/null; then break; fi
  sleep 0.1 # the server is starting
done
# The first result of a search leads to its detail page.
detail="$(python3 - "$base" <<'PY'
import re, sys, urllib.request
page = urllib.request.urlopen(sys.argv[1] + "/?q=sailing+boat").read().decode()
m = re.search(r'href="(/sample/[^"]+)"', page)
print(m.group(1).replace("&amp;", "&") if m else "/")
PY
)"
shot() { # NAME URL SIZE
  "$chrome" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --window-size="$3" --screenshot="docs/img/$1" "$2" >/dev/null 2>&1
  echo "screenshots: docs/img/$1 ($2)" >&2
}
shot ui-search.png "$base/?q=sailing+boat" 1280,720
shot ui-detail.png "$base$detail" 1280,900
shot ui-entries.png "$base/entries" 1280,560
shot report.png "$base/report" 1280,6700

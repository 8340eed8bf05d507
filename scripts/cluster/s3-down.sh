#!/usr/bin/env bash
# s3-down.sh: stop the S3 store started by s3-up.sh (radosgw, then the OSD, then the monitor, each by
# its pid file; SIGKILL after a bounded wait) and wait until they are gone. The objects are lost
# (they live in memory); logs stay in $OPENWIT_S3_DIR/log unless --purge removes the folder.
# Safe to run when nothing is up.
#
# Usage: scripts/cluster/s3-down.sh [--purge]
# Environment: OPENWIT_S3_DIR  state folder  [/tmp/openwit-s3]
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) die "usage: $0 [--purge]" ;;
esac
D=$OPENWIT_S3_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
if [ ! -d "$D" ]; then
  say "nothing to stop ($D does not exist)"
  exit 0
fi

# One after the other (~0.3 s each): the gateway first (its shutdown talks to the OSD and hangs when
# the OSD is already gone), then the OSD (it tells the monitor it is going down and waits 5 s when the
# monitor is already gone), the monitor last. SIGKILL after 10 s (a gateway whose OSD died never
# exits on SIGTERM).
stop_pidfiles 10 "$D/run/client.rgw.a.pid"
stop_pidfiles 10 "$D/run/osd.0.pid"
stop_pidfiles 10 "$D/run/mon.a.pid"

if [ "$purge" = 1 ]; then
  rm -rf "${D:?}"
  say "stopped; removed $D"
else
  say "stopped; logs in $D/log"
fi

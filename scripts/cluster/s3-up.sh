#!/usr/bin/env bash
# s3-up.sh: a real S3 endpoint on this machine for tests: Ceph's RADOS Gateway (Debian radosgw,
# ceph-mon, ceph-osd, ceph-common) over a one-monitor, one-OSD Ceph cluster whose OSD keeps the
# objects in memory (memstore). No systemd, no cephx auth, no manager daemon; everything lives in
# one state folder. The gateway listens on 127.0.0.1 only; a user with fixed test keys and a bucket
# are created.
#
# Usage:
#   eval "$(scripts/cluster/s3-up.sh)"     # start (or check) the store, export the AWS_* variables
#   scripts/cluster/s3-down.sh             # stop it (add --purge to remove the state folder)
#
# Idempotent: when the three daemons run and the gateway answers, it only makes sure the user and
# the bucket exist and prints the environment again. Otherwise it stops what is left and starts a
# fresh, empty store (objects live in memory: a restart loses them; the previous logs are kept in
# log.prev/).
#
# Environment (all optional):
#   OPENWIT_S3_DIR         state folder: ceph.conf, run/*.pid, log/, mon/, osd/   [/tmp/openwit-s3]
#   OPENWIT_S3_PORT        gateway port on 127.0.0.1                              [7480]
#   OPENWIT_S3_MON_PORT    Ceph monitor port                                      [6789]
#   OPENWIT_S3_BUCKET      bucket to create                                       [openwit]
#   OPENWIT_S3_ACCESS_KEY / OPENWIT_S3_SECRET_KEY   the test user's keys  [fixed test values below]
#   OPENWIT_S3_MEMORY_MB   memstore capacity (objects are held in RAM)            [4096]
#   OPENWIT_S3_TIMEOUT     seconds to wait for each daemon                        [120]
# stdout: export AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1),
#   AWS_ALLOW_HTTP=true and AWS_BUCKET (read by object_store's AmazonS3Builder::from_env), and
#   OPENWIT_S3_DIR. Progress and errors go to stderr.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

D=$OPENWIT_S3_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
PORT=${OPENWIT_S3_PORT:-7480}
MON_PORT=${OPENWIT_S3_MON_PORT:-6789}
BUCKET=${OPENWIT_S3_BUCKET:-openwit}
ACCESS_KEY=${OPENWIT_S3_ACCESS_KEY:-OPENWITTESTACCESSKEY}
SECRET_KEY=${OPENWIT_S3_SECRET_KEY:-openwit-test-secret-key-not-for-production}
MEMORY_MB=${OPENWIT_S3_MEMORY_MB:-4096}
TIMEOUT=${OPENWIT_S3_TIMEOUT:-120}
REGION=us-east-1
ENDPOINT=http://127.0.0.1:$PORT
for v in PORT MON_PORT MEMORY_MB TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "OPENWIT_S3_$v must be a number, not '${!v}'"
done
need ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl sha256sum
CONF=$D/ceph.conf
C=(-c "$CONF")
t0=$(now_ms)
step() { say "+$(($(now_ms) - t0))ms: $*"; }

gateway_answers() { curl -s -o /dev/null -m 2 "$ENDPOINT/"; }

# s3 METHOD PATH [curl args...]: a SigV4-signed request to the gateway. curl 7.88's --aws-sigv4 does
# not send x-amz-content-sha256, which RGW requires: we send the hash of the (empty) body ourselves.
s3() {
  local method=(-X "$1") path=$2
  shift 2
  [ "${method[1]}" = HEAD ] && method=(--head) # -X HEAD would wait for a body until the timeout
  curl -s -m 10 "${method[@]}" --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" "$@" "$ENDPOINT$path"
}

ensure_user_and_bucket() {
  local code
  if ! radosgw-admin "${C[@]}" user info --uid=openwit >/dev/null 2>&1; then
    radosgw-admin "${C[@]}" user create --uid=openwit --display-name="OpenWIT tests" \
      --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>>"$D/log/setup.log" ||
      die "radosgw-admin user create failed (see $D/log/setup.log)"
  fi
  code=$(s3 HEAD "/$BUCKET" -o /dev/null -w '%{http_code}' || true)
  case $code in
    200) ;;
    404)
      code=$(s3 PUT "/$BUCKET" -o "$D/log/bucket.xml" -w '%{http_code}' || true)
      [ "$code" = 200 ] || die "creating bucket $BUCKET: HTTP $code ($(cat "$D/log/bucket.xml" 2>/dev/null))"
      ;;
    403) die "bucket $BUCKET: access denied with the configured keys (a store with other keys runs from $D?)" ;;
    *) die "bucket $BUCKET: unexpected HTTP '$code' from $ENDPOINT (see $D/log/client.rgw.a.log)" ;;
  esac
}

print_env() {
  say "ready in $(($(now_ms) - t0))ms: $ENDPOINT bucket $BUCKET"
  printf 'export AWS_ENDPOINT_URL=%q\n' "$ENDPOINT"
  printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ACCESS_KEY"
  printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$SECRET_KEY"
  printf 'export AWS_REGION=%q\n' "$REGION"
  printf 'export AWS_ALLOW_HTTP=true\n'
  printf 'export AWS_BUCKET=%q\n' "$BUCKET"
  printf 'export OPENWIT_S3_DIR=%q\n' "$D"
}

# Already up?
if pid_alive "$D/run/mon.a.pid" && pid_alive "$D/run/osd.0.pid" && pid_alive "$D/run/client.rgw.a.pid" &&
  gateway_answers; then
  say "already running from $D"
  ensure_user_and_bucket
  print_env
  exit 0
fi

# A fresh start: stop what is left of an earlier run, keep its logs, start from an empty folder.
# (no clean shutdown needed: a gateway whose OSD died would not exit on SIGTERM anyway)
stop_pidfiles 3 "$D/run/client.rgw.a.pid" "$D/run/osd.0.pid" "$D/run/mon.a.pid"
for p in "$PORT" "$MON_PORT"; do
  port_free "$p" || die "port $p is in use (another Ceph or S3 server?); set OPENWIT_S3_PORT / OPENWIT_S3_MON_PORT"
done
if [ -d "$D/log" ]; then
  rm -rf "${D:?}/log.prev"
  mv "$D/log" "$D/log.prev"
fi
rm -rf "${D:?}/run" "${D:?}/mon" "${D:?}/osd" "${D:?}/rgw" "$CONF" "$D/monmap"
mkdir -p "$D/run" "$D/log" "$D/mon" "$D/osd" "$D/rgw"

# Notes on the settings: one copy of everything (size 1) on one OSD (chooseleaf type 0 = place
# replicas across OSDs, not hosts); no pg autoscaler (there is no manager); the data-space warnings
# are disabled (mon data lives on a shared disk); the monitor speaks msgr v1 on 127.0.0.1; the OSD
# binds in the port range 7400-7470 so that it never takes Slurm's 6817+ ports. The OSD does not
# place itself in the CRUSH map at start: without cephx its first monitor commands race with the
# monitor map and are refused now and then ("wrong fsid"; the OSD then exits), so this script adds
# it to the map itself, before starting it.
FSID=$(cat /proc/sys/kernel/random/uuid)
cat >"$CONF" <<EOF
# Generated by scripts/cluster/s3-up.sh
[global]
fsid = $FSID
mon initial members = a
mon host = v1:127.0.0.1:$MON_PORT
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
ms bind port min = 7400
ms bind port max = 7470
auth cluster required = none
auth service required = none
auth client required = none
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
mon data = $D/mon/\$id
osd data = $D/osd/\$id
osd objectstore = memstore
memstore device bytes = $((MEMORY_MB * 1024 * 1024))
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
EOF

step "starting ceph-mon (log $D/log/mon.a.log)"
monmaptool --create --add a "127.0.0.1:$MON_PORT" --fsid "$FSID" "$D/monmap" >>"$D/log/setup.log" 2>&1
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" >>"$D/log/setup.log" 2>&1 ||
  die "ceph-mon --mkfs failed (see $D/log/setup.log)"
ceph-mon "${C[@]}" -i a >>"$D/log/setup.log" 2>&1 || die "ceph-mon failed to start (see $D/log/mon.a.log)"
wait_until "$TIMEOUT" "the Ceph monitor" "$D/log/mon.a.log" timeout 10 ceph "${C[@]}" mon stat

step "starting ceph-osd (log $D/log/osd.0.log)"
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD=$(timeout 30 ceph "${C[@]}" osd new "$OSD_UUID" 2>>"$D/log/setup.log") ||
  die "ceph osd new failed (see $D/log/setup.log)"
[ "$OSD" = 0 ] || die "expected OSD id 0, the monitor gave '$OSD'"
timeout 30 ceph "${C[@]}" osd crush add osd.0 1.0 root=default >>"$D/log/setup.log" 2>&1 ||
  die "ceph osd crush add failed (see $D/log/setup.log)"
mkdir -p "$D/osd/0"
ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$D/log/setup.log" 2>&1 ||
  die "ceph-osd --mkfs failed (see $D/log/setup.log)"
ceph-osd "${C[@]}" -i 0 >>"$D/log/setup.log" 2>&1 || die "ceph-osd failed to start (see $D/log/osd.0.log)"
wait_until "$TIMEOUT" "the OSD to be up" "$D/log/osd.0.log" \
  bash -c "timeout 10 ceph -c '$CONF' osd stat | grep -q '1 up'"

step "starting radosgw on $ENDPOINT (log $D/log/client.rgw.a.log)"
radosgw "${C[@]}" -n client.rgw.a >>"$D/log/setup.log" 2>&1 ||
  die "radosgw failed to start (see $D/log/client.rgw.a.log)"
wait_until "$TIMEOUT" "the RADOS gateway on $ENDPOINT" "$D/log/client.rgw.a.log" gateway_answers
step "gateway answers; creating user and bucket"
ensure_user_and_bucket
print_env

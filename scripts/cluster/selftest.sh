#!/usr/bin/env bash
# selftest.sh: check that the single-host Slurm cluster and the S3 store work on this machine
# (after scripts/setup.sh --tests installed the packages). Uses its own state folders under /tmp, so it
# fails (port in use) instead of touching a cluster that is already running; brings both up, runs a
# 6-element job array across the 3 nodes, puts and gets objects over S3 (plain, put-if-absent), stops
# both and checks that no daemon is left; then does it all once more (restart). Prints the timings.
#
# Usage: scripts/cluster/selftest.sh      (exit 0 = all good; needs root; takes ~1 min)
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d /tmp/openwit-cluster-selftest.XXXXXX)
export OPENWIT_SLURM_DIR=$tmp/slurm OPENWIT_S3_DIR=$tmp/s3
cleanup() {
  "$here/slurm-down.sh" --purge >/dev/null 2>&1 || true
  "$here/s3-down.sh" --purge >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

check() { # check WHAT CMD...: run CMD; fail the self-test naming WHAT
  local what=$1
  shift
  if "$@"; then say "ok: $what"; else die "FAILED: $what"; fi
}

# a munged that ran before we started is not ours to stop
munged_before=" $(pgrep -x munged | tr '\n' ' ' || true) "
no_daemons_left() {
  local left d comm
  # slurmstepd zombies can linger for a moment until init reaps them: look at live processes only
  left=$(for d in /proc/[0-9]*; do
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    [[ $comm =~ ^(slurm|munged|ceph-|radosgw) ]] || continue
    [[ $munged_before == *" ${d#/proc/} "* ]] && continue
    [ "$(awk '/^State:/ {print $2}' "$d/status" 2>/dev/null)" = Z ] || echo "${d#/proc/} $comm"
  done)
  [ -z "$left" ] || { say "still running:"; echo "$left" >&2; return 1; }
}

s3_put_get() {
  local body hash key=selftest/$RANDOM.txt code got sig
  body="hello from $(hostname) at $(date +%s%N)"
  hash=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
  sig=(--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
  # curl's --aws-sigv4 does not send x-amz-content-sha256; RGW needs it: the body's sha256
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sig[@]}" -H "x-amz-content-sha256: $hash" \
    --data-binary "$body" "$AWS_ENDPOINT_URL/$AWS_BUCKET/$key")
  [ "$code" = 200 ] || { say "PUT $key: HTTP $code"; return 1; }
  got=$(curl -s -f "${sig[@]}" -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
    "$AWS_ENDPOINT_URL/$AWS_BUCKET/$key")
  [ "$got" = "$body" ] || { say "GET $key returned '$got'"; return 1; }
  # put-if-absent: a second create of the same key must be refused with 412
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "${sig[@]}" -H "x-amz-content-sha256: $hash" \
    -H 'If-None-Match: *' --data-binary "$body" "$AWS_ENDPOINT_URL/$AWS_BUCKET/$key")
  [ "$code" = 412 ] || { say "second If-None-Match PUT: HTTP $code, expected 412"; return 1; }
}

slurm_array() {
  local dir j nodes
  dir=$tmp/jobs
  mkdir -p "$dir"
  # shellcheck disable=SC2016 # expanded by the job, not here
  j=$(cd "$dir" && sbatch --parsable --array=0-5 --wrap 'echo $SLURM_ARRAY_TASK_ID $SLURMD_NODENAME; hostname')
  "$here/wait-idle.sh" 60
  [ "$(cat "$dir"/slurm-"${j}"_*.out 2>/dev/null | awk 'NF == 2' | wc -l)" = 6 ] ||
    { say "array $j: expected 6 outputs:"; cat "$dir"/slurm-"${j}"_*.out >&2; return 1; }
  nodes=$(cat "$dir"/slurm-"${j}"_*.out | awk 'NF == 2 {print $2}' | sort -u | tr '\n' ' ')
  say "array $j ran on: $nodes"
  [ "$nodes" = "n1 n2 n3 " ]
}

three_idle_nodes() {
  [ "$(scontrol show node | grep -c 'State=IDLE ')" = 3 ]
}

for round in 1 2; do
  say "---- round $round"
  t=$(now_ms)
  eval "$("$here/slurm-up.sh")"
  say "slurm up in $(($(now_ms) - t))ms"
  t=$(now_ms)
  eval "$("$here/s3-up.sh")"
  say "s3 up in $(($(now_ms) - t))ms"
  t=$(now_ms)
  eval "$("$here/slurm-up.sh" 2>/dev/null)"
  eval "$("$here/s3-up.sh" 2>/dev/null)"
  say "both up again (already running) in $(($(now_ms) - t))ms"
  check "6-element array across n1..n3" slurm_array
  check "scontrol: 3 idle nodes" three_idle_nodes
  check "S3 put, get, put-if-absent" s3_put_get
  t=$(now_ms)
  "$here/slurm-down.sh"
  "$here/s3-down.sh"
  say "both down in $(($(now_ms) - t))ms"
  check "no daemon left" no_daemons_left
done
say "all good"

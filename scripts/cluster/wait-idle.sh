#!/usr/bin/env bash
# wait-idle.sh: wait until the slurm-up.sh cluster has no pending, running, suspended or completing
# job (for tests, between steps).
#
# Usage: scripts/cluster/wait-idle.sh [TIMEOUT_S]     (default 120)
#   Exit 0 once the queue is empty; on timeout exit 1 and print squeue's output to stderr.
# Environment: OPENWIT_SLURM_DIR  state folder  [/tmp/openwit-slurm]
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

TIMEOUT=${1:-120}
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "usage: $0 [TIMEOUT_S]"
D=$OPENWIT_SLURM_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
export SLURM_CONF=$D/slurm.conf
[ -f "$SLURM_CONF" ] || die "no cluster in $D (start it with scripts/cluster/slurm-up.sh)"

states=PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING,SIGNALING,STAGE_OUT
t0=$(now_ms)
deadline=$((t0 + TIMEOUT * 1000))
while :; do
  if out=$(squeue -h -t "$states" -o %i 2>&1); then
    [ -z "$out" ] && break
  else
    say "squeue failed: $out"
  fi
  if [ "$(now_ms)" -ge "$deadline" ]; then
    say "timed out after ${TIMEOUT}s; jobs still queued:"
    squeue -t "$states" -o '%.18i %.9P %.20j %.8T %.10M %.6D %R' >&2 || true
    exit 1
  fi
  sleep 0.2
done
say "idle after $(($(now_ms) - t0))ms"

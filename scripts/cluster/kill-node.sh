#!/usr/bin/env bash
# kill-node.sh: simulate the failure of one node of the slurm-up.sh cluster (for tests).
#
# Usage: scripts/cluster/kill-node.sh NODE [--jobs] [--wait-down]
#   Kills NODE's slurmd with SIGKILL (by its pid file) and waits until the process is gone.
#   --jobs       also kill the jobs running on NODE (their slurmstepd and processes), as if the
#                machine had died; without it they run on as orphans and may still finish, while
#                Slurm requeues them elsewhere once the node is marked down.
#   --wait-down  then wait (bounded by OPENWIT_SLURM_TIMEOUT, default 60 s) until slurmctld marks
#                NODE down (about 5-10 s with slurm-up.sh's SlurmdTimeout=5).
#   Bring the node back with scripts/cluster/revive-node.sh NODE.
# Environment: OPENWIT_SLURM_DIR  state folder  [/tmp/openwit-slurm]
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

usage="usage: $0 NODE [--jobs] [--wait-down]"
NODE=${1:-}
if [ -z "$NODE" ] || [[ $NODE == -* ]]; then die "$usage"; fi
shift
jobs=0
wait_down=0
for a in "$@"; do
  case $a in
    --jobs) jobs=1 ;;
    --wait-down) wait_down=1 ;;
    *) die "$usage" ;;
  esac
done

D=$OPENWIT_SLURM_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
CONF=$D/slurm.conf
export SLURM_CONF=$CONF
TIMEOUT=${OPENWIT_SLURM_TIMEOUT:-60}
[ -f "$CONF" ] || die "no cluster in $D (start it with scripts/cluster/slurm-up.sh)"
f=$D/run/slurmd.$NODE.pid
pid_alive "$f" || die "slurmd of $NODE is not running (no live pid in $f)"

pid=$(tr -dc '0-9' <"$f")
say "killing slurmd $NODE (pid $pid)"
kill -9 "$pid"
for ((i = 0; i < 50; i++)); do
  alive "$pid" || break
  sleep 0.1
done
alive "$pid" && die "slurmd $NODE (pid $pid) survived SIGKILL"
rm -f "$f"

if [ "$jobs" = 1 ]; then
  # shellcheck disable=SC2046
  kill_pids "job process(es) on $NODE" $(slurm_job_pids "$NODE")
fi

if [ "$wait_down" = 1 ]; then
  t0=$(now_ms)
  wait_until "$TIMEOUT" "$NODE to be marked down" "$D/log/slurmctld.log" \
    bash -c "sinfo -h -n '$NODE' -o %t | grep -q '^down'"
  say "$NODE marked down after $(($(now_ms) - t0))ms"
fi

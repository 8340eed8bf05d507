#!/usr/bin/env bash
# revive-node.sh: restart the slurmd of a node stopped by kill-node.sh and wait until it is back in
# service (ReturnToService=2 in slurm-up.sh's configuration makes a registering node usable again).
#
# Usage: scripts/cluster/revive-node.sh NODE
#   Fails (non-zero, pointing at the node's log) when the node is not usable within
#   OPENWIT_SLURM_TIMEOUT seconds (default 30). A no-op when its slurmd already runs.
# Environment: OPENWIT_SLURM_DIR  state folder  [/tmp/openwit-slurm]
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

NODE=${1:-}
if [ $# != 1 ] || [[ $NODE == -* ]]; then die "usage: $0 NODE"; fi
D=$OPENWIT_SLURM_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
CONF=$D/slurm.conf
export SLURM_CONF=$CONF
TIMEOUT=${OPENWIT_SLURM_TIMEOUT:-30}
[ -f "$CONF" ] || die "no cluster in $D (start it with scripts/cluster/slurm-up.sh)"
pid_alive "$D/run/slurmctld.pid" || die "slurmctld is not running; start the cluster with scripts/cluster/slurm-up.sh"
scontrol show node "$NODE" >/dev/null 2>&1 || die "no node '$NODE' in $CONF"

t0=$(now_ms)
if pid_alive "$D/run/slurmd.$NODE.pid"; then
  say "slurmd $NODE already running"
else
  mkdir -p "$D/spool/$NODE"
  say "starting slurmd $NODE (log $D/log/slurmd.$NODE.log)"
  slurmd -f "$CONF" -N "$NODE" >>"$D/log/start.log" 2>&1 ||
    die "slurmd $NODE failed to start (see $D/log/start.log and $D/log/slurmd.$NODE.log)"
fi
wait_until "$TIMEOUT" "$NODE to be back in service" "$D/log/slurmd.$NODE.log" \
  bash -c "sinfo -h -n '$NODE' -o %t | grep -Eqx 'idle|alloc|mix|comp'"
say "$NODE back in service after $(($(now_ms) - t0))ms"

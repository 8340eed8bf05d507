#!/usr/bin/env bash
# slurm-down.sh: stop the single-host Slurm cluster started by slurm-up.sh.
#
# Usage: scripts/cluster/slurm-down.sh [--purge]
#   Cancels the jobs still queued or running, stops every slurmd and the slurmctld by their pid
#   files and waits until they are gone (SIGKILL after a bounded wait), then kills what is left of
#   jobs whose slurmd had been killed (kill-node.sh leaves such orphans), and stops munged when
#   slurm-up.sh started it. Logs stay in $OPENWIT_SLURM_DIR/log unless --purge removes the folder.
#   Safe to run when nothing is up.
# Environment: OPENWIT_SLURM_DIR  state folder  [/tmp/openwit-slurm]
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
. "$(dirname "$0")/lib.sh"

purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) die "usage: $0 [--purge]" ;;
esac

D=$OPENWIT_SLURM_DIR
case $D in /*) ;; *) D=$PWD/$D ;; esac
CONF=$D/slurm.conf
export SLURM_CONF=$CONF

if [ ! -d "$D" ]; then
  say "nothing to stop ($D does not exist)"
  exit 0
fi

# 1. Cancel the jobs, so that slurmstepd ends their processes while the slurmd daemons still run.
if pid_alive "$D/run/slurmctld.pid" && command -v scancel >/dev/null; then
  jobs=$(squeue -h -o %F 2>/dev/null | sort -u | tr '\n' ' ' || true)
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    # wait (bounded; KillWait=5 s) until no job runs on a node whose slurmd is alive (jobs on a
    # node killed by kill-node.sh stay COMPLETING: their processes are killed in step 3)
    for ((i = 0; i < 150; i++)); do
      busy=0
      nodes=$(squeue -h -t R,CG,S -o %N 2>/dev/null | paste -sd, || true)
      for n in $( [ -n "$nodes" ] && scontrol show hostnames "$nodes" 2>/dev/null); do
        pid_alive "$D/run/slurmd.$n.pid" && busy=1
      done
      [ "$busy" = 0 ] && break
      sleep 0.1
    done
  fi
fi

# 2. The daemons: node daemons (together) first, then the controller.
stop_pidfiles 15 "$D"/run/slurmd.*.pid
# slurmctld's helper (slurmscriptd) is its child and may outlive it by a moment: wait for it too
helpers=()
if pid_alive "$D/run/slurmctld.pid"; then
  for pid in $(pgrep -P "$(tr -dc '0-9' <"$D/run/slurmctld.pid")" || true); do
    helpers+=("$(cat "/proc/$pid/comm" 2>/dev/null || echo child)=$pid")
  done
fi
stop_pidfiles 15 "$D/run/slurmctld.pid"
[ ${#helpers[@]} -eq 0 ] || stop_pids 5 "${helpers[@]}"

# 3. Leftovers: slurmstepd and job processes whose slurmd had been killed (kill-node.sh).
# shellcheck disable=SC2046
kill_pids "leftover job process(es)" $(slurm_job_pids "")

# 4. munged, only when slurm-up.sh started it.
if [ -s "$D/run/munged.pid" ]; then
  pid=$(tr -dc '0-9' <"$D/run/munged.pid")
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = munged ]; then
    stop_pid munged "$pid" 10
  fi
  rm -f "$D/run/munged.pid"
fi

if [ "$purge" = 1 ]; then
  rm -rf "${D:?}"
  say "stopped; removed $D"
else
  say "stopped; logs in $D/log"
fi

# Helpers shared by the scripts in scripts/cluster/ (sourced, not run).
# Conventions: progress and diagnostics go to stderr, only `export` lines go to stdout, so that
# `eval "$(scripts/cluster/slurm-up.sh)"` works.

# shellcheck shell=bash

# Default state folders (one per cluster); callers may override them.
: "${OPENWIT_SLURM_DIR:=/tmp/openwit-slurm}"
: "${OPENWIT_S3_DIR:=/tmp/openwit-s3}"

cl_name=$(basename "$0" .sh)

say() { printf '%s: %s\n' "$cl_name" "$*" >&2; }
die() { printf '%s: error: %s\n' "$cl_name" "$*" >&2; exit 1; }

# now_ms: wall clock in milliseconds (for the timings the scripts report).
now_ms() { date +%s%3N; }

# alive PID: true when PID runs (a zombie counts as gone: init here may take seconds to reap one).
alive() {
  kill -0 "$1" 2>/dev/null && [ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" != Z ]
}

# pid_alive PIDFILE: true when PIDFILE names a running process.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [ -n "$pid" ] && alive "$pid"
}

# stop_pids TIMEOUT_S NAME=PID...: SIGTERM to all at once, wait (bounded) until they are gone,
# SIGKILL the ones still alive after TIMEOUT_S; returns once all are gone.
stop_pids() {
  local timeout=$1 a i left
  shift
  for a in "$@"; do kill "${a##*=}" 2>/dev/null || true; done
  for ((i = 0; i <= timeout * 10; i++)); do
    left=()
    for a in "$@"; do alive "${a##*=}" && left+=("$a"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  say "still alive after ${timeout}s, sending SIGKILL: ${left[*]}"
  for a in "${left[@]}"; do kill -9 "${a##*=}" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    for a in "${left[@]}"; do alive "${a##*=}" && { sleep 0.1; continue 2; }; done
    return 0
  done
  die "survived SIGKILL: ${left[*]}"
}

# stop_pid NAME PID [TIMEOUT_S]: stop one process (see stop_pids).
stop_pid() { stop_pids "${3:-15}" "$1=$2"; }

# stop_pidfiles TIMEOUT_S PIDFILE...: stop_pids on the processes named by the pid files (named after
# the file), then remove the files. Missing files and stale pids are fine.
stop_pidfiles() {
  local timeout=$1 f pid procs=()
  shift
  for f in "$@"; do
    [ -s "$f" ] || continue
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && procs+=("$(basename "$f" .pid)=$pid")
  done
  [ ${#procs[@]} -eq 0 ] || stop_pids "$timeout" "${procs[@]}"
  rm -f "$@"
}

# wait_until TIMEOUT_S WHAT LOG CMD...: run CMD every 0.1 s until it succeeds; after TIMEOUT_S fail,
# naming WHAT and showing the end of LOG.
wait_until() {
  local timeout=$1 what=$2 log=$3 deadline
  shift 3
  deadline=$(($(now_ms) + timeout * 1000))
  until "$@" >/dev/null 2>&1; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      say "timed out after ${timeout}s waiting for $what"
      if [ -n "$log" ] && [ -f "$log" ]; then
        say "last lines of $log:"
        tail -n 20 "$log" >&2
      fi
      die "$what: not ready (see $log)"
    fi
    sleep 0.1
  done
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# need CMD...: fail with the install hint when a command is missing.
need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 ||
      die "'$c' not found; install the Debian packages in .ci/apt-packages.txt (scripts/setup.sh --tests)"
  done
}

# ---- Slurm helpers (need D = the state folder, CONF = $D/slurm.conf) ----

# slurm_job_pids [NODE]: pids of this cluster's slurmstepd processes and job processes (of NODE only,
# when given): a slurmstepd holds its node's log file $D/log/slurmd.NODE.log open; a job process has
# SLURM_JOB_ID, our SLURM_CONF and SLURMD_NODENAME in its environment. Never this script or its callers.
slurm_job_pids() {
  local node=${1:-} keep p e fd t pid env_of
  keep=" $$ "
  p=$$
  while [ "$p" -gt 1 ]; do
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    p=${p:-1}
    keep+="$p "
  done
  for pid in $(pgrep -x slurmstepd || true); do
    for fd in "/proc/$pid/fd/"*; do
      t=$(readlink "$fd" 2>/dev/null) || continue
      if [[ -n $node && $t == "$D/log/slurmd.$node.log" ]] || [[ -z $node && $t == "$D/log/slurmd."*.log ]]; then
        echo "$pid"
        break
      fi
    done
  done
  # one grep over all environments (a shell loop over /proc takes seconds on a busy machine)
  for e in $(grep -lzxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true); do
    pid=${e#/proc/}
    pid=${pid%/environ}
    [[ $keep == *" $pid "* ]] && continue
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] && continue
    env_of=$(tr '\0' '\n' 2>/dev/null <"$e") || continue
    grep -q '^SLURM_JOB_ID=' <<<"$env_of" || continue
    if [ -z "$node" ] || grep -qxF "SLURMD_NODENAME=$node" <<<"$env_of"; then
      echo "$pid"
    fi
  done
}

# kill_pids WHAT PID...: SIGKILL and wait (bounded) until they are gone or zombies.
kill_pids() {
  local what=$1 pid i st
  shift
  [ $# -gt 0 ] || return 0
  say "killing $# $what: $*"
  kill -9 "$@" 2>/dev/null || true
  for pid in "$@"; do
    for ((i = 0; i < 50; i++)); do
      st=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -z "$st" ] || [ "$st" = Z ] && break
      sleep 0.1
    done
  done
}

#!/usr/bin/env bash
# Stops the cluster tests/slurm/start.sh started: cancels its jobs, then stops slurmd and
# slurmctld by their pid files (checked against /proc/<pid>/comm; never by name).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WS=${SLURM_WS:-$ROOT/target/slurm-ws}
S=$WS/slurm
export SLURM_CONF=$S/slurm.conf
running() {
  local pid; [ -s "$1" ] || return 1; pid=$(cat "$1")
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = "$2" ] || return 1
  [ "$(awk '{print $3}' /proc/$pid/stat)" != Z ]
}
stop() { # PIDFILE COMM
  if running "$1" "$2"; then
    local pid; pid=$(cat "$1"); kill -TERM "$pid"
    for _ in $(seq 150); do running "$1" "$2" || break; sleep 0.1; done
    running "$1" "$2" && kill -KILL "$pid"
    echo "slurm: stopped $2 ($pid)"
  fi
  rm -f "$1"
}
if running $S/run/slurmctld.pid slurmctld; then
  ids=$(squeue -h -o %i 2>/dev/null || true)
  [ -n "$ids" ] && scancel $ids
fi
stop $S/run/slurmd.pid slurmd
stop $S/run/slurmctld.pid slurmctld
exit 0

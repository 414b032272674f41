#!/usr/bin/env bash
# A throwaway one-node Slurm cluster on loopback for tests/slurm.rs. Installs the Debian
# packages if missing (slurmctld, slurmd, slurm-client), keeps every file under
# $SLURM_WS (default: target/slurm-ws), uses auth/none (no munge), and writes
# $SLURM_WS/slurm.env to source. Stop it with tests/slurm/stop.sh, which stops only the
# daemons started here, by pid file.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WS=${SLURM_WS:-$ROOT/target/slurm-ws}
S=$WS/slurm
CONF=$S/slurm.conf
NODE=localhost

running() { # PIDFILE COMM: the pid in PIDFILE is alive, not a zombie, and is COMM
  local pid; [ -s "$1" ] || return 1; pid=$(cat "$1")
  [ "$(cat /proc/$pid/comm 2>/dev/null)" = "$2" ] || return 1
  [ "$(awk '{print $3}' /proc/$pid/stat)" != Z ]
}

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client
fi
if running $S/run/slurmctld.pid slurmctld || running $S/run/slurmd.pid slurmd; then
  echo "slurm: already running under $WS"; exit 0
fi
rm -rf "$S"
mkdir -p $S/state $S/spool $S/log $S/run
HW=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
cat > $CONF <<CONF
ClusterName=orchestrate-test
SlurmctldHost=$NODE
SlurmctldPort=${SLURM_WS_CTLD_PORT:-6817}
SlurmdPort=${SLURM_WS_SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 $HW State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
echo "export SLURM_CONF=$CONF" > $WS/slurm.env
export SLURM_CONF=$CONF
slurmctld -f $CONF
slurmd -f $CONF -N $NODE
for _ in $(seq 300); do
  [ "$(sinfo -h -n $NODE -o %T 2>/dev/null || true)" = idle ] && break
  sleep 0.1
done
if [ "$(sinfo -h -n $NODE -o %T 2>/dev/null || true)" != idle ]; then
  echo "slurm: node not idle after 30 s" >&2
  tail -n 20 $S/log/slurmctld.log $S/log/slurmd.log >&2
  exit 1
fi
echo "slurm: cluster up; source $WS/slurm.env"

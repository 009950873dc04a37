#!/usr/bin/env bash
# Installs Debian's SLURM and munge, configures a single-node cluster on this
# machine with two fake GPUs (GRES backed by /dev/null and /dev/zero), starts
# munged, slurmctld and slurmd, and waits until the node is idle.
# For tests and CI only: run as root on a throwaway machine. Idempotent: a
# second call finds the daemons running and returns at once.
#
# No accounting (no slurmdbd/MariaDB): Snakemake's SLURM plugin is told to
# poll with squeue (slurm-status-command: squeue in the test; finished jobs
# stay visible for MinJobAge=300 s), slurmctld's jobcomp/filetxt log records
# every finished job, and the node's prolog saves each job's
# `scontrol show job` (with its GRES) under $STATE/jobs/, which the test reads
# to check what each job asked for. That keeps the install to ~15 s and a
# few MB instead of a database server and two more daemons.
#
# State (pid files, logs, spool, the job completion log) lives under
# $KDBUDGET_SLURM_STATE (default /tmp/kdbudget-slurm); stop-local-slurm.sh
# stops exactly the daemons whose pid files are there.
set -euo pipefail

STATE=${KDBUDGET_SLURM_STATE:-/tmp/kdbudget-slurm}
PARTITION=${KDBUDGET_SLURM_TEST_PARTITION:-debug}
CONF_DIR=/etc/slurm

die() { echo "start-local-slurm: $*" >&2; exit 1; }
alive() {  # alive PIDFILE: the process exists and is not a zombie
    local pid state
    [[ -s $1 ]] || return 1
    pid=$(cat "$1")
    state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [[ -n $state && $state != Z* ]]
}

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages and starts daemons)"
mkdir -p "$STATE"

if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && alive "$STATE/munged.pid"; then
    echo "start-local-slurm: already running (state in $STATE)"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "apt-get not found: cannot install SLURM"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$STATE/apt.log" 2>&1 || die "apt-get update failed (see $STATE/apt.log)"
    apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >>"$STATE/apt.log" 2>&1 \
        || die "apt-get install failed (see $STATE/apt.log)"
fi

# --- munge --------------------------------------------------------------------
if ! alive "$STATE/munged.pid"; then
    [[ -s /etc/munge/munge.key ]] || { mungekey --create >/dev/null 2>&1 || create-munge-key -f >/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- munged --force
    for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$STATE/munged.pid"
fi

# --- slurm.conf and gres.conf -------------------------------------------------
HOST=$(hostname -s)
mkdir -p "$CONF_DIR" "$STATE/spool/ctld" "$STATE/spool/d" "$STATE/log"
node_line=$(slurmd -C | head -n1)                                   # NodeName=... CPUs=... RealMemory=...
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")
boards=$(sed -n 's/.*\(Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*\).*/\1/p' <<<"$node_line")
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
mem=$((mem * 9 / 10))
cat >"$CONF_DIR/slurm.conf" <<CONF
# Written by scripts/slurm/start-local-slurm.sh: a one-node test cluster.
ClusterName=kdbudget-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
CommunicationParameters=NoInAddrAny
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
AccountingStorageType=accounting_storage/none
Prolog=$STATE/prolog.sh
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus $boards RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$CONF_DIR/gres.conf" <<CONF
AutoDetect=off
Name=gpu File=/dev/null
Name=gpu File=/dev/zero
CONF

# Without a database, a record of what each job was granted: the node's
# prolog (root, before the job starts) saves \`scontrol show job\` and the
# GPUs SLURM gave it under \$STATE/jobs/<jobid>.txt; the test reads these.
mkdir -p "$STATE/jobs"
cat >"$STATE/prolog.sh" <<PROLOG
#!/bin/sh
{ scontrol show job -d "\$SLURM_JOB_ID"; echo "SLURM_JOB_GPUS=\$SLURM_JOB_GPUS"; } >"$STATE/jobs/\$SLURM_JOB_ID.txt" 2>&1
exit 0
PROLOG
chmod 755 "$STATE/prolog.sh"

# --- daemons ------------------------------------------------------------------
# -c: start with no jobs. A throwaway test cluster must not recover the jobs
# an earlier run left queued or running in StateSaveLocation: they hold the
# node ("alloc") and the wait for idle below would fail.
alive "$STATE/slurmctld.pid" || slurmctld -c -i
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null 2>&1 || die "slurmctld did not answer (see $STATE/log/slurmctld.log)"
alive "$STATE/slurmd.pid" || slurmd

for _ in $(seq 150); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1)
    [[ $state == idle ]] && { echo "start-local-slurm: node $HOST idle, partition $PARTITION (state in $STATE)"; exit 0; }
    sleep 0.2
done
die "node not idle after 30 s (state: ${state:-none}; see $STATE/log/)"

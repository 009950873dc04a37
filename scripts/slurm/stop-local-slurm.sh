#!/usr/bin/env bash
# Stops the daemons that start-local-slurm.sh started, by their pid files
# under $KDBUDGET_SLURM_STATE (default /tmp/kdbudget-slurm), and nothing else.
# Running jobs are killed with slurmd. Idempotent.
set -uo pipefail

STATE=${KDBUDGET_SLURM_STATE:-/tmp/kdbudget-slurm}

stop() {  # stop NAME: TERM the pid in $STATE/NAME.pid, wait, then KILL
    local file=$STATE/$1.pid pid
    [[ -s $file ]] || return 0
    pid=$(cat "$file")
    if [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]]; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do
            [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]] || break
            sleep 0.2
        done
        [[ $(ps -o stat= -p "$pid" 2>/dev/null) =~ ^[^Z] ]] && kill -KILL "$pid" 2>/dev/null
        echo "stop-local-slurm: stopped $1 ($pid)"
    fi
    rm -f "$file"
}

stop slurmd
stop slurmctld
stop munged
exit 0

#!/usr/bin/env bash
# Stops the daemons that start-local-slurm.sh started, by their pid files
# under $KDBUDGET_SLURM_STATE (default /tmp/kdbudget-slurm), and nothing else.
# Jobs are cancelled first, then the daemons stop. Idempotent.
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

# Cancel every job first, so the saved state holds none for the next start.
if [[ -s $STATE/slurmctld.pid ]] && command -v scancel >/dev/null; then
    timeout 20 squeue -h -o '%A' 2>/dev/null | xargs -r timeout 20 scancel --quiet 2>/dev/null
fi
stop slurmd
stop slurmctld
stop munged
exit 0

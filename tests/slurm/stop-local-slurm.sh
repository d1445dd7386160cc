#!/usr/bin/env bash
# Stop the daemons tests/slurm/start-local-slurm.sh started, by the PIDs in
# their pidfiles (recorded in $STATE_DIR/pids), checking /proc/PID/comm so a
# recycled PID is never signalled. Daemons that were already running before
# the start script ran are left alone.
set -uo pipefail

STATE_DIR=${INSARCLUST_SLURM_STATE:-/run/insarclust-test-slurm}
PIDS="$STATE_DIR/pids"
log() { echo "[stop-local-slurm] $*" >&2; }

[ -f "$PIDS" ] || { log "nothing recorded in $PIDS"; exit 0; }

# stop in reverse start order: slurmd, slurmctld, munged
tac "$PIDS" | while read -r pidfile comm; do
    [ -s "$pidfile" ] || { log "$comm: no pidfile $pidfile"; continue; }
    pid=$(cat "$pidfile")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]; then
        log "$comm: pid $pid is not running as $comm; skipped"
        continue
    fi
    kill -TERM "$pid"
    for _ in $(seq 40); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || break
        sleep 0.25
    done
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]; then
        log "$comm (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid"
    fi
    log "stopped $comm (pid $pid)"
done
rm -f "$PIDS"
# The SLURM client stays installed: with no slurmctld answering, every later snakemake start
# waits ~9 s, the SLURM executor plugin asking `scontrol show config` when it loads (measured
# 2026-12-01: `import snakemake.scheduling.job_scheduler` 9.5 s against ~0.4 s; the test suite
# 16 min 02 s against 7 min 42 s). Start the local cluster again, or remove slurm-client, to avoid it.
log "slurm-client stays installed: until a slurmctld answers again, each snakemake start waits ~9 s on scontrol"

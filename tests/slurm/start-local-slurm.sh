#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine for the opt-in SLURM test.
#
# For a Debian/Ubuntu machine where we are root and nothing runs systemd
# (a CI container, a VM): installs slurm-wlm + munge with apt-get when they are
# missing, writes /etc/slurm/slurm.conf for localhost with partitions `main`
# (default) and `gpu` (one fake GPU, so GPU requests are accepted), starts
# munged, slurmctld and slurmd, and waits until the node is idle.
# Daemon PIDs go to $STATE_DIR/pids; tests/slurm/stop-local-slurm.sh stops them.
#
# Accounting is off (no slurmdbd): `sacct` does not work on this cluster, so
# clients must poll with squeue (tests/slurm/profile sets
# slurm-status-command: squeue) and MinJobAge is long enough for that.
#
#   tests/slurm/start-local-slurm.sh          # about 20 s from nothing, 3 s when installed
#   sinfo; squeue
#   tests/slurm/stop-local-slurm.sh
set -euo pipefail

STATE_DIR=${INSARCLUST_SLURM_STATE:-/run/insarclust-test-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by insarclust tests/slurm/start-local-slurm.sh"
WAIT_S=${INSARCLUST_SLURM_WAIT_S:-60}

log() { echo "[start-local-slurm] $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts daemons)"

if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: this machine already has a SLURM set-up; not touching it"
fi

# ---------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    log "installing slurm-wlm, slurm-client, munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client munge >/dev/null
fi

mkdir -p "$STATE_DIR"
PIDS="$STATE_DIR/pids"
touch "$PIDS"

running() {  # running PIDFILE COMM: the pidfile's process is alive and is COMM
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

poll() {  # poll SECONDS COMMAND...: retry COMMAND every 0.5 s; 1 on timeout
    local seconds=$1; shift
    for _ in $(seq $((seconds * 2))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

wait_for() {  # wait_for WHAT COMMAND...: poll COMMAND for WAIT_S seconds or fail
    local what=$1; shift
    poll "$WAIT_S" "$@" || die "timed out after ${WAIT_S}s waiting for $what"
}

record() {  # record PIDFILE COMM: remember a daemon we started
    echo "$1 $2" >> "$PIDS"
}

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
MUNGE_PID=/run/munge/munged.pid
if running "$MUNGE_PID" munged; then
    log "munged already running (pid $(cat $MUNGE_PID))"
else
    log "starting munged"
    runuser -u munge -- munged --pid-file="$MUNGE_PID"
    wait_for "munged pidfile" test -s "$MUNGE_PID"
    record "$MUNGE_PID" munged
fi
wait_for "munge credentials" bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- slurm.conf
HOST=$(hostname -s)
# slurmd -C prints this node's hardware as a NodeName= line
HW=$(slurmd -C | head -n1)
CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
[ -n "$CPUS" ] && [ -n "$MEM" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $HW"
# leave some memory to the OS and the submitting snakemake
MEM=$((MEM * 9 / 10))

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/slurm /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /run/slurm /var/log/slurm

cat > "$CONF" <<EOF
$MARK
ClusterName=insarclust-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# squeue must still see finished jobs when the executor polls (>= 3x its status wait)
MinJobAge=600
ReturnToService=2
MpiDefault=none
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF

# a fake GPU: slurmd only checks that the device file exists
FAKE_GPU=$STATE_DIR/fake-nvidia0
touch "$FAKE_GPU"
cat > /etc/slurm/gres.conf <<EOF
$MARK
NodeName=$HOST Name=gpu File=$FAKE_GPU
EOF

# ---------------------------------------------------------------- daemons
if running /run/slurm/slurmctld.pid slurmctld; then
    log "slurmctld already running; reconfiguring"
    scontrol reconfigure || true
else
    log "starting slurmctld"
    slurmctld
    wait_for "slurmctld pidfile" test -s /run/slurm/slurmctld.pid
    record /run/slurm/slurmctld.pid slurmctld
fi
wait_for "slurmctld (scontrol ping)" bash -c 'scontrol ping | grep -q UP'

if running /run/slurm/slurmd.pid slurmd; then
    log "slurmd already running"
else
    log "starting slurmd"
    slurmd
    wait_for "slurmd pidfile" test -s /run/slurm/slurmd.pid
    record /run/slurm/slurmd.pid slurmd
fi

node_idle() { sinfo -h -n "$HOST" -o '%t' | grep -qE '^(idle|mix|alloc)'; }
if ! poll 15 node_idle; then
    # a node left down/drained by an earlier run comes back with resume
    scontrol update NodeName="$HOST" State=RESUME || true
    wait_for "node $HOST idle" node_idle
fi
log "cluster up: $(sinfo -h -o '%P %t %D %c %m %G' | tr '\n' ';')"

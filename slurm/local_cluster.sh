#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine (Debian slurm-wlm + munge), to try the sbatch/submitit workflow and
# for the tests marked `slurm`. Needs root. Idempotent: `start` reuses a running cluster and installs the packages
# with apt only when they are missing; `stop` stops only the daemons this script started (by their pid files).
#
#   slurm/local_cluster.sh start     # install if needed, configure for this host's CPUs and memory, start, wait idle
#   slurm/local_cluster.sh status    # exit 0 when the controller answers (prints sinfo), 1 otherwise
#   slurm/local_cluster.sh stop
#
# Environment: LLMEXP_SLURM_DIR (state, logs, pid files; default /var/lib/llmexp-slurm),
#              LLMEXP_SLURM_MEM_PER_CPU (default MiB per allocated CPU when a job asks for none; default 2048).
set -euo pipefail

STATE_DIR="${LLMEXP_SLURM_DIR:-/var/lib/llmexp-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by llmexp slurm/local_cluster.sh"
LOCK=/run/lock/llmexp-slurm.lock
HOST="$(hostname -s)"

log() { echo "local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

responding() { timeout 10 sinfo -h -o '%T' >/dev/null 2>&1; }

node_state() { timeout 10 sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and apt-get is not available"
  log "installing slurm-wlm and munge with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq slurm-wlm munge >/dev/null
}

start_munge() {
  if pgrep -x munged >/dev/null; then return 0; fi
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  [[ -f /etc/munge/munge.key ]] || mungekey -c -k /etc/munge/munge.key
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  chmod 0600 /etc/munge/munge.key
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" 9>&-
  cp /run/munge/munged.pid "$STATE_DIR/munged.pid"
}

write_conf() {
  if [[ -f "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  local cpus mem_mib
  cpus="$(nproc)"
  mem_mib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
  mkdir -p /etc/slurm "$STATE_DIR/state" "$STATE_DIR/slurmd"
  cat >"$CONF.new" <<EOF
$MARKER
ClusterName=local
SlurmctldHost=$HOST
AuthType=auth/munge
# How long a requeued job waits before it may start again (default 120 s); short, so preemption tests run quickly.
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
ReturnToService=2
JobRequeue=1
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerParameters=sched_interval=2
DefMemPerCPU=${LLMEXP_SLURM_MEM_PER_CPU:-2048}
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmdSpoolDir=$STATE_DIR/slurmd
StateSaveLocation=$STATE_DIR/state
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$CONF.new" "$CONF"; then
    rm -f "$CONF.new"
    return 1  # unchanged
  fi
  mv "$CONF.new" "$CONF"
}

wait_idle() {
  local state=""
  for _ in $(seq 60); do
    state="$(node_state || true)"
    case "$state" in
      idle* | mixed* | allocated* | completing*) log "node $HOST is $state"; return 0 ;;
      down* | drain*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  die "node $HOST did not become idle (state: ${state:-no answer}); see $STATE_DIR/slurmctld.log and slurmd.log"
}

start() {
  [[ $EUID -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock 9
  if responding && [[ -n "$(node_state)" ]]; then
    log "reusing the running cluster"
    if grep -qF "$MARKER" "$CONF" && write_conf; then
      log "configuration changed: scontrol reconfigure"
      scontrol reconfigure
    fi
    wait_idle
    return 0
  fi
  install_packages
  mkdir -p "$STATE_DIR"
  start_munge
  write_conf || true
  # The daemons must not inherit the lock (fd 9), or the next start/stop waits for them forever.
  alive "$STATE_DIR/slurmctld.pid" || slurmctld 9>&-
  alive "$STATE_DIR/slurmd.pid" || slurmd 9>&-
  for _ in $(seq 30); do responding && break; sleep 1; done
  responding || die "slurmctld does not answer; see $STATE_DIR/slurmctld.log"
  wait_idle
}

stop() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock 9
  local name pidfile
  for name in slurmd slurmctld munged; do
    pidfile="$STATE_DIR/$name.pid"
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 20); do alive "$pidfile" || break; sleep 0.5; done
      log "stopped $name"
    fi
    rm -f "$pidfile"
  done
}

status() {
  if responding; then
    sinfo
    return 0
  fi
  log "no SLURM controller answers"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

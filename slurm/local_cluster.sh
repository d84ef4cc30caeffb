#!/usr/bin/env bash
# A real SLURM cluster on this machine (Debian slurm-wlm + munge), to try the sbatch/submitit workflow and for the
# tests marked `slurm`: one node, or two nodes with their own hostnames and addresses. Needs root. Idempotent: `start`
# reuses a running cluster of the asked size (switching size restarts the daemons; running jobs are lost) and
# installs the packages with apt only when they are missing; `stop` stops only what this script started.
#
#   slurm/local_cluster.sh start             # install if needed, configure for this host's CPUs and memory, start
#   slurm/local_cluster.sh start --nodes 2   # two nodes, node1 and node2, each with this host's CPUs, half its memory
#   slurm/local_cluster.sh status            # exit 0 when the controller answers (prints sinfo), 1 otherwise
#   slurm/local_cluster.sh stop
#
# Two nodes: each slurmd runs in a network namespace of its own (llmexp-node1/2, with its own hostname, and
# /etc/netns/<namespace>/hosts as its /etc/hosts, naming the nodes), joined to the controller by veth pairs on a bridge (llmexp-br,
# 10.77.0.0/24: controller .1, node1 .11, node2 .12). Traffic stays inside these; `stop` removes them.
#
# Environment: LLMEXP_SLURM_DIR (state, logs, pid files; default /var/lib/llmexp-slurm),
#              LLMEXP_SLURM_MEM_PER_CPU (default MiB per allocated CPU when a job asks for none; default 2048).
set -euo pipefail

STATE_DIR="${LLMEXP_SLURM_DIR:-/var/lib/llmexp-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by llmexp slurm/local_cluster.sh"
LOCK=/run/lock/llmexp-slurm.lock
HOST="$(hostname -s)"
BRIDGE=llmexp-br
SUBNET=10.77.0
NODES=1  # asked for with --nodes

log() { echo "local_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

responding() { timeout 10 sinfo -h -o '%T' >/dev/null 2>&1; }

# The node names of an n-node cluster: this host alone, or node1..n in their namespaces.
node_names() { if (($1 == 1)); then echo "$HOST"; else seq -f 'node%g' "$1"; fi; }

node_state() { timeout 10 sinfo -h -n "$1" -o '%T' 2>/dev/null | head -n1; }

# How many nodes the running configuration has (0: none written by this script).
configured_nodes() { grep -qsF "$MARKER" "$CONF" && grep -c '^NodeName=' "$CONF" || echo 0; }

# Whether the pid file names a running process (a daemon removes its file as it exits).
alive() { local pid; pid="$(cat "$1" 2>/dev/null)" && [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }

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

# The controller's host line, the node lines and the partition of an n-node cluster.
node_lines() {
  local cpus mem_mib i
  cpus="$(nproc)"
  mem_mib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
  if (($1 == 1)); then
    echo "SlurmctldHost=$HOST"
    echo "NodeName=$HOST CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN"
    echo "PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP"
    return
  fi
  # Each node offers all of this host's CPUs (they share them) and an equal part of its memory.
  echo "SlurmctldHost=$HOST($SUBNET.1)"
  for i in $(seq "$1"); do
    echo "NodeName=node$i NodeAddr=$SUBNET.$((10 + i)) CPUs=$cpus RealMemory=$((mem_mib / $1)) State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=node[1-$1] Default=YES MaxTime=INFINITE State=UP"
}

write_conf() {
  if [[ -f "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
  fi
  mkdir -p /etc/slurm "$STATE_DIR/state"
  # %n is the node's name: each slurmd of a several-node cluster keeps its own pid file, spool and log.
  cat >"$CONF.new" <<EOF
$MARKER
ClusterName=local
AuthType=auth/munge
# How long a requeued job waits before it may start again (default 120 s); short, so preemption tests run quickly.
AuthInfo=cred_expire=10
# Seconds between SIGTERM and SIGKILL when a job is killed or requeued (default 30); short for the same reason.
KillWait=5
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
SlurmdPidFile=$STATE_DIR/slurmd-%n.pid
SlurmdSpoolDir=$STATE_DIR/slurmd-%n
StateSaveLocation=$STATE_DIR/state
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd-%n.log
$(node_lines "$NODES")
EOF
  if cmp -s "$CONF.new" "$CONF"; then
    rm -f "$CONF.new"
    return 1  # unchanged
  fi
  mv "$CONF.new" "$CONF"
}

# The bridge, and per node a namespace with its end of a veth pair, its address and a hosts file naming every node.
make_network() {
  local i ns hosts
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  hosts="$(printf '127.0.0.1 localhost\n%s %s' "$SUBNET.1" "$HOST")"
  for i in $(seq "$NODES"); do hosts+=$'\n'"$SUBNET.$((10 + i)) node$i"; done
  for i in $(seq "$NODES"); do
    ns="llmexp-node$i"
    mkdir -p "/etc/netns/$ns"
    echo "$hosts" >"/etc/netns/$ns/hosts"  # the node's /etc/hosts (bind-mounted in its mount namespace)
    [[ -e "/run/netns/$ns" ]] && continue
    ip netns add "$ns"
    ip link add "llmexp-veth$i" type veth peer name eth0 netns "$ns"
    ip link set "llmexp-veth$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$SUBNET.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
}

remove_network() {
  local ns pid
  for ns in /run/netns/llmexp-node*; do
    [[ -e "$ns" ]] || continue
    ns="$(basename "$ns")"
    # What still runs there (job steps of a stopped slurmd) was started by our slurmd and has lost its network.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
    log "removed network namespace $ns"
  done
  rmdir /etc/netns 2>/dev/null || true  # only when nothing else keeps files there
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
}

start_slurmds() {
  local i ns
  if ((NODES == 1)); then
    mkdir -p "$STATE_DIR/slurmd-$HOST"
    alive "$STATE_DIR/slurmd-$HOST.pid" || slurmd 9>&- || die "slurmd did not start; see $STATE_DIR/slurmd-$HOST.log"
    return
  fi
  make_network
  for i in $(seq "$NODES"); do
    ns="llmexp-node$i"
    mkdir -p "$STATE_DIR/slurmd-node$i"
    alive "$STATE_DIR/slurmd-node$i.pid" && continue
    # In its network namespace, with a hostname (UTS namespace) and /etc/hosts (mount namespace) of its own: what
    # the node and its jobs see is node<i>. (`ip netns exec` would remount /sys, hiding the cgroups slurmd reads.)
    nsenter --net="/run/netns/$ns" unshare --mount --uts sh -c \
      "mount --bind /etc/netns/$ns/hosts /etc/hosts && hostname node$i && exec slurmd -N node$i" 9>&- ||
      die "slurmd of node$i did not start; see $STATE_DIR/slurmd-node$i.log"
  done
}

wait_idle() {
  local node state=""
  for node in $(node_names "$NODES"); do
    for _ in $(seq 60); do
      state="$(node_state "$node" || true)"
      case "$state" in
        idle* | mixed* | allocated* | completing*) log "node $node is $state"; continue 2 ;;
        down* | drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
      esac
      sleep 1
    done
    die "node $node did not become idle (state: ${state:-no answer}); see $STATE_DIR/slurmctld.log, slurmd-$node.log"
  done
}

restart_controller() {
  if alive "$STATE_DIR/slurmctld.pid"; then
    log "configuration changed: restarting slurmctld"
    kill "$(cat "$STATE_DIR/slurmctld.pid")"
    for _ in $(seq 20); do alive "$STATE_DIR/slurmctld.pid" || break; sleep 0.5; done
    slurmctld 9>&-
    for _ in $(seq 30); do responding && break; sleep 1; done
  else
    log "configuration changed: scontrol reconfigure"
    scontrol reconfigure
  fi
}

stop_daemons() {
  local pidfile
  for pidfile in "$STATE_DIR"/slurmd*.pid "$STATE_DIR/slurmctld.pid" "$STATE_DIR/munged.pid"; do
    [[ -f "$pidfile" ]] || continue
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 20); do alive "$pidfile" || break; sleep 0.5; done
      log "stopped $(basename "$pidfile" .pid)"
    fi
    rm -f "$pidfile"
  done
}

take_lock() {
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock 9
}

start() {
  [[ $EUID -eq 0 ]] || die "must run as root (it installs packages and starts system daemons)"
  take_lock
  if responding && [[ "$(configured_nodes)" == "$NODES" ]]; then
    log "reusing the running cluster"
    if write_conf; then
      # Some settings (AuthInfo) are read only at start: restart our controller (jobs survive it), else reconfigure.
      restart_controller
    fi
    wait_idle
    return 0
  fi
  if responding && grep -qsF "$MARKER" "$CONF"; then
    log "switching from $(configured_nodes) to $NODES node(s): stopping the running daemons"
    stop_daemons
    remove_network
  fi
  install_packages
  mkdir -p "$STATE_DIR"
  start_munge
  write_conf || true
  # The daemons must not inherit the lock (fd 9), or the next start/stop waits for them forever.
  alive "$STATE_DIR/slurmctld.pid" || slurmctld 9>&-
  start_slurmds
  for _ in $(seq 30); do responding && break; sleep 1; done
  responding || die "slurmctld does not answer; see $STATE_DIR/slurmctld.log"
  wait_idle
}

stop() {
  take_lock
  stop_daemons
  remove_network
}

status() {
  if responding; then
    sinfo
    return 0
  fi
  log "no SLURM controller answers"
  return 1
}

usage() { echo "usage: $0 start [--nodes 1|2] | status | stop" >&2; exit 2; }

command="${1:-}"
(($#)) && shift
while (($#)); do
  case "$1" in
    --nodes) [[ $# -ge 2 ]] || usage; NODES="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$NODES" == 1 || "$NODES" == 2 ]] || { log "error: --nodes must be 1 or 2 (got '$NODES')"; exit 2; }

case "$command" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac

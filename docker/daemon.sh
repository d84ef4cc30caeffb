#!/usr/bin/env bash
# A Docker daemon on this machine, for docker/build.sh and the tests marked `docker`. Needs root and Debian's docker.io
# (`apt-get install -y docker.io`; .ci/run installs it). Idempotent, like slurm/local_cluster.sh: `start` reuses a
# daemon that answers; `stop` stops only a daemon this script started (by its pid file).
#
#   docker/daemon.sh start     # start dockerd (overlay2), wait until it answers
#   docker/daemon.sh status    # exit 0 when a daemon answers (prints its version and storage driver), 1 otherwise
#   docker/daemon.sh stop
#
# The daemon gets no bridge network and leaves the firewall alone: containers run with `--network host` and serve on
# 127.0.0.1. Environment: LLMEXP_DOCKER_STATE (pid file and log; default /var/lib/llmexp-docker).
set -euo pipefail

STATE_DIR="${LLMEXP_DOCKER_STATE:-/var/lib/llmexp-docker}"
PIDFILE="$STATE_DIR/dockerd.pid"

log() { echo "docker-daemon: $*" >&2; }
die() { log "error: $*"; exit 1; }

answers() { timeout 20 docker info >/dev/null 2>&1; }

start() {
  if command -v docker >/dev/null && answers; then
    log "a daemon answers already"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "starting dockerd needs root"
  command -v dockerd >/dev/null || die "dockerd is not installed (apt-get install -y docker.io)"
  mkdir -p "$STATE_DIR"
  setsid dockerd --storage-driver=overlay2 --bridge=none --iptables=false --pidfile "$PIDFILE" \
    >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    if answers; then
      log "started (log: $STATE_DIR/dockerd.log)"
      return 0
    fi
    sleep 1
  done
  die "dockerd did not answer within 60 s (log: $STATE_DIR/dockerd.log): $(tail -n 1 "$STATE_DIR/dockerd.log")"
}

stop() {
  [[ -f "$PIDFILE" ]] || { log "no daemon started by this script is running"; return 0; }
  local pid
  pid="$(cat "$PIDFILE")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped"; return 0; }
    sleep 1
  done
  die "dockerd ($pid) did not stop within 30 s"
}

case "${1:-}" in
  start) start ;;
  status) answers && docker info --format 'docker {{.ServerVersion}}, {{.Driver}}' ;;
  stop) stop ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Build the llmexp images of docker/Dockerfile: `serve`, `train`, or both (the default). README "Containers".
#
#   docker/build.sh [serve|train|all]
#
# 1. The base: python:3.11-slim-bookworm when it is present or can be pulled; else (no registry, as here) a local
#    Debian bookworm with Python made by debootstrap and `docker import`ed as llmexp-base:bookworm (root needed once).
# 2. The dependency wheels, built by this machine's pip (which may use a local mirror or a proxy that the build cannot)
#    from docker/constraints.txt, kept in a cache folder keyed by the pins: a rebuild builds no wheel again.
# 3. llmexp's own wheel (`pip wheel --no-deps .`, which also writes the lm-eval startup hook), then `docker build`.
#
# Environment:
#   LLMEXP_DOCKER_IMAGE  image name, tagged :serve and :train (default llmexp)
#   LLMEXP_DOCKER_BASE   the BASE build argument, chosen as in 1. when unset
#   LLMEXP_DOCKER_DEPS   wheels (default: the build installs from the wheels of 2. and reads no index) or index (pip
#                        inside the build uses the package index; for connected machines)
#   LLMEXP_DOCKER_CACHE  wheel and base cache (default ~/.cache/llmexp-docker)
#   LLMEXP_DEBIAN_MIRROR the mirror debootstrap reads (default http://deb.debian.org/debian)
#   PYTHON               the Python that builds the wheels, of the image's minor version (default python3)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

IMAGE="${LLMEXP_DOCKER_IMAGE:-llmexp}"
DEPS="${LLMEXP_DOCKER_DEPS:-wheels}"
CACHE="${LLMEXP_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmexp-docker}"
PYTHON="${PYTHON:-python3}"
REGISTRY_BASE=python:3.11-slim-bookworm
LOCAL_BASE=llmexp-base:bookworm
BASE_PACKAGES=python3,python3-venv

log() { echo "build: $*" >&2; }
die() { log "error: $*"; exit 2; }

local_base() {
  docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 && return 0
  local tarball="$CACHE/base/bookworm-minbase-${BASE_PACKAGES//,/-}.tar"
  if [[ ! -f "$tarball" ]]; then
    [[ $(id -u) -eq 0 ]] || die "no registry answers and making the local base (debootstrap) needs root"
    if ! command -v debootstrap >/dev/null; then
      command -v apt-get >/dev/null || die "no registry answers and debootstrap is not installed"
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    mkdir -p "$CACHE/base"
    local root
    root="$(mktemp -d "$CACHE/base/rootfs.XXXXXX")"
    log "making the local base with debootstrap (a few minutes, once; log: $CACHE/base/debootstrap.log)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$root" \
      "${LLMEXP_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$CACHE/base/debootstrap.log" 2>&1 ||
      die "debootstrap failed: $(tail -n 2 "$CACHE/base/debootstrap.log")"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man,locale}
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  docker import "$tarball" "$LOCAL_BASE" >/dev/null
  log "imported $LOCAL_BASE from $tarball"
}

choose_base() {
  if [[ -n "${LLMEXP_DOCKER_BASE:-}" ]]; then
    echo "$LLMEXP_DOCKER_BASE"
  elif docker image inspect "$REGISTRY_BASE" >/dev/null 2>&1 || docker pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
    echo "$REGISTRY_BASE"
  else
    log "$REGISTRY_BASE cannot be pulled: using the local base $LOCAL_BASE"
    local_base
    echo "$LOCAL_BASE"
  fi
}

python_version() { "$@" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

check_python() {
  local ours theirs
  ours="$(python_version "$PYTHON")"
  theirs="$(python_version docker run --rm --network none --entrypoint python3 "$1" 2>/dev/null)" || return 0
  [[ "$ours" == "$theirs" ]] || die "$PYTHON is Python $ours but $1 has $theirs: the wheels would not install there"
}

# $1: serve or train. Prints the cache folder holding that target's dependency wheels, building them once.
dependency_wheels() {
  local key folder
  # The pins, and the indexes pip reads (PyPI's torch is the CUDA build, PyTorch's CPU index the CPU one).
  key="$({ cat docker/constraints.txt docker/requirements-serve.txt; echo "${PIP_INDEX_URL:-} ${PIP_EXTRA_INDEX_URL:-}"; } |
    sha256sum | cut -c1-16)-py$(python_version "$PYTHON")"
  folder="$CACHE/wheels/$key/$1"
  # Wheels of pins unused for two weeks go; these are marked as used.
  find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -mtime +14 -exec rm -rf {} + 2>/dev/null || true
  mkdir -p "$CACHE/wheels/$key" && touch "$CACHE/wheels/$key"
  if [[ ! -f "$folder/.complete" ]]; then
    log "building the $1 dependency wheels into $folder (once for these pins)"
    rm -rf "$folder"
    local requirements=(-r docker/constraints.txt)
    [[ "$1" == serve ]] && requirements=(-c docker/constraints.txt -r docker/requirements-serve.txt)
    "$PYTHON" -m pip wheel -q -w "$folder" "${requirements[@]}" 2> >(grep -v "^WARNING: " >&2)
    touch "$folder/.complete"
  fi
  echo "$folder"
}

# Fill docker/wheels/<target>/ (what the build context carries) with hard links, or copies across file systems.
stage_wheels() {
  local target
  for target in serve train; do
    find "docker/wheels/$target" -name '*.whl' -delete
    if [[ "$DEPS" == wheels && " ${targets[*]} " == *" $target "* ]]; then
      local folder
      folder="$(dependency_wheels "$target")"
      cp -l "$folder"/*.whl "docker/wheels/$target/" 2>/dev/null || cp "$folder"/*.whl "docker/wheels/$target/"
    fi
  done
  find docker/wheels/llmexp -name '*.whl' -delete
  "$PYTHON" -m pip wheel -q --no-deps -w docker/wheels/llmexp . 2> >(grep -v "^WARNING: " >&2)
}

case "${1:-all}" in
  serve | train) targets=("$1") ;;
  all) targets=(serve train) ;;
  *) die "usage: $0 [serve|train|all]" ;;
esac
[[ "$DEPS" == wheels || "$DEPS" == index ]] || die "LLMEXP_DOCKER_DEPS=$DEPS: expected wheels or index"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (as root, docker/daemon.sh start starts one)"

base="$(choose_base)"
[[ "$DEPS" == wheels ]] && check_python "$base"
stage_wheels
for target in "${targets[@]}"; do
  log "docker build --target $target ($base, dependencies from ${DEPS})"
  # Host network: the daemon of docker/daemon.sh has no bridge; only LLMEXP_DOCKER_DEPS=index needs a network at all.
  mkdir -p "$CACHE"
  if ! docker build -f docker/Dockerfile --network host --build-arg BASE="$base" --target "$target" \
    -t "$IMAGE:$target" . >"$CACHE/build-$target.log" 2>&1; then
    tail -n 25 "$CACHE/build-$target.log" >&2
    die "docker build --target $target failed (whole log: $CACHE/build-$target.log)"
  fi
  log "$IMAGE:$target: $(docker image inspect -f '{{.Size}}' "$IMAGE:$target" | awk '{printf "%.0f MB", $1 / 1e6}')"
done

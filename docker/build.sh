#!/usr/bin/env bash
# Build the llmexp images of docker/Dockerfile: `serve`, `train`, or both (the default). README "Containers".
#
#   docker/build.sh [serve|train|all]
#
# 1. The base: python:3.11-slim-bookworm when it is present or can be pulled; else (no registry, as here) a local
#    one made of this Debian machine's own packages (Python, venv) and `docker import`ed as llmexp-base:local.
# 2. The dependency wheels, built by this machine's pip (which may use a local mirror or a proxy that the build cannot)
#    from docker/constraints.txt, kept in a cache folder keyed by the pins: a rebuild builds no wheel again. The
#    build fetches them from a server on 127.0.0.1 that lives as long as this script (no layer holds a wheel).
# 3. llmexp's own wheel (`pip wheel --no-deps`, which also writes the lm-eval startup hook), then `docker build`.
#
# Environment:
#   LLMEXP_DOCKER_IMAGE  image name, tagged :serve and :train (default llmexp)
#   LLMEXP_DOCKER_BASE   the BASE build argument, chosen as in 1. when unset
#   LLMEXP_DOCKER_DEPS   wheels (default: the build installs from the wheels of 2. and reads no index) or index (pip
#                        inside the build uses the package index; for connected machines)
#   LLMEXP_DOCKER_WHEELS_PORT  the port of the wheel server (default 38700; the same port every time, because its URL
#                        is a build argument and a new one would rebuild the dependency layers)
#   LLMEXP_DOCKER_CACHE  wheel and base cache (default ~/.cache/llmexp-docker)
#   PYTHON               the Python that builds the wheels, of the image's minor version (default python3)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

IMAGE="${LLMEXP_DOCKER_IMAGE:-llmexp}"
DEPS="${LLMEXP_DOCKER_DEPS:-wheels}"
PORT="${LLMEXP_DOCKER_WHEELS_PORT:-38700}"
CACHE="${LLMEXP_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmexp-docker}"
PYTHON="${PYTHON:-python3}"
REGISTRY_BASE=python:3.11-slim-bookworm
LOCAL_BASE=llmexp-base:local
# The packages of the local base and everything they depend on: Python with venv, useradd (and login.defs), a shell,
# coreutils, the C++ runtime that manylinux wheels (torch) expect of the system.
BASE_PACKAGES=(python3 python3-venv passwd login dash coreutils libc-bin libstdc++6 base-files base-passwd)

log() { echo "build: $*" >&2; }
die() { log "error: $*"; exit 2; }

# A base made of this machine's own Debian packages: the files dpkg lists for BASE_PACKAGES and their dependencies,
# under merged-/usr paths, with Debian's stock users and groups (base-passwd's masters, not this machine's). No
# download and no root: seconds, where debootstrap or mmdebstrap took one to five minutes here (BENCHMARKS.md).
local_base() {
  docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 && return 0
  dpkg-query -W -f '${Status}' python3-venv 2>/dev/null | grep -q "ok installed" ||
    die "no registry answers, and no Debian python3-venv here to make a local base of" \
      "(install it, or set LLMEXP_DOCKER_BASE)"
  local packages skeleton archive
  packages="$(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${BASE_PACKAGES[@]}" 2>/dev/null | grep -v '^[ <]' | sort -u)"
  skeleton="$(mktemp -d)" archive="$(mktemp "$CACHE/base.XXXXXX.tar")"
  (cd "$skeleton" && mkdir -p usr/bin usr/sbin usr/lib usr/lib64 etc home run var && mkdir -m 700 root &&
    mkdir -m 1777 tmp var/tmp && for folder in bin sbin lib lib64; do ln -s "usr/$folder" "$folder"; done &&
    cp /usr/share/base-passwd/passwd.master etc/passwd && cp /usr/share/base-passwd/group.master etc/group)
  tar -C "$skeleton" -cf "$archive" .
  # Names, not symlink targets, move under usr/ (S); a host without merged /usr gives the same tree.
  # shellcheck disable=SC2086  # one package name per word
  dpkg-query -L $packages 2>/dev/null | sort -u | while read -r path; do
    if [[ (-f "$path" || -L "$path") && ! -d "$path" ]]; then echo "${path#/}"; fi
  done | tar -C / -rf "$archive" --no-recursion --transform 's,^\(bin\|sbin\|lib\|lib64\)/,usr/\1/,S' -T -
  docker import "$archive" "$LOCAL_BASE" >/dev/null
  rm -rf "$skeleton" "$archive"
  log "made $LOCAL_BASE from this machine's Debian packages ($(wc -w <<<"$packages") of them)"
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

# Prints the cache folder of the dependency wheels for these pins, building those of each target once.
dependency_wheels() {
  local key folder target
  # The pins, and the indexes pip reads (PyPI's torch is the CUDA build, PyTorch's CPU index the CPU one).
  key="$({ cat docker/constraints.txt docker/requirements-serve.txt
    echo "${PIP_INDEX_URL:-} ${PIP_EXTRA_INDEX_URL:-}"; } | sha256sum | cut -c1-16)-py$(python_version "$PYTHON")"
  folder="$CACHE/wheels/$key"
  # Wheels of pins unused for two weeks go; these are marked as used.
  find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -mtime +14 -exec rm -rf {} + 2>/dev/null || true
  mkdir -p "$folder" && touch "$folder"
  for target in "${targets[@]}"; do
    [[ -f "$folder/.complete-$target" ]] && continue
    log "building the $target dependency wheels into $folder (once for these pins)"
    local requirements=(-r docker/constraints.txt)
    [[ "$target" == serve ]] && requirements=(-c docker/constraints.txt -r docker/requirements-serve.txt)
    "$PYTHON" -m pip wheel -q -w "$folder" "${requirements[@]}" 2> >(grep -v "^WARNING: " >&2)
    touch "$folder/.complete-$target"
  done
  echo "$folder"
}

# Serve the wheel folder $1 on 127.0.0.1:$PORT until this script exits.
serve_wheels() {
  "$PYTHON" -u -m http.server "$PORT" --bind 127.0.0.1 --directory "$1" >"$CACHE/wheel-server.log" 2>&1 &
  local server=$!
  trap 'kill '"$server"' 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    grep -q "^Serving HTTP" "$CACHE/wheel-server.log" && return 0
    kill -0 "$server" 2>/dev/null ||
      die "the wheel server cannot listen on 127.0.0.1:$PORT ($(tail -n 1 "$CACHE/wheel-server.log"));" \
        "set LLMEXP_DOCKER_WHEELS_PORT"
    sleep 0.1
  done
  die "the wheel server did not start within 10 s (log: $CACHE/wheel-server.log)"
}

# llmexp's wheel into docker/wheels/llmexp/, built from a clean copy of the sources: no stale build/ folder adds
# deleted modules, and nothing is written here while a `pip install -e .` may run (.ci/run builds during its install).
llmexp_wheel() {
  local tree
  tree="$(mktemp -d)"
  tar -c --exclude='*.egg-info' --exclude=__pycache__ pyproject.toml setup.py README.md src | tar -x -C "$tree"
  find docker/wheels/llmexp -name '*.whl' -delete
  "$PYTHON" -m pip wheel -q --no-deps -w docker/wheels/llmexp "$tree" 2> >(grep -v "^WARNING: " >&2)
  rm -rf "$tree"
}

case "${1:-all}" in
  serve | train) targets=("$1") ;;
  all) targets=(serve train) ;;
  *) die "usage: $0 [serve|train|all]" ;;
esac
[[ "$DEPS" == wheels || "$DEPS" == index ]] || die "LLMEXP_DOCKER_DEPS=$DEPS: expected wheels or index"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (as root, docker/daemon.sh start starts one)"

mkdir -p "$CACHE"
base="$(choose_base)"
build_args=(--build-arg BASE="$base")
if [[ "$DEPS" == wheels ]]; then
  check_python "$base"
  serve_wheels "$(dependency_wheels)"
  build_args+=(--build-arg WHEELS="http://127.0.0.1:$PORT/")
fi
llmexp_wheel
for target in "${targets[@]}"; do
  log "docker build --target $target ($base, dependencies from ${DEPS})"
  # Host network: the build reaches the wheel server on 127.0.0.1, and the daemon of docker/daemon.sh has no bridge.
  if ! docker build --force-rm -f docker/Dockerfile --network host "${build_args[@]}" --target "$target" \
    -t "$IMAGE:$target" . >"$CACHE/build-$target.log" 2>&1; then
    tail -n 25 "$CACHE/build-$target.log" >&2
    die "docker build --target $target failed (whole log: $CACHE/build-$target.log)"
  fi
  log "$IMAGE:$target: $(docker image inspect -f '{{.Size}}' "$IMAGE:$target" | awk '{printf "%.0f MB", $1 / 1e6}')"
done

#!/bin/sh
# Installs inside the image (docker/Dockerfile runs it as llmexp-pip-install).
#   llmexp-pip-install deps URL PIP-ARGS...   from the wheel folder at URL when one is given (no index at all),
#                                             else (URL empty) from the package index
#   llmexp-pip-install llmexp DIR             the llmexp wheel in DIR, without dependencies (the stage has them)
set -eu
case "$1" in
deps)
    wheels=$2
    shift 2
    if [ -n "$wheels" ]; then
        pip install --no-index --find-links "$wheels" "$@"
    else
        pip install "$@"
    fi
    ;;
llmexp)
    if ! ls "$2"/llmexp-*.whl >/dev/null 2>&1; then
        echo "llmexp-pip-install: no llmexp wheel in docker/wheels/llmexp/; build the images with docker/build.sh" >&2
        exit 2
    fi
    pip install --no-deps "$2"/llmexp-*.whl
    rm -rf "$2"
    ;;
*)
    echo "usage: llmexp-pip-install deps URL PIP-ARGS... | llmexp DIR" >&2
    exit 2
    ;;
esac

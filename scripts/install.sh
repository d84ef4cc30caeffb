#!/usr/bin/env bash
# Install llmexp and everything it needs into ./.venv (created if missing).
#
# torch: an existing installation is never replaced. If the Python that creates the venv already has torch (say a
# CUDA build), the venv sees it through --system-site-packages; otherwise torch==2.13.0 is installed, which is the
# CPU build on machines that carry its wheel locally and the default (CUDA) build from PyPI elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LLMEXP_VENV:-.venv}
TORCH_SPEC=${LLMEXP_TORCH:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c "import torch" 2>/dev/null; then
        echo "install: reusing the torch of $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"

if "$PY" -c "import torch" 2>/dev/null; then
    echo "install: keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    echo "install: $TORCH_SPEC"
    "$PY" -m pip install -q "$TORCH_SPEC"
fi
echo "install: llmexp and its dependencies"
"$PY" -m pip install -q -e ".[all]"
"$PY" -c "import torch, lightning, llmexp; print(f'install: done (torch {torch.__version__}, lightning {lightning.__version__}, llmexp {llmexp.__version__})')"

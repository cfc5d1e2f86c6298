#!/usr/bin/env bash
# Create the virtualenv and install fusionrec with the extras the demo and tests use.
# torch is installed first, pinned, so that nothing resolves a CUDA build.
set -euo pipefail
PY=${PY:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e ".[features,dev]"

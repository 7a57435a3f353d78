#!/usr/bin/env bash
# Creates the Python environment the reference scripts of tools/reference run in (/opt/refpy, or
# the directory given as $1): CPU torch + transformers + PEFT at the versions the committed fixtures
# record. torch is installed with --no-deps because its Linux wheel otherwise pulls the multi-GB
# CUDA runtime packages (nvidia-*, triton) that a CPU-only fixture maker never loads; its pure
# Python dependencies are listed by hand instead.
set -euo pipefail

VENV="${1:-/opt/refpy}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install --no-deps torch==2.15.0
# torch's own runtime requirements, less the CUDA ones.
"$VENV/bin/pip" install filelock typing-extensions 'sympy>=1.13.3' networkx jinja2 fsspec setuptools
"$VENV/bin/pip" install numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 transformers==5.24.0
# peft and accelerate require torch, which would bring the CUDA packages back: their other
# requirements are installed by hand (transformers already brought huggingface-hub, pyyaml, tqdm).
"$VENV/bin/pip" install --no-deps peft==0.21.2 accelerate==1.16.0
"$VENV/bin/pip" install psutil pyyaml tqdm packaging huggingface-hub
"$VENV/bin/python" -c 'import torch, transformers, peft; print("refpy:", torch.__version__, transformers.__version__, peft.__version__)'

#!/usr/bin/env bash
# Installs the official OpenAI Python client (scripts/openai-python-requirements.txt) into a virtual
# environment: $OPENAI_PYTHON_VENV, default /opt/lora-mpt-openai. test/serve/openai-python.test.ts
# runs it against a real server (and fails without it under CI=true). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/setup-venv.sh "${OPENAI_PYTHON_VENV:-/opt/lora-mpt-openai}" scripts/openai-python-requirements.txt setup-openai-python

#!/usr/bin/env bash
# Installs the strict validator of the Helm chart's rendered objects (scripts/k8s-validate.py and
# the PyPI packages in scripts/k8s-validate-requirements.txt) into a virtual environment:
# $K8S_VALIDATE_VENV, default /opt/k8s-validate. test/deploy/chart-validate.test.ts uses it when it
# is there (and fails without it under CI=true). Safe to run again: does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/setup-venv.sh "${K8S_VALIDATE_VENV:-/opt/k8s-validate}" scripts/k8s-validate-requirements.txt setup-k8s-validate

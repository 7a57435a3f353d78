#!/usr/bin/env bash
# Installs the strict validator of the Helm chart's rendered objects (scripts/k8s-validate.py and
# the PyPI packages in scripts/k8s-validate-requirements.txt) into a virtual environment:
# $K8S_VALIDATE_VENV, default /opt/k8s-validate. test/deploy/chart-validate.test.ts uses it when it
# is there (and fails without it under CI=true). Safe to run again: does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${K8S_VALIDATE_VENV:-/opt/k8s-validate}"
req=scripts/k8s-validate-requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "setup-k8s-validate: $venv is up to date"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "setup-k8s-validate: installing python3-venv with apt-get"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
echo "setup-k8s-validate: installed into $venv ($("$venv/bin/python" -m kubernetes_validate --version 2>/dev/null || echo kubernetes-validate))"

#!/usr/bin/env bash
# A Python virtual environment with a requirements file's pinned packages from PyPI, made again only
# when the requirements change (a stamp in the venv holds their sha256). Used by the setup scripts of
# the test tools that are Python programs: the chart validator, the official `openai` client.
#   scripts/setup-venv.sh DIR REQUIREMENTS LABEL
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$1"
req="$2"
label="$3"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$label: $venv is up to date"
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "$label: installing python3-venv with apt-get"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" >"$stamp"
echo "$label: installed into $venv"

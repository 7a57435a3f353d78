#!/usr/bin/env bash
# Installs what lora-mpt needs on a fresh Debian/Ubuntu machine: the npm packages (npm ci), the
# system programs the tests and the demo start (nats-server; prometheus with promtool and chromium
# for the observability test) and the native `tensorflow` compute
# backend (scripts/setup-tensorflow.sh, built from registries; wasm where it cannot), the
# all-reduce's compiled float loops (scripts/setup-native.sh), the chart
# validator (scripts/setup-k8s-validate.sh) and the OpenAI Python client for its compatibility test
# (scripts/setup-openai-python.sh). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)   # unpacks helm/kubectl for the chart tests
# test/e2e/observability.test.ts: a real Prometheus (promtool comes with it); the status page and
# `lora-mpt generate`'s page are tested in headless Chromium, driven by the npm devDependency
# playwright-core (which downloads no browser of its own).
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "setup: installing ${need_apt[*]} with apt-get"
  $sudo apt-get update -qq
  # --no-install-recommends: prometheus would pull in node-exporter, chromium a desktop's worth.
  $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
bash scripts/setup-tensorflow.sh
# The all-reduce's compiled float32 loops (a C file; JavaScript where no compiler: CI needs them).
if [ -n "${CI:-}" ]; then LORA_MPT_REQUIRE_NATIVE=1 bash scripts/setup-native.sh; else bash scripts/setup-native.sh; fi
# The strict validator of the Helm chart's objects (a Python venv). Without it the chart-validation
# tests skip; CI (CI=true) needs it.
if ! bash scripts/setup-k8s-validate.sh; then
  [ -n "${CI:-}" ] && exit 1
  echo "setup: the chart validator did not install; test/deploy skips strict validation"
fi
# The official OpenAI Python client, which a test runs against `lora-mpt generate` (its own venv).
if ! bash scripts/setup-openai-python.sh; then
  [ -n "${CI:-}" ] && exit 1
  echo "setup: the OpenAI Python client did not install; its test skips"
fi
echo "setup: done (node $(node --version), $(nats-server --version))"

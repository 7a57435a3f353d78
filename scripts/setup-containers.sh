#!/usr/bin/env bash
# Makes a container engine answer on this machine, for scripts/build-image.sh and for the tests that
# run the image (test/e2e/containers.test.ts; test/support starts NATS as a container where an
# engine answers): installs podman, buildah, runc and debootstrap from Debian where they are missing,
# then starts `podman system service` (the Docker-compatible API testcontainers talks to) unless it
# already answers. Podman settings come from scripts/containers.conf (runc, lowered ulimits). Root:
# /run/podman/podman.sock; other users: $XDG_RUNTIME_DIR/podman/podman.sock. Prints the DOCKER_HOST
# to export (test/support also finds these sockets without it). Safe to run again.
#   scripts/setup-containers.sh            scripts/setup-containers.sh --stop
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

if [ "$(id -u)" -eq 0 ]; then
  sock=/run/podman/podman.sock sudo=""
else
  sock="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/podman/podman.sock" sudo="sudo"
fi
pidfile="$(dirname "$sock")/lora-mpt-service.pid"
log=/var/tmp/lora-mpt-podman-service-$(id -u).log

if [ "${1:-}" = --stop ]; then
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then echo "setup-containers: podman service stopped"; fi
  rm -f "$pidfile"
  exit 0
fi

need=()
for tool in podman buildah runc debootstrap curl; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-containers: installing ${need[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" uidmap >/dev/null
fi

answers() { curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
if ! answers; then
  mkdir -p "$(dirname "$sock")"
  # --time=0: the service stays until stopped (--stop), not 5 s after its last request.
  # From /: the service (and conmon under it) must not depend on this checkout's folder staying there.
  (cd / && exec setsid podman system service --time=0 "unix://$sock" >"$log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  for _ in $(seq 50); do answers && break; sleep 0.2; done
  answers || { echo "setup-containers: podman system service did not answer on $sock (log: $log)" >&2; exit 1; }
fi
echo "setup-containers: $(podman --version) answers on $sock (export DOCKER_HOST=unix://$sock)"

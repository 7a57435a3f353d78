#!/usr/bin/env bash
# Builds the lora-mpt image from Dockerfile with podman (buildah inside) on a Debian machine that
# reaches package registries but not Docker Hub: installs podman, buildah, runc and debootstrap,
# makes `debian:bookworm-slim` locally from `debootstrap --variant=minbase bookworm` (once), then
# builds, so the Dockerfile stays the one a machine with Docker Hub builds unchanged. Prints the
# image size and the build time. Run as root.
#   scripts/build-image.sh [TAG]        (default lora-mpt:dev)
# Host quirks it handles (issue 15): crun fails on this host's cgroups (runc is used); ulimits are
# lowered; the build uses the host network; downloads during the build trust the host's CA bundle
# (passed as a build secret, never stored in the image).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-lora-mpt:dev}"
base=docker.io/library/debian:bookworm-slim
ca_bundle="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

need=()
for tool in podman buildah runc debootstrap; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "build-image: installing ${need[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" uidmap >/dev/null
fi
podman=(podman --runtime runc)

if ! "${podman[@]}" image exists "$base"; then
  echo "build-image: making $base with debootstrap --variant=minbase bookworm"
  started=$(date +%s)
  rootfs="$(mktemp -d /var/tmp/bookworm-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # What the official slim image leaves out: package lists and caches.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -c . | "${podman[@]}" import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  echo "build-image: $base made in $(($(date +%s) - started)) s ($("${podman[@]}" image inspect --format '{{.Size}}' "$base" | numfmt --to=iec))"
fi

echo "build-image: building $tag"
started=$(date +%s)
"${podman[@]}" build --pull=never --network host \
  --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  --secret "id=ca,src=$ca_bundle" \
  --tag "$tag" --file Dockerfile .
seconds=$(($(date +%s) - started))
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag built in ${seconds} s, $(numfmt --to=iec "$size") ($size bytes)"

#!/usr/bin/env bash
# Builds the lora-mpt image from Dockerfile with podman (buildah inside) on a Debian machine that
# reaches package registries but not Docker Hub: makes `debian:bookworm-slim` locally from
# `debootstrap --variant=minbase bookworm` (the rootfs tarball is cached, so a new podman store
# imports it in seconds), then builds, so the Dockerfile stays the one a machine with Docker Hub
# builds unchanged. Prints the build time and the image size. Run as root, after
# scripts/setup-containers.sh (podman, buildah, runc, debootstrap).
#   scripts/build-image.sh [--gpu] [--target STAGE] [--tag TAG]
# --gpu: VARIANT=gpu (CUDA tensorflow + the nvidia-* libraries, ~3 GB of downloads; default tag
# lora-mpt:dev-gpu), else the CPU image (lora-mpt:dev). --target: stop at a stage (node, build).
# Layers are reused from earlier builds in the same podman store; the npm and PyPI downloads sit in
# build cache mounts (/var/tmp/buildah-cache-*), reused even by a build without layers. Host quirks
# (scripts/containers.conf): runc, lowered ulimits; the build uses the host network; downloads trust
# the host's CA bundle (the build secret `ca`, never stored in the image).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"

variant=cpu target="" tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) variant=gpu ;;
    --target) target="${2:?--target needs a stage name}"; shift ;;
    --tag) tag="${2:?--tag needs a name}"; shift ;;
    *) echo "build-image: unknown argument $1 (expected --gpu, --target STAGE, --tag TAG)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$tag" ]; then tag=lora-mpt:dev; [ "$variant" = cpu ] || tag="$tag-$variant"; fi
base=docker.io/library/debian:bookworm-slim
ca_bundle="${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lora-mpt"
base_tar="$cache/debian-bookworm-minbase.tar"

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build-image: no $tool: run scripts/setup-containers.sh first" >&2; exit 1; }
done

# The base: cached rootfs tarball (rebuilt when older than a week, for Debian's security updates).
if ! podman image exists "$base"; then
  started=$(date +%s)
  if [ ! -s "$base_tar" ] || [ -n "$(find "$base_tar" -mtime +7)" ]; then
    echo "build-image: making $base with debootstrap --variant=minbase bookworm (cached in $base_tar)"
    mkdir -p "$cache"
    rootfs="$(mktemp -d /var/tmp/bookworm-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs" "$base_tar.tmp"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    # What the official slim image leaves out: package lists and caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  podman import --change 'CMD ["bash"]' "$base_tar" "$base" >/dev/null
  echo "build-image: $base ready in $(($(date +%s) - started)) s ($(podman image inspect --format '{{.Size}}' "$base" | numfmt --to=iec))"
fi

echo "build-image: building $tag (VARIANT=$variant${target:+, up to stage $target})"
started=$(date +%s)
podman build --pull=never --layers --network host \
  --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  --secret "id=ca,src=$ca_bundle" \
  --build-arg "VARIANT=$variant" ${target:+--target "$target"} \
  --tag "$tag" --file Dockerfile .
seconds=$(($(date +%s) - started))
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag built in ${seconds} s, $(numfmt --to=iec "$size") ($size bytes)"

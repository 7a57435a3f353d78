#!/usr/bin/env bash
# Compiles native/float-kernels (the all-reduce's float32 sums and finiteness scans, an N-API addon
# of one C file) into native/float-kernels/build/float_kernels.node, against the Node headers the
# tensorflow backend's build uses. Without a C compiler or the headers it says so and exits 0: the
# all-reduce then runs the same loops in JavaScript (src/collective/float-kernels.ts), the same sums
# but 3-10x slower. LORA_MPT_REQUIRE_NATIVE=1 (the image build, CI) makes that an error.
# Safe to run again: nothing is rebuilt while source, flags and Node ABI are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=native/float-kernels/float_kernels.c
OUT_DIR=native/float-kernels/build
OUT="$OUT_DIR/float_kernels.node"
CC="${CC:-cc}"
# -ffp-contract=off and no -ffast-math: every float32 addition is one IEEE addition, as in
# JavaScript, so the two implementations give the same bytes. Baseline x86-64 (SSE2) plus an AVX2
# clone chosen at load time: the image's binary runs on any x86-64 node.
CFLAGS=(-O3 -std=c11 -ffp-contract=off -fno-fast-math -fvisibility=hidden -fPIC -shared -Wall -Wextra -Werror)

cannot() {
  if [ "${LORA_MPT_REQUIRE_NATIVE:-}" = 1 ]; then
    echo "setup-native: $1" >&2
    exit 1
  fi
  echo "setup-native: $1; the all-reduce runs its JavaScript loops instead" >&2
  exit 0
}

command -v "$CC" >/dev/null 2>&1 || cannot "no C compiler ($CC)"
NODE_PREFIX="$(node -p 'require("path").dirname(require("path").dirname(process.execPath))')"
HEADERS="$NODE_PREFIX/include/node"
[ -f "$HEADERS/node_api.h" ] || cannot "no Node.js headers in $HEADERS (install your Node distribution's headers package)"

stamp="$(sha256sum "$SRC" | cut -d' ' -f1) $("$CC" --version | head -1) ${CFLAGS[*]} $(node -p '`node ${process.version} N-API ${process.versions.napi}`')"
if [ -f "$OUT" ] && [ "$(cat "$OUT_DIR/.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

mkdir -p "$OUT_DIR"
tmp="$(mktemp "$OUT_DIR/.float_kernels.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
"$CC" "${CFLAGS[@]}" -I"$HEADERS" -o "$tmp" "$SRC" || cannot "compiling $SRC failed (see the compiler's message above)"
# Loads and sums before it replaces the old one.
LORA_MPT_FLOAT_KERNELS_PROBE="$PWD/$tmp" node -e '
  const m = { exports: {} };
  process.dlopen(m, process.env.LORA_MPT_FLOAT_KERNELS_PROBE);
  const k = m.exports;
  const out = new Float32Array(3);
  if (k.sum(out, Float32Array.of(1, 2, 3), Float32Array.of(0.5, 0.25, 1e38)) || out[2] !== Math.fround(3 + 1e38))
    throw new Error("the built addon sums wrong");
' || cannot "the built $OUT does not load or sums wrong"
chmod 0755 "$tmp"
mv -f "$tmp" "$OUT"
trap - EXIT
echo "$stamp" >"$OUT_DIR/.stamp"
echo "setup-native: built $OUT"

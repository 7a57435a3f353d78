#!/usr/bin/env bash
# Installs the `tensorflow` compute backend (@tensorflow/tfjs-node) from package registries only: the
# package's own installer downloads libtensorflow from a storage bucket that is often unreachable, so
# this takes libtensorflow from PyPI's tensorflow-cpu wheel (pinned, sha256-checked, cached outside
# node_modules) and compiles the addon from the package's C++ source against the local Node headers.
# See docs/backends.md. Run by scripts/setup.sh after `npm ci`; safe to run again (a stamp records
# what was built). Where it cannot build, it says why in one line and exits 0: lora-mpt then runs on
# wasm. With LORA_MPT_REQUIRE_TENSORFLOW=1 (CI) that is an error instead.
# `--gpu` runs scripts/setup-tensorflow-gpu.sh, the one GPU build (pinned CUDA wheels; Dockerfile,
# scripts/gpu-check.sh): there is a single way to build @tensorflow/tfjs-node-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --gpu ]; then
  shift
  exec bash scripts/setup-tensorflow-gpu.sh "$@"
fi

TFJS_NODE_VERSION=4.22.0
TF_VERSION=2.16.2
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lora-mpt"
GPU_PKG=node_modules/@tensorflow/tfjs-node-gpu
STAMP_FILE=lora-mpt-build.stamp
VARIANT=cpu
PKG_NAME=@tensorflow/tfjs-node
WHEEL_PROJECT=tensorflow-cpu
TF_WHEEL=tensorflow_cpu-2.16.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
TF_WHEEL_SHA256=c855cb6bf05d32dd5928086b03a5f6b4189b63c22b95e017703cbee4291023ca
PKG=node_modules/$PKG_NAME

# One line saying why there is no tensorflow backend, then exit (0: the project runs on wasm).
cannot() {
  if [ "${LORA_MPT_REQUIRE_TENSORFLOW:-0}" = 1 ]; then
    echo "setup: ERROR: $PKG_NAME not built: $1 (LORA_MPT_REQUIRE_TENSORFLOW=1)" >&2
    exit 1
  fi
  echo "setup: tensorflow backend not built: $1; lora-mpt runs on wasm"
  exit 0
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    sudo="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "setup: installing $* with apt-get (to build the tensorflow backend)"
  $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "$@" >/dev/null
}

# --- Can this machine run and build it at all? ---------------------------------------------------
[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
  cannot "PyPI's $WHEEL_PROJECT $TF_VERSION libraries are used for Linux x86_64 only (this is $(uname -s) $(uname -m))"
grep -qw avx /proc/cpuinfo || cannot "this CPU lacks AVX, which TensorFlow's PyPI builds require"

missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}" || cannot "no ${missing[*]} to compile the addon, and no apt-get as root to install them"
fi
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip ||
  cannot "python3 has no pip to download the $WHEEL_PROJECT wheel, and no apt-get as root to install python3-pip"

# N-API addon: any Node >= 12 headers fit, but node-gyp needs them laid out as Node installs them.
NODE_PREFIX="$(node -p 'require("path").dirname(require("path").dirname(process.execPath))')"
if [ ! -f "$NODE_PREFIX/include/node/node_api.h" ] && dpkg -S "$(node -p process.execPath)" 2>/dev/null | grep -q '^nodejs:'; then
  apt_install libnode-dev || true # Debian's own nodejs keeps its headers there
fi
[ -f "$NODE_PREFIX/include/node/node_api.h" ] && [ -f "$NODE_PREFIX/include/node/common.gypi" ] ||
  cannot "no Node.js headers in $NODE_PREFIX/include/node (install your Node distribution's headers package)"

mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then # two setups on one node_modules must not interleave
  exec 9>"$CACHE/setup.lock"
  flock 9
fi

# --- Already built? ---------------------------------------------------------------------------------
# tfjs-node-gpu is built only by scripts/setup-tensorflow-gpu.sh. An unbuilt copy (npm
# installs it beside tfjs-node) would be tried first by the loader and fail, so it goes.
if [ -d "$GPU_PKG" ] && [ ! -f "$GPU_PKG/$STAMP_FILE" ]; then
  rm -rf "$GPU_PKG"
fi
stamp="$PKG_NAME $TFJS_NODE_VERSION; $WHEEL_PROJECT $TF_VERSION wheel sha256 $TF_WHEEL_SHA256; $(node -p '`node ${process.version} ABI ${process.versions.modules} N-API ${process.versions.napi}`'); headers $NODE_PREFIX/include/node"
addon="$PKG/lib/napi-v8/tfjs_binding.node"
if [ -f "$addon" ] && [ "$(cat "$PKG/$STAMP_FILE" 2>/dev/null)" = "$stamp" ]; then
  echo "setup: $PKG_NAME already built ($stamp)"
  exit 0
fi

# --- libtensorflow from the pinned wheel (cached outside node_modules: npm ci wipes that) --------
wheel="$CACHE/$TF_WHEEL"
if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$TF_WHEEL_SHA256" ]; then
  echo "setup: downloading $WHEEL_PROJECT==$TF_VERSION from PyPI (once, into $CACHE)"
  dl="$(mktemp -d "$CACHE/download.XXXXXX")"
  echo "$WHEEL_PROJECT==$TF_VERSION --hash=sha256:$TF_WHEEL_SHA256" >"$dl/requirements.txt"
  if ! python3 -m pip download -q --no-cache-dir --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --require-hashes -r "$dl/requirements.txt" -d "$dl" >"$dl/pip.log" 2>&1; then
    why="$(grep -v '^\s*$' "$dl/pip.log" | tail -1)"
    rm -rf "$dl"
    cannot "pip could not download $WHEEL_PROJECT==$TF_VERSION ($why)"
  fi
  [ "$(sha256sum "$dl/$TF_WHEEL" | cut -d' ' -f1)" = "$TF_WHEEL_SHA256" ] ||
    cannot "the downloaded $TF_WHEEL does not have sha256 $TF_WHEEL_SHA256"
  mv "$dl/$TF_WHEEL" "$wheel"
  rm -rf "$dl"
fi
libdir="$CACHE/libtensorflow-$VARIANT-$TF_VERSION-${TF_WHEEL_SHA256:0:12}"
if [ ! -f "$libdir/done" ]; then
  rm -rf "$libdir" "$libdir.tmp"
  # Only the two libraries and the C API headers the binding includes (CPU: 606 MB of the wheel's 1.2 GB).
  python3 - "$wheel" "$libdir.tmp" <<'EOF'
import sys, zipfile
heads = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/',
         'tensorflow/include/tsl/c/', 'tensorflow/include/tsl/platform/')
libs = ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2')
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        if i.filename in libs or (i.filename.startswith(heads) and not i.filename.endswith('/')):
            z.extract(i, sys.argv[2])
EOF
  touch "$libdir.tmp/done"
  mv "$libdir.tmp" "$libdir"
fi

# --- The package (its npm installer skipped) and its addon -----------------------------------------
if [ "$(node -p "try { require('./$PKG/package.json').version } catch { '' }")" != "$TFJS_NODE_VERSION" ]; then
  # npm replaces a symlinked node_modules with a folder of its own: work in the project that owns it.
  owner="$(dirname "$(readlink -f node_modules)")"
  echo "setup: npm install --no-save --ignore-scripts $PKG_NAME@$TFJS_NODE_VERSION (in $owner)"
  npm install --prefix "$owner" --no-save --ignore-scripts --no-audit --no-fund \
    "$PKG_NAME@$TFJS_NODE_VERSION" >/dev/null ||
    cannot "npm could not install $PKG_NAME@$TFJS_NODE_VERSION"
  if [ -d "$GPU_PKG" ] && [ ! -f "$GPU_PKG/$STAMP_FILE" ]; then rm -rf "$GPU_PKG"; fi
fi
echo "setup: compiling the $PKG_NAME addon against libtensorflow $TF_VERSION and $NODE_PREFIX/include/node"
rm -rf "$PKG/deps" "$PKG/build" "$PKG/lib" "$PKG/$STAMP_FILE"
mkdir -p "$PKG/deps/lib" "$PKG/deps/include"
for so in libtensorflow_cc.so.2 libtensorflow_framework.so.2; do # hard links: no second 600 MB copy
  ln -f "$libdir/tensorflow/$so" "$PKG/deps/lib/$so" 2>/dev/null || cp "$libdir/tensorflow/$so" "$PKG/deps/lib/$so"
done
ln -s libtensorflow_cc.so.2 "$PKG/deps/lib/libtensorflow.so" # the names binding.gyp links against
ln -s libtensorflow_framework.so.2 "$PKG/deps/lib/libtensorflow_framework.so"
ln -s libtensorflow_cc.so.2 "$PKG/deps/lib/libtensorflow.so.2.9.1" # its installer's "already downloaded" mark
cp -r "$libdir/tensorflow/include/." "$PKG/deps/include/"
node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$node_gyp" ] && export npm_config_node_gyp="$node_gyp"
pre_gyp="$(node -p "require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', { paths: ['$PWD/$PKG'] })")"
log="$CACHE/$VARIANT-addon-build.log"
if ! (cd "$PKG" && node "$pre_gyp" install --build-from-source --nodedir="$NODE_PREFIX") >"$log" 2>&1; then
  rm -rf "$PKG/build" "$PKG/lib"
  cannot "compiling the addon failed (log: $log)"
fi
rm -rf "$PKG/build" # objects only; the addon is in lib/napi-v8 with runpath \$ORIGIN/../../deps/lib

check='const tf = require(process.argv[1]);
const v = tf.backend().binding.TF_Version, y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync();
if (v !== process.argv[2] || y[0] !== 3) throw new Error(`TF_Version ${v}, 1·1 matmul gave ${y[0]}`);
'
if ! out="$(TF_CPP_MIN_LOG_LEVEL=2 node -e "$check" "$PKG_NAME" "$TF_VERSION" 2>&1)"; then
  rm -rf "$PKG/lib"
  cannot "the built addon does not run: $(echo "$out" | grep -m1 -i error)"
fi
echo "$stamp" >"$PKG/$STAMP_FILE"
echo "setup: tensorflow backend built: $PKG_NAME $TFJS_NODE_VERSION on libtensorflow $TF_VERSION"

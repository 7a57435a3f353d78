#!/usr/bin/env bash
# Builds the CUDA `tensorflow` compute backend (@tensorflow/tfjs-node-gpu) from package registries
# only, the way scripts/setup-tensorflow.sh builds the CPU one: libtensorflow from PyPI's CUDA-enabled
# `tensorflow` wheel (pinned, sha256-checked, cached outside node_modules), the addon compiled from the
# package's C++ source against the local Node headers, then the CUDA 12 libraries that
# `tensorflow[and-cuda]` names (scripts/tensorflow-gpu-requirements.txt, hash-pinned) installed in the
# package's deps/nvidia, beside libtensorflow. The NVIDIA driver (libcuda) is the host's.
#   scripts/setup-tensorflow-gpu.sh [--without-cuda-libs]
#   scripts/setup-tensorflow-gpu.sh --register-cuda-libs
# --without-cuda-libs: the addon only, where CUDA 12.3 and cuDNN 8.9 come from elsewhere (a CUDA base
# image, the system); 1.8 GB less to download.
# --register-cuda-libs: only tell the dynamic loader where the built CUDA libraries are (no compiler,
# no network): as root an ld.so.conf entry; otherwise the folders are printed on stdout for
# LD_LIBRARY_PATH (nothing when the loader knows them already). The build ends with it, the GPU
# image's runtime stage runs it (the build stage's /etc is not in the image), and so does
# scripts/gpu-check.sh: one place says where CUDA comes from.
# The one GPU build: the GPU image runs it (Dockerfile, VARIANT=gpu), so do scripts/gpu-check.sh and
# `scripts/setup-tensorflow.sh --gpu`; on a GPU machine without containers run it after scripts/setup.sh. The loader tries tfjs-node-gpu before tfjs-node (src/model/backend.ts), so once
# built it is the backend of every lora-mpt process using this node_modules; without a GPU it computes
# on the CPU. Unlike setup-tensorflow.sh there is no wasm fallback: every failure is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

TFJS_NODE_VERSION=4.22.0
TF_VERSION=2.16.2
TF_WHEEL=tensorflow-2.16.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
TF_WHEEL_SHA256=d8798dea8e2281b4a0b569d9c00e7949c0090509be363da271e1ef21828bffae
CUDA_REQUIREMENTS=scripts/tensorflow-gpu-requirements.txt
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/lora-mpt"
PKG=node_modules/@tensorflow/tfjs-node-gpu
STAMP_FILE=lora-mpt-build.stamp

fail() {
  echo "setup-tensorflow-gpu: ERROR: $1" >&2
  exit 1
}

# TensorFlow dlopens each CUDA library by name (cudart, cublas, cublasLt, cufft, cusolver, cusparse,
# cudnn; cusolver also needs nvJitLink), and the RUNPATH of libtensorflow does not reach every caller
# (tensorflow#63362): the loader must know the folders. As root: an ld.so.conf entry (and ldconfig);
# otherwise they are written to deps/cuda-library-path and printed for LD_LIBRARY_PATH.
register_cuda_libs() {
  [ -d "$PKG/deps/nvidia" ] || return 0
  local conf=/etc/ld.so.conf.d/lora-mpt-cuda.conf
  local folders
  folders="$(ls -d "$PWD/$PKG"/deps/nvidia/*/lib | paste -sd:)"
  # Kept beside the libraries for whoever sets up a process by hand; a read-only image may refuse it.
  echo "$folders" >"$PKG/deps/cuda-library-path" 2>/dev/null || true
  if [ "$(id -u)" -eq 0 ] && [ -d /etc/ld.so.conf.d ]; then
    tr : '\n' <<<"$folders" >"$conf" && ldconfig
    echo "setup-tensorflow-gpu: the CUDA library folders are in $conf" >&2
  elif [ "$(cat "$conf" 2>/dev/null)" != "$(tr : '\n' <<<"$folders")" ]; then
    echo "setup-tensorflow-gpu: not root: lora-mpt on the GPU needs LD_LIBRARY_PATH=$folders (printed on stdout)" >&2
    echo "$folders"
  fi
}

cuda_libs=1
for arg in "$@"; do
  case "$arg" in
    --without-cuda-libs) cuda_libs=0 ;;
    --register-cuda-libs)
      [ -f "$PKG/$STAMP_FILE" ] || fail "no built $PKG here: run scripts/setup-tensorflow-gpu.sh first"
      register_cuda_libs
      exit 0
      ;;
    *) echo "setup-tensorflow-gpu: unknown argument $arg (expected --without-cuda-libs or --register-cuda-libs)" >&2; exit 2 ;;
  esac
done

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
  fail "PyPI's CUDA tensorflow $TF_VERSION is built for Linux x86_64 only (this is $(uname -s) $(uname -m))"
for tool in g++ make python3; do
  command -v "$tool" >/dev/null 2>&1 || fail "no $tool: install g++, make and python3-pip (apt-get install g++ make python3-pip)"
done
python3 -m pip --version >/dev/null 2>&1 || fail "python3 has no pip (apt-get install python3-pip)"
NODE_PREFIX="$(node -p 'require("path").dirname(require("path").dirname(process.execPath))')"
[ -f "$NODE_PREFIX/include/node/node_api.h" ] && [ -f "$NODE_PREFIX/include/node/common.gypi" ] ||
  fail "no Node.js headers in $NODE_PREFIX/include/node (install your Node distribution's headers package)"

mkdir -p "$CACHE"
exec 9>"$CACHE/setup.lock" # shared with setup-tensorflow.sh: one build at a time per cache
flock 9

requirements_sha="$(sha256sum "$CUDA_REQUIREMENTS" | cut -c1-12)"
stamp="tfjs-node-gpu $TFJS_NODE_VERSION; tensorflow $TF_VERSION wheel sha256 $TF_WHEEL_SHA256; $(node -p '`node ${process.version} ABI ${process.versions.modules} N-API ${process.versions.napi}`'); headers $NODE_PREFIX/include/node; cuda libs $([ "$cuda_libs" = 1 ] && echo "$CUDA_REQUIREMENTS sha256 $requirements_sha" || echo none)"
if [ -f "$PKG/lib/napi-v8/tfjs_binding.node" ] && [ "$(cat "$PKG/$STAMP_FILE" 2>/dev/null)" = "$stamp" ]; then
  echo "setup-tensorflow-gpu: already built ($stamp)"
  exit 0
fi

# --- libtensorflow from the pinned CUDA wheel (591 MB; its two libraries are 1.15 GB) ---------------
wheel="$CACHE/$TF_WHEEL"
if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$TF_WHEEL_SHA256" ]; then
  echo "setup-tensorflow-gpu: downloading tensorflow==$TF_VERSION from PyPI (591 MB, once, into $CACHE)"
  dl="$(mktemp -d "$CACHE/download.XXXXXX")"
  echo "tensorflow==$TF_VERSION --hash=sha256:$TF_WHEEL_SHA256" >"$dl/requirements.txt"
  python3 -m pip download -q --no-cache-dir --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --require-hashes -r "$dl/requirements.txt" -d "$dl" ||
    fail "pip could not download tensorflow==$TF_VERSION"
  mv "$dl/$TF_WHEEL" "$wheel"
  rm -rf "$dl"
fi
libdir="$CACHE/libtensorflow-gpu-$TF_VERSION-${TF_WHEEL_SHA256:0:12}"
if [ ! -f "$libdir/done" ]; then
  rm -rf "$libdir" "$libdir.tmp"
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
  owner="$(dirname "$(readlink -f node_modules)")" # npm replaces a symlinked node_modules: use its owner
  echo "setup-tensorflow-gpu: npm install --no-save --ignore-scripts @tensorflow/tfjs-node-gpu@$TFJS_NODE_VERSION (in $owner)"
  npm install --prefix "$owner" --no-save --ignore-scripts --no-audit --no-fund \
    "@tensorflow/tfjs-node-gpu@$TFJS_NODE_VERSION" >/dev/null ||
    fail "npm could not install @tensorflow/tfjs-node-gpu@$TFJS_NODE_VERSION"
fi
echo "setup-tensorflow-gpu: compiling the tfjs-node-gpu addon against libtensorflow $TF_VERSION (CUDA) and $NODE_PREFIX/include/node"
rm -rf "$PKG/deps" "$PKG/build" "$PKG/lib" "$PKG/$STAMP_FILE"
mkdir -p "$PKG/deps/lib" "$PKG/deps/include"
for so in libtensorflow_cc.so.2 libtensorflow_framework.so.2; do # hard links where the cache is on the same disk
  ln -f "$libdir/tensorflow/$so" "$PKG/deps/lib/$so" 2>/dev/null || cp "$libdir/tensorflow/$so" "$PKG/deps/lib/$so"
done
ln -s libtensorflow_cc.so.2 "$PKG/deps/lib/libtensorflow.so" # the names binding.gyp links against
ln -s libtensorflow_framework.so.2 "$PKG/deps/lib/libtensorflow_framework.so"
cp -r "$libdir/tensorflow/include/." "$PKG/deps/include/"
node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$node_gyp" ] && export npm_config_node_gyp="$node_gyp"
pre_gyp="$(node -p "require.resolve('@mapbox/node-pre-gyp/bin/node-pre-gyp', { paths: ['$PWD/$PKG'] })")"
log="$CACHE/tfjs-node-gpu-build.log"
if ! (cd "$PKG" && node "$pre_gyp" install --build-from-source --nodedir="$NODE_PREFIX") >"$log" 2>&1; then
  rm -rf "$PKG/build" "$PKG/lib"
  fail "compiling the addon failed (log: $log)"
fi
rm -rf "$PKG/build"

# --- CUDA 12 libraries: deps/nvidia/<lib>/lib, on libtensorflow's RUNPATH ($ORIGIN/../nvidia/...) -----
# The wheels are kept in the cache (pip download skips those already there with the right hash).
if [ "$cuda_libs" = 1 ]; then
  echo "setup-tensorflow-gpu: installing the CUDA 12 libraries of tensorflow[and-cuda]==$TF_VERSION (1.8 GB of wheels, kept in $CACHE/cuda-wheels; 2.8 GB installed)"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 --require-hashes \
    -r "$CUDA_REQUIREMENTS" -d "$CACHE/cuda-wheels" || fail "pip could not download $CUDA_REQUIREMENTS"
  python3 -m pip install -q --no-index --find-links "$CACHE/cuda-wheels" --no-deps --require-hashes \
    --target "$PKG/deps" -r "$CUDA_REQUIREMENTS" || fail "pip could not install $CUDA_REQUIREMENTS"
fi

cuda_path="$(register_cuda_libs)"
# The driver's libcuda is the host's: found the way TensorFlow finds it (dlopen, so LD_LIBRARY_PATH
# and driver folders outside the loader's cache count), not only through `ldconfig -p`.
if python3 -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null; then
  echo "setup-tensorflow-gpu: the NVIDIA driver's libcuda.so.1 loads"
else
  echo "setup-tensorflow-gpu: no NVIDIA driver here (dlopen libcuda.so.1 failed): the addon computes on the CPU until one is (the image gets it from the node)"
fi

# The addon loads and computes (on the GPU where one is visible, else on the CPU).
check='const tf = require("@tensorflow/tfjs-node-gpu");
const v = tf.backend().binding.TF_Version, y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync();
if (v !== process.argv[1] || y[0] !== 3) throw new Error(`TF_Version ${v}, 1·1 matmul gave ${y[0]}`);
console.log(tf.backend().isUsingGpuDevice ? "on a GPU" : "no GPU visible: on the CPU");'
out="$(LD_LIBRARY_PATH="$cuda_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" TF_CPP_MIN_LOG_LEVEL=2 node -e "$check" "$TF_VERSION" 2>&1)" || {
  rm -rf "$PKG/lib"
  fail "the built addon does not run: $(echo "$out" | grep -m1 -i error)"
}
echo "$stamp" >"$PKG/$STAMP_FILE"
echo "setup-tensorflow-gpu: built @tensorflow/tfjs-node-gpu $TFJS_NODE_VERSION on libtensorflow $TF_VERSION (CUDA); $(echo "$out" | tail -1)"

#!/usr/bin/env bash
# The check for a GPU node, in one run, everything also saved to a log file: the GPU (nvidia-smi), the
# GPU binding built the one way (scripts/setup-tensorflow-gpu.sh; the GPU image has it already), then
# `lora-mpt gpu-check` with TensorFlow's placement log on: each CUDA library opened or its error, the
# device (name, compute capability, memory), float32 precision (FP32 vs TF32), the matmul rate and
# training steps with step time and MFU, nvidia-smi's utilisation and memory meanwhile; then where
# every MatMul kernel ran. Fails (non-zero) on any CPU fallback. In a repository checkout it also runs
# test/model and `npm run bench -- train-step` on the GPU (and the MPT-7B bench with GPU_CHECK_MPT7B=1).
#   bash scripts/gpu-check.sh [lora-mpt gpu-check flags]          # in a checkout or in the GPU image
# On Kubernetes (docs/backends.md#gpu-workers): kubectl run with the GPU image, a GPU limit, and
#   --command -- bash /app/scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
log="${GPU_CHECK_LOG:-${TMPDIR:-/tmp}/gpu-check-$(date -u +%Y%m%dT%H%M%SZ).log}"
tflog="${log%.log}.tensorflow.log"
exec > >(tee "$log") 2>&1
export LORA_MPT_REQUIRE_GPU=1 LORA_MPT_REQUIRE_TENSORFLOW=1
fail() {
  echo "gpu-check: FAILED: $1 (log: $log)"
  exit 1
}

echo "== GPU (nvidia-smi)"
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader ||
  fail "nvidia-smi does not run: no NVIDIA driver or device in this container"

echo "== the GPU binding"
pkg=node_modules/@tensorflow/tfjs-node-gpu
if [ ! -f "$pkg/lora-mpt-build.stamp" ]; then
  [ -d node_modules ] || npm ci --no-audit --no-fund || fail "npm ci"
  bash scripts/setup-tensorflow-gpu.sh || fail "scripts/setup-tensorflow-gpu.sh could not build the GPU binding"
fi
echo "built: $(cat "$pkg/lora-mpt-build.stamp")"
# Where TensorFlow's dlopen finds the CUDA libraries: the build script's one answer (an ld.so.conf
# entry as root or in the image; otherwise folders for LD_LIBRARY_PATH).
cuda_path="$(bash scripts/setup-tensorflow-gpu.sh --register-cuda-libs)" || fail "registering the CUDA libraries"
if [ -n "$cuda_path" ]; then
  export LD_LIBRARY_PATH="$cuda_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
fi

echo "== lora-mpt gpu-check (TensorFlow's own log: $tflog)"
status=0
TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=execute=1,gpu_device=1 node bin/lora-mpt.mjs gpu-check "$@" 2>"$tflog" ||
  status=$?
grep -E "Created device|rror" "$tflog" | head -20

echo "== where each MatMul kernel ran (TensorFlow's execute log: op, device)"
grep -oE "Executing op [^ ]*MatMul[^ ]* in device [^ ]+" "$tflog" | sed 's/^Executing op //' | sort | uniq -c
if grep -qE "Executing op [^ ]*MatMul[^ ]* in device [^ ]*CPU" "$tflog"; then
  echo "gpu-check: a MatMul kernel ran on the CPU"
  status=1
fi
grep -qE "Executing op [^ ]*MatMul[^ ]* in device [^ ]*GPU:0" "$tflog" || {
  echo "gpu-check: no MatMul kernel ran on GPU:0"
  status=1
}
[ "$status" = 0 ] || fail "see above"

if [ -d test/model ] && [ -d bench ]; then
  echo "== test/model on the GPU (one file at a time: scripts/run-tests.mjs)"
  npm test -- test/model 2>&1 | grep -E "^(✔|✖|﹣)|ℹ (tests|pass|fail|skipped)|\[tensorflow\] max rel|rror"
  echo "== bench train-step (tensorflow rows are the GPU)"
  npm run bench -- train-step
  # MPT-7B at full size writes a 13.3 GB random checkpoint first (minutes): only when asked.
  if [ "${GPU_CHECK_MPT7B:-0}" = 1 ]; then
    echo "== bench mpt7b (1x256, 2 steps)"
    LORA_MPT_BENCH_MPT7B_RUNS=1x256:2 npm run bench -- mpt7b
  else
    echo "== mpt7b: skipped (GPU_CHECK_MPT7B=1 runs npm run bench -- mpt7b; it needs ~16 GB of disk and minutes)"
  fi
fi
echo "gpu-check: passed (log: $log)"

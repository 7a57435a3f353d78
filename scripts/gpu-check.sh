#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (a driver for CUDA 12.3+, and PyPI + npm within
# reach): builds the GPU backend from registries (scripts/setup-tensorflow.sh --gpu: the CUDA-enabled
# tensorflow 2.16.2 wheel + tensorflow[and-cuda]'s nvidia-* packages), proves TensorFlow runs on the
# GPU (its device log, the binding's answer, the process's GPU memory, a matmul no CPU reaches), runs
# test/model on it and the train-step benchmark in f32, and prints GFLOP/s against the GPU's f32 peak.
# CI has no GPU: run it by hand, `bash scripts/gpu-check.sh 2>&1 | tee gpu-check.log`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
export LORA_MPT_REQUIRE_TENSORFLOW=1 # a backend that does not build or load is a failure here
export NVIDIA_TF32_OVERRIDE=0        # f32 means f32: no TF32 tensor cores for float32 matmuls

echo "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
# Dense f32 (non-tensor-core) peaks from the vendors' data sheets, TFLOP/s.
case "$gpu" in
*H200* | *H100*SXM* | *H100\ 80GB\ HBM3*) peak=67 ;;
*H100*) peak=51 ;;
*A100*) peak=19.5 ;;
*L40S*) peak=91.6 ;;
*L4*) peak=30.3 ;;
*A10*) peak=31.2 ;;
*V100*) peak=15.7 ;;
*T4*) peak=8.1 ;;
*) peak=0 ;;
esac

echo "== build"
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/setup-tensorflow.sh # the CPU backend as well: the loader falls back to it
bash scripts/setup-tensorflow.sh --gpu

echo "== device: TensorFlow's own log, the binding, GPU memory of this process, f32 matmul rate"
probe='const tf = require("@tensorflow/tfjs-node-gpu");
const b = tf.backend();
console.log(`TF_Version ${b.binding.TF_Version}; isUsingGpuDevice ${b.isUsingGpuDevice}`);
if (!b.isUsingGpuDevice) process.exit(1);
const n = 8192, a = tf.randomNormal([n, n]), w = tf.randomNormal([n, n]);
tf.matMul(a, w).dataSync();
const ms = [];
for (let i = 0; i < 5; i++) { const t0 = performance.now(); tf.matMul(a, w).dataSync(); ms.push(performance.now() - t0); }
ms.sort((x, y) => x - y);
const tflops = (2 * n ** 3) / (ms[2] * 1e9);
console.log(`matmul ${n}x${n} f32: ${tflops.toFixed(1)} TFLOP/s (median of 5, incl. the read-back)` +
  (Number(process.argv[1]) > 0 ? `, ${((100 * tflops) / Number(process.argv[1])).toFixed(0)}% of the ${process.argv[1]} TFLOP/s f32 peak` : ""));
const used = require("child_process").execSync(`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader`).toString();
const mine = used.split("\n").find((l) => l.startsWith(`${process.pid},`));
console.log(`GPU memory of this process: ${mine ? mine.split(",")[1].trim() : "none listed"}`);
if (!mine) process.exit(1);'
TF_CPP_MIN_LOG_LEVEL=0 node -e "$probe" "$peak" 2>&1 | grep -E "Created device|TF_Version|matmul|GPU memory|rror"

echo "== test/model on the GPU (tensorflow suites load tfjs-node-gpu first)"
npm test -- test/model 2>&1 | grep -E "^(✔|✖|﹣)|ℹ (tests|pass|fail|skipped)|\[tensorflow\] max rel|rror"

echo "== bench train-step (tensorflow rows are the GPU; f32 peak ${peak} TFLOP/s)"
npm run bench -- train-step
# MPT-7B at full size writes a 13.3 GB random checkpoint first (minutes) and loads it (~2 min on the
# CPU): past what one 15-minute device loan leaves after the steps above, so it runs only when asked.
if [ "${GPU_CHECK_MPT7B:-0}" = 1 ]; then
  echo "== bench mpt7b (1x256, 2 steps)"
  LORA_MPT_BENCH_MPT7B_RUNS=1x256:2 npm run bench -- mpt7b
else
  echo "== mpt7b: skipped (GPU_CHECK_MPT7B=1 runs npm run bench -- mpt7b; it needs ~16 GB of disk and minutes)"
fi

// The peak FLOP/s MFU divides by. On a GPU: the vendor's dense figure for the precision our float32
// matmuls run at — FP32 by default (lora-mpt turns TF32 off: NVIDIA_TF32_OVERRIDE=0, as PyTorch's
// default and the 1e-5 equivalence criterion assume), the TF32 tensor-core figure when LORA_MPT_TF32=1
// turns it on (Ampere and newer); looked up by the device name. On a CPU there is no honest datasheet
// figure for a shared, throttled core, so the peak is measured: the best rate of a plain matmul on
// the active backend, as bench/train-step.ts does.
import * as tf from '@tensorflow/tfjs-core';

export { GPU_PEAKS, type GpuPeak, gpuPeakFor } from './gpu-peaks.ts';

/** Whether the active TensorFlow.js backend computes on a GPU (tfjs-node-gpu with a CUDA device). */
export function backendUsesGpu(): boolean {
  return (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
}

/**
 * The best FLOP/s of `rounds` plain [1024,512]@[512,2048] matmuls on the active backend, after one
 * warm-up (XNNPACK and TensorFlow pack or plan on the first call). Takes about a second on one core.
 */
export function measureMatmulPeak(rounds = 5): number {
  const a = tf.randomNormal([1024, 512]);
  const w = tf.randomNormal([512, 2048]);
  let best = 0;
  try {
    for (let i = 0; i <= rounds; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, w);
      c.dataSync();
      const ms = performance.now() - t0;
      c.dispose();
      if (i > 0) best = Math.max(best, (2 * 1024 * 512 * 2048) / (ms / 1000));
    }
  } finally {
    tf.dispose([a, w]);
  }
  return best;
}

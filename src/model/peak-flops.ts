// The peak FLOP/s MFU divides by. On a GPU: the vendor's dense figure for the precision our float32
// matmuls run at — FP32 by default (lora-mpt turns TF32 off: NVIDIA_TF32_OVERRIDE=0, as PyTorch's
// default and the 1e-5 equivalence criterion assume), the TF32 tensor-core figure when LORA_MPT_TF32=1
// turns it on (Ampere and newer); looked up by the device name. On a CPU there is no honest datasheet
// figure for a shared, throttled core, so the peak is measured: the best rate of a plain matmul on
// the active backend, as bench/train-step.ts does.
import * as tf from '@tensorflow/tfjs-core';

export interface GpuPeak {
  /** Tested against the device name nvidia-smi reports, first match wins. */
  readonly match: RegExp;
  /** Dense FP32 (CUDA cores), TFLOP/s. */
  readonly fp32: number;
  /** Dense TF32 tensor cores, TFLOP/s; absent before Ampere (no TF32). */
  readonly tf32?: number;
}

/** Dense (no 2:4 sparsity) peaks from NVIDIA's datasheets, TFLOP/s. */
export const GPU_PEAKS: readonly GpuPeak[] = [
  { match: /H200/i, fp32: 67, tf32: 494.7 },
  { match: /H100.*PCIe/i, fp32: 51, tf32: 378 },
  { match: /H100/i, fp32: 67, tf32: 494.7 },
  { match: /A100/i, fp32: 19.5, tf32: 156 },
  { match: /L40S/i, fp32: 91.6, tf32: 183 },
  { match: /L40\b/i, fp32: 90.5, tf32: 90.5 },
  { match: /\bL4\b/i, fp32: 30.3, tf32: 60 },
  { match: /\bA10\b/i, fp32: 31.2, tf32: 62.5 },
  { match: /\bA40\b/i, fp32: 37.4, tf32: 74.8 },
  { match: /RTX 4090/i, fp32: 82.6, tf32: 82.6 },
  { match: /V100/i, fp32: 15.7 },
  { match: /\bT4\b/i, fp32: 8.1 },
];

/** The table's peak for a device name at the precision float32 matmuls run at, or undefined. */
export function gpuPeakFor(
  deviceName: string,
  tf32: boolean,
): { readonly tflops: number; readonly precision: 'TF32' | 'FP32' } | undefined {
  const p = GPU_PEAKS.find((x) => x.match.test(deviceName));
  if (p === undefined) return undefined;
  return tf32 && p.tf32 !== undefined
    ? { tflops: p.tf32, precision: 'TF32' }
    : { tflops: p.fp32, precision: 'FP32' };
}

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

// The peak FLOP/s MFU divides by. On a GPU: the vendor's dense figure for the precision our float32
// matmuls run at (TensorFlow runs them as TF32 on Ampere and newer; plain FP32 before), looked up by
// the device name. On a CPU there is no honest datasheet figure for a shared, throttled core, so the
// peak is measured: the best rate of a plain matmul on the active backend, as bench/train-step.ts does.
import * as tf from '@tensorflow/tfjs-core';

export interface GpuPeak {
  /** Tested against the device name nvidia-smi reports, first match wins. */
  readonly match: RegExp;
  readonly tflops: number;
  readonly precision: 'TF32' | 'FP32';
}

/** Dense (no 2:4 sparsity) peaks from NVIDIA's datasheets, TFLOP/s. */
export const GPU_PEAKS: readonly GpuPeak[] = [
  { match: /H200/i, tflops: 494.7, precision: 'TF32' },
  { match: /H100.*PCIe/i, tflops: 378, precision: 'TF32' },
  { match: /H100/i, tflops: 494.7, precision: 'TF32' },
  { match: /A100/i, tflops: 156, precision: 'TF32' },
  { match: /L40S/i, tflops: 183, precision: 'TF32' },
  { match: /L40\b/i, tflops: 90.5, precision: 'TF32' },
  { match: /\bL4\b/i, tflops: 60, precision: 'TF32' },
  { match: /\bA10\b/i, tflops: 62.5, precision: 'TF32' },
  { match: /\bA40\b/i, tflops: 74.8, precision: 'TF32' },
  { match: /RTX 4090/i, tflops: 82.6, precision: 'TF32' },
  { match: /V100/i, tflops: 15.7, precision: 'FP32' },
  { match: /\bT4\b/i, tflops: 8.1, precision: 'FP32' },
];

/** The table's peak for a device name, or undefined when the table does not know it. */
export function gpuPeakFor(deviceName: string): GpuPeak | undefined {
  return GPU_PEAKS.find((p) => p.match.test(deviceName));
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

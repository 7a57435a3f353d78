// The datasheet peaks of known GPUs, pure data (no TensorFlow.js): the worker's MFU denominator
// (src/model/peak-flops.ts) and the synthetic backend's GPU profiles (gpu-profiles.ts) read the same
// table, so a modelled GPU and a measured one are divided by the same figure.

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

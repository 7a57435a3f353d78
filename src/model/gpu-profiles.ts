// A GPU the synthetic backend models (`--gpu_profile`): the datasheet peak of the precision lora-mpt's
// float32 matmuls would run at (gpu-peaks.ts: FP32, or TF32 with LORA_MPT_TF32=1) and an assumed MFU.
// A micro-batch then takes   seconds = FLOPs / (peak × MFU)   with FLOPs from flops.ts, the count
// behind the real workers' lora_mpt_mfu_ratio, so a rehearsal and a real run are measured alike.
import { gpuPeakFor } from './gpu-peaks.ts';

/** Profile names and the device name nvidia-smi would report (looked up in GPU_PEAKS). */
export const GPU_PROFILES = {
  'a100-40gb': 'NVIDIA A100-SXM4-40GB',
  'a100-80gb': 'NVIDIA A100-SXM4-80GB',
  'h100-80gb': 'NVIDIA H100 80GB HBM3',
  'h100-pcie': 'NVIDIA H100 PCIe',
  h200: 'NVIDIA H200',
  l40s: 'NVIDIA L40S',
  l4: 'NVIDIA L4',
  a10: 'NVIDIA A10',
  v100: 'Tesla V100-SXM2-32GB',
  t4: 'Tesla T4',
} as const;

export type GpuProfileName = keyof typeof GPU_PROFILES;

/** `--gpu_profile none`: no modelled time, every micro-batch as fast as the host makes it (tests). */
export const NO_GPU_PROFILE = 'none';

/** What a well-tuned float32 LoRA step reaches on these GPUs' CUDA cores; overridden by --gpu_mfu. */
export const DEFAULT_MFU = 0.5;

export interface GpuProfile {
  readonly name: GpuProfileName;
  readonly device: string;
  readonly peakFlopsPerSecond: number;
  readonly precision: 'FP32' | 'TF32' | 'given';
  readonly mfu: number;
}

export function isGpuProfileName(name: string): name is GpuProfileName {
  return Object.hasOwn(GPU_PROFILES, name);
}

/**
 * The profile `name` (a key of GPU_PROFILES); `peakTflops` replaces the datasheet peak, `tf32` picks
 * the TF32 figure (as LORA_MPT_TF32=1 does for real workers). Throws naming a bad name or MFU.
 */
export function gpuProfile(
  name: string,
  o: { readonly mfu?: number; readonly peakTflops?: number; readonly tf32?: boolean } = {},
): GpuProfile {
  if (!isGpuProfileName(name)) {
    throw new Error(
      `GPU profile "${name}" is unknown: expected one of ${Object.keys(GPU_PROFILES).join(', ')} or ${NO_GPU_PROFILE}`,
    );
  }
  const mfu = o.mfu ?? DEFAULT_MFU;
  if (!(mfu > 0 && mfu <= 1)) throw new Error(`GPU profile ${name}: MFU ${mfu} is not in (0, 1]`);
  const device = GPU_PROFILES[name];
  const peak = gpuPeakFor(device, o.tf32 ?? false);
  if (peak === undefined) throw new Error(`GPU profile ${name}: no datasheet peak for ${device}`);
  const given = o.peakTflops !== undefined;
  return {
    name,
    device,
    peakFlopsPerSecond: (given ? (o.peakTflops as number) : peak.tflops) * 1e12,
    precision: given ? 'given' : peak.precision,
    mfu,
  };
}

/** Seconds the profile's GPU takes for `flops` model FLOPs. */
export function modelledSeconds(flops: number, p: Pick<GpuProfile, 'peakFlopsPerSecond' | 'mfu'>): number {
  return flops / (p.peakFlopsPerSecond * p.mfu);
}

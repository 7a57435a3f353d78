// The flags of `--backend synthetic` (finetune, worker): which GPU a micro-batch's time is modelled on
// and the MFU assumed for it, resolved once into a GpuProfile (src/model/gpu-profiles.ts).
import { isSyntheticModel, namedConfigNames } from '../families/synthetic-model.ts';
import type { BackendMemoryNow } from '../model/backend-memory.ts';
import {
  DEFAULT_MFU,
  GPU_PROFILES,
  type GpuProfile,
  gpuProfile,
  NO_GPU_PROFILE,
} from '../model/gpu-profiles.ts';
import { type FlagSpecs, UsageError } from './flags.ts';
import type { Peak } from './peak-flops.ts';

export const syntheticFlags = {
  gpu_profile: {
    kind: 'string',
    default: 'a100-80gb',
    help:
      `--backend synthetic: the GPU whose time each micro-batch takes (${Object.keys(GPU_PROFILES).join(', ')}), ` +
      `or ${NO_GPU_PROFILE} (as fast as this host goes; tests). Time = the micro-batch's model FLOPs (the count behind MFU) / (peak x --gpu_mfu); ` +
      'the peak is the dense FP32 datasheet figure (TF32 with LORA_MPT_TF32=1), or --peak_tflops.',
  },
  gpu_mfu: {
    kind: 'float',
    default: DEFAULT_MFU,
    min: 0.001,
    help: '--backend synthetic: the MFU the modelled GPU is assumed to reach, in (0, 1].',
  },
} as const satisfies FlagSpecs;

/** The modelled GPU of `--backend synthetic`, or null for --gpu_profile none. */
export function syntheticProfileOf(
  f: { readonly gpu_profile: string; readonly gpu_mfu: number; readonly peak_tflops?: number | undefined },
  env: NodeJS.ProcessEnv,
): GpuProfile | null {
  if (f.gpu_profile === NO_GPU_PROFILE) return null;
  try {
    return gpuProfile(f.gpu_profile, {
      mfu: f.gpu_mfu,
      ...(f.peak_tflops !== undefined ? { peakTflops: f.peak_tflops } : {}),
      tf32: env.LORA_MPT_TF32 === '1',
    });
  } catch (err) {
    throw new UsageError(`--gpu_profile ${f.gpu_profile} --gpu_mfu ${f.gpu_mfu}: ${(err as Error).message}`);
  }
}

/**
 * A synthetic base model runs on the synthetic backend only, and the synthetic backend on nothing
 * else: a real model cannot take fake gradients, and fake compute has no weights to fingerprint.
 * Returns what is wrong (for a usage error, or a worker's refusal), or undefined.
 */
export function backendModelMismatch(backend: string, baseModel: string): string | undefined {
  const synthetic = backend === 'synthetic';
  if (synthetic === isSyntheticModel(baseModel)) return undefined;
  return synthetic
    ? `--backend synthetic runs no model: the base model must be synthetic:NAME (${namedConfigNames().join(', ')}) or synthetic:PATH (a config.json or its directory), not ${baseModel}`
    : `base model ${baseModel} is described, not loaded: it runs on --backend synthetic only (this process has --backend ${backend})`;
}

/** A synthetic worker holds no tensors. */
export const NO_TENSORS: BackendMemoryNow = { tensors: 0, tensorBytes: 0 };

/** The backend a synthetic worker names to the coordinator and in its log. */
export function syntheticBackend(profile: GpuProfile | null): { name: 'synthetic'; summary: string } {
  const gpu = profile === null ? 'no modelled GPU time' : `modelled ${profile.name}, MFU ${profile.mfu}`;
  return { name: 'synthetic', summary: `backend synthetic (no model, no TensorFlow.js; ${gpu})` };
}

/** The peak a synthetic worker's MFU divides by: the modelled GPU's, so its MFU reads the assumed
 * one when the host keeps up; none without a profile (no modelled time, no MFU). */
export function syntheticPeak(profile: GpuProfile | null, peakTflops: number | undefined): Peak | null {
  if (profile === null) return null;
  return {
    flopsPerSecond: profile.peakFlopsPerSecond,
    source: peakTflops === undefined ? 'table' : 'flag',
    text: `${profile.peakFlopsPerSecond / 1e12} TFLOP/s (modelled ${profile.name}, ${profile.precision})`,
  };
}

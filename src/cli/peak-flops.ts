// Which peak FLOP/s a worker's MFU is measured against: --peak_tflops when given; on a GPU the
// datasheet figure for the device nvidia-smi names (src/model/peak-flops.ts has the table); on a
// CPU (or an unknown GPU) the best rate of a plain matmul measured on this backend at start.
import { spawnSync } from 'node:child_process';
import { backendUsesGpu, GPU_PEAKS, gpuPeakFor, measureMatmulPeak } from '../model/peak-flops.ts';
import type { FlagSpec } from './flags.ts';

export const peakTflopsFlag = {
  kind: 'float',
  min: 0.001,
  help:
    "Peak TFLOP/s of this worker's device, the denominator of lora_mpt_mfu_ratio. Default: on a GPU the dense datasheet figure for the device nvidia-smi names (FP32, as lora-mpt runs float32 matmuls; the TF32 figure with LORA_MPT_TF32=1) for " +
    `${GPU_PEAKS.length} known models (H200, H100, A100, L40S, L4, ...); elsewhere the best plain-matmul rate measured on this backend at start (about a second). With --backend synthetic: replaces the modelled GPU's peak (--gpu_profile).`,
} as const satisfies FlagSpec;

export interface Peak {
  readonly flopsPerSecond: number;
  readonly source: 'flag' | 'table' | 'measured';
  /** For the log: where the figure comes from. */
  readonly text: string;
}

/** The device name of the first GPU this process sees, or undefined (no nvidia-smi, no GPU). */
function gpuName(env: NodeJS.ProcessEnv): string | undefined {
  const visible = env.CUDA_VISIBLE_DEVICES?.split(',')[0]?.trim();
  const args = ['--query-gpu=name', '--format=csv,noheader'];
  if (visible && /^\d+$/.test(visible)) args.push('-i', visible);
  const r = spawnSync('nvidia-smi', args, { encoding: 'utf8', timeout: 10_000 });
  const name = r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
  return name ? name : undefined;
}

export function resolvePeak(peakTflops: number | undefined, env: NodeJS.ProcessEnv): Peak {
  if (peakTflops !== undefined) {
    return {
      flopsPerSecond: peakTflops * 1e12,
      source: 'flag',
      text: `${peakTflops} TFLOP/s (--peak_tflops)`,
    };
  }
  const name = backendUsesGpu() ? gpuName(env) : undefined;
  const known = name === undefined ? undefined : gpuPeakFor(name, env.LORA_MPT_TF32 === '1');
  if (name !== undefined && known) {
    return {
      flopsPerSecond: known.tflops * 1e12,
      source: 'table',
      text: `${known.tflops} TFLOP/s (${name}, dense ${known.precision} datasheet figure)`,
    };
  }
  const measured = measureMatmulPeak();
  const why = name === undefined ? '' : `; ${name} is not in the table: pass --peak_tflops`;
  return {
    flopsPerSecond: measured,
    source: 'measured',
    text: `${(measured / 1e9).toFixed(1)} GFLOP/s (best plain matmul measured on this backend${why})`,
  };
}

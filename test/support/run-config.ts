// The run config of worker unit tests that deal no real model: a 1-rank LoRA spec, shard-owner.
import { LORA_DEFAULTS } from '../../src/checkpoint/lora-spec.ts';
import type { RunConfig } from '../../src/train/run-config.ts';

export function testRunConfig(runId: string): RunConfig {
  return {
    runId,
    baseModel: 'unused',
    lora: { ...LORA_DEFAULTS, r: 1, loraAlpha: 1, loraDropout: 0 },
    seed: 1,
    maxGradNorm: 1,
    gradientCheckpointing: false,
    load8bit: false,
    allReduceAlgorithm: 'shard-owner',
    allReduceEncoding: 'f32',
    allReduceTimeoutMs: 5000,
    allReduceFrameBytes: 0,
  };
}

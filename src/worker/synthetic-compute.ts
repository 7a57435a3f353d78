// The synthetic backend (`--backend synthetic`, docs/scale.md): a MicroBatchCompute with no model and
// no TensorFlow.js. For the run's config (config.json only) it returns a gradient of exactly the
// adapter's size, deterministic from (run seed, micro-batch id), and takes the time the modelled GPU
// would take:   seconds = FLOPs(micro-batch) / (peak × MFU)   (src/model/flops.ts, gpu-profiles.ts).
//
// A worker reports the gradient of the SUM of token losses, so values scale with the supervised token
// count: g = 1e-3 · tokens · noise, which after the division by the step's tokens gives AdamW ~1e-3
// per value, as a real adapter sees. The noise is one seeded table per run, read from an offset the
// micro-batch id chooses: distinct gradients for a copy's cost, not a generator call per value.
import { setTimeout as sleep } from 'node:timers/promises';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import type { MicroBatch } from '../data/micro-batch.ts';
import { supervisedTokens } from '../data/micro-batch.ts';
import { Rng } from '../data/rng.ts';
import { openSyntheticModel } from '../families/synthetic-model.ts';
import { type FlopsModel, flopsModelOf, forwardFlops, trainStepFlops } from '../model/flops.ts';
import { type GpuProfile, modelledSeconds } from '../model/gpu-profiles.ts';
import { adapterLayout } from '../train/adapter-layout.ts';
import type { ParamLayout } from '../train/param-layout.ts';
import type { LoraRunSettings, MicroBatchCompute } from './model-compute.ts';

/** Gradient values per supervised token (see above). */
export const GRADIENT_SCALE = 1e-3;

// Independent streams of the keyed Rng: (seed, stream) or (seed, stream, micro-batch id).
const NOISE_STREAM = 0x5e_0001;
const OFFSET_STREAM = 0x5e_0002;
const TRAIN_LOSS_STREAM = 0x5e_0003;
const EVAL_LOSS_STREAM = 0x5e_0004;

// One table per process for the last (seed, size): many workers of one run in one process share it.
let noiseCache: { readonly key: string; readonly table: Float32Array } | undefined;

/** `size` uniform values in [-1, 1) drawn from (seed, NOISE_STREAM). */
export function noiseTable(seed: number, size: number): Float32Array {
  const key = `${seed}:${size}`;
  if (noiseCache?.key === key) return noiseCache.table;
  const rng = new Rng(seed, NOISE_STREAM);
  const table = new Float32Array(size);
  for (let i = 0; i < size; i++) table[i] = rng.nextU32() / 2 ** 31 - 1;
  noiseCache = { key, table };
  return table;
}

/** The gradient (of the sum of `tokens` token losses) of micro-batch `id`: a new array. */
export function syntheticGradient(seed: number, size: number, id: number, tokens: number): Float32Array {
  const noise = noiseTable(seed, size);
  const grad = new Float32Array(size);
  if (size === 0) return grad;
  const offset = new Rng(seed, OFFSET_STREAM, id).below(size);
  const scale = GRADIENT_SCALE * tokens;
  for (let i = 0, j = offset; i < size; i++, j = j + 1 === size ? 0 : j + 1) grad[i] = scale * noise[j]!;
  return grad;
}

/** A loss sum of `tokens` tokens, each in [1.5, 2.5): deterministic per (seed, stream, id). */
function lossSum(seed: number, stream: number, id: number, tokens: number): number {
  return tokens * (1.5 + new Rng(seed, stream, id).nextU32() / 2 ** 32);
}

export class SyntheticCompute implements MicroBatchCompute {
  private readonly wait: (ms: number) => Promise<unknown>;
  private readonly now: () => number;

  /**
   * `profile` null: no modelled time (`--gpu_profile none`). A modelled duration passes on a timer
   * (`clock.wait`), so the thread stays free for heartbeats and the other workers of the process.
   */
  constructor(
    readonly layout: ParamLayout,
    readonly flops: FlopsModel,
    private readonly seed: number,
    private readonly profile: Pick<GpuProfile, 'peakFlopsPerSecond' | 'mfu'> | null,
    clock: { readonly wait?: (ms: number) => Promise<unknown>; readonly now?: () => number } = {},
  ) {
    this.wait = clock.wait ?? ((ms) => sleep(ms));
    this.now = clock.now ?? (() => performance.now());
  }

  setAdapter(params: Float32Array): void {
    if (params.length !== this.layout.size) {
      throw new Error(`synthetic compute: adapter of ${params.length} values, layout ${this.layout.size}`);
    }
  }

  /** Seconds the modelled GPU takes for a micro-batch of `flops` (0 without a profile). */
  modelledSeconds(flops: number): number {
    return this.profile === null ? 0 : modelledSeconds(flops, this.profile);
  }

  async train(mb: MicroBatch): Promise<{ lossSum: number; tokens: number; grad: Float32Array }> {
    const started = this.now();
    const tokens = supervisedTokens(mb);
    const grad = syntheticGradient(this.seed, this.layout.size, mb.id, tokens);
    const flops = trainStepFlops(this.flops, { rows: mb.rows, seqLen: mb.seqLen, logitRows: tokens });
    await this.until(started, flops);
    return { lossSum: lossSum(this.seed, TRAIN_LOSS_STREAM, mb.id, tokens), tokens, grad };
  }

  async evaluate(mb: MicroBatch): Promise<{ lossSum: number; tokens: number }> {
    const started = this.now();
    const tokens = supervisedTokens(mb);
    const flops = forwardFlops(this.flops, { rows: mb.rows, seqLen: mb.seqLen, logitRows: tokens });
    await this.until(started, flops);
    return { lossSum: lossSum(this.seed, EVAL_LOSS_STREAM, mb.id, tokens), tokens };
  }

  /** The modelled duration counts from the start: the host's own work is part of it, not added. */
  private async until(started: number, flops: number): Promise<void> {
    const left = this.modelledSeconds(flops) * 1000 - (this.now() - started);
    if (left > 0) await this.wait(left);
  }
}

/** What a worker or finetune needs of a loaded synthetic backend (as of a loaded model). */
export interface LoadedSynthetic {
  readonly compute: SyntheticCompute;
  readonly layout: ParamLayout;
  readonly fingerprint: string;
  readonly backend: 'synthetic';
  readonly backendSummary: string;
  /** The modelled model's parameters (every weight of its config), never allocated. */
  readonly parameters: number;
  readonly flops: FlopsModel;
  readonly memoryNote: null;
}

/** Reads `baseModel`'s config (synthetic:..., src/families/synthetic-model.ts) and lays out its adapter. */
export async function loadSyntheticCompute(
  baseModel: string,
  s: LoraRunSettings,
  profile: GpuProfile | null,
): Promise<LoadedSynthetic> {
  const model = await openSyntheticModel(baseModel);
  const { layout, targets } = adapterLayout(model.config, s.lora);
  const flops = flopsModelOf(model.config, s.lora.r, targets, {
    variant: loraVariantOf(s.lora),
    dropout: s.lora.loraDropout > 0,
  });
  let parameters = 0;
  for (const shape of model.config.arch.weightShapes().values())
    parameters += shape.reduce((a, b) => a * b, 1);
  const gpu =
    profile === null
      ? 'no modelled GPU time (--gpu_profile none)'
      : `modelled ${profile.name}: ${(profile.peakFlopsPerSecond / 1e12).toFixed(1)} TFLOP/s ${profile.precision} x MFU ${profile.mfu}`;
  return {
    compute: new SyntheticCompute(layout, flops, s.seed, profile),
    layout,
    fingerprint: model.fingerprint,
    backend: 'synthetic',
    backendSummary: `backend synthetic (no model, no TensorFlow.js; ${model.source}; ${gpu})`,
    parameters,
    flops,
    memoryNote: null,
  };
}

// The data plan (DESIGN §2.1): which examples, in which micro-batches, every optimizer step of the
// run consumes. A pure function of (examples, flags, seed): any step's micro-batches can be rebuilt
// on resume or by another process, bit for bit. Policies (docs/data.md) follow HF Trainer 5.x.
import { type CollateOptions, collate, type MicroBatch } from './micro-batch.ts';
import { Rng } from './rng.ts';
import type { TokenizedExample } from './tokenize-example.ts';

/** RNG stream tag of the per-epoch shuffle (the split uses another). */
const SHUFFLE_STREAM = 0x5f1;

export interface DataPlanOptions extends CollateOptions {
  readonly examples: readonly TokenizedExample[];
  /** Examples per optimizer step; gradient accumulation = floor(batchSize / microBatchSize). */
  readonly batchSize: number;
  /** Rows per micro-batch. */
  readonly microBatchSize: number;
  /** May be fractional (HF: ceil(numEpochs * stepsPerEpoch) steps). Ignored when maxSteps > 0. */
  readonly numEpochs: number;
  readonly seed: number;
  readonly groupByLength: boolean;
  /** > 0: run exactly this many steps, cycling through epochs as needed. */
  readonly maxSteps?: number;
}

export interface DataPlan {
  readonly numExamples: number;
  readonly gradientAccumulationSteps: number;
  /** Examples in every step but possibly the last of an epoch: gradAccum * microBatchSize. */
  readonly effectiveBatchSize: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** The epoch (0-based) step `step` belongs to. */
  epochOf(step: number): number;
  /** The order examples are visited in an epoch (a permutation of 0..numExamples-1). */
  epochOrder(epoch: number): readonly number[];
  /** The micro-batches of optimizer step `step` (0-based), in order. Pure; rebuildable. */
  microBatchesForStep(step: number): readonly MicroBatch[];
}

export function buildDataPlan(o: DataPlanOptions): DataPlan {
  const n = o.examples.length;
  const micro = o.microBatchSize;
  if (n === 0)
    throw new Error('data plan: no training examples (is the dataset empty, or all in val_set_size?)');
  if (!Number.isInteger(micro) || micro < 1) throw new Error(`micro_batch_size ${micro} must be >= 1`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < micro)
    throw new Error(`batch_size ${o.batchSize} must be a whole number >= micro_batch_size ${micro}`);
  const gradAccum = Math.floor(o.batchSize / micro);
  const perStep = gradAccum * micro;
  // HF Trainer 5.x: ceil(n / micro) micro-batches per epoch, ceil(that / gradAccum) update steps;
  // the last step of an epoch takes the remainder, so every example is seen once per epoch.
  const stepsPerEpoch = Math.ceil(Math.ceil(n / micro) / gradAccum);
  const maxSteps = o.maxSteps ?? -1;
  if (maxSteps <= 0 && !(o.numEpochs > 0)) throw new Error(`num_epochs ${o.numEpochs} must be > 0`);
  const totalSteps = maxSteps > 0 ? maxSteps : Math.ceil(o.numEpochs * stepsPerEpoch);
  const lengths = o.examples.map((e) => e.inputIds.length);

  const cache = new Map<number, readonly number[]>();
  const epochOrder = (epoch: number): readonly number[] => {
    let order = cache.get(epoch);
    if (order === undefined) {
      const perm = new Rng(o.seed, SHUFFLE_STREAM, epoch).permutation(n);
      order = o.groupByLength ? groupByLength(perm, lengths, megabatchSize(n, micro)) : perm;
      if (cache.size >= 2) cache.delete(cache.keys().next().value!);
      cache.set(epoch, order);
    }
    return order;
  };
  const checkStep = (step: number) => {
    if (!Number.isInteger(step) || step < 0 || step >= totalSteps)
      throw new Error(`step ${step} is outside the plan (0..${totalSteps - 1})`);
  };

  return {
    numExamples: n,
    gradientAccumulationSteps: gradAccum,
    effectiveBatchSize: perStep,
    stepsPerEpoch,
    totalSteps,
    epochOf: (step) => {
      checkStep(step);
      return Math.floor(step / stepsPerEpoch);
    },
    epochOrder,
    microBatchesForStep: (step) => {
      checkStep(step);
      const order = epochOrder(Math.floor(step / stepsPerEpoch));
      const start = (step % stepsPerEpoch) * perStep;
      const end = Math.min(start + perStep, n);
      const out: MicroBatch[] = [];
      for (let j = 0, at = start; at < end; j++, at += micro) {
        const rows = order.slice(at, Math.min(at + micro, end));
        out.push(collate(o.examples, rows, { id: step * gradAccum + j, step }, o));
      }
      return out;
    },
  };
}

/**
 * HF LengthGroupedSampler's megabatch: mega_batch_mult = min(n // (4 * micro), 50), at least 1,
 * times the micro-batch size (200 examples for Alpaca at micro-batch 4).
 */
export function megabatchSize(n: number, microBatchSize: number): number {
  return Math.max(1, Math.min(Math.floor(n / (4 * microBatchSize)), 50)) * microBatchSize;
}

/**
 * HF's get_length_grouped_indices: cut the shuffled order into megabatches, sort each by length,
 * longest first (stable), then swap the longest example of the epoch to the very front so an
 * out-of-memory shows at the first step rather than hours in.
 */
export function groupByLength(
  perm: readonly number[],
  lengths: readonly number[],
  megabatch: number,
): number[] {
  const megabatches: number[][] = [];
  for (let i = 0; i < perm.length; i += megabatch)
    megabatches.push(perm.slice(i, i + megabatch).sort((a, b) => lengths[b]! - lengths[a]!));
  let maxIdx = 0;
  megabatches.forEach((m, i) => {
    if (lengths[m[0]!]! > lengths[megabatches[maxIdx]![0]!]!) maxIdx = i;
  });
  const first = megabatches[0]!;
  const longest = megabatches[maxIdx]!;
  [first[0], longest[0]] = [longest[0]!, first[0]!];
  return megabatches.flat();
}

/** The validation set as micro-batches, in dataset order (HF evaluates sequentially); step -1. */
export function buildEvalMicroBatches(
  examples: readonly TokenizedExample[],
  microBatchSize: number,
  o: CollateOptions = {},
): readonly MicroBatch[] {
  const out: MicroBatch[] = [];
  for (let at = 0, id = 0; at < examples.length; at += microBatchSize, id++) {
    const rows = Array.from({ length: Math.min(microBatchSize, examples.length - at) }, (_, k) => at + k);
    out.push(collate(examples, rows, { id, step: -1 }, o));
  }
  return out;
}

// The train/validation split of --val_set_size: N examples taken out at random, seeded (seed 42 as
// alpaca-lora's train_test_split). Draws from its own RNG stream, so it never depends on the shuffle.
import { Rng } from './rng.ts';

/** RNG stream tag of the split (the epoch shuffles use other tags). */
const SPLIT_STREAM = 0x5e1;

export interface Split {
  /** Indices into the dataset, ascending. */
  readonly train: readonly number[];
  /** Indices into the dataset, ascending. */
  readonly val: readonly number[];
}

/**
 * Takes `valSetSize` of `n` examples out for validation. The order within each part is ascending;
 * training order comes from the per-epoch shuffle. Not numpy's permutation: the same seed picks
 * other rows than HF datasets would (documented in docs/data.md).
 */
export function splitTrainVal(n: number, valSetSize: number, seed: number): Split {
  if (!Number.isInteger(valSetSize) || valSetSize < 0)
    throw new Error(`val_set_size ${valSetSize} must be a whole number >= 0`);
  if (valSetSize === 0) return { train: Array.from({ length: n }, (_, i) => i), val: [] };
  if (valSetSize >= n)
    throw new Error(
      `val_set_size ${valSetSize} leaves no training examples: the dataset has ${n}; use a smaller --val_set_size`,
    );
  const perm = new Rng(seed, SPLIT_STREAM).permutation(n);
  const byIndex = (a: number, b: number) => a - b;
  return { val: perm.slice(0, valSetSize).sort(byIndex), train: perm.slice(valSetSize).sort(byIndex) };
}

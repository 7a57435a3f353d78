// A frozen Linear y = x·Wᵀ, forward and closed-form backward (the input gradient; the frozen W never
// gets one), with an optional adapter: the LoRA variant of the run (src/checkpoint/lora-variants:
// plain LoRA's s·(drop(x)·Aᵀ)·Bᵀ, DoRA, ...) adds its term and its gradients given the frozen
// matmuls made here. In the plain-2d layout every matmul is a plain 2-D call; only [N,r] and [r,·]
// transposes.
import * as tf from '@tensorflow/tfjs-core';
import type {
  AdaptedLinear,
  FrozenLinear,
  FrozenRows,
  LinearGrads,
  LinearSaved,
} from '../checkpoint/lora-variants/types.ts';
import type { ComputeLayout } from './backend.ts';
import type { DenseWeights, LinearWeightSource } from './linear-weights.ts';
import { tidyResult } from './tidy.ts';

/** One target's adapter for the current step (src/model/mpt-model.ts makes it; null: no LoRA). */
export type LoraFactors = AdaptedLinear;
export type { LinearGrads, LinearSaved };

function mm(layout: ComputeLayout, a: tf.Tensor2D, b: tf.Tensor2D, ta: boolean, tb: boolean): tf.Tensor2D {
  if (layout === 'batched' || (!ta && !tb)) return tf.matMul(a, b, ta, tb);
  // wasm runs only untransposed 2-D matmuls fast; callers pass only small operands here.
  return tf.matMul(ta ? tf.transpose(a) : a, tb ? tf.transpose(b) : b);
}

/** x·Wᵀ, with int8 weights' row scales applied. The caller owns the result. */
function timesWt(w: DenseWeights, x: tf.Tensor2D): tf.Tensor2D {
  const raw: tf.Tensor2D = w.wt !== null ? tf.matMul(x, w.wt) : tf.matMul(x, w.w, false, true);
  return w.rowScale === null ? raw : (tf.mul(raw, w.rowScale) as tf.Tensor2D);
}

/** g·W (int8: (g·diag(scale))·Q). The caller owns the result. */
function timesW(w: DenseWeights, g: tf.Tensor2D): tf.Tensor2D {
  const scaled = w.rowScale === null ? g : (tf.mul(g, w.rowScale) as tf.Tensor2D);
  return tf.matMul(scaled, w.w);
}

function frozen(layout: ComputeLayout, w: DenseWeights): FrozenLinear {
  return {
    times: (x) => timesWt(w, x),
    timesTransposed: (g) => timesW(w, g),
    smallMatMul: (a, b, ta, tb) => mm(layout, a, b, ta, tb),
  };
}

/** W's rows of `source` for a variant's per-step statistics; int8 weights are converted only inside
 * withRows, for its span. */
export function frozenRows(source: LinearWeightSource): FrozenRows {
  const { inFeatures, outFeatures } = source;
  return {
    inFeatures,
    outFeatures,
    withRows<T>(fn: (rows: (start: number, count: number) => tf.Tensor2D) => T): T {
      const dense = source.acquire();
      try {
        return fn((start, count) => {
          const w = tf.slice(dense.w, [start, 0], [count, inFeatures]);
          if (dense.rowScale === null) return w;
          const sc = tf.reshape(tf.slice(dense.rowScale, [0, start], [1, count]), [count, 1]);
          return tf.mul(w, sc) as tf.Tensor2D;
        });
      } finally {
        source.release(dense);
      }
    },
  };
}

const NOTHING_SAVED: LinearSaved = { u: null, dropped: null, extra: [] };

/**
 * y = x·Wᵀ plus the adapter's term. `keep` is the dropout mask already scaled by 1/(1-p), or null.
 * The caller owns y and saved.
 */
export function linearForward(
  w: DenseWeights,
  x: tf.Tensor2D,
  lora: LoraFactors | null,
  keep: tf.Tensor2D | null,
): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } {
  return tidyResult((): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } => {
    const base = timesWt(w, x);
    if (lora === null) return { y: base, saved: NOTHING_SAVED };
    return lora.forward({ times: (input) => timesWt(w, input) }, x, base, keep);
  });
}

export function disposeLinearSaved(s: LinearSaved): void {
  s.u?.dispose();
  s.dropped?.dispose();
  for (const t of s.extra) t.dispose();
}

/**
 * From dy [N, out]: dx = dy·W without an adapter (only when needDx), else the adapter's dx and
 * gradients. `x` is the layer input used in the forward. The caller owns dx and the grads.
 */
export function linearBackward(
  layout: ComputeLayout,
  w: DenseWeights,
  dy: tf.Tensor2D,
  x: tf.Tensor2D | null,
  lora: LoraFactors | null,
  saved: LinearSaved | null,
  keep: tf.Tensor2D | null,
  needDx: boolean,
): { readonly dx: tf.Tensor2D | null; readonly grads: LinearGrads | null } {
  return tidyResult((): { readonly dx: tf.Tensor2D | null; readonly grads: LinearGrads | null } => {
    if (lora === null) return { dx: needDx ? timesW(w, dy) : null, grads: null };
    if (saved?.u == null) throw new Error('linearBackward: LoRA layer without saved forward state');
    const input = saved.dropped ?? x;
    if (input === null) throw new Error('linearBackward: LoRA layer needs its forward input');
    return lora.backward(frozen(layout, w), dy, input, saved, keep, needDx);
  });
}

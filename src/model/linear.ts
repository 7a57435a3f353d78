// A frozen Linear y = x·Wᵀ with an optional LoRA branch s·(drop(x)·Aᵀ)·Bᵀ, forward and closed-form
// backward (input gradient plus LoRA gradients only; the frozen W never gets one). ΔW = B·A is never
// formed. In the plain-2d layout every matmul is a plain 2-D call; only [N,r] and [r,·] transposes.
// DoRA (PEFT 0.21's DoraLinearLayer): with c = m / n, n = ‖W + s·B·A‖ per output row held constant
// (no gradient through it), y = x·Wᵀ + (c−1)⊙(x_d·Wᵀ) + c⊙(s·x_d·Aᵀ·Bᵀ); without dropout x_d = x,
// so y = c⊙z with z = x·Wᵀ + s·x·Aᵀ·Bᵀ. The backward is LoRA's with dy → c⊙dy, plus dm = Σ_rows dy⊙z / n.
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeLayout } from './backend.ts';
import type { DenseWeights } from './linear-weights.ts';
import { tidyResult } from './tidy.ts';

/** One LoRA pair as tensors for the current step, in both layouts (they are tiny). */
export interface LoraFactors {
  /** A [r, in] and Aᵀ [in, r]. */
  readonly a: tf.Tensor2D;
  readonly at: tf.Tensor2D;
  /** B [out, r] and Bᵀ [r, out]. */
  readonly b: tf.Tensor2D;
  readonly bt: tf.Tensor2D;
  /** alpha / r (or alpha / sqrt(r) with rsLoRA). */
  readonly scale: number;
  /** DoRA's per-row factors for this step, or null for plain LoRA. */
  readonly dora: DoraFactors | null;
}

/** DoRA's magnitude and weight norm of one linear for the current weights (both [1, out]). */
export interface DoraFactors {
  /** c = m / n. */
  readonly c: tf.Tensor2D;
  /** 1 / n, n = ‖W + s·B·A‖ per output row (a constant for the gradient, as PEFT detaches it). */
  readonly invNorm: tf.Tensor2D;
}

/** What the backward needs beyond the layer input. The caller disposes it (disposeLinearSaved). */
export interface LinearSaved {
  /** drop(x)·Aᵀ [N, r], unscaled. */
  readonly u: tf.Tensor2D | null;
  /** drop(x) [N, in] when dropout is on (else the input itself is used). */
  readonly dropped: tf.Tensor2D | null;
  /** DoRA: z = x_d·Wᵀ + s·x_d·Aᵀ·Bᵀ [N, out], what the magnitude multiplies (null for LoRA). */
  readonly z: tf.Tensor2D | null;
}

export interface LinearGrads {
  /** dL/dA [r, in]. */
  readonly dA: tf.Tensor2D;
  /** dL/dBᵀ [r, out] (the host transposes it to PEFT's [out, r]). */
  readonly dBt: tf.Tensor2D;
  /** DoRA: dL/dm [1, out]; null for LoRA. */
  readonly dM: tf.Tensor2D | null;
}

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

/**
 * y = x·Wᵀ + s·(x ⊙ keep)·Aᵀ·Bᵀ (DoRA: see the top of this file). `keep` is the dropout mask already
 * scaled by 1/(1-p), or null. The caller owns y and saved.
 */
export function linearForward(
  w: DenseWeights,
  x: tf.Tensor2D,
  lora: LoraFactors | null,
  keep: tf.Tensor2D | null,
): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } {
  return tidyResult((): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } => {
    const base = timesWt(w, x);
    if (lora === null) return { y: base, saved: { u: null, dropped: null, z: null } };
    const dropped = keep === null ? x : (tf.mul(x, keep) as tf.Tensor2D);
    const u: tf.Tensor2D = tf.matMul(dropped, lora.at);
    const update = tf.matMul(tf.mul(u, lora.scale), lora.bt);
    const savedDropped = keep === null ? null : dropped;
    if (lora.dora === null) {
      return { y: tf.add(base, update) as tf.Tensor2D, saved: { u, dropped: savedDropped, z: null } };
    }
    const c = lora.dora.c;
    if (keep === null) {
      const z = tf.add(base, update) as tf.Tensor2D;
      return { y: tf.mul(z, c) as tf.Tensor2D, saved: { u, dropped: null, z } };
    }
    // PEFT's dropout path: the magnitude rescales the base term of the dropped input only.
    const baseDropped = timesWt(w, dropped);
    const z = tf.add(baseDropped, update) as tf.Tensor2D;
    const y = tf.add(tf.sub(base, baseDropped), tf.mul(z, c)) as tf.Tensor2D;
    return { y, saved: { u, dropped: savedDropped, z } };
  });
}

export function disposeLinearSaved(s: LinearSaved): void {
  s.u?.dispose();
  s.dropped?.dispose();
  s.z?.dispose();
}

/** g·W (int8: (g·diag(scale))·Q). The caller owns the result. */
function timesW(w: DenseWeights, g: tf.Tensor2D): tf.Tensor2D {
  const scaled = w.rowScale === null ? g : (tf.mul(g, w.rowScale) as tf.Tensor2D);
  return tf.matMul(scaled, w.w);
}

/**
 * From dy [N, out]: dx = dy·W + ((s·dy·B)·A) ⊙ keep (only when needDx), dBᵀ = s·uᵀ·dy, dA = (s·dy·B)ᵀ·drop(x).
 * DoRA: the same with g = c⊙dy in place of dy, except that with dropout the undropped base term keeps
 * dy (dx = dy·W + ((g − dy)·W + (s·g·B)·A) ⊙ keep); dm = Σ_rows dy⊙z / n.
 * `x` is the layer input used in the forward. The caller owns dx and the grads.
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
    const dora = lora?.dora ?? null;
    const g = dora === null ? dy : (tf.mul(dy, dora.c) as tf.Tensor2D);
    let base: tf.Tensor2D | null = null;
    if (needDx) {
      base =
        dora === null || keep === null
          ? timesW(w, g)
          : (tf.add(timesW(w, dy), tf.mul(timesW(w, tf.sub(g, dy) as tf.Tensor2D), keep)) as tf.Tensor2D);
    }
    if (lora === null) return { dx: base, grads: null };
    if (saved?.u == null) throw new Error('linearBackward: LoRA layer without saved forward state');
    const input = saved.dropped ?? x;
    if (input === null) throw new Error('linearBackward: LoRA layer needs its forward input');
    let dM: tf.Tensor2D | null = null;
    if (dora !== null) {
      if (saved.z === null) throw new Error('linearBackward: DoRA layer without its saved z');
      dM = tf.mul(tf.sum(tf.mul(dy, saved.z), 0, true), dora.invNorm) as tf.Tensor2D;
    }
    const du = tf.mul(tf.matMul(g, lora.b), lora.scale) as tf.Tensor2D;
    const dBt = tf.mul(mm(layout, saved.u, g, true, false), lora.scale) as tf.Tensor2D;
    const dA = mm(layout, du, input, true, false);
    let dx = base;
    if (needDx && base !== null) {
      const viaLora = tf.matMul(du, lora.a);
      dx = tf.add(base, keep === null ? viaLora : tf.mul(viaLora, keep)) as tf.Tensor2D;
    }
    return { dx, grads: { dA, dBt, dM } };
  });
}

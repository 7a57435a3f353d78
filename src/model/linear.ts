// A frozen Linear y = x·Wᵀ with an optional LoRA branch s·(drop(x)·Aᵀ)·Bᵀ, forward and closed-form
// backward (input gradient plus LoRA gradients only; the frozen W never gets one). ΔW = B·A is never
// formed. In the plain-2d layout every matmul is a plain 2-D call; only [N,r] and [r,·] transposes.
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
}

/** What the backward needs beyond the layer input. The caller disposes it (disposeLinearSaved). */
export interface LinearSaved {
  /** drop(x)·Aᵀ [N, r], unscaled. */
  readonly u: tf.Tensor2D | null;
  /** drop(x) [N, in] when dropout is on (else the input itself is used). */
  readonly dropped: tf.Tensor2D | null;
}

export interface LinearGrads {
  /** dL/dA [r, in]. */
  readonly dA: tf.Tensor2D;
  /** dL/dBᵀ [r, out] (the host transposes it to PEFT's [out, r]). */
  readonly dBt: tf.Tensor2D;
}

function mm(layout: ComputeLayout, a: tf.Tensor2D, b: tf.Tensor2D, ta: boolean, tb: boolean): tf.Tensor2D {
  if (layout === 'batched' || (!ta && !tb)) return tf.matMul(a, b, ta, tb);
  // wasm runs only untransposed 2-D matmuls fast; callers pass only small operands here.
  return tf.matMul(ta ? tf.transpose(a) : a, tb ? tf.transpose(b) : b);
}

/**
 * y = x·Wᵀ + s·(x ⊙ keep)·Aᵀ·Bᵀ. `keep` is the dropout mask already scaled by 1/(1-p), or null.
 * The caller owns y and saved.
 */
export function linearForward(
  w: DenseWeights,
  x: tf.Tensor2D,
  lora: LoraFactors | null,
  keep: tf.Tensor2D | null,
): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } {
  return tidyResult((): { readonly y: tf.Tensor2D; readonly saved: LinearSaved } => {
    const raw: tf.Tensor2D = w.wt !== null ? tf.matMul(x, w.wt) : tf.matMul(x, w.w, false, true);
    const base = w.rowScale === null ? raw : (tf.mul(raw, w.rowScale) as tf.Tensor2D);
    if (lora === null) return { y: base, saved: { u: null, dropped: null } };
    const dropped = keep === null ? x : (tf.mul(x, keep) as tf.Tensor2D);
    const u: tf.Tensor2D = tf.matMul(dropped, lora.at);
    const y = tf.add(base, tf.matMul(tf.mul(u, lora.scale), lora.bt)) as tf.Tensor2D;
    return { y, saved: { u, dropped: keep === null ? null : dropped } };
  });
}

export function disposeLinearSaved(s: LinearSaved): void {
  s.u?.dispose();
  s.dropped?.dispose();
}

/**
 * From dy [N, out]: dx = dy·W + ((s·dy·B)·A) ⊙ keep (only when needDx), dBᵀ = s·uᵀ·dy, dA = (s·dy·B)ᵀ·drop(x).
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
    const dyScaled = w.rowScale === null || !needDx ? dy : (tf.mul(dy, w.rowScale) as tf.Tensor2D);
    const base: tf.Tensor2D | null = needDx ? (tf.matMul(dyScaled, w.w) as tf.Tensor2D) : null;
    if (lora === null) return { dx: base, grads: null };
    if (saved?.u == null) throw new Error('linearBackward: LoRA layer without saved forward state');
    const input = saved.dropped ?? x;
    if (input === null) throw new Error('linearBackward: LoRA layer needs its forward input');
    const du = tf.mul(tf.matMul(dy, lora.b), lora.scale) as tf.Tensor2D;
    const dBt = tf.mul(mm(layout, saved.u, dy, true, false), lora.scale) as tf.Tensor2D;
    const dA = mm(layout, du, input, true, false);
    let dx = base;
    if (needDx && base !== null) {
      const viaLora = tf.matMul(du, lora.a);
      dx = tf.add(base, keep === null ? viaLora : tf.mul(viaLora, keep)) as tf.Tensor2D;
    }
    return { dx, grads: { dA, dBt } };
  });
}

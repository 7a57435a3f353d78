// Plain LoRA, the default variant: y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ, ΔW = B·A never formed; merged,
// W' = W + s·B·A. It adds no tensor beyond A and B. Its pieces (the branch, its gradients, the merge)
// are exported for variants that build on them (dora.ts). TensorFlow.js as types only (types.ts).
import type * as tf from '@tensorflow/tfjs-core';
import type { AdaptedLinear, FrozenLinear, HostAdapter, LoraPair, LoraVariant, Tf } from './types.ts';

/** drop(x) (x itself without dropout), u = drop(x)·Aᵀ [N, r] and the update s·u·Bᵀ [N, out]. */
export function loraBranch(
  tf: Tf,
  p: LoraPair,
  x: tf.Tensor2D,
  keep: tf.Tensor2D | null,
): { readonly dropped: tf.Tensor2D; readonly u: tf.Tensor2D; readonly update: tf.Tensor2D } {
  const dropped = keep === null ? x : (tf.mul(x, keep) as tf.Tensor2D);
  const u = tf.matMul(dropped, p.at) as tf.Tensor2D;
  const update = tf.matMul(tf.mul(u, p.scale), p.bt) as tf.Tensor2D;
  return { dropped, u, update };
}

/** From g, the gradient of the branch's output: du = s·g·B, dBᵀ = s·uᵀ·g, dA = duᵀ·drop(x). */
export function loraBranchBackward(
  tf: Tf,
  w: FrozenLinear,
  p: LoraPair,
  g: tf.Tensor2D,
  u: tf.Tensor2D,
  input: tf.Tensor2D,
): { readonly du: tf.Tensor2D; readonly dA: tf.Tensor2D; readonly dBt: tf.Tensor2D } {
  const du = tf.mul(tf.matMul(g, p.b), p.scale) as tf.Tensor2D;
  const dBt = tf.mul(w.smallMatMul(u, g, true, false), p.scale) as tf.Tensor2D;
  const dA = w.smallMatMul(du, input, true, false);
  return { du, dA, dBt };
}

/** dx = base + (du·A) ⊙ keep: the input gradient through the branch added to the frozen one. */
export function withBranchInputGrad(
  tf: Tf,
  p: LoraPair,
  base: tf.Tensor2D,
  du: tf.Tensor2D,
  keep: tf.Tensor2D | null,
): tf.Tensor2D {
  const viaLora = tf.matMul(du, p.a);
  return tf.add(base, keep === null ? viaLora : tf.mul(viaLora, keep)) as tf.Tensor2D;
}

export function disposePair(tf: Tf, p: LoraPair): void {
  tf.dispose([p.a, p.at, p.b, p.bt]);
}

/**
 * W [out, in] += s·B·A in place, float32 step by step as PEFT computes it on the CPU (adapter weights
 * are float32 even on a bf16/fp16 base): (B·A)[o,i] summed over k = 0..r-1 with a float32 rounding
 * after each fused multiply-add (what torch's sgemm does: equal on every element of the committed
 * adapters), delta = f32(B·A · s), W' = f32(W + delta). A bf16/fp16 output is rounded from these
 * float32 values once, by the writer.
 */
export function mergeLoraWeight(w: Float32Array, e: HostAdapter): void {
  const { inFeatures: inF, outFeatures: outF } = e.target;
  const { a, b, r } = e;
  const s = Math.fround(e.scale);
  const row = new Float32Array(inF); // each store rounds the exact b·a + acc to float32: a fused step
  for (let o = 0; o < outF; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k] as number;
      if (bk === 0) continue;
      const aRow = k * inF;
      for (let i = 0; i < inF; i++) row[i] = (row[i] as number) + bk * (a[aRow + i] as number);
    }
    const base = o * inF;
    for (let i = 0; i < inF; i++) {
      const delta = Math.fround((row[i] as number) * s);
      w[base + i] = Math.fround((w[base + i] as number) + delta);
    }
  }
}

export const LORA: LoraVariant = {
  name: 'LoRA',
  appliesTo: () => true,
  extraTensors: () => [],
  initialValues: () => [],
  prepare(tf: Tf, pair: LoraPair): AdaptedLinear {
    return {
      pair,
      forward(_w, x, base, keep) {
        const { dropped, u, update } = loraBranch(tf, pair, x, keep);
        const saved = { u, dropped: keep === null ? null : dropped, extra: [] };
        return { y: tf.add(base, update) as tf.Tensor2D, saved };
      },
      backward(w, dy, input, saved, keep, needDx) {
        if (saved.u === null) throw new Error('LoRA backward: no saved drop(x)·Aᵀ from the forward');
        const base = needDx ? w.timesTransposed(dy) : null;
        const { du, dA, dBt } = loraBranchBackward(tf, w, pair, dy, saved.u, input);
        const dx = base === null ? null : withBranchInputGrad(tf, pair, base, du, keep);
        return { dx, grads: { dA, dBt, extra: [] } };
      },
      dispose: () => disposePair(tf, pair),
    };
  },
  mergeWeight: mergeLoraWeight,
  // The branch is the trainer's exact math, so what is evaluated is what was trained.
  mergedForInference: false,
  flopsPerToken: () => ({ forward: 0, inputGradient: 0 }),
  savedValuesPerToken: () => 0,
  workingValuesPerToken: () => 0,
  deviceValues: () => 0,
};

// DoRA (PEFT 0.21's DoraLinearLayer, use_dora): each target also learns a magnitude m per output row
// (lora_magnitude_vector [out], started at ‖W + s·B·A‖ per row: ‖W‖ when B starts at zero).
// With c = m / n, n = ‖W + s·B·A‖ per output row held constant (no gradient through it, as PEFT
// detaches it), the forward is y = x·Wᵀ + (c−1)⊙(x_d·Wᵀ) + c⊙(s·x_d·Aᵀ·Bᵀ); without dropout x_d = x,
// so y = c⊙z with z = x·Wᵀ + s·x·Aᵀ·Bᵀ. The backward is LoRA's with dy → c⊙dy, except that with
// dropout the undropped base term keeps dy; dm = Σ_rows dy⊙z / n. Merged: W' = c ⊙ (W + s·B·A).
// n is computed once per step (prepare), a block of rows at a time. TensorFlow.js as types only.
import type * as tf from '@tensorflow/tfjs-core';
import type { LoraTarget } from '../lora-targets.ts';
import { disposePair, loraBranch, loraBranchBackward, mergeLoraWeight, withBranchInputGrad } from './lora.ts';
import type {
  AdaptedLinear,
  FrozenRows,
  LinearDims,
  LoraPair,
  LoraVariant,
  StartingPair,
  Tf,
} from './types.ts';

/** Values per row block of W + s·B·A while n is computed (4M floats = 16 MB beyond W). */
const BLOCK_VALUES = 1 << 22;

/** ‖row‖₂ of W [out, in], summed in float64 and rounded to float32 once per row: m's start. */
export function rowNorms(w: Float32Array, outFeatures: number, inFeatures: number): Float32Array {
  const out = new Float32Array(outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    let sum = 0;
    for (let i = o * inFeatures; i < (o + 1) * inFeatures; i++) sum += (w[i] as number) * (w[i] as number);
    out[o] = Math.sqrt(sum);
  }
  return out;
}

/** W + s·B·A [out, in] in float32 as PEFT forms it (B [out, r], A [r, in]). */
function withUpdate(w: Float32Array, p: StartingPair, t: LinearDims): Float32Array {
  const r = p.a.length / t.inFeatures;
  const out = new Float32Array(w.length);
  for (let o = 0; o < t.outFeatures; o++) {
    for (let i = 0; i < t.inFeatures; i++) {
      let ba = 0;
      for (let k = 0; k < r; k++) ba += (p.b[o * r + k] as number) * (p.a[k * t.inFeatures + i] as number);
      out[o * t.inFeatures + i] = (w[o * t.inFeatures + i] as number) + p.scale * Math.fround(ba);
    }
  }
  return out;
}

/** n [1, out] = ‖W + s·B·A‖ per row, as PEFT's get_weight_norm (the row norm of the float32 sum). */
function weightNorm(tf: Tf, weight: FrozenRows, p: LoraPair): tf.Tensor2D {
  const { inFeatures, outFeatures: out } = weight;
  return weight.withRows((rows) =>
    tf.tidy(() => {
      const rowsPerBlock = Math.max(1, Math.floor(BLOCK_VALUES / inFeatures));
      const parts: tf.Tensor[] = [];
      for (let start = 0; start < out; start += rowsPerBlock) {
        const count = Math.min(rowsPerBlock, out - start);
        parts.push(
          tf.tidy(() => {
            const w = rows(start, count);
            const delta = tf.mul(tf.matMul(tf.slice(p.b, [start, 0], [count, p.b.shape[1]]), p.a), p.scale);
            return tf.sqrt(tf.sum(tf.square(tf.add(w, delta)), 1));
          }),
        );
      }
      return tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts), [1, out]) as tf.Tensor2D;
    }),
  );
}

function prepare(tf: Tf, pair: LoraPair, extras: readonly Float32Array[], weight: FrozenRows): AdaptedLinear {
  const m = extras[0];
  if (m === undefined || m.length !== weight.outFeatures) {
    throw new Error(`DoRA: the magnitude must have ${weight.outFeatures} values, got ${m?.length ?? 'none'}`);
  }
  const n = weightNorm(tf, weight, pair);
  let factors: { c: tf.Tensor2D; invNorm: tf.Tensor2D };
  try {
    factors = tf.tidy(() => ({
      c: tf.div(tf.tensor2d(m, [1, m.length]), n) as tf.Tensor2D,
      invNorm: tf.div(1, n) as tf.Tensor2D,
    }));
  } finally {
    n.dispose();
  }
  const { c, invNorm } = factors;
  return {
    pair,
    forward(w, x, base, keep) {
      const { dropped, u, update } = loraBranch(tf, pair, x, keep);
      if (keep === null) {
        const z = tf.add(base, update) as tf.Tensor2D;
        return { y: tf.mul(z, c) as tf.Tensor2D, saved: { u, dropped: null, extra: [z] } };
      }
      // PEFT's dropout path: the magnitude rescales the base term of the dropped input only.
      const baseDropped = w.times(dropped);
      const z = tf.add(baseDropped, update) as tf.Tensor2D;
      const y = tf.add(tf.sub(base, baseDropped), tf.mul(z, c)) as tf.Tensor2D;
      return { y, saved: { u, dropped, extra: [z] } };
    },
    // dx = g·W + (s·g·B)·A with g = c⊙dy; with dropout dx = dy·W + ((g − dy)·W + (s·g·B)·A) ⊙ keep.
    backward(w, dy, input, saved, keep, needDx) {
      const z = saved.extra[0];
      if (saved.u === null || z === undefined)
        throw new Error('DoRA backward: no saved u and z from the forward');
      const g = tf.mul(dy, c) as tf.Tensor2D;
      let base: tf.Tensor2D | null = null;
      if (needDx) {
        base =
          keep === null
            ? w.timesTransposed(g)
            : (tf.add(
                w.timesTransposed(dy),
                tf.mul(w.timesTransposed(tf.sub(g, dy) as tf.Tensor2D), keep),
              ) as tf.Tensor2D);
      }
      const dM = tf.mul(tf.sum(tf.mul(dy, z), 0, true), invNorm) as tf.Tensor2D;
      const { du, dA, dBt } = loraBranchBackward(tf, w, pair, g, saved.u, input);
      const dx = base === null ? null : withBranchInputGrad(tf, pair, base, du, keep);
      return { dx, grads: { dA, dBt, extra: [dM] } };
    },
    dispose() {
      disposePair(tf, pair);
      tf.dispose([c, invNorm]);
    },
  };
}

export const DORA: LoraVariant = {
  name: 'DoRA (use_dora)',
  appliesTo: (s) => s.useDora === true,
  extraTensors: (t: LoraTarget) => [{ name: t.magnitudeName, shape: [t.outFeatures] }],
  // ‖W + s·B·A‖ per row, as PEFT; ‖W‖ when B starts at zero (the default init_lora_weights).
  initialValues: (t: LoraTarget, w: Float32Array, start: StartingPair | null) => {
    const weight = start?.b.some((x) => x !== 0) ? withUpdate(w, start, t) : w;
    return [rowNorms(weight, t.outFeatures, t.inFeatures)];
  },
  prepare,
  /** LoRA's merge, then each row times f32(m / ‖W'‖_row), rounded to float32 (PEFT's dora_factor). */
  mergeWeight(w, e) {
    mergeLoraWeight(w, e);
    const { inFeatures: inF, outFeatures: outF } = e.target;
    const m = e.extras[0];
    if (m === undefined || m.length !== outF)
      throw new Error(`DoRA merge: the magnitude must have ${outF} values`);
    for (let o = 0; o < outF; o++) {
      const base = o * inF;
      let norm2 = 0;
      for (let i = 0; i < inF; i++) norm2 += (w[base + i] as number) * (w[base + i] as number);
      const factor = Math.fround((m[o] as number) / Math.fround(Math.sqrt(norm2)));
      for (let i = 0; i < inF; i++) w[base + i] = Math.fround((w[base + i] as number) * factor);
    }
  },
  // Once trained, c is a constant per row: the merged weight is exactly PEFT's merged model and
  // evaluation and generation pay nothing for the norm.
  mergedForInference: true,
  // With dropout the dropped input is multiplied by W once more forward, and the magnitude's share of
  // the gradient by W once more where the input gradient is computed. The norm (once per step, not
  // per micro-batch) is left out.
  flopsPerToken: (t: LinearDims, dropout: boolean) => {
    const once = dropout ? 2 * t.inFeatures * t.outFeatures : 0;
    return { forward: once, inputGradient: once };
  },
  // z = x_d·Wᵀ + s·u·Bᵀ [N, out], for the magnitude's gradient.
  savedValuesPerToken: (t: LinearDims) => t.outFeatures,
  // c⊙dy and (with dropout) x_d·Wᵀ or (c−1)⊙dy: two [N, out].
  workingValuesPerToken: (widestOut: number) => 2 * widestOut,
  // c and 1/n, [1, out] each.
  deviceValues: (t: LinearDims) => 2 * t.outFeatures,
};

// Attention of q new positions against every cached key: softmax(scale·Q·Kᵀ + bias)·V with K, V
// [rows·H, Tk, hd] from the KV cache (the new keys already appended). The bias is MPT's: ALiBi
// −slope·(Tk−1−j) for key j, relative to the last key as HF builds it, plus the causal mask inside
// the new block. Batched matmuls on every backend: with q = 1 they are matrix-vector products.
// Grouped-query attention (kvHeads < nHeads) caches each key/value head once: the nHeads/kvHeads
// query heads that share one are stacked as its rows, so no repeated copy is ever made.
import * as tf from '@tensorflow/tfjs-core';
import { MASKED_SCORE } from './alibi.ts';

export interface CachedAttentionShape {
  readonly rows: number;
  /** New positions per row. */
  readonly q: number;
  readonly nHeads: number;
  /** Heads of the cached K and V (default nHeads); query head j reads head ⌊j / (nHeads/kvHeads)⌋. */
  readonly kvHeads?: number;
  readonly headDim: number;
  readonly scale: number;
}

/** [rows·t, D] (one of Q, K, V, heads side by side) → [rows·H, t, hd]. The caller owns the result. */
export function splitHeadsOf(x: tf.Tensor2D, rows: number, t: number, h: number, hd: number): tf.Tensor3D {
  // One position per row (decoding): the head split is a plain reshape, no transpose to run.
  if (t === 1) return tf.reshape(x, [rows * h, 1, hd]);
  return tf.tidy(
    () =>
      tf.reshape(tf.transpose(tf.reshape(x, [rows, t, h, hd]), [0, 2, 1, 3]), [
        rows * h,
        t,
        hd,
      ]) as tf.Tensor3D,
  );
}

/** [H, q, Tk] bias of q new queries (the last q of Tk positions): ALiBi in MPT's form + causal. */
export function cachedAttentionBias(
  slopes: readonly number[] | null,
  nHeads: number,
  q: number,
  tk: number,
): Float32Array {
  const out = new Float32Array(nHeads * q * tk);
  for (let h = 0; h < nHeads; h++) {
    // Same float32 values as torch and causalAlibiBias: int positions times a float32 slope.
    const s = Math.fround(slopes === null ? 0 : (slopes[h] as number));
    for (let i = 0; i < q; i++) {
      const row = (h * q + i) * tk;
      const last = tk - q + i; // absolute position of this query
      for (let j = 0; j < tk; j++) out[row + j] = j <= last ? Math.fround(s * (j - (tk - 1))) : MASKED_SCORE;
    }
  }
  return out;
}

/** ctx [rows·q, D] for queries `q2d` [rows·q, D] against cached K, V. The caller owns ctx. */
export function cachedAttention(
  q2d: tf.Tensor2D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  s: CachedAttentionShape,
  /** [1, H, q, Tk] (cachedAttentionBias uploaded once per step, shared by the layers). */
  bias: tf.Tensor4D,
): tf.Tensor2D {
  const { rows, q, nHeads: h, headDim: hd } = s;
  const kvH = s.kvHeads ?? h;
  const group = h / kvH;
  const tk = k.shape[1];
  if (!Number.isInteger(group) || k.shape[0] !== rows * kvH) {
    throw new Error(`cachedAttention: K has ${k.shape[0]} head rows, want ${rows} rows × ${kvH} heads`);
  }
  return tf.tidy(() => {
    // [rows·H, q, hd] is [rows, kvH, group, q, hd] in memory: as [rows·kvH, group·q, hd] every cached
    // head meets the queries of its whole group in one batched matmul (the same dot products).
    const qh = tf.reshape(splitHeadsOf(tf.mul(q2d, s.scale) as tf.Tensor2D, rows, q, h, hd), [
      rows * kvH,
      group * q,
      hd,
    ]);
    const scores = tf.reshape(tf.matMul(qh, k, false, true), [rows, h, q, tk]);
    const biased = tf.add(scores, bias);
    const probs = tf.reshape(tf.softmax(biased), [rows * kvH, group * q, tk]) as tf.Tensor3D;
    const ctx = tf.matMul(probs, v);
    if (q === 1) return tf.reshape(ctx, [rows, h * hd]) as tf.Tensor2D;
    return tf.reshape(tf.transpose(tf.reshape(ctx, [rows, h, q, hd]), [0, 2, 1, 3]), [
      rows * q,
      h * hd,
    ]) as tf.Tensor2D;
  });
}

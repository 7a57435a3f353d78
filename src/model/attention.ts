// Multi-head attention core of MPT: softmax(scale·Q·Kᵀ + bias)·V from the fused qkv [N, 3D] (columns
// Q | K | V, each head-major), and its closed-form backward to dqkv. Two layouts of the same math:
// plain-2d cuts per-(row, head) pieces on the host so every matmul is plain 2-D (wasm/cpu); batched
// uses [B·H, T, hd] matmuls with transpose flags (GPU).
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionMask } from './attention-mask.ts';
import type { ComputeLayout } from './backend.ts';
import { tidyResult } from './tidy.ts';

export interface AttentionShape {
  readonly rows: number;
  readonly seqLen: number;
  readonly nHeads: number;
  readonly headDim: number;
  /** Multiplies Q·Kᵀ (1/√headDim unless the config sets softmax_scale). */
  readonly scale: number;
}

/** Saved forward state; freed by disposeAttentionSaved. */
export type AttentionSaved =
  | { readonly layout: 'plain-2d'; readonly qkv: Float32Array; readonly probs: readonly tf.Tensor2D[] }
  | {
      readonly layout: 'batched';
      readonly q: tf.Tensor3D;
      readonly k: tf.Tensor3D;
      readonly v: tf.Tensor3D;
      readonly probs: tf.Tensor3D;
    };

export function disposeAttentionSaved(s: AttentionSaved): void {
  if (s.layout === 'plain-2d') for (const p of s.probs) p.dispose();
  else tf.dispose([s.q, s.k, s.v, s.probs]);
}

/** Copies head h of row b out of a [N, width] host matrix starting at column `col0`, as [T, hd]
 * (transposed = false) or [hd, T] (transposed = true), times `mul`. */
function cut(
  src: Float32Array,
  width: number,
  col0: number,
  s: AttentionShape,
  b: number,
  transposed: boolean,
  mul: number,
): Float32Array {
  const { seqLen: t, headDim: hd } = s;
  const out = new Float32Array(t * hd);
  for (let i = 0; i < t; i++) {
    const base = (b * t + i) * width + col0;
    if (transposed) for (let d = 0; d < hd; d++) out[d * t + i] = (src[base + d] as number) * mul;
    else for (let d = 0; d < hd; d++) out[i * hd + d] = (src[base + d] as number) * mul;
  }
  return out;
}

/** Writes a [T, hd] (transposed = false) or [hd, T] piece back into a [N, width] host matrix. */
function place(
  dst: Float32Array,
  width: number,
  col0: number,
  s: AttentionShape,
  b: number,
  piece: Float32Array,
  transposed: boolean,
  mul: number,
): void {
  const { seqLen: t, headDim: hd } = s;
  for (let i = 0; i < t; i++) {
    const base = (b * t + i) * width + col0;
    if (transposed) for (let d = 0; d < hd; d++) dst[base + d] = (piece[d * t + i] as number) * mul;
    else for (let d = 0; d < hd; d++) dst[base + d] = (piece[i * hd + d] as number) * mul;
  }
}

function read(t: tf.Tensor): Float32Array {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

/** ctx [N, D] = per head softmax(scale·q·kᵀ + bias)·v. The caller owns ctx and saved (saved is null
 * when `save` is false). `qkv` is not disposed. */
export function attentionForward(
  layout: ComputeLayout,
  qkv: tf.Tensor2D,
  s: AttentionShape,
  mask: AttentionMask,
  save: boolean,
): { readonly ctx: tf.Tensor2D; readonly saved: AttentionSaved | null } {
  return layout === 'plain-2d' ? forwardPerHead(qkv, s, mask, save) : forwardBatched(qkv, s, mask, save);
}

function forwardPerHead(qkv: tf.Tensor2D, s: AttentionShape, mask: AttentionMask, save: boolean) {
  const { rows, seqLen: t, nHeads, headDim: hd } = s;
  const d = nHeads * hd;
  const host = qkv.dataSync() as Float32Array;
  const ctx = new Float32Array(rows * t * d);
  const probs: tf.Tensor2D[] = [];
  for (let b = 0; b < rows; b++) {
    for (let h = 0; h < nHeads; h++) {
      const p = tf.tidy(() => {
        const q = tf.tensor2d(cut(host, 3 * d, h * hd, s, b, false, s.scale), [t, hd]);
        const kt = tf.tensor2d(cut(host, 3 * d, d + h * hd, s, b, true, 1), [hd, t]);
        return tf.softmax(tf.add(tf.matMul(q, kt), mask.pair(b, h))) as tf.Tensor2D;
      });
      const v = tf.tensor2d(cut(host, 3 * d, 2 * d + h * hd, s, b, false, 1), [t, hd]);
      const o = tf.matMul(p, v);
      v.dispose();
      place(ctx, d, h * hd, s, b, read(o), false, 1);
      if (save) probs.push(p);
      else p.dispose();
    }
  }
  const saved: AttentionSaved | null = save ? { layout: 'plain-2d', qkv: host, probs } : null;
  return { ctx: tf.tensor2d(ctx, [rows * t, d]), saved };
}

/** [N, 3D] → q, k, v as [B·H, T, hd]. */
function splitHeads(qkv: tf.Tensor2D, s: AttentionShape): tf.Tensor3D[] {
  const { rows: b, seqLen: t, nHeads: h, headDim: hd } = s;
  const parts = tf.transpose(tf.reshape(qkv, [b, t, 3, h, hd]), [2, 0, 3, 1, 4]);
  return tf.unstack(parts).map((p) => tf.reshape(p, [b * h, t, hd]) as tf.Tensor3D);
}

/** [B·H, T, hd] → [N, D]. */
function mergeHeads(x: tf.Tensor3D, s: AttentionShape): tf.Tensor2D {
  const { rows: b, seqLen: t, nHeads: h, headDim: hd } = s;
  return tf.reshape(tf.transpose(tf.reshape(x, [b, h, t, hd]), [0, 2, 1, 3]), [b * t, h * hd]);
}

function forwardBatched(qkv: tf.Tensor2D, s: AttentionShape, mask: AttentionMask, save: boolean) {
  const { rows: b, seqLen: t, nHeads: h } = s;
  return tidyResult(() => {
    const [q, k, v] = splitHeads(qkv, s) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
    const scores = tf.reshape(tf.mul(tf.matMul(q, k, false, true), s.scale), [b, h, t, t]);
    const probs = tf.reshape(tf.softmax(tf.add(scores, mask.batched as tf.Tensor4D)), [
      b * h,
      t,
      t,
    ]) as tf.Tensor3D;
    const ctx = mergeHeads(tf.matMul(probs, v), s);
    const saved: AttentionSaved | null = save ? { layout: 'batched', q, k, v, probs } : null;
    return { ctx, saved };
  });
}

/** dqkv [N, 3D] from dctx [N, D]: dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·dS·K, dK = scale·dSᵀ·Q,
 * dV = Pᵀ·dO. The caller owns dqkv; `saved` stays the caller's to dispose. */
export function attentionBackward(
  layout: ComputeLayout,
  dctx: tf.Tensor2D,
  saved: AttentionSaved,
  s: AttentionShape,
): tf.Tensor2D {
  if (saved.layout !== layout)
    throw new Error(`attentionBackward: state saved in the ${saved.layout} layout`);
  return saved.layout === 'plain-2d' ? backwardPerHead(dctx, saved, s) : backwardBatched(dctx, saved, s);
}

function backwardPerHead(
  dctx: tf.Tensor2D,
  saved: Extract<AttentionSaved, { layout: 'plain-2d' }>,
  s: AttentionShape,
): tf.Tensor2D {
  const { rows, seqLen: t, nHeads, headDim: hd } = s;
  const d = nHeads * hd;
  const dout = dctx.dataSync() as Float32Array;
  const host = saved.qkv;
  const dqkv = new Float32Array(rows * t * 3 * d);
  for (let b = 0; b < rows; b++) {
    for (let h = 0; h < nHeads; h++) {
      const p = saved.probs[b * nHeads + h] as tf.Tensor2D;
      const [dq, dkt, dvt] = tf.tidy(() => {
        // S = (scale·Q)·Kᵀ, so dKᵀ = (scale·Q)ᵀ·dS and dQ = scale·dS·K; transposed pieces come from the
        // host so every product here is a plain 2-D matmul.
        const dO = tf.tensor2d(cut(dout, d, h * hd, s, b, false, 1), [t, hd]);
        const vt = tf.tensor2d(cut(host, 3 * d, 2 * d + h * hd, s, b, true, 1), [hd, t]);
        const dP = tf.matMul(dO, vt);
        const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), 1, true)));
        const k = tf.tensor2d(cut(host, 3 * d, d + h * hd, s, b, false, 1), [t, hd]);
        const qt = tf.tensor2d(cut(host, 3 * d, h * hd, s, b, true, s.scale), [hd, t]);
        const dOt = tf.tensor2d(cut(dout, d, h * hd, s, b, true, 1), [hd, t]);
        return [tf.matMul(dS, k), tf.matMul(qt, dS), tf.matMul(dOt, p)];
      });
      place(dqkv, 3 * d, h * hd, s, b, read(dq as tf.Tensor), false, s.scale);
      place(dqkv, 3 * d, d + h * hd, s, b, read(dkt as tf.Tensor), true, 1);
      place(dqkv, 3 * d, 2 * d + h * hd, s, b, read(dvt as tf.Tensor), true, 1);
    }
  }
  return tf.tensor2d(dqkv, [rows * t, 3 * d]);
}

function backwardBatched(
  dctx: tf.Tensor2D,
  saved: Extract<AttentionSaved, { layout: 'batched' }>,
  s: AttentionShape,
): tf.Tensor2D {
  const { rows: b, seqLen: t, nHeads: h, headDim: hd } = s;
  return tidyResult(() => {
    const { q, k, v, probs: p } = saved;
    const dO = tf.reshape(tf.transpose(tf.reshape(dctx, [b, t, h, hd]), [0, 2, 1, 3]), [b * h, t, hd]);
    const dP = tf.matMul(dO, v, false, true);
    const dS = tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), s.scale);
    const dq = tf.matMul(dS, k);
    const dk = tf.matMul(dS, q, true, false);
    const dv = tf.matMul(p, dO, true, false);
    const stacked = tf.reshape(tf.stack([dq, dk, dv]), [3, b, h, t, hd]);
    return tf.reshape(tf.transpose(stacked, [1, 3, 0, 2, 4]), [b * t, 3 * h * hd]) as tf.Tensor2D;
  });
}

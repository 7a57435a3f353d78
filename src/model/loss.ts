// Cross-entropy of the tied output layer over the supervised positions only, fused with its gradient:
// logits are made one vocab chunk at a time and never kept; the same pass yields the loss sum and
// dL/dh, so the backward of the vocab GEMM is paid once and no [N, V] tensor is stored.
//
// Per row chunk and vocab chunk c: m_c = rowmax(l_c), e_c = softmax(l_c), S_c = 1/rowmax(e_c)
// (= Σ exp(l_c − m_c)). Across chunks: m = max m_c, f_c = S_c·e^(m_c − m), S = Σ f_c, lse = m + ln S.
// loss = lse − l[label]; dl = Σ_c (e_c·f_c/S)·W_c − W[label] (times logit_scale).
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeLayout } from './backend.ts';
import { tidyResult } from './tidy.ts';

/** The tied embedding cut into vocab chunks: W_c [kc, D] and, in plain-2d, W_cᵀ [D, kc]. */
export interface VocabChunks {
  readonly w: readonly tf.Tensor2D[];
  readonly wt: readonly tf.Tensor2D[] | null;
}

/** Supervised positions: row index into h [N, D] and the target token there (the shifted label). */
export interface Targets {
  readonly rows: Int32Array;
  readonly labels: Int32Array;
}

/** Rows processed together: bounds the live [rows, V] softmax to ~50 MB at V = 50k. */
const ROW_CHUNK = 256;

function chunkLogits(_layout: ComputeLayout, h: tf.Tensor2D, vocab: VocabChunks, c: number): tf.Tensor2D {
  const wt = vocab.wt?.[c];
  return wt !== undefined ? tf.matMul(h, wt) : tf.matMul(h, vocab.w[c] as tf.Tensor2D, false, true);
}

/**
 * Loss sum over the targets (a scalar tensor) and, when `withGrad`, dL/dh as [N, D] (zero rows where
 * nothing is supervised). `labelRows(labels)` returns the embedding rows of the labels as [n, D]
 * (gathered on the host). The caller owns both results; h is not disposed.
 */
export function fusedCrossEntropy(
  layout: ComputeLayout,
  h: tf.Tensor2D,
  targets: Targets,
  vocab: VocabChunks,
  labelRows: (labels: Int32Array) => tf.Tensor2D,
  logitScale: number,
  withGrad: boolean,
): { readonly lossSum: tf.Scalar; readonly dh: tf.Tensor2D | null } {
  const n = targets.rows.length;
  const [nRows, dim] = h.shape;
  if (n === 0) {
    return { lossSum: tf.scalar(0), dh: withGrad ? tf.zeros([nRows, dim]) : null };
  }
  const losses: tf.Scalar[] = [];
  const grads: tf.Tensor2D[] = [];
  for (let r0 = 0; r0 < n; r0 += ROW_CHUNK) {
    const r1 = Math.min(n, r0 + ROW_CHUNK);
    const out = tidyResult(() => {
      const idx = tf.tensor1d(targets.rows.subarray(r0, r1), 'int32');
      const hr = tf.mul(tf.gather(h, idx), logitScale) as tf.Tensor2D;
      const wy = labelRows(targets.labels.subarray(r0, r1));
      const maxes: tf.Tensor2D[] = [];
      const sums: tf.Tensor2D[] = [];
      const probs: tf.Tensor2D[] = [];
      for (let c = 0; c < vocab.w.length; c++) {
        const l = chunkLogits(layout, hr, vocab, c);
        const e = tf.softmax(l);
        maxes.push(tf.max(l, 1, true));
        sums.push(tf.div(1, tf.max(e, 1, true)));
        if (withGrad) probs.push(e);
        else e.dispose();
        l.dispose();
      }
      const m = tf.max(tf.concat(maxes, 1), 1, true);
      const f = maxes.map((mc, c) => tf.mul(sums[c] as tf.Tensor2D, tf.exp(tf.sub(mc, m))));
      const total = tf.addN(f);
      const lse = tf.add(m, tf.log(total));
      const lossSum = tf.sum(tf.sub(lse, tf.sum(tf.mul(hr, wy), 1, true)));
      if (!withGrad) return { lossSum, dh: null };
      const terms = probs.map((e, c) =>
        tf.matMul(tf.mul(e, tf.div(f[c] as tf.Tensor2D, total)), vocab.w[c] as tf.Tensor2D),
      );
      const dh = tf.mul(tf.sub(tf.addN(terms), wy), logitScale) as tf.Tensor2D;
      return { lossSum, dh };
    });
    losses.push(out.lossSum as tf.Scalar);
    if (out.dh !== null) grads.push(out.dh);
  }
  const lossSum = tf.tidy(() => losses.reduce((a, b) => tf.add(a, b), tf.scalar(0)) as tf.Scalar);
  tf.dispose(losses);
  if (!withGrad) return { lossSum, dh: null };
  const dh = tf.tidy(() => {
    const rows = tf.tensor2d(targets.rows, [n, 1], 'int32');
    const updates = grads.length === 1 ? (grads[0] as tf.Tensor2D) : tf.concat(grads, 0);
    return tf.scatterND(rows, updates, [nRows, dim]) as tf.Tensor2D;
  });
  tf.dispose(grads);
  return { lossSum, dh };
}

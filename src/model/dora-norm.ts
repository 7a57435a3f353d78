// DoRA's per-row weight norm n = ‖W + s·B·A‖ of one frozen linear for the current A and B, as PEFT's
// get_weight_norm computes it (the row norm of the float32 sum), and the factors c = m / n and 1 / n.
// W + s·B·A is formed a block of rows at a time, so no more than ~16 MB beyond W is ever held.
import * as tf from '@tensorflow/tfjs-core';
import type { DoraFactors } from './linear.ts';
import type { LinearWeightSource } from './linear-weights.ts';

/** Values per row block of W + s·B·A (4M floats = 16 MB). */
const BLOCK_VALUES = 1 << 22;

/** n [1, out] for W of `source` (int8: diag(scale)·Q), A [r, in], B [out, r]. The caller owns it. */
export function doraWeightNorm(
  source: LinearWeightSource,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scale: number,
): tf.Tensor2D {
  const dense = source.acquire();
  try {
    return tf.tidy(() => {
      const out = source.outFeatures;
      const rowsPerBlock = Math.max(1, Math.floor(BLOCK_VALUES / source.inFeatures));
      const parts: tf.Tensor[] = [];
      for (let start = 0; start < out; start += rowsPerBlock) {
        const rows = Math.min(rowsPerBlock, out - start);
        parts.push(
          tf.tidy(() => {
            let w = tf.slice(dense.w, [start, 0], [rows, source.inFeatures]);
            if (dense.rowScale !== null) {
              const sc = tf.reshape(tf.slice(dense.rowScale, [0, start], [1, rows]), [rows, 1]);
              w = tf.mul(w, sc);
            }
            const delta = tf.mul(tf.matMul(tf.slice(b, [start, 0], [rows, b.shape[1]]), a), scale);
            return tf.sqrt(tf.sum(tf.square(tf.add(w, delta)), 1));
          }),
        );
      }
      return tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts), [1, out]) as tf.Tensor2D;
    });
  } finally {
    source.release(dense);
  }
}

/** c = m / n and 1 / n for one linear (m: the magnitude [out]). The caller owns them. */
export function doraFactors(
  source: LinearWeightSource,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scale: number,
  magnitude: Float32Array,
): DoraFactors {
  const n = doraWeightNorm(source, a, b, scale);
  try {
    return tf.tidy(() => ({
      c: tf.div(tf.tensor2d(magnitude, [1, magnitude.length]), n) as tf.Tensor2D,
      invNorm: tf.div(1, n) as tf.Tensor2D,
    }));
  } finally {
    n.dispose();
  }
}

// MPT's LayerNorm (no bias; weight frozen) over the last axis of [N, D], with its closed-form input
// gradient so the backward keeps only xhat and rstd instead of every autodiff intermediate.
import * as tf from '@tensorflow/tfjs-core';

export interface LayerNormSaved {
  /** (x - mean) · rstd, [N, D]. */
  readonly xhat: tf.Tensor2D;
  /** 1 / sqrt(var + eps), [N, 1]. */
  readonly rstd: tf.Tensor2D;
}

/** y = (x - mean) / sqrt(var_biased + eps) · weight. The caller owns (disposes) y and saved. */
export function layerNormForward(
  x: tf.Tensor2D,
  weight: tf.Tensor1D,
  eps: number,
): { readonly y: tf.Tensor2D; readonly saved: LayerNormSaved } {
  return tf.tidy(() => {
    const centered = tf.sub(x, tf.mean(x, -1, true));
    const variance = tf.mean(tf.square(centered), -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor2D;
    const xhat = tf.mul(centered, rstd) as tf.Tensor2D;
    const y = tf.mul(xhat, weight) as tf.Tensor2D;
    return { y, saved: { xhat, rstd } };
  });
}

/** Forward value only (inference and recompute-free paths). The caller owns the result. */
export function layerNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const { y } = layerNormForward(x, weight, eps);
    return y;
  });
}

/** dx = rstd · (g - mean(g) - xhat · mean(g ⊙ xhat)) with g = dy ⊙ weight. The caller owns dx;
 * `saved` is left to the caller too (it may be needed again under gradient checkpointing). */
export function layerNormBackward(dy: tf.Tensor2D, weight: tf.Tensor1D, saved: LayerNormSaved): tf.Tensor2D {
  return tf.tidy(() => {
    const g = tf.mul(dy, weight);
    const meanG = tf.mean(g, -1, true);
    const meanGx = tf.mean(tf.mul(g, saved.xhat), -1, true);
    return tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(saved.xhat, meanGx)), saved.rstd) as tf.Tensor2D;
  });
}

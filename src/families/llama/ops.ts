// Llama's elementwise pieces with closed-form backwards: RMSNorm (LlamaRMSNorm: x·rsqrt(mean(x²)+eps)·w,
// no mean subtraction, no bias), the SwiGLU gate silu(a)·b, and grouped-query attention's repeat_kv
// (each key/value head serves nHeads / nKvHeads query heads; its gradient sums over them).
import * as tf from '@tensorflow/tfjs-core';

export interface RmsNormSaved {
  /** x·rstd [N, D]. */
  readonly xhat: tf.Tensor2D;
  /** rsqrt(mean(x²) + eps) [N, 1]. */
  readonly rstd: tf.Tensor2D;
}

/** y = w ⊙ x·rstd. The caller owns y and saved. */
export function rmsNormForward(
  x: tf.Tensor2D,
  w: tf.Tensor1D,
  eps: number,
): { readonly y: tf.Tensor2D; readonly saved: RmsNormSaved } {
  const rstd = tf.tidy(() => tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps)) as tf.Tensor2D);
  const xhat = tf.mul(x, rstd) as tf.Tensor2D;
  return { y: tf.mul(xhat, w) as tf.Tensor2D, saved: { xhat, rstd } };
}

/** dx = rstd·(u − xhat·mean(u ⊙ xhat)) with u = dy ⊙ w. The caller owns dx. */
export function rmsNormBackward(dy: tf.Tensor2D, w: tf.Tensor1D, s: RmsNormSaved): tf.Tensor2D {
  return tf.tidy(() => {
    const u = tf.mul(dy, w);
    const proj = tf.mean(tf.mul(u, s.xhat), 1, true);
    return tf.mul(s.rstd, tf.sub(u, tf.mul(s.xhat, proj))) as tf.Tensor2D;
  });
}

export function disposeRmsNormSaved(s: RmsNormSaved): void {
  tf.dispose([s.xhat, s.rstd]);
}

/** silu(a) ⊙ b. The caller owns the result. */
export function swiglu(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.mul(a, tf.sigmoid(a)), b) as tf.Tensor2D);
}

/** da and db from dm of m = silu(a) ⊙ b: silu'(a) = σ(a)·(1 + a·(1 − σ(a))). The caller owns both. */
export function swigluBackward(
  dm: tf.Tensor2D,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
): { readonly da: tf.Tensor2D; readonly db: tf.Tensor2D } {
  return tf.tidy(() => {
    const s = tf.sigmoid(a);
    const silu = tf.mul(a, s);
    const dSilu = tf.mul(s, tf.add(1, tf.mul(a, tf.sub(1, s))));
    return { da: tf.mul(tf.mul(dm, b), dSilu) as tf.Tensor2D, db: tf.mul(dm, silu) as tf.Tensor2D };
  });
}

/** [N, kvHeads·hd] → [N, kvHeads·nRep·hd]: head j of the result is kv head ⌊j / nRep⌋ (transformers'
 * repeat_kv order). The caller owns the result; with nRep 1 it is a new handle on x. */
export function repeatKv(x: tf.Tensor2D, kvHeads: number, nRep: number): tf.Tensor2D {
  if (nRep === 1) return tf.clone(x);
  return tf.tidy(() => {
    const [n, width] = x.shape;
    const hd = width / kvHeads;
    const tiled = tf.tile(tf.reshape(x, [n, kvHeads, 1, hd]), [1, 1, nRep, 1]);
    return tf.reshape(tiled, [n, kvHeads * nRep * hd]) as tf.Tensor2D;
  });
}

/** The gradient of repeatKv: the sum over each kv head's nRep copies. The caller owns it. */
export function repeatKvBackward(dy: tf.Tensor2D, kvHeads: number, nRep: number): tf.Tensor2D {
  if (nRep === 1) return tf.clone(dy);
  return tf.tidy(() => {
    const [n, width] = dy.shape;
    const hd = width / (kvHeads * nRep);
    return tf.reshape(tf.sum(tf.reshape(dy, [n, kvHeads, nRep, hd]), 2), [n, kvHeads * hd]) as tf.Tensor2D;
  });
}

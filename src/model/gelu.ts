// Exact (erf) GELU, as MPT's nn.GELU(approximate='none'), with its closed-form derivative so the
// backward keeps only the pre-activation.
import * as tf from '@tensorflow/tfjs-core';

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** gelu(u) = u · Φ(u), Φ(u) = (1 + erf(u/√2)) / 2. The caller owns the result. */
export function gelu(u: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(u, tf.mul(tf.add(tf.erf(tf.mul(u, INV_SQRT2)), 1), 0.5)));
}

/** du = dy · (Φ(u) + u · φ(u)), φ the standard normal density. The caller owns the result. */
export function geluBackward(dy: tf.Tensor, u: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const cdf = tf.mul(tf.add(tf.erf(tf.mul(u, INV_SQRT2)), 1), 0.5);
    const pdf = tf.mul(tf.exp(tf.mul(tf.square(u), -0.5)), INV_SQRT_2PI);
    return tf.mul(dy, tf.add(cdf, tf.mul(u, pdf)));
  });
}

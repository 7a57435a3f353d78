// Rotary position embeddings as transformers' LlamaRotaryEmbedding computes them: inverse frequencies
// (default, or Llama 3's frequency-dependent scaling) in float32, cos/sin of position·inv_freq with
// the frequencies repeated over both halves of a head, and x·cos + rotate_half(x)·sin where
// rotate_half(x) = [−x₂, x₁]. The rotation is orthogonal, so its backward is the inverse rotation:
// dx = dy·cos − rotate_half(dy·sin).
import * as tf from '@tensorflow/tfjs-core';
import type { LlamaRope } from './config.ts';

const f32 = Math.fround;

/** inv_freq [headDim / 2] in float32, as transformers' default and llama3 RoPE initialisers. */
export function inverseFrequencies(rope: LlamaRope, headDim: number): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f32(1 / f32(rope.theta ** f32((2 * i) / headDim)));
  const s = rope.llama3;
  if (s === null) return out;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const inv = out[i] as number;
    const wavelen = f32((2 * Math.PI) / inv);
    // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
    let scaled = wavelen > lowWavelen ? f32(inv / s.factor) : inv;
    if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
      const smooth = f32(
        f32(s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor),
      );
      scaled = f32(f32((1 - smooth) * f32(scaled / s.factor)) + f32(smooth * scaled));
    }
    out[i] = scaled;
  }
  return out;
}

/** cos and sin [seqLen, headDim] of positions first .. first + seqLen − 1 (float32 products, as
 * torch's position_ids.float() · inv_freq). */
export function ropeTables(
  invFreq: Float32Array,
  first: number,
  seqLen: number,
): { readonly cos: Float32Array; readonly sin: Float32Array } {
  const half = invFreq.length;
  const hd = 2 * half;
  const cos = new Float32Array(seqLen * hd);
  const sin = new Float32Array(seqLen * hd);
  for (let t = 0; t < seqLen; t++) {
    for (let i = 0; i < half; i++) {
      const angle = f32((first + t) * (invFreq[i] as number));
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * hd + i] = c;
      cos[t * hd + half + i] = c;
      sin[t * hd + i] = s;
      sin[t * hd + half + i] = s;
    }
  }
  return { cos, sin };
}

/** One forward's cos/sin as [1, T, 1, hd] tensors (shared by every layer; the owner disposes). */
export interface RopeTensors {
  readonly cos: tf.Tensor4D;
  readonly sin: tf.Tensor4D;
}

export function ropeTensors(invFreq: Float32Array, first: number, seqLen: number): RopeTensors {
  const { cos, sin } = ropeTables(invFreq, first, seqLen);
  const shape: [number, number, number, number] = [1, seqLen, 1, invFreq.length * 2];
  return { cos: tf.tensor4d(cos, shape), sin: tf.tensor4d(sin, shape) };
}

function rotateHalf(x: tf.Tensor4D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
  return tf.concat([tf.neg(x2), x1], 3);
}

/** x [rows·T, heads·hd] rotated by position. The caller owns the result; x is not disposed. */
export function applyRope(x: tf.Tensor2D, rows: number, heads: number, r: RopeTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const [, t, , hd] = r.cos.shape;
    const x4 = tf.reshape(x, [rows, t, heads, hd]) as tf.Tensor4D;
    const y = tf.add(tf.mul(x4, r.cos), tf.mul(rotateHalf(x4), r.sin));
    return tf.reshape(y, x.shape) as tf.Tensor2D;
  });
}

/** dx from dy of applyRope (the inverse rotation). The caller owns the result. */
export function applyRopeBackward(dy: tf.Tensor2D, rows: number, heads: number, r: RopeTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const [, t, , hd] = r.cos.shape;
    const g = tf.reshape(dy, [rows, t, heads, hd]) as tf.Tensor4D;
    const dx = tf.sub(tf.mul(g, r.cos), rotateHalf(tf.mul(g, r.sin) as tf.Tensor4D));
    return tf.reshape(dx, dy.shape) as tf.Tensor2D;
  });
}

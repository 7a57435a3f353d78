// Each closed-form backward against TensorFlow.js autodiff of the textbook formula, and both
// attention layouts against a naive batched attention, on every test backend.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { LORA } from '../../src/checkpoint/lora-variants/index.ts';
import '@tensorflow/tfjs'; // registers the gradients autodiff needs
import { attentionBackward, attentionForward, disposeAttentionSaved } from '../../src/model/attention.ts';
import { AttentionBiasCache, AttentionMask } from '../../src/model/attention-mask.ts';
import type { ComputeLayout } from '../../src/model/backend.ts';
import { gelu, geluBackward } from '../../src/model/gelu.ts';
import { layerNormBackward, layerNormForward } from '../../src/model/layer-norm.ts';
import { frozenRows, linearBackward, linearForward } from '../../src/model/linear.ts';
import { denseWeightSource } from '../../src/model/linear-weights.ts';
import { fusedCrossEntropy } from '../../src/model/loss.ts';
import { describeOnBackends } from './support/backends.ts';
import { gaussian, maxAbs, maxAbsDiff, rng } from './support/tiny-mpt.ts';

function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  const g = gaussian(rng(seed));
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => scale * g()),
    shape,
  );
}

function close(a: tf.Tensor, b: tf.Tensor, rel: number, what: string): void {
  const x = a.dataSync() as Float32Array;
  const y = b.dataSync() as Float32Array;
  const err = maxAbsDiff(x, y) / Math.max(maxAbs(y), 1e-12);
  assert.ok(err < rel, `${what}: relative error ${err}`);
}

describeOnBackends('closed-form gradients', () => {
  it('LayerNorm input gradient equals autodiff', () => {
    tf.tidy(() => {
      const x = randn([7, 12], 1, 3) as tf.Tensor2D;
      const w = randn([12], 2) as tf.Tensor1D;
      const dy = randn([7, 12], 3) as tf.Tensor2D;
      const naive = (z: tf.Tensor) => {
        const { mean, variance } = tf.moments(z, -1, true);
        return tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-5))), w);
      };
      const f = layerNormForward(x, w, 1e-5);
      close(f.y, naive(x), 1e-5, 'forward');
      close(layerNormBackward(dy, w, f.saved), tf.grad(naive)(x, dy), 1e-5, 'dx');
    });
  });

  it('erf GELU gradient equals autodiff', () => {
    tf.tidy(() => {
      const u = randn([5, 9], 4, 2);
      const dy = randn([5, 9], 5);
      const naive = (z: tf.Tensor) => tf.mul(tf.mul(z, 0.5), tf.add(1, tf.erf(tf.div(z, Math.SQRT2))));
      close(gelu(u), naive(u), 1e-6, 'forward');
      close(geluBackward(dy, u), tf.grad(naive)(u, dy), 1e-5, 'du');
    });
  });

  for (const layout of ['plain-2d', 'batched'] as ComputeLayout[]) {
    it(`LoRA linear with dropout equals autodiff (${layout})`, () => {
      tf.tidy(() => {
        const [n, inF, outF, r, s] = [10, 8, 6, 3, 2.5];
        const x = randn([n, inF], 6) as tf.Tensor2D;
        const w = randn([outF, inF], 7) as tf.Tensor2D;
        const a = randn([r, inF], 8) as tf.Tensor2D;
        const b = randn([outF, r], 9) as tf.Tensor2D;
        const keep = tf.tensor2d(
          Float32Array.from({ length: n * inF }, (_, i) => (i % 3 === 0 ? 0 : 1.5)),
          [n, inF],
        );
        const dy = randn([n, outF], 10) as tf.Tensor2D;
        const dense = {
          w,
          wt: layout === 'plain-2d' ? (tf.transpose(w) as tf.Tensor2D) : null,
          rowScale: null,
        };
        const pair = {
          a,
          at: tf.transpose(a) as tf.Tensor2D,
          b,
          bt: tf.transpose(b) as tf.Tensor2D,
          scale: s,
        };
        const weight = denseWeightSource(layout, w.dataSync() as Float32Array, outF, inF);
        const lora = LORA.prepare(tf, pair, [], frozenRows(weight));
        const f = linearForward(dense, x, lora, keep);
        const naive = (xx: tf.Tensor, aa: tf.Tensor, bb: tf.Tensor) =>
          tf.add(
            tf.matMul(xx, w, false, true),
            tf.mul(tf.matMul(tf.matMul(tf.mul(xx, keep), aa, false, true), bb, false, true), s),
          );
        close(f.y, naive(x, a, b), 1e-5, 'forward');
        const back = linearBackward(layout, dense, dy, x, lora, f.saved, keep, true);
        const [dx, dA, dB] = tf.grads(naive)([x, a, b], dy);
        close(back.dx as tf.Tensor, dx as tf.Tensor, 1e-5, 'dx');
        close(back.grads?.dA as tf.Tensor, dA as tf.Tensor, 1e-5, 'dA');
        close(tf.transpose(back.grads?.dBt as tf.Tensor), dB as tf.Tensor, 1e-5, 'dB');
        weight.dispose();
      });
    });

    it(`a linear handed int8-style weights (values + per-row scales) equals autodiff of W = diag(scale)·values (${layout})`, () => {
      tf.tidy(() => {
        const [n, inF, outF] = [7, 8, 6];
        const x = randn([n, inF], 11) as tf.Tensor2D;
        const values = tf.round(tf.mul(randn([outF, inF], 12), 40)) as tf.Tensor2D;
        const scales = tf.abs(randn([1, outF], 13)) as tf.Tensor2D;
        const dy = randn([n, outF], 14) as tf.Tensor2D;
        const dense = {
          w: values,
          wt: layout === 'plain-2d' ? (tf.transpose(values) as tf.Tensor2D) : null,
          rowScale: scales,
        };
        const weight = tf.mul(values, tf.transpose(scales)); // row o of W times scale[o]
        const naive = (xx: tf.Tensor) => tf.matMul(xx, weight, false, true);
        const f = linearForward(dense, x, null, null);
        close(f.y, naive(x), 1e-5, 'forward');
        const back = linearBackward(layout, dense, dy, x, null, f.saved, null, true);
        close(back.dx as tf.Tensor, tf.grad(naive)(x, dy), 1e-5, 'dx');
      });
    });

    it(`attention with ALiBi, causal and padding masks equals autodiff (${layout})`, () => {
      const [rows, t, h, hd, scale] = [2, 6, 3, 4, 0.37];
      const d = h * hd;
      const cache = new AttentionBiasCache(layout, h, true, 8);
      const maskBits = Int32Array.from({ length: rows * t }, (_, i) => (i >= rows * t - 2 ? 0 : 1));
      const mask = new AttentionMask(cache, rows, t, maskBits);
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const qkv = randn([rows * t, 3 * d], 11, 2) as tf.Tensor2D;
        const dctx = randn([rows * t, d], 12) as tf.Tensor2D;
        const slopes = [2 ** -4, 2 ** -8, 2 ** -2]; // alibiSlopes(3, 8): odd positions of N = 4, then even
        const naive = (z: tf.Tensor) => {
          const heads = (m: tf.Tensor) => tf.transpose(tf.reshape(m, [rows, t, h, hd]), [0, 2, 1, 3]);
          const [q, k, v] = tf.split(z, 3, 1) as [tf.Tensor, tf.Tensor, tf.Tensor];
          const alibi = tf.tensor4d(
            slopes.flatMap((sl) => Array.from({ length: t }, (_, j) => sl * (j - (t - 1)))),
            [1, h, 1, t],
          );
          const scores = tf.add(tf.mul(tf.matMul(heads(q), heads(k), false, true), scale), alibi);
          const vis = Array.from({ length: rows * t * t }, (_, i) => {
            const [b, qi, kj] = [Math.floor(i / (t * t)), Math.floor(i / t) % t, i % t];
            return kj <= qi && maskBits[b * t + kj] === 1;
          });
          const visible = tf.broadcastTo(tf.tensor4d(vis, [rows, 1, t, t], 'bool'), [rows, h, t, t]);
          const p = tf.softmax(tf.where(visible, scores, tf.fill([rows, h, t, t], -3.4e38)));
          return tf.reshape(tf.transpose(tf.matMul(p, heads(v)), [0, 2, 1, 3]), [rows * t, d]);
        };
        const shape = { rows, seqLen: t, nHeads: h, headDim: hd, scale };
        const f = attentionForward(layout, qkv, shape, mask, true);
        close(f.ctx, naive(qkv), 1e-5, 'ctx');
        if (f.saved === null) throw new Error('nothing saved');
        close(attentionBackward(layout, dctx, f.saved, shape), tf.grad(naive)(qkv, dctx), 1e-5, 'dqkv');
        disposeAttentionSaved(f.saved);
      });
      assert.equal(tf.memory().numTensors, before);
      mask.dispose();
      cache.dispose();
    });

    it(`fused chunked cross-entropy equals logSoftmax·oneHot, value and dh (${layout})`, () => {
      tf.tidy(() => {
        const [n, d, v, scale] = [9, 5, 23, 0.7];
        const h = randn([n, d], 13, 2) as tf.Tensor2D;
        const wte = randn([v, d], 14, 2) as tf.Tensor2D;
        const rows = Int32Array.from([0, 2, 3, 7, 8]);
        const labels = Int32Array.from([22, 0, 5, 5, 17]);
        // Uneven chunks (8, 8, 7) exercise the last, narrower chunk.
        const w = [0, 8, 16].map((c0) => tf.slice(wte, [c0, 0], [Math.min(8, v - c0), d]) as tf.Tensor2D);
        const vocab = { w, wt: layout === 'plain-2d' ? w.map((c) => tf.transpose(c) as tf.Tensor2D) : null };
        const labelRows = (l: Int32Array) => tf.gather(wte, tf.tensor1d(l, 'int32')) as tf.Tensor2D;
        const out = fusedCrossEntropy(layout, h, { rows, labels }, vocab, labelRows, scale, true);
        // Row selection as a one-hot matmul: wasm has no kernel for gather's gradient.
        const select = tf.oneHot(tf.tensor1d(rows, 'int32'), n).toFloat();
        const naive = (hh: tf.Tensor) => {
          const logp = tf.logSoftmax(tf.mul(tf.matMul(tf.matMul(select, hh), wte, false, true), scale));
          return tf.neg(tf.sum(tf.mul(logp, tf.oneHot(tf.tensor1d(labels, 'int32'), v))));
        };
        close(out.lossSum, naive(h), 1e-6, 'loss');
        close(out.dh as tf.Tensor, tf.grad(naive)(h), 1e-5, 'dh');
      });
    });
  }
});

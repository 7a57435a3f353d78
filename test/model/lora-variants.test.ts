// Each LoRA variant's adapted Linear (src/checkpoint/lora-variants) through linear.ts against
// TensorFlow.js autodiff of its textbook formula, on every test backend and in both layouts. DoRA's
// norm n = ‖W + s·B·A‖ is a constant for the gradient (PEFT detaches it), so the reference computes
// it outside the differentiated function.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs'; // registers the gradients autodiff needs
import { DORA } from '../../src/checkpoint/lora-variants/index.ts';
import type { ComputeLayout } from '../../src/model/backend.ts';
import { frozenRows, linearBackward, linearForward } from '../../src/model/linear.ts';
import { denseWeightSource } from '../../src/model/linear-weights.ts';
import { describeOnBackends } from './support/backends.ts';
import { gaussian, maxAbs, maxAbsDiff, rng } from './support/tiny-mpt.ts';

function randn(shape: number[], seed: number): tf.Tensor2D {
  const g = gaussian(rng(seed));
  return tf.tensor2d(
    Float32Array.from({ length: shape[0]! * shape[1]! }, () => g()),
    shape as [number, number],
  );
}

function close(a: tf.Tensor, b: tf.Tensor, what: string): void {
  const x = a.dataSync() as Float32Array;
  const y = b.dataSync() as Float32Array;
  assert.equal(x.length, y.length, `${what}: sizes`);
  const err = maxAbsDiff(x, y) / Math.max(maxAbs(y), 1e-12);
  assert.ok(err < 1e-5, `${what}: relative error ${err}`);
}

describeOnBackends('DoRA linear', () => {
  for (const layout of ['batched', 'plain-2d'] as ComputeLayout[]) {
    for (const dropout of [false, true]) {
      it(`equals autodiff of PEFT's formula with the norm detached (${layout}${dropout ? ', dropout' : ''})`, () => {
        const before = tf.memory().numTensors;
        const [n, inF, outF, r, s] = [9, 8, 6, 3, 1.75];
        const w = randn([outF, inF], 21);
        const source = denseWeightSource(layout, w.dataSync() as Float32Array, outF, inF);
        const m = Float32Array.from({ length: outF }, (_, o) => 0.5 + 0.25 * o);
        tf.tidy(() => {
          const x = randn([n, inF], 22);
          const a = randn([r, inF], 23);
          const b = randn([outF, r], 24);
          const dy = randn([n, outF], 25);
          const keep = dropout
            ? tf.tensor2d(
                Float32Array.from({ length: n * inF }, (_, i) => (i % 4 === 1 ? 0 : 4 / 3)),
                [n, inF],
              )
            : null;
          const pair = {
            a,
            at: tf.transpose(a) as tf.Tensor2D,
            b,
            bt: tf.transpose(b) as tf.Tensor2D,
            scale: s,
          };
          const dora = DORA.prepare(tf, pair, [m], frozenRows(source));
          const dense = {
            w,
            wt: layout === 'plain-2d' ? (tf.transpose(w) as tf.Tensor2D) : null,
            rowScale: null,
          };
          const f = linearForward(dense, x, dora, keep);
          const back = linearBackward(layout, dense, dy, x, dora, f.saved, keep, true);

          const norm = tf.norm(tf.add(w, tf.mul(tf.matMul(b, a), s)), 2, 1).reshape([1, outF]);
          const naive = (xx: tf.Tensor, aa: tf.Tensor, bb: tf.Tensor, mm: tf.Tensor) => {
            const c = tf.div(mm, norm);
            const xd = keep === null ? xx : tf.mul(xx, keep);
            const lora = tf.mul(tf.matMul(tf.matMul(xd, aa, false, true), bb, false, true), s);
            const baseD = tf.matMul(xd, w, false, true);
            const base = tf.matMul(xx, w, false, true);
            // y = x·Wᵀ + (c−1)⊙(x_d·Wᵀ) + c⊙(s·x_d·Aᵀ·Bᵀ)
            return tf.add(tf.add(base, tf.mul(tf.sub(c, 1), baseD)), tf.mul(c, lora));
          };
          const mt = tf.tensor2d(m, [1, outF]);
          close(f.y, naive(x, a, b, mt), 'forward');
          const [dx, dA, dB, dm] = tf.grads(naive)([x, a, b, mt], dy);
          close(back.dx as tf.Tensor, dx as tf.Tensor, 'dx');
          close(back.grads?.dA as tf.Tensor, dA as tf.Tensor, 'dA');
          close(tf.transpose(back.grads?.dBt as tf.Tensor), dB as tf.Tensor, 'dB');
          assert.equal(back.grads?.extra.length, 1);
          close(back.grads?.extra[0] as tf.Tensor, dm as tf.Tensor, 'dm');
          dora.dispose();
        });
        source.dispose();
        w.dispose();
        assert.equal(tf.memory().numTensors, before, 'every tensor freed');
      });
    }
  }
});

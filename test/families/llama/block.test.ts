// The Llama block's closed-form backward against TensorFlow.js autodiff of a plain re-statement of
// the layer (textbook RMSNorm, RoPE as a rotation of (x₁, x₂) pairs, grouped heads by gather, masked
// softmax attention, SwiGLU, LoRA as x·Aᵀ·Bᵀ·s), in both compute layouts, on the GQA 8/2 fixture with
// attention_bias, llama3 RoPE, padding and LoRA on all seven Linears. Then gradient checkpointing and
// load_8bit at the model level: the same gradients, and int8 logits equal to those of the dequantized
// weights.
import '@tensorflow/tfjs'; // registers the gradients autodiff needs
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { loraScaling } from '../../../src/checkpoint/lora-spec.ts';
import { readPeftAdapter } from '../../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../../src/families/checkpoint.ts';
import type { LlamaConfig } from '../../../src/families/llama/config.ts';
import { inverseFrequencies } from '../../../src/families/llama/rope.ts';
import { loadModel } from '../../../src/families/load-model.ts';
import type { HostTensor } from '../../../src/formats/host-tensor.ts';
import { type ComputeLayout, initBackend } from '../../../src/model/backend.ts';
import { forwardLogits } from '../../../src/model/forward.ts';
import { dequantizeRows, quantizeRows } from '../../../src/model/quantize8.ts';
import { computeLoraGradients } from '../../../src/model/train-step.ts';
import { fixtureBatch } from '../../model/support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from '../../model/support/tiny-mpt.ts';
import { readSafetensorsFile } from '../../support/safetensors-file.ts';

const DIR = fileURLToPath(new URL('../../fixtures/llama/gqa-tied-llama3/', import.meta.url));
const LINEARS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const rel = (got: Float32Array, want: Float32Array) => maxAbsDiff(got, want) / maxAbs(want);

/** Layer 0 of `c` restated for autodiff: y from x and every A and B. */
function naiveBlock(
  c: LlamaConfig,
  w: ReadonlyMap<string, Float32Array>,
  scale: number,
  rows: number,
  t: number,
  mask: Int32Array,
) {
  const p = 'model.layers.0';
  const W = (name: string, shape: number[]) => tf.tensor(w.get(name) as Float32Array, shape);
  const hd = c.headDim;
  const rms = (x: tf.Tensor, g: tf.Tensor) =>
    tf.mul(tf.div(x, tf.sqrt(tf.add(tf.mean(tf.square(x), -1, true), c.rmsNormEps))), g);
  const inv = inverseFrequencies(c.rope, hd);
  const ang = tf.tensor2d(Array.from({ length: t }, (_, pos) => [...inv].map((f) => Math.fround(pos * f))));
  const [cos, sin] = [tf.reshape(tf.cos(ang), [1, t, 1, hd / 2]), tf.reshape(tf.sin(ang), [1, t, 1, hd / 2])];
  const rope = (x: tf.Tensor, heads: number) => {
    const x4 = tf.reshape(x, [rows, t, heads, hd]);
    const [a, b] = tf.split(x4, 2, 3) as [tf.Tensor, tf.Tensor];
    const y = tf.concat([tf.sub(tf.mul(a, cos), tf.mul(b, sin)), tf.add(tf.mul(b, cos), tf.mul(a, sin))], 3);
    return y; // [rows, t, heads, hd]
  };
  const allowed = tf.tensor4d(
    Array.from({ length: rows * t * t }, (_, i) => {
      const [b, qi, kj] = [Math.floor(i / (t * t)), Math.floor(i / t) % t, i % t];
      return kj <= qi && mask[b * t + kj] === 1 ? 1 : 0;
    }),
    [rows, 1, t, t],
  );
  const group = tf.tensor1d(
    Array.from({ length: c.nHeads }, (_, j) => Math.floor(j / (c.nHeads / c.nKvHeads))),
    'int32',
  );
  return (x: tf.Tensor, lora: Record<string, { a: tf.Tensor; b: tf.Tensor }>) => {
    const lin = (m: string, part: string, input: tf.Tensor, bias: boolean) => {
      const name = `${p}.${part}.${m}`;
      const wt = w.get(`${name}.weight`) as Float32Array;
      const out = wt.length / (input.shape[1] as number);
      let y = tf.matMul(input, W(`${name}.weight`, [out, input.shape[1] as number]), false, true);
      if (bias) y = tf.add(y, W(`${name}.bias`, [out]));
      const l = lora[m] as { a: tf.Tensor; b: tf.Tensor };
      return tf.add(y, tf.mul(tf.matMul(tf.matMul(input, l.a, false, true), l.b, false, true), scale));
    };
    const h = rms(x, W(`${p}.input_layernorm.weight`, [c.dModel]));
    const q = tf.transpose(rope(lin('q_proj', 'self_attn', h, true), c.nHeads), [0, 2, 1, 3]);
    const k = tf.gather(rope(lin('k_proj', 'self_attn', h, true), c.nKvHeads), group, 2);
    const v = tf.gather(tf.reshape(lin('v_proj', 'self_attn', h, true), [rows, t, c.nKvHeads, hd]), group, 2);
    const scores = tf.div(tf.matMul(q, tf.transpose(k, [0, 2, 1, 3]), false, true), Math.sqrt(hd));
    const masked = tf.where(
      tf.cast(tf.broadcastTo(allowed, scores.shape), 'bool'),
      scores,
      tf.fill(scores.shape, -1e9),
    );
    const ctx = tf.matMul(tf.softmax(masked), tf.transpose(v, [0, 2, 1, 3]));
    const ctx2 = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [rows * t, c.nHeads * hd]);
    const x1 = tf.add(x, lin('o_proj', 'self_attn', ctx2, true));
    const g = rms(x1, W(`${p}.post_attention_layernorm.weight`, [c.dModel]));
    const gate = lin('gate_proj', 'mlp', g, false);
    const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), lin('up_proj', 'mlp', g, false));
    return tf.add(x1, lin('down_proj', 'mlp', act, false));
  };
}

describe('Llama block backward equals autodiff', () => {
  before(async () => {
    await initBackend('cpu');
  });

  for (const layout of ['plain-2d', 'batched'] as ComputeLayout[]) {
    it(`dx and every LoRA gradient, GQA 8/2 + attention_bias + llama3 RoPE + padding (${layout})`, async () => {
      const ckpt = await openCheckpoint(DIR);
      const c = ckpt.config as LlamaConfig;
      const model = await loadModel(c, ckpt.tensors(), { layout });
      const adapter = await readPeftAdapter(join(DIR, 'adapter_init'));
      model.configureLora(adapter.config.lora);
      const lw = new Map([...adapter.tensors].map(([k, t]) => [k, t.data]));
      model.setLoraWeights(lw);
      const weights = await readSafetensorsFile(join(DIR, 'model.safetensors'));
      const { rows, seqLen: t, attentionMask } = fixtureBatch(DIR);
      const n = rows * t;
      const x = tf.randomNormal([n, c.dModel], 0, 1, 'float32', 3) as tf.Tensor2D;
      const dy = tf.randomNormal([n, c.dModel], 0, 1, 'float32', 4) as tf.Tensor2D;
      const pass = model.beginForward({ rows, seqLen: t, attentionMask }, null);
      const f = model.blockForward(pass, 0, {}, x, true);
      const back = model.blockBackward(pass, 0, {}, dy, f.saved as NonNullable<typeof f.saved>, true);
      const fast = new Map(back.grads.map((g) => [g.module, g]));
      const naive = naiveBlock(c, weights, loraScaling(adapter.config.lora), rows, t, attentionMask);
      const key = (m: string, ab: 'A' | 'B') =>
        `base_model.model.model.layers.0.${m.endsWith('proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}.lora_${ab}.weight`;
      const shapeOf = (m: string, ab: 'A' | 'B') => {
        const target = model.loraTargets.find((tg) => tg.layer === 0 && tg.module === m);
        if (target === undefined) throw new Error(`no target ${m}`);
        const r = adapter.config.lora.r;
        return ab === 'A' ? [r, target.inFeatures] : [target.outFeatures, r];
      };
      const vars = LINEARS.flatMap((m) => [
        tf.tensor(get(lw, key(m, 'A')), shapeOf(m, 'A')),
        tf.tensor(get(lw, key(m, 'B')), shapeOf(m, 'B')),
      ]);
      const loss = (xi: tf.Tensor, ...ab: tf.Tensor[]) => {
        const lora = Object.fromEntries(
          LINEARS.map((m, i) => [m, { a: ab[2 * i] as tf.Tensor, b: ab[2 * i + 1] as tf.Tensor }]),
        );
        return tf.sum(tf.mul(naive(xi, lora), dy)) as tf.Scalar;
      };
      const grads = tf.grads(loss)([x, ...vars]);
      const errs: string[] = [];
      const check = (what: string, got: tf.Tensor, want: tf.Tensor) => {
        const e = rel(got.dataSync() as Float32Array, want.dataSync() as Float32Array);
        if (!(e < 1e-4)) errs.push(`${what}: ${e}`);
      };
      check(
        'y',
        f.y,
        naive(
          x,
          Object.fromEntries(
            LINEARS.map((m, i) => [m, { a: vars[2 * i] as tf.Tensor, b: vars[2 * i + 1] as tf.Tensor }]),
          ),
        ),
      );
      check('dx', back.dx as tf.Tensor, grads[0] as tf.Tensor);
      LINEARS.forEach((m, i) => {
        const g = fast.get(m);
        assert.ok(g !== undefined, `no gradient for ${m}`);
        check(`${m} dA`, g.dA, grads[1 + 2 * i] as tf.Tensor);
        check(`${m} dB`, tf.transpose(g.dBt), grads[2 + 2 * i] as tf.Tensor);
      });
      assert.deepEqual(errs, []);
      assert.equal(fast.size, 7);
      model.dispose();
    });
  }

  it('gradient checkpointing gives the same loss and gradients', async () => {
    const ckpt = await openCheckpoint(DIR);
    const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: 'plain-2d' });
    const adapter = await readPeftAdapter(join(DIR, 'adapter_init'));
    model.configureLora(adapter.config.lora);
    model.setLoraWeights(new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
    const batch = fixtureBatch(DIR);
    const plain = await computeLoraGradients(model, batch);
    const ckpted = await computeLoraGradients(model, batch, { gradientCheckpointing: true });
    assert.ok(Math.abs(plain.lossSum - ckpted.lossSum) <= 1e-6 * plain.lossSum);
    for (const [k, g] of plain.grads) assert.ok(rel(get(ckpted.grads, k), g) < 1e-5, k);
    assert.equal(ckpted.grads.size, 28);
    model.dispose();
  });

  it('load_8bit computes the logits of the dequantized weights', async () => {
    const ckpt = await openCheckpoint(DIR);
    const dequantized = async function* (): AsyncIterable<HostTensor> {
      for await (const t of ckpt.tensors()) {
        const [outF, inF] = t.shape as [number, number];
        yield /_proj\.weight$/.test(t.name)
          ? { ...t, data: dequantizeRows(quantizeRows(t.data, outF, inF), false) }
          : t;
      }
    };
    const int8 = await loadModel(ckpt.config, ckpt.tensors(), { layout: 'plain-2d', load8bit: true });
    const ref = await loadModel(ckpt.config, dequantized(), { layout: 'plain-2d' });
    const batch = fixtureBatch(DIR);
    const a = forwardLogits(int8, batch);
    const b = forwardLogits(ref, batch);
    assert.ok(rel(a.dataSync() as Float32Array, b.dataSync() as Float32Array) < 1e-5);
    const full = await loadModel(ckpt.config, ckpt.tensors(), { layout: 'plain-2d' });
    const f = forwardLogits(full, batch);
    // The int8 rounding is visible (the test would pass trivially if nothing were quantized).
    assert.ok(maxAbsDiff(a.dataSync() as Float32Array, f.dataSync() as Float32Array) > 1e-4);
    tf.dispose([a, b, f]);
    for (const m of [int8, ref, full]) m.dispose();
  });
});

function get(m: ReadonlyMap<string, Float32Array>, k: string): Float32Array {
  const v = m.get(k);
  if (v === undefined) throw new Error(`missing ${k}`);
  return v;
}

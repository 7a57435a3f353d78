// The whole micro-batch step (forward, fused loss, closed-form backward) against the naive autodiff
// MPT, plus the options that must not change the result: layouts, gradient checkpointing, int8.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { type LoraSettings, loraScaling } from '../../src/checkpoint/lora-spec.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { MPT_LINEARS, type MptLinearName } from '../../src/families/mpt/architecture.ts';
import type { MptConfig } from '../../src/families/mpt/config.ts';
import type { ComputeLayout } from '../../src/model/backend.ts';
import type { CausalLm } from '../../src/model/causal-lm.ts';
import { dropoutMask } from '../../src/model/dropout.ts';
import { evaluateLoss, forwardLogits, forwardLogitsAt } from '../../src/model/forward.ts';
import { dequantizeRows, quantizeRows } from '../../src/model/quantize8.ts';
import { computeLoraGradients, type TrainStepResult } from '../../src/model/train-step.ts';
import { describeOnBackends } from './support/backends.ts';
import { naiveMpt } from './support/naive-mpt.ts';
import {
  hostTensors,
  maxAbs,
  maxAbsDiff,
  randomBatch,
  randomLora,
  randomWeights,
  tinyConfig,
} from './support/tiny-mpt.ts';

const ALL: readonly MptLinearName[] = ['Wqkv', 'out_proj', 'up_proj', 'down_proj'];

interface Setup {
  readonly config: MptConfig;
  readonly weights: Map<string, Float32Array>;
  readonly lora: LoraSettings;
  readonly loraWeights: Map<string, Float32Array>;
  readonly model: CausalLm;
}

async function setup(
  config: MptConfig,
  lora: LoraSettings,
  layout: ComputeLayout,
  opts: { load8bit?: boolean; weights?: Map<string, Float32Array> } = {},
): Promise<Setup> {
  const weights = opts.weights ?? randomWeights(config, 11);
  // A small vocab chunk so the tiny vocab is still cut into several (uneven) chunks.
  const model = await loadModel(config, hostTensors(config, weights), {
    layout,
    vocabChunk: 16,
    load8bit: opts.load8bit ?? false,
  });
  const targets = model.configureLora(lora);
  const loraWeights = randomLora(targets, lora.r, 12);
  model.setLoraWeights(loraWeights);
  return { config, weights, lora, loraWeights, model };
}

function assertGradsClose(
  got: TrainStepResult['grads'],
  want: ReadonlyMap<string, Float32Array>,
  rel: number,
): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [name, w] of want) {
    const g = got.get(name) as Float32Array;
    const err = maxAbsDiff(g, w) / maxAbs(w);
    assert.ok(err < rel, `${name}: relative error ${err}`);
    assert.ok(maxAbs(w) > 0, `${name}: zero reference gradient`);
  }
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describeOnBackends('LoRA training step', (backend) => {
  const layouts: ComputeLayout[] = ['plain-2d', 'batched'];
  for (const layout of layouts) {
    it(`equals autodiff of the naive model: 6 heads, LoRA on every linear, clip_qkv, padding (${layout})`, async () => {
      const config = tinyConfig({}, { clip_qkv: 1.0 });
      const s = await setup(config, { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ALL }, layout);
      const batch = randomBatch(config, 3, 10, 5);
      const got = await computeLoraGradients(s.model, batch);
      const want = naiveMpt(config, s.weights, { r: 4, scale: 2, weights: s.loraWeights }, batch);
      // 3 rows x 9 shifted positions, minus 3 padded targets of row 1 and the 3 prompt targets of row 2.
      assert.equal(got.supervisedTokens, 3 * 9 - 3 - 3);
      assert.ok(relErr(got.lossSum, want.lossSum) < 1e-5, `loss ${got.lossSum} vs ${want.lossSum}`);
      assertGradsClose(got.grads, want.grads, 1e-4);
      s.model.dispose();
    });
  }

  it('equals the naive model with qk_ln, logit_scale, softmax_scale, expansion 3, rsLoRA and dropout', async () => {
    const config = tinyConfig(
      { d_model: 16, n_heads: 8, expansion_ratio: 3, logit_scale: 'inv_sqrt_d_model' },
      { qk_ln: true, softmax_scale: 0.3 },
    );
    const lora = {
      r: 2,
      loraAlpha: 4,
      loraDropout: 0.3,
      targetModules: ['Wqkv', 'down_proj'],
      useRslora: true,
    };
    const s = await setup(config, lora, 'plain-2d');
    const batch = randomBatch(config, 3, 9, 6);
    const dropout = { seed: 5, microBatch: 17 };
    const got = await computeLoraGradients(s.model, batch, { dropout });
    const keep = (layer: number, module: string, count: number) =>
      dropoutMask(
        dropout,
        { layer, index: MPT_LINEARS.indexOf(module as MptLinearName), perBlock: MPT_LINEARS.length },
        0.3,
        count,
      );
    const want = naiveMpt(
      config,
      s.weights,
      { r: 2, scale: loraScaling(lora), weights: s.loraWeights, keep },
      batch,
    );
    assert.ok(relErr(got.lossSum, want.lossSum) < 1e-5, `loss ${got.lossSum} vs ${want.lossSum}`);
    assertGradsClose(got.grads, want.grads, 1e-4);
    const other = await computeLoraGradients(s.model, batch, { dropout: { seed: 5, microBatch: 18 } });
    assert.notDeepEqual(other.grads, got.grads, 'another micro-batch id must draw other masks');
    s.model.dispose();
  });

  it('gives the same loss and gradients with gradient checkpointing', async () => {
    const config = tinyConfig({ n_layers: 3 });
    const lora = { r: 4, loraAlpha: 16, loraDropout: 0.1, targetModules: ALL };
    const s = await setup(config, lora, 'plain-2d');
    const batch = randomBatch(config, 3, 8, 7);
    const dropout = { seed: 1, microBatch: 2 };
    const plain = await computeLoraGradients(s.model, batch, { dropout });
    const ckpt = await computeLoraGradients(s.model, batch, { dropout, gradientCheckpointing: true });
    assert.ok(relErr(ckpt.lossSum, plain.lossSum) < 1e-6);
    assertGradsClose(ckpt.grads, plain.grads, 1e-6);
    s.model.dispose();
  });

  it('with load_8bit equals the float model on the dequantized weights, and stays near the float model', async () => {
    const config = tinyConfig();
    const lora = { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ALL };
    const weights = randomWeights(config, 11);
    const dequantized = new Map(
      [...weights].map(([name, w]) => {
        if (!/(Wqkv|out_proj|up_proj|down_proj)\.weight$/.test(name)) return [name, w];
        const inF = name.includes('down_proj') ? 4 * config.dModel : config.dModel;
        return [name, dequantizeRows(quantizeRows(w, w.length / inF, inF), false)];
      }),
    );
    const q = await setup(config, lora, 'plain-2d', { load8bit: true, weights });
    const ref = await setup(config, lora, 'plain-2d', { weights: dequantized });
    const full = await setup(config, lora, 'plain-2d', { weights });
    const batch = randomBatch(config, 3, 10, 8);
    const [a, b, c] = [
      await computeLoraGradients(q.model, batch),
      await computeLoraGradients(ref.model, batch),
      await computeLoraGradients(full.model, batch),
    ];
    assert.ok(relErr(a.lossSum, b.lossSum) < 1e-6);
    assertGradsClose(a.grads, b.grads, 1e-5);
    // Stated tolerance of int8 weights against float32 on this model: loss within 1%, grads 5%.
    assert.ok(relErr(a.lossSum, c.lossSum) < 1e-2, `loss ${a.lossSum} vs ${c.lossSum}`);
    assertGradsClose(a.grads, c.grads, 5e-2);
    for (const x of [q, ref, full]) x.model.dispose();
  });

  it('computes logits equal to the naive model and an eval loss equal to the training loss', async () => {
    const config = tinyConfig({}, { clip_qkv: 1.5 });
    const s = await setup(
      config,
      { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'] },
      'plain-2d',
    );
    const batch = randomBatch(config, 3, 7, 9);
    const logits = forwardLogits(s.model, batch);
    const want = naiveMpt(config, s.weights, { r: 4, scale: 2, weights: s.loraWeights }, batch);
    const got = logits.dataSync() as Float32Array;
    logits.dispose();
    assert.ok(maxAbsDiff(got, want.logits) / maxAbs(want.logits) < 1e-5);
    const at = forwardLogitsAt(s.model, batch, Int32Array.from([20, 3]));
    const v = config.vocabSize;
    const picked = [...want.logits.subarray(20 * v, 21 * v), ...want.logits.subarray(3 * v, 4 * v)];
    assert.ok(
      maxAbsDiff(at.dataSync() as Float32Array, Float32Array.from(picked)) / maxAbs(want.logits) < 1e-5,
    );
    at.dispose();
    const ev = await evaluateLoss(s.model, batch);
    const tr = await computeLoraGradients(s.model, batch);
    assert.equal(ev.supervisedTokens, tr.supervisedTokens);
    assert.ok(relErr(ev.lossSum, tr.lossSum) < 1e-6);
    s.model.dispose();
  });

  it(`does not grow tf.memory().numTensors over steps (${backend})`, async () => {
    const config = tinyConfig();
    const lora = { r: 4, loraAlpha: 8, loraDropout: 0.1, targetModules: ALL };
    const s = await setup(config, lora, 'plain-2d');
    const batch = randomBatch(config, 3, 8, 10);
    const counts: number[] = [];
    for (let step = 0; step < 4; step++) {
      s.model.setLoraWeights(s.loraWeights);
      await computeLoraGradients(s.model, batch, {
        dropout: { seed: 3, microBatch: step },
        gradientCheckpointing: step % 2 === 1,
      });
      await evaluateLoss(s.model, batch);
      counts.push(tf.memory().numTensors);
    }
    assert.equal(new Set(counts).size, 1, `numTensors over steps: ${counts.join(', ')}`);
    s.model.dispose();
  });

  it('gives a zero loss sum and zero gradients for a micro-batch with nothing supervised', async () => {
    const config = tinyConfig();
    const s = await setup(
      config,
      { r: 2, loraAlpha: 2, loraDropout: 0, targetModules: ['Wqkv'] },
      'plain-2d',
    );
    const batch = { ...randomBatch(config, 2, 5, 1), labels: new Int32Array(10).fill(-100) };
    const res = await computeLoraGradients(s.model, batch);
    assert.equal(res.lossSum, 0);
    assert.equal(res.supervisedTokens, 0);
    assert.equal(res.grads.size, 4);
    for (const g of res.grads.values()) assert.ok(g.every((v) => v === 0));
    s.model.dispose();
  });

  it('names the bad field of an invalid micro-batch', async () => {
    const config = tinyConfig();
    const s = await setup(
      config,
      { r: 2, loraAlpha: 2, loraDropout: 0, targetModules: ['Wqkv'] },
      'plain-2d',
    );
    const batch = randomBatch(config, 2, 4, 1);
    batch.labels[5] = config.vocabSize;
    await assert.rejects(computeLoraGradients(s.model, batch), /labels\[1\]\[1\] = 40/);
    s.model.dispose();
  });
});

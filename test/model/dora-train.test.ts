// DoRA training parity with PEFT 0.21 (tools/reference/make_dora_train_fixtures.py): the loss and the
// gradients of every lora_A, lora_B and lora_magnitude_vector equal PEFT's at the golden LoRA bounds,
// on every backend, with and without gradient checkpointing, and with lora_dropout (PEFT run on
// lora-mpt's dropout masks). int8 weights give the float model's numbers on the dequantized weights.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { DORA } from '../../src/checkpoint/lora-variants/index.ts';
import { initialVariantTensors } from '../../src/checkpoint/lora-variants/initial-tensors.ts';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModel } from '../../src/families/load-model.ts';
import type { HostTensor } from '../../src/formats/host-tensor.ts';
import { layoutFor } from '../../src/model/backend.ts';
import { dequantizeRows, quantizeRows } from '../../src/model/quantize8.ts';
import { computeLoraGradients, type TrainStepOptions } from '../../src/model/train-step.ts';
import { readSafetensorsFile } from '../support/safetensors-file.ts';
import { describeOnBackends } from './support/backends.ts';
import { fixtureBatch } from './support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from './support/tiny-mpt.ts';

const ROOT = fileURLToPath(new URL('../fixtures/dora-train/', import.meta.url));
const MODELS = fileURLToPath(new URL('../fixtures/mpt/', import.meta.url));
const CASES = readdirSync(ROOT).sort();
/** The golden LoRA test's bounds (test/model/golden.test.ts). */
const LOSS_TOL = 1e-4;
const GRAD_TOL = 1e-3;

interface CaseInfo {
  readonly base: string;
  /** How much PEFT's A and B gradients change when the norm is not detached (the least, relative). */
  readonly undetached_min_rel_change_of_A_B_grads: number;
  readonly dropout: { readonly seed: number; readonly micro_batch: number } | null;
}

async function loadCase(name: string, backend: string, load8bit = false, dequantize = false) {
  const info = JSON.parse(readFileSync(join(ROOT, name, 'case.json'), 'utf8')) as CaseInfo;
  const ckpt = await openCheckpoint(join(MODELS, info.base));
  const tensors = async function* (): AsyncIterable<HostTensor> {
    for await (const t of ckpt.tensors()) {
      const [outF, inF] = t.shape as [number, number];
      yield dequantize && /_proj\.weight$|Wqkv\.weight$/.test(t.name)
        ? { ...t, data: dequantizeRows(quantizeRows(t.data, outF, inF), false) }
        : t;
    }
  };
  const model = await loadModel(ckpt.config, tensors(), { layout: layoutFor(backend), load8bit });
  const adapter = await readPeftAdapter(join(ROOT, name, 'adapter'));
  model.configureLora({ ...adapter.config.lora, useDora: true });
  model.setLoraWeights(new Map([...adapter.tensors].map(([k, t]) => [k, t.data])));
  const batch = fixtureBatch(join(MODELS, info.base));
  const options: TrainStepOptions =
    info.dropout === null
      ? {}
      : { dropout: { seed: info.dropout.seed, microBatch: info.dropout.micro_batch } };
  const expected = await readSafetensorsFile(join(ROOT, name, 'expected.safetensors'));
  return { info, model, adapter, batch, options, expected };
}

const rel = (got: Float32Array, want: Float32Array) => maxAbsDiff(got, want) / maxAbs(want);

describeOnBackends('DoRA training parity with PEFT', (backend) => {
  for (const name of CASES) {
    for (const gradientCheckpointing of [false, true]) {
      it(`${name}${gradientCheckpointing ? ' with gradient checkpointing' : ''}: loss and the gradients of A, B and the magnitude`, async (t) => {
        const c = await loadCase(name, backend);
        const step = await computeLoraGradients(c.model, c.batch, { ...c.options, gradientCheckpointing });
        const n = step.supervisedTokens;
        assert.equal(n, c.expected.get('supervised_tokens')?.[0]);
        const loss = c.expected.get('loss')?.[0] as number;
        const lossErr = Math.abs(step.lossSum / n - loss) / loss;
        assert.deepEqual([...step.grads.keys()].sort(), [...c.adapter.tensors.keys()].sort());
        const worst = { A: 0, B: 0, m: 0 };
        for (const [k, g] of step.grads) {
          const want = c.expected.get(k) as Float32Array;
          assert.ok(maxAbs(want) > 0, `${k}: PEFT's gradient is zero`);
          const err = rel(
            g.map((v) => v / n),
            want,
          );
          const kind = k.endsWith('lora_A.weight') ? 'A' : k.endsWith('lora_B.weight') ? 'B' : 'm';
          worst[kind] = Math.max(worst[kind], err);
          assert.ok(err < GRAD_TOL, `${k}: relative error ${err}`);
        }
        t.diagnostic(
          `${name} [${backend}] loss rel err ${lossErr.toExponential(2)}, grads A ${worst.A.toExponential(2)} B ${worst.B.toExponential(2)} m ${worst.m.toExponential(2)}`,
        );
        assert.ok(lossErr < LOSS_TOL, `loss ${lossErr}`);
        // Letting the norm's gradient in would move A's and B's gradients far past the bound.
        assert.ok(c.info.undetached_min_rel_change_of_A_B_grads > 10 * GRAD_TOL);
        c.model.dispose();
      });
    }
  }

  it('with load_8bit equals the float model on the dequantized weights (dora-h6-all)', async () => {
    const q = await loadCase('dora-h6-all', backend, true);
    const ref = await loadCase('dora-h6-all', backend, false, true);
    const a = await computeLoraGradients(q.model, q.batch);
    const b = await computeLoraGradients(ref.model, ref.batch);
    assert.ok(Math.abs(a.lossSum - b.lossSum) / b.lossSum < 1e-6);
    for (const [k, g] of b.grads) assert.ok(rel(a.grads.get(k) as Float32Array, g) < 1e-5, k);
    q.model.dispose();
    ref.model.dispose();
  });

  it('does not grow tf.memory().numTensors over DoRA steps with dropout', async () => {
    const c = await loadCase('dora-h6-dropout', backend);
    await computeLoraGradients(c.model, c.batch, c.options);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      c.model.setLoraWeights(new Map([...c.adapter.tensors].map(([k, t]) => [k, t.data])));
      await computeLoraGradients(c.model, c.batch, { ...c.options, gradientCheckpointing: i === 1 });
    }
    assert.equal(tf.memory().numTensors, before);
    c.model.dispose();
  });
});

describe('DoRA initial magnitudes', () => {
  for (const name of CASES) {
    it(`${name}: are PEFT's ‖W‖ per row`, async () => {
      const info = JSON.parse(readFileSync(join(ROOT, name, 'case.json'), 'utf8')) as CaseInfo;
      const ckpt = await openCheckpoint(join(MODELS, info.base));
      const adapter = await readPeftAdapter(join(ROOT, name, 'adapter'));
      const expected = await readSafetensorsFile(join(ROOT, name, 'expected.safetensors'));
      const targets = loraTargets(ckpt.config, { ...adapter.config.lora, useDora: true });
      const got = await initialVariantTensors(DORA, targets, (n) => ckpt.readTensor(n));
      assert.equal(got.size, targets.length);
      for (const [k, m] of got) assert.ok(rel(m, expected.get(`init:${k}`) as Float32Array) < 1e-6, k);
    });
  }
});

// Golden parity with Hugging Face transformers (native MptForCausalLM) + PEFT, from the fixtures of
// tools/reference/make_mpt_fixtures.py: logits with and without the adapter, the loss, every LoRA
// gradient, and three clipped AdamW steps, for every case in test/fixtures/mpt, on wasm and cpu.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { layoutFor } from '../../src/model/backend.ts';
import { forwardLogits } from '../../src/model/forward.ts';
import { computeLoraGradients } from '../../src/model/train-step.ts';
import { adamwState, adamwStep } from '../../src/train/adamw.ts';
import { clipByGlobalNorm } from '../../src/train/clip.ts';
import { readSafetensorsFile } from '../support/safetensors-file.ts';
import { describeOnBackends } from './support/backends.ts';
import { fixtureBatch } from './support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from './support/tiny-mpt.ts';

const ROOT = fileURLToPath(new URL('../fixtures/mpt/', import.meta.url));
const CASES = readdirSync(ROOT).sort();

/** The parity bounds: logits and loss 1e-4 relative, gradients 1e-3 (relative to the
 * largest entry of each tensor, so near-zero entries are not divided by ~0). */
const LOGITS_TOL = 1e-4;
const GRAD_TOL = 1e-3;

function rel(got: Float32Array, want: Float32Array): number {
  return maxAbsDiff(got, want) / maxAbs(want);
}

async function loadCase(name: string, backend: string) {
  const dir = join(ROOT, name);
  const ckpt = await openCheckpoint(dir);
  const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: layoutFor(backend) });
  const adapter = await readPeftAdapter(join(dir, 'adapter_init'));
  const expected = await readSafetensorsFile(join(dir, 'expected.safetensors'));
  const batch = fixtureBatch(dir);
  const loraWeights = new Map([...adapter.tensors].map(([k, t]) => [k, t.data]));
  return { dir, model, adapter, expected, batch, loraWeights };
}

const get = (m: Map<string, Float32Array>, k: string) => {
  const v = m.get(k);
  if (v === undefined) throw new Error(`expected.safetensors lacks ${k}`);
  return v;
};

describeOnBackends('golden parity with HF transformers + PEFT', (backend) => {
  for (const name of CASES) {
    it(`${name}: logits, loss and LoRA gradients`, async (t) => {
      const c = await loadCase(name, backend);
      const base = forwardLogits(c.model, c.batch);
      const baseErr = rel(base.dataSync() as Float32Array, get(c.expected, 'logits_base'));
      base.dispose();
      c.model.configureLora(c.adapter.config.lora);
      c.model.setLoraWeights(c.loraWeights);
      const logits = forwardLogits(c.model, c.batch);
      const logitsErr = rel(logits.dataSync() as Float32Array, get(c.expected, 'logits'));
      logits.dispose();
      const step = await computeLoraGradients(c.model, c.batch);
      assert.equal(step.supervisedTokens, get(c.expected, 'supervised_tokens')[0]);
      const lossSum = get(c.expected, 'loss_sum')[0] as number;
      const loss = get(c.expected, 'loss')[0] as number;
      const lossErr = Math.max(
        Math.abs(step.lossSum - lossSum) / lossSum,
        Math.abs(step.lossSum / step.supervisedTokens - loss) / loss,
      );
      let gradErr = 0;
      for (const [k, g] of step.grads) {
        // HF's gradients are of the mean loss; ours are of the sum.
        const mean = g.map((v) => v / step.supervisedTokens);
        gradErr = Math.max(gradErr, rel(mean, get(c.expected, k)));
      }
      t.diagnostic(
        `${name} [${backend}] max rel err: logits_base ${baseErr.toExponential(2)}, logits ${logitsErr.toExponential(2)}, loss ${lossErr.toExponential(2)}, grads ${gradErr.toExponential(2)} (${step.grads.size} tensors)`,
      );
      assert.equal(step.grads.size, c.adapter.tensors.size);
      assert.ok(baseErr < LOGITS_TOL, `logits_base ${baseErr}`);
      assert.ok(logitsErr < LOGITS_TOL, `logits ${logitsErr}`);
      assert.ok(lossErr < LOGITS_TOL, `loss ${lossErr}`);
      assert.ok(gradErr < GRAD_TOL, `grads ${gradErr}`);
      c.model.dispose();
    });

    it(`${name}: three clipped AdamW steps reach PEFT's adapter_step3`, async () => {
      const c = await loadCase(name, backend);
      const recipe = JSON.parse(readFileSync(join(c.dir, 'recipe.json'), 'utf8')) as {
        lr: number;
        max_grad_norm: number;
        steps: number;
      };
      c.model.configureLora(c.adapter.config.lora);
      const names = [...c.loraWeights.keys()].sort();
      const sizes = names.map((k) => get(c.loraWeights, k).length);
      const params = new Float32Array(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      for (const k of names) {
        params.set(get(c.loraWeights, k), at);
        at += get(c.loraWeights, k).length;
      }
      const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
      const views = () =>
        new Map(
          names.map((k, i) => [
            k,
            params.subarray(offsets[i], (offsets[i] as number) + (sizes[i] as number)),
          ]),
        );
      const state = adamwState(params);
      const losses: number[] = [];
      for (let s = 0; s < recipe.steps; s++) {
        c.model.setLoraWeights(views());
        const step = await computeLoraGradients(c.model, c.batch);
        losses.push(step.lossSum / step.supervisedTokens);
        const grad = new Float32Array(params.length);
        let o = 0;
        for (const k of names) {
          const g = get(step.grads, k);
          for (let i = 0; i < g.length; i++) grad[o + i] = (g[i] as number) / step.supervisedTokens;
          o += g.length;
        }
        clipByGlobalNorm(grad, recipe.max_grad_norm);
        adamwStep(state, grad, recipe.lr);
      }
      const stepLosses = get(c.expected, 'step_losses');
      losses.forEach((l, i) => {
        assert.ok(
          Math.abs(l - (stepLosses[i] as number)) / (stepLosses[i] as number) < LOGITS_TOL,
          `step ${i} loss`,
        );
      });
      const after = await readPeftAdapter(join(c.dir, 'adapter_step3'));
      for (const [k, v] of views()) {
        const want = after.tensors.get(k)?.data;
        assert.ok(want !== undefined, `adapter_step3 lacks ${k}`);
        assert.ok(rel(v, want) < GRAD_TOL, `${k}: ${rel(v, want)}`);
      }
      c.model.dispose();
      assert.equal(tf.memory().numTensors, 0);
    });
  }
});

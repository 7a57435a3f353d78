// Golden parity of the Llama family with transformers' LlamaForCausalLM + PEFT, from the fixtures of
// tools/reference/make_llama_fixtures.py (GQA 8/2 and plain multi-head; tied and untied; RoPE
// default and llama3; attention_bias, mlp_bias; LoRA, rsLoRA, DoRA): logits with and without the
// adapter, the loss, every LoRA gradient, three clipped AdamW steps, PEFT's merge_and_unload weights,
// and greedy / beam search token for token, on tensorflow, wasm and cpu.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { mergedTensors, mergePlan } from '../../../src/checkpoint/merge-adapter.ts';
import { readPeftAdapter } from '../../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../../src/families/checkpoint.ts';
import { loadModel, loadModelWithAdapter } from '../../../src/families/load-model.ts';
import { decode, TRANSFORMERS_DEFAULTS } from '../../../src/generate/decode.ts';
import { cachedLogits, uncachedLogits } from '../../../src/generate/logits-source.ts';
import { layoutFor } from '../../../src/model/backend.ts';
import type { CausalLm } from '../../../src/model/causal-lm.ts';
import { forwardLogits } from '../../../src/model/forward.ts';
import { computeLoraGradients } from '../../../src/model/train-step.ts';
import { adamwState, adamwStep } from '../../../src/train/adamw.ts';
import { clipByGlobalNorm } from '../../../src/train/clip.ts';
import { describeOnBackends } from '../../model/support/backends.ts';
import { fixtureBatch } from '../../model/support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from '../../model/support/tiny-mpt.ts';
import { readSafetensorsFile } from '../../support/safetensors-file.ts';

const ROOT = fileURLToPath(new URL('../../fixtures/llama/', import.meta.url));
// One folder per case (files beside them, e.g. flops.json, are other tests' fixtures).
const CASES = readdirSync(ROOT, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();
const LOGITS_TOL = 1e-4;
const GRAD_TOL = 1e-3;
const ADAPTER_TOL = 1e-4;
const MERGE_TOL = 1e-5;

const rel = (got: Float32Array, want: Float32Array) => maxAbsDiff(got, want) / maxAbs(want);

function get(m: ReadonlyMap<string, Float32Array>, k: string): Float32Array {
  const v = m.get(k);
  if (v === undefined) throw new Error(`fixture lacks ${k}`);
  return v;
}

async function loadCase(name: string, backend: string) {
  const dir = join(ROOT, name);
  const ckpt = await openCheckpoint(dir);
  const model = await loadModel(ckpt.config, ckpt.tensors(), { layout: layoutFor(backend) });
  const adapter = await readPeftAdapter(join(dir, 'adapter_init'));
  const expected = await readSafetensorsFile(join(dir, 'expected.safetensors'));
  const loraWeights = new Map([...adapter.tensors].map(([k, t]) => [k, t.data]));
  return { dir, model, adapter, expected, batch: fixtureBatch(dir), loraWeights };
}

interface Run {
  readonly prompt: number[];
  readonly num_beams: number;
  readonly eos_token_id: number | null;
  readonly new_tokens: number[];
}

async function decodeAll(model: CausalLm, runs: readonly Run[], maxNew: number, cached: boolean) {
  const wrong: string[] = [];
  for (const r of runs) {
    const source = cached ? cachedLogits(model) : uncachedLogits(model);
    const out = await decode(source, Int32Array.from(r.prompt), {
      maxNewTokens: maxNew,
      numBeams: r.num_beams,
      doSample: false,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed: null,
      eosTokenId: r.eos_token_id,
      ...TRANSFORMERS_DEFAULTS,
    });
    source.dispose();
    if (JSON.stringify([...out.tokens]) !== JSON.stringify(r.new_tokens))
      wrong.push(
        `prompt ${r.prompt.length}, beams ${r.num_beams}: got [${[...out.tokens]}], want [${r.new_tokens}]`,
      );
  }
  return wrong;
}

describeOnBackends('Llama golden parity with transformers + PEFT', (backend) => {
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
      const lossErr = Math.abs(step.lossSum - lossSum) / lossSum;
      let gradErr = 0;
      for (const [k, g] of step.grads) {
        const mean = g.map((v) => v / step.supervisedTokens); // HF's are of the mean loss
        gradErr = Math.max(gradErr, rel(mean, get(c.expected, k)));
      }
      t.diagnostic(
        `${name} [${backend}] rel err: logits_base ${baseErr.toExponential(2)}, logits ${logitsErr.toExponential(2)}, loss ${lossErr.toExponential(2)}, grads ${gradErr.toExponential(2)} (${step.grads.size})`,
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
      const params = new Float32Array(names.reduce((n, k) => n + get(c.loraWeights, k).length, 0));
      const offsets: number[] = [];
      let at = 0;
      for (const k of names) {
        offsets.push(at);
        params.set(get(c.loraWeights, k), at);
        at += get(c.loraWeights, k).length;
      }
      const views = () =>
        new Map(
          names.map((k, i) => [
            k,
            params.subarray(offsets[i], (offsets[i] as number) + get(c.loraWeights, k).length),
          ]),
        );
      const state = adamwState(params);
      const losses: number[] = [];
      for (let s = 0; s < recipe.steps; s++) {
        c.model.setLoraWeights(views());
        const step = await computeLoraGradients(c.model, c.batch);
        losses.push(step.lossSum / step.supervisedTokens);
        const grad = new Float32Array(params.length);
        names.forEach((k, i) => {
          const g = get(step.grads, k);
          for (let j = 0; j < g.length; j++)
            grad[(offsets[i] as number) + j] = (g[j] as number) / step.supervisedTokens;
        });
        clipByGlobalNorm(grad, recipe.max_grad_norm);
        adamwStep(state, grad, recipe.lr);
      }
      const stepLosses = get(c.expected, 'step_losses');
      losses.forEach((l, i) => {
        const want = stepLosses[i] as number;
        assert.ok(Math.abs(l - want) / want < LOGITS_TOL, `step ${i} loss ${l} vs ${want}`);
      });
      const after = await readPeftAdapter(join(c.dir, 'adapter_step3'));
      for (const [k, v] of views()) {
        const want = after.tensors.get(k)?.data;
        assert.ok(want !== undefined, `adapter_step3 lacks ${k}`);
        assert.ok(rel(v, want) < ADAPTER_TOL, `${k}: ${rel(v, want)}`);
      }
      c.model.dispose();
      assert.equal(tf.memory().numTensors, 0);
    });

    it(`${name}: greedy and beam search equal transformers' generate (KV cache on and off)`, async () => {
      const dir = join(ROOT, name);
      const fx = JSON.parse(readFileSync(join(dir, 'generate.json'), 'utf8')) as {
        max_new_tokens: number;
        base: Run[];
        adapter: Run[];
      };
      const ckpt = await openCheckpoint(dir);
      const options = { layout: layoutFor(backend) };
      const base = await loadModel(ckpt.config, ckpt.tensors(), options);
      const wrong = await decodeAll(base, fx.base, fx.max_new_tokens, true);
      base.dispose();
      const adapter = await readPeftAdapter(join(dir, 'adapter_init'));
      const adapted = await loadModelWithAdapter(ckpt.config, ckpt.tensors(), adapter, name, options);
      wrong.push(...(await decodeAll(adapted, fx.adapter, fx.max_new_tokens, true)));
      wrong.push(...(await decodeAll(adapted, fx.adapter, fx.max_new_tokens, false)));
      adapted.dispose();
      assert.deepEqual(wrong, [], wrong.join('\n'));
    });
  }
});

it("merging adapter_init gives PEFT's merge_and_unload weights within 1e-5", async () => {
  for (const name of CASES) {
    const dir = join(ROOT, name);
    const ckpt = await openCheckpoint(dir);
    const adapter = await readPeftAdapter(join(dir, 'adapter_init'));
    const plan = mergePlan(ckpt.config, adapter, 'inference', name);
    const want = await readSafetensorsFile(join(dir, 'merged.safetensors'));
    let checked = 0;
    for await (const t of mergedTensors(ckpt.tensors(), plan)) {
      const w = want.get(t.name);
      if (w === undefined) continue;
      const err = rel(t.data, w);
      assert.ok(err < MERGE_TOL, `${name} ${t.name}: ${err}`);
      checked++;
    }
    assert.equal(checked, want.size, `${name}: every merged Linear compared`);
  }
});

// Adapters Python PEFT 0.21 made with more than plain LoRA (tools/reference/make_adapter_fixtures.py):
// DoRA, layers_to_transform, exclude_modules, rsLoRA load with PEFT's logits, and merge into PEFT's
// merge_and_unload weights; adapters with fields lora-mpt does not implement are refused by the
// field's name instead of computing a different model.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { adapterFeatures } from '../../src/checkpoint/adapter-support.ts';
import { mergedTensors, mergePlan } from '../../src/checkpoint/merge-adapter.ts';
import { parseLoraConfig, readPeftAdapter } from '../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { loadModelWithAdapter } from '../../src/families/load-model.ts';
import { layoutFor } from '../../src/model/backend.ts';
import { forwardLogits } from '../../src/model/forward.ts';
import { readSafetensorsFile } from '../support/safetensors-file.ts';
import { describeOnBackends } from './support/backends.ts';
import { fixtureBatch } from './support/fixture-batch.ts';
import { maxAbs, maxAbsDiff } from './support/tiny-mpt.ts';

/** Where an MPT model numbers its blocks (transformer.blocks.<i>). */
const MPT_BLOCKS = { patterns: ['blocks'], model: 'MPT' };
const ADAPTERS = fileURLToPath(new URL('../fixtures/adapters/', import.meta.url));
const MODELS = fileURLToPath(new URL('../fixtures/mpt/', import.meta.url));

interface Variant {
  readonly variant: string;
  readonly base: string;
  readonly supported: boolean;
}
const VARIANTS: Variant[] = readdirSync(ADAPTERS)
  .sort()
  .map((d) => JSON.parse(readFileSync(join(ADAPTERS, d, 'variant.json'), 'utf8')) as Variant);

const batchOf = (base: string) => fixtureBatch(join(MODELS, base));

describeOnBackends('PEFT adapter variants', (backend) => {
  for (const v of VARIANTS.filter((x) => x.supported)) {
    it(`${v.variant}: logits equal PEFT's`, async () => {
      const ckpt = await openCheckpoint(join(MODELS, v.base));
      const adapter = await readPeftAdapter(join(ADAPTERS, v.variant));
      const model = await loadModelWithAdapter(ckpt.config, ckpt.tensors(), adapter, v.variant, {
        layout: layoutFor(backend),
      });
      const logits = forwardLogits(model, batchOf(v.base));
      const got = logits.dataSync() as Float32Array;
      logits.dispose();
      model.dispose();
      const want = (await readSafetensorsFile(join(ADAPTERS, v.variant, 'expected_logits.safetensors'))).get(
        'logits',
      ) as Float32Array;
      const err = maxAbsDiff(got, want) / maxAbs(want);
      assert.ok(err < 1e-4, `relative error ${err}`);
    });
  }
});

describe('merging PEFT adapters', () => {
  for (const v of VARIANTS.filter((x) => x.supported)) {
    it(`${v.variant}: merged weights equal PEFT's merge_and_unload`, async () => {
      const ckpt = await openCheckpoint(join(MODELS, v.base));
      const adapter = await readPeftAdapter(join(ADAPTERS, v.variant));
      const plan = mergePlan(ckpt.config, adapter, 'inference', v.variant);
      const want = await readSafetensorsFile(join(ADAPTERS, v.variant, 'merged_weights.safetensors'));
      assert.deepEqual([...plan.keys()].sort(), [...want.keys()].sort());
      let checked = 0;
      for await (const t of mergedTensors(ckpt.tensors(), plan)) {
        const w = want.get(t.name);
        if (w === undefined) continue;
        const err = maxAbsDiff(t.data, w) / maxAbs(w);
        assert.ok(err < 1e-6, `${t.name}: relative error ${err}`);
        checked++;
      }
      assert.equal(checked, want.size);
    });
  }
});

describe('adapter_config fields lora-mpt does not implement', () => {
  const field: Readonly<Record<string, string>> = {
    'rank-pattern-h6': 'rank_pattern',
    'alpha-pattern-h6': 'alpha_pattern',
    'modules-to-save-h6': 'modules_to_save',
    'lora-bias-h6': 'lora_bias',
  };
  for (const v of VARIANTS.filter((x) => !x.supported)) {
    it(`${v.variant}: refused by the field's name`, async () => {
      const ckpt = await openCheckpoint(join(MODELS, v.base));
      const adapter = await readPeftAdapter(join(ADAPTERS, v.variant));
      await assert.rejects(
        loadModelWithAdapter(ckpt.config, ckpt.tensors(), adapter, v.variant, { layout: 'plain-2d' }),
        new RegExp(`${v.variant}: ${field[v.variant]} .*refuses it`),
      );
    });
  }

  it('takes use_dora from a DoRA adapter for training as for inference', async () => {
    const adapter = await readPeftAdapter(join(ADAPTERS, 'dora-h6'));
    assert.equal(adapterFeatures(adapter.config, 'training', 'dora-h6', MPT_BLOCKS).useDora, true);
    assert.equal(adapterFeatures(adapter.config, 'inference', 'dora-h6', MPT_BLOCKS).useDora, true);
  });

  it("accepts layers_pattern only as the model's own block list", async () => {
    const adapter = await readPeftAdapter(join(ADAPTERS, 'layers-h12'));
    const withPattern = (p: unknown) => ({
      ...adapter.config,
      extra: { ...adapter.config.extra, layers_pattern: p },
    });
    assert.doesNotThrow(() => adapterFeatures(withPattern('blocks'), 'inference', 'a', MPT_BLOCKS));
    assert.doesNotThrow(() => adapterFeatures(withPattern(['blocks']), 'inference', 'a', MPT_BLOCKS));
    assert.throws(
      () => adapterFeatures(withPattern('layers'), 'inference', 'a', MPT_BLOCKS),
      /a: layers_pattern "layers": MPT numbers its layers under "blocks"; lora-mpt refuses it/,
    );
    const llama = { patterns: ['layers'], model: 'Llama' };
    assert.doesNotThrow(() => adapterFeatures(withPattern('layers'), 'inference', 'a', llama));
    assert.throws(
      () => adapterFeatures(withPattern('blocks'), 'inference', 'a', llama),
      /layers_pattern "blocks": Llama numbers its layers under "layers"/,
    );
  });

  it('refuses initialisations that rewrite the base weights, and unknown switched-on fields', async () => {
    const adapter = await readPeftAdapter(join(ADAPTERS, 'exclude-h6'));
    // init_lora_weights is a field of the LoRA spec, checked where the file is read.
    const json = JSON.parse(readFileSync(join(ADAPTERS, 'exclude-h6', 'adapter_config.json'), 'utf8'));
    const pissa = { ...json, init_lora_weights: 'pissa' };
    assert.throws(
      () => parseLoraConfig(pissa, 'a'),
      /init_lora_weights "pissa": this initialisation rewrites/,
    );
    const future = { ...adapter.config, extra: { ...adapter.config.extra, use_new_trick: true } };
    assert.throws(
      () => adapterFeatures(future, 'inference', 'a', MPT_BLOCKS),
      /use_new_trick true: this field is unknown/,
    );
    const harmless = { ...adapter.config, extra: { ...adapter.config.extra, use_new_trick: false } };
    assert.doesNotThrow(() => adapterFeatures(harmless, 'inference', 'a', MPT_BLOCKS));
  });
});

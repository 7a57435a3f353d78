// One MPT block forward with an optional KV cache (src/families/mpt/block.ts): given an empty cache
// (a prompt) it returns exactly the uncached block's output and stores this block's K and V; with
// cached positions it attends to them; it keeps nothing for a backward when a cache is given.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { loadModel } from '../../src/families/load-model.ts';
import { layoutFor } from '../../src/model/backend.ts';
import type { CausalLm } from '../../src/model/causal-lm.ts';
import { describeOnBackends } from './support/backends.ts';
import { hostTensors, maxAbsDiff, randomLora, randomWeights, tinyConfig } from './support/tiny-mpt.ts';

const LORA = { r: 2, loraAlpha: 4, loraDropout: 0, targetModules: ['Wqkv', 'down_proj'] };

async function build(backend: string): Promise<CausalLm> {
  // One block, so the cache's length (its last layer's) is block 0's.
  const config = tinyConfig({ n_layers: 1 }, { qk_ln: true, clip_qkv: 1.5 });
  const model = await loadModel(config, hostTensors(config, randomWeights(config, 3)), {
    layout: layoutFor(backend),
  });
  model.configureLora(LORA);
  model.setLoraWeights(randomLora(loraTargets(config, LORA), 2, 5));
  return model;
}

/** Block 0 of `ids` (one row, after `cache`'s positions when given) as a host array. */
function block0(model: CausalLm, ids: number[], cache: ReturnType<CausalLm['newKvCache']> | null) {
  const first = cache?.length ?? 0;
  const pass = model.beginForward({ rows: 1, seqLen: ids.length, attentionMask: null }, cache);
  const x = model.embed(Int32Array.from(ids), ids.length, first);
  try {
    const { y, saved } = model.blockForward(pass, 0, {}, x, false);
    assert.equal(saved, null);
    const out = y.dataSync() as Float32Array;
    y.dispose();
    return Float32Array.from(out);
  } finally {
    x.dispose();
    pass.dispose();
  }
}

describeOnBackends('MPT block with an optional KV cache', (backend) => {
  it('gives the uncached output for a prompt, stores its K and V, and continues with attention to them', async () => {
    const model = await build(backend);
    const cache = model.newKvCache();
    try {
      const prompt = [3, 1, 4, 1, 5];
      const plain = block0(model, prompt, null);
      assert.deepEqual(block0(model, prompt, cache), plain);
      const h = model.config.nHeads;
      const hd = model.config.dModel / h;
      assert.deepEqual(cache.layer(0)?.k.shape, [h, prompt.length, hd]);
      assert.deepEqual(cache.layer(0)?.v.shape, [h, prompt.length, hd]);
      // The next token after the cached prompt = the last row of the whole sequence's block output.
      const next = block0(model, [9], cache);
      const whole = block0(model, [...prompt, 9], null);
      const d = model.config.dModel;
      assert.ok(maxAbsDiff(next, whole.slice(prompt.length * d)) < 1e-4, 'cached vs uncached last row');
      assert.deepEqual(cache.layer(0)?.k.shape, [h, prompt.length + 1, hd]);
    } finally {
      cache.dispose();
      model.dispose();
    }
  });

  it('refuses to save state for a backward when given a cache', async () => {
    const model = await build(backend);
    const cache = model.newKvCache();
    const pass = model.beginForward({ rows: 1, seqLen: 2, attentionMask: null }, cache);
    const x = model.embed(Int32Array.of(1, 2), 2, 0);
    const before = tf.memory().numTensors;
    try {
      assert.throws(
        () => model.blockForward(pass, 0, {}, x, true),
        /a cached forward keeps nothing for a backward/,
      );
      assert.equal(tf.memory().numTensors, before);
    } finally {
      tf.dispose(x);
      pass.dispose();
      cache.dispose();
      model.dispose();
    }
  });
});

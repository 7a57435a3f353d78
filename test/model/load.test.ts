import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../src/families/load-model.ts';
import { initBackend } from '../../src/model/backend.ts';
import { defaultVocabChunk } from '../../src/model/vocab-chunks.ts';
import { hostTensors, randomWeights, tinyConfig } from './support/tiny-mpt.ts';

describe('loading MPT weights', () => {
  before(() => initBackend('cpu'));
  const config = tinyConfig();
  const tensors = () => hostTensors(config, randomWeights(config, 1));

  it('names a missing tensor and frees what it had uploaded', async () => {
    const before = tf.memory().numTensors;
    const some = tensors().filter((t) => t.name !== 'transformer.blocks.1.ffn.up_proj.weight');
    await assert.rejects(
      loadModel(config, some, { layout: 'plain-2d' }),
      /lacks 1 tensors, e.g. transformer\.blocks\.1\.ffn\.up_proj\.weight/,
    );
    assert.equal(tf.memory().numTensors, before);
  });

  it('reports each weight tensor taken in, ending at all of them (load progress)', async () => {
    const all = tensors();
    const calls: [number, number][] = [];
    const model = await loadModel(config, all, {
      layout: 'plain-2d',
      onTensor: (loaded, expected) => calls.push([loaded, expected]),
    });
    model.dispose();
    // tinyConfig: wte, norm_f, and 6 tensors in each of its blocks (2 norms, 4 linears)
    const expected = 2 + 6 * config.nLayers;
    assert.equal(all.filter((t) => t.name !== 'lm_head.weight').length, expected);
    assert.deepEqual(
      calls,
      Array.from({ length: expected }, (_, i) => [i + 1, expected]),
    );
  });

  it('names a tensor of the wrong shape', async () => {
    const bad = tensors().map((t) =>
      t.name.endsWith('0.attn.out_proj.weight') ? { ...t, shape: [12, 48] } : t,
    );
    await assert.rejects(
      loadModel(config, bad, { layout: 'plain-2d' }),
      /out_proj\.weight has shape \[12,48\], expected \[24,24\]/,
    );
  });

  it('refuses biases and names outside MPT', async () => {
    const bias = { name: 'transformer.blocks.0.attn.Wqkv.bias', shape: [72], data: new Float32Array(72) };
    await assert.rejects(
      loadModel(config, [...tensors(), bias], { layout: 'plain-2d' }),
      /biases are not supported/,
    );
    const odd = {
      name: 'transformer.blocks.0.attn.q_proj.weight',
      shape: [24, 24],
      data: new Float32Array(576),
    };
    await assert.rejects(
      loadModel(config, [...tensors(), odd], { layout: 'plain-2d' }),
      /q_proj\.weight is not part of/,
    );
  });

  it('loads, ignores a saved lm_head copy, and frees every tensor on dispose', async () => {
    const before = tf.memory().numTensors;
    const lmHead = { name: 'lm_head.weight', shape: [40, 24], data: new Float32Array(960) };
    const model = await loadModel(config, [...tensors(), lmHead], { layout: 'plain-2d' });
    assert.ok(tf.memory().numTensors > before);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('cuts the vocab into ~3.3 MB chunks on wasm/cpu (1576 columns at D=512) and one on GPU', () => {
    assert.equal(defaultVocabChunk('plain-2d', 50432, 512), 1576);
    assert.equal(defaultVocabChunk('plain-2d', 50432, 1024), 808);
    assert.equal(defaultVocabChunk('batched', 50432, 4096), 50432);
  });
});

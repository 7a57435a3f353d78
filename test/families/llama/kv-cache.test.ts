// The Llama KV cache under grouped-query attention: it holds each key/value head once (the GQA 8/2
// fixture caches 2 heads a layer, not 8), and decoding from it, with rows re-selected as a beam
// search does, gives the full forward's next-token logits, leaving no tensor behind. transformers'
// greedy and beam outputs through this cache are golden.test.ts's.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { readPeftAdapter } from '../../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../../src/families/checkpoint.ts';
import type { LlamaConfig } from '../../../src/families/llama/config.ts';
import { loadModelWithAdapter } from '../../../src/families/load-model.ts';
import { layoutFor } from '../../../src/model/backend.ts';
import { extend, newKvCache, prefill } from '../../../src/model/cached-forward.ts';
import type { CausalLm } from '../../../src/model/causal-lm.ts';
import { forwardLogits } from '../../../src/model/forward.ts';
import { describeOnBackends } from '../../model/support/backends.ts';
import { maxAbs, maxAbsDiff } from '../../model/support/tiny-mpt.ts';

const DIR = fileURLToPath(new URL('../../fixtures/llama/gqa-tied-llama3/', import.meta.url));

async function build(backend: string): Promise<CausalLm> {
  const ckpt = await openCheckpoint(DIR);
  const adapter = await readPeftAdapter(`${DIR}adapter_init`);
  return loadModelWithAdapter(ckpt.config, ckpt.tensors(), adapter, DIR, { layout: layoutFor(backend) });
}

function rowsOf(t: tf.Tensor2D): Float32Array[] {
  const data = t.dataSync() as Float32Array;
  t.dispose();
  const [rows, v] = t.shape;
  return Array.from({ length: rows }, (_, r) => data.slice(r * v, (r + 1) * v));
}

function fullLast(model: CausalLm, ids: readonly number[]): Float32Array {
  const logits = forwardLogits(model, { rows: 1, seqLen: ids.length, inputIds: Int32Array.from(ids) });
  const all = logits.dataSync() as Float32Array;
  logits.dispose();
  const v = model.config.vocabSize;
  return all.slice((ids.length - 1) * v, ids.length * v);
}

describeOnBackends('Llama KV cache with grouped-query attention', (backend) => {
  it('caches the key/value heads once and decodes beams to the full forward’s logits', async () => {
    const model = await build(backend);
    const c = model.config as LlamaConfig;
    assert.deepEqual([c.nHeads, c.nKvHeads], [8, 2], 'the fixture is GQA 8/2');
    const cache = newKvCache(model);
    try {
      const prompt = [5, 17, 3, 29, 8];
      rowsOf(prefill(model, cache, Int32Array.from(prompt)));
      for (let l = 0; l < c.nLayers; l++) {
        assert.deepEqual(cache.layer(l)?.k.shape, [c.nKvHeads, prompt.length, c.headDim], `layer ${l} K`);
        assert.deepEqual(cache.layer(l)?.v.shape, [c.nKvHeads, prompt.length, c.headDim], `layer ${l} V`);
      }
      cache.select(Int32Array.of(0, 0, 0));
      rowsOf(extend(model, cache, Int32Array.of(10, 11, 12)));
      // Rows 0 and 1 continue row 2's history, row 2 row 0's: each row's K/V heads move together.
      cache.select(Int32Array.of(2, 2, 0));
      const seqs = [
        [...prompt, 12, 20],
        [...prompt, 12, 21],
        [...prompt, 10, 22],
      ];
      const got = rowsOf(extend(model, cache, Int32Array.of(20, 21, 22)));
      assert.deepEqual(cache.layer(0)?.k.shape, [3 * c.nKvHeads, prompt.length + 2, c.headDim]);
      seqs.forEach((s, i) => {
        const want = fullLast(model, s);
        const err = maxAbsDiff(got[i] as Float32Array, want) / maxAbs(want);
        assert.ok(err < 1e-4, `row ${i}: relative error ${err}`);
      });
      // A decoding step leaves no tensor behind: the cache replaces its K and V, the logits are read.
      const live = tf.memory().numTensors;
      rowsOf(extend(model, cache, Int32Array.of(1, 2, 3)));
      assert.equal(tf.memory().numTensors, live);
    } finally {
      cache.dispose();
      model.dispose();
    }
  });
});

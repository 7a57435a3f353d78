// The KV-cache forward (prefill + one token at a time) against the full forward over the whole
// sequence: the same next-token logits at every step, for plain rows and for rows re-selected the
// way a beam search does it, with LoRA, qk_ln, clip_qkv, learned positions and 8-bit weights; and no
// tensor left behind per step.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { loadModel } from '../../src/families/load-model.ts';
import type { MptConfig } from '../../src/families/mpt/config.ts';
import { layoutFor } from '../../src/model/backend.ts';
import { extend, newKvCache, prefill } from '../../src/model/cached-forward.ts';
import type { CausalLm } from '../../src/model/causal-lm.ts';
import { forwardLogits } from '../../src/model/forward.ts';
import { describeOnBackends } from './support/backends.ts';
import {
  gaussian,
  hostTensors,
  maxAbs,
  maxAbsDiff,
  randomLora,
  randomWeights,
  rng,
  tinyConfig,
} from './support/tiny-mpt.ts';

const LORA = {
  r: 4,
  loraAlpha: 8,
  loraDropout: 0,
  targetModules: ['Wqkv', 'out_proj', 'up_proj', 'down_proj'],
};

async function build(backend: string, config: MptConfig, o: { load8bit?: boolean; wpe?: boolean } = {}) {
  const weights = randomWeights(config, 7);
  const tensors = hostTensors(config, weights);
  if (o.wpe) {
    const g = gaussian(rng(9));
    const data = Float32Array.from({ length: config.maxSeqLen * config.dModel }, () => 0.3 * g());
    tensors.push({ name: 'transformer.wpe.weight', shape: [config.maxSeqLen, config.dModel], data });
  }
  const model = await loadModel(config, tensors, {
    layout: layoutFor(backend),
    load8bit: o.load8bit ?? false,
  });
  model.configureLora(LORA);
  model.setLoraWeights(randomLora(loraTargets(config, LORA), 4, 11));
  return model;
}

/** Logits of the last position of `ids` by the full forward, as a host array [V]. */
function fullLast(model: CausalLm, ids: readonly number[]): Float32Array {
  const logits = forwardLogits(model, { rows: 1, seqLen: ids.length, inputIds: Int32Array.from(ids) });
  const all = logits.dataSync() as Float32Array;
  logits.dispose();
  const v = model.config.vocabSize;
  return all.slice((ids.length - 1) * v, ids.length * v);
}

function rowsOf(t: tf.Tensor2D): Float32Array[] {
  const data = t.dataSync() as Float32Array;
  t.dispose();
  const [rows, v] = t.shape;
  return Array.from({ length: rows }, (_, r) => data.slice(r * v, (r + 1) * v));
}

function assertClose(got: Float32Array, want: Float32Array, what: string): void {
  const err = maxAbsDiff(got, want) / maxAbs(want);
  assert.ok(err < 1e-4, `${what}: relative error ${err}`);
}

const VARIANTS: readonly [string, () => MptConfig, { load8bit?: boolean; wpe?: boolean }][] = [
  ['alibi, LoRA on every linear', () => tinyConfig(), {}],
  [
    'qk_ln + clip_qkv + softmax_scale',
    () => tinyConfig({}, { qk_ln: true, clip_qkv: 1.2, softmax_scale: 0.3 }),
    {},
  ],
  ['learned positions, no ALiBi', () => tinyConfig({}, { alibi: false }), { wpe: true }],
  ['8-bit weights', () => tinyConfig(), { load8bit: true }],
];

describeOnBackends('KV cache forward equals the full forward', (backend) => {
  for (const [name, config, options] of VARIANTS) {
    it(`${name}: prompt, then one token at a time`, async () => {
      const model = await build(backend, config(), options);
      const cache = newKvCache(model);
      const seq = [5, 17, 3, 29, 8, 1, 22];
      const [first] = rowsOf(prefill(model, cache, Int32Array.from(seq)));
      assertClose(first as Float32Array, fullLast(model, seq), 'prefill');
      for (const next of [13, 2, 31, 7, 19]) {
        seq.push(next);
        const [row] = rowsOf(extend(model, cache, Int32Array.of(next)));
        assertClose(row as Float32Array, fullLast(model, seq), `after ${seq.length} tokens`);
      }
      assert.equal(cache.length, seq.length);
      cache.dispose();
      model.dispose();
    });
  }

  it('rows expanded and re-selected as beams keep their own histories', async () => {
    const model = await build(backend, tinyConfig());
    const cache = newKvCache(model);
    const prompt = [4, 9, 14, 2];
    rowsOf(prefill(model, cache, Int32Array.from(prompt)));
    cache.select(Int32Array.of(0, 0, 0));
    const beams = [
      [...prompt, 10],
      [...prompt, 11],
      [...prompt, 12],
    ];
    rowsOf(extend(model, cache, Int32Array.of(10, 11, 12)));
    // Beam 0 and 1 survive from row 2, beam 2 from row 0: histories move with the rows.
    cache.select(Int32Array.of(2, 2, 0));
    const next = [beams[2] as number[], beams[2] as number[], beams[0] as number[]].map((b, i) => [
      ...b,
      20 + i,
    ]);
    const got = rowsOf(extend(model, cache, Int32Array.of(20, 21, 22)));
    for (let i = 0; i < 3; i++)
      assertClose(got[i] as Float32Array, fullLast(model, next[i] as number[]), `row ${i}`);
    cache.dispose();
    model.dispose();
  });

  it('refuses to run past max_seq_len, naming it', async () => {
    const model = await build(backend, tinyConfig({ max_seq_len: 6 }));
    const cache = newKvCache(model);
    assert.throws(
      () => prefill(model, cache, Int32Array.of(1, 2, 3, 4, 5, 6, 7)),
      /7 tokens.*max_seq_len\) is 6/,
    );
    rowsOf(prefill(model, cache, Int32Array.of(1, 2, 3, 4, 5, 6)));
    assert.throws(() => extend(model, cache, Int32Array.of(1)), /7 tokens.*max_seq_len\) is 6/);
    cache.dispose();
    model.dispose();
  });

  it('keeps the number of live tensors constant from one decoding step to the next', async () => {
    const model = await build(backend, tinyConfig());
    const cache = newKvCache(model);
    rowsOf(prefill(model, cache, Int32Array.of(3, 4, 5)));
    cache.select(Int32Array.of(0, 0));
    const counts: number[] = [];
    for (let step = 0; step < 6; step++) {
      rowsOf(extend(model, cache, Int32Array.of(6 + step, 7 + step)));
      cache.select(Int32Array.of(1, 0));
      counts.push(tf.memory().numTensors);
    }
    assert.deepEqual(new Set(counts).size, 1, `live tensors per step: ${counts.join(', ')}`);
    const before = tf.memory().numTensors;
    cache.dispose();
    assert.equal(tf.memory().numTensors, before - 2 * model.config.nLayers);
    model.dispose();
  });
});

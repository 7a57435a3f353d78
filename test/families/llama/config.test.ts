// Llama's config.json as transformers writes it (rope_parameters) and as the Hub files spell it
// (rope_theta + rope_scaling): the same model; what lora-mpt does not compute is refused by its field
// name; the published named configs parse to their sizes; the random checkpoint loads.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loraTargets } from '../../../src/checkpoint/lora-targets.ts';
import { openCheckpoint } from '../../../src/families/checkpoint.ts';
import { type LlamaConfig, parseLlamaConfig } from '../../../src/families/llama/config.ts';
import { loadModel } from '../../../src/families/load-model.ts';
import { familyOf, parseModelConfig } from '../../../src/families/registry.ts';
import { initBackend } from '../../../src/model/backend.ts';
import { forwardLogits } from '../../../src/model/forward.ts';

const BASE = {
  model_type: 'llama',
  hidden_size: 64,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
};
const LLAMA3 = {
  factor: 8.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 8192,
};
const parse = (extra: Record<string, unknown>) =>
  parseModelConfig({ ...BASE, ...extra }, 'm/config.json') as LlamaConfig;

describe('Llama config.json', () => {
  it('reads both RoPE spellings to the same model', () => {
    const hub = parse({ rope_theta: 500000.0, rope_scaling: { rope_type: 'llama3', ...LLAMA3 } });
    const v5 = parse({ rope_parameters: { rope_type: 'llama3', rope_theta: 500000.0, ...LLAMA3 } });
    const old = parse({ rope_theta: 500000.0, rope_scaling: { type: 'llama3', ...LLAMA3 } });
    const want = {
      theta: 500000,
      llama3: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    };
    for (const c of [hub, v5, old]) assert.deepEqual(c.rope, want);
    assert.deepEqual(parse({}).rope, { theta: 10000, llama3: null });
    assert.equal(hub.headDim, 8);
    assert.equal(hub.nKvHeads, 2);
  });

  it('refuses by name what it does not compute', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { rope_scaling: { rope_type: 'yarn', factor: 4 } },
        /rope_scaling\.rope_type "yarn" is not supported \(only default and llama3\)/,
      ],
      [
        { rope_parameters: { rope_type: 'dynamic', rope_theta: 1e4 } },
        /rope_parameters\.rope_type "dynamic" is not supported/,
      ],
      [{ rope_scaling: { type: 'linear', factor: 2 } }, /rope_scaling\.type "linear" is not supported/],
      [
        { rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.5 } },
        /"partial_rotary_factor" must be 1/,
      ],
      [{ hidden_act: 'gelu' }, /"hidden_act" must be "silu"/],
      [{ num_key_value_heads: 3 }, /"num_key_value_heads" must be a divisor of num_attention_heads \(8\)/],
      [{ pretraining_tp: 2 }, /"pretraining_tp" must be 1/],
      [{ sliding_window: 0 }, /"sliding_window" must be a positive integer or null/],
      [{ use_sliding_window: true }, /"use_sliding_window" true is not part of a Llama model/],
      [{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /"low_freq_factor" must be a/],
      [
        { layer_types: ['full_attention'] },
        /"layer_types" \["full_attention"\] is not part of a Llama model/,
      ],
      [{ qk_norm: true }, /"qk_norm" true is not part of a Llama model/],
      [{ head_dim: 7 }, /"head_dim" must be an even number/],
    ];
    for (const [extra, re] of cases) assert.throws(() => parse(extra), re, JSON.stringify(extra));
  });

  it('refuses to train with attention_dropout above 0, naming it (evaluation and generation run)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llama-dropout-'));
    try {
      await familyOf('llama', 'test').writeRandomCheckpoint(dir, {
        dModel: 16,
        nHeads: 2,
        nLayers: 1,
        vocabSize: 32,
        maxSeqLen: 16,
      });
      const ckpt = await openCheckpoint(dir);
      await initBackend('cpu');
      for (const p of [0, 0.1]) {
        const config = { ...(ckpt.config as LlamaConfig), attentionDropout: p };
        const model = await loadModel(config, ckpt.tensors(), { layout: 'plain-2d' });
        if (p === 0) model.assertTrainable();
        else
          assert.throws(
            () => model.assertTrainable(),
            /attention_dropout = 0\.1: dropout in the frozen model/,
          );
        model.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a forward longer than sliding_window, naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llama-sw-'));
    try {
      await familyOf('llama', 'test').writeRandomCheckpoint(dir, {
        dModel: 16,
        nHeads: 2,
        nLayers: 1,
        vocabSize: 32,
        maxSeqLen: 16,
      });
      const ckpt = await openCheckpoint(dir);
      const config = { ...(ckpt.config as LlamaConfig), slidingWindow: 4 };
      await initBackend('cpu');
      const model = await loadModel(config, ckpt.tensors(), { layout: 'plain-2d' });
      const batch = (t: number) => ({
        rows: 1,
        seqLen: t,
        inputIds: new Int32Array(t).fill(3),
        attentionMask: null,
        labels: null,
      });
      forwardLogits(model, batch(4)).dispose();
      assert.throws(() => forwardLogits(model, batch(5)), /sliding_window = 4: a forward over 5 positions/);
      model.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names PEFT's module paths, defaults and layer list", () => {
    const c = parse({ intermediate_size: 96 });
    assert.deepEqual(
      c.arch.linears.map((l) => [l.name, l.inFeatures, l.outFeatures]),
      [
        ['q_proj', 64, 64],
        ['k_proj', 64, 16],
        ['v_proj', 64, 16],
        ['o_proj', 64, 64],
        ['gate_proj', 64, 96],
        ['up_proj', 64, 96],
        ['down_proj', 96, 64],
      ],
    );
    assert.equal(c.arch.modulePath(1, 'k_proj'), 'model.layers.1.self_attn.k_proj');
    assert.equal(c.arch.modulePath(0, 'down_proj'), 'model.layers.0.mlp.down_proj');
    assert.throws(() => c.arch.modulePath(0, 'Wqkv'), /Llama has no Linear "Wqkv"/);
    assert.deepEqual(c.arch.peftDefaultTargets, ['q_proj', 'v_proj']);
    assert.equal(c.arch.layersPattern, 'layers');
    const targets = loraTargets(c, {
      r: 4,
      loraAlpha: 8,
      loraDropout: 0,
      targetModules: c.arch.peftDefaultTargets,
    });
    assert.deepEqual(
      targets.map((t) => t.aName),
      [0, 1].flatMap((i) =>
        ['q_proj', 'v_proj'].map((m) => `base_model.model.model.layers.${i}.self_attn.${m}.lora_A.weight`),
      ),
    );
    assert.ok(c.arch.weightShapes().has('lm_head.weight'));
    assert.ok(!parse({ tie_word_embeddings: true }).arch.weightShapes().has('lm_head.weight'));
    assert.deepEqual(
      parse({ attention_bias: true }).arch.weightShapes().get('model.layers.0.self_attn.k_proj.bias'),
      [16],
    );
  });

  it('parses the published named configs to their sizes', () => {
    const named = familyOf('llama', 'test').namedConfigs;
    const c8b = parseLlamaConfig(named['llama-3-8b'], 'llama-3-8b');
    assert.deepEqual(
      [
        c8b.dModel,
        c8b.nLayers,
        c8b.nHeads,
        c8b.nKvHeads,
        c8b.intermediateSize,
        c8b.vocabSize,
        c8b.rope.theta,
      ],
      [4096, 32, 32, 8, 14336, 128256, 500000],
    );
    const weights = [...c8b.arch.weightShapes().values()].reduce(
      (n, s) => n + s.reduce((a, b) => a * b, 1),
      0,
    );
    assert.equal(weights, 8_030_261_248); // Meta-Llama-3-8B's parameter count
    const tiny = parseLlamaConfig(named['tinyllama-1.1b'], 'tinyllama');
    assert.deepEqual([tiny.nLayers, tiny.nKvHeads, tiny.intermediateSize], [22, 4, 5632]);
    assert.equal(parseLlamaConfig(named['llama-3.1-8b'], 'x').rope.llama3?.factor, 8);
    assert.equal(parseLlamaConfig(named['llama-3.2-1b'], 'x').tieWordEmbeddings, true);
  });
});

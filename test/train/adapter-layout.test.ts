import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMptConfig } from '../../src/families/mpt/config.ts';
import { adapterLayout } from '../../src/train/adapter-layout.ts';

// The mosaicml/mpt-7b config values (../shared/docs/mpt-peft-facts.md §1.1).
const mpt7b = parseMptConfig(
  {
    model_type: 'mpt',
    d_model: 4096,
    n_heads: 32,
    n_layers: 32,
    expansion_ratio: 4,
    max_seq_len: 2048,
    vocab_size: 50432,
    no_bias: true,
    attn_config: { alibi: true, alibi_bias_max: 8, attn_impl: 'torch', attn_type: 'multihead_attention' },
  },
  'mpt-7b config.json',
);
const lora = (r: number, targetModules: string[]) => ({ r, loraAlpha: 16, loraDropout: 0.05, targetModules });

describe('adapter layout of MPT-7B (mpt-peft-facts §3.4)', () => {
  it('holds 64 tensors and 4,194,304 values for r=8 on Wqkv, 8,388,608 for r=16', () => {
    const { layout } = adapterLayout(mpt7b, lora(8, ['Wqkv']));
    assert.equal(layout.specs.length, 64);
    assert.equal(layout.size, 4_194_304);
    assert.equal(adapterLayout(mpt7b, lora(16, ['Wqkv'])).layout.size, 8_388_608);
  });

  it("adds DoRA's lora_magnitude_vector [out] after each target's A and B: 32 x 12 288 more values", () => {
    const { layout } = adapterLayout(mpt7b, { ...lora(8, ['Wqkv']), useDora: true });
    assert.equal(layout.specs.length, 96);
    assert.equal(layout.size, 4_194_304 + 32 * 12_288);
    assert.deepEqual(layout.specs[2], {
      name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_magnitude_vector',
      shape: [12288],
    });
  });

  it('orders tensors as PEFT saves them, A [r, in] before B [out, r]', () => {
    const { layout } = adapterLayout(mpt7b, lora(8, ['Wqkv']));
    assert.deepEqual(layout.specs.slice(0, 2), [
      { name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_A.weight', shape: [8, 4096] },
      { name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_B.weight', shape: [12288, 8] },
    ]);
    assert.equal(
      layout.offsets.get('base_model.model.transformer.blocks.1.attn.Wqkv.lora_A.weight'),
      131_072,
    );
  });
});

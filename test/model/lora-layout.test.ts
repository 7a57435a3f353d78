import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMptConfig } from '../../src/model/config.ts';
import { loraModules, loraParamSpecs } from '../../src/model/lora-layout.ts';

// The mosaicml/mpt-7b config values (../shared/docs/mpt-peft-facts.md §1.1).
const mpt7b = parseMptConfig(
  {
    architectures: ['MPTForCausalLM'],
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

const count = (specs: { shape: number[] }[]) => specs.reduce((n, s) => n + s.shape[0]! * s.shape[1]!, 0);

describe('LoRA layout for MPT', () => {
  it('gives PEFT names and shapes for Wqkv on MPT-7B: 64 tensors, 4,194,304 values at r=8', () => {
    const modules = loraModules(mpt7b, ['Wqkv']);
    const specs = loraParamSpecs(modules, 8);
    assert.equal(specs.length, 64);
    assert.deepEqual(specs[0], {
      name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_A.weight',
      shape: [8, 4096],
    });
    assert.deepEqual(specs[1], {
      name: 'base_model.model.transformer.blocks.0.attn.Wqkv.lora_B.weight',
      shape: [12288, 8],
    });
    assert.equal(count(specs), 4_194_304);
    assert.equal(count(loraParamSpecs(modules, 16)), 8_388_608);
  });

  it('adapts all four linears with the FFN width from expansion_ratio', () => {
    const m = loraModules(mpt7b, ['Wqkv', 'out_proj', 'up_proj', 'down_proj']).slice(0, 4);
    assert.deepEqual(
      m.map((x) => [x.module, x.inFeatures, x.outFeatures]),
      [
        ['transformer.blocks.0.attn.Wqkv', 4096, 12288],
        ['transformer.blocks.0.attn.out_proj', 4096, 4096],
        ['transformer.blocks.0.ffn.up_proj', 4096, 16384],
        ['transformer.blocks.0.ffn.down_proj', 16384, 4096],
      ],
    );
  });

  it('matches PEFT-style dotted suffixes and full names', () => {
    assert.equal(loraModules(mpt7b, ['attn.Wqkv']).length, 32);
    assert.equal(loraModules(mpt7b, ['transformer.blocks.3.ffn.up_proj']).length, 1);
  });

  it("names targets that match nothing, like alpaca-lora's LLaMA default", () => {
    assert.throws(() => loraModules(mpt7b, ['q_proj', 'Wqkv']), /q_proj match no MPT module/);
  });
});

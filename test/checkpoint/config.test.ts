import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/checkpoint/config-fields.ts';
import { parseMptConfig } from '../../src/families/mpt/config.ts';
import { FIXTURES } from './fixtures.ts';

// mosaicml/mpt-7b(-instruct) config.json as the Hub ships it (docs/mpt-peft-facts.md §1.1).
const MPT_7B = {
  architectures: ['MPTForCausalLM'],
  attn_config: {
    alibi: true,
    alibi_bias_max: 8,
    attn_impl: 'torch',
    attn_pdrop: 0,
    attn_type: 'multihead_attention',
    attn_uses_sequence_id: false,
    clip_qkv: null,
    prefix_lm: false,
    qk_ln: false,
    softmax_scale: null,
  },
  auto_map: {
    AutoConfig: 'configuration_mpt.MPTConfig',
    AutoModelForCausalLM: 'modeling_mpt.MPTForCausalLM',
  },
  d_model: 4096,
  emb_pdrop: 0,
  embedding_fraction: 1.0,
  expansion_ratio: 4,
  init_config: {
    emb_init_std: null,
    emb_init_uniform_lim: null,
    fan_mode: 'fan_in',
    init_div_is_residual: true,
    init_gain: 0,
    init_nonlinearity: 'relu',
    init_std: 0.02,
    name: 'kaiming_normal_',
    verbose: 0,
  },
  init_device: 'cpu',
  learned_pos_emb: true,
  logit_scale: null,
  max_seq_len: 2048,
  model_type: 'mpt',
  n_heads: 32,
  n_layers: 32,
  no_bias: true,
  norm_type: 'low_precision_layernorm',
  resid_pdrop: 0,
  tokenizer_name: 'EleutherAI/gpt-neox-20b',
  torch_dtype: 'bfloat16',
  transformers_version: '4.28.1',
  use_cache: false,
  verbose: 0,
  vocab_size: 50432,
};

const fixtureJson = (c: string) => JSON.parse(readFileSync(join(FIXTURES, c, 'config.json'), 'utf8'));

describe('MPT config.json', () => {
  it('reads the MPT-7B hub config with every field', () => {
    const c = parseMptConfig(MPT_7B, 'mpt-7b/config.json');
    assert.equal(c.dModel, 4096);
    assert.equal(c.nHeads, 32);
    assert.equal(c.nLayers, 32);
    assert.equal(c.expansionRatio, 4);
    assert.equal(c.maxSeqLen, 2048);
    assert.equal(c.vocabSize, 50432);
    assert.equal(c.noBias, true);
    assert.equal(c.normEps, 1e-5);
    assert.equal(c.logitScale, null);
    assert.equal(c.learnedPosEmb, true);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.torchDtype, 'bfloat16');
    assert.equal(c.tokenizerName, 'EleutherAI/gpt-neox-20b');
    assert.deepEqual(c.attn, {
      attnType: 'multihead_attention',
      attnImpl: 'torch',
      attnPdrop: 0,
      alibi: true,
      alibiBiasMax: 8,
      clipQkv: null,
      qkLn: false,
      softmaxScale: null,
      attnUsesSequenceId: false,
      prefixLm: false,
      kvNHeads: 32,
    });
    assert.equal(c.initConfig.name, 'kaiming_normal_');
    assert.equal(c.initConfig.initStd, 0.02);
    assert.equal(c.initConfig.initDivIsResidual, true);
    assert.equal(c.bosTokenId, null);
  });

  it('reads the configs transformers wrote for the golden fixtures', () => {
    const h12 = parseMptConfig(fixtureJson('h12-wqkv'), 'h12-wqkv/config.json');
    assert.deepEqual(
      [h12.dModel, h12.nHeads, h12.nLayers, h12.vocabSize, h12.maxSeqLen],
      [48, 12, 2, 96, 32],
    );
    const h8 = parseMptConfig(fixtureJson('h8-clip-bf16'), 'h8-clip-bf16/config.json');
    assert.equal(h8.attn.clipQkv, 1.5);
    assert.equal(h8.attn.softmaxScale, 0.4);
    assert.equal(h8.normEps, 1e-4);
    assert.equal(h8.dModel, 32);
  });

  it('fills HF defaults for an empty object', () => {
    const c = parseMptConfig({}, 'x');
    assert.deepEqual(
      [c.dModel, c.nHeads, c.nLayers, c.vocabSize, c.expansionRatio],
      [2048, 16, 24, 50368, 4],
    );
    assert.equal(c.attn.alibi, true);
    assert.equal(c.noBias, true);
    assert.equal(c.normEps, 1e-5);
  });

  it("takes llm-foundry's norm_eps and resolves logit_scale 'inv_sqrt_d_model'", () => {
    const c = parseMptConfig(
      { d_model: 64, n_heads: 4, norm_eps: 1e-6, logit_scale: 'inv_sqrt_d_model' },
      'x',
    );
    assert.equal(c.normEps, 1e-6);
    assert.equal(c.logitScale, 1 / 8);
  });

  it('refuses d_model not divisible by n_heads, naming both fields', () => {
    assert.throws(
      () => parseMptConfig({ d_model: 50, n_heads: 12 }, 'cfg.json'),
      (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /cfg\.json: "d_model" \(50\) must be divisible by "n_heads" \(12\)/);
        return true;
      },
    );
  });

  it('names the nested field and the bad value', () => {
    assert.throws(
      () => parseMptConfig({ attn_config: { clip_qkv: 'big' } }, 'cfg.json'),
      /cfg\.json attn_config: "clip_qkv" must be a finite number or null, got "big"/,
    );
    assert.throws(
      () => parseMptConfig({ embedding_fraction: 0 }, 'c'),
      /"embedding_fraction" must be in \(0, 1\]/,
    );
    assert.throws(() => parseMptConfig({ logit_scale: 'huge' }, 'c'), /"logit_scale"/);
    assert.throws(() => parseMptConfig({ model_type: 'llama' }, 'c'), /"model_type" must be "mpt"/);
    assert.throws(
      () => parseMptConfig({ attn_config: { attn_type: 'x' } }, 'c'),
      /"attn_type" must be one of/,
    );
    assert.throws(() => parseMptConfig({ n_layers: 0 }, 'c'), /"n_layers" must be an integer >= 1/);
    assert.throws(() => parseMptConfig([], 'c'), /expected a JSON object/);
  });

  it('checks grouped-query kv_n_heads divides n_heads', () => {
    const ok = parseMptConfig(
      { n_heads: 8, d_model: 64, attn_config: { attn_type: 'grouped_query_attention', kv_n_heads: 2 } },
      'c',
    );
    assert.equal(ok.attn.kvNHeads, 2);
    assert.throws(
      () =>
        parseMptConfig(
          { n_heads: 8, d_model: 64, attn_config: { attn_type: 'grouped_query_attention', kv_n_heads: 3 } },
          'c',
        ),
      /"kv_n_heads" must be a divisor of n_heads \(8\)/,
    );
  });
});

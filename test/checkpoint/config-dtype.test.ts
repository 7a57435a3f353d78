// config.json of a merged model: `dtype` set as transformers 5 writes it (and `torch_dtype`, the name
// older configs such as MPT-7B's use, kept equal), every other byte of the base's file kept — float
// fields stay "0.0", nested attn_config.dtype stays null. tools/reference/check_merged.py confirms
// transformers loads a merged directory in the dtype this writes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configWithDtype } from '../../src/checkpoint/config-dtype.ts';

const H8 = fileURLToPath(new URL('../fixtures/mpt/h8-clip-bf16/config.json', import.meta.url));

// The head of MPT-7B's config.json as the Hub ships it (unsorted keys, torch_dtype, no dtype).
const MPT7B_LIKE = `{
  "architectures": [
    "MPTForCausalLM"
  ],
  "attn_config": {
    "alibi": true,
    "attn_pdrop": 0
  },
  "d_model": 4096,
  "torch_dtype": "bfloat16",
  "emb_pdrop": 0.0,
  "vocab_size": 50432
}
`;

describe('config.json with the merged dtype', () => {
  it('adds dtype in its sorted place and keeps every other byte of a transformers 5 config', () => {
    const base = readFileSync(H8, 'utf8');
    const out = configWithDtype(base, 'bfloat16', H8);
    const json = JSON.parse(out);
    assert.equal(json.dtype, 'bfloat16');
    assert.equal(json.attn_config.dtype, null);
    assert.ok(out.includes('  "d_model": 32,\n  "dtype": "bfloat16",\n  "emb_pdrop": 0.0,\n'));
    assert.equal(out.replace('  "dtype": "bfloat16",\n', ''), base);
  });

  it('sets torch_dtype too when the base config has one, and appends to unsorted keys', () => {
    const out = configWithDtype(MPT7B_LIKE, 'float16', 'mpt-7b/config.json');
    const json = JSON.parse(out);
    assert.equal(json.dtype, 'float16');
    assert.equal(json.torch_dtype, 'float16');
    assert.ok(out.endsWith('  "vocab_size": 50432,\n  "dtype": "float16"\n}\n'), out);
    assert.equal(
      out
        .replace(',\n  "dtype": "float16"', '')
        .replace('"torch_dtype": "float16"', '"torch_dtype": "bfloat16"'),
      MPT7B_LIKE,
    );
  });

  it('replaces a dtype the base already names', () => {
    const out = configWithDtype('{"a": {"dtype": "x"}, "dtype": "float32", "z": 1}', 'bfloat16', 'c.json');
    assert.equal(out, '{"a": {"dtype": "x"}, "dtype": "bfloat16", "z": 1}');
  });

  it('names the file when config.json is not a JSON object', () => {
    assert.throws(
      () => configWithDtype('{"a": ', 'float32', 'm/config.json'),
      /m\/config\.json: not valid JSON/,
    );
    assert.throws(
      () => configWithDtype('[1]', 'float32', 'm/config.json'),
      /m\/config\.json: not a JSON object/,
    );
  });
});

// eosAndBos: which EOS preprocess/finetune/eval/generate use for a tokenizer.json. The tokenizer_config.json
// beside it decides (ids as transformers' AutoTokenizer gives them, recorded in the alpaca-lora mask
// fixtures); GPT-NeoX folders without one keep <|endoftext|>; neither is an error naming both files.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { eosAndBos } from '../../src/data/tokenizer-config.ts';
import { FIXTURES, TOKENIZER_JSON } from './paths.ts';

describe('eosAndBos', () => {
  it("takes the tokenizer_config.json beside tokenizer.json: AutoTokenizer's ids on both Llama fixtures", () => {
    for (const family of ['llama2', 'llama3']) {
      const fx = JSON.parse(
        gunzipSync(readFileSync(`${FIXTURES}llama-tok/alpaca-lora-masks-${family}.json.gz`)).toString('utf8'),
      ) as { bos_token_id: number; eos_token_id: number };
      const path = `${FIXTURES}llama-tok/${family}/tokenizer.json`;
      assert.deepEqual(eosAndBos(path, Tokenizer.fromFile(path)), {
        eos: fx.eos_token_id,
        bos: fx.bos_token_id,
      });
    }
  });

  it('keeps <|endoftext|> (0) for a GPT-NeoX tokenizer.json with no tokenizer_config.json', () => {
    assert.deepEqual(eosAndBos(TOKENIZER_JSON, Tokenizer.fromFile(TOKENIZER_JSON)), { eos: 0, bos: 0 });
  });

  it('names both files when neither gives an EOS', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-eos-'));
    try {
      const path = join(dir, 'tokenizer.json');
      copyFileSync(`${FIXTURES}llama-tok/llama2/tokenizer.json`, path);
      const tok = Tokenizer.fromFile(path);
      assert.throws(() => eosAndBos(path, tok), /tokenizer\.json: no EOS token: no .*tokenizer_config\.json/);
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>' }));
      assert.throws(() => eosAndBos(path, tok), /tokenizer_config\.json names no eos_token/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

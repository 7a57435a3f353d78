// alpaca-lora's tokenize / generate_and_tokenize_prompt with the Llama-family fixture tokenizers:
// BOS from the tokenizer, EOS appended by alpaca-lora, the prompt mask counting the BOS. Expected
// values: finetune.py's own functions run with transformers' AutoTokenizer on the same files
// (tools/reference/alpaca_lora_masks.py --family llama2|llama3).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { IGNORE_INDEX, tokenizeExample } from '../../src/data/tokenize-example.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { readSpecialTokenIds } from '../../src/data/tokenizer-config.ts';
import { ALPACA_JSON, FIXTURES } from './paths.ts';

interface MaskFixture {
  readonly tokenizer_class: string;
  readonly bos_token_id: number;
  readonly eos_token_id: number;
  readonly cases: readonly {
    index: number;
    cutoff_len: number;
    train_on_inputs: boolean;
    add_eos_token: boolean;
    input_ids: number[];
    labels: number[];
  }[];
}

describe('alpaca-lora examples with Llama-family tokenizers', () => {
  it('reads bos_token / eos_token as a string or an AddedToken object, naming the file in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-tokcfg-'));
    try {
      const tok = Tokenizer.fromFile(`${FIXTURES}llama-tok/llama2/tokenizer.json`);
      const cfg = join(dir, 'tokenizer_config.json');
      writeFileSync(
        cfg,
        JSON.stringify({ bos_token: { __type: 'AddedToken', content: '<s>' }, eos_token: '</s>' }),
      );
      assert.deepEqual(readSpecialTokenIds(cfg, tok), { bos: 1, eos: 2 });
      writeFileSync(cfg, JSON.stringify({ eos_token: '<|eot_id|>' }));
      assert.throws(
        () => readSpecialTokenIds(cfg, tok),
        /tokenizer_config\.json: eos_token "<\|eot_id\|>" is not a token/,
      );
      writeFileSync(cfg, JSON.stringify({ bos_token: null }));
      assert.deepEqual(readSpecialTokenIds(cfg, tok), { bos: null, eos: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const records = JSON.parse(readFileSync(ALPACA_JSON, 'utf8')) as Record<string, string>[];
  const template = loadPromptTemplate('alpaca');
  for (const family of ['llama2', 'llama3'])
    it(`${family}: ids and labels of transformers + alpaca-lora on 60 records x 5 flag sets`, () => {
      const dir = `${FIXTURES}llama-tok/`;
      const fixture = JSON.parse(
        gunzipSync(readFileSync(`${dir}alpaca-lora-masks-${family}.json.gz`)).toString('utf8'),
      ) as MaskFixture;
      const tok = Tokenizer.fromFile(`${dir}${family}/tokenizer.json`);
      assert.deepEqual(tok.specialAround.before, [fixture.bos_token_id]);
      // BOS and EOS as transformers' AutoTokenizer reads them from tokenizer_config.json.
      assert.deepEqual(readSpecialTokenIds(`${dir}${family}/tokenizer_config.json`, tok), {
        bos: fixture.bos_token_id,
        eos: fixture.eos_token_id,
      });
      assert.equal(fixture.cases.length, 300);
      let masked = 0;
      for (const c of fixture.cases) {
        const r = records[c.index]!;
        const e = tokenizeExample(
          tok,
          template,
          { instruction: r.instruction!, input: r.input!, output: r.output! },
          {
            cutoffLen: c.cutoff_len,
            trainOnInputs: c.train_on_inputs,
            addEosToken: c.add_eos_token,
            eosTokenId: fixture.eos_token_id,
          },
        );
        const what = `record ${c.index} cutoff ${c.cutoff_len} toi ${c.train_on_inputs} eos ${c.add_eos_token}`;
        assert.deepEqual([...e.inputIds], c.input_ids, what);
        assert.deepEqual([...e.labels], c.labels, what);
        assert.equal(e.inputIds[0], fixture.bos_token_id, what);
        if (e.labels[0] === IGNORE_INDEX) masked++;
      }
      assert.ok(masked >= 200, 'the train_on_inputs=false cases mask the BOS with the prompt');
    });
});

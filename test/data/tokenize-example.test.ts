// Masking and EOS rules of alpaca-lora's generate_and_tokenize_prompt: on one record whose ids came
// from HF `tokenizers`, with labels worked out by hand from finetune.py's logic; and against
// finetune.py's own functions run with transformers (tools/reference/alpaca_lora_masks.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { type TokenizeOptions, tokenizeExample } from '../../src/data/tokenize-example.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { ALPACA_JSON, FIXTURES, TOKENIZER_JSON } from './paths.ts';

// alpaca_short, "Say hi" / "" / "Hi!": the user prompt is 12 ids, the full text 14 (HF tokenizers).
const USER = [4118, 41959, 27, 187, 27128, 14260, 187, 187, 4118, 19371, 27, 187];
const FULL = [...USER, 12764, 2];
const M = -100;
const record = { instruction: 'Say hi', input: '', output: 'Hi!' };

let tok: Tokenizer;
const run = (o: Partial<TokenizeOptions>) => {
  const e = tokenizeExample(tok, loadPromptTemplate('alpaca_short'), record, {
    cutoffLen: 256,
    trainOnInputs: true,
    addEosToken: false,
    eosTokenId: 0,
    ...o,
  });
  return { ids: [...e.inputIds], labels: [...e.labels] };
};
before(() => {
  tok = Tokenizer.fromFile(TOKENIZER_JSON);
});

describe('tokenizeExample (alpaca-lora semantics)', () => {
  it('appends EOS and supervises everything with train_on_inputs', () => {
    assert.deepEqual(run({}), { ids: [...FULL, 0], labels: [...FULL, 0] });
  });

  it('masks the 12 prompt tokens when train_on_inputs=false, add_eos_token=false', () => {
    const r = run({ trainOnInputs: false });
    assert.deepEqual(r.ids, [...FULL, 0]);
    assert.deepEqual(r.labels, [...USER.map(() => M), 12764, 2, 0]);
  });

  it('masks the same 12 with add_eos_token=true (prompt gets EOS, then len - 1)', () => {
    assert.deepEqual(run({ trainOnInputs: false, addEosToken: true }).labels, [
      ...USER.map(() => M),
      12764,
      2,
      0,
    ]);
  });

  it('truncates at cutoff_len and then appends no EOS', () => {
    const r = run({ cutoffLen: 13, trainOnInputs: false });
    assert.deepEqual(r.ids, FULL.slice(0, 13));
    assert.deepEqual(r.labels, [...USER.map(() => M), 12764]);
  });

  it('with a truncated prompt and add_eos_token=true, still subtracts one: the last token stays supervised', () => {
    // cutoff 11: prompt ids cut to 11, no room for EOS, user_prompt_len = 11 - 1 = 10.
    const r = run({ cutoffLen: 11, trainOnInputs: false, addEosToken: true });
    assert.deepEqual(r.ids, USER.slice(0, 11));
    assert.deepEqual(r.labels, [M, M, M, M, M, M, M, M, M, M, USER[10]]);
  });

  it('with a truncated prompt and add_eos_token=false, masks every token', () => {
    const r = run({ cutoffLen: 11, trainOnInputs: false, addEosToken: false });
    assert.deepEqual(r.labels, new Array(11).fill(M));
  });

  it('matches alpaca-lora run by transformers on 60 Alpaca records x 5 flag sets (prompt-truncating cutoffs too)', () => {
    const fixture = JSON.parse(
      gunzipSync(readFileSync(`${FIXTURES}alpaca-lora-masks.json.gz`)).toString('utf8'),
    ) as {
      cases: {
        index: number;
        cutoff_len: number;
        train_on_inputs: boolean;
        add_eos_token: boolean;
        input_ids: number[];
        labels: number[];
      }[];
    };
    const records = JSON.parse(readFileSync(ALPACA_JSON, 'utf8')) as Record<string, string>[];
    const template = loadPromptTemplate('alpaca');
    assert.equal(fixture.cases.length, 300);
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
          eosTokenId: 0,
        },
      );
      const what = `record ${c.index} cutoff ${c.cutoff_len} toi ${c.train_on_inputs} eos ${c.add_eos_token}`;
      assert.deepEqual([...e.inputIds], c.input_ids, what);
      assert.deepEqual([...e.labels], c.labels, what);
    }
  });

  it('does not add a second EOS when the text already ends with <|endoftext|>', () => {
    const e = tokenizeExample(
      tok,
      loadPromptTemplate('alpaca_short'),
      { instruction: 'Say hi', input: '', output: 'Hi!<|endoftext|>' },
      { cutoffLen: 256, trainOnInputs: true, addEosToken: false, eosTokenId: 0 },
    );
    assert.deepEqual([...e.inputIds], [...FULL, 0]);
  });
});

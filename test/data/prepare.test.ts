// prepareData: rows -> seeded split -> tokenized examples, with a fingerprint that follows the data
// and every tokenization setting.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type PrepareOptions, prepareData } from '../../src/data/prepare.ts';
import { loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { FIXTURES, TOKENIZER_JSON } from './paths.ts';

describe('prepareData', () => {
  const tok = Tokenizer.fromFile(TOKENIZER_JSON);
  const opts: PrepareOptions = {
    dataPath: join(FIXTURES, 'alpaca-tiny.parquet'),
    template: loadPromptTemplate('alpaca'),
    valSetSize: 1,
    seed: 42,
    skipBadRows: false,
    cutoffLen: 256,
    trainOnInputs: false,
    addEosToken: false,
    eosTokenId: 0,
  };

  it('splits off val_set_size rows and tokenizes both parts', async () => {
    const d = await prepareData(tok, opts);
    assert.equal(d.train.length, 3);
    assert.equal(d.val.length, 1);
    assert.deepEqual([...d.trainRows, ...d.valRows].sort(), [0, 1, 2, 3]);
    for (const e of [...d.train, ...d.val]) assert.equal(e.inputIds.at(-1), 0); // EOS
  });

  it('gives the same fingerprint for the same inputs and another for another cutoff or mask setting', async () => {
    const a = (await prepareData(tok, opts)).fingerprint;
    assert.equal((await prepareData(tok, opts)).fingerprint, a);
    assert.notEqual((await prepareData(tok, { ...opts, cutoffLen: 16 })).fingerprint, a);
    assert.notEqual((await prepareData(tok, { ...opts, trainOnInputs: true })).fingerprint, a);
  });
});

// GPT-NeoX tokenizer parity with Hugging Face `tokenizers` 0.23, on fixtures that
// tools/reference/tokenizer_parity.py made with it (the script checks all 52,002 records).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { formatPrompt, loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { readIdsFile } from './ids-file.ts';
import { ALPACA_JSON, FIXTURES, TOKENIZER_JSON } from './paths.ts';

interface Cases {
  readonly encode: readonly { text: string; ids: number[] }[];
  readonly decode: readonly { ids: number[]; skip_special: boolean; text: string }[];
}

let tok: Tokenizer;
before(() => {
  tok = Tokenizer.fromFile(TOKENIZER_JSON);
});

describe('GPT-NeoX tokenizer', () => {
  it('gives HF ids for every Alpaca record in the committed fixture (>= 2,000, hard cases first)', () => {
    const fixture = readIdsFile(`${FIXTURES}neox-alpaca-ids.bin.gz`);
    const dataBytes = readFileSync(ALPACA_JSON);
    assert.equal(
      createHash('sha256').update(dataBytes).digest('hex'),
      fixture.meta.data_sha256,
      'shared/data/alpaca_data.json is not the file the fixture was made from',
    );
    const records = JSON.parse(dataBytes.toString('utf8')) as Record<string, string>[];
    const template = loadPromptTemplate(fixture.meta.template!);
    assert.ok(fixture.records.size >= 2000);
    let mismatches = 0;
    for (const [index, expected] of fixture.records) {
      const r = records[index]!;
      const ids = tok.encode(formatPrompt(template, r.instruction!, r.input!, r.output!));
      if (ids.length !== expected.length || ids.some((id, i) => id !== expected[i])) {
        mismatches++;
        if (mismatches <= 3) assert.deepEqual(ids, expected, `record ${index}`);
      }
    }
    assert.equal(mismatches, 0);
  });

  it('gives HF ids for hand-picked hard strings (space runs, NEL/BOM, NFD, specials, emoji)', () => {
    const cases = JSON.parse(readFileSync(`${FIXTURES}neox-cases.json`, 'utf8')) as Cases;
    for (const c of cases.encode) assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
  });

  it('turns a run of 2..24 spaces into one added token and leaves the next word without its space', () => {
    // 'Hello' + 50276 (two spaces) + 'world' (not 'Ġworld'): HF matches added tokens before BPE.
    assert.deepEqual(tok.encode('Hello  world'), [12092, 50276, 10186]);
  });

  it('decodes exactly as HF, with and without special tokens, including broken UTF-8', () => {
    const cases = JSON.parse(readFileSync(`${FIXTURES}neox-cases.json`, 'utf8')) as Cases;
    assert.ok(cases.decode.length > 200);
    for (const c of cases.decode)
      assert.equal(
        tok.decode(c.ids, { skipSpecialTokens: c.skip_special }),
        c.text,
        `ids ${JSON.stringify(c.ids)} skip=${c.skip_special}`,
      );
  });

  it('round-trips Alpaca text through encode and decode', () => {
    const text = 'Write a haiku:\n\n  café 日本 👍 <|endoftext|>';
    assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: false }), text);
  });

  it('encodes a one-megabyte word (one pre-token) without overflowing the stack', () => {
    // 2^20 letters merge pairwise, as BPE does on a run of one letter, into the longest run token.
    const eight = tok.encode('a'.repeat(8));
    assert.equal(eight.length, 1, 'GPT-NeoX has one token for eight a');
    const ids = tok.encode('a'.repeat(2 ** 20));
    assert.equal(ids.length, 2 ** 17);
    assert.ok(ids.every((id) => id === eight[0]));
    const mixed = 'xQ7z'.repeat(2 ** 18);
    assert.equal(tok.decode(tok.encode(mixed)), mixed);
  });

  it('knows the GPT-NeoX sizes and special ids', () => {
    assert.equal(tok.size, 50277);
    assert.equal(tok.tokenToId('<|endoftext|>'), 0);
    assert.equal(tok.tokenToId('<|padding|>'), 1);
  });

  it('reads merges written as [left, right] pairs (tokenizer.json saved by newer tokenizers)', () => {
    const json = JSON.parse(readFileSync(TOKENIZER_JSON, 'utf8')) as { model: { merges: unknown[] } };
    json.model.merges = (json.model.merges as string[]).map((m) => m.split(' '));
    const text = 'Pairs or strings: the same merges,  the same ids.';
    assert.deepEqual(Tokenizer.fromJson(json, 'pairs').encode(text), tok.encode(text));
  });

  it('refuses a hostile tokenizer.json by size or nesting before parsing it, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-tok-'));
    try {
      const deep = join(dir, 'deep.json');
      writeFileSync(deep, `{"model":${'['.repeat(33)}${']'.repeat(33)}}`);
      assert.throws(
        () => Tokenizer.fromFile(deep),
        /deep\.json: tokenizer\.json nests deeper than 32 levels/,
      );
      const big = join(dir, 'big.json');
      writeFileSync(big, '');
      truncateSync(big, 64 * 1024 * 1024 + 1);
      assert.throws(() => Tokenizer.fromFile(big), /big\.json: .*over the 67108864-byte limit/);
      // The real file passes both guards (its depth is well under the limit).
      assert.equal(Tokenizer.fromFile(TOKENIZER_JSON).tokenToId('<|endoftext|>'), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a tokenizer.json it cannot reproduce, naming the field', () => {
    const json = JSON.parse(readFileSync(TOKENIZER_JSON, 'utf8')) as { pre_tokenizer: { type: string } };
    json.pre_tokenizer.type = 'Whitespace';
    assert.throws(
      () => Tokenizer.fromJson(json, 'x/tokenizer.json'),
      /x\/tokenizer\.json: pre_tokenizer\.type/,
    );
  });
});

// Split (Oniguruma regexes translated to JavaScript) and Metaspace against HF `tokenizers`' own
// pre_tokenize_str, on the cases tools/reference/make_split_cases.py wrote.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { onigToJs } from '../../src/data/onig-regex.ts';
import { PreTokenizer } from '../../src/data/pre-tokenizers.ts';
import { FIXTURES } from './paths.ts';

interface SplitCases {
  readonly texts: readonly string[];
  readonly cases: readonly { name: string; pre_tokenizer: object; out: string[][] }[];
}

const data = JSON.parse(readFileSync(`${FIXTURES}llama-tok/split-cases.json`, 'utf8')) as SplitCases;

describe('pre-tokenizers against HF tokenizers', () => {
  for (const c of data.cases)
    it(`${c.name}: the pieces of HF's pre_tokenize_str on ${data.texts.length} hard strings`, () => {
      const pre = PreTokenizer.parse(c.pre_tokenizer, c.name);
      for (const [i, text] of data.texts.entries())
        assert.deepEqual(pre.split(text, true), c.out[i], JSON.stringify(text));
    });

  it('covers the regexes of Llama 3, o200k and Qwen2 and every split behavior', () => {
    const names = data.cases.map((c) => c.name);
    for (const n of [
      'llama3 isolated',
      'o200k isolated',
      'qwen2 isolated',
      's+ removed',
      'dash merged_with_next',
    ])
      assert.ok(names.includes(n), n);
  });

  it('expands (?i:...) by case folding and keeps Oniguruma whitespace and dot', () => {
    assert.equal(onigToJs("(?i:'s|'ll)", 'p'), "(?:'[sSſ]|'[lL][lL])");
    // Oniguruma's `.` matches \r and U+2028 (JavaScript's does not), and its \s takes U+0085, not U+FEFF.
    const dot = new RegExp(onigToJs('a.b', 'p'), 'u');
    assert.deepEqual(
      ['a\rb', 'a\u2028b', 'a\nb'].map((t) => dot.test(t)),
      [true, true, false],
    );
    const ws = new RegExp(onigToJs('\\s', 'p'), 'u');
    assert.deepEqual(
      ['\x85', '\ufeff'].map((t) => ws.test(t)),
      [true, false],
    );
  });
});

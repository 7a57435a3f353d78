// Llama 2 / Llama 3 tokenizer pipelines against Hugging Face `tokenizers`, on fixtures trained and
// tokenized with it by tools/reference/make_llama_tokenizer_fixtures.py (every Alpaca record, hand-
// picked strings, decode cases) and what transformers' AutoTokenizer adds (BOS, no EOS).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { formatPrompt, loadPromptTemplate } from '../../src/data/prompt-template.ts';
import { Tokenizer } from '../../src/data/tokenizer.ts';
import { ALPACA_JSON, FIXTURES } from './paths.ts';

const DIR = `${FIXTURES}llama-tok/`;

interface Expected {
  readonly meta: { readonly data_sha256: string; readonly template: string };
  readonly variants: Record<
    string,
    {
      readonly base?: string;
      readonly override?: Record<string, unknown>;
      readonly hashes?: string;
      readonly differ?: Record<string, number[]>;
      readonly sample: Record<string, number[]>;
    }
  >;
}

interface Cases {
  readonly variants: Record<
    string,
    {
      readonly override?: Record<string, unknown>;
      readonly encode: readonly { text: string; ids: number[]; plain: number[] }[];
      readonly decode: readonly { ids: number[]; skip_special: boolean; text: string }[];
    }
  >;
  readonly transformers: Record<
    string,
    { bos: number; eos: number; cases: readonly { text: string; ids: number[] }[] }
  >;
}

const expected = JSON.parse(
  gunzipSync(readFileSync(`${DIR}alpaca-ids.json.gz`)).toString('utf8'),
) as Expected;
const cases = JSON.parse(readFileSync(`${DIR}cases.json`, 'utf8')) as Cases;
const baseJson = (name: string) => JSON.parse(readFileSync(`${DIR}${name}/tokenizer.json`, 'utf8')) as object;

/** A variant is its base file with some pipeline fields replaced, exactly as the builder did. */
function load(variant: string): Tokenizer {
  if (variant === 'llama2' || variant === 'llama3')
    return Tokenizer.fromFile(`${DIR}${variant}/tokenizer.json`);
  const v = expected.variants[variant]!;
  return Tokenizer.fromJson({ ...baseJson(v.base!), ...v.override }, `${variant} (override of ${v.base})`);
}

function hash2(ids: readonly number[]): string {
  return createHash('sha256')
    .update(new Uint8Array(Int32Array.from(ids).buffer))
    .digest('hex')
    .slice(0, 4);
}

describe('Llama tokenizers (fixtures trained with HF tokenizers on Alpaca)', () => {
  const dataBytes = readFileSync(ALPACA_JSON);
  const records = JSON.parse(dataBytes.toString('utf8')) as Record<string, string>[];
  const template = loadPromptTemplate(expected.meta.template);
  const texts = records.map((r) => formatPrompt(template, r.instruction!, r.input!, r.output!));

  it('was made from shared/data/alpaca_data.json', () => {
    assert.equal(createHash('sha256').update(dataBytes).digest('hex'), expected.meta.data_sha256);
  });

  for (const variant of Object.keys(expected.variants))
    it(`${variant}: the ids of HF tokenizers for every one of the 52,002 Alpaca records`, () => {
      const tok = load(variant);
      const v = expected.variants[variant]!;
      const base = expected.variants[v.base ?? variant]!;
      const hashes = Buffer.from(base.hashes!, 'base64').toString('hex');
      assert.equal(hashes.length, 4 * texts.length);
      // Full ids where the builder kept them: a diagnosable first difference.
      for (const [i, ids] of Object.entries({ ...v.sample, ...v.differ }))
        assert.deepEqual(tok.encode(texts[Number(i)]!), ids, `record ${i}`);
      const bad: number[] = [];
      texts.forEach((text, i) => {
        const ids = tok.encode(text);
        const want = v.differ?.[i] !== undefined ? hash2(v.differ[i]) : hashes.slice(4 * i, 4 * i + 4);
        if (hash2(ids) !== want) bad.push(i);
      });
      assert.deepEqual(bad.slice(0, 10), [], `${bad.length} records differ from HF`);
    });

  for (const variant of Object.keys(cases.variants))
    it(`${variant}: hand-picked strings, with and without special tokens, and decode`, () => {
      const tok = load(variant);
      const c = cases.variants[variant]!;
      for (const e of c.encode) {
        assert.deepEqual(tok.encode(e.text), e.ids, JSON.stringify(e.text));
        assert.deepEqual(tok.encode(e.text, { addSpecialTokens: false }), e.plain, JSON.stringify(e.text));
      }
      assert.ok(c.decode.length >= 100);
      for (const d of c.decode)
        assert.equal(
          tok.decode(d.ids, { skipSpecialTokens: d.skip_special }),
          d.text,
          `ids ${JSON.stringify(d.ids)} skip=${d.skip_special}`,
        );
    });

  it('add BOS and not EOS, as transformers does for each family', () => {
    for (const family of ['llama2', 'llama3'] as const) {
      const tok = load(family);
      const t = cases.transformers[family]!;
      assert.deepEqual(tok.specialAround, { before: [t.bos], after: [] });
      for (const c of t.cases)
        assert.deepEqual(tok.encode(c.text), c.ids, `${family} ${JSON.stringify(c.text)}`);
    }
    assert.equal(load('llama2').tokenToId('<s>'), 1);
    assert.equal(load('llama2').tokenToId('</s>'), 2);
    assert.equal(load('llama3').tokenOf(load('llama3').specialAround.before[0]!), '<|begin_of_text|>');
  });

  it('round-trips text through encode and decode (byte fallback included)', () => {
    const odd = 'Tab\there,  two spaces, 日本語, emoji 👍🏽, café, ñ, \u0000 and a trailing space ';
    // Not llama2-metaspace-split: its Metaspace decoder leaves <0xNN> tokens as they are; nor
    // llama2-normalized-added: its "▁<s>" is not skipped as special. HF does both (decode cases).
    for (const variant of ['llama2', 'llama2-metaspace', 'llama3']) {
      const tok = load(variant);
      for (const text of [
        odd,
        ...Object.keys(expected.variants.llama2!.sample).map((i) => texts[Number(i)]!),
      ])
        assert.equal(tok.decode(tok.encode(text)), text, `${variant}: ${JSON.stringify(text.slice(0, 60))}`);
    }
    // 日 is not in the Llama 2 fixture's alphabet: it is spelled with its three UTF-8 bytes.
    const llama2 = load('llama2');
    const bytes = llama2.encode('日', { addSpecialTokens: false }).slice(-3);
    assert.deepEqual(
      bytes.map((id) => llama2.tokenOf(id)),
      ['<0xE6>', '<0x97>', '<0xA5>'],
    );
  });
});

describe('Llama tokenizer pipelines refused by name', () => {
  const refuse = (family: string, edit: (j: Record<string, unknown>) => void, field: RegExp) => {
    const j = baseJson(family) as Record<string, unknown>;
    edit(j);
    assert.throws(() => Tokenizer.fromJson(j, 'm/tokenizer.json'), field);
  };

  it('names the file and the field of a component or flag it does not implement', () => {
    refuse(
      'llama2',
      (j) => Object.assign(j, { normalizer: { type: 'NFKC' } }),
      /m\/tokenizer\.json: normalizer\.type is "NFKC"/,
    );
    refuse(
      'llama2',
      (j) => Object.assign(j, { decoder: { type: 'Sequence', decoders: [{ type: 'WordPiece' }] } }),
      /m\/tokenizer\.json: decoder\.decoders\[0\]\.type is "WordPiece"/,
    );
    refuse(
      'llama2',
      (j) => Object.assign(j, { post_processor: { type: 'RobertaProcessing' } }),
      /post_processor\.type is "RobertaProcessing"/,
    );
    refuse(
      'llama2',
      (j) => ((j.model as Record<string, unknown>).unk_token = '<nope>'),
      /model\.unk_token "<nope>" is not in model\.vocab/,
    );
    const split = (edit: (s: Record<string, unknown>) => void) => (j: Record<string, unknown>) =>
      edit((j.pre_tokenizer as { pretokenizers: Record<string, unknown>[] }).pretokenizers[0]!);
    refuse(
      'llama3',
      split((s) => (s.behavior = 'Contiguous')),
      /pre_tokenizer\.pretokenizers\[0\]\.behavior is "Contiguous"/,
    );
    refuse(
      'llama3',
      split((s) => (s.pattern = { Regex: "\\d+|(?i:'s)" })),
      /pre_tokenizer\.pretokenizers\[0\]\.pattern.* uses \\d/,
    );
    refuse(
      'llama3',
      split((s) => (s.pattern = { Regex: '(?i)abc' })),
      /uses the group \(\?i\)/,
    );
    refuse(
      'llama3',
      split((s) => (s.pattern = { Regex: '\\w++' })),
      /\\w/,
    );
    refuse(
      'llama3',
      split((s) => (s.pattern = { Regex: 'a++' })),
      /possessive quantifier/,
    );
    refuse(
      'llama3',
      (j) => (j.pre_tokenizer as { pretokenizers: unknown[] }).pretokenizers.reverse(),
      /pre_tokenizer\.pretokenizers\[1\].*nothing after a ByteLevel pre-tokenizer/,
    );
  });

  it('a mutated pipeline field fails naming the file, or gives a tokenizer that works', () => {
    // Seeded structural mutations of every pipeline section (a field of the wrong type or value):
    // no TypeError from deep inside, no silent crash at encode time.
    let state = 26;
    const random = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    const values = [null, 7, 'x', [], {}, true, { type: 'Sequence' }, { String: 'a' }];
    const sections = ['normalizer', 'pre_tokenizer', 'decoder', 'post_processor', 'model'];
    let worked = 0;
    for (let i = 0; i < 200; i++) {
      const j = baseJson(i % 2 === 0 ? 'llama2' : 'llama3') as Record<string, Record<string, unknown> | null>;
      let target = j[sections[i % sections.length]!];
      // Reach into a Sequence's members half of the time.
      const inner = target && Object.values(target).find((v) => Array.isArray(v) && v.length > 0);
      if (inner && random() < 0.5) target = (inner as Record<string, unknown>[])[0]!;
      if (target) {
        const keys = Object.keys(target).filter((k) => k !== 'vocab' && k !== 'merges');
        target[keys[Math.floor(random() * keys.length)]!] = values[Math.floor(random() * values.length)];
      }
      try {
        const tok = Tokenizer.fromJson(j, `mutant-${i}/tokenizer.json`);
        tok.decode(tok.encode("Below is an instruction. It's 日本 👍  x\n"), { skipSpecialTokens: false });
        worked++;
      } catch (err) {
        assert.ok(err instanceof Error, String(err));
        assert.ok(err.message.includes(`mutant-${i}/tokenizer.json`), `mutation ${i}: ${err.message}`);
      }
    }
    assert.ok(worked > 0 && worked < 200, `${worked} of 200 mutants worked`);
  });
});

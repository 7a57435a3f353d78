// A Llama folder with a Llama-family tokenizer (the llama-tok fixtures: tokenizer.json and the
// tokenizer_config.json naming BOS/EOS) through the commands a user runs, as real processes:
// `preprocess --json` gives alpaca-lora's own ids and labels (BOS from the post-processor, EOS from
// tokenizer_config.json: </s> = 2 for Llama 2, <|end_of_text|> = 4001 for Llama 3), and `finetune`
// then `generate` on a tiny random Llama: the adapter learns one record's answer and its EOS, so
// greedy decoding ends with that answer and stops at </s> (an EOS other than the one finetune appended
// would run on to --max_new_tokens).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { familyOf } from '../../src/families/registry.ts';
import { ALPACA_JSON, FIXTURES } from '../data/paths.ts';
import { finetune } from '../support/finetune-run.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const TOK = `${FIXTURES}llama-tok/`;

interface MaskCase {
  index: number;
  cutoff_len: number;
  train_on_inputs: boolean;
  add_eos_token: boolean;
  input_ids: number[];
  labels: number[];
}

describe('a Llama folder with a Llama-family tokenizer, end to end', () => {
  let dir = '';
  const records = JSON.parse(readFileSync(ALPACA_JSON, 'utf8')) as Record<string, string>[];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lora-mpt-llama-tok-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const family of ['llama2', 'llama3'])
    it(`${family}: preprocess --json prints alpaca-lora's ids and labels for every flag set`, async () => {
      const fixture = JSON.parse(
        gunzipSync(readFileSync(`${TOK}alpaca-lora-masks-${family}.json.gz`)).toString('utf8'),
      ) as { eos_token_id: number; cases: MaskCase[] };
      const sets = new Map<string, MaskCase[]>();
      for (const c of fixture.cases) {
        const key = `${c.cutoff_len} ${c.train_on_inputs} ${c.add_eos_token}`;
        sets.set(key, [...(sets.get(key) ?? []), c]);
      }
      let eosEnded = 0;
      for (const [key, cases] of sets) {
        const data = join(dir, `${family}-data.json`);
        writeFileSync(data, JSON.stringify(cases.map((c) => records[c.index])));
        const c0 = cases[0]!;
        const { stdout } = await run(process.execPath, [
          BIN,
          'preprocess',
          '--tokenizer',
          `${TOK}${family}/tokenizer.json`,
          '--data_path',
          data,
          '--cutoff_len',
          String(c0.cutoff_len),
          `--train_on_inputs=${c0.train_on_inputs ? 'True' : 'False'}`,
          `--add_eos_token=${c0.add_eos_token ? 'True' : 'False'}`,
          '--json',
        ]);
        const got = stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { input_ids: number[]; labels: number[] });
        assert.equal(got.length, cases.length, key);
        cases.forEach((c, k) => {
          assert.deepEqual(got[k]!.input_ids, c.input_ids, `${key} record ${c.index}`);
          assert.deepEqual(got[k]!.labels, c.labels, `${key} record ${c.index}`);
        });
        eosEnded += got.filter((g) => g.input_ids.at(-1) === fixture.eos_token_id).length;
      }
      assert.ok(eosEnded > 0, 'some examples end with the EOS alpaca-lora appended');
    });

  it('llama2: finetune learns an answer and its </s>; generate ends with it and stops there', async () => {
    const model = join(dir, 'llama');
    await familyOf('llama', 'test').writeRandomCheckpoint(model, {
      dModel: 32,
      nHeads: 4,
      nLayers: 2,
      vocabSize: 4000,
      maxSeqLen: 128,
      seed: 7,
      initStd: 0.2,
    });
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      copyFileSync(`${TOK}llama2/${f}`, join(model, f));
    const record = records.find((r) => r.output === 'The capital of Spain is Madrid.')!;
    const data = join(dir, 'one.json');
    writeFileSync(data, JSON.stringify(Array.from({ length: 4 }, () => record)));
    const out = join(dir, 'adapter');
    const r = await finetune('llama-tok', { dir, model, data, cleanup: () => undefined }, out, {
      batch_size: 4,
      micro_batch_size: 4,
      cutoff_len: 96,
      val_set_size: 0,
      save_steps: 1000,
      learning_rate: '5e-2',
      warmup_steps: 5,
      lora_r: 16,
      train_on_inputs: false,
      lora_target_modules: 'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj',
      max_steps: 40,
      backend: 'cpu',
    });
    assert.equal(r.code, 0, r.p.output());
    const { stdout, stderr } = await run(process.execPath, [
      BIN,
      'generate',
      '--base_model',
      model,
      '--lora_weights',
      out,
      '--instruction',
      record.instruction!,
      '--max_new_tokens',
      '40',
      '--backend',
      'cpu',
    ]);
    // LoRA alone on a 32-wide random model learns the answer's end, not all of it: what is checked is
    // that decoding stops right after it, at the </s> finetune appended.
    assert.match(stdout, /Spain is Madrid\.\n$/, stderr);
    const finished = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; finish_reason?: string; completion_tokens?: number })
      .find((e) => e.event === 'generation_finished');
    assert.equal(finished?.finish_reason, 'stop', stderr);
    assert.ok((finished?.completion_tokens ?? 40) < 40, stderr);
  });
});

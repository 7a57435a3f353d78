// `lora-mpt generate --instruction ...` as a user runs it: a real process that loads a fixture model,
// optionally with the adapter Python PEFT saved, tokenizes with a tokenizer.json, applies a template
// file, decodes (greedy or 4 beams) and prints the answer, which must be what transformers'
// generate + generate.py's prompter give (tools/reference/make_generate_fixtures.py, computed with
// HF `tokenizers`). Also the usage errors that name the flag.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const CLI = fileURLToPath(new URL('../fixtures/generate/cli/', import.meta.url));
const MODEL = fileURLToPath(new URL('../fixtures/mpt/h6-all', import.meta.url));

interface CliRun {
  readonly instruction: string;
  readonly adapter: boolean;
  readonly num_beams: number;
  readonly answer: string;
}
const expected = JSON.parse(readFileSync(`${CLI}expected.json`, 'utf8')) as {
  max_new_tokens: number;
  runs: CliRun[];
};

function args(r: Pick<CliRun, 'instruction' | 'adapter' | 'num_beams'>, backend = 'wasm'): string[] {
  return [
    BIN,
    'generate',
    '--base_model',
    MODEL,
    ...(r.adapter ? ['--lora_weights', `${MODEL}/adapter_init`] : []),
    '--tokenizer',
    `${CLI}tokenizer.json`,
    '--prompt_template_name',
    `${CLI}template.json`,
    '--instruction',
    r.instruction,
    '--num_beams',
    String(r.num_beams),
    '--max_new_tokens',
    String(expected.max_new_tokens),
    '--backend',
    backend,
  ];
}

describe('lora-mpt generate --instruction (one-shot)', () => {
  for (const r of expected.runs) {
    const what = `${r.adapter ? 'with the PEFT adapter' : 'base model alone'}, ${r.num_beams === 1 ? 'greedy' : `${r.num_beams} beams`}, "${r.instruction}"`;
    it(`prints the answer transformers gives: ${what}`, async () => {
      const { stdout, stderr } = await run(process.execPath, args(r));
      assert.equal(stdout, `${r.answer}\n`, stderr);
      const finished = stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { event: string; completion_tokens?: number })
        .find((e) => e.event === 'generation_finished');
      assert.equal(finished?.completion_tokens, expected.max_new_tokens);
    });
  }

  it('streams the same answer with --stream (greedy)', async () => {
    const r = expected.runs.find((x) => x.num_beams === 1 && x.adapter) as CliRun;
    const { stdout } = await run(process.execPath, [...args(r), '--stream']);
    assert.equal(stdout, `${r.answer}\n`);
  });

  it('refuses flags that cannot go together, naming them', async () => {
    const r = expected.runs.find((x) => x.num_beams > 1) as CliRun;
    await assert.rejects(
      run(process.execPath, [...args(r), '--sample']),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2);
        assert.match(e.stderr, /--sample .*--num_beams 1/);
        return true;
      },
    );
    await assert.rejects(
      run(process.execPath, [...args({ ...r, num_beams: 1 }), '--sample', '--temperature', '0']),
      (e: { stderr: string }) => /--temperature 0/.test(e.stderr),
    );
  });

  it('says the prompt does not fit the context, with both lengths', async () => {
    const long = 'x'.repeat(40); // one token per character here; the fixture context is 32
    await assert.rejects(
      run(process.execPath, args({ instruction: long, adapter: false, num_beams: 1 })),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /the prompt has 45 tokens and the model's context \(max_seq_len\) is 32/);
        return true;
      },
    );
  });
});

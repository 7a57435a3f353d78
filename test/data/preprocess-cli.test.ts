// `lora-mpt preprocess` as a user runs it (a real process): JSON lines of ids and labels, the human
// view, bad-row errors, and --help. Expected ids are HF `tokenizers` output for the record.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TOKENIZER_JSON } from './paths.ts';

const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const USER = [4118, 41959, 27, 187, 27128, 14260, 187, 187, 4118, 19371, 27, 187];

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'preprocess', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// One folder for the files of this test file, removed when it ends.
const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-preprocess-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

function dataFile(lines: readonly string[]): string {
  const file = join(dir, `d${files++}.jsonl`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const common = ['--tokenizer', TOKENIZER_JSON, '--prompt_template_name', 'alpaca_short'];

describe('lora-mpt preprocess', () => {
  it('prints one {"input_ids", "labels"} object per record with --json', () => {
    const file = dataFile([
      JSON.stringify({ instruction: 'Say hi', input: '', output: 'Hi!' }),
      JSON.stringify({ instruction: 'Say hi', input: '', output: 'Hi!' }),
    ]);
    const r = cli(...common, '--data_path', file, '--json', '--train_on_inputs=False');
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(JSON.parse(lines[0]!), {
      input_ids: [...USER, 12764, 2, 0],
      labels: [...USER.map(() => -100), 12764, 2, 0],
    });
  });

  it('shows the prompt and brackets the supervised tokens in the human view', () => {
    const file = dataFile([JSON.stringify({ instruction: 'Say hi', input: '', output: 'Hi!' })]);
    const r = cli(...common, '--data_path', file, '--train_on_inputs', 'false');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /15 tokens, 3 supervised, EOS appended/);
    assert.match(r.out, /### Instruction:\nSay hi\n\n### Response:\nHi!\n/);
    assert.match(r.out, /187:"\\n" \[12764:"Hi"\] \[2:"!"\] \[0:"<\|endoftext\|>"\]/);
  });

  it('stops with file, line and field for a bad row, and skips it with --skip_bad_rows', () => {
    const file = dataFile([
      JSON.stringify({ instruction: 'x', input: '', output: 'y' }),
      JSON.stringify({ instruction: 'x', input: 1, output: 'y' }),
    ]);
    const bad = cli(...common, '--data_path', file, '--json');
    assert.equal(bad.code, 1);
    assert.match(bad.err, new RegExp(`${file} line 2 \\(row 1\\): "input" is not a string \\(got number\\)`));
    const skip = cli(...common, '--data_path', file, '--json', '--skip_bad_rows');
    assert.equal(skip.code, 0);
    assert.equal(skip.out.trim().split('\n').length, 1);
    assert.match(skip.err, /skipped 1 bad rows/);
  });

  it('explains every flag in --help', () => {
    const r = cli('--help');
    assert.equal(r.code, 0);
    for (const flag of [
      'base_model',
      'tokenizer',
      'data_path',
      'prompt_template_name',
      'cutoff_len',
      'train_on_inputs',
      'add_eos_token',
      'skip_bad_rows',
      'start',
      'limit',
      'json',
    ])
      assert.match(r.out, new RegExp(`--${flag}\\b`));
  });
});

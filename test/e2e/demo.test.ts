// `lora-mpt demo` ends by asking its adapter one Alpaca instruction and printing the answer, saying
// plainly that a random base model answers nonsense; the answer is the one `lora-mpt generate` gives
// for the same model, adapter and instruction (the same engine). A short demo: 2 steps, in-process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'lora-mpt-demo-'));
after(() => rmSync(out, { recursive: true, force: true }));

describe('lora-mpt demo', () => {
  it('ends with the adapter’s answer to an Alpaca instruction, called nonsense, as generate gives it', async () => {
    const demo = await run(
      process.execPath,
      [BIN, 'demo', '--workers', '0', '--max_steps', '2', '--output_dir', out, '--backend', 'wasm'],
      { maxBuffer: 1 << 26 },
    );
    assert.match(demo.stdout, /Instruction: Tell me about alpacas\./);
    const line = /^ {2}Answer: (.*)$/m.exec(demo.stdout);
    assert.ok(line, demo.stdout);
    const answer = JSON.parse(line[1] as string) as string;
    assert.match(demo.stdout, /that answer is nonsense, and must be: the base model has RANDOM weights/);
    const once = await run(process.execPath, [
      BIN,
      'generate',
      '--base_model',
      join(out, 'base-model'),
      '--lora_weights',
      join(out, 'adapter'),
      '--instruction',
      'Tell me about alpacas.',
      '--backend',
      'wasm',
    ]);
    assert.equal(once.stdout, `${answer}\n`);
  });
});

// Every `lora-mpt` command takes --log_format and --log_level (an operator passes the same flags to
// all of them, e.g. through the chart's extraArgs), lists them in --help, and applies them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseFlags } from '../../src/cli/flags.ts';
import { loadCommands } from '../../src/cli/main.ts';

const run = promisify(execFile);
const commands = await loadCommands();
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const H6 = fileURLToPath(new URL('../fixtures/mpt/h6-all', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'lora-mpt-log-flags-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function helpOf(name: string): Promise<string> {
  const command = commands.find((c) => c.name === name)!;
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    assert.equal(await command.run(['--help']), 0);
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

describe('--log_format and --log_level on every command', () => {
  for (const c of commands) {
    it(`${c.name}: listed in --help and accepted`, async () => {
      const help = await helpOf(c.name);
      assert.match(help, /\n {2}--log_format <string>/);
      assert.match(help, /\n {2}--log_level <string>/);
      assert.ok(c.flags, `${c.name} declares its flags`);
      const f = parseFlags(c.flags, ['--log_format', 'json', '--log_level', 'warn']) as Record<
        string,
        unknown
      >;
      assert.equal(f.log_format, 'json');
      assert.equal(f.log_level, 'warn');
    });
  }

  it('merge reports as JSON events with --log_format json', async () => {
    const out = join(work, 'merged');
    const r = await run(process.execPath, [
      BIN,
      'merge',
      '--base_model',
      H6,
      '--lora_weights',
      join(H6, 'adapter_init'),
      '--output_dir',
      out,
      '--log_format',
      'json',
    ]);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; dir?: string });
    const merged = events.find((e) => e.event === 'model_merged');
    assert.equal(merged?.dir, out);
  });

  it('certs prints nothing below --log_level warn, and a bad value is exit 2 naming the flag', async () => {
    const quiet = await run(process.execPath, [
      BIN,
      'certs',
      '--out',
      join(work, 'certs'),
      '--log_level',
      'warn',
    ]);
    assert.equal(quiet.stdout, '');
    await assert.rejects(
      run(process.execPath, [BIN, 'merge', '--base_model', H6, '--log_format', 'xml']),
      (e: { code: number; stderr: string }) => {
        assert.equal(e.code, 2);
        assert.match(e.stderr, /--log_format xml: expected auto, json or text/);
        return true;
      },
    );
  });
});

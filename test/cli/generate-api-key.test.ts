// `lora-mpt generate`'s API key flags as a user runs them (real processes): a server beyond loopback
// without a key is refused naming --server_name, unless --insecure, which it then announces loudly
// (an `insecure_transport` warning) and serves to anyone; the key's two sources may not both be
// given; an empty key file is named; one-shot mode needs no key.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startGenerateServer } from '../serve/support/generate-server.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/lora-mpt.mjs', import.meta.url));
const CLI = fileURLToPath(new URL('../fixtures/generate/cli/', import.meta.url));
const MODEL = fileURLToPath(new URL('../fixtures/mpt/h6-all', import.meta.url));
const SERVE = ['generate', '--base_model', MODEL, '--tokenizer', `${CLI}tokenizer.json`, '--port', '0'];

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'lora-mpt-api-key-cli-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The command's exit code and stderr; it must fail. Without LORA_MPT_API_KEY unless `env` sets it. */
async function refused(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const { LORA_MPT_API_KEY: _, ...rest } = process.env;
  try {
    await run(process.execPath, [BIN, ...args], { env: { ...rest, ...env }, timeout: 60_000 });
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  assert.fail(`lora-mpt ${args.join(' ')} did not fail`);
}

describe('lora-mpt generate: the API key flags', () => {
  it('refuses to listen beyond loopback without a key, naming --server_name and the key sources', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
      const r = await refused([...SERVE, '--server_name', host]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`--server_name ${host}.*--api_key_file FILE or \\$LORA_MPT_API_KEY`));
    }
  });

  it('refuses a key from both the file and the environment, naming both', async () => {
    const file = join(dir, 'key');
    writeFileSync(file, 'k1\n');
    const r = await refused([...SERVE, '--api_key_file', file], { LORA_MPT_API_KEY: 'k2' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--api_key_file ${file} and \\$LORA_MPT_API_KEY both give an API key`));
  });

  it('names an empty or missing key file, an empty variable, a key with spaces and one too short', async () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, ' \n\n');
    const spaced = join(dir, 'spaced');
    writeFileSync(spaced, 'two words\n');
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--api_key_file', empty], {}, new RegExp(`--api_key_file ${empty} is empty`)],
      [['--api_key_file', join(dir, 'none')], {}, /--api_key_file .*none: ENOENT/],
      [[], { LORA_MPT_API_KEY: '' }, /\$LORA_MPT_API_KEY is empty/],
      [['--api_key_file', spaced], {}, /spaced: the API key must be printable ASCII with no spaces/],
      [
        [],
        { LORA_MPT_API_KEY: 'x'.repeat(31) },
        /\$LORA_MPT_API_KEY: the API key has 31 characters; use at least 32, random \(e\.g\. `openssl rand -hex 32/,
      ],
    ];
    for (const [args, env, message] of cases) {
      const r = await refused([...SERVE, ...args], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    }
  });

  it('refuses --insecure together with a key', async () => {
    const r = await refused([...SERVE, '--insecure'], { LORA_MPT_API_KEY: 'k'.repeat(32) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--insecure and an API key \(\$LORA_MPT_API_KEY\) contradict each other/);
  });

  it('serves 0.0.0.0 without a key with --insecure, and says so loudly', async () => {
    const server = await startGenerateServer(128, 3, { args: ['--server_name', '0.0.0.0', '--insecure'] });
    try {
      const warning = server.process.events().find((e) => e.event === 'insecure_transport');
      assert.equal(warning?.level, 'warn');
      assert.equal(warning?.role, 'generate');
      assert.match(String(warning?.msg), /INSECURE/);
      const res = await fetch(new URL('/v1/models', server.url));
      assert.equal(res.status, 200);
      const page = await (await fetch(server.url)).text();
      assert.ok(!page.includes('id="api_key"'), 'no key, no key field');
    } finally {
      await server.close();
    }
  });

  it('answers one-shot (--instruction) on any --server_name without a key', async () => {
    const { LORA_MPT_API_KEY: _, ...env } = process.env;
    const { stdout } = await run(
      process.execPath,
      [
        BIN,
        ...SERVE,
        '--server_name',
        '0.0.0.0',
        '--instruction',
        'hi',
        '--num_beams',
        '1',
        '--max_new_tokens',
        '4',
        '--prompt_template_name',
        `${CLI}template.json`,
        '--backend',
        'wasm',
      ],
      { env, timeout: 120_000 },
    );
    assert.ok(stdout.endsWith('\n'));
  });
});

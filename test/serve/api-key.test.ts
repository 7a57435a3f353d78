// The generate server with an API key, spoken to over real HTTP: the API answers 401 (OpenAI's shape,
// WWW-Authenticate: Bearer) without the key or with a wrong one, 200 with it; the page and /healthz
// stay open, and the page asks for the key. The key comes from $LORA_MPT_API_KEY on one server and
// from --api_key_file (trailing newline ignored, listening on 0.0.0.0) on the other.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type GenerateServer, startGenerateServer } from './support/generate-server.ts';

const KEY = 'sk-test-3f9a1c0b7e5d24a8c61f0e9b7d3a2c15';
const FILE_KEY = 'another-key_42-9c1e5b7a3d2f8e6b0a4c';
let fromEnv: GenerateServer;
let fromFile: GenerateServer;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lora-mpt-api-key-'));
  const keyFile = join(dir, 'api-key');
  writeFileSync(keyFile, `${FILE_KEY}\n`);
  [fromEnv, fromFile] = await Promise.all([
    startGenerateServer(256, 21, { env: { LORA_MPT_API_KEY: KEY } }),
    startGenerateServer(256, 21, { args: ['--api_key_file', keyFile, '--server_name', '0.0.0.0'] }),
  ]);
});

after(async () => {
  await Promise.all([fromEnv?.close(), fromFile?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: answers are JSON, checked field by field below
type Answer = Record<string, any>;

const CALLS: readonly [string, string, unknown][] = [
  ['POST', '/v1/completions', { prompt: 'The alpaca', max_tokens: 3, temperature: 0 }],
  [
    'POST',
    '/v1/chat/completions',
    { messages: [{ role: 'user', content: 'Hi.' }], max_tokens: 3, temperature: 0 },
  ],
  ['POST', '/api/generate', { instruction: 'Hi.', num_beams: 1, max_new_tokens: 3 }],
  ['GET', '/v1/models', undefined],
];

function call(server: GenerateServer, [method, path, body]: (typeof CALLS)[number], key?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== undefined) headers.authorization = key;
  return fetch(new URL(path, server.url), {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function assertUnauthorized(res: Response, what: string): Promise<void> {
  const e = (await res.json()) as Answer;
  assert.equal(res.status, 401, what);
  assert.equal(res.headers.get('www-authenticate'), 'Bearer', what);
  assert.equal(e.error.type, 'invalid_request_error');
  assert.equal(e.error.code, 'invalid_api_key');
  assert.match(e.error.message, /Authorization: Bearer/);
}

describe('the generate server with an API key (real server)', () => {
  it('answers 401 to every API call without the key, with a wrong one and with one of the same length', async () => {
    const wrong = `Bearer ${KEY.slice(0, -1)}${KEY.endsWith('x') ? 'y' : 'x'}`;
    assert.equal(wrong.length, `Bearer ${KEY}`.length);
    for (const c of CALLS) {
      for (const header of [undefined, 'Bearer nope', wrong, KEY, `Basic ${KEY}`]) {
        await assertUnauthorized(await call(fromEnv, c, header), `${c[1]} with ${header}`);
      }
    }
    const refused = fromEnv.process.events().filter((e) => e.event === 'request_refused' && e.status === 401);
    assert.ok(refused.length >= CALLS.length * 5, `${refused.length} refusals logged`);
  });

  it('answers the API with the key from $LORA_MPT_API_KEY', async () => {
    for (const c of CALLS) {
      const res = await call(fromEnv, c, `Bearer ${KEY}`);
      assert.equal(res.status, 200, `${c[1]}: ${await res.clone().text()}`);
    }
    const models = (await (await call(fromEnv, CALLS[3]!, `bearer ${KEY}`)).json()) as Answer;
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id),
      [fromEnv.model],
    );
  });

  it('answers the API with the key of --api_key_file, its trailing newline ignored, on 0.0.0.0', async () => {
    assert.match(fromFile.url, /^http:\/\/0\.0\.0\.0:/);
    for (const c of CALLS) {
      await assertUnauthorized(await call(fromFile, c, `Bearer ${KEY}`), c[1]);
      assert.equal((await call(fromFile, c, `Bearer ${FILE_KEY}`)).status, 200, c[1]);
    }
    await assertUnauthorized(await call(fromFile, CALLS[0]!, `Bearer ${FILE_KEY}x`), 'key+x');
  });

  it('keeps /healthz and the page open; the page asks for the key', async () => {
    const health = await fetch(new URL('/healthz', fromEnv.url));
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as Answer).status, 'ok');
    const page = await fetch(fromEnv.url);
    assert.equal(page.status, 200);
    assert.match(
      await page.text(),
      /<label for="api_key">API key<\/label>\s*<input type="password" id="api_key"/,
    );
    assert.equal((await fetch(new URL('/nowhere', fromEnv.url))).status, 404);
  });

  it('says in server_listening that a key is required', async () => {
    const listening = await fromEnv.process.waitForEvent('server_listening');
    assert.equal(listening.api_key, true);
  });
});

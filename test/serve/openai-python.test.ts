// The official OpenAI Python client (scripts/setup-openai-python.sh) against a real `lora-mpt
// generate` server: the calls a Python user makes, as test/serve/openai-sdk.test.ts makes them with
// the npm client. The script prints what the client returned; the answers are checked here against
// the server's own JSON API and against each other, not against the client's view of itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type GenerateServer, startGenerateServer } from './support/generate-server.ts';

const PYTHON = `${process.env.OPENAI_PYTHON_VENV ?? '/opt/lora-mpt-openai'}/bin/python`;
const SCRIPT = fileURLToPath(new URL('./support/openai_client.py', import.meta.url));
const KEY = 'py-sdk-test-key-1c7e4a9b2d5f8e0c3a6b';
const missing = existsSync(PYTHON) ? false : `${PYTHON} not found: run scripts/setup-openai-python.sh`;
if (missing && process.env.CI) throw new Error(`CI needs the OpenAI Python client: ${missing}`);

// biome-ignore lint/suspicious/noExplicitAny: the script's JSON, checked field by field below
type Answer = Record<string, any>;

describe('the official OpenAI Python client', { skip: missing }, () => {
  let server: GenerateServer;
  let out: Answer;
  before(async () => {
    server = await startGenerateServer(256, 5, { env: { LORA_MPT_API_KEY: KEY } });
    const r = spawnSync(PYTHON, [SCRIPT, new URL('/v1', server.url).href, KEY], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    out = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
  });
  after(async () => {
    await server?.close();
  });

  it('lists and retrieves the model, gets 404 model_not_found for another and 401 for a wrong key', () => {
    assert.equal(out.listed, server.model);
    assert.deepEqual(out.retrieved, { id: server.model, object: 'model', owned_by: 'lora-mpt' });
    assert.deepEqual(out.retrieve_other, {
      class: 'NotFoundError',
      status: 404,
      param: 'model',
      code: 'model_not_found',
    });
    assert.equal(out.wrong_key.class, 'AuthenticationError');
  });

  it('takes the developer role as system, and response_format text, refusing json_object by its field', () => {
    assert.deepEqual(out.developer, out.system);
    assert.equal(out.format_text, out.plain);
    assert.deepEqual(out.format_json_object, {
      class: 'BadRequestError',
      status: 400,
      param: 'response_format.type',
      code: null,
    });
  });

  it('streams an empty answer as a first delta with content "", the whole answer being ""', () => {
    assert.ok(out.empty.answer.length > 0);
    assert.equal(out.empty.whole, '');
    assert.deepEqual(out.empty.deltas[0], { role: 'assistant', content: '' });
    assert.equal(out.empty.finish, 'stop');
  });

  it("gets the server's own completion and token counts", async () => {
    const res = await fetch(new URL('/v1/completions', server.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: 'Alpacas are', temperature: 0, max_tokens: 5 }),
    });
    const direct = (await res.json()) as Answer;
    assert.equal(out.completion.text, direct.choices[0].text);
    assert.deepEqual(
      [
        out.completion.usage.prompt_tokens,
        out.completion.usage.completion_tokens,
        out.completion.usage.total_tokens,
      ],
      [direct.usage.prompt_tokens, direct.usage.completion_tokens, direct.usage.total_tokens],
    );
  });
});

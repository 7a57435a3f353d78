// The official npm `openai` client against a real `lora-mpt generate` server: what newer SDKs send
// and call works as OpenAI's own API answers it — models.retrieve, the "developer" role, a text
// response_format (structured formats a 400 naming the field), and an empty streamed chat answer
// whose first delta carries content "" as the whole answer's content is "".
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { type GenerateServer, startGenerateServer } from './support/generate-server.ts';

const KEY = 'sdk-test-key-5b2e9d7c1a4f8e3b6d0c2a9e';
let server: GenerateServer;
let client: OpenAI;
before(async () => {
  server = await startGenerateServer(256, 5, { env: { LORA_MPT_API_KEY: KEY } });
  client = new OpenAI({ apiKey: KEY, baseURL: new URL('/v1', server.url).href, maxRetries: 0 });
});
after(async () => {
  await server.close();
});

const GREEDY = { temperature: 0, max_tokens: 6 } as const;

describe('the npm openai client', () => {
  it('retrieves the one model by its id (URL-encoded by the client) and gets 404 for another', async () => {
    const listed = await client.models.list();
    const id = listed.data[0]?.id as string;
    assert.equal(id, server.model);
    const model = await client.models.retrieve(id);
    assert.deepEqual([model.id, model.object, model.owned_by], [id, 'model', 'lora-mpt']);
    await assert.rejects(client.models.retrieve('gpt-4o'), (e: unknown) => {
      assert.ok(e instanceof OpenAI.NotFoundError, String(e));
      assert.equal(e.code, 'model_not_found');
      return true;
    });
    const keyless = new OpenAI({ apiKey: 'x'.repeat(32), baseURL: client.baseURL, maxRetries: 0 });
    await assert.rejects(keyless.models.retrieve(id), OpenAI.AuthenticationError);
  });

  it('takes a "developer" message as the system message', async () => {
    const messages = (role: 'system' | 'developer') => [
      { role, content: 'You answer in one word.' },
      { role: 'user' as const, content: 'Name a colour.' },
    ];
    const asSystem = await client.chat.completions.create({
      model: server.model,
      messages: messages('system'),
      ...GREEDY,
    });
    const asDeveloper = await client.chat.completions.create({
      model: server.model,
      messages: messages('developer'),
      ...GREEDY,
    });
    assert.equal(asDeveloper.choices[0]?.message.content, asSystem.choices[0]?.message.content);
    assert.deepEqual(asDeveloper.usage, asSystem.usage);
  });

  it('accepts response_format text and refuses json_object and json_schema naming the field', async () => {
    const messages = [{ role: 'user' as const, content: 'Say hi.' }];
    const plain = await client.chat.completions.create({ model: server.model, messages, ...GREEDY });
    const text = await client.chat.completions.create({
      model: server.model,
      messages,
      response_format: { type: 'text' },
      ...GREEDY,
    });
    assert.equal(text.choices[0]?.message.content, plain.choices[0]?.message.content);
    for (const response_format of [
      { type: 'json_object' as const },
      { type: 'json_schema' as const, json_schema: { name: 'x', schema: { type: 'object' } } },
    ]) {
      await assert.rejects(
        client.chat.completions.create({ model: server.model, messages, response_format, ...GREEDY }),
        (e: unknown) => {
          assert.ok(e instanceof OpenAI.BadRequestError, String(e));
          assert.equal(e.param, 'response_format.type');
          assert.match(e.message, new RegExp(`"${response_format.type}" is not supported`));
          return true;
        },
      );
    }
  });

  it('streams an empty answer with content "" in its first delta, as the whole answer is ""', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me about alpacas.' }];
    const full = await client.chat.completions.create({ model: server.model, messages, ...GREEDY });
    const answer = full.choices[0]?.message.content as string;
    assert.ok(answer.length > 0, `the greedy answer ${JSON.stringify(answer)} has text to stop at`);
    // A stop string at the answer's very start leaves nothing to answer.
    const stop = answer.slice(0, 1);
    const whole = await client.chat.completions.create({ model: server.model, messages, stop, ...GREEDY });
    assert.equal(whole.choices[0]?.message.content, '');
    const stream = await client.chat.completions.create({
      model: server.model,
      messages,
      stop,
      stream: true,
      ...GREEDY,
    });
    const deltas: { role?: string | null; content?: string | null }[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice === undefined) continue;
      deltas.push(choice.delta);
      finish = choice.finish_reason ?? finish;
    }
    assert.deepEqual(deltas[0], { role: 'assistant', content: '' });
    assert.equal(deltas.map((d) => d.content ?? '').join(''), '');
    assert.equal(finish, 'stop');
  });
});

// `lora-mpt generate` as a server, spoken to over real HTTP on loopback as OpenAI clients and the web
// page do: JSON and SSE answers of /v1/completions and /v1/chat/completions, /healthz and /v1/models,
// 400s naming the field, several clients at once, a client that disconnects cancelling its
// generation, seeded sampling. The model is a small random MPT with the real GPT-NeoX tokenizer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LoraProcess } from '../support/processes.ts';
import { type GenerateServer, startGenerateServer } from './support/generate-server.ts';
import { readSse } from './support/sse.ts';

const CONTEXT = 1024;
let generate: GenerateServer;
let server: LoraProcess;
let url: string;

const post = (path: string, body: unknown, init: RequestInit = {}) =>
  fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });

// biome-ignore lint/suspicious/noExplicitAny: answers are JSON, checked field by field below
type Answer = Record<string, any>;

async function json(res: Response): Promise<Answer> {
  return (await res.json()) as Answer;
}

before(async () => {
  generate = await startGenerateServer(CONTEXT, 5);
  server = generate.process;
  url = generate.url;
});

after(() => generate.close());

describe('lora-mpt generate (server)', () => {
  it('answers /healthz (naming no path) and /v1/models', async () => {
    const healthText = await (await fetch(new URL('/healthz', url))).text();
    const health = JSON.parse(healthText);
    assert.equal(health.status, 'ok');
    assert.ok(!healthText.includes(generate.model), `/healthz names no local path: ${healthText}`);
    const models = await json(await fetch(new URL('/v1/models', url)));
    assert.deepEqual(
      models.data.map((m: { id: string }) => m.id),
      [generate.model],
    );
  });

  it('serves the page with generate.py’s controls and defaults', async () => {
    const res = await fetch(url);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const html = await res.text();
    for (const [id, value] of [
      ['temperature', '0.1'],
      ['top_p', '0.75'],
      ['top_k', '40'],
      ['num_beams', '4'],
      ['max_new_tokens', '128'],
    ]) {
      assert.match(html, new RegExp(`id="${id}"[^>]*value="${value}"`), id);
    }
    for (const label of ['Instruction', 'Input', 'Stream output', 'Output'])
      assert.ok(html.includes(label), label);
  });

  it('completes a prompt as OpenAI does, and streams the same text as deltas', async () => {
    const body = { model: 'any', prompt: 'The alpaca is', max_tokens: 12, temperature: 0 };
    const whole = await json(await post('/v1/completions', body));
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.choices.length, 1);
    assert.equal(whole.choices[0].finish_reason, 'length');
    assert.equal(whole.usage.completion_tokens, 12);
    assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 12);
    assert.ok(whole.choices[0].text.length > 0);

    const res = await post('/v1/completions', {
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const { events, done } = await readSse(res);
    assert.ok(done, 'ends with data: [DONE]');
    const chunks = events as { choices: { text: string; finish_reason: string | null }[]; usage?: unknown }[];
    const usage = chunks.pop();
    assert.deepEqual(usage?.choices, []);
    assert.deepEqual(usage?.usage, whole.usage);
    const text = chunks.map((c) => c.choices[0]?.text).join('');
    assert.equal(text, whole.choices[0].text);
    assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'length');
    assert.ok(chunks.length > 2, `streamed in ${chunks.length} chunks`);
  });

  it('chats with the Alpaca template; the stream starts with the assistant role', async () => {
    const body = {
      messages: [{ role: 'user', content: 'Tell me about alpacas.' }],
      max_tokens: 10,
      temperature: 0,
    };
    const whole = await json(await post('/v1/chat/completions', body));
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.choices[0].message.role, 'assistant');
    // The Alpaca prompt with no input is 37 tokens long with this instruction.
    assert.ok(whole.usage.prompt_tokens > 30, `prompt_tokens ${whole.usage.prompt_tokens}`);
    const { events, done } = await readSse(await post('/v1/chat/completions', { ...body, stream: true }));
    assert.ok(done);
    const chunks = events as { object: string; choices: { delta: { role?: string; content?: string } }[] }[];
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    if (whole.choices[0].message.content !== '') assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0].message.content);
  });

  it('streams a beam search answer whole at the end (its leading beam can still change before)', async () => {
    const body = {
      messages: [{ role: 'user', content: 'Name a colour.' }],
      max_tokens: 8,
      temperature: 0,
      num_beams: 3,
    };
    const whole = await json(await post('/v1/chat/completions', body));
    const { events, done } = await readSse(await post('/v1/chat/completions', { ...body, stream: true }));
    assert.ok(done);
    const chunks = events as {
      choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
    }[];
    assert.equal(chunks[0]?.choices[0]?.delta.role, 'assistant');
    assert.equal(
      chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''),
      whole.choices[0].message.content,
    );
    assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, whole.choices[0].finish_reason);
  });

  it('answers 400 naming the field for bad JSON, bad values and a prompt longer than the context', async () => {
    const cases: [string, unknown, string | null, RegExp][] = [
      ['/v1/completions', '{"prompt": "a",', null, /not valid JSON/],
      ['/v1/completions', { prompt: 'a', temperature: 9 }, 'temperature', /\[0, 2\]/],
      ['/v1/completions', { prompt: 'a', max_tokens: 0 }, 'max_tokens', /\[1, 1024\]/],
      ['/v1/chat/completions', { messages: 'hi' }, 'messages', /non-empty array/],
      ['/api/generate', { instruction: 'a', num_beams: 9 }, 'num_beams', /\[1, 8\]/],
      [
        '/v1/completions',
        { prompt: 'word '.repeat(1100) },
        'prompt',
        /has 1101 tokens .*max_seq_len\) is 1024/,
      ],
      [
        '/v1/chat/completions',
        { messages: [{ role: 'user', content: 'word '.repeat(1100) }], stream: true },
        'messages',
        /max_seq_len/,
      ],
    ];
    for (const [path, body, param, message] of cases) {
      const res = await post(path, body);
      const e = await json(res);
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body).slice(0, 60)}`);
      assert.equal(e.error.param, param);
      assert.equal(e.error.type, 'invalid_request_error');
      assert.match(e.error.message, message);
    }
    assert.equal((await fetch(new URL('/v1/completions', url))).status, 405);
    assert.equal((await fetch(new URL('/nowhere', url))).status, 404);
  });

  it('serves several clients at once, each with the answer it would get alone', async () => {
    const prompts = ['One', 'Two three', 'Four five six'];
    const ask = (prompt: string, user: string) =>
      post('/v1/completions', { prompt, max_tokens: 20, temperature: 0, user }).then(json);
    const alone: string[] = [];
    for (const p of prompts) alone.push((await ask(p, 'solo')).choices[0].text);
    const together = await Promise.all(prompts.map((p, i) => ask(p, `client-${i}`)));
    assert.deepEqual(
      together.map((r) => r.choices[0].text),
      alone,
    );
  });

  it('gives the same sample for the same seed', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 16, temperature: 1, top_k: 50, seed: 1234 };
    const a = await json(await post('/v1/completions', body));
    const b = await json(await post('/v1/completions', body));
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.equal(a.seed, 1234);
  });

  it('cancels the generation of a client that disconnects, and serves the next one', async () => {
    const from = server.events().length;
    const abort = new AbortController();
    const res = await post(
      '/v1/completions',
      { prompt: 'Count:', max_tokens: 1000, temperature: 1, seed: 7, stream: true },
      { signal: abort.signal },
    );
    await readSse(res, () => false).catch(() => undefined); // one chunk, then hang up
    abort.abort();
    const finished = await server.waitForEvent(
      'generation_finished',
      (e) => e.finish_reason === 'cancelled',
      {
        from,
      },
    );
    assert.ok((finished.completion_tokens as number) < 1000, `${finished.completion_tokens} tokens`);
    const next = await json(await post('/v1/completions', { prompt: 'Next', max_tokens: 3, temperature: 0 }));
    assert.equal(next.usage.completion_tokens, 3);
    const health = await json(await fetch(new URL('/healthz', url)));
    assert.deepEqual([health.running, health.waiting], [0, 0]);
  });

  it("streams the page's answer as whole texts, ending with a summary", async () => {
    const res = await post('/api/generate', {
      instruction: 'Name a colour.',
      num_beams: 2,
      max_new_tokens: 6,
      stream: true,
    });
    const { events } = await readSse(res);
    const last = events.at(-1) as {
      done: boolean;
      text: string;
      completion_tokens: number;
      finish_reason: string;
    };
    assert.equal(last.done, true);
    assert.ok(events.length >= 2, `${events.length} events`);
    assert.ok(last.completion_tokens <= 6);
    const whole = await json(
      await post('/api/generate', { instruction: 'Name a colour.', num_beams: 2, max_new_tokens: 6 }),
    );
    assert.equal(whole.text, last.text);
  });
});
